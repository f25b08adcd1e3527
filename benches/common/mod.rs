//! What the benches against a saved model share: finding the model (`TRAINER_BENCH_MODEL`), its
//! index parameters from `hnsw_index.json`, and queries that look like new items.

use std::path::PathBuf;

use trainer::index::{Hnsw, hnswlib_file};
use trainer::rng::Rng;

/// A models folder written by `trainer run`, with the index parameters of its sidecar.
pub struct SavedModel {
    pub dir: PathBuf,
    pub ef_search: usize,
    pub ef_construction: usize,
    pub seed: u64,
}

impl SavedModel {
    /// The model's `hnsw_index.bin`, read with our reader of hnswlib's layout.
    pub fn index(&self) -> Hnsw {
        let path = self.dir.join("hnsw_index.bin");
        hnswlib_file::read(&path, self.ef_construction)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The model named by `TRAINER_BENCH_MODEL`, or `None` (with a note on stderr) when unset.
pub fn saved_model(bench: &str) -> Option<SavedModel> {
    let Some(dir) = std::env::var_os("TRAINER_BENCH_MODEL").map(PathBuf::from) else {
        eprintln!(
            "{bench}: set TRAINER_BENCH_MODEL to a models folder written by `trainer run` \
             (make bench does); nothing measured"
        );
        return None;
    };
    let path = dir.join("hnsw_index.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sidecar: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |k: &str| {
        sidecar[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no integer `{k}`", path.display()))
    };
    Some(SavedModel {
        ef_search: field("ef_search") as usize,
        ef_construction: field("ef_construction") as usize,
        seed: field("seed"),
        dir,
    })
}

/// A new item like stored item `i`: its vector with Gaussian noise σ 0.02, renormalised.
pub fn noisy_copy(h: &Hnsw, i: usize, rng: &mut Rng) -> Vec<f32> {
    let v: Vec<f64> = h
        .vector(i as u32)
        .iter()
        .map(|x| *x as f64 + 0.02 * rng.normal())
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / norm) as f32).collect()
}
