//! Single-query latency against a saved index (p50/p99 at the model's ef_search, one thread) and
//! incremental insertion of new items into it. Run by `make bench` (scripts/bench) after a
//! 325k-item `trainer run`; standalone: `TRAINER_BENCH_MODEL=models cargo bench --bench
//! query_latency`.
//!
//! Queries are new items like existing ones: the stored vector of a sampled item with seeded
//! Gaussian noise, renormalised. The index is loaded from `hnsw_index.bin` with our reader of
//! hnswlib's layout, as Stage 3 would load it with hnswlib.

use std::time::Instant;

mod common;

use trainer::index::Visited;
use trainer::rng::Rng;

fn main() {
    let Some(model) = common::saved_model("query_latency") else {
        return;
    };
    let ef = model.ef_search;
    let t = Instant::now();
    let mut h = model.index();
    println!(
        "index: {} items x {} dims, M {}, loaded in {:.2} s",
        h.len(),
        h.dim(),
        h.m(),
        t.elapsed().as_secs_f64()
    );
    let (n, d) = (h.len(), h.dim());
    let mut rng = Rng::new(7);
    let mut new_item = |i: usize, h: &trainer::index::Hnsw| common::noisy_copy(h, i, &mut rng);
    let queries: Vec<Vec<f32>> = (0..2000).map(|k| new_item(k * n / 2000, &h)).collect();
    let mut vis = Visited::new(n);
    for q in queries.iter().take(100) {
        std::hint::black_box(h.search(q, 10, ef, &mut vis));
    }
    let mut lat: Vec<f64> = queries
        .iter()
        .map(|q| {
            let t = Instant::now();
            std::hint::black_box(h.search(q, 10, ef, &mut vis));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "single query (k 10, ef {ef}, one thread, {} queries): p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat.iter().sum::<f64>() / lat.len() as f64
    );
    let add: Vec<f32> = (0..1000)
        .flat_map(|k| new_item((k * 7919) % n, &h))
        .collect();
    let t = Instant::now();
    h.insert_all(&add, model.seed);
    let s = t.elapsed().as_secs_f64();
    println!(
        "incremental insertion: 1000 new items into {n} in {s:.2} s ({:.0} items/s, one thread), now {} items x {d} dims",
        1000.0 / s,
        h.len()
    );
}
