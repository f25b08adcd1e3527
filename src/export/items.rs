//! `models/items.parquet` (label -> ITEM_CD and what the recommender needs per item) and
//! `models/retrain_queue.csv` (LOW-tier items for review: the answer `recommend` would give them
//! is not to be trusted).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float32Array, Float64Array, StringArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::export::log::RunLog;
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
    /// The agreement of the first proposal among the item's nearest routed others
    /// ([`crate::features::learn::agreement`]); `None`: no routed other.
    pub agreement: Option<u8>,
    /// That answer's confidence ([`crate::features::learn::answer_confidence`]); the tier
    /// compares it with the threshold. `None`: no routed other, so LOW.
    pub confidence: Option<f32>,
    /// The similarity of the farthest routed other the agreement counted
    /// ([`crate::index::similarity::Near::radius`]).
    pub radius: Option<f32>,
    /// Whether the item has a current routing (only those are proposed).
    pub has_routing: bool,
    pub tier: &'static str,
}

/// The tier of an answer with this confidence (none: nothing to propose, LOW).
pub fn tier_of(confidence: Option<f32>, threshold: f64) -> &'static str {
    match confidence {
        Some(c) if c as f64 >= threshold => "HIGH",
        _ => "LOW",
    }
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
        Field::new("agreement", DataType::UInt8, true),
        Field::new("confidence", DataType::Float32, true),
        Field::new("agreement_radius", DataType::Float32, true),
        Field::new("similarity_tier", DataType::Utf8, false),
        Field::new("has_routing", DataType::Boolean, false),
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
            Arc::new(UInt8Array::from_iter(rows.iter().map(|r| r.agreement))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.confidence))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.radius))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.tier))),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.has_routing).collect::<Vec<_>>(),
            )),
        ],
    )
    .map_err(|e| Error::internal(format!("items batch: {e}")))?;
    crate::parquet_io::write_parquet(path, &batch)
}

/// One row of `models/retrain_queue.csv`: an item whose answer's confidence was below the
/// threshold when a run or update looked at it. Rows are kept across updates; a row is resolved
/// when a later update finds the item HIGH (new routed items near it agree).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    pub item_cd: String,
    pub part_nm: String,
    pub seal_type: String,
    pub nearest_item_cd: String,
    pub similarity: f32,
    pub agreement: Option<u8>,
    /// The answer's confidence the threshold applies to (`None`: no routed other).
    pub confidence: Option<f32>,
    pub threshold: f64,
    /// `run` or `update N`.
    pub queued_by: String,
    pub queued_at: String,
    /// Empty while open.
    pub resolved_by: String,
    pub resolved_at: String,
    pub resolved_confidence: Option<f32>,
}

impl QueueEntry {
    pub fn is_open(&self) -> bool {
        self.resolved_by.is_empty()
    }
}

const QUEUE_HEADER: &str = "ITEM_CD,PartNm,SealType,nearest_other_ITEM_CD,nearest_other_similarity,agreement,confidence,\
threshold,status,queued_by,queued_at,resolved_by,resolved_at,resolved_confidence";
const QUEUE_FIELDS: usize = 14;

/// Queue entries for the LOW rows among the labels `which` (a run: all rows; an update: the
/// items it added and the existing ones it made LOW), queued by `queued_by` at `at`.
pub fn low_entries(
    rows: &[ItemRow],
    which: impl IntoIterator<Item = usize>,
    threshold: f64,
    queued_by: &str,
    at: &str,
) -> Vec<QueueEntry> {
    which
        .into_iter()
        .map(|i| &rows[i])
        .filter(|r| r.tier == "LOW")
        .map(|r| QueueEntry {
            item_cd: r.item_cd.to_string(),
            part_nm: r.part_nm.unwrap_or("").to_string(),
            seal_type: r.seal_type.unwrap_or("").to_string(),
            nearest_item_cd: r
                .nearest_label
                .map(|l| rows[l as usize].item_cd.to_string())
                .unwrap_or_default(),
            similarity: r.nearest_similarity,
            agreement: r.agreement,
            confidence: r.confidence,
            threshold,
            queued_by: queued_by.to_string(),
            queued_at: at.to_string(),
            resolved_by: String::new(),
            resolved_at: String::new(),
            resolved_confidence: None,
        })
        .collect()
}

/// Writes the queue as CSV with a header; fields are quoted when they contain a comma, quote or
/// newline. Returns the number of open entries.
pub fn write_queue(path: &Path, entries: &[QueueEntry]) -> Result<usize> {
    atomic_write_with(path, |w| {
        writeln!(w, "{QUEUE_HEADER}")?;
        for e in entries {
            writeln!(
                w,
                "{},{},{},{},{:.6},{},{},{},{},{},{},{},{},{}",
                crate::csv::field(&e.item_cd),
                crate::csv::field(&e.part_nm),
                crate::csv::field(&e.seal_type),
                crate::csv::field(&e.nearest_item_cd),
                e.similarity,
                e.agreement.map(|a| a.to_string()).unwrap_or_default(),
                e.confidence.map(|c| format!("{c:.6}")).unwrap_or_default(),
                e.threshold,
                if e.is_open() { "open" } else { "resolved" },
                crate::csv::field(&e.queued_by),
                crate::csv::field(&e.queued_at),
                crate::csv::field(&e.resolved_by),
                crate::csv::field(&e.resolved_at),
                e.resolved_confidence
                    .map(|s| format!("{s:.6}"))
                    .unwrap_or_default(),
            )?;
        }
        Ok(())
    })?;
    Ok(entries.iter().filter(|e| e.is_open()).count())
}

/// Reads a queue written by [`write_queue`]; errors name the file and line.
pub fn read_queue(path: &Path) -> Result<Vec<QueueEntry>> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(&what, e.to_string()))?;
    let mut records = crate::csv::parse(&text).map_err(|e| Error::input(&what, e))?;
    if records.is_empty() || records[0].1.join(",") != QUEUE_HEADER {
        return Err(Error::input(
            &what,
            "not a retrain queue of this trainer version (header differs); retrain with `trainer run`",
        ));
    }
    records.remove(0);
    let mut out = Vec::with_capacity(records.len());
    for (line, f) in records {
        let bad = |m: &str| Error::input(format!("{what}, line {line}"), m.to_string());
        if f.len() != QUEUE_FIELDS {
            return Err(bad(&format!("{} fields, expected {QUEUE_FIELDS}", f.len())));
        }
        let num = |s: &str, name: &str| -> Result<f64> {
            s.parse::<f64>()
                .map_err(|_| bad(&format!("`{name}` is not a number: {s:?}")))
        };
        let opt = |s: &str, name: &str| -> Result<Option<f64>> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s, name).map(Some)
            }
        };
        out.push(QueueEntry {
            item_cd: f[0].clone(),
            part_nm: f[1].clone(),
            seal_type: f[2].clone(),
            nearest_item_cd: f[3].clone(),
            similarity: num(&f[4], "nearest_other_similarity")? as f32,
            agreement: match opt(&f[5], "agreement")? {
                Some(a) if a.fract() == 0.0 && (0.0..=255.0).contains(&a) => Some(a as u8),
                Some(_) => return Err(bad(&format!("`agreement` is not a count: {:?}", f[5]))),
                None => None,
            },
            confidence: opt(&f[6], "confidence")?.map(|c| c as f32),
            threshold: num(&f[7], "threshold")?,
            queued_by: f[9].clone(),
            queued_at: f[10].clone(),
            resolved_by: f[11].clone(),
            resolved_at: f[12].clone(),
            resolved_confidence: opt(&f[13], "resolved_confidence")?.map(|c| c as f32),
        });
    }
    Ok(out)
}

/// A warning per LOW item of `rows` (the first 50; all are in the retrain queue), with the
/// agreement and confidence the tier is set by. `low`: how many are LOW.
pub fn warn_low(rows: &[ItemRow], low: usize, log: &mut RunLog) {
    for r in rows.iter().filter(|r| r.tier == "LOW").take(50) {
        log.warn(format!(
            "LOW: {} ({}) {} -> queued for review",
            r.item_cd,
            r.part_nm.unwrap_or("-"),
            match (r.agreement, r.confidence) {
                (Some(a), Some(c)) => format!(
                    "agreement {a} of {}, confidence {c:.2}, nearest other {:.4}",
                    2 * crate::features::learn::PROPOSALS,
                    r.nearest_similarity
                ),
                _ => "no routed item to propose from".to_string(),
            }
        ));
    }
    if low > 50 {
        log.warn(format!(
            "... and {} more LOW items (all in retrain_queue.csv)",
            low - 50
        ));
    }
}
