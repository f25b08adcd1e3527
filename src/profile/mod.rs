//! `trainer sources profile`: a data-quality report on the configured sources before training.
//!
//! Schema drift and silent bad data are what break a training service in the field, so this
//! looks at the data the way the clean layer will: per mapped column, the missing values by
//! spelling (NULL, blank, 'nan'), the sentinels 0 and 9999, distinct values and the commonest
//! ones, and the values that do not convert to the column's contract type (what `sources.strict`
//! decides about). The unit columns show each spelling and what the clean layer makes of it. With
//! a trained model beside, each cleaned feature is compared with the model's training items
//! (`item_features.parquet`) through the model's own transforms: a missing share or a vocabulary
//! that moved is flagged. `render.rs` turns the report into text and an HTML page.

pub mod render;

use std::collections::HashMap;
use std::path::Path;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::engine::sources::RawView;
use crate::engine::{Engine, ItemVolumes, RowFilter, norm_text};
use crate::error::{Error, Result};

/// Commonest values listed per column.
const TOP: usize = 5;
/// Drift flags: an absolute change of the missing share, a total-variation distance between the
/// level distributions, a share of values no training item had, a median shift in training IQRs.
pub const MISSING_MOVED: f64 = 0.10;
pub const LEVELS_MOVED: f64 = 0.20;
pub const UNSEEN_SHARE: f64 = 0.05;
pub const MEDIAN_MOVED: f64 = 0.5;

#[derive(Debug, Serialize)]
pub struct Profile {
    pub views: Vec<ViewProfile>,
    /// Unit columns of the item view: each spelling and what the clean layer makes of it.
    pub units: Vec<UnitColumn>,
    /// The cleaned features against a trained model's items (absent without a model).
    pub drift: Option<Drift>,
}

#[derive(Debug, Serialize)]
pub struct ViewProfile {
    pub view: String,
    pub location: String,
    pub rows: usize,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Serialize)]
pub struct ColumnProfile {
    /// The ERP column and its standard name.
    pub column: String,
    pub name: String,
    pub source_type: String,
    pub contract_type: String,
    pub nulls: usize,
    /// Empty or white space only (full-width spaces included).
    pub blanks: usize,
    /// 'nan', 'null' or 'none' in any case.
    pub nan_spelled: usize,
    pub missing_share: f64,
    /// Numeric contract only: values equal to 0 and to 9999 (the ERP's "unknown").
    pub zeros: Option<usize>,
    pub nines: Option<usize>,
    /// Distinct present values (text after trimming and folding white space).
    pub distinct: usize,
    /// The commonest present values with their counts.
    pub top: Vec<(String, usize)>,
    /// Numeric contract only: over the values that convert.
    pub min: Option<f64>,
    pub median: Option<f64>,
    pub max: Option<f64>,
    /// Date and date-time contract only: the earliest and latest values that convert.
    pub earliest: Option<String>,
    pub latest: Option<String>,
    /// Present values that do not convert to the contract type, and the first of them.
    pub not_castable: usize,
    pub not_castable_examples: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct UnitColumn {
    pub name: String,
    /// (spelling as delivered, what the clean layer made of it, rows)
    pub spellings: Vec<(Option<String>, Option<String>, i64)>,
}

#[derive(Debug, Serialize)]
pub struct Drift {
    pub model: String,
    pub items_then: usize,
    pub items_now: usize,
    pub columns: Vec<ColumnDrift>,
}

#[derive(Debug, Serialize)]
pub struct ColumnDrift {
    pub name: String,
    pub missing_then: f64,
    pub missing_now: f64,
    /// Text: total-variation distance between the level distributions, and the share of present
    /// values that no training item had.
    pub levels_moved: Option<f64>,
    pub unseen_share: Option<f64>,
    /// Numbers: medians, and the shift in training IQRs.
    pub median_then: Option<f64>,
    pub median_now: Option<f64>,
    pub median_moved: Option<f64>,
    /// Why this column is flagged (empty: it is not).
    pub flags: Vec<String>,
}

/// Profiles the config's sources; with `model` (a trained model folder), adds the drift.
pub async fn profile(cfg: &Config, mapping: &Mapping, model: Option<&Path>) -> Result<Profile> {
    let (c, m) = (cfg.clone(), mapping.clone());
    let raw = tokio::task::spawn_blocking(move || crate::engine::sources::read_raw(&c, &m))
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
    let views = raw
        .iter()
        .map(|r| profile_view(r, mapping))
        .collect::<Result<Vec<_>>>()?;
    // The SQL layers see the sources with every bad value as NULL: counted above, not fatal here.
    let mut lenient = cfg.clone();
    lenient.sources.strict = false;
    let volumes = ItemVolumes::load(&cfg.item_metadata)?;
    let eng = Engine::build(&lenient, mapping, &volumes).await?;
    let files = crate::engine::sqlfiles::load(&cfg.sql_dir)?;
    crate::transform::create_views(&eng.ctx, &files, &["01_map", "02_clean"], false).await?;
    let units = unit_columns(&eng.ctx).await?;
    let drift = match model {
        Some(dir) => Some(drift(&eng.ctx, dir).await?),
        None => None,
    };
    Ok(Profile {
        views,
        units,
        drift,
    })
}

fn profile_view(raw: &RawView, mapping: &Mapping) -> Result<ViewProfile> {
    let contract = crate::erp::contract_schema(&raw.view);
    let names = mapping.columns(&raw.view);
    let mut columns = Vec::new();
    for (i, (col, source_type)) in raw.source_types.iter().enumerate() {
        let want = contract
            .field_with_name(col)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Utf8);
        let mut p = profile_column(raw.batch.column(i), &want)?;
        p.column = col.clone();
        p.name = names.get(col).cloned().unwrap_or_default();
        p.source_type = source_type.clone();
        columns.push(p);
    }
    Ok(ViewProfile {
        view: raw.view.clone(),
        location: raw.location.clone(),
        rows: raw.batch.num_rows(),
        columns,
    })
}

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float64 | DataType::Float32 | DataType::Int32 | DataType::Int64
    )
}

/// One column's counts; `want` is its contract type.
fn profile_column(array: &ArrayRef, want: &DataType) -> Result<ColumnProfile> {
    let text = cast(array, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::internal("utf8 after cast"))?;
    let (mut nulls, mut blanks, mut nan_spelled) = (0, 0, 0);
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut present: Vec<Option<String>> = Vec::with_capacity(text.len());
    for r in 0..text.len() {
        if text.is_null(r) {
            nulls += 1;
            present.push(None);
            continue;
        }
        match norm_text(text.value(r)) {
            Some(v) => {
                *counts.entry(v.clone()).or_default() += 1;
                present.push(Some(v));
            }
            None => {
                if text.value(r).trim().is_empty() {
                    blanks += 1;
                } else {
                    nan_spelled += 1;
                }
                present.push(None);
            }
        }
    }
    let mut top: Vec<(String, usize)> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    let rows = text.len();
    let mut p = ColumnProfile {
        column: String::new(),
        name: String::new(),
        source_type: String::new(),
        contract_type: want.to_string(),
        nulls,
        blanks,
        nan_spelled,
        missing_share: if rows == 0 {
            0.0
        } else {
            (nulls + blanks + nan_spelled) as f64 / rows as f64
        },
        zeros: None,
        nines: None,
        distinct: counts.len(),
        top,
        min: None,
        median: None,
        max: None,
        earliest: None,
        latest: None,
        not_castable: 0,
        not_castable_examples: Vec::new(),
    };
    if *want == DataType::Utf8 {
        return Ok(p);
    }
    // The conversion the sources apply (`contract::convert`): missing spellings are NULL, a
    // value the safe cast turns into NULL does not convert.
    let cleaned: StringArray = present.iter().map(|v| v.as_deref()).collect();
    let (typed, bad) = crate::engine::sources::contract::typed_and_bad(&cleaned, want)?;
    p.not_castable = bad.len();
    p.not_castable_examples = bad
        .iter()
        .take(TOP)
        .map(|&r| format!("row {} `{}`", r + 1, text.value(r)))
        .collect();
    if is_numeric(want) {
        let f = cast(&typed, &DataType::Float64).map_err(|e| Error::internal(e.to_string()))?;
        let f = f
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .ok_or_else(|| Error::internal("f64 after cast"))?;
        let mut values: Vec<f64> = f.iter().flatten().filter(|v| v.is_finite()).collect();
        p.zeros = Some(values.iter().filter(|v| **v == 0.0).count());
        p.nines = Some(values.iter().filter(|v| **v == 9999.0).count());
        values.sort_by(f64::total_cmp);
        p.min = values.first().copied();
        p.max = values.last().copied();
        p.median = median(&values);
    } else if matches!(want, DataType::Date32 | DataType::Timestamp(..)) {
        let ints = cast(&typed, &DataType::Int64).map_err(|e| Error::internal(e.to_string()))?;
        let ints = crate::engine::i64s(&ints);
        let shown = cast(&typed, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
        let shown = crate::engine::strings(&shown);
        let valid = (0..ints.len()).filter(|&r| ints.is_valid(r));
        if let Some(r) = valid.clone().min_by_key(|&r| ints.value(r)) {
            p.earliest = Some(shown.value(r).to_string());
        }
        if let Some(r) = valid.max_by_key(|&r| (ints.value(r), std::cmp::Reverse(r))) {
            p.latest = Some(shown.value(r).to_string());
        }
    }
    Ok(p)
}

/// The median of sorted values.
fn median(sorted: &[f64]) -> Option<f64> {
    quantile(sorted, 0.5)
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// The columns of `clean_items` whose standard name says they hold a unit, each spelling of
/// the mapped view joined to its cleaned value.
async fn unit_columns(ctx: &datafusion::prelude::SessionContext) -> Result<Vec<UnitColumn>> {
    let mapped = crate::engine::view_schema(ctx, "map_items").await?;
    let clean = crate::engine::view_schema(ctx, "clean_items").await?;
    let mut out = Vec::new();
    for f in mapped.fields() {
        let name = f.name();
        if !(name.ends_with("_unit") || name.ends_with("_uom")) || clean.index_of(name).is_err() {
            continue;
        }
        let sql = format!(
            "SELECT CAST(m.{name} AS VARCHAR) AS spelling, CAST(c.{name} AS VARCHAR) AS cleaned, \
             count(*) AS n FROM map_items m JOIN clean_items c \
             ON c.item_key = item_key(m.item_cd) \
             GROUP BY 1, 2 ORDER BY n DESC, spelling NULLS FIRST, cleaned NULLS FIRST"
        );
        let b = crate::engine::collect_batch(ctx, &sql, "map_items").await?;
        let n = cast(b.column(2), &DataType::Int64).map_err(|e| Error::internal(e.to_string()))?;
        let n = crate::engine::i64s(&n);
        let (s, c) = (
            crate::engine::strings(b.column(0)),
            crate::engine::strings(b.column(1)),
        );
        let spellings = (0..b.num_rows())
            .map(|r| {
                let get = |a: &StringArray| (!a.is_null(r)).then(|| a.value(r).to_string());
                (get(s), get(c), n.value(r))
            })
            .collect();
        out.push(UnitColumn {
            name: name.clone(),
            spellings,
        });
    }
    Ok(out)
}

/// The current items cleaned with the model's own transforms against the model's training
/// items, feature by feature.
async fn drift(ctx: &datafusion::prelude::SessionContext, dir: &Path) -> Result<Drift> {
    let t = crate::apply::Transforms::load(dir)?;
    t.define_views(ctx, RowFilter::All).await?;
    let now = crate::apply::clean_items(ctx).await?;
    let then_path = dir.join(crate::model::ITEM_FEATURES_FILE);
    let then = crate::transform::load_table(&then_path)?;
    let mut columns = Vec::new();
    for f in then.schema().fields() {
        let name = f.name();
        if matches!(name.as_str(), "item_key" | "item_cd" | "item_nm") {
            continue;
        }
        let (Ok(a), Ok(b)) = (then.column_by_name(name).ok_or(()), column(&now, name)) else {
            continue;
        };
        columns.push(compare(name, a, &b)?);
    }
    Ok(Drift {
        model: dir.display().to_string(),
        items_then: then.num_rows(),
        items_now: now.num_rows(),
        columns,
    })
}

fn column(b: &RecordBatch, name: &str) -> std::result::Result<ArrayRef, ()> {
    b.column_by_name(name).cloned().ok_or(())
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

fn compare(name: &str, then: &ArrayRef, now: &ArrayRef) -> Result<ColumnDrift> {
    let missing = |a: &ArrayRef| share(a.null_count(), a.len());
    let mut d = ColumnDrift {
        name: name.to_string(),
        missing_then: missing(then),
        missing_now: missing(now),
        levels_moved: None,
        unseen_share: None,
        median_then: None,
        median_now: None,
        median_moved: None,
        flags: Vec::new(),
    };
    if is_numeric(then.data_type()) {
        let sorted = |a: &ArrayRef| -> Result<Vec<f64>> {
            let f = cast(a, &DataType::Float64).map_err(|e| Error::internal(e.to_string()))?;
            let mut v: Vec<f64> = crate::engine::f64s(&f).iter().flatten().collect();
            v.sort_by(f64::total_cmp);
            Ok(v)
        };
        let (a, b) = (sorted(then)?, sorted(now)?);
        d.median_then = median(&a);
        d.median_now = median(&b);
        if let (Some(m0), Some(m1), Some(q1), Some(q3)) = (
            d.median_then,
            d.median_now,
            quantile(&a, 0.25),
            quantile(&a, 0.75),
        ) {
            let iqr = (q3 - q1).max(1e-9);
            d.median_moved = Some((m1 - m0).abs() / iqr);
        }
    } else {
        let levels = |a: &ArrayRef| -> Result<(HashMap<String, usize>, usize)> {
            let t = cast(a, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
            let mut m: HashMap<String, usize> = HashMap::new();
            let s = crate::engine::strings(&t);
            for v in s.iter().flatten() {
                *m.entry(v.to_string()).or_default() += 1;
            }
            let n = m.values().sum();
            Ok((m, n))
        };
        let ((a, na), (b, nb)) = (levels(then)?, levels(now)?);
        if na > 0 && nb > 0 {
            let mut tv = 0.0;
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let p = share(a.get(k).copied().unwrap_or(0), na);
                let q = share(b.get(k).copied().unwrap_or(0), nb);
                tv += (p - q).abs();
            }
            d.levels_moved = Some(tv / 2.0);
            let unseen: usize = b
                .iter()
                .filter(|(k, _)| !a.contains_key(*k))
                .map(|(_, n)| n)
                .sum();
            d.unseen_share = Some(share(unseen, nb));
        }
    }
    if (d.missing_now - d.missing_then).abs() >= MISSING_MOVED {
        d.flags.push(format!(
            "missing {:.0} % -> {:.0} %",
            100.0 * d.missing_then,
            100.0 * d.missing_now
        ));
    }
    if let Some(tv) = d.levels_moved.filter(|v| *v >= LEVELS_MOVED) {
        d.flags
            .push(format!("level shares moved (total variation {tv:.2})"));
    }
    if let Some(u) = d.unseen_share.filter(|v| *v >= UNSEEN_SHARE) {
        d.flags
            .push(format!("{:.0} % of values unseen in training", 100.0 * u));
    }
    if let Some(m) = d.median_moved.filter(|v| *v >= MEDIAN_MOVED) {
        d.flags
            .push(format!("median moved by {m:.2} training IQRs"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn missing_spellings_sentinels_and_bad_values_are_counted_apart() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("12.5"),
            None,
            Some(""),
            Some("\u{3000}"),
            Some("NaN"),
            Some("0"),
            Some("9999"),
            Some("12,5"),
            Some(" 12.5 "),
        ]));
        let p = profile_column(&a, &DataType::Float64).unwrap();
        assert_eq!((p.nulls, p.blanks, p.nan_spelled), (1, 2, 1));
        assert_eq!((p.zeros, p.nines), (Some(1), Some(1)));
        assert_eq!(p.not_castable, 1);
        assert_eq!(p.not_castable_examples, vec!["row 8 `12,5`".to_string()]);
        assert_eq!(p.distinct, 4);
        assert_eq!(p.top[0], ("12.5".to_string(), 2));
        assert_eq!(
            (p.min, p.median, p.max),
            (Some(0.0), Some(12.5), Some(9999.0))
        );
        assert!((p.missing_share - 4.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn drift_flags_moved_missing_shares_new_levels_and_shifted_medians() {
        let then: ArrayRef = Arc::new(StringArray::from(vec![Some("A"); 10]));
        let mut v = vec![Some("B"); 5];
        v.extend(vec![None; 5]);
        let now: ArrayRef = Arc::new(StringArray::from(v));
        let d = compare("c", &then, &now).unwrap();
        assert_eq!(d.levels_moved, Some(1.0));
        assert_eq!(d.unseen_share, Some(1.0));
        assert_eq!(d.flags.len(), 3, "{:?}", d.flags);
        let then: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let now: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let d = compare("x", &then, &now).unwrap();
        assert!(d.flags.is_empty(), "{:?}", d.flags);
        let now: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![4.0, 5.0, 6.0]));
        let d = compare("x", &then, &now).unwrap();
        assert_eq!(d.median_moved, Some(2.5 / 1.5));
        assert_eq!(
            d.flags,
            vec!["median moved by 1.67 training IQRs".to_string()]
        );
    }
}
