//! `models/tb_projector/`: what TensorBoard's Embedding Projector reads
//! (see `specs/tensorboard_projector.md`).
//!
//! `vectors.bytes` (the N x D float32 tensor, raw little-endian, row-major: the bytes of
//! `vectors.npy` after its header), `metadata.tsv` (header
//! `ITEM_CD\tPartNm\tSealType\tsimilarity_tier`; tabs, CR and LF in values become spaces; an empty
//! ITEM_CD never occurs), `projector_config.pbtxt` (the file TensorBoard reads; it carries the
//! tensor's shape, which a raw tensor needs) and `projector_config.json` (for the standalone
//! projector, which reads a `.bytes` path as raw floats). Row i is HNSW label i.
//!
//! The tensor is raw rather than the spec's TSV because TensorBoard parses a TSV tensor with one
//! Python float per value: a plant-sized model takes minutes and several GB of memory to show,
//! a raw one is a single `numpy.fromfile` (docs/design.md). TensorBoard tries a tensor file as
//! UTF-8 text first and reads raw floats only when that fails to decode; the one tensor whose
//! first line does decode (degenerate values such as all 0.5) is written as `vectors.tsv`
//! (shortest round-trip floats via ryu) instead, and the log says so.

use std::io::Write;
use std::path::Path;

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::Result;
use crate::export::npy::write_rows_le;
use crate::fsutil::{atomic_write, atomic_write_large_with, atomic_write_with};
use crate::index::Vectors;

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

/// The file the tensor went to, and whether TensorBoard reads it as raw floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensor {
    /// `vectors.bytes`, raw little-endian float32.
    Raw,
    /// `vectors.tsv`: the raw bytes would have read as text (see [`reads_as_text`]).
    Text,
}

impl Tensor {
    /// What the log says about a tensor written as text.
    pub fn note(self) -> Option<&'static str> {
        (self == Tensor::Text).then_some(
            "tb_projector: the vectors' raw float32 bytes would read as text to TensorBoard (their \
             first line is valid UTF-8), so the tensor is vectors.tsv instead of vectors.bytes",
        )
    }

    pub fn file(self) -> &'static str {
        match self {
            Tensor::Raw => "vectors.bytes",
            Tensor::Text => "vectors.tsv",
        }
    }
}

/// Writes the projector of `vectors` (row i = label i) and `meta` into `dir`.
pub fn write(dir: &Path, vectors: &Vectors, meta: &[MetaRow<'_>]) -> Result<Tensor> {
    let tensor = write_tensor(dir, vectors)?;
    write_meta(dir, (vectors.len(), vectors.dim()), tensor, meta)?;
    Ok(tensor)
}

/// The projector's tensor file in `dir` (created if need be): `vectors.bytes`, or `vectors.tsv`
/// when the raw bytes would read as text. [`write_meta`] completes the projector.
pub fn write_tensor(dir: &Path, vectors: &Vectors) -> Result<Tensor> {
    std::fs::create_dir_all(dir)
        .map_err(|e| crate::error::Error::io(dir, "create the directory", e))?;
    let n = vectors.len();
    // Usually decided within the first row.
    let text = reads_as_text((0..n).flat_map(|i| vectors.row(i).iter().copied()));
    vectors.release(0..n);
    let tensor = if text { Tensor::Text } else { Tensor::Raw };
    let path = dir.join(tensor.file());
    match tensor {
        Tensor::Raw => atomic_write_large_with(&path, |w| write_rows_le(w, vectors))?,
        Tensor::Text => atomic_write_large_with(&path, |w| write_rows(w, vectors))?,
    }
    Ok(tensor)
}

/// Whether TensorBoard would take raw float bytes for text. It reads a tensor file as UTF-8 lines
/// and falls back to raw floats only on a decode error; TensorFlow's reader decodes line by line,
/// TensorBoard's own in chunks of many lines, so the raw file is safe exactly when its first line
/// (up to the first newline byte, or the whole file) is not valid UTF-8.
pub fn reads_as_text(values: impl Iterator<Item = f32>) -> bool {
    let mut line: Vec<u8> = Vec::new();
    // `line[..checked]` is valid UTF-8 ending on a character boundary.
    let mut checked = 0;
    for x in values {
        for b in x.to_le_bytes() {
            if b == b'\n' {
                return std::str::from_utf8(&line[checked..]).is_ok();
            }
            line.push(b);
        }
        if line.len() - checked >= 4096 {
            match std::str::from_utf8(&line[checked..]) {
                Ok(_) => checked = line.len(),
                Err(e) if e.error_len().is_some() => return false,
                Err(e) => checked += e.valid_up_to(),
            }
        }
    }
    std::str::from_utf8(&line[checked..]).is_ok()
}

/// Rows as text: blocks of rows are formatted on all cores, a round at a time, written in order.
fn write_rows(w: &mut impl Write, vectors: &Vectors) -> std::io::Result<()> {
    let (n, d) = (vectors.len(), vectors.dim());
    let starts: Vec<usize> = (0..n).step_by(BLOCK_ROWS).collect();
    for round in starts.chunks(ROUND_BLOCKS) {
        let texts: Vec<Vec<u8>> = round
            .par_iter()
            .map(|&s| {
                let rows = s..(s + BLOCK_ROWS).min(n);
                let mut buf = Vec::new();
                let block = vectors.block(rows.clone(), &mut buf);
                let text = format_rows(
                    ArrayView2::from_shape((rows.len(), d), block).expect("whole rows"),
                );
                vectors.release(rows);
                text
            })
            .collect();
        for t in &texts {
            w.write_all(t)?;
        }
    }
    Ok(())
}

/// `metadata.tsv` and the two projector configs, for the (n, d) tensor written as `tensor`.
pub fn write_meta(
    dir: &Path,
    (n, d): (usize, usize),
    tensor: Tensor,
    meta: &[MetaRow<'_>],
) -> Result<()> {
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
    let file = tensor.file();
    let pbtxt = format!(
        "embeddings {{\n  tensor_name: \"{TENSOR_NAME}\"\n  tensor_path: \"{file}\"\n  \
         metadata_path: \"metadata.tsv\"\n  tensor_shape: {n}\n  tensor_shape: {d}\n}}\n"
    );
    atomic_write(&dir.join("projector_config.pbtxt"), pbtxt.as_bytes())?;
    let json = serde_json::json!({
        "embeddings": [{
            "tensorName": TENSOR_NAME,
            "tensorShape": [n, d],
            "tensorPath": file,
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

    fn matrix(rows: usize, v: &[f32]) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_vec((rows, v.len() / rows), v.to_vec()).unwrap()
    }

    fn owned(m: &ndarray::Array2<f32>) -> Vectors {
        Vectors::owned(m.iter().copied().collect(), m.ncols())
    }

    #[test]
    fn raw_floats_read_as_text_only_when_their_first_line_decodes() {
        // 0.5 is 00 00 00 3F: ASCII bytes, no newline, so the whole file decodes.
        assert!(reads_as_text([0.5f32; 6].into_iter()));
        // 1.0 is 00 00 80 3F: 0x80 cannot start a character.
        assert!(!reads_as_text([1.0f32, 0.0].into_iter()));
        // A newline byte (0x0A) ends the first line: what follows it does not matter.
        let nl = f32::from_le_bytes([0x30, 0x31, 0x0A, 0x3F]);
        assert!(reads_as_text([0.5, nl, 1.0].into_iter()));
        assert!(!reads_as_text([1.0, nl, 0.5].into_iter()));
        // A character split across the 4,096-byte checks: U+00E9 is C3 A9.
        let mut long = vec![0.5f32; 1023];
        long.push(f32::from_le_bytes([0x30, 0x30, 0x30, 0xC3]));
        long.push(f32::from_le_bytes([0xA9, 0x30, 0x30, 0x3F]));
        assert!(reads_as_text(long.iter().copied()));
        *long.last_mut().unwrap() = f32::from_le_bytes([0x41, 0x30, 0x30, 0x3F]);
        assert!(!reads_as_text(long.iter().copied()));
        // Unit vectors of real items: anything but simple fractions breaks UTF-8 at once.
        let row: Vec<f32> = (1..=8).map(|i| (i as f32 / 204.0).sqrt()).collect();
        assert!(!reads_as_text(row.into_iter()));
    }

    #[test]
    fn the_tensor_is_raw_float32_unless_it_would_read_as_text() {
        let meta = [
            MetaRow {
                item_cd: "A1",
                part_nm: "SEAL\tRING",
                seal_type: "",
                tier: "HIGH",
            },
            MetaRow {
                item_cd: "A2",
                part_nm: "",
                seal_type: "Q",
                tier: "LOW",
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let raw = matrix(2, &[0.6, -0.8, 1.0, 0.0]);
        assert_eq!(write(dir.path(), &owned(&raw), &meta).unwrap(), Tensor::Raw);
        let bytes = std::fs::read(dir.path().join("vectors.bytes")).unwrap();
        let want: Vec<u8> = raw.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(bytes, want);
        assert!(!dir.path().join("vectors.tsv").exists());
        let pbtxt = std::fs::read_to_string(dir.path().join("projector_config.pbtxt")).unwrap();
        assert_eq!(
            pbtxt,
            "embeddings {\n  tensor_name: \"routing_candidates\"\n  tensor_path: \"vectors.bytes\"\n  \
             metadata_path: \"metadata.tsv\"\n  tensor_shape: 2\n  tensor_shape: 2\n}\n"
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("projector_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["embeddings"][0]["tensorPath"], "vectors.bytes");
        assert_eq!(
            json["embeddings"][0]["tensorShape"],
            serde_json::json!([2, 2])
        );
        let tsv = std::fs::read_to_string(dir.path().join("metadata.tsv")).unwrap();
        assert_eq!(
            tsv,
            "ITEM_CD\tPartNm\tSealType\tsimilarity_tier\nA1\tSEAL RING\t\tHIGH\nA2\t\tQ\tLOW\n"
        );

        let dir = tempfile::tempdir().unwrap();
        let text = matrix(2, &[0.5, 0.5, 0.5, 0.5]);
        let tensor = write(dir.path(), &owned(&text), &meta).unwrap();
        assert_eq!(tensor, Tensor::Text);
        assert!(tensor.note().is_some());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("vectors.tsv")).unwrap(),
            "0.5\t0.5\n0.5\t0.5\n"
        );
        assert!(!dir.path().join("vectors.bytes").exists());
        let pbtxt = std::fs::read_to_string(dir.path().join("projector_config.pbtxt")).unwrap();
        assert!(pbtxt.contains("tensor_path: \"vectors.tsv\""), "{pbtxt}");
    }
}
