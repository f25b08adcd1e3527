//! Index build and similarity check alone, on the vectors of a saved model: the two stages of
//! `trainer run` after the SQL, without rerunning the SQL. Run by `make bench` (scripts/bench)
//! after the 325k-item `trainer run`; standalone: `TRAINER_BENCH_MODEL=models cargo bench --bench
//! index_build` (`TRAINER_BENCH_M` / `TRAINER_BENCH_EFC` override the model's M and
//! ef_construction, and `TRAINER_BENCH_NEAREST_EF` the similarity check's beam width, to weigh a
//! parameter change before making it the default).
//!
//! Prints build wall time (all cores), whether the rebuilt graph equals the saved one (it must,
//! with the model's own parameters: the build is deterministic), recall@10 at the model's
//! ef_search against exact search on 500 queries (stored vectors with seeded noise), the
//! similarity pass over every item and how often its nearest other agrees with exact search, and
//! how many of the items it calls LOW are LOW by exact search too.

use std::time::Instant;

mod common;

use rayon::prelude::*;
use trainer::index::similarity::{NEAREST_OTHER_EF, similarity_nearest};
use trainer::index::with_visited;
use trainer::index::{Hnsw, HnswParams};
use trainer::rng::Rng;

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

/// The model's similarity threshold, from its `training_metadata.json`.
fn similarity_threshold(dir: &std::path::Path) -> f64 {
    let path = dir.join("training_metadata.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta["similarity_threshold"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: no `similarity_threshold`", path.display()))
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

    let beam = env_usize("TRAINER_BENCH_NEAREST_EF").unwrap_or(NEAREST_OTHER_EF);
    let threshold = similarity_threshold(&model.dir);
    let t = Instant::now();
    let nearest: Vec<Option<(f32, u32)>> = (0..n as u32)
        .into_par_iter()
        .map(|i| with_visited(|vis| similarity_nearest(&h, &quant, i, beam, ef, threshold, vis)))
        .collect();
    println!(
        "similarity pass (nearest other of every item, beam {beam}, LOW ones searched again): {:.2} s",
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
    let agree = sample
        .par_iter()
        .filter(|&&i| {
            let exact = h.brute_force_other(i).map(|x| x.0);
            nearest[i as usize].map(|x| x.0) <= exact || exact.is_none()
        })
        .count();
    println!(
        "nearest other as close as the exact one: {:.4} of 2000 sampled items",
        agree as f64 / 2000.0
    );
    // The tier decision where it matters: every item the similarity pass calls LOW, checked
    // against its exact nearest other.
    let low: Vec<u32> = (0..n as u32)
        .filter(|&i| nearest[i as usize].is_some_and(|x| ((1.0 - x.0) as f64) < threshold))
        .collect();
    let truly_low = low
        .par_iter()
        .filter(|&&i| {
            h.brute_force_other(i)
                .is_none_or(|x| ((1.0 - x.0) as f64) < threshold)
        })
        .count();
    println!(
        "LOW items (nearest other below {threshold}): {}, of which LOW by exact search too: {truly_low}",
        low.len()
    );
}
