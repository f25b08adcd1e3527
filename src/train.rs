//! The training path up to the vectors, shared by `run` and `eval`: read the sources,
//! run the SQL layers (saving fitted state), fit item weights and folds, stream
//! `encoded_features` into the matrix, learn the feature weights, and build the vectors. Also
//! the model-side tables `recommend` and `update` read (`routings.parquet`,
//! `item_features.parquet`) and the copies of the SQL and mapping a model was trained with.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::Array;
use arrow::datatypes::DataType;
use ndarray::Array2;
use serde_json::json;

use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::engine::sqlfiles::{self, SqlFile};
use crate::engine::{self, Engine, ItemVolumes, column_as, strings};
use crate::error::{Error, Result};
use crate::export::log::{RunLog, Timer, mib};
use crate::features::{learn, vectors, weights};
use crate::fsutil::atomic_write;
use crate::memory::{mark_peak_rss, release_free_memory};
use crate::source_rows::{SOURCE_HASHES_FILE, SourceHashes};
use crate::transform::{self, Mode};

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
    /// Per item (label order): its routing's id in `routing_ops` (none: no current routing).
    pub routing_ids: Vec<Option<u32>>,
    /// Per routing id: its JOB_CDs, interned (see [`Routed`]).
    pub routing_ops: Vec<Vec<u32>>,
    /// The learned weights and the calibration of the similarity.
    pub learned: learn::LearnReport,
}

/// The training path up to the vectors (stages `read`, `sql_transforms`, `learn_weights`,
/// `vectors`), shared by `trainer run` and `trainer eval`.
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
    crate::engine::sources::log_sources(&eng.sources, log);
    timer.lap("read", log);
    // What reading freed (each Parquet file read whole to check and hash it, the item metadata
    // JSON) stays in the main thread's malloc arena, which the SQL stage's threads do not
    // allocate from: hand it back before the SQL stage raises the peak.
    release_free_memory();

    // ---- SQL: map and clean, then what the model keeps of the clean layer ----------------------
    let mut rows = match map_and_clean(ctx, files, log).await {
        Err(e) => return Err(blame_damaged_source(&eng.sources, e)),
        Ok(rows) => rows,
    };
    if rows["item_targets"].as_u64() == Some(0) {
        return Err(Error::input(
            crate::erp::ROUTING_VIEW,
            "no item has a current routing after cleaning: a model could propose nothing. \
             Is the routing view empty, or do its ITEM_CDs match none of the item view's?",
        ));
    }
    check_weight_keys(ctx, cfg).await?;
    // What recommend proposes and explains, read while the clean layer's tables are held (the
    // encode layer drops them).
    let routed = routed_items(ctx).await?;
    if let Some(dir) = opts.model_dir {
        save_model_tables(ctx, dir, log).await?;
    }
    // A view's plan holds the tables it reads: dropped, so that the encode layer's release of
    // `clean_routings` frees its memory.
    let _ = ctx.deregister_table("routing_ops");

    // ---- item weights and folds (Rust), then SQL encode (fit) -----------------------------------
    let sample = weights::fit_item_sample(ctx, cfg).await?;
    log.info(format!(
        "item metadata: volumes for {} of {} items (the others count as volume 0)",
        sample.metadata_matched,
        sample.keys.len()
    ));
    let sample_batch = sample.to_batch();
    if let Some(dir) = opts.fitted_dir {
        transform::save_table(&dir.join("item_sample.parquet"), &sample_batch)?;
        transform::save_table(&dir.join("params.parquet"), &engine::params_batch(cfg))?;
    }
    transform::register(ctx, "item_sample", sample_batch)?;
    let targets = item_target_names(ctx).await?;
    let fitted = transform::run_encode(
        ctx,
        files,
        Mode::Fit {
            save_dir: opts.fitted_dir,
        },
        // The target statistics are kept for the check below, then let go.
        Some(&["clean_items", "fit_target_scale", "fit_target_sums"]),
    )
    .await?;
    log_views(log, &fitted);
    check_targets_listed(ctx, files, &targets).await?;
    for t in ["fit_target_scale", "fit_target_sums"] {
        let _ = ctx.deregister_table(t);
    }
    for v in &fitted {
        if let Some(n) = v.rows {
            rows.insert(v.name.clone(), json!(n));
        }
    }
    let t = Instant::now();
    mark_peak_rss();
    let (items, parts) = read_encoded(ctx).await?;
    // The tables held for the SQL layers are not needed any more: free them before the matrix,
    // the vectors and the index take their memory.
    let Engine { ctx, sources } = eng;
    drop(ctx);
    release_free_memory();
    let raw = vectors::Encoded::into_matrix(parts, &items.keys)?;
    // The triplets are freed too (glibc keeps some of their memory unless asked).
    release_free_memory();
    log.info(format!(
        "encoded_features streamed: {} items x {} dims seen in {:.3} s, peak RSS {}",
        raw.n,
        raw.width,
        t.elapsed().as_secs_f64(),
        mib(mark_peak_rss())
    ));
    timer.lap("sql_transforms", log);

    // ---- vector layout, learned feature weights, the calibrated similarity ---------------------
    let (mut dims, dims_dropped) = fit_layout(&raw, &sample, cfg, log)?;
    let labels = routing_labels(&items.keys, routed.items);
    let learned = learn::fit(
        &raw,
        &mut dims,
        &labels,
        &routed.ops,
        &learn::LearnOptions {
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

    // ---- vectors -------------------------------------------------------------------------------
    if let Some(dir) = opts.fitted_dir {
        transform::save_table(&dir.join("dims.parquet"), &dims.to_batch())?;
    }
    let vecs = raw.into_vectors(&dims);
    log_vectors(&vecs, log);
    timer.lap("vectors", log);
    Ok(TrainedVectors {
        sources,
        items,
        sample,
        vectors: vecs,
        dims_dropped,
        rows,
        has_routing: labels.iter().map(Option::is_some).collect(),
        routing_ids: labels,
        routing_ops: routed.ops,
        learned,
    })
}

/// A query over the sources that failed on a Parquet decoding error (a damaged data page behind
/// an intact footer) names no file: find the source file that does not decode and blame it
/// (exit 3). Any other error, or none found, is returned as it was.
fn blame_damaged_source(sources: &[crate::engine::sources::SourceInfo], e: Error) -> Error {
    if !matches!(&e, Error::Sql { message, .. } if message.contains("Parquet")) {
        return e;
    }
    for s in sources {
        let path = Path::new(&s.location);
        if !path.is_file() {
            continue;
        }
        if let Err(why) = crate::parquet_io::check_decodes(path) {
            return Error::input(
                &s.location,
                format!(
                    "the file is damaged: a data page cannot be decoded ({why}); re-export view {} from the ERP",
                    s.view
                ),
            );
        }
    }
    e
}

/// Runs the map and clean layers and logs their row counts (returned for the metadata).
async fn map_and_clean(
    ctx: &datafusion::prelude::SessionContext,
    files: &[SqlFile],
    log: &mut RunLog,
) -> Result<serde_json::Map<String, serde_json::Value>> {
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
    Ok(rows)
}

/// Writes `routings.parquet`, `item_features.parquet` and `item_source_hashes.parquet` into the
/// model folder `dir`.
async fn save_model_tables(
    ctx: &datafusion::prelude::SessionContext,
    dir: &Path,
    log: &mut RunLog,
) -> Result<()> {
    // The clean layer's freed working memory would otherwise stay in the allocator's arenas
    // under what these writers add.
    release_free_memory();
    // The item view's rows are hashed on the other core while the tables are written (each
    // query runs on one).
    let hashing = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            SourceHashes::of_session(&ctx)
                .await
                .map(|h| (h, t.elapsed().as_secs_f64()))
        })
    };
    for (sql, what, file) in [
        (ROUTING_OPS_SQL, "routing_ops", ROUTINGS_FILE),
        (ITEM_FEATURES_SQL, "clean_items", ITEM_FEATURES_FILE),
    ] {
        let t = Instant::now();
        mark_peak_rss();
        let n = save_query(ctx, sql, what, &dir.join(file)).await?;
        log.info(format!(
            "{file}: {n} rows from {what} in {:.3} s, peak RSS {}",
            t.elapsed().as_secs_f64(),
            mib(mark_peak_rss())
        ));
    }
    let (mut hashes, seconds) = hashing
        .await
        .map_err(|e| Error::internal(format!("hashing the item rows: {e}")))??;
    let items = engine::collect(ctx, "SELECT item_key FROM clean_items", "clean_items").await?;
    let mut model_keys = std::collections::HashSet::new();
    for b in &items {
        let k = column_as(b, "item_key", &DataType::Utf8, "clean_items")?;
        model_keys.extend(strings(&k).iter().flatten().map(str::to_string));
    }
    hashes.retain(|k| model_keys.contains(k));
    hashes.save(&dir.join(SOURCE_HASHES_FILE))?;
    log.info(format!(
        "{SOURCE_HASHES_FILE}: {} items' source rows hashed in {seconds:.3} s",
        hashes.len(),
    ));
    release_free_memory();
    Ok(())
}

/// The vector layout: the dimensions that vary over the training items, each with its
/// configured feature weight. Returns it and how many constant dimensions were dropped.
fn fit_layout(
    raw: &vectors::RawMatrix,
    sample: &weights::ItemSample,
    cfg: &Config,
    log: &mut RunLog,
) -> Result<(vectors::Dims, usize)> {
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
    Ok((dims, dropped.len()))
}

/// Per item (label order): the id of its routing (equal JOB_CD sequences, equal ids), if it has
/// one. `routed` is sorted by key.
fn routing_labels(keys: &[String], routed: Vec<(String, u32)>) -> Vec<Option<u32>> {
    keys.iter()
        .map(|k| {
            routed
                .binary_search_by(|x| x.0.as_str().cmp(k))
                .ok()
                .map(|i| routed[i].1)
        })
        .collect()
}

/// Logs the vectors' shape and warns about all-zero rows.
fn log_vectors(vecs: &Array2<f32>, log: &mut RunLog) {
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
}

fn log_learned(log: &mut RunLog, r: &learn::LearnReport) {
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    if r.queries < learn::MIN_QUERIES {
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
            let near = crate::text::close_matches(key, &columns);
            return Err(Error::config(
                &cfg.file,
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

/// The routing targets: the `t_<name>` columns of `item_targets` that have a value for a training
/// item (one of `item_sample`; a routing of an item outside the item view is not). The views
/// that read them list them by hand (`target_values` long, `fit_target_sums` wide, see sql/README);
/// [`check_targets_listed`] makes sure neither leaves one out.
async fn item_target_names(ctx: &datafusion::prelude::SessionContext) -> Result<Vec<String>> {
    let schema = engine::view_schema(ctx, "item_targets").await?;
    let cols: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| n.starts_with("t_"))
        .collect();
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let counts: Vec<String> = cols.iter().map(|c| format!("count(t.\"{c}\")")).collect();
    let sql = format!(
        "SELECT {} FROM item_targets t JOIN item_sample s ON s.item_key = t.item_key",
        counts.join(", ")
    );
    let b = engine::collect(ctx, &sql, "item_targets").await?;
    let mut names = Vec::new();
    for (i, c) in cols.iter().enumerate() {
        let n = engine::i64s(b[0].column(i)).value(0);
        if n > 0 {
            names.push(c["t_".len()..].to_string());
        }
    }
    Ok(names)
}

/// A target of `item_targets` that `target_values` or `fit_target_sums` does not list would not be
/// encoded, and nothing else would say so: stop with the file to edit instead.
async fn check_targets_listed(
    ctx: &datafusion::prelude::SessionContext,
    files: &[SqlFile],
    targets: &[String],
) -> Result<()> {
    let file = |view: &str| {
        files
            .iter()
            .find(|f| f.name == view)
            .map_or_else(|| view.to_string(), |f| format!("sql/{}", f.rel))
    };
    let listed = |view: &'static str| async move {
        let b = engine::collect(
            ctx,
            &format!("SELECT DISTINCT target FROM {view} ORDER BY target"),
            view,
        )
        .await?;
        let mut out = Vec::new();
        for batch in &b {
            let a = column_as(batch, "target", &DataType::Utf8, view)?;
            out.extend(strings(&a).iter().flatten().map(str::to_string));
        }
        Ok::<_, Error>(out)
    };
    let scaled = listed("fit_target_scale").await?;
    if let Some(t) = targets.iter().find(|t| !scaled.contains(t)) {
        return Err(Error::sql(
            file("target_values"),
            format!(
                "item_targets has the target column `t_{t}`, but target_values does not list \
                 `{t}`, so it would not be encoded: add its line there and its lines in {} \
                 (or drop the column from item_targets)",
                file("fit_target_sums")
            ),
        ));
    }
    let summed = listed("fit_target_sums").await?;
    if !summed.is_empty()
        && let Some(t) = scaled.iter().find(|t| !summed.contains(t))
    {
        return Err(Error::sql(
            file("fit_target_sums"),
            format!(
                "the target `{t}` of target_values is not summed here, so it would be encoded \
                     as its prior for every item: add its lines to the wide part (`s`) and the \
                     long part (`l`)"
            ),
        ));
    }
    Ok(())
}

/// `models/routings.parquet`: every operation of each routed item's current routing, with the
/// work-order actuals (the `routing_ops` view).
pub const ROUTINGS_FILE: &str = "routings.parquet";
/// `models/item_features.parquet`: the cleaned attributes of every item (`clean_items`), for
/// `recommend`'s explanations and `update`'s change detection.
pub const ITEM_FEATURES_FILE: &str = "item_features.parquet";
pub(crate) const ROUTING_OPS_SQL: &str =
    "SELECT * FROM routing_ops ORDER BY item_key, rout_no, proc_seq";
const ITEM_FEATURES_SQL: &str = "SELECT * FROM clean_items ORDER BY item_key";

/// The items with a current routing, and the routings themselves.
pub struct Routed {
    /// Per item with a current routing, sorted by key: its routing's id (equal JOB_CD
    /// sequences, equal ids).
    pub items: Vec<(String, u32)>,
    /// Per routing id: its operations, JOB_CDs interned. A JOB_CD with an inner space counts as
    /// two operations here (the sequence is read back from `seq_join`'s spaced string), which
    /// only makes the one-operation test of the calibration stricter.
    pub ops: Vec<Vec<u32>>,
}

/// The items with a current routing, and their routings (see [`Routed`]).
pub async fn routed_items(ctx: &datafusion::prelude::SessionContext) -> Result<Routed> {
    let what = "item_targets";
    let batches = engine::collect(
        ctx,
        "SELECT item_key, job_seq FROM item_targets ORDER BY item_key",
        what,
    )
    .await?;
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut codes: HashMap<String, u32> = HashMap::new();
    let mut out = Routed {
        items: Vec::new(),
        ops: Vec::new(),
    };
    for b in &batches {
        let k = column_as(b, "item_key", &DataType::Utf8, what)?;
        let s = column_as(b, "job_seq", &DataType::Utf8, what)?;
        let (k, s) = (strings(&k), strings(&s));
        for r in 0..b.num_rows() {
            let seq = if s.is_valid(r) { s.value(r) } else { "" };
            let id = match ids.get(seq) {
                Some(&id) => id,
                None => {
                    let id = ids.len() as u32;
                    ids.insert(seq.to_string(), id);
                    out.ops.push(
                        seq.split(' ')
                            .filter(|op| !op.is_empty())
                            .map(|op| {
                                let next = codes.len() as u32;
                                *codes.entry(op.to_string()).or_insert(next)
                            })
                            .collect(),
                    );
                    id
                }
            };
            out.items.push((k.value(r).to_string(), id));
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
