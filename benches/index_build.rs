//! Index build and similarity check alone, on the vectors of a saved model: the two stages of
//! `trainer run` after the SQL, without rerunning the SQL. Run by `make bench` (scripts/bench)
//! after the 325k-item `trainer run`; standalone: `TRAINER_BENCH_MODEL=models cargo bench --bench
//! index_build` (`TRAINER_BENCH_M` / `TRAINER_BENCH_EFC` override the model's M and
//! ef_construction, to weigh a parameter change before making it the default).
//!
//! Prints build wall time (all cores), whether the rebuilt graph equals the saved one (it must,
//! with the model's own parameters: the build is deterministic), recall@10 at the model's
//! ef_search against exact search on 500 queries (stored vectors with seeded noise), the
//! similarity pass over every item (its nearest other and its nearest routed others, from which a
//! model item's answer and tier come) and how often each agrees with exact search.

use std::time::Instant;

mod common;

use rayon::prelude::*;
use trainer::features::learn::PROPOSALS;
use trainer::index::similarity::{NEAREST_OTHER_EF, near_pass};
use trainer::index::{Hnsw, HnswParams};
use trainer::rng::Rng;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn main() {
    let Some(model) = common::saved_model("index_build") else {
        return;
    };
    let (ef, efc) = (model.ef_search, model.ef_construction);
    let saved = model.index();
    let (n, d) = (saved.len(), saved.dim());
    let p = HnswParams {
        m: env_usize("TRAINER_BENCH_M").unwrap_or(saved.m()),
        ef_construction: env_usize("TRAINER_BENCH_EFC").unwrap_or(efc),
        seed: model.seed,
    };
    let own = p.m == saved.m() && p.ef_construction == efc;
    println!(
        "{n} items x {d} dims; M {}, ef_construction {}{}; {} threads",
        p.m,
        p.ef_construction,
        if own { " (the model's)" } else { "" },
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let (h, quant) = Hnsw::build_quantized(saved.vectors().to_vec(), d, p, |_, _| {});
    println!("index build: {:.2} s", t.elapsed().as_secs_f64());
    let (dense, pairs) = quant.layout();
    println!(
        "construction rows: {dense} dense dims + {pairs} (value, position) entries = {} bytes with padding (dense i16: {}); {} rows with a side list",
        quant.row_bytes(),
        2 * d,
        quant.overflow_rows()
    );
    if own {
        println!(
            "rebuilt graph equals the saved one: {}",
            h.same_graph(&saved)
        );
    }
    drop(saved);

    let routed = trainer::model::Items::load(&model.dir.join("items.parquet"))
        .unwrap_or_else(|e| panic!("{e}"))
        .has_routing;
    let t = Instant::now();
    let near = near_pass(&h, &quant, 0..n as u32, &routed, ef, |_| {});
    println!(
        "similarity pass (nearest other and {PROPOSALS} nearest routed others of every item, beam \
         {NEAREST_OTHER_EF}): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut rng = Rng::new(7);
    let queries: Vec<Vec<f32>> = (0..500)
        .map(|k| common::noisy_copy(&h, k * n / 500, &mut rng))
        .collect();
    let t = Instant::now();
    let recall = h.recall_at(queries.iter().map(|q| q.as_slice()), 10, ef);
    println!(
        "recall@10 at ef {ef} against exact search (500 queries): {:.4} ({:.1} s incl. brute force)",
        recall,
        t.elapsed().as_secs_f64()
    );
    let sample: Vec<u32> = (0..2000).map(|k| (k * n / 2000) as u32).collect();
    let (other, routed_same) = sample
        .par_iter()
        .map(|&i| {
            let exact = h.brute_force(h.vector(i), n);
            let exact_other = exact.iter().find(|x| x.1 != i).map(|x| 1.0 - x.0);
            let exact_routed: Vec<u32> = exact
                .iter()
                .filter(|x| x.1 != i && routed[x.1 as usize])
                .take(PROPOSALS)
                .map(|x| x.1)
                .collect();
            let got = &near[i as usize];
            let got_routed: Vec<u32> = got.routed.iter().map(|x| x.0).collect();
            (
                usize::from(got.other.map(|x| x.1) >= exact_other),
                usize::from(got_routed == exact_routed),
            )
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    println!(
        "of 2000 sampled items: nearest other as close as the exact one {:.4}; the {PROPOSALS} \
         nearest routed others those of exact search {:.4}",
        other as f64 / 2000.0,
        routed_same as f64 / 2000.0
    );
}
