//! `models/items.parquet` (label -> ITEM_CD and what the recommender needs per item) and
//! `models/retrain_queue.csv` (LOW-tier items for review).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Float32Array, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::fsutil::atomic_write_with;

/// One item's row, borrowing its texts from the item table: owned copies of four strings per
/// item added to the artifacts stage's memory peak.
pub struct ItemRow<'a> {
    pub item_key: &'a str,
    pub item_cd: &'a str,
    pub part_nm: Option<&'a str>,
    pub seal_type: Option<&'a str>,
    pub item_weight: f64,
    pub nearest_label: Option<u64>,
    pub nearest_similarity: f32,
    pub tier: &'static str,
}

pub fn write_items(path: &Path, rows: &[ItemRow]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("label", DataType::UInt64, false),
        Field::new("ITEM_CD", DataType::Utf8, false),
        Field::new("item_key", DataType::Utf8, false),
        Field::new("PartNm", DataType::Utf8, true),
        Field::new("SealType", DataType::Utf8, true),
        Field::new("item_weight", DataType::Float64, false),
        Field::new("nearest_other_label", DataType::UInt64, true),
        Field::new("nearest_other_similarity", DataType::Float32, false),
        Field::new("similarity_tier", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(UInt64Array::from_iter_values(0..rows.len() as u64)),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.item_cd),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.item_key),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.part_nm))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.seal_type))),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.item_weight),
            )),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.nearest_label))),
            Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|r| r.nearest_similarity),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.tier))),
        ],
    )
    .map_err(|e| Error::internal(format!("items batch: {e}")))?;
    crate::sample::write_parquet(path, &batch)
}

/// CSV with a header; fields are quoted when they contain a comma, quote or newline.
pub fn write_retrain_queue(path: &Path, rows: &[ItemRow], threshold: f64) -> Result<usize> {
    let q = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut count = 0;
    atomic_write_with(path, |w| {
        writeln!(
            w,
            "ITEM_CD,PartNm,SealType,nearest_other_ITEM_CD,nearest_other_similarity,threshold"
        )?;
        for r in rows.iter().filter(|r| r.tier == "LOW") {
            count += 1;
            let other = r
                .nearest_label
                .map(|l| rows[l as usize].item_cd)
                .unwrap_or("");
            writeln!(
                w,
                "{},{},{},{},{:.6},{}",
                q(r.item_cd),
                q(r.part_nm.unwrap_or("")),
                q(r.seal_type.unwrap_or("")),
                q(other),
                r.nearest_similarity,
                threshold
            )?;
        }
        Ok(())
    })?;
    Ok(count)
}
