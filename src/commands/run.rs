//! `trainer run`: train a model and swap it in.
//!
//! config -> sources -> SQL layers -> item weights -> encode (fit) -> learned weights -> vectors
//! ([`crate::train`]) -> HNSW index -> similarity check -> artifacts. Everything is written into
//! a staging directory beside `models/` and swapped in only when every file is complete, so a
//! failed run leaves the previous model intact.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::engine::sources::SourceInfo;
use crate::engine::sources::snapshot_id;
use crate::engine::sqlfiles::SqlFile;
use crate::error::{Error, Result};
use crate::export::items::{ItemRow, low_entries, tier_of, write_items, write_queue};
use crate::export::log::{RunLog, Timer, log_histogram, mib, progress_bar};
use crate::export::metadata::{git_commit, index_sidecar, sources_json};
use crate::export::projector::{self, MetaRow};
use crate::export::write_vector_files;
use crate::features::learn::LearnReport;
use crate::features::weights::ItemSample;
use crate::fsutil::StagedDir;
use crate::fsutil::write_json;
use crate::hash::sha256_file;
use crate::index::Quantized;
use crate::index::similarity::{Near, answer_of, near_pass, similarity_histogram};
use crate::index::{Hnsw, HnswParams, hnswlib_file};
use crate::model::{METADATA_FILE, PROJECTOR_DIR, QUEUE_FILE};
use crate::train::{
    ItemTable, TrainOptions, TrainedVectors, load_inputs, save_transforms, train_vectors,
};

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

impl RunSummary {
    /// The line `trainer run` prints when it is done.
    pub fn line(&self) -> String {
        format!(
            "trained {} items x {} dims in {:.2} s: {} HIGH, {} LOW; model in {}, log {}",
            self.items,
            self.dim,
            self.seconds,
            self.high,
            self.low,
            self.models_dir.display(),
            self.log_path.display()
        )
    }
}

/// `trainer run` on the command line: train, then print the summary line.
pub async fn execute(config: &Path, quiet: bool) -> Result<()> {
    let s = run(config, &RunOptions { quiet }).await?;
    println!("{}", s.line());
    Ok(())
}

/// `trainer run`.
pub async fn run(config_path: &Path, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    crate::memory::tune_allocator();
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
    save_transforms(&cfg, &files, &fitted_dir)?;
    let mut trained = trained;
    let vecs = std::mem::replace(&mut trained.vectors, Array2::zeros((0, 0)));
    let (n, d) = vecs.dim();

    let (h, quant, tensor) =
        build_index(vecs, cfg.hnsw.params(), cfg.hnsw.ef_search, &out, &mut log)?;
    if let Some(note) = tensor.note() {
        log.info(note);
    }
    timer.lap("index_build", &mut log);

    let items = &trained.items;
    let check = similarity_check(&h, quant, &cfg, &trained, &mut log);
    let rows = item_rows(items, &trained.sample, &trained.has_routing, &check, &cfg);
    crate::export::items::warn_low(&rows, check.low, &mut log);
    timer.lap("similarity_check", &mut log);

    let created_at = chrono::Local::now().to_rfc3339();
    let queued = write_artifacts(&out, &h, tensor, &rows, &cfg, &created_at)?;
    let meta_sha = sha256_file(&cfg.item_metadata)?;
    let snapshot = snapshot_id(&trained.sources, &meta_sha);
    timer.lap("artifacts", &mut log);

    let peak = timer.peak();
    let total = started.elapsed().as_secs_f64();
    let training = training_metadata(&Record {
        cfg: &cfg,
        mapping: &mapping,
        files: &files,
        trained: &trained,
        meta_sha: &meta_sha,
        snapshot: &snapshot,
        dims: d,
        check: &check,
        queued,
        timer: &timer,
        total,
        created_at: &created_at,
    });
    write_json(&out.join(METADATA_FILE), &training)?;
    staged.commit()?;
    log.info(format!(
        "done in {total:.2} s: {n} items, {d} dims, peak RSS {}, model written to {}",
        mib(peak),
        cfg.output.models_dir.display()
    ));
    Ok(RunSummary {
        items: n,
        dim: d,
        high: check.high,
        low: check.low,
        models_dir: cfg.output.models_dir.clone(),
        log_path: log.path.clone(),
        seconds: total,
    })
}

/// Builds the index over the vectors (which it takes, without a copy), with a progress bar on a
/// terminal.
fn build_index(
    vecs: Array2<f32>,
    hp: HnswParams,
    ef_search: usize,
    out: &Path,
    log: &mut RunLog,
) -> Result<(Hnsw, Quantized, projector::Tensor)> {
    let (n, d) = vecs.dim();
    log.info(format!(
        "hnsw: space cosine, M {}, ef_construction {}, ef_search {}, seed {}",
        hp.m, hp.ef_construction, ef_search, hp.seed
    ));
    let bar = progress_bar(n as u64, "index");
    let (flat, _) = vecs.into_raw_vec_and_offset();
    // The vector files are final before the graph is: they are written while it is built
    // (construction reads only the quantised vectors), so the disk works while the cores do.
    let (h, quant, written) = Hnsw::build_beside(
        flat,
        d,
        hp,
        |done, _| {
            if let Some(b) = &bar {
                b.set_position(done as u64)
            }
        },
        |rows| write_vector_files(out, rows),
    );
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok((h, quant, written?))
}

/// Every item's nearest other, the answer its nearest routed others give, and the tier counts.
struct Checked {
    /// Per label: what the check found.
    near: Vec<Near>,
    /// Per label: the first proposal's agreement and the answer's confidence.
    answers: Vec<(Option<u8>, Option<f32>)>,
    high: usize,
    low: usize,
    hist: [usize; 10],
}

/// The similarity check over the whole index (the quantised rows are dropped after it): each
/// item's nearest other, and its tier, that of the answer `recommend` would give it.
fn similarity_check(
    h: &Hnsw,
    quant: Quantized,
    cfg: &Config,
    trained: &TrainedVectors,
    log: &mut RunLog,
) -> Checked {
    let n = h.len();
    let thr = cfg.similarity_threshold;
    let bar = progress_bar(n as u64, "similarity");
    let near = near_pass(
        h,
        &quant,
        0..n as u32,
        &trained.has_routing,
        cfg.hnsw.ef_search,
        |k| {
            if let Some(b) = &bar {
                b.inc(k)
            }
        },
    );
    drop(quant);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let learned = &trained.learned;
    let ops_of = |l: u32| -> &[u32] {
        trained.routing_ids[l as usize].map_or(&[][..], |r| &trained.routing_ops[r as usize][..])
    };
    // Every item's answer compares routings: on both cores, in label order.
    let answers: Vec<(Option<u8>, Option<f32>)> = near
        .par_iter()
        .map(|x| {
            answer_of(
                x,
                ops_of,
                &learned.proposal_calibration,
                &learned.calibration,
            )
        })
        .collect();
    let high = answers
        .iter()
        .filter(|a| a.1.is_some_and(|c| c as f64 >= thr))
        .count();
    let low = n - high;
    log.info(format!(
        "similarity check: {high} items whose answer's confidence is >= {thr} (HIGH, {:.1} %), \
         {low} below (LOW, {:.1} %)",
        100.0 * high as f64 / n.max(1) as f64,
        100.0 * low as f64 / n.max(1) as f64
    ));
    let hist = similarity_histogram(near.iter().map(|x| x.other.map_or(0.0, |o| o.1)));
    log_histogram(log, "similarity histogram", &hist);
    Checked {
        near,
        answers,
        high,
        low,
        hist,
    }
}

/// The rows of `items.parquet` (label order).
fn item_rows<'a>(
    items: &'a ItemTable,
    sample: &ItemSample,
    has_routing: &[bool],
    check: &Checked,
    cfg: &Config,
) -> Vec<ItemRow<'a>> {
    let thr = cfg.similarity_threshold;
    (0..items.keys.len())
        .map(|i| {
            let (agreement, confidence) = check.answers[i];
            ItemRow {
                item_key: &items.keys[i],
                item_cd: &items.item_cd[i],
                part_nm: items.part_nm[i].as_deref(),
                seal_type: items.seal_type[i].as_deref(),
                item_weight: sample.item_weight[i],
                nearest_label: check.near[i].other.map(|x| x.0 as u64),
                nearest_similarity: check.near[i].other.map_or(0.0, |x| x.1),
                agreement,
                confidence,
                radius: check.near[i].radius(),
                has_routing: has_routing[i],
                tier: tier_of(confidence, thr),
            }
        })
        .collect()
}

/// Writes the index, its sidecar, `items.parquet`, the retrain queue and the rest of the
/// projector (its `tensor` and `vectors.npy` were written during the index build) into the
/// staging folder `out`. Returns the number of queued items.
fn write_artifacts(
    out: &Path,
    h: &Hnsw,
    tensor: projector::Tensor,
    rows: &[ItemRow],
    cfg: &Config,
    created_at: &str,
) -> Result<usize> {
    let (n, d) = (rows.len(), h.dim);
    write_json(
        &out.join("hnsw_index.json"),
        &index_sidecar(d, n, &cfg.hnsw.params(), cfg.hnsw.ef_search),
    )?;
    let meta: Vec<MetaRow> = rows.iter().map(MetaRow::from).collect();
    let (index, rest) = rayon::join(
        || hnswlib_file::write(h, &out.join("hnsw_index.bin")),
        || -> Result<usize> {
            write_items(&out.join("items.parquet"), rows)?;
            projector::write_meta(&out.join(PROJECTOR_DIR), (n, d), tensor, &meta)?;
            write_queue(
                &out.join(QUEUE_FILE),
                &low_entries(rows, 0..n, cfg.similarity_threshold, "run", created_at),
            )
        },
    );
    index?;
    rest
}

/// What `training_metadata.json` records of a run.
struct Record<'a> {
    cfg: &'a Config,
    mapping: &'a Mapping,
    files: &'a [SqlFile],
    trained: &'a TrainedVectors,
    meta_sha: &'a str,
    snapshot: &'a str,
    dims: usize,
    check: &'a Checked,
    queued: usize,
    timer: &'a Timer,
    total: f64,
    created_at: &'a str,
}

fn training_metadata(r: &Record) -> Value {
    let cfg = r.cfg;
    let (stage_seconds, stage_rss) = r.timer.json();
    let sources: &[SourceInfo] = &r.trained.sources;
    let learned: &LearnReport = &r.trained.learned;
    json!({
        "model_format_version": crate::model::MODEL_FORMAT_VERSION,
        "model_version": cfg.model_version,
        "data_version": cfg.data_version,
        "trainer_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(&cfg.sql_dir),
        "schema_mapping_version": r.mapping.version,
        "similarity_threshold": cfg.similarity_threshold,
        "data_snapshot_id": r.snapshot,
        "sources": sources_json(sources),
        "item_metadata": {"path": cfg.item_metadata.display().to_string(), "sha256": r.meta_sha},
        "config": cfg,
        "sql": r.files.iter().map(|f| json!({"file": f.rel, "view": f.name, "version": f.version, "grain": f.grain, "sha256": f.sha256})).collect::<Vec<_>>(),
        "row_counts": r.trained.rows,
        "items": r.trained.items.keys.len(),
        "dims": r.dims,
        "dims_dropped_constant": r.trained.dims_dropped,
        "item_weight_fit": {"max_volume": r.trained.sample.max_volume},
        "feature_weights": learned,
        "similarity": {"high": r.check.high, "low": r.check.low, "histogram_0_to_1_by_0.1": r.check.hist, "retrain_queue": r.queued},
        "stage_seconds": stage_seconds,
        "stage_peak_rss_bytes": stage_rss,
        "total_seconds": r.total,
        "peak_rss_bytes": r.timer.peak(),
        "created_at": r.created_at,
        "updates": [],
    })
}
