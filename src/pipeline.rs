//! `trainer run` and `trainer vectorize`: the stages in order, each timed.
//!
//! config -> sources -> sql layers -> item weights -> encode (fit) -> vectors -> HNSW index ->
//! similarity check -> artifacts. All artifacts are written into a staging directory beside
//! `models/` and swapped in only when every one of them is complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::Array;
use arrow::datatypes::DataType;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::sources::parquet::hex;
use crate::engine::sqlfiles::{self, SqlFile};
use crate::engine::{self, Engine, ItemVolumes, column_as, strings};
use crate::error::{Error, Result};
use crate::export::items::{ItemRow, low_entries, write_items, write_queue};
use crate::export::log::{RunLog, peak_rss_bytes, start_stage_peak_rss, take_stage_peak_rss};
use crate::export::projector::{self, MetaRow};
use crate::fsutil::{StagedDir, atomic_write, atomic_write_with};
use crate::index::hnsw::{Visited, with_visited};
use crate::index::quant::Quantized;
use crate::index::{Hnsw, HnswParams, hnswlib_file};
use crate::mapping::Mapping;
use crate::transform::{self, Mode};
use crate::vectors::{self, Dims};
use crate::weights;

/// Beam width of the similarity check's nearest-other search, which starts from each item's own
/// level-0 links (see [`Hnsw::nearest_other`]); agreement with exact search is measured by
/// `trainer eval` and the benchmark.
pub const NEAREST_OTHER_EF: usize = 10;

/// The similarity check's nearest other of item `i`, as (cosine distance, id): the beam of
/// [`Hnsw::nearest_other`] (width `beam`, [`NEAREST_OTHER_EF`] in `trainer run`), and for an
/// item it leaves below `threshold` (LOW, so queued for review) also a full search at
/// `ef_search`, the closer of the two. A search can only miss a closer item, never report one
/// closer than exists, so a HIGH answer is final while a LOW one is worth a second look; LOW
/// items are outliers, which a graph search finds least reliably. `trainer eval` and the
/// benchmark measure the agreement with exact search.
pub fn similarity_nearest(
    h: &Hnsw,
    quant: &Quantized,
    i: u32,
    beam: usize,
    ef_search: usize,
    threshold: f64,
    vis: &mut Visited,
) -> Option<(f32, u32)> {
    let beam = h.nearest_other(quant, i, beam, vis)?;
    if (1.0 - beam.0) as f64 >= threshold {
        return Some(beam);
    }
    let full = h.search_other(i, ef_search, vis);
    Some(match full {
        Some(f) if f.0.total_cmp(&beam.0).then(f.1.cmp(&beam.1)).is_lt() => f,
        _ => beam,
    })
}

/// The similarity check of the items `ids` (in parallel): each one's nearest other as
/// (label, cosine similarity) by [`similarity_nearest`] with the beam [`NEAREST_OTHER_EF`];
/// `(None, 0)` for an item with no other. `progress` is told every 1,024 items.
pub fn similarity_pass(
    h: &Hnsw,
    quant: &Quantized,
    ids: std::ops::Range<u32>,
    ef_search: usize,
    threshold: f64,
    progress: impl Fn(u64) + Sync,
) -> Vec<(Option<u32>, f32)> {
    let end = ids.end;
    ids.into_par_iter()
        .map(|i| {
            if i % 1024 == 0 {
                progress(1024.min((end - i) as u64));
            }
            match with_visited(|vis| {
                similarity_nearest(h, quant, i, NEAREST_OTHER_EF, ef_search, threshold, vis)
            }) {
                Some((dist, j)) => (Some(j), 1.0 - dist),
                None => (None, 0.0),
            }
        })
        .collect()
}

/// Options of `trainer run` beyond the config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Do not print log lines to stderr (they still go to the log file).
    pub quiet: bool,
}

/// What a run produced (also what tests look at).
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub items: usize,
    pub dim: usize,
    pub high: usize,
    pub low: usize,
    pub models_dir: PathBuf,
    pub log_path: PathBuf,
    pub seconds: f64,
}

/// Stage timings and per-stage peak RSS. The peak is reset at each stage boundary where the OS
/// allows it, so each stage reports its own peak; `peak` is the maximum over all stages.
pub struct Timer {
    stages: Vec<Stage>,
    t: Instant,
    per_stage_rss: bool,
    peak: Option<u64>,
}

struct Stage {
    name: String,
    seconds: f64,
    peak_rss: Option<u64>,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub fn new() -> Self {
        Timer {
            stages: Vec::new(),
            t: Instant::now(),
            per_stage_rss: start_stage_peak_rss(),
            peak: peak_rss_bytes(),
        }
    }
    pub fn lap(&mut self, name: &str, log: &mut RunLog) {
        let s = self.t.elapsed().as_secs_f64();
        let rss = take_stage_peak_rss();
        self.peak = self.peak.max(rss);
        log.info(format!(
            "stage {name}: {s:.3} s, peak RSS {}{}",
            mib(rss),
            if self.per_stage_rss {
                ""
            } else {
                " (since start)"
            }
        ));
        self.stages.push(Stage {
            name: name.to_string(),
            seconds: s,
            peak_rss: rss,
        });
        if self.per_stage_rss {
            start_stage_peak_rss();
        }
        self.t = Instant::now();
    }
    /// The largest peak RSS seen so far.
    pub fn peak(&self) -> Option<u64> {
        self.peak
    }
    pub fn json(&self) -> (serde_json::Value, serde_json::Value) {
        let secs = self
            .stages
            .iter()
            .map(|st| (st.name.clone(), json!(st.seconds)))
            .collect::<serde_json::Map<_, _>>();
        let rss = self
            .stages
            .iter()
            .map(|st| (st.name.clone(), json!(st.peak_rss)))
            .collect::<serde_json::Map<_, _>>();
        (secs.into(), rss.into())
    }
}

pub fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{} MiB", b / (1024 * 1024)))
        .unwrap_or_else(|| "?".into())
}

/// Per-item display data from clean_items, in item_key order (label order).
pub struct ItemTable {
    pub keys: Vec<String>,
    pub item_cd: Vec<String>,
    pub part_nm: Vec<Option<String>>,
    pub seal_type: Vec<Option<String>>,
}

pub async fn read_items(ctx: &datafusion::prelude::SessionContext) -> Result<ItemTable> {
    let sql = "SELECT item_key, item_cd, part_nm, coalesce(seal_type_grup, in_seal_type_cd) AS seal_type \
               FROM clean_items ORDER BY item_key";
    let batches = engine::collect(ctx, sql, "clean_items").await?;
    let mut t = ItemTable {
        keys: vec![],
        item_cd: vec![],
        part_nm: vec![],
        seal_type: vec![],
    };
    for b in &batches {
        let k = column_as(b, "item_key", &DataType::Utf8, "clean_items")?;
        let c = column_as(b, "item_cd", &DataType::Utf8, "clean_items")?;
        let p = column_as(b, "part_nm", &DataType::Utf8, "clean_items")?;
        let s = column_as(b, "seal_type", &DataType::Utf8, "clean_items")?;
        for r in 0..b.num_rows() {
            t.keys.push(strings(&k).value(r).to_string());
            t.item_cd.push(strings(&c).value(r).to_string());
            t.part_nm
                .push((!strings(&p).is_null(r)).then(|| strings(&p).value(r).to_string()));
            t.seal_type
                .push((!strings(&s).is_null(r)).then(|| strings(&s).value(r).to_string()));
        }
    }
    Ok(t)
}

/// The items (label order) and their encoded features: `clean_items`, and `encoded_features`
/// streamed batch by batch into non-zero triplets (never materialised as a table), one part per
/// branch of its top `UNION ALL` (one-hot, numeric, target), drained concurrently, one task
/// each: the matrix [`vectors::Encoded::into_matrix`] makes of them does not depend on the order
/// rows arrive in (see [`vectors`]). The caller builds the matrix after dropping the session,
/// so that the tables it holds are freed first.
pub async fn read_encoded(
    ctx: &datafusion::prelude::SessionContext,
) -> Result<(ItemTable, Vec<vectors::Encoded>)> {
    use futures::StreamExt;
    let items = read_items(ctx).await?;
    let index_of = Arc::new(vectors::ItemIndex::new(&items.keys));
    let what = transform::STREAMED;
    let streams = engine::branch_streams_as_written(
        ctx,
        &format!("SELECT item_key, feature, dim, value FROM {what}"),
        what,
    )
    .await?;
    let n = items.keys.len();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let index_of = Arc::clone(&index_of);
            tokio::spawn(async move {
                let mut enc = vectors::Encoded::new(n);
                while let Some(b) = stream.next().await {
                    let b = b.map_err(|e| Error::sql(what, e.to_string()))?;
                    enc.push(&b, &index_of)?;
                }
                Ok::<_, Error>(enc)
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for t in tasks {
        let part = t
            .await
            .map_err(|e| Error::internal(format!("reading {what}: {e}")))??;
        parts.push(part);
    }
    Ok((items, parts))
}

async fn count(ctx: &datafusion::prelude::SessionContext, view: &str) -> Result<usize> {
    let b = engine::collect(ctx, &format!("SELECT count(*) AS n FROM {view}"), view).await?;
    let a = column_as(&b[0], "n", &DataType::Int64, view)?;
    Ok(engine::i64s(&a).value(0) as usize)
}

/// The data snapshot id: SHA-256 over each view's name and content hash (Parquet: the file's
/// bytes; ODBC: the values read) and the item metadata file's hash.
pub fn snapshot_id(
    sources: &[crate::engine::sources::SourceInfo],
    item_metadata_sha: &str,
) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.view.as_bytes());
        h.update(s.sha256.as_bytes());
    }
    h.update(item_metadata_sha.as_bytes());
    hex(&h.finalize())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

pub fn git_commit(dir: &Path) -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = run(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}+dirty") } else { c }
        }
        None => "unknown".to_string(),
    }
}

/// Writes an (n × d) f32 matrix as a NumPy `.npy` file (version 1.0, little-endian, C order).
pub fn write_npy(path: &Path, m: ArrayView2<'_, f32>) -> Result<()> {
    let (n, d) = m.dim();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    atomic_write_with(path, |w| {
        use std::io::Write;
        w.write_all(b"\x93NUMPY\x01\x00")?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        match m.as_slice() {
            // Standard layout: the f32s are already little-endian in memory on every platform
            // we build for; write them in large blocks.
            Some(s) if cfg!(target_endian = "little") => {
                for chunk in s.chunks(1 << 16) {
                    let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                    w.write_all(&bytes)?;
                }
            }
            _ => {
                for x in m.iter() {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
        }
        Ok(())
    })
}

/// Loads config, mapping and SQL files: everything that can be validated before data is read.
pub fn load_inputs(config_path: &Path) -> Result<(Config, Mapping, Vec<SqlFile>)> {
    let cfg = Config::load(config_path)?;
    let mapping = Mapping::load(&cfg.mapping)?;
    let files = sqlfiles::load(&cfg.sql_dir)?;
    Ok((cfg, mapping, files))
}

/// How [`train_vectors`] runs.
pub struct TrainOptions<'a> {
    /// Where fitted state goes (`models/fitted` in the staging folder); none: not saved.
    pub fitted_dir: Option<&'a Path>,
    /// Cleaned item keys whose routing and work-order rows are left out (`trainer eval`).
    pub holdout: Option<&'a [String]>,
    /// Leave the held-out items out of the item view too (`trainer eval`'s update variant).
    pub holdout_items_too: bool,
    /// The model folder (staging) that gets what `recommend` and `update` read besides the
    /// vectors: `routings.parquet` and `item_features.parquet` (none: not written).
    pub model_dir: Option<&'a Path>,
}

/// What training produces before the index: the session (every view of `sql/` registered), the
/// items in label order, their weights and folds, and the vectors.
pub struct TrainedVectors {
    /// What was read (the session and its tables are dropped once the vectors exist).
    pub sources: Vec<crate::engine::sources::SourceInfo>,
    pub items: ItemTable,
    pub sample: weights::ItemSample,
    pub vectors: Array2<f32>,
    pub dims_dropped: usize,
    pub rows: serde_json::Map<String, serde_json::Value>,
    /// Per item (label order): whether it has a current routing.
    pub has_routing: Vec<bool>,
    /// The learned weights and the calibration of the similarity.
    pub learned: crate::learn::LearnReport,
}

/// The training path up to the vectors (stages `read`, `sql_transforms`, `vectors`), shared
/// by `trainer run` and `trainer eval`.
pub async fn train_vectors(
    cfg: &Config,
    mapping: &Mapping,
    files: &[SqlFile],
    opts: &TrainOptions<'_>,
    log: &mut RunLog,
    timer: &mut Timer,
) -> Result<TrainedVectors> {
    // ---- read ----------------------------------------------------------------------------------
    let volumes = ItemVolumes::load(&cfg.item_metadata)?;
    let eng =
        Engine::build_with_holdout(cfg, mapping, &volumes, opts.holdout, opts.holdout_items_too)
            .await?;
    let ctx = &eng.ctx;
    for s in &eng.sources {
        log.info(format!(
            "source {}: {} ({} columns)",
            s.view,
            s.location,
            s.columns.len()
        ));
    }
    timer.lap("read", log);
    // What reading freed (each Parquet file read whole to check and hash it, the item metadata
    // JSON) stays in the main thread's malloc arena, which the SQL stage's threads do not
    // allocate from: hand it back first. At 325k items the process held 237 MB after reading
    // and 85 MB after this; the SQL stage's peak went from 880–943 MiB to 793–861 MiB.
    crate::export::log::release_free_memory();

    // ---- SQL: map and clean --------------------------------------------------------------------
    let stats = transform::create_views(ctx, files, &["01_map", "02_clean"], true).await?;
    log_views(log, &stats);
    let mut rows = serde_json::Map::new();
    for v in [
        "map_items",
        "clean_items",
        "map_routings",
        "clean_routings",
        "map_work_orders",
        "item_targets",
    ] {
        let n = count(ctx, v).await?;
        rows.insert(v.to_string(), json!(n));
    }
    let src_items = rows["map_items"].as_u64().unwrap_or(0);
    let clean_items = rows["clean_items"].as_u64().unwrap_or(0);
    log.info(format!(
        "items: {src_items} source rows, {clean_items} items after cleaning ({} duplicate or keyless rows dropped); {} with a current routing",
        src_items - clean_items,
        rows["item_targets"]
    ));

    check_weight_keys(ctx, cfg).await?;

    // What recommend proposes and explains, read while the clean layer's tables are held (the
    // encode layer drops them).
    let routed = routed_items(ctx).await?;
    if let Some(dir) = opts.model_dir {
        // The clean layer's freed working memory would otherwise stay in the allocator's arenas
        // under what these writers add.
        crate::export::log::release_free_memory();
        for (sql, what, file) in [
            (ROUTING_OPS_SQL, "routing_ops", ROUTINGS_FILE),
            (ITEM_FEATURES_SQL, "clean_items", ITEM_FEATURES_FILE),
        ] {
            let t = Instant::now();
            crate::export::log::mark_peak_rss();
            let n = save_query(ctx, sql, what, &dir.join(file)).await?;
            log.info(format!(
                "{file}: {n} rows from {what} in {:.3} s, peak RSS {}",
                t.elapsed().as_secs_f64(),
                mib(crate::export::log::mark_peak_rss())
            ));
        }
        crate::export::log::release_free_memory();
    }
    // A view's plan holds the tables it reads: dropped, so that the encode layer's release of
    // `clean_routings` frees its memory.
    let _ = ctx.deregister_table("routing_ops");

    // ---- item weights and folds (Rust), then SQL encode (fit) -----------------------------------
    let sample = weights::fit_item_sample(ctx, cfg).await?;
    let sample_batch = sample.to_batch();
    if let Some(dir) = opts.fitted_dir {
        transform::save_table(&dir.join("item_sample.parquet"), &sample_batch)?;
        transform::save_table(&dir.join("params.parquet"), &engine::params_batch(cfg))?;
    }
    transform::register(ctx, "item_sample", sample_batch)?;
    let fitted = transform::run_encode(
        ctx,
        files,
        Mode::Fit {
            save_dir: opts.fitted_dir,
        },
        Some(&["clean_items"]),
    )
    .await?;
    log_views(log, &fitted);
    for v in &fitted {
        if let Some(n) = v.rows {
            rows.insert(v.name.clone(), json!(n));
        }
    }
    let t = Instant::now();
    crate::export::log::mark_peak_rss();
    let (items, parts) = read_encoded(ctx).await?;
    // The tables held for the SQL layers are not needed any more: free them before the matrix,
    // the vectors and the index take their memory.
    let Engine { ctx, sources } = eng;
    drop(ctx);
    crate::export::log::release_free_memory();
    let raw = vectors::Encoded::into_matrix(parts, &items.keys)?;
    // The triplets are freed too (glibc keeps some of their memory unless asked).
    crate::export::log::release_free_memory();
    log.info(format!(
        "encoded_features streamed: {} items x {} dims seen in {:.3} s, peak RSS {}",
        raw.n,
        raw.width,
        t.elapsed().as_secs_f64(),
        mib(crate::export::log::mark_peak_rss())
    ));
    timer.lap("sql_transforms", log);

    // ---- vectors -------------------------------------------------------------------------------
    // sample weights in label order (item_sample is in item_key order too)
    let (dims, dropped, defaulted) =
        raw.fit_dims(&sample.sample_weight, |f| weights::feature_weight(cfg, f));
    if !dropped.is_empty() {
        log.info(format!(
            "{} constant dimensions dropped (no variance over the training items)",
            dropped.len()
        ));
    }
    if dims.names.is_empty() {
        return Err(Error::input(
            "clean_items",
            format!(
                "no feature varies over the {} items (one item, or items that are all alike): \
                 there is nothing to tell them apart by; check the item view",
                sample.keys.len()
            ),
        ));
    }
    for f in &defaulted {
        log.warn(format!(
            "feature `{f}` has no entry under weights.features: weight 1.0 used"
        ));
    }
    // ---- learned feature weights and the calibrated similarity ---------------------------------
    let labels: Vec<Option<u32>> = items
        .keys
        .iter()
        .map(|k| {
            routed
                .binary_search_by(|x| x.0.as_str().cmp(k))
                .ok()
                .map(|i| routed[i].1)
        })
        .collect();
    drop(routed);
    let mut dims = dims;
    let learned = crate::learn::fit(
        &raw,
        &mut dims,
        &labels,
        &crate::learn::LearnOptions {
            learn: cfg.weights.learn,
            sample: cfg.weights.learn_sample,
            seed: cfg.encoding.seed,
        },
    );
    log_learned(log, &learned);
    if dims.names.is_empty() {
        return Err(Error::internal("learning zeroed every feature"));
    }
    timer.lap("learn_weights", log);

    if let Some(dir) = opts.fitted_dir {
        transform::save_table(&dir.join("dims.parquet"), &dims.to_batch())?;
    }
    let vecs = raw.into_vectors(&dims);
    let (n, d) = vecs.dim();
    let zero_rows = vecs
        .outer_iter()
        .filter(|r| r.iter().all(|x| *x == 0.0))
        .count();
    if zero_rows > 0 {
        log.warn(format!(
            "{zero_rows} items have an all-zero vector (every feature constant)"
        ));
    }
    log.info(format!(
        "vectors: {n} items x {d} dimensions (float32, L2-normalised)"
    ));
    timer.lap("vectors", log);
    let has_routing = labels.iter().map(Option::is_some).collect();
    Ok(TrainedVectors {
        sources,
        items,
        sample,
        vectors: vecs,
        dims_dropped: dropped.len(),
        rows,
        has_routing,
        learned,
    })
}

fn log_learned(log: &mut RunLog, r: &crate::learn::LearnReport) {
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    if r.queries < crate::learn::MIN_QUERIES {
        log.warn(format!(
            "only {} routed items: feature weights not learned, similarity not calibrated (the tier uses the raw cosine)",
            r.queries
        ));
        return;
    }
    if r.learned {
        log.info(format!(
            "learned weights: leave-one-out over {} routed items (shortlist {}, {} passes; {:.2} s exact search, {:.2} s weight search): top-1 {} -> {}, hit@5 {} -> {}",
            r.queries,
            r.shortlist,
            r.passes,
            r.shortlist_seconds,
            r.search_seconds,
            pct(r.prior.top1),
            pct(r.result.top1),
            pct(r.prior.hit_at_5),
            pct(r.result.hit_at_5)
        ));
        let moved: Vec<String> = r
            .weights
            .iter()
            .filter(|w| w.learned != w.prior)
            .map(|w| format!("{} {:.3}->{:.3}", w.feature, w.prior, w.learned))
            .collect();
        log.info(format!(
            "learned weights: {} of {} features moved: {}",
            moved.len(),
            r.weights.len(),
            if moved.is_empty() {
                "-".to_string()
            } else {
                moved.join(", ")
            }
        ));
    } else {
        log.info(format!(
            "configured weights (weights.learn: false): leave-one-out over {} routed items: top-1 {}, hit@5 {}",
            r.queries,
            pct(r.result.top1),
            pct(r.result.hit_at_5)
        ));
    }
    let c = &r.calibration;
    log.info(format!(
        "similarity calibration: {}",
        c.points
            .iter()
            .map(|p| format!("{:.3}->{:.2}", p.0, p.1))
            .collect::<Vec<_>>()
            .join(" ")
    ));
}

/// Every key under `weights.features` must name a column of `clean_items` (the features are
/// its columns): a misspelt key would otherwise be ignored while the feature it meant silently
/// gets weight 1.
async fn check_weight_keys(ctx: &datafusion::prelude::SessionContext, cfg: &Config) -> Result<()> {
    let schema = engine::view_schema(ctx, "clean_items").await?;
    let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for key in cfg.weights.features.keys() {
        if !columns.contains(key) {
            let near = crate::mapping::close_matches(key, &columns);
            return Err(Error::config(
                Path::new("config"),
                format!(
                    "key `weights.features.{key}`: `{key}` is not a column of the clean_items view{}",
                    if near.is_empty() {
                        String::new()
                    } else {
                        format!("; did you mean `{}`?", near.join("` or `"))
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// `models/routings.parquet`: every operation of each routed item's current routing, with the
/// work-order actuals (the `routing_ops` view).
pub const ROUTINGS_FILE: &str = "routings.parquet";
/// `models/item_features.parquet`: the cleaned attributes of every item (`clean_items`), for
/// `recommend`'s explanations and `update`'s change detection.
pub const ITEM_FEATURES_FILE: &str = "item_features.parquet";
const ROUTING_OPS_SQL: &str = "SELECT * FROM routing_ops ORDER BY item_key, rout_no, proc_seq";
const ITEM_FEATURES_SQL: &str = "SELECT * FROM clean_items ORDER BY item_key";

/// The items with a current routing, sorted by key, each with its routing's id (equal JOB_CD
/// sequences, equal ids).
pub async fn routed_items(ctx: &datafusion::prelude::SessionContext) -> Result<Vec<(String, u32)>> {
    let what = "item_targets";
    let batches = engine::collect(
        ctx,
        "SELECT item_key, job_seq FROM item_targets ORDER BY item_key",
        what,
    )
    .await?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for b in &batches {
        let k = column_as(b, "item_key", &DataType::Utf8, what)?;
        let s = column_as(b, "job_seq", &DataType::Utf8, what)?;
        let (k, s) = (strings(&k), strings(&s));
        for r in 0..b.num_rows() {
            let next = ids.len() as u32;
            let id = *ids
                .entry(if s.is_valid(r) { s.value(r) } else { "" }.to_string())
                .or_insert(next);
            out.push((k.value(r).to_string(), id));
        }
    }
    Ok(out)
}

/// Runs `sql` and streams its result into one Parquet file (never held whole). Returns the rows.
pub async fn save_query(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    what: &str,
    path: &Path,
) -> Result<usize> {
    let stream = engine::stream_as_written(ctx, sql, what).await?;
    let schema = stream.schema();
    crate::parquet_io::write_stream(path, schema, stream, what).await
}

/// Runs `sql` and returns its result as one batch (of the query's schema, also when empty).
pub async fn save_query_batch(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    what: &str,
) -> Result<arrow::record_batch::RecordBatch> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| Error::sql(what, e.to_string()))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = engine::collect_df(df, what).await?;
    engine::concat(&schema, &batches)
}

/// Copies the SQL files and the mapping a model was trained with into `fitted/`, so that
/// `update` and `recommend` encode new items with exactly these transforms, whatever the working
/// tree's `sql/` holds later.
pub fn save_transforms(cfg: &Config, files: &[SqlFile], fitted_dir: &Path) -> Result<()> {
    for f in files {
        let to = fitted_dir.join(SQL_COPY_DIR).join(&f.rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(parent, "create the directory", e))?;
        }
        let bytes = std::fs::read(&f.path)
            .map_err(|e| Error::input(f.path.display().to_string(), e.to_string()))?;
        atomic_write(&to, &bytes)?;
    }
    let bytes = std::fs::read(&cfg.mapping)
        .map_err(|e| Error::input(cfg.mapping.display().to_string(), e.to_string()))?;
    atomic_write(&fitted_dir.join(MAPPING_COPY), &bytes)
}

/// Where [`save_transforms`] puts the SQL layers and the mapping, under `fitted/`.
pub const SQL_COPY_DIR: &str = "sql";
pub const MAPPING_COPY: &str = "schema_mappings.yaml";

/// `trainer run`.
pub async fn run(config_path: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let (cfg, mapping, files) = load_inputs(config_path)?;
    let _lock = crate::fsutil::ModelLock::acquire(&cfg.output.models_dir)?;
    let staged = StagedDir::create(&cfg.output.models_dir)?;
    let out = staged.path().to_path_buf();
    let fitted_dir = out.join("fitted");
    std::fs::create_dir_all(&fitted_dir)
        .map_err(|e| Error::io(&fitted_dir, "create the directory", e))?;
    let mut log = RunLog::open(&cfg.output.logs_dir, opts.quiet)?;
    log.info(format!(
        "trainer {} run: config {}, model_version {}, data_version {}",
        env!("CARGO_PKG_VERSION"),
        config_path.display(),
        cfg.model_version,
        cfg.data_version
    ));
    let mut timer = Timer::new();

    let trained = train_vectors(
        &cfg,
        &mapping,
        &files,
        &TrainOptions {
            fitted_dir: Some(&fitted_dir),
            holdout: None,
            holdout_items_too: false,
            model_dir: Some(&out),
        },
        &mut log,
        &mut timer,
    )
    .await?;
    let TrainedVectors {
        sources,
        items,
        sample,
        vectors: vecs,
        dims_dropped,
        rows,
        has_routing,
        learned,
    } = trained;
    save_transforms(&cfg, &files, &fitted_dir)?;
    let (n, d) = vecs.dim();

    // ---- index ---------------------------------------------------------------------------------
    let hp = HnswParams {
        m: cfg.hnsw.m,
        ef_construction: cfg.hnsw.ef_construction,
        seed: cfg.hnsw.seed,
    };
    log.info(format!(
        "hnsw: space cosine, M {}, ef_construction {}, ef_search {}, seed {}",
        hp.m, hp.ef_construction, cfg.hnsw.ef_search, hp.seed
    ));
    let bar = progress_bar(n as u64, "index");
    // The index takes the vectors' buffer (no copy); artifacts read them back from it.
    let (flat, _) = vecs.into_raw_vec_and_offset();
    let (h, quant) = Hnsw::build_quantized(flat, d, hp, |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64)
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    timer.lap("index_build", &mut log);

    // ---- similarity check ----------------------------------------------------------------------
    let ef = cfg.hnsw.ef_search;
    let thr = cfg.similarity_threshold;
    let bar = progress_bar(n as u64, "similarity");
    let cal = &learned.calibration;
    let raw_thr = cal.raw_threshold(thr);
    let nearest = similarity_pass(&h, &quant, 0..n as u32, ef, raw_thr, |k| {
        if let Some(b) = &bar {
            b.inc(k)
        }
    });
    drop(quant);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let confidence: Vec<f32> = nearest
        .iter()
        .map(|x| cal.apply(x.1 as f64) as f32)
        .collect();
    let high = confidence.iter().filter(|&&c| c as f64 >= thr).count();
    let low = n - high;
    log.info(format!(
        "similarity: {high} items with {} >= {thr} (HIGH, {:.1} %), {low} below (LOW, {:.1} %)",
        if cal.is_identity() {
            "cosine"
        } else {
            "calibrated similarity"
        },
        100.0 * high as f64 / n.max(1) as f64,
        100.0 * low as f64 / n.max(1) as f64
    ));
    let hist = similarity_histogram(nearest.iter().map(|x| x.1));
    log_histogram(&mut log, "similarity histogram", &hist);
    let rows_out: Vec<ItemRow> = (0..n)
        .map(|i| ItemRow {
            item_key: &items.keys[i],
            item_cd: &items.item_cd[i],
            part_nm: items.part_nm[i].as_deref(),
            seal_type: items.seal_type[i].as_deref(),
            item_weight: sample.item_weight[i],
            nearest_label: nearest[i].0.map(|x| x as u64),
            nearest_similarity: nearest[i].1,
            confidence: confidence[i],
            has_routing: has_routing[i],
            tier: if confidence[i] as f64 >= thr {
                "HIGH"
            } else {
                "LOW"
            },
        })
        .collect();
    for r in rows_out.iter().filter(|r| r.tier == "LOW").take(50) {
        log.warn(format!(
            "LOW similarity: {} ({}) nearest other {:.4} (calibrated {:.2}) -> queued for review",
            r.item_cd,
            r.part_nm.unwrap_or("-"),
            r.nearest_similarity,
            r.confidence
        ));
    }
    if low > 50 {
        log.warn(format!(
            "... and {} more LOW items (all in retrain_queue.csv)",
            low - 50
        ));
    }
    timer.lap("similarity_check", &mut log);

    // ---- artifacts -----------------------------------------------------------------------------
    let sidecar = json!({
        "format": "hnswlib 0.8.0 saveIndex layout",
        "space": "cosine",
        "dim": d,
        "M": hp.m,
        "ef_construction": hp.ef_construction,
        "ef_search": ef,
        "N": n,
        "seed": hp.seed,
        "label": "row index of items.parquet (column `label`), = data row of tb_projector/metadata.tsv",
        "vectors": "L2-normalised float32; the same rows as vectors.npy",
        "load": "hnswlib.Index(space='cosine', dim=dim).load_index('hnsw_index.bin', max_elements=0); set_ef(ef_search)",
    });
    atomic_write(
        &out.join("hnsw_index.json"),
        format!("{}\n", serde_json::to_string_pretty(&sidecar).unwrap()).as_bytes(),
    )?;
    write_items(&out.join("items.parquet"), &rows_out)?;
    let created_at = chrono::Local::now().to_rfc3339();
    let queued = write_queue(
        &out.join(crate::model::QUEUE_FILE),
        &low_entries(&rows_out, 0, thr, "run", &created_at),
    )?;
    let meta: Vec<MetaRow> = rows_out.iter().map(MetaRow::from).collect();
    let vecs = ArrayView2::from_shape((n, d), &h.data[..]).expect("n x d");
    // The two big writers on both cores: formatting vectors.tsv is CPU-bound, the index and
    // vectors.npy are mostly copying.
    let (binary, projector) = rayon::join(
        || -> Result<()> {
            hnswlib_file::write(&h, &out.join("hnsw_index.bin"))?;
            write_npy(&out.join("vectors.npy"), vecs)
        },
        || projector::write(&out.join("tb_projector"), vecs, &meta),
    );
    binary?;
    projector?;
    let meta_sha = sha256_file(&cfg.item_metadata)?;
    let snapshot = snapshot_id(&sources, &meta_sha);
    timer.lap("artifacts", &mut log);

    // ---- training metadata ---------------------------------------------------------------------
    let peak = timer.peak;
    let total = started.elapsed().as_secs_f64();
    let (stage_seconds, stage_rss) = timer.json();
    let training = json!({
        "model_format_version": crate::model::MODEL_FORMAT_VERSION,
        "model_version": cfg.model_version,
        "data_version": cfg.data_version,
        "trainer_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(&cfg.sql_dir),
        "schema_mapping_version": mapping.version,
        "similarity_threshold": thr,
        "data_snapshot_id": snapshot,
        "sources": sources.iter().map(|s| json!({"view": s.view, "location": s.location, "sha256": s.sha256})).collect::<Vec<_>>(),
        "item_metadata": {"path": cfg.item_metadata.display().to_string(), "sha256": meta_sha},
        "config": cfg,
        "sql": files.iter().map(|f| json!({"file": f.rel, "view": f.name, "version": f.version, "grain": f.grain, "sha256": f.sha256})).collect::<Vec<_>>(),
        "row_counts": rows,
        "items": n,
        "dims": d,
        "dims_dropped_constant": dims_dropped,
        "item_weight_fit": {"max_volume": sample.max_volume},
        "feature_weights": learned,
        "similarity": {"high": high, "low": low, "histogram_0_to_1_by_0.1": hist, "retrain_queue": queued},
        "stage_seconds": stage_seconds,
        "stage_peak_rss_bytes": stage_rss,
        "total_seconds": total,
        "peak_rss_bytes": peak,
        "created_at": created_at,
        "updates": [],
    });
    atomic_write(
        &out.join(crate::model::METADATA_FILE),
        format!("{}\n", serde_json::to_string_pretty(&training).unwrap()).as_bytes(),
    )?;
    staged.commit()?;
    log.info(format!(
        "done in {total:.2} s: {n} items, {d} dims, peak RSS {}, model written to {}",
        mib(peak),
        cfg.output.models_dir.display()
    ));
    Ok(RunSummary {
        items: n,
        dim: d,
        high,
        low,
        models_dir: cfg.output.models_dir.clone(),
        log_path: log.path.clone(),
        seconds: total,
    })
}

/// Counts of similarities in [0, 0.1), [0.1, 0.2), ... [0.9, 1] (negatives count as 0).
pub fn similarity_histogram(sims: impl Iterator<Item = f32>) -> [usize; 10] {
    let mut hist = [0usize; 10];
    for s in sims {
        hist[((s.max(0.0) * 10.0) as usize).min(9)] += 1;
    }
    hist
}

pub fn log_histogram(log: &mut RunLog, what: &str, hist: &[usize; 10]) {
    for (k, c) in hist.iter().enumerate() {
        log.info(format!(
            "{what} [{:.1}, {:.1}{}: {c}",
            k as f64 / 10.0,
            (k + 1) as f64 / 10.0,
            if k == 9 { "]" } else { ")" }
        ));
    }
}

fn log_views(log: &mut RunLog, stats: &[transform::ViewStat]) {
    for v in stats {
        match v.rows {
            Some(n) => log.info(format!(
                "view {}: {n} rows in {:.3} s, peak RSS {}",
                v.name,
                v.seconds,
                mib(v.peak_rss)
            )),
            None => log.info(format!(
                "view {}: a view (computed where it is read)",
                v.name
            )),
        }
    }
}

pub fn progress_bar(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    b.set_prefix(what.to_string());
    Some(b)
}

/// Vectors of the items in the config's sources, computed with a trained model's fitted state.
/// Training items get back exactly their training vectors; other items use full-data statistics.
pub struct Vectorized {
    pub keys: Vec<String>,
    pub item_cd: Vec<String>,
    pub vectors: Array2<f32>,
}

/// A session over the config's sources with a trained model's fitted state: every view of
/// `sql/` exists (fit_ views loaded from the model), as `vectorize` uses it. Tests and
/// analysts' tooling query views from here.
pub async fn apply_session(config_path: &Path, model_dir: &Path) -> Result<(Engine, Vec<SqlFile>)> {
    let (cfg, mapping, files) = load_inputs(config_path)?;
    let fitted = model_dir.join("fitted");
    let volumes = ItemVolumes::load(&cfg.item_metadata)?;
    let eng = Engine::build(&cfg, &mapping, &volumes).await?;
    let ctx = &eng.ctx;
    transform::create_views(ctx, &files, &["01_map", "02_clean"], true).await?;
    transform::register(
        ctx,
        "params",
        transform::load_table(&fitted.join("params.parquet"))?,
    )?;
    transform::register(
        ctx,
        "item_sample",
        transform::load_table(&fitted.join("item_sample.parquet"))?,
    )?;
    transform::run_encode(ctx, &files, Mode::Apply { state_dir: &fitted }, None).await?;
    Ok((eng, files))
}

/// `trainer vectorize`.
pub async fn vectorize(config_path: &Path, model_dir: &Path) -> Result<Vectorized> {
    let (eng, _files) = apply_session(config_path, model_dir).await?;
    let ctx = &eng.ctx;
    let dims = Dims::from_batch(&transform::load_table(
        &model_dir.join("fitted").join("dims.parquet"),
    )?)?;
    let (items, parts) = read_encoded(ctx).await?;
    drop(eng);
    let raw = vectors::Encoded::into_matrix(parts, &items.keys)?;
    let vecs = raw.into_vectors(&dims);
    Ok(Vectorized {
        keys: items.keys,
        item_cd: items.item_cd,
        vectors: vecs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn similarity_nearest_looks_again_only_at_low_items_and_never_does_worse() {
        let (n, dim) = (3000, 12);
        let mut r = Rng::new(3);
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f64> = (0..dim).map(|_| r.normal()).collect();
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            data.extend(row.iter().map(|x| (x / norm) as f32));
        }
        let p = HnswParams {
            m: 4,
            ef_construction: 8,
            seed: 1,
        };
        let h = Hnsw::build(data, dim, p, |_, _| {});
        let quant = h.quantized();
        let mut vis = Visited::new(n);
        // A threshold most items miss, so most are looked at again.
        let thr = 0.9;
        let (mut rechecked, mut improved, mut exact_hits) = (0, 0, 0);
        for i in 0..n as u32 {
            let beam = h
                .nearest_other(&quant, i, NEAREST_OTHER_EF, &mut vis)
                .unwrap();
            let got =
                similarity_nearest(&h, &quant, i, NEAREST_OTHER_EF, 1024, thr, &mut vis).unwrap();
            let exact = h.brute_force_other(i).unwrap();
            assert_ne!(got.1, i);
            assert!(
                got.0 <= beam.0,
                "item {i}: {got:?} farther than the beam's {beam:?}"
            );
            assert!(
                got.0 >= exact.0,
                "item {i}: {got:?} closer than exact {exact:?}"
            );
            if (1.0 - beam.0) as f64 >= thr {
                assert_eq!(got, beam, "item {i}: a HIGH answer is final");
            } else {
                rechecked += 1;
                improved += (got.0 < beam.0) as usize;
            }
            exact_hits += (got.0 <= exact.0) as usize;
        }
        assert!(rechecked > n / 2, "{rechecked} of {n} looked at again");
        // A sparse graph (M 4, ef_construction 8) leaves the beam short often enough for the
        // second look to show.
        assert!(improved > 0, "no LOW item improved");
        assert!(
            exact_hits as f64 / n as f64 >= 0.99,
            "{exact_hits} of {n} exact"
        );
    }
}
