//! `trainer update`: add the items created since training to a model, without retraining.
//!
//! The configured sources are read and cleaned with the model's own transforms; items whose
//! `item_key` the model does not have are encoded with the fitted state (as `vectorize` encodes
//! a new item), inserted into the saved index (same parameters, levels from the same seeded
//! sequence, so the same inputs give the same bytes), and given their nearest other item and
//! the tier of the answer their nearest routed items give (as `run` does). Existing items whose
//! nearest other is now one of the new items get it as their nearest other; existing items that
//! a new routed item joins among their nearest routed items get their answer and tier again
//! (either way). Items already in the model are never re-encoded: items whose
//! cleaned attributes changed and items that disappeared are counted and listed, as candidates
//! for the next full retraining. Every artifact is rewritten into a staging folder and swapped in
//! as a whole, like `run`; an update with nothing new changes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, StringArray, UInt32Array, make_comparator};
use arrow::compute::{SortOptions, take_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde_json::json;

use crate::apply::{self, Transforms};
use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::engine::{self, ItemVolumes, RowFilter, sources};
use crate::error::{Error, Result};
use crate::export::items::{
    ItemRow, QueueEntry, low_entries, read_queue, tier_of, write_items, write_queue,
};
use crate::export::log::RunLog;
use crate::export::log::{Timer, log_histogram};
use crate::export::metadata::sources_json;
use crate::export::projector::{self, MetaRow};
use crate::export::write_vector_files;
use crate::fsutil::StagedDir;
use crate::fsutil::write_json;
use crate::index::hnswlib_file;
use crate::index::quant::dot_error_bound;
use crate::index::similarity::{Near, answer_of, near_one, near_pass, similarity_histogram};
use crate::index::with_visited;
use crate::model::{
    self, ByKey, INDEX_FILE, ITEM_FEATURES_FILE, ITEMS_FILE, Items, METADATA_FILE, PROJECTOR_DIR,
    QUEUE_FILE, ROUTINGS_FILE, SIDECAR_FILE, SearchParams, VECTORS_FILE,
};
use crate::source_rows::{SOURCE_HASHES_FILE, SourceHashes};
use crate::train::{self, ItemTable};

/// What an update did.
#[derive(Debug, Clone)]
pub struct UpdateSummary {
    /// The update's number (1 for the first update after training); 0 when nothing was new.
    pub update: usize,
    pub added: usize,
    /// New items below the threshold (queued).
    pub low: usize,
    /// Existing items whose nearest other is now a new item.
    pub rechecked: usize,
    /// Existing items that a new routed item joined among their nearest routed items (answer
    /// and tier computed again), and how many of them went LOW -> HIGH and HIGH -> LOW.
    pub reanswered: usize,
    pub raised: usize,
    pub lowered: usize,
    /// Queued items that became HIGH.
    pub resolved: usize,
    pub changed: usize,
    pub disappeared: usize,
    /// Reasons to retrain (empty: none).
    pub advice: Vec<String>,
    pub items: usize,
    pub models_dir: PathBuf,
    pub log_path: PathBuf,
    pub seconds: f64,
}

/// Items to list in the log per kind (all are counted).
const LIST: usize = 50;

/// `trainer update`.
pub async fn update(
    config_path: &Path,
    model_dir: Option<&Path>,
    quiet: bool,
) -> Result<UpdateSummary> {
    let started = Instant::now();
    let cfg = Config::load(config_path)?;
    let dir = model_dir.map_or_else(|| cfg.output.models_dir.clone(), Path::to_path_buf);
    let _lock = crate::fsutil::ModelLock::acquire(&dir)?;
    let meta = model::read_metadata(&dir)?;
    let params = SearchParams::from_metadata(&dir, &meta)?;
    let (trained_cfg, max_volume) = trained_state(&dir, &meta)?;
    let t = Transforms::load(&dir)?;
    let mut log = RunLog::open(&cfg.output.logs_dir, quiet)?;
    log.info(format!(
        "trainer {} update: model {}, config {}",
        env!("CARGO_PKG_VERSION"),
        dir.display(),
        config_path.display()
    ));
    let mut advice = edited_since_training(&cfg, &t, &mut log);
    let mut timer = Timer::new();

    // ---- read: the sources; the items whose source rows are new or changed, cleaned -----------
    // What the model holds, and the item metadata, are read beside the sources.
    let index_path = dir.join(INDEX_FILE);
    let index_job = {
        let (path, ef) = (index_path.clone(), params.ef_construction);
        std::thread::spawn(move || hnswlib_file::read(&path, ef))
    };
    let model_job = {
        let dir = dir.clone();
        std::thread::spawn(move || -> Result<_> {
            Ok((
                Items::load(&dir.join(ITEMS_FILE))?,
                SourceHashes::load(&dir.join(SOURCE_HASHES_FILE))?,
            ))
        })
    };
    let metadata_job = {
        let path = cfg.item_metadata.clone();
        std::thread::spawn(move || -> Result<_> {
            Ok((ItemVolumes::load(&path)?, crate::hash::sha256_file(&path)?))
        })
    };
    let ctx = engine::new_context();
    crate::fsutil::failpoint("update:read");
    let srcs = sources::register_all(&ctx, &cfg, &t.mapping).await?;
    sources::log_sources(&srcs, &mut log);
    engine::register_mapping_views(&ctx, &t.mapping, RowFilter::All).await?;
    let (now_hashes, item_rows) = SourceHashes::with_rows(&ctx).await?;
    let (items, old_hashes) = joined(model_job)?;
    let (current, unchanged, old_features) = match &old_hashes {
        Some(old) => {
            let (mut unchanged, mut listed) = (Vec::new(), Vec::new());
            for (k, h) in now_hashes.iter() {
                let to = if old.get(k) == Some(h) {
                    &mut unchanged
                } else {
                    &mut listed
                };
                to.push(k.to_string());
            }
            let listed_set: std::collections::HashSet<&str> =
                listed.iter().map(String::as_str).collect();
            let rows = item_rows.of_keys(&listed_set)?;
            drop(item_rows);
            // Only the listed items are compared with training: only their rows are read.
            let old_features =
                ByKey::load_where(&dir.join(ITEM_FEATURES_FILE), |k| listed_set.contains(k))?;
            drop(listed_set);
            engine::register_keys(&ctx, "only_items", &listed)?;
            t.define_views_over(&ctx, RowFilter::OnlyListed, Some(rows))
                .await?;
            (apply::clean_items(&ctx).await?, unchanged, old_features)
        }
        None => {
            drop(item_rows);
            log.info(format!(
                "the model has no {SOURCE_HASHES_FILE} (trained by an earlier trainer): every \
                 item is cleaned to find the new and changed ones; this update writes the file"
            ));
            t.define_views(&ctx, RowFilter::All).await?;
            let old_features = ByKey::load(&dir.join(ITEM_FEATURES_FILE))?;
            (apply::clean_items(&ctx).await?, Vec::new(), old_features)
        }
    };
    // The readers' threads freed what they parsed: hand it back before the next stage grows.
    crate::memory::release_free_memory();
    timer.lap("read", &mut log);

    // ---- what is new, changed, gone ------------------------------------------------------------
    let diff = compare(&current, &unchanged, &items, &old_features)?;
    drop((unchanged, old_features));
    log_diff(&diff, now_hashes.len(), items.len(), &mut log);
    let nothing = |log: &mut RunLog, advice: Vec<String>| {
        log.info(format!(
            "nothing new: the model in {} is unchanged",
            dir.display()
        ));
        UpdateSummary {
            update: 0,
            added: 0,
            low: 0,
            rechecked: 0,
            reanswered: 0,
            raised: 0,
            lowered: 0,
            resolved: 0,
            changed: diff.changed.len(),
            disappeared: diff.disappeared.len(),
            advice,
            items: items.len(),
            models_dir: dir.clone(),
            log_path: log.path.clone(),
            seconds: started.elapsed().as_secs_f64(),
        }
    };
    if diff.new_rows.is_empty() {
        return Ok(nothing(&mut log, advice));
    }

    // ---- encode the new items ------------------------------------------------------------------
    let (volumes, meta_sha) = joined(metadata_job)?;
    let NewItems {
        chosen,
        keys: new_keys,
        enc,
        levels,
        routings: new_routings,
        routed,
        weights: new_weights,
    } = encode_new(
        &ctx,
        &t,
        &volumes,
        (&trained_cfg, max_volume),
        &current,
        &diff.new_rows,
    )
    .await?;
    drop(ctx);
    crate::memory::release_free_memory();
    timer.lap("encode", &mut log);

    // ---- insert into the index -----------------------------------------------------------------
    let mut h = joined(index_job)?;
    if h.len() != items.len() || h.dim != enc.vectors.ncols() {
        return Err(Error::input(
            index_path.display().to_string(),
            format!(
                "{} vectors of {} dims, but items.parquet has {} items and the layout {} dims; retrain",
                h.len(),
                h.dim,
                items.len(),
                enc.vectors.ncols()
            ),
        ));
    }
    let start = h.len();
    let added = new_keys.len();
    let flat = enc
        .vectors
        .as_slice()
        .ok_or_else(|| Error::internal("vectors not contiguous"))?;
    crate::fsutil::failpoint("update:index");
    let staged = StagedDir::create(&dir)?;
    let out = staged.path().to_path_buf();
    // Linking the new items takes one core. Beside it: the grown vector files (final once the
    // rows are appended, see `Hnsw::insert_all_beside`), and the tables that do not depend on
    // the index.
    let hashes = grown_hashes(old_hashes.as_ref(), &now_hashes, &items, &diff, &new_keys);
    let mut codes = RoutingCodes::new(items.item_key.iter().chain(&new_keys).map(String::as_str));
    let (quant, (written, tables)) = h.insert_all_beside(flat, params.seed, |rows| {
        std::thread::scope(|scope| {
            let tables = scope.spawn(|| {
                write_tables(
                    &dir,
                    &out,
                    (&chosen, levels),
                    &new_routings,
                    &hashes,
                    &mut codes,
                )
            });
            let written = write_vector_files(&out, rows);
            let tables = tables
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (written, tables)
        })
    });
    let tensor = written?;
    let unseen = tables?;
    drop((hashes, now_hashes, chosen, new_routings));
    let n = h.len();
    // The writer threads' buffers are free now; their arenas would keep them.
    crate::memory::release_free_memory();
    timer.lap("index_insert", &mut log);

    // ---- the new items' answers, and the existing answers they change ------------------------
    let thr = params.threshold;
    let ef = params.ef_search;
    let ops = codes.ops;
    let routed: Vec<bool> = items
        .has_routing
        .iter()
        .copied()
        .chain(new_keys.iter().map(|k| routed.binary_search(k).is_ok()))
        .collect();
    let answer = |near: &Near| {
        answer_of(
            near,
            |l| &ops[l as usize][..],
            &params.proposals,
            &params.calibration,
        )
    };
    let new_near = near_pass(&h, &quant, start as u32..n as u32, &routed, ef, |_| {});
    let Rechecked {
        mut nearest_label,
        mut nearest_sim,
        rechecked,
        joined,
    } = recheck_existing(&h, &quant, start, ef, &items, &routed);
    // An existing item a new routed item joined: its routed neighbours found again, the new
    // ones that joined it included even where the beam would miss them.
    let reanswered: Vec<(usize, Near)> = joined
        .into_par_iter()
        .map(|(j, new)| {
            let mut near = with_visited(|vis| near_one(&h, &quant, j as u32, &routed, ef, vis));
            for (i, sim) in new {
                if near.routed.iter().all(|x| x.0 != i) {
                    near.routed.push((i, sim));
                }
            }
            near.routed
                .sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            near.routed.truncate(crate::features::learn::PROPOSALS);
            (j, near)
        })
        .collect();
    drop(quant);
    // Hand back the pages of the model's rows that the re-rankings read.
    h.vectors().release(0..start);
    nearest_label.extend(new_near.iter().map(|x| x.other.map(|o| u64::from(o.0))));
    nearest_sim.extend(new_near.iter().map(|x| x.other.map_or(0.0, |o| o.1)));
    let mut answers: Vec<(Option<u8>, Option<f32>, Option<f32>)> = (0..start)
        .map(|j| (items.agreement[j], items.confidence[j], items.radius[j]))
        .collect();
    let (mut raised, mut lowered) = (0usize, Vec::new());
    for (j, near) in &reanswered {
        let (a, c) = answer(near);
        match (items.tier[*j].as_str(), tier_of(c, thr)) {
            ("LOW", "HIGH") => raised += 1,
            ("HIGH", "LOW") => lowered.push(*j),
            _ => {}
        }
        answers[*j] = (a, c, near.radius());
    }
    answers.extend(new_near.iter().map(|x| {
        let (a, c) = answer(x);
        (a, c, x.radius())
    }));
    let low = answers[start..]
        .iter()
        .filter(|x| tier_of(x.1, thr) == "LOW")
        .count();
    let hist = similarity_histogram(new_near.iter().map(|x| x.other.map_or(0.0, |o| o.1)));
    drop((new_near, ops));
    timer.lap("similarity_check", &mut log);

    // ---- the items table, the queue ------------------------------------------------------------
    let update_no = meta["updates"].as_array().map_or(0, Vec::len) + 1;
    let at = chrono::Local::now().to_rfc3339();
    let rows = grown_rows(
        &items,
        &enc.items,
        &new_weights,
        &routed,
        (&nearest_label, &nearest_sim),
        &answers,
        thr,
    );
    let by = format!("update {update_no}");
    let mut queue = read_queue(&dir.join(QUEUE_FILE))?;
    let resolved = resolve_queued(&mut queue, &rows, &by, &at);
    // Existing items whose answer fell below the threshold are queued like the new LOW ones.
    queue.extend(low_entries(
        &rows,
        lowered.iter().copied().chain(start..n),
        thr,
        &by,
        &at,
    ));

    log.info(format!(
        "self-supervised update results: {added} items added ({} HIGH, {low} LOW -> queued), \
         {rechecked} existing items now nearest to a new item, {} existing items answered again \
         (a new routed item among their nearest routed ones: {raised} LOW -> HIGH, {} HIGH -> \
         LOW -> queued), {resolved} queued items resolved",
        added - low,
        reanswered.len(),
        lowered.len()
    ));
    log_histogram(&mut log, "new items' similarity histogram", &hist);
    crate::export::items::warn_low(&rows[start..], low, &mut log);

    // ---- advice --------------------------------------------------------------------------------
    advice.extend(retrain_advice(&meta, &cfg, start, added, unseen));
    for a in &advice {
        log.warn(format!("advice: {a}"));
    }

    // ---- artifacts -----------------------------------------------------------------------------
    let rewritten = [
        INDEX_FILE,
        SIDECAR_FILE,
        VECTORS_FILE,
        ITEMS_FILE,
        ITEM_FEATURES_FILE,
        ROUTINGS_FILE,
        QUEUE_FILE,
        PROJECTOR_DIR,
        METADATA_FILE,
        SOURCE_HASHES_FILE,
    ];
    crate::fsutil::failpoint("update:staging");
    copy_others(&dir, &out, &rewritten)?;
    write_grown(&out, &h, tensor, &rows)?;
    if let Some(note) = tensor.note() {
        log.info(note);
    }
    write_queue(&out.join(QUEUE_FILE), &queue)?;
    grown_sidecar(&dir, &out, n)?;
    timer.lap("artifacts", &mut log);
    let (stage_seconds, stage_rss) = timer.json();
    let mut meta = meta;
    let entry = json!({
        "update": update_no,
        "at": at,
        "data_snapshot_id": sources::snapshot_id(&srcs, &meta_sha),
        "sources": sources_json(&srcs),
        "added": added,
        "low": low,
        "existing_items_rechecked": rechecked,
        "existing_items_reanswered": reanswered.len(),
        "existing_items_low_to_high": raised,
        "existing_items_high_to_low": lowered.len(),
        "queued_resolved": resolved,
        "changed_since_training": diff.changed.len(),
        "disappeared": diff.disappeared.len(),
        "new_items_with_unseen_levels": unseen,
        "histogram_0_to_1_by_0.1": hist,
        "items_after": n,
        "advice": advice,
        "stage_seconds": stage_seconds,
        "stage_peak_rss_bytes": stage_rss,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    match meta["updates"].as_array_mut() {
        Some(u) => u.push(entry),
        None => meta["updates"] = json!([entry]),
    }
    write_json(&out.join(METADATA_FILE), &meta)?;
    crate::fsutil::failpoint("update:before_swap");
    staged.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    log.info(format!(
        "update {update_no} done in {seconds:.2} s: {n} items in the model, written to {}",
        dir.display()
    ));
    Ok(UpdateSummary {
        update: update_no,
        added,
        low,
        rechecked,
        reanswered: reanswered.len(),
        raised,
        lowered: lowered.len(),
        resolved,
        changed: diff.changed.len(),
        disappeared: diff.disappeared.len(),
        advice,
        items: n,
        models_dir: dir,
        log_path: log.path.clone(),
        seconds,
    })
}

/// The new items, encoded.
struct NewItems {
    /// Their `clean_items` rows.
    chosen: RecordBatch,
    keys: Vec<String>,
    enc: apply::Encoded,
    /// Their categorical levels, to be looked up among the training items'.
    levels: NewLevels,
    /// `routing_ops` of the new items (their routings and actuals).
    routings: RecordBatch,
    /// The new items with a routing.
    routed: Vec<String>,
    weights: Vec<f64>,
}

/// Encodes the `new_rows` of `current` with the model's fitted state, as `vectorize` encodes a
/// new item; `trained`: the training's config and maximum volume (for the item weights).
async fn encode_new(
    ctx: &datafusion::prelude::SessionContext,
    t: &Transforms,
    volumes: &ItemVolumes,
    trained: (&Config, f64),
    current: &RecordBatch,
    new_rows: &[u32],
) -> Result<NewItems> {
    let idx = UInt32Array::from(new_rows.to_vec());
    let chosen =
        take_record_batch(current, &idx).map_err(|e| Error::internal(format!("new items: {e}")))?;
    let new_keys: Vec<String> = key_column(&chosen)?
        .iter()
        .map(|k| k.unwrap_or_default().to_string())
        .collect();
    engine::register_keys(ctx, "only_items", &new_keys)?;
    t.define_views(ctx, RowFilter::OnlyListed).await?;
    // The new items' routings are read on another core while they are encoded (each query
    // runs on one): planned here over `clean_items` = the new items.
    crate::transform::register(ctx, "clean_items", chosen.clone())?;
    let routing_ops = ctx
        .sql(train::ROUTING_OPS_SQL)
        .await
        .map_err(|e| Error::sql("routing_ops", e.to_string()))?;
    let routing_schema = Arc::new(routing_ops.schema().as_arrow().clone());
    let routing_job =
        tokio::spawn(async move { engine::collect_df(routing_ops, "routing_ops").await });
    let enc = apply::encode(ctx, t, chosen.clone()).await?;
    if enc.items.keys != new_keys {
        return Err(Error::internal("encoded items differ from the new items"));
    }
    let levels = NewLevels::of_session(ctx).await?;
    let new_routings = engine::concat(
        &routing_schema,
        &routing_job
            .await
            .map_err(|e| Error::internal(format!("reading the new items' routings: {e}")))??,
    )?;
    // The new items with a routing are those routing_ops has rows for (not another pass over
    // the routing view).
    let mut routed: Vec<String> = key_column(&new_routings)?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    routed.dedup();
    crate::transform::register(ctx, "item_metadata", volumes.to_batch())?;
    let new_weights = crate::features::weights::new_item_weights(ctx, trained.0, trained.1).await?;
    Ok(NewItems {
        chosen,
        keys: new_keys,
        enc,
        levels,
        routings: new_routings,
        routed,
        weights: new_weights,
    })
}

/// Writes the grown index, the rest of the projector (its `tensor` and `vectors.npy` were
/// written during the insertion) and the items table into the staging folder `out`.
fn write_grown(
    out: &Path,
    h: &crate::index::hnsw::Hnsw,
    tensor: projector::Tensor,
    rows: &[ItemRow],
) -> Result<()> {
    let meta_rows: Vec<MetaRow> = rows.iter().map(MetaRow::from).collect();
    let (index, rest) = rayon::join(
        || hnswlib_file::write(h, &out.join(INDEX_FILE)),
        || -> Result<()> {
            projector::write_meta(
                &out.join(PROJECTOR_DIR),
                (h.len(), h.dim),
                tensor,
                &meta_rows,
            )?;
            write_items(&out.join(ITEMS_FILE), rows)
        },
    );
    index?;
    rest
}

/// Writes the grown item features, routings and source hashes into the staging folder `out`
/// (`dir`: the model they grow): the model's tables with the new items' rows (`chosen`: their
/// `clean_items` rows) merged in, read and written a batch at a time.
/// Returns how many new items carry a categorical level that no model item has, looked up
/// (`levels`) in the model's item features as they pass; `codes` gathers every routing.
fn write_tables(
    dir: &Path,
    out: &Path,
    features: (&RecordBatch, NewLevels),
    new_routings: &RecordBatch,
    hashes: &SourceHashes,
    codes: &mut RoutingCodes,
) -> Result<usize> {
    let (chosen, mut levels) = features;
    let (f, r) = rayon::join(
        || {
            merge_file_by_key(
                &dir.join(ITEM_FEATURES_FILE),
                chosen,
                &out.join(ITEM_FEATURES_FILE),
                |b| levels.seen_in(b),
            )?;
            hashes.save(&out.join(SOURCE_HASHES_FILE))?;
            Ok(levels.unseen_items())
        },
        || {
            merge_file_by_key(
                &dir.join(ROUTINGS_FILE),
                new_routings,
                &out.join(ROUTINGS_FILE),
                |b| codes.add(b),
            )?;
            codes.add(new_routings)
        },
    );
    r?;
    f
}

/// Each item's current routing as interned JOB_CDs (label order; empty: none), gathered from
/// the routing rows as they pass: what an answer's agreement compares, as `recommend` compares
/// routings (by their JOB_CDs in order, a missing one a code of its own).
struct RoutingCodes<'a> {
    label: HashMap<&'a str, u32>,
    interned: HashMap<String, u32>,
    ops: Vec<Vec<u32>>,
}

impl<'a> RoutingCodes<'a> {
    /// For the items `keys` (label order).
    fn new(keys: impl Iterator<Item = &'a str>) -> Self {
        let label: HashMap<&str, u32> = keys.enumerate().map(|(i, k)| (k, i as u32)).collect();
        let n = label.len();
        RoutingCodes {
            label,
            interned: HashMap::new(),
            ops: vec![Vec::new(); n],
        }
    }

    /// Adds the rows of `b` (`item_key`, `job_cd`; an item's rows in order).
    fn add(&mut self, b: &RecordBatch) -> Result<()> {
        let keys = key_strings(b)?;
        let jobs = b
            .column_by_name("job_cd")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| {
                Error::input(
                    ROUTINGS_FILE,
                    "no text column `job_cd`; retrain".to_string(),
                )
            })?;
        let mut cur: Option<(&str, u32)> = None;
        for r in 0..b.num_rows() {
            let key = keys.value(r);
            let label = match cur {
                Some((k, l)) if k == key => l,
                _ => {
                    let Some(&l) = self.label.get(key) else {
                        return Err(Error::input(
                            ROUTINGS_FILE,
                            format!(
                                "routing rows of item_key {key:?}, which the model does not have; retrain"
                            ),
                        ));
                    };
                    cur = Some((key, l));
                    l
                }
            };
            let code = if jobs.is_null(r) {
                u32::MAX
            } else {
                let job = jobs.value(r);
                match self.interned.get(job) {
                    Some(&c) => c,
                    None => {
                        let c = self.interned.len() as u32;
                        self.interned.insert(job.to_string(), c);
                        c
                    }
                }
            };
            self.ops[label as usize].push(code);
        }
        Ok(())
    }
}

/// The model's table at `old` (sorted by `item_key`) with `new`'s rows (sorted, no key in
/// common) merged in, written to `out`: [`merge_by_key`] one of `old`'s batches at a time, so
/// that neither table is held whole. A new row goes into the batch whose last key is the first
/// at or above its own, which is where the merge of the whole tables puts it.
/// `each` sees every batch of `old` as it passes.
fn merge_file_by_key(
    old: &Path,
    new: &RecordBatch,
    out: &Path,
    each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    merge_file_in_batches(old, new, out, 64 * 1024, each)
}

fn merge_file_in_batches(
    old: &Path,
    new: &RecordBatch,
    out: &Path,
    batch_rows: usize,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let shown = old.display().to_string();
    let bad = |m: String| Error::input(&shown, m);
    let file = std::fs::File::open(old).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}; retrain")))?;
    let schema = builder.schema().clone();
    let mut reader = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let new_keys = key_strings(new)?;
    let out_schema = schema.clone();
    let (mut next, mut last, mut done) = (0usize, None::<String>, false);
    let merged = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut step = || -> Result<Option<RecordBatch>> {
            let Some(b) = reader.next() else {
                done = true;
                let rest = new.slice(next, new.num_rows() - next);
                next = new.num_rows();
                return (rest.num_rows() > 0)
                    .then(|| merge_by_key(&RecordBatch::new_empty(schema.clone()), &rest))
                    .transpose();
            };
            let b = b.map_err(|e| bad(e.to_string()))?;
            each(&b)?;
            let keys =
                key_strings(&b).map_err(|_| bad("no text column `item_key`; retrain".into()))?;
            if keys.null_count() > 0 {
                return Err(bad("`item_key` has empty rows; retrain".into()));
            }
            let sorted = keys
                .iter()
                .flatten()
                .zip(keys.iter().flatten().skip(1))
                .all(|(a, b)| a <= b);
            if !sorted || (keys.len() > 0 && last.as_deref().is_some_and(|l| l > keys.value(0))) {
                return Err(bad("rows are not sorted by item_key; retrain".into()));
            }
            let Some(top) = (keys.len() > 0).then(|| keys.value(keys.len() - 1)) else {
                return Ok(Some(b));
            };
            let upto = next
                + crate::model::partition(new_keys.len() - next, |i| {
                    new_keys.value(next + i) <= top
                });
            let merged = merge_by_key(&b, &new.slice(next, upto - next))?;
            next = upto;
            last = Some(top.to_string());
            Ok(Some(merged))
        };
        step().transpose()
    });
    crate::parquet_io::write_batches(out, out_schema, merged.fuse())
}

/// `item_key` of `b` as text.
fn key_strings(b: &RecordBatch) -> Result<StringArray> {
    let c = b
        .column_by_name("item_key")
        .ok_or_else(|| Error::internal("merging new items: no item_key column"))?;
    let c = arrow::compute::cast(c, &DataType::Utf8)
        .map_err(|e| Error::internal(format!("merging new items: {e}")))?;
    Ok(c.as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8")
        .clone())
}

fn key_column(b: &RecordBatch) -> Result<&StringArray> {
    b.column_by_name("item_key")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| {
            Error::sql(
                "clean_items",
                "the view must return a text column `item_key`",
            )
        })
}

/// The sources' items against the model's.
struct Diff {
    /// Rows of the current `clean_items` whose item_key the model does not have.
    new_rows: Vec<u32>,
    /// ITEM_CD and the columns that differ from training, of items in both.
    changed: Vec<(String, Vec<String>)>,
    /// The item keys of `changed`.
    changed_keys: std::collections::HashSet<String>,
    /// ITEM_CDs of model items no longer in the sources.
    disappeared: Vec<String>,
}

/// `current`: the cleaned rows of the items that may be new or changed; `unchanged`: keys of
/// model items whose source rows are as at training (not cleaned again).
fn compare(
    current: &RecordBatch,
    unchanged: &[String],
    items: &Items,
    old: &ByKey,
) -> Result<Diff> {
    let by_key = items.by_key();
    let keys = key_column(current)?;
    let mut seen = vec![false; items.len()];
    for k in unchanged {
        if let Some(&l) = by_key.get(k.as_str()) {
            seen[l as usize] = true;
        }
    }
    let mut new_rows = Vec::new();
    let mut pairs = Vec::new();
    for (r, k) in keys.iter().enumerate() {
        let k = k.unwrap_or_default();
        match by_key.get(k) {
            Some(&l) => {
                seen[l as usize] = true;
                let rows = old.rows(k);
                if !rows.is_empty() {
                    pairs.push((r, rows.start, l));
                }
            }
            None => new_rows.push(r as u32),
        }
    }
    let schema = current.schema();
    let mut cmps = Vec::new();
    for (c, f) in schema.fields().iter().enumerate() {
        if f.name() == "item_key" {
            continue;
        }
        let Some(o) = old.column(f.name()) else {
            // A column the model never saw: every item differs in it.
            cmps.push((f.name().clone(), None));
            continue;
        };
        let cur = current.column(c);
        let o = if o.data_type() != cur.data_type() {
            arrow::compute::cast(o, cur.data_type())
                .map_err(|e| Error::internal(format!("comparing `{}`: {e}", f.name())))?
        } else {
            Arc::clone(o)
        };
        let cmp = make_comparator(cur.as_ref(), o.as_ref(), SortOptions::default())
            .map_err(|e| Error::internal(format!("comparing `{}`: {e}", f.name())))?;
        cmps.push((f.name().clone(), Some(cmp)));
    }
    let mut changed = Vec::new();
    let mut changed_keys = std::collections::HashSet::new();
    for (r, o, l) in pairs {
        let cols: Vec<String> = cmps
            .iter()
            .filter(|(_, c)| c.as_ref().is_none_or(|c| c(r, o).is_ne()))
            .map(|(n, _)| n.clone())
            .collect();
        if !cols.is_empty() {
            changed_keys.insert(keys.value(r).to_string());
            changed.push((items.item_cd[l as usize].clone(), cols));
        }
    }
    let disappeared = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| items.item_cd[i].clone())
        .collect();
    Ok(Diff {
        new_rows,
        changed,
        changed_keys,
        disappeared,
    })
}

/// The one-hot levels of the new items (of the session's `clean_items`), to be looked up among
/// the model items' values: a new item with a level that no model item has (a value the model
/// never saw; missing is a level of its own and does not count) is a reason to retrain. The
/// one-hot levels are `clean_items` values (sql/03_encode/10_enc_onehot_input.sql), so the
/// model items' values are those of `item_features.parquet`, looked up batch by batch while
/// the update rewrites that file.
struct NewLevels {
    /// feature -> level -> the new items with it; a level is removed once a model item has it.
    pending: std::collections::BTreeMap<String, std::collections::HashMap<String, Vec<String>>>,
    /// Features that are columns of the model's item features (others cannot be checked).
    checkable: std::collections::HashSet<String>,
}

impl NewLevels {
    async fn of_session(ctx: &datafusion::prelude::SessionContext) -> Result<NewLevels> {
        let sql =
            "SELECT item_key, feature, level FROM enc_onehot_input WHERE level <> '(missing)'";
        let batches = engine::collect(ctx, sql, "enc_onehot_input").await?;
        let mut pending = std::collections::BTreeMap::new();
        for b in &batches {
            let what = "enc_onehot_input";
            let k = engine::column_as(b, "item_key", &DataType::Utf8, what)?;
            let f = engine::column_as(b, "feature", &DataType::Utf8, what)?;
            let l = engine::column_as(b, "level", &DataType::Utf8, what)?;
            let (k, f, l) = (
                engine::strings(&k),
                engine::strings(&f),
                engine::strings(&l),
            );
            for r in 0..b.num_rows() {
                pending
                    .entry(f.value(r).to_string())
                    .or_insert_with(std::collections::HashMap::new)
                    .entry(l.value(r).to_string())
                    .or_insert_with(Vec::new)
                    .push(k.value(r).to_string());
            }
        }
        Ok(NewLevels {
            pending,
            checkable: Default::default(),
        })
    }

    /// Removes the levels that the model items of `b` have.
    fn seen_in(&mut self, b: &RecordBatch) -> Result<()> {
        for (feature, levels) in self.pending.iter_mut() {
            let Some(c) = b.column_by_name(feature) else {
                continue;
            };
            self.checkable.insert(feature.clone());
            if levels.is_empty() {
                continue;
            }
            let c = arrow::compute::cast(c, &DataType::Utf8)
                .map_err(|e| Error::internal(format!("reading `{feature}`: {e}")))?;
            for v in engine::strings(&c).iter().flatten() {
                levels.remove(v);
            }
        }
        Ok(())
    }

    /// How many new items have a level that no model item has, in a feature that could be
    /// checked.
    fn unseen_items(&self) -> usize {
        let items: std::collections::HashSet<&str> = self
            .pending
            .iter()
            .filter(|(f, _)| self.checkable.contains(*f))
            .flat_map(|(_, levels)| levels.values().flatten().map(String::as_str))
            .collect();
        items.len()
    }
}

/// `old` and `new`, both sorted by `item_key` and with no key in common (new items), merged into
/// one table sorted by `item_key` (columns matched by name and cast to `old`'s types). Each
/// key's rows stay together in their own order. A linear merge.
fn merge_by_key(old: &RecordBatch, new: &RecordBatch) -> Result<RecordBatch> {
    let schema = old.schema();
    let err = |e: arrow::error::ArrowError| Error::internal(format!("merging new items: {e}"));
    let (ko, kn) = (key_strings(old)?, key_strings(new)?);
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(ko.len() + kn.len());
    let (mut i, mut j) = (0, 0);
    while i < ko.len() || j < kn.len() {
        let take_old = j == kn.len() || (i < ko.len() && ko.value(i) <= kn.value(j));
        if take_old {
            order.push((0, i));
            i += 1;
        } else {
            order.push((1, j));
            j += 1;
        }
    }
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, f) in schema.fields().iter().enumerate() {
        let add = new
            .column_by_name(f.name())
            .ok_or_else(|| Error::internal(format!("new rows lack column `{}`", f.name())))?;
        let add = arrow::compute::cast(add, f.data_type()).map_err(err)?;
        cols.push(
            arrow::compute::interleave(&[old.column(c).as_ref(), add.as_ref()], &order)
                .map_err(err)?,
        );
    }
    RecordBatch::try_new(schema, cols).map_err(err)
}

/// The grown model's source hashes: the model's own (`old`) and the added items' (`new_keys`)
/// from `now`. A model without them gets `now`'s of its items that did not change since
/// training; a changed item keeps no hash, so that later updates clean it again and keep
/// listing it.
fn grown_hashes(
    old: Option<&SourceHashes>,
    now: &SourceHashes,
    items: &Items,
    diff: &Diff,
    new_keys: &[String],
) -> SourceHashes {
    match old {
        Some(old) => old.with(now, new_keys),
        None => {
            let in_model = items.by_key();
            let added: std::collections::HashSet<&str> =
                new_keys.iter().map(String::as_str).collect();
            let mut h = now.clone();
            h.retain(|k| {
                added.contains(k) || (in_model.contains_key(k) && !diff.changed_keys.contains(k))
            });
            h
        }
    }
}

/// The result of a thread that reads what the update needs beside the sources.
fn joined<T>(job: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    job.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Copies everything in `from` except the names in `skip` into `to` (recursively): files a
/// model carries that an update does not change (`fitted/`, an `eval_report.json`).
fn copy_others(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    let rd = std::fs::read_dir(from)
        .map_err(|e| Error::input(from.display().to_string(), e.to_string()))?;
    for e in rd {
        let e = e.map_err(|e| Error::input(from.display().to_string(), e.to_string()))?;
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        copy_tree(&e.path(), &to.join(&name))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, "create the directory", e))?;
        let rd = std::fs::read_dir(from)
            .map_err(|e| Error::input(from.display().to_string(), e.to_string()))?;
        for e in rd {
            let e = e.map_err(|e| Error::input(from.display().to_string(), e.to_string()))?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| Error::io(to, "copy the file", e))
    }
}

/// `trainer update` on the command line: update, then print what happened and any advice.
pub async fn execute(config: &Path, model: Option<&Path>, quiet: bool) -> Result<()> {
    let s = update(config, model, quiet).await?;
    if s.update == 0 {
        println!(
            "nothing new: {} items in the model, unchanged ({} changed and {} gone since training, see the log); log {}",
            s.items,
            s.changed,
            s.disappeared,
            s.log_path.display()
        );
    } else {
        println!(
            "update {}: added {} items ({} LOW, queued) in {:.2} s; {} existing items now nearest to a new one; {} existing items answered again ({} LOW -> HIGH, {} HIGH -> LOW, queued); {} queued items resolved; {} changed and {} gone since training (see the log); model in {} ({} items), log {}",
            s.update,
            s.added,
            s.low,
            s.seconds,
            s.rechecked,
            s.reanswered,
            s.raised,
            s.lowered,
            s.resolved,
            s.changed,
            s.disappeared,
            s.models_dir.display(),
            s.items,
            s.log_path.display()
        );
    }
    for a in &s.advice {
        println!("advice: {a}");
    }
    Ok(())
}

/// The config the model was trained with and the largest training volume (new items' volume
/// weights are relative to it), from its metadata.
fn trained_state(dir: &Path, meta: &serde_json::Value) -> Result<(Config, f64)> {
    let meta_path = dir.join(METADATA_FILE);
    let trained_cfg: Config = serde_json::from_value(meta["config"].clone()).map_err(|e| {
        Error::input(
            meta_path.display().to_string(),
            format!("its `config` cannot be read back ({e}); retrain with `trainer run`"),
        )
    })?;
    let max_volume = meta
        .pointer("/item_weight_fit/max_volume")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| {
            Error::input(
                meta_path.display().to_string(),
                "`item_weight_fit.max_volume` is missing; retrain with `trainer run`",
            )
        })?;
    Ok((trained_cfg, max_volume))
}

/// Advice when the working tree's SQL or mapping differ from the model's copies.
fn edited_since_training(cfg: &Config, t: &Transforms, log: &mut RunLog) -> Vec<String> {
    let mut advice = Vec::new();
    if let (Ok(files), Ok(mapping)) = (
        crate::engine::sqlfiles::load(&cfg.sql_dir),
        Mapping::load(&cfg.mapping),
    ) {
        let edited = t.edited_since(&files, &mapping);
        if !edited.is_empty() {
            let msg = format!(
                "changed since training: {}; new items are encoded with the model's own copies, \
                 a full `trainer run` picks the changes up",
                edited.join(", ")
            );
            log.warn(&msg);
            advice.push(msg);
        }
    }
    advice
}

/// What is new, changed and gone, in the log (counts, and the first items of each kind).
fn log_diff(diff: &Diff, in_sources: usize, in_model: usize, log: &mut RunLog) {
    log.info(format!(
        "items: {} in the sources, {} in the model; {} new, {} changed since training, {} no longer in the sources",
        in_sources,
        in_model,
        diff.new_rows.len(),
        diff.changed.len(),
        diff.disappeared.len()
    ));
    for (cd, cols) in diff.changed.iter().take(LIST) {
        log.info(format!(
            "changed since training (not re-encoded; retrain to pick it up): {cd} ({})",
            cols.join(", ")
        ));
    }
    if diff.changed.len() > LIST {
        log.info(format!(
            "... and {} more changed items",
            diff.changed.len() - LIST
        ));
    }
    for cd in diff.disappeared.iter().take(LIST) {
        log.info(format!(
            "no longer in the sources (still in the model): {cd}"
        ));
    }
    if diff.disappeared.len() > LIST {
        log.info(format!(
            "... and {} more items no longer in the sources",
            diff.disappeared.len() - LIST
        ));
    }
}

/// The existing items' nearest others after the insertion, and which of them changed.
struct Rechecked {
    nearest_label: Vec<Option<u64>>,
    nearest_sim: Vec<f32>,
    /// Existing items whose nearest other is now a new item.
    rechecked: usize,
    /// Existing items (ascending) with the new routed items (label, similarity) that are at
    /// least as close as the farthest routed neighbour their answer counted.
    joined: Vec<(usize, Vec<(u32, f32)>)>,
}

/// A new item can only change what an existing item saw by being close to it: looks at the
/// existing items among each new item's `ef` nearest, found by a search on the quantised
/// vectors. It becomes an existing item's nearest other when it is closer than that one, and
/// joins its nearest routed items (if it has a routing) when it is at least as close as the
/// farthest of them ([`Near::radius`]). An existing item's f32 similarity to the new one is
/// computed only where the quantised one comes within [`dot_error_bound`] of either, so the
/// model's f32 rows (read in place from its index file) are read for a few candidates only.
fn recheck_existing(
    h: &crate::index::Hnsw,
    quant: &crate::index::Quantized,
    start: usize,
    ef: usize,
    items: &Items,
    routed: &[bool],
) -> Rechecked {
    let n = h.len();
    let bound = dot_error_bound(h.dim());
    // The similarity a new routed item must reach to join an existing item's routed
    // neighbours (none counted: any).
    let reach = |j: usize| items.radius[j].unwrap_or(f32::NEG_INFINITY);
    let found: Vec<Vec<(u32, u32, f32)>> = (start as u32..n as u32)
        .into_par_iter()
        .map(|i| {
            let joins = routed[i as usize];
            with_visited(|vis| h.search_quantized(quant, i, ef, vis))
                .into_iter()
                .filter(|&(dq, j)| {
                    let j = j as usize;
                    j < start
                        && (1.0 - dq >= items.nearest_similarity[j] - bound
                            || (joins && 1.0 - dq >= reach(j) - bound))
                })
                .map(|(_, j)| (j, i, 1.0 - h.dist_between(i, j)))
                .collect()
        })
        .collect();
    let mut nearest_label = items.nearest_label.clone();
    let mut nearest_sim = items.nearest_similarity.clone();
    let mut rechecked = 0usize;
    let mut joined: HashMap<usize, Vec<(u32, f32)>> = HashMap::new();
    for (j, i, sim) in found.into_iter().flatten() {
        let j = j as usize;
        let better = sim > nearest_sim[j]
            || (sim == nearest_sim[j] && nearest_label[j].is_some_and(|l| (i as u64) < l));
        if better {
            if nearest_label[j].is_none_or(|l| (l as usize) < start) {
                rechecked += 1;
            }
            nearest_sim[j] = sim;
            nearest_label[j] = Some(i as u64);
        }
        if routed[i as usize] && sim >= reach(j) {
            joined.entry(j).or_default().push((i, sim));
        }
    }
    let mut joined: Vec<(usize, Vec<(u32, f32)>)> = joined.into_iter().collect();
    joined.sort_unstable_by_key(|x| x.0);
    Rechecked {
        nearest_label,
        nearest_sim,
        rechecked,
        joined,
    }
}

/// Marks the open queue entries whose item is now HIGH as resolved by `by`; returns how many.
fn resolve_queued(queue: &mut [QueueEntry], rows: &[ItemRow], by: &str, at: &str) -> usize {
    let by_cd: std::collections::HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.item_cd, i))
        .collect();
    let mut resolved = 0usize;
    for e in queue.iter_mut().filter(|e| e.is_open()) {
        if let Some(&i) = by_cd.get(e.item_cd.as_str())
            && rows[i].tier == "HIGH"
        {
            e.resolved_by = by.to_string();
            e.resolved_at = at.to_string();
            e.resolved_confidence = rows[i].confidence;
            resolved += 1;
        }
    }
    resolved
}

/// Advice to retrain: too many items added since training, or too many new items with category
/// levels the training never saw.
fn retrain_advice(
    meta: &serde_json::Value,
    cfg: &Config,
    start: usize,
    added: usize,
    unseen: usize,
) -> Vec<String> {
    let mut advice = Vec::new();
    let trained_items = meta["items"].as_u64().unwrap_or(start as u64) as usize;
    let added_before: usize = meta["updates"].as_array().map_or(0, |u| {
        u.iter().filter_map(|x| x["added"].as_u64()).sum::<u64>() as usize
    });
    let share = (added_before + added) as f64 / trained_items.max(1) as f64;
    if share > cfg.update.retrain_share {
        advice.push(format!(
            "{} items were added since training, {:.1} % of the {trained_items} trained items \
             (update.retrain_share {}): retrain with `trainer run`",
            added_before + added,
            100.0 * share,
            cfg.update.retrain_share
        ));
    }
    let unseen_share = unseen as f64 / added as f64;
    if unseen_share > cfg.update.unseen_level_share {
        advice.push(format!(
            "{unseen} of the {added} new items ({:.1} %) carry a category level no training item \
             had (update.unseen_level_share {}): retrain with `trainer run`",
            100.0 * unseen_share,
            cfg.update.unseen_level_share
        ));
    }
    advice
}

/// `hnsw_index.json` of the grown index: the model's, with the new N.
fn grown_sidecar(dir: &Path, out: &Path, n: usize) -> Result<()> {
    let mut sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(SIDECAR_FILE)).map_err(|e| {
            Error::input(dir.join(SIDECAR_FILE).display().to_string(), e.to_string())
        })?,
    )
    .map_err(|e| Error::input(dir.join(SIDECAR_FILE).display().to_string(), e.to_string()))?;
    sidecar["N"] = json!(n);
    write_json(&out.join(SIDECAR_FILE), &sidecar)?;
    Ok(())
}

/// The rows of the grown `items.parquet`: the model's items (with their nearest others as
/// rechecked), then the new ones.
fn grown_rows<'a>(
    items: &'a Items,
    new: &'a ItemTable,
    new_weights: &[f64],
    routed: &[bool],
    (nearest_label, nearest_sim): (&[Option<u64>], &[f32]),
    answers: &[(Option<u8>, Option<f32>, Option<f32>)],
    thr: f64,
) -> Vec<ItemRow<'a>> {
    (0..nearest_sim.len())
        .map(|i| {
            let (key, cd, part, seal, w, has) = if i < items.len() {
                (
                    items.item_key[i].as_str(),
                    items.item_cd[i].as_str(),
                    items.part_nm[i].as_deref(),
                    items.seal_type[i].as_deref(),
                    items.item_weight[i],
                    items.has_routing[i],
                )
            } else {
                let k = i - items.len();
                (
                    new.keys[k].as_str(),
                    new.item_cd[k].as_str(),
                    new.part_nm[k].as_deref(),
                    new.seal_type[k].as_deref(),
                    new_weights[k],
                    routed[i],
                )
            };
            let (agreement, confidence, radius) = answers[i];
            ItemRow {
                item_key: key,
                item_cd: cd,
                part_nm: part,
                seal_type: seal,
                item_weight: w,
                nearest_label: nearest_label[i],
                nearest_similarity: nearest_sim[i],
                agreement,
                confidence,
                radius,
                has_routing: has,
                tier: tier_of(confidence, thr),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    fn table(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn merging_a_file_batch_by_batch_equals_merging_the_whole_tables() {
        let dir = tempfile::tempdir().unwrap();
        // Several rows per key, keys at batch ends, new keys before, between and after them.
        let old = table(&[
            ("B", 1),
            ("B", 2),
            ("D", 3),
            ("F", 4),
            ("F", 5),
            ("F", 6),
            ("H", 7),
        ]);
        let old_path = dir.path().join("old.parquet");
        crate::parquet_io::write_parquet(&old_path, &old).unwrap();
        let news = [
            table(&[
                ("A", 10),
                ("C", 11),
                ("C", 12),
                ("E", 13),
                ("G", 14),
                ("Z", 15),
            ]),
            table(&[("A", 10)]),
            table(&[("Z", 15), ("Z", 16)]),
            table(&[]),
        ];
        for new in &news {
            let whole = merge_by_key(&old, new).unwrap();
            for rows in [1, 2, 3, 64] {
                let out = dir.path().join(format!("out-{rows}.parquet"));
                merge_file_in_batches(&old_path, new, &out, rows, |_| Ok(())).unwrap();
                let back = crate::transform::load_table(&out).unwrap();
                assert_eq!(
                    back,
                    whole,
                    "batches of {rows}, new keys {:?}",
                    key_strings(new)
                );
            }
        }
    }

    #[test]
    fn new_levels_are_unseen_until_a_model_item_has_them() {
        let level_rows = |rows: &[(&str, &[&str])]| {
            rows.iter()
                .map(|(l, items)| (l.to_string(), items.iter().map(|k| k.to_string()).collect()))
                .collect()
        };
        let mut levels = NewLevels {
            pending: [
                (
                    "seal".to_string(),
                    level_rows(&[("X", &["N1"]), ("Y", &["N2", "N3"])]),
                ),
                ("grade".to_string(), level_rows(&[("G9", &["N1", "N4"])])),
                // Not a column of the model's features: cannot be checked, never counted.
                ("other".to_string(), level_rows(&[("Q", &["N5"])])),
            ]
            .into_iter()
            .collect(),
            checkable: Default::default(),
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("seal", DataType::Utf8, true),
            Field::new("grade", DataType::Int64, true),
        ]));
        let batch = |keys: &[&str], seal: &[Option<&str>], grade: &[Option<i64>]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(keys.iter())),
                    Arc::new(StringArray::from(seal.to_vec())),
                    Arc::new(Int64Array::from(grade.to_vec())),
                ],
            )
            .unwrap()
        };
        levels
            .seen_in(&batch(&["A", "B"], &[Some("X"), None], &[Some(1), None]))
            .unwrap();
        // N1 (G9), N2 and N3 (Y), N4 (G9) still have an unseen level.
        assert_eq!(levels.unseen_items(), 4);
        levels
            .seen_in(&batch(&["C"], &[Some("Y")], &[Some(2)]))
            .unwrap();
        assert_eq!(levels.unseen_items(), 2);
        levels.seen_in(&batch(&["D"], &[None], &[Some(9)])).unwrap();
        assert_eq!(levels.unseen_items(), 2, "9 is not the level G9");
    }

    #[test]
    fn merging_into_an_unsorted_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let old_path = dir.path().join("routings.parquet");
        crate::parquet_io::write_parquet(&old_path, &table(&[("B", 1), ("C", 2), ("A", 3)]))
            .unwrap();
        let out = dir.path().join("out.parquet");
        for rows in [1, 2, 64] {
            let e = merge_file_in_batches(&old_path, &table(&[("D", 4)]), &out, rows, |_| Ok(()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("routings.parquet") && e.contains("not sorted by item_key"),
                "{e}"
            );
            assert!(!out.exists());
        }
    }
}
