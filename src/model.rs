//! A trained model directory (`models/`): its file names, its format version, and reading back
//! what `update` and `recommend` need (metadata, items, routings, cleaned attributes, index,
//! vector layout).
//!
//! Everything read here is untrusted input: a file that is missing, truncated or from another
//! format version gives an error naming the file and saying what to do (retrain), never a panic.
//! Stage 3 reads the same files; `docs/stage3.md` is the contract, and
//! [`MODEL_FORMAT_VERSION`] changes whenever a file, column or meaning it describes changes in a
//! way an existing reader would get wrong (a new optional column does not change it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::{
    Array, BooleanArray, Float32Array, Float64Array, StringArray, UInt8Array, UInt64Array,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::features::vectors::Dims;
use crate::index::{Hnsw, hnswlib_file};
use crate::transform;

/// The version of the model directory's layout (see the module docs and `docs/stage3.md`).
pub const MODEL_FORMAT_VERSION: u64 = 7;

pub const METADATA_FILE: &str = "training_metadata.json";
pub const QUEUE_FILE: &str = "retrain_queue.csv";
pub const INDEX_FILE: &str = "hnsw_index.bin";
pub const SIDECAR_FILE: &str = "hnsw_index.json";
pub const ITEMS_FILE: &str = "items.parquet";
pub const VECTORS_FILE: &str = "vectors.npy";
pub const PROJECTOR_DIR: &str = "tb_projector";
pub const FITTED_DIR: &str = "fitted";
pub use crate::train::{ITEM_FEATURES_FILE, MAPPING_COPY, ROUTINGS_FILE, SQL_COPY_DIR};

fn input(path: &Path, msg: impl Into<String>) -> Error {
    Error::input(path.display().to_string(), msg)
}

/// `training_metadata.json`, checked for this trainer's format version.
pub fn read_metadata(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(METADATA_FILE);
    if !dir.is_dir() {
        return Err(input(
            dir,
            "no model directory here; train one with `trainer run` (or pass --model DIR)",
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        input(
            &path,
            format!("cannot read the model's metadata: {e}; retrain with `trainer run`"),
        )
    })?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        input(
            &path,
            format!("not valid JSON: {e}; retrain with `trainer run`"),
        )
    })?;
    match meta.get("model_format_version").and_then(|v| v.as_u64()) {
        Some(MODEL_FORMAT_VERSION) => Ok(meta),
        Some(v) => Err(input(
            &path,
            format!(
                "model format version {v}, this trainer reads version {MODEL_FORMAT_VERSION}; \
                 retrain with this trainer (`trainer run`)"
            ),
        )),
        None => Err(input(
            &path,
            format!(
                "no `model_format_version`: the model was written by an older trainer; \
                 retrain with this one (`trainer run`) to get format version {MODEL_FORMAT_VERSION}"
            ),
        )),
    }
}

fn meta_f64(meta: &serde_json::Value, path: &Path, key: &str) -> Result<f64> {
    meta.pointer(key)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| input(path, format!("`{key}` is missing or not a number")))
}

fn meta_usize(meta: &serde_json::Value, path: &Path, key: &str) -> Result<usize> {
    meta.pointer(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| input(path, format!("`{key}` is missing or not a whole number")))
}

/// `items.parquet`, one entry per label.
#[derive(Debug, Clone, Default)]
pub struct Items {
    pub item_cd: Vec<String>,
    pub item_key: Vec<String>,
    pub part_nm: Vec<Option<String>>,
    pub seal_type: Vec<Option<String>>,
    pub item_weight: Vec<f64>,
    pub nearest_label: Vec<Option<u64>>,
    pub nearest_similarity: Vec<f32>,
    /// The agreement and confidence of each item's answer, and the radius of the routed
    /// neighbours it counted (see [`crate::export::items::ItemRow`]).
    pub agreement: Vec<Option<u8>>,
    pub confidence: Vec<Option<f32>>,
    pub radius: Vec<Option<f32>>,
    pub tier: Vec<String>,
    pub has_routing: Vec<bool>,
}

fn col<'a, T: 'static>(
    b: &'a RecordBatch,
    name: &str,
    ty: &DataType,
    path: &Path,
) -> Result<&'a T> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| input(path, format!("column `{name}` is missing; retrain")))?;
    if c.data_type() != ty {
        return Err(input(
            path,
            format!(
                "column `{name}` is {}, expected {ty}; retrain",
                c.data_type()
            ),
        ));
    }
    c.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| input(path, format!("column `{name}` has an unexpected layout")))
}

fn opt_strings(a: &StringArray) -> Vec<Option<String>> {
    a.iter().map(|x| x.map(str::to_string)).collect()
}

fn req_strings(a: &StringArray, name: &str, path: &Path) -> Result<Vec<String>> {
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            x.map(str::to_string)
                .ok_or_else(|| input(path, format!("row {i}: `{name}` is empty")))
        })
        .collect()
}

impl Items {
    pub fn load(path: &Path) -> Result<Items> {
        let b = transform::load_table(path)?;
        let label = col::<UInt64Array>(&b, "label", &DataType::UInt64, path)?;
        if label.null_count() > 0
            || label
                .values()
                .iter()
                .enumerate()
                .any(|(i, &l)| l != i as u64)
        {
            return Err(input(
                path,
                "`label` must be the row number 0..N-1; retrain",
            ));
        }
        let nl = col::<UInt64Array>(&b, "nearest_other_label", &DataType::UInt64, path)?;
        let n = b.num_rows();
        if let Some(bad) = nl.iter().flatten().find(|&l| l as usize >= n) {
            return Err(input(
                path,
                format!("nearest_other_label {bad} is not a label (N = {n}); retrain"),
            ));
        }
        Ok(Items {
            item_cd: req_strings(
                col::<StringArray>(&b, "ITEM_CD", &DataType::Utf8, path)?,
                "ITEM_CD",
                path,
            )?,
            item_key: req_strings(
                col::<StringArray>(&b, "item_key", &DataType::Utf8, path)?,
                "item_key",
                path,
            )?,
            part_nm: opt_strings(col::<StringArray>(&b, "PartNm", &DataType::Utf8, path)?),
            seal_type: opt_strings(col::<StringArray>(&b, "SealType", &DataType::Utf8, path)?),
            item_weight: col::<Float64Array>(&b, "item_weight", &DataType::Float64, path)?
                .values()
                .to_vec(),
            nearest_label: nl.iter().collect(),
            nearest_similarity: col::<Float32Array>(
                &b,
                "nearest_other_similarity",
                &DataType::Float32,
                path,
            )?
            .values()
            .to_vec(),
            agreement: col::<UInt8Array>(&b, "agreement", &DataType::UInt8, path)?
                .iter()
                .collect(),
            confidence: col::<Float32Array>(&b, "confidence", &DataType::Float32, path)?
                .iter()
                .collect(),
            radius: col::<Float32Array>(&b, "agreement_radius", &DataType::Float32, path)?
                .iter()
                .collect(),
            tier: req_strings(
                col::<StringArray>(&b, "similarity_tier", &DataType::Utf8, path)?,
                "similarity_tier",
                path,
            )?,
            has_routing: col::<BooleanArray>(&b, "has_routing", &DataType::Boolean, path)?
                .iter()
                .map(|x| x.unwrap_or(false))
                .collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.item_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.item_key.is_empty()
    }

    /// item_key -> label.
    pub fn by_key(&self) -> HashMap<&str, u32> {
        self.item_key
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i as u32))
            .collect()
    }
}

/// A table saved sorted by `item_key` (`routings.parquet`, `item_features.parquet`), with the
/// row range of each key found by binary search instead of a hash map built at load time.
pub struct ByKey {
    pub batch: RecordBatch,
    keys: StringArray,
    pub path: PathBuf,
}

impl ByKey {
    pub fn load(path: &Path) -> Result<ByKey> {
        Self::of_batch(transform::load_table(path)?, path)
    }

    fn of_batch(batch: RecordBatch, path: &Path) -> Result<ByKey> {
        let keys = col::<StringArray>(&batch, "item_key", &DataType::Utf8, path)?.clone();
        if keys.null_count() > 0 {
            return Err(input(path, "`item_key` has empty rows; retrain"));
        }
        if keys
            .iter()
            .zip(keys.iter().skip(1))
            .any(|(a, b)| a.unwrap_or_default() > b.unwrap_or_default())
        {
            return Err(input(path, "rows are not sorted by item_key; retrain"));
        }
        Ok(ByKey {
            batch,
            keys,
            path: path.to_path_buf(),
        })
    }

    /// [`ByKey::load`] keeping only the rows whose key passes `keep`, read a batch at a time
    /// (the whole table is never held).
    pub fn load_where(path: &Path, keep: impl Fn(&str) -> bool) -> Result<ByKey> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| {
            input(
                path,
                format!("cannot open it: {e}. Is this a model folder written by `trainer run`?"),
            )
        })?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| input(path, format!("not a readable Parquet file: {e}")))?;
        let schema = reader.schema().clone();
        let mut kept = Vec::new();
        for b in reader.build().map_err(|e| input(path, e.to_string()))? {
            let b = b.map_err(|e| Error::input(&shown, e.to_string()))?;
            let keys = col::<StringArray>(&b, "item_key", &DataType::Utf8, path)?;
            let mask: BooleanArray = keys.iter().map(|k| Some(k.is_some_and(&keep))).collect();
            let b = arrow::compute::filter_record_batch(&b, &mask)
                .map_err(|e| Error::input(&shown, e.to_string()))?;
            if b.num_rows() > 0 {
                kept.push(b);
            }
        }
        Self::of_batch(crate::engine::concat(&schema, &kept)?, path)
    }

    /// The rows of `key` (empty if none).
    pub fn rows(&self, key: &str) -> std::ops::Range<usize> {
        let n = self.keys.len();
        let lo = partition(n, |i| self.keys.value(i) < key);
        // A key has a few rows (an item's operations): walk them rather than search again.
        let hi = (lo..n).find(|&i| self.keys.value(i) != key).unwrap_or(n);
        lo..hi
    }

    pub fn column(&self, name: &str) -> Option<&std::sync::Arc<dyn Array>> {
        self.batch.column_by_name(name)
    }
}

/// The first index in `0..n` where `pred` turns false (pred must be true then false).
pub(crate) fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

/// One operation of a routing, as `routings.parquet` holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Operation {
    pub proc_seq: i64,
    pub job_cd: Option<String>,
    pub res_cd: Option<String>,
    pub setup_minutes: Option<f64>,
    pub run_minutes: Option<f64>,
    pub run_time_qty: f64,
    pub std_minutes: f64,
    pub outsourced: bool,
    /// Work-order reports against this operation.
    pub reports: i64,
    /// Median actual hours per unit over the reports.
    pub actual_hours_per_unit: Option<f64>,
    /// Median absolute deviation of the actual hours per unit.
    pub actual_hours_per_unit_mad: Option<f64>,
}

/// An item's current routing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Routing {
    pub rout_no: String,
    pub operations: Vec<Operation>,
}

/// `routings.parquet`, its columns typed once at load.
pub struct Routings {
    pub by_key: ByKey,
    rout_no: StringArray,
    proc_seq: arrow::array::Int64Array,
    job_cd: StringArray,
    res_cd: StringArray,
    setup: Float64Array,
    run: Float64Array,
    qty: Float64Array,
    std: Float64Array,
    outsourced: BooleanArray,
    reports: arrow::array::Int64Array,
    actual: Float64Array,
    mad: Float64Array,
}

impl Routings {
    pub fn load(path: &Path) -> Result<Routings> {
        let by_key = ByKey::load(path)?;
        let b = &by_key.batch;
        let f64c = |name: &str| col::<Float64Array>(b, name, &DataType::Float64, path).cloned();
        let strc = |name: &str| col::<StringArray>(b, name, &DataType::Utf8, path).cloned();
        let int = |name: &str| -> Result<arrow::array::Int64Array> {
            let c = b
                .column_by_name(name)
                .ok_or_else(|| input(path, format!("column `{name}` is missing; retrain")))?;
            let c = arrow::compute::cast(c, &DataType::Int64)
                .map_err(|e| input(path, format!("{name}: {e}")))?;
            Ok(c.as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("cast to Int64")
                .clone())
        };
        Ok(Routings {
            rout_no: strc("rout_no")?,
            proc_seq: int("proc_seq")?,
            job_cd: strc("job_cd")?,
            res_cd: strc("res_cd")?,
            setup: f64c("setup_minutes")?,
            run: f64c("run_minutes")?,
            qty: f64c("run_time_qty")?,
            std: f64c("std_minutes")?,
            outsourced: col::<BooleanArray>(b, "outsourced", &DataType::Boolean, path)?.clone(),
            reports: int("reports")?,
            actual: f64c("actual_hours_per_unit")?,
            mad: f64c("actual_hours_per_unit_mad")?,
            by_key,
        })
    }

    pub fn path(&self) -> &Path {
        &self.by_key.path
    }

    /// The current routing of `key` (`None`: the item has none).
    pub fn routing(&self, key: &str) -> Option<Routing> {
        self.routing_at(self.by_key.rows(key))
    }

    /// The rows of `key`'s operations, in order (empty: the item has no routing).
    pub fn rows(&self, key: &str) -> std::ops::Range<usize> {
        self.by_key.rows(key)
    }

    /// The JOB_CD of row `i`: enough to compare routings without building them.
    pub fn job_cd(&self, i: usize) -> Option<&str> {
        (!self.job_cd.is_null(i)).then(|| self.job_cd.value(i))
    }

    /// The routing whose operations are `rows` (from [`Routings::rows`]; `None` when empty).
    pub fn routing_at(&self, rows: std::ops::Range<usize>) -> Option<Routing> {
        if rows.is_empty() {
            return None;
        }
        let opt = |a: &Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
        let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
        let operations = rows
            .clone()
            .map(|i| Operation {
                proc_seq: self.proc_seq.value(i),
                job_cd: text(&self.job_cd, i),
                res_cd: text(&self.res_cd, i),
                setup_minutes: opt(&self.setup, i),
                run_minutes: opt(&self.run, i),
                run_time_qty: opt(&self.qty, i).unwrap_or(1.0),
                std_minutes: opt(&self.std, i).unwrap_or(0.0),
                outsourced: !self.outsourced.is_null(i) && self.outsourced.value(i),
                reports: if self.reports.is_null(i) {
                    0
                } else {
                    self.reports.value(i)
                },
                actual_hours_per_unit: opt(&self.actual, i),
                actual_hours_per_unit_mad: opt(&self.mad, i),
            })
            .collect();
        Some(Routing {
            rout_no: text(&self.rout_no, rows.start).unwrap_or_default(),
            operations,
        })
    }
}

/// What the index sidecar and the metadata say about search.
#[derive(Debug, Clone)]
pub struct SearchParams {
    pub threshold: f64,
    /// The cosine similarity calibrated at training: what an answer's confidence falls back to
    /// in a model too small for `proposals`.
    pub calibration: crate::features::learn::Calibration,
    /// What the threshold applies to, for an answer to a new item and a model item alike: the
    /// confidence by the first proposal's agreement.
    pub proposals: crate::features::learn::ProposalCalibration,
    pub ef_search: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub seed: u64,
}

impl SearchParams {
    pub fn from_metadata(dir: &Path, meta: &serde_json::Value) -> Result<SearchParams> {
        let path = dir.join(METADATA_FILE);
        Ok(SearchParams {
            threshold: meta_f64(meta, &path, "/similarity_threshold")?,
            calibration: crate::features::learn::Calibration::from_metadata(meta),
            proposals: meta
                .pointer("/feature_weights/proposal_calibration")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default(),
            ef_search: meta_usize(meta, &path, "/config/hnsw/ef_search")?,
            m: meta_usize(meta, &path, "/config/hnsw/m")?,
            ef_construction: meta_usize(meta, &path, "/config/hnsw/ef_construction")?,
            seed: meta_usize(meta, &path, "/config/hnsw/seed")? as u64,
        })
    }
}

/// A model loaded for searching: metadata, items, index, vector layout.
pub struct Model {
    pub dir: PathBuf,
    pub meta: serde_json::Value,
    pub params: SearchParams,
    pub items: Items,
    pub index: Hnsw,
    pub dims: Dims,
}

impl Model {
    pub fn load(dir: &Path) -> Result<Model> {
        let meta = read_metadata(dir)?;
        let params = SearchParams::from_metadata(dir, &meta)?;
        let index_path = dir.join(INDEX_FILE);
        // The index is most of the loading: read it beside the rest.
        let (index, rest) = rayon::join(
            || hnswlib_file::read(&index_path, params.ef_construction),
            || -> Result<(Items, Dims)> {
                let items = Items::load(&dir.join(ITEMS_FILE))?;
                let dims = Dims::from_batch(&transform::load_table(
                    &dir.join(FITTED_DIR).join("dims.parquet"),
                )?)?;
                Ok((items, dims))
            },
        );
        let (index, (items, dims)) = (index?, rest?);
        if index.len() != items.len() || index.dim != dims.names.len() {
            return Err(input(
                &index_path,
                format!(
                    "{} vectors of {} dims, but items.parquet has {} items and the layout {} dims: \
                     the model files do not belong together; retrain",
                    index.len(),
                    index.dim,
                    items.len(),
                    dims.names.len()
                ),
            ));
        }
        if index.m != params.m {
            return Err(input(
                &index_path,
                format!(
                    "M is {} in the index and {} in {METADATA_FILE}; retrain",
                    index.m, params.m
                ),
            ));
        }
        Ok(Model {
            dir: dir.to_path_buf(),
            meta,
            params,
            items,
            index,
            dims,
        })
    }
}
