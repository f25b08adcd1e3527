//! The Rust tail: long-format encoded features -> weighted, L2-normalised f32 vectors.
//!
//! The SQL encode layer ends in `encoded_features(item_key, feature, dim, value)`. Here the
//! dimensions are fixed at training time (sorted by name; dimensions with zero weighted variance
//! over the training items are dropped, since they cannot separate items), each value is
//! multiplied by its feature's domain weight, and each row is L2-normalised in f64 and stored as
//! f32. Items are the rows of `clean_items` in item_key order; the row index is the HNSW label.

use std::collections::HashMap;
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

/// Encoded features in long form: the row index of each item and an interned dim id per row
/// (16 bytes a row instead of two strings: at 325k items this table has ~13M rows).
pub struct Long {
    pub item: Vec<u32>,
    pub dim: Vec<u32>,
    pub value: Vec<f64>,
    /// Dim id -> dim name.
    pub dim_names: Vec<String>,
    /// Dim id -> feature (the weight key).
    pub dim_features: Vec<String>,
}

/// Reads `encoded_features` batches and maps item keys to row indices of `items`.
pub fn read_long(batches: &[RecordBatch], items: &HashMap<String, u32>) -> Result<Long> {
    let what = "sql/03_encode/40_encoded_features.sql";
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut out = Long {
        item: Vec::with_capacity(rows),
        dim: Vec::with_capacity(rows),
        value: Vec::with_capacity(rows),
        dim_names: Vec::new(),
        dim_features: Vec::new(),
    };
    let mut ids: HashMap<String, u32> = HashMap::new();
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
            let id = match ids.get(d.value(r)) {
                Some(&id) => id,
                None => {
                    let id = out.dim_names.len() as u32;
                    ids.insert(d.value(r).to_string(), id);
                    out.dim_names.push(d.value(r).to_string());
                    out.dim_features.push(f.value(r).to_string());
                    id
                }
            };
            out.item.push(row);
            out.dim.push(id);
            out.value.push(v.value(r));
        }
    }
    Ok(out)
}

/// Fits the layout: all dims seen, sorted by name; zero-variance dims dropped; weights from the
/// config (features without a configured weight get 1.0 and are reported).
pub fn fit_dims(
    long: &Long,
    sample_weight: &[f64],
    weight_of: impl Fn(&str) -> Option<f64>,
) -> (Dims, Vec<String>, Vec<String>) {
    let nd = long.dim_names.len();
    // Weighted mean and variance per dim, counting absent (item, dim) pairs as 0, summed in
    // (dim, item) order whatever order the SQL emitted the rows in.
    let tw: f64 = sample_weight.iter().sum();
    let mut s1 = vec![0.0f64; nd];
    let mut s2 = vec![0.0f64; nd];
    let mut order: Vec<(u32, u32, u32)> = (0..long.item.len())
        .map(|r| (long.dim[r], long.item[r], r as u32))
        .collect();
    order.sort_unstable();
    for &(j, it, r) in &order {
        let v = long.value[r as usize];
        let w = sample_weight.get(it as usize).copied().unwrap_or(0.0);
        s1[j as usize] += w * v;
        s2[j as usize] += w * v * v;
    }
    drop(order);
    let mut by_name: Vec<usize> = (0..nd).collect();
    by_name.sort_by(|a, b| long.dim_names[*a].cmp(&long.dim_names[*b]));
    let mut dims = Dims {
        names: Vec::new(),
        features: Vec::new(),
        weights: Vec::new(),
        variances: Vec::new(),
    };
    let mut dropped = Vec::new();
    let mut defaulted: Vec<String> = Vec::new();
    for j in by_name {
        let (d, f) = (&long.dim_names[j], &long.dim_features[j]);
        let mean = s1[j] / tw;
        let var = (s2[j] / tw - mean * mean).max(0.0);
        if var <= 1e-12 {
            dropped.push(d.clone());
            continue;
        }
        let w = match weight_of(f) {
            Some(w) => w,
            None => {
                if !defaulted.contains(f) {
                    defaulted.push(f.clone());
                }
                1.0
            }
        };
        dims.names.push(d.clone());
        dims.features.push(f.clone());
        dims.weights.push(w);
        dims.variances.push(var);
    }
    (dims, dropped, defaulted)
}

/// Builds the n × D matrix: value · weight, L2-normalised per row (in f64, summed in column
/// order), stored as f32. Works row by row, so no dense f64 copy of the matrix is held. Rows whose
/// weighted vector is all zero stay zero (reported by the caller).
pub fn build(long: &Long, n_items: usize, dims: &Dims) -> Array2<f32> {
    let col_of_name: HashMap<&str, usize> = dims
        .names
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    // Dim id -> column (or none: a dim dropped at fit time, or unseen then).
    let col: Vec<Option<u32>> = long
        .dim_names
        .iter()
        .map(|d| col_of_name.get(d.as_str()).map(|&c| c as u32))
        .collect();
    let mut entries: Vec<(u32, u32, u32)> = (0..long.item.len())
        .filter_map(|r| col[long.dim[r] as usize].map(|c| (long.item[r], c, r as u32)))
        .collect();
    entries.sort_unstable();
    let nd = dims.names.len();
    let mut out = Array2::<f32>::zeros((n_items, nd));
    let mut row = vec![0.0f64; nd];
    let mut k = 0;
    for i in 0..n_items as u32 {
        row.iter_mut().for_each(|x| *x = 0.0);
        while k < entries.len() && entries[k].0 == i {
            let (_, c, r) = entries[k];
            row[c as usize] += long.value[r as usize] * dims.weights[c as usize];
            k += 1;
        }
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            let mut o = out.row_mut(i as usize);
            for (j, x) in row.iter().enumerate() {
                o[j] = (x / norm) as f32;
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
