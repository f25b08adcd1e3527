//! Single-query latency against a saved index (p50/p99 at the model's ef_search, one thread) and
//! incremental insertion of new items into it. Run by `make bench` (scripts/bench) after a
//! 325k-item `trainer run`; standalone: `TRAINER_BENCH_MODEL=models cargo bench --bench
//! query_latency`.
//!
//! Queries are new items like existing ones: the stored vector of a sampled item with seeded
//! Gaussian noise, renormalised. The index is loaded from `hnsw_index.bin` with our reader of
//! hnswlib's layout, as Stage 3 would load it with hnswlib.

use std::path::PathBuf;
use std::time::Instant;

use trainer::index::hnsw::Visited;
use trainer::index::hnswlib_file;
use trainer::rng::Rng;

fn main() {
    let Some(dir) = std::env::var_os("TRAINER_BENCH_MODEL").map(PathBuf::from) else {
        eprintln!(
            "query_latency: set TRAINER_BENCH_MODEL to a models folder written by `trainer run` \
             (make bench does); nothing measured"
        );
        return;
    };
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("hnsw_index.json")).expect("hnsw_index.json"),
    )
    .expect("sidecar JSON");
    let ef = sidecar["ef_search"].as_u64().expect("ef_search") as usize;
    let efc = sidecar["ef_construction"]
        .as_u64()
        .expect("ef_construction") as usize;
    let seed = sidecar["seed"].as_u64().expect("seed");
    let t = Instant::now();
    let mut h = hnswlib_file::read(&dir.join("hnsw_index.bin"), efc).expect("index");
    println!(
        "index: {} items x {} dims, M {}, loaded in {:.2} s",
        h.len(),
        h.dim,
        h.m,
        t.elapsed().as_secs_f64()
    );
    let (n, d) = (h.len(), h.dim);
    let mut rng = Rng::new(7);
    let mut new_item = |i: usize, h: &trainer::index::Hnsw| -> Vec<f32> {
        let v: Vec<f64> = h
            .vector(i as u32)
            .iter()
            .map(|x| *x as f64 + 0.02 * rng.normal())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| (x / norm) as f32).collect()
    };
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
    h.insert_all(&add, seed);
    let s = t.elapsed().as_secs_f64();
    println!(
        "incremental insertion: 1000 new items into {n} in {s:.2} s ({:.0} items/s, one thread), now {} items x {d} dims",
        1000.0 / s,
        h.len()
    );
}
