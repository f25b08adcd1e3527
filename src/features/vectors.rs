//! The Rust tail: long-format encoded features -> weighted, L2-normalised f32 vectors.
//!
//! The SQL encode layer ends in `encoded_features(item_key, feature, dim, value)`. It is streamed
//! batch by batch (never materialised: at 325k items it has ~25M rows) into [`Encoded`]: the
//! non-zero values as (item, dim id, f32) triplets in buckets of 2^16 items, dim names interned.
//! [`Encoded::into_matrix`] scatters them, a bucket at a time, into one dense row-major matrix
//! of raw values; the layout is fitted on it at training time (dimensions sorted by name;
//! dimensions with zero weighted variance over the training items are dropped, since they
//! cannot separate items); then, in place and row by row, each value is multiplied by its
//! feature's domain weight, the row is compacted to the layout, L2-normalised in f64 and stored
//! as f32. Items are the rows of `clean_items` in item_key order; the row index is the HNSW
//! label.
//!
//! Determinism: every (item, dim) cell is written once (a repeated pair is an error), and all
//! sums run over the matrix in row order, so the result does not depend on the order in which
//! the SQL engine emits rows.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use ndarray::Array2;

use crate::engine::{column_as, f64s, strings};
use crate::error::{Error, Result};

const WHAT: &str = "sql/03_encode/40_encoded_features.sql";

/// FxHash (rustc's hasher): one rotate, xor and multiply per 8 bytes. Item keys and dim names
/// are looked up once per row of `encoded_features` (~25M rows at 325k items); with std's
/// SipHash those lookups were a tenth of the stream's time. Not resistant to chosen collisions,
/// which does not matter for keys our own SQL produces.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// item_key -> row (the HNSW label), for [`Encoded::push`].
pub struct ItemIndex {
    keys: Vec<String>,
    rows: FxMap<String, u32>,
}

impl ItemIndex {
    /// The index of items in row order.
    pub fn new(keys: &[String]) -> Self {
        ItemIndex {
            keys: keys.to_vec(),
            rows: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i as u32))
                .collect(),
        }
    }

    /// The row of `key`, trying the row after `last` and `last` itself first: the encode views
    /// emit each feature's rows in item order (one item's target rows together), so nearly every
    /// row is found there without a hash-table probe, which at 325k items costs cache misses
    /// (table, key, then the key's bytes).
    #[inline]
    fn row(&self, key: &str, last: Option<u32>) -> Option<u32> {
        if let Some(l) = last {
            let next = l as usize + 1;
            if self.keys.get(next).is_some_and(|k| k == key) {
                return Some(next as u32);
            }
            if self.keys[l as usize] == key {
                return Some(l);
            }
        }
        self.rows.get(key).copied()
    }
}

/// The fitted vector layout.
#[derive(Debug, Clone)]
pub struct Dims {
    pub names: Vec<String>,
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    /// Weighted variance over the training items before weighting (for the record).
    pub variances: Vec<f64>,
}

/// Items per bucket of triplets: 2^16, so an item is stored as its offset in the bucket (u16).
const BUCKET_BITS: u32 = 16;

/// The triplets of the items `b·2^16 .. (b+1)·2^16`.
#[derive(Default)]
struct Bucket {
    /// Item row minus the bucket's first row.
    item: Vec<u16>,
    dim: Vec<u16>,
    value: Vec<f32>,
}

/// Encoded features collected from the stream: non-zero values as triplets of 8 bytes (item
/// offset, dim id, f32), in buckets of 2^16 items. [`Encoded::into_matrix`] scatters one bucket
/// at a time and frees it before the next, so the matrix (filled one band of rows at a time)
/// and the triplets are never both held whole: holding both would be the memory peak of the
/// run.
pub struct Encoded {
    n_items: usize,
    buckets: Vec<Bucket>,
    /// Dim id -> dim name.
    pub dim_names: Vec<String>,
    /// Dim id -> feature (the weight key).
    pub dim_features: Vec<String>,
    ids: FxMap<String, u16>,
}

/// Raw encoded values, n × (all dims seen), row-major; dim ids index the columns.
pub struct RawMatrix {
    pub n: usize,
    pub width: usize,
    pub values: Vec<f32>,
    pub dim_names: Vec<String>,
    pub dim_features: Vec<String>,
}

impl Encoded {
    pub fn new(n_items: usize) -> Encoded {
        Encoded {
            n_items,
            buckets: (0..n_items.div_ceil(1 << BUCKET_BITS))
                .map(|_| Bucket::default())
                .collect(),
            dim_names: Vec::new(),
            dim_features: Vec::new(),
            ids: FxMap::default(),
        }
    }

    /// Adds one batch of `encoded_features`; `items` maps item_key to row.
    pub fn push(&mut self, b: &RecordBatch, items: &ItemIndex) -> Result<()> {
        let k = column_as(b, "item_key", &DataType::Utf8, WHAT)?;
        let f = column_as(b, "feature", &DataType::Utf8, WHAT)?;
        let d = column_as(b, "dim", &DataType::Utf8, WHAT)?;
        let v = column_as(b, "value", &DataType::Float64, WHAT)?;
        let (k, f, d, v) = (strings(&k), strings(&f), strings(&d), f64s(&v));
        let mut last: Option<(usize, u16)> = None;
        let mut last_row: Option<u32> = None;
        for r in 0..b.num_rows() {
            if k.is_null(r) || f.is_null(r) || d.is_null(r) {
                return Err(Error::sql(
                    WHAT,
                    "item_key, feature and dim must not be NULL (a row has one NULL)",
                ));
            }
            if v.is_null(r) || !v.value(r).is_finite() {
                return Err(Error::sql(
                    WHAT,
                    format!(
                        "value of dim `{}` for item `{}` is NULL or not finite: every dimension needs a number",
                        d.value(r),
                        k.value(r)
                    ),
                ));
            }
            let x = v.value(r) as f32;
            if x == 0.0 {
                continue;
            }
            let Some(row) = items.row(k.value(r), last_row) else {
                return Err(Error::sql(
                    WHAT,
                    format!("item_key `{}` is not in clean_items", k.value(r)),
                ));
            };
            // Rows come grouped by dim in practice: remember the last lookup.
            let id = match last {
                Some((lr, id)) if d.value(lr) == d.value(r) => id,
                _ => self.intern(d.value(r), f.value(r))?,
            };
            last = Some((r, id));
            last_row = Some(row);
            let b = &mut self.buckets[(row >> BUCKET_BITS) as usize];
            b.item.push(row as u16);
            b.dim.push(id);
            b.value.push(x);
        }
        Ok(())
    }

    fn intern(&mut self, dim: &str, feature: &str) -> Result<u16> {
        if let Some(&id) = self.ids.get(dim) {
            return Ok(id);
        }
        let id = u16::try_from(self.dim_names.len()).map_err(|_| {
            Error::sql(
                WHAT,
                "more than 65,535 distinct dims: lower encoding.onehot_max_levels",
            )
        })?;
        self.ids.insert(dim.to_string(), id);
        self.dim_names.push(dim.to_string());
        self.dim_features.push(feature.to_string());
        Ok(id)
    }

    /// Scatters the values of `parts` (encoded from disjoint sets of rows) into one dense matrix;
    /// a dim keeps one column however many parts name it. A repeated (item, dim) pair is an
    /// error: the SQL must emit each cell once.
    pub fn into_matrix(mut parts: Vec<Encoded>, items: &[String]) -> Result<RawMatrix> {
        let n_items = items.len();
        // Column per dim name, first seen first (the layout is sorted by name later anyway).
        let mut names: Vec<String> = Vec::new();
        let mut features: Vec<String> = Vec::new();
        let mut column: HashMap<String, usize> = HashMap::new();
        let remaps: Vec<Vec<usize>> = parts
            .iter()
            .map(|p| {
                p.dim_names
                    .iter()
                    .zip(&p.dim_features)
                    .map(|(d, f)| {
                        *column.entry(d.clone()).or_insert_with(|| {
                            names.push(d.clone());
                            features.push(f.clone());
                            names.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        let width = names.len();
        // Zeroed pages from the OS: a band of rows takes memory when its bucket is scattered.
        let mut values = vec![0f32; n_items * width];
        for b in 0..n_items.div_ceil(1 << BUCKET_BITS) {
            let first = b << BUCKET_BITS;
            for (part, remap) in parts.iter_mut().zip(&remaps) {
                debug_assert_eq!(part.n_items, n_items);
                let bucket = std::mem::take(&mut part.buckets[b]);
                for ((&i, &d), &x) in bucket.item.iter().zip(&bucket.dim).zip(&bucket.value) {
                    let (i, d) = (first + i as usize, remap[d as usize]);
                    let cell = &mut values[i * width + d];
                    if *cell != 0.0 {
                        return Err(Error::sql(
                            WHAT,
                            format!(
                                "item `{}` has dim `{}` more than once: each (item_key, dim) must be one row",
                                items[i], names[d]
                            ),
                        ));
                    }
                    *cell = x;
                }
            }
            // The bucket's triplets are dropped: hand their memory back before the next band.
            crate::memory::release_free_memory();
        }
        Ok(RawMatrix {
            n: n_items,
            width,
            values,
            dim_names: names,
            dim_features: features,
        })
    }
}

impl RawMatrix {
    /// Fits the layout: all dims seen, sorted by name; zero-variance dims (weighted by
    /// `sample_weight`, absent cells counting as 0) dropped; weights from the config (features
    /// without a configured weight get 1.0 and are reported). Returns (dims, dropped, defaulted).
    pub fn fit_dims(
        &self,
        sample_weight: &[f64],
        weight_of: impl Fn(&str) -> Option<f64>,
    ) -> (Dims, Vec<String>, Vec<String>) {
        let w = self.width;
        let tw: f64 = sample_weight.iter().sum();
        let mut s1 = vec![0.0f64; w];
        let mut s2 = vec![0.0f64; w];
        for (i, row) in self.values.chunks_exact(w.max(1)).enumerate() {
            let sw = sample_weight.get(i).copied().unwrap_or(0.0);
            for (j, &x) in row.iter().enumerate() {
                let x = x as f64;
                s1[j] += sw * x;
                s2[j] += sw * x * x;
            }
        }
        let mut by_name: Vec<usize> = (0..w).collect();
        by_name.sort_by(|a, b| self.dim_names[*a].cmp(&self.dim_names[*b]));
        let mut dims = Dims {
            names: Vec::new(),
            features: Vec::new(),
            weights: Vec::new(),
            variances: Vec::new(),
        };
        let mut dropped = Vec::new();
        let mut defaulted: Vec<String> = Vec::new();
        for j in by_name {
            let (d, f) = (&self.dim_names[j], &self.dim_features[j]);
            let mean = s1[j] / tw;
            let var = (s2[j] / tw - mean * mean).max(0.0);
            if var <= 1e-12 {
                dropped.push(d.clone());
                continue;
            }
            let wt = match weight_of(f) {
                Some(wt) => wt,
                None => {
                    if !defaulted.contains(f) {
                        defaulted.push(f.clone());
                    }
                    1.0
                }
            };
            dims.names.push(d.clone());
            dims.features.push(f.clone());
            dims.weights.push(wt);
            dims.variances.push(var);
        }
        (dims, dropped, defaulted)
    }

    /// The n × D vectors of `dims`, row-major: value · weight, L2-normalised per row (in f64,
    /// summed in column order), stored as f32. Built in place in this matrix's buffer (each
    /// output row starts at or before its input row). A dim of the layout that this data never
    /// produced is 0; rows whose weighted vector is all zero stay zero (reported by the caller).
    pub fn into_vectors(self, dims: &Dims) -> Array2<f32> {
        let col_of: HashMap<&str, usize> = self
            .dim_names
            .iter()
            .enumerate()
            .map(|(j, d)| (d.as_str(), j))
            .collect();
        let src: Vec<Option<usize>> = dims
            .names
            .iter()
            .map(|d| col_of.get(d.as_str()).copied())
            .collect();
        let (n, width, d) = (self.n, self.width, dims.names.len());
        // In place when each output row starts at or before its input row (d <= width);
        // otherwise (vectorising data that produced fewer dims than the layout) a new buffer.
        let mut values = self.values;
        let mut wider = (d > width).then(|| vec![0f32; n * d]);
        let mut inp = vec![0f32; width];
        let mut row = vec![0f64; d];
        for i in 0..n {
            inp.copy_from_slice(&values[i * width..(i + 1) * width]);
            for (c, s) in src.iter().enumerate() {
                row[c] = s.map_or(0.0, |j| inp[j] as f64 * dims.weights[c]);
            }
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            let out = match wider.as_mut() {
                Some(buf) => &mut buf[i * d..(i + 1) * d],
                None => &mut values[i * d..(i + 1) * d],
            };
            for (o, x) in out.iter_mut().zip(&row) {
                *o = if norm > 0.0 { (x / norm) as f32 } else { 0.0 };
            }
        }
        if let Some(buf) = wider {
            values = buf;
        }
        values.truncate(n * d);
        values.shrink_to_fit();
        Array2::from_shape_vec((n, d), values).expect("n x d values")
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::Encoded;

    type Row<'a> = (&'a str, &'a str, &'a str, f64);

    fn batch(rows: &[Row]) -> RecordBatch {
        let s = |f: for<'r> fn(&'r Row<'r>) -> &'r str| {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("dim", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let v = Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>());
        RecordBatch::try_new(
            schema,
            vec![s(|r| r.0), s(|r| r.1), s(|r| r.2), Arc::new(v)],
        )
        .unwrap()
    }

    /// Rows are found after the last one, at it, or through the hash table, whatever the order.
    #[test]
    fn item_index_finds_every_key_from_any_last_row() {
        let keys: Vec<String> = ["A", "B", "C"].map(String::from).to_vec();
        let index = super::ItemIndex::new(&keys);
        for last in [None, Some(0), Some(1), Some(2)] {
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(index.row(k, last), Some(i as u32), "{k} after {last:?}");
            }
            assert_eq!(index.row("Z", last), None);
        }
    }

    /// Parts encoded separately (one per union branch) give the same matrix in any order, a dim
    /// named by two parts is one column, and a cell given by two parts is an error.
    #[test]
    fn parts_merge_into_one_matrix() {
        let items: Vec<String> = vec!["A".into(), "B".into()];
        let index = super::ItemIndex::new(&items);
        let part = |rows: &[Row]| {
            let mut e = Encoded::new(2);
            e.push(&batch(rows), &index).unwrap();
            e
        };
        let p1 = [("A", "f", "f=x", 1.0), ("B", "g", "g", 2.5)];
        let p2 = [("B", "f", "f=x", 1.0), ("A", "h", "h", -1.0)];
        let m = Encoded::into_matrix(vec![part(&p1), part(&p2)], &items).unwrap();
        assert_eq!(m.width, 3);
        let cell = |m: &super::RawMatrix, i: usize, d: &str| {
            let j = m.dim_names.iter().position(|n| n == d).unwrap();
            m.values[i * m.width + j]
        };
        let r = Encoded::into_matrix(vec![part(&p2), part(&p1)], &items).unwrap();
        for d in ["f=x", "g", "h"] {
            for i in 0..2 {
                assert_eq!(cell(&m, i, d), cell(&r, i, d), "{d} of item {i}");
            }
        }
        assert_eq!(cell(&m, 0, "f=x"), 1.0);
        assert_eq!(cell(&m, 1, "f=x"), 1.0);
        assert_eq!(cell(&m, 1, "g"), 2.5);
        assert_eq!(cell(&m, 0, "h"), -1.0);
        assert_eq!(cell(&m, 0, "g"), 0.0);
        let again = [("A", "f", "f=x", 3.0)];
        let twice = Encoded::into_matrix(vec![part(&p1), part(&again)], &items);
        let err = twice
            .err()
            .expect("a repeated cell is an error")
            .to_string();
        assert!(
            err.contains("item `A` has dim `f=x` more than once"),
            "{err}"
        );
    }
}
