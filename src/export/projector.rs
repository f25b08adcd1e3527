//! `models/tb_projector/`: what TensorBoard's Embedding Projector reads
//! (see `specs/tensorboard_projector.md`).
//!
//! `vectors.tsv` (no header, tab-separated shortest round-trip floats via ryu, formatted on all
//! cores), `metadata.tsv`
//! (header `ITEM_CD\tPartNm\tSealType\tsimilarity_tier`; tabs, CR and LF in values become spaces;
//! an empty ITEM_CD never occurs), `projector_config.pbtxt` (the file TensorBoard reads) and
//! `projector_config.json` (for the standalone projector). Row i is HNSW label i.

use std::io::Write;
use std::path::Path;

use ndarray::{ArrayView2, s};
use rayon::prelude::*;

use crate::error::Result;
use crate::fsutil::{atomic_write, atomic_write_with};

pub const TENSOR_NAME: &str = "routing_candidates";

pub struct MetaRow<'a> {
    pub item_cd: &'a str,
    pub part_nm: &'a str,
    pub seal_type: &'a str,
    pub tier: &'a str,
}

impl<'a> From<&'a crate::export::items::ItemRow<'a>> for MetaRow<'a> {
    fn from(r: &'a crate::export::items::ItemRow<'a>) -> Self {
        MetaRow {
            item_cd: r.item_cd,
            part_nm: r.part_nm.unwrap_or(""),
            seal_type: r.seal_type.unwrap_or(""),
            tier: r.tier,
        }
    }
}

/// Rows formatted by one task, and tasks per round (a round's text, about 2048 × 8 rows × the
/// text of one row, is held until it is written).
const BLOCK_ROWS: usize = 2048;
const ROUND_BLOCKS: usize = 8;

/// Rows of `vectors.tsv`. Two thirds of an item vector's values are zeros (one-hot blocks): they
/// are written as the literal `0.0`, the text ryu gives them, without formatting.
fn format_rows(rows: ArrayView2<'_, f32>) -> Vec<u8> {
    let mut buf = ryu::Buffer::new();
    let mut out = Vec::with_capacity(rows.len() * 8);
    for row in rows.outer_iter() {
        for (j, x) in row.iter().enumerate() {
            if j > 0 {
                out.push(b'\t');
            }
            if x.to_bits() == 0 {
                out.extend_from_slice(b"0.0");
            } else {
                out.extend_from_slice(buf.format_finite(*x).as_bytes());
            }
        }
        out.push(b'\n');
    }
    out
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
    atomic_write_with(&dir.join("vectors.tsv"), |w| write_rows(w, vectors))?;
    write_rest(dir, vectors.dim(), meta)
}

/// The projector of a model that grew by `added` rows (`trainer update`): the old model's
/// `vectors.tsv` is copied and the new rows' text appended (the old rows' text does not change,
/// and formatting all of it again is the expensive part); the metadata is written anew, since
/// tiers of old items can change.
pub fn write_grown(
    old_dir: &Path,
    dir: &Path,
    all: ArrayView2<'_, f32>,
    added: usize,
    meta: &[MetaRow<'_>],
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::error::Error::io(dir, "create the directory", e))?;
    let n = all.nrows();
    let old = old_dir.join("vectors.tsv");
    atomic_write_with(&dir.join("vectors.tsv"), |w| {
        let mut src = std::fs::File::open(&old)?;
        std::io::copy(&mut src, w)?;
        write_rows(w, all.slice(s![n - added.., ..]))
    })?;
    write_rest(dir, all.dim(), meta)
}

/// Rows as text: blocks of rows are formatted on all cores, a round at a time, written in order.
fn write_rows(w: &mut impl Write, vectors: ArrayView2<'_, f32>) -> std::io::Result<()> {
    let n = vectors.nrows();
    let starts: Vec<usize> = (0..n).step_by(BLOCK_ROWS).collect();
    for round in starts.chunks(ROUND_BLOCKS) {
        let texts: Vec<Vec<u8>> = round
            .par_iter()
            .map(|&s| format_rows(vectors.slice(s![s..(s + BLOCK_ROWS).min(n), ..])))
            .collect();
        for t in &texts {
            w.write_all(t)?;
        }
    }
    Ok(())
}

/// `metadata.tsv` and the two projector configs.
fn write_rest(dir: &Path, (n, d): (usize, usize), meta: &[MetaRow<'_>]) -> Result<()> {
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
    crate::fsutil::write_json(&dir.join("projector_config.json"), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_ryu_text_with_zeros_as_written_by_ryu() {
        let v = [0.0f32, -0.0, 0.25, -1.5e-7, 1.0, 0.333_333_34];
        let m = ndarray::Array2::from_shape_vec((2, 3), v.to_vec()).unwrap();
        let mut buf = ryu::Buffer::new();
        let want: String = v
            .chunks(3)
            .map(|r| {
                let cells: Vec<String> = r
                    .iter()
                    .map(|x| buf.format_finite(*x).to_string())
                    .collect();
                cells.join("\t") + "\n"
            })
            .collect();
        assert_eq!(String::from_utf8(format_rows(m.view())).unwrap(), want);
        assert!(want.starts_with("0.0\t-0.0\t0.25\n"));
    }
}
