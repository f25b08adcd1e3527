//! The Rust tail: long-format encoded features -> weighted, L2-normalised f32 vectors.
//!
//! The SQL encode layer ends in `encoded_features(item_key, feature, dim, value)`. Here the
//! dimensions are fixed at training time (sorted by name; dimensions with zero weighted variance
//! over the training items are dropped, since they cannot separate items), each value is
//! multiplied by its feature's domain weight, and each row is L2-normalised in f64 and stored as
//! f32. Items are the rows of `clean_items` in item_key order; the row index is the HNSW label.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use ndarray::Array2;

use crate::engine::{column_as, f64s, strings};
use crate::error::{Error, Result};

/// The fitted vector layout.
#[derive(Debug, Clone)]
pub struct Dims {
    pub names: Vec<String>,
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    /// Weighted variance over the training items before weighting (for the record).
    pub variances: Vec<f64>,
}

/// Encoded features in long form, with the row index of each item resolved.
pub struct Long {
    pub item: Vec<u32>,
    pub feature: Vec<String>,
    pub dim: Vec<String>,
    pub value: Vec<f64>,
}

/// Reads `encoded_features` batches and maps item keys to row indices of `items`.
pub fn read_long(batches: &[RecordBatch], items: &HashMap<String, u32>) -> Result<Long> {
    let what = "sql/03_encode/40_encoded_features.sql";
    let mut out = Long {
        item: Vec::new(),
        feature: Vec::new(),
        dim: Vec::new(),
        value: Vec::new(),
    };
    for b in batches {
        let k = column_as(b, "item_key", &DataType::Utf8, what)?;
        let f = column_as(b, "feature", &DataType::Utf8, what)?;
        let d = column_as(b, "dim", &DataType::Utf8, what)?;
        let v = column_as(b, "value", &DataType::Float64, what)?;
        let (k, f, d, v) = (strings(&k), strings(&f), strings(&d), f64s(&v));
        for r in 0..b.num_rows() {
            if k.is_null(r) || f.is_null(r) || d.is_null(r) {
                return Err(Error::sql(
                    what,
                    format!("row {r}: item_key, feature and dim must not be NULL"),
                ));
            }
            let Some(&row) = items.get(k.value(r)) else {
                return Err(Error::sql(
                    what,
                    format!("item_key `{}` is not in clean_items", k.value(r)),
                ));
            };
            if v.is_null(r) || !v.value(r).is_finite() {
                return Err(Error::sql(
                    what,
                    format!(
                        "value of dim `{}` for item `{}` is NULL or not finite: every dimension needs a number",
                        d.value(r),
                        k.value(r)
                    ),
                ));
            }
            out.item.push(row);
            out.feature.push(f.value(r).to_string());
            out.dim.push(d.value(r).to_string());
            out.value.push(v.value(r));
        }
    }
    Ok(out)
}

/// Fits the layout: all dims seen, sorted; zero-variance dims dropped; weights from the config
/// (features without a configured weight get 1.0 and are reported).
pub fn fit_dims(
    long: &Long,
    n_items: usize,
    sample_weight: &[f64],
    weight_of: impl Fn(&str) -> Option<f64>,
) -> (Dims, Vec<String>, Vec<String>) {
    let mut feature_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (d, f) in long.dim.iter().zip(&long.feature) {
        feature_of.entry(d.as_str()).or_insert(f.as_str());
    }
    let index: HashMap<&str, usize> = feature_of
        .keys()
        .enumerate()
        .map(|(i, d)| (*d, i))
        .collect();
    let nd = feature_of.len();
    // Weighted mean and variance per dim, counting absent (item, dim) pairs as 0.
    let tw: f64 = sample_weight.iter().sum();
    let mut s1 = vec![0.0f64; nd];
    let mut s2 = vec![0.0f64; nd];
    // Sum in (dim, item) order, whatever order the SQL emitted the rows in.
    let mut order: Vec<(usize, u32, usize)> = long
        .dim
        .iter()
        .zip(&long.item)
        .enumerate()
        .map(|(r, (d, &it))| (index[d.as_str()], it, r))
        .collect();
    order.sort_unstable();
    for &(j, it, r) in &order {
        let v = long.value[r];
        let w = sample_weight.get(it as usize).copied().unwrap_or(0.0);
        s1[j] += w * v;
        s2[j] += w * v * v;
    }
    let _ = n_items;
    let mut dims = Dims {
        names: Vec::new(),
        features: Vec::new(),
        weights: Vec::new(),
        variances: Vec::new(),
    };
    let mut dropped = Vec::new();
    let mut defaulted = Vec::new();
    for (j, (d, f)) in feature_of.iter().enumerate() {
        let mean = s1[j] / tw;
        let var = (s2[j] / tw - mean * mean).max(0.0);
        if var <= 1e-12 {
            dropped.push(d.to_string());
            continue;
        }
        let w = match weight_of(f) {
            Some(w) => w,
            None => {
                if !defaulted.iter().any(|x: &String| x == f) {
                    defaulted.push(f.to_string());
                }
                1.0
            }
        };
        dims.names.push(d.to_string());
        dims.features.push(f.to_string());
        dims.weights.push(w);
        dims.variances.push(var);
    }
    (dims, dropped, defaulted)
}

/// Builds the n × D matrix: value · weight, L2-normalised per row (f64), stored as f32.
/// Rows whose weighted vector is all zero stay zero (reported by the caller).
pub fn build(long: &Long, n_items: usize, dims: &Dims) -> Array2<f32> {
    let index: HashMap<&str, usize> = dims
        .names
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let nd = dims.names.len();
    let mut m = Array2::<f64>::zeros((n_items, nd));
    for ((&it, d), &v) in long.item.iter().zip(&long.dim).zip(&long.value) {
        if let Some(&j) = index.get(d.as_str()) {
            m[[it as usize, j]] += v * dims.weights[j];
        }
    }
    let mut out = Array2::<f32>::zeros((n_items, nd));
    for (i, row) in m.outer_iter().enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (j, x) in row.iter().enumerate() {
                out[[i, j]] = (x / norm) as f32;
            }
        }
    }
    out
}

impl Dims {
    pub fn to_batch(&self) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("dim", DataType::Utf8, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("weight", DataType::Float64, false),
            Field::new("variance", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(self.names.clone())),
                Arc::new(StringArray::from(self.features.clone())),
                Arc::new(Float64Array::from(self.weights.clone())),
                Arc::new(Float64Array::from(self.variances.clone())),
            ],
        )
        .expect("dims schema")
    }

    pub fn from_batch(b: &RecordBatch) -> Result<Dims> {
        let what = "fitted/dims.parquet";
        let d = column_as(b, "dim", &DataType::Utf8, what)?;
        let f = column_as(b, "feature", &DataType::Utf8, what)?;
        let w = column_as(b, "weight", &DataType::Float64, what)?;
        let v = column_as(b, "variance", &DataType::Float64, what)?;
        Ok(Dims {
            names: strings(&d)
                .iter()
                .map(|x| x.unwrap_or_default().to_string())
                .collect(),
            features: strings(&f)
                .iter()
                .map(|x| x.unwrap_or_default().to_string())
                .collect(),
            weights: f64s(&w).values().to_vec(),
            variances: f64s(&v).values().to_vec(),
        })
    }
}
