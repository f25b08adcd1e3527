//! `models/tb_projector/`: what TensorBoard's Embedding Projector reads
//! (see `specs/tensorboard_projector.md`).
//!
//! `vectors.tsv` (no header, tab-separated shortest round-trip floats via ryu), `metadata.tsv`
//! (header `ITEM_CD\tPartNm\tSealType\tsimilarity_tier`; tabs, CR and LF in values become spaces;
//! an empty ITEM_CD never occurs), `projector_config.pbtxt` (the file TensorBoard reads) and
//! `projector_config.json` (for the standalone projector). Row i is HNSW label i.

use std::io::Write;
use std::path::Path;

use ndarray::ArrayView2;

use crate::error::Result;
use crate::fsutil::{atomic_write, atomic_write_with};

pub const TENSOR_NAME: &str = "routing_candidates";

pub struct MetaRow<'a> {
    pub item_cd: &'a str,
    pub part_nm: &'a str,
    pub seal_type: &'a str,
    pub tier: &'a str,
}

/// Replaces what would break the TSV (tab, CR, LF) with a space.
pub fn tsv_field(s: &str) -> String {
    s.chars()
        .map(|c| {
            if matches!(c, '\t' | '\r' | '\n') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

pub fn write(dir: &Path, vectors: ArrayView2<'_, f32>, meta: &[MetaRow<'_>]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::error::Error::io(dir, "create the directory", e))?;
    let (n, d) = vectors.dim();
    atomic_write_with(&dir.join("vectors.tsv"), |w| {
        let mut buf = ryu::Buffer::new();
        let mut line = Vec::with_capacity(d * 12);
        for row in vectors.outer_iter() {
            line.clear();
            for (j, x) in row.iter().enumerate() {
                if j > 0 {
                    line.push(b'\t');
                }
                line.extend_from_slice(buf.format_finite(*x).as_bytes());
            }
            line.push(b'\n');
            w.write_all(&line)?;
        }
        Ok(())
    })?;
    atomic_write_with(&dir.join("metadata.tsv"), |w| {
        w.write_all(b"ITEM_CD\tPartNm\tSealType\tsimilarity_tier\n")?;
        for r in meta {
            writeln!(
                w,
                "{}\t{}\t{}\t{}",
                tsv_field(r.item_cd),
                tsv_field(r.part_nm),
                tsv_field(r.seal_type),
                r.tier
            )?;
        }
        Ok(())
    })?;
    let pbtxt = format!(
        "embeddings {{\n  tensor_name: \"{TENSOR_NAME}\"\n  tensor_path: \"vectors.tsv\"\n  metadata_path: \"metadata.tsv\"\n}}\n"
    );
    atomic_write(&dir.join("projector_config.pbtxt"), pbtxt.as_bytes())?;
    let json = serde_json::json!({
        "embeddings": [{
            "tensorName": TENSOR_NAME,
            "tensorShape": [n, d],
            "tensorPath": "vectors.tsv",
            "metadataPath": "metadata.tsv",
        }]
    });
    atomic_write(
        &dir.join("projector_config.json"),
        format!("{}\n", serde_json::to_string_pretty(&json).unwrap()).as_bytes(),
    )?;
    Ok(())
}
