//! `training_metadata.json` and the index sidecar `hnsw_index.json`: the record of what a model
//! was trained from (config, SQL versions and hashes, data snapshot, code commit) and how to load
//! its index. `run` writes both; `update` appends to the first and rewrites N in the second.

use std::path::Path;

use serde_json::{Value, json};

use crate::engine::sources::SourceInfo;
use crate::index::HnswParams;

/// What `training_metadata.json` and each update entry say about the sources read.
pub fn sources_json(sources: &[SourceInfo]) -> Vec<Value> {
    sources
        .iter()
        .map(|s| {
            let mut v = json!({"view": s.view, "location": s.location, "sha256": s.sha256});
            if !s.nulled.is_empty() {
                v["nulled"] = json!(s.nulled);
            }
            v
        })
        .collect()
}

/// `hnsw_index.json`: how Stage 3 loads and searches `hnsw_index.bin`.
pub fn index_sidecar(dim: usize, n: usize, p: &HnswParams, ef_search: usize) -> Value {
    json!({
        "format": "hnswlib 0.8.0 saveIndex layout",
        "space": "cosine",
        "dim": dim,
        "M": p.m,
        "ef_construction": p.ef_construction,
        "ef_search": ef_search,
        "N": n,
        "seed": p.seed,
        "label": "row index of items.parquet (column `label`), = data row of tb_projector/metadata.tsv",
        "vectors": "L2-normalised float32; the same rows as vectors.npy",
        "load": "hnswlib.Index(space='cosine', dim=dim).load_index('hnsw_index.bin', max_elements=0); set_ef(ef_search)",
    })
}

/// The commit of the repository holding `dir` (`+dirty` with uncommitted changes there), or
/// `unknown` outside git.
pub fn git_commit(dir: &Path) -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = run(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+dirty") } else { c }
        }
        None => "unknown".to_string(),
    }
}
