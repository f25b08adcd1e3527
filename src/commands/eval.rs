//! `trainer eval`: does the model call items similar that really share routings?
//!
//! A seeded fraction of the items that have a current routing is held out: their routing and
//! work-order rows are left out of training (they stay in the item view, as a new item does
//! before its routing is written). After training, each held-out item's nearest neighbours among
//! the items that have routings are compared with its own current JOB_CD sequence (from the full
//! data). Three encodings are scored on the same split in the same run:
//!
//! * `trainer`: the pipeline as configured;
//! * `no_weights`: the same pipeline with every feature weight 1 and every item weight 1;
//! * `naive`: no cleaning, no SQL encoding, no weights: every raw item column, text as ordinal
//!   codes (sorted distinct values, missing = 0), numbers as they are (missing = 0), each column
//!   standardised, rows L2-normalised.
//!
//! Neighbours come from exact cosine search (a blocked matrix product), so the scores measure the
//! vectors; the HNSW index is scored separately (recall@10 against exact search on a sample, and
//! the similarity check's nearest-other against exact), and the `trainer` variant is also scored
//! through the index as the recommender would query it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ListArray};
use arrow::datatypes::DataType;
use ndarray::{Array2, ArrayView2, s};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::config::Config;
use crate::engine::{self, Engine, ItemVolumes, column_as, strings};
use crate::error::{Error, Result};
use crate::export::log::RunLog;
use crate::export::log::Timer;
use crate::features::learn::{
    Calibration, Hit, PROPOSALS, ProposalCalibration, agreement, keep_best, proposal_order,
    proposal_pool, within_one_op,
};
use crate::fsutil::atomic_write;
use crate::fsutil::write_json;
use crate::index::Hnsw;
use crate::index::similarity::{NEAREST_OTHER_EF, near_one};
use crate::index::with_visited;
use crate::rng::{fnv1a64, mix64};
use crate::train::{self, TrainOptions};
use crate::transform;

/// Options of `trainer eval`.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Share of the items with a routing that is held out, in (0, 0.5].
    pub holdout: f64,
    /// Seed of the holdout draw.
    pub seed: u64,
    /// Items whose index search is compared with exact search.
    pub recall_queries: usize,
    /// Print training progress lines.
    pub verbose: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            holdout: 0.02,
            seed: 42,
            recall_queries: 1000,
            verbose: false,
        }
    }
}

/// Scores of one encoding on the held-out items.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub queries: usize,
    /// The first proposal has the query's routing.
    pub top1_match: f64,
    /// The nearest routed neighbour has the query's routing.
    pub nearest_top1_match: f64,
    /// One of the first 5 (10) proposals has the query's routing.
    pub hit_at_5: f64,
    pub hit_at_10: f64,
    pub top1_seq_similarity: f64,
    pub top1_at_or_above_threshold: f64,
    /// Held-out items whose top-1 cosine similarity is at or above the threshold (HIGH).
    pub high: usize,
    pub high_top1_match: f64,
    pub high_hit_at_5: f64,
    pub high_top1_seq_similarity: f64,
    pub low_top1_match: f64,
    pub low_hit_at_5: f64,
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: &'static str,
    pub what: &'static str,
    pub dims: usize,
    pub scores: Scores,
}

/// Held-out items whose first proposal has one agreement ([`agreement`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgreementBin {
    pub agreement: usize,
    pub items: usize,
    /// The promised share whose first proposal is the routing or one operation from it.
    pub calibrated: Option<f64>,
    /// The share whose first proposal was the routing or one operation from it.
    pub observed_first_within_one_op: f64,
    pub observed_hit_at_5: f64,
    pub observed_top1: f64,
}

/// One bin of the held-out calibration check: held-out items by the similarity of their
/// nearest routed neighbour, what the calibration promised and what happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibrationBin {
    pub similarity_from: f64,
    pub similarity_to: f64,
    pub items: usize,
    /// Mean calibrated similarity (the promised share of hits among the proposals).
    pub calibrated: f64,
    pub observed_hit_at_5: f64,
    pub observed_top1: f64,
}

/// The whole report (also written as JSON).
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub items: usize,
    pub with_routing: usize,
    pub held_out: usize,
    pub threshold: f64,
    pub variants: Vec<Variant>,
    /// The `trainer` variant through the HNSW index (filtered to items with routings).
    pub via_index: Scores,
    /// The `trainer` variant's learned weights and calibration (from its training items only).
    pub learned: crate::features::learn::LearnReport,
    pub calibration_bins: Vec<CalibrationBin>,
    /// The held-out items by their first proposal's agreement (what the tier uses).
    pub agreement_bins: Vec<AgreementBin>,
    pub plot_path: PathBuf,
    pub recall_at_10: f64,
    pub recall_queries: usize,
    pub nearest_other_agreement: f64,
    /// The share of sampled items whose routed neighbours in the similarity check are exact
    /// search's, and whose agreement (what their tier is set by) is exact search's.
    pub routed_agreement: f64,
    pub agreement_agreement: f64,
    pub ef_search: usize,
    pub hnsw_m: usize,
    pub opts: EvalOptions,
    pub report_path: PathBuf,
    pub seconds: f64,
}

/// `trainer eval`.
pub async fn eval(config_path: &Path, opts: &EvalOptions) -> Result<EvalReport> {
    let started = std::time::Instant::now();
    if !(opts.holdout > 0.0 && opts.holdout <= 0.5) {
        return Err(Error::usage(format!(
            "--holdout {}: expected a share in (0, 0.5]",
            opts.holdout
        )));
    }
    let (cfg, mapping, files) = train::load_inputs(config_path)?;
    let mut log = RunLog::stderr_only(!opts.verbose);
    let split = Split::draw(&cfg, &mapping, &files, opts).await?;
    let (holdout, truth) = (&split.holdout, &split.truth);
    let thr = cfg.similarity_threshold;
    let score = |v: ArrayView2<'_, f32>, t: &Tiering| {
        let nn = exact_neighbours(v, holdout, &split.candidates, proposal_pool(10));
        scores(holdout, &nn, &truth.seqs, thr, t)
    };

    // ---- the variants trained on the split -------------------------------------------------------
    let mut variants = Vec::new();
    let mut trained_main = None;
    let mut learned_main = None;
    let mut bins = Vec::new();
    let mut agreement_bins = Vec::new();
    for (name, what, c) in variant_configs(&cfg) {
        let tv = train(&c, &mapping, &files, &split.held_keys, &mut log).await?;
        if tv.items.keys != truth.keys {
            return Err(Error::internal(
                "the held-out training run has other items than the full data",
            ));
        }
        let tiering = Tiering::of(&tv.learned);
        variants.push(Variant {
            name,
            what,
            dims: tv.vectors.ncols(),
            scores: score(tv.vectors.view(), &tiering),
        });
        if name == "trainer" {
            let nn = exact_neighbours(
                tv.vectors.view(),
                holdout,
                &split.candidates,
                proposal_pool(10),
            );
            bins = calibration_bins(holdout, &nn, &truth.seqs, tiering.cal);
            agreement_bins = proposal_bins(holdout, &nn, &truth.seqs, tiering.props);
            trained_main = Some(tv.vectors);
            learned_main = Some(tv.learned);
        }
    }
    let learned = learned_main.expect("trainer variant");
    // The held-out items absent at training and added as `trainer update` adds them: encoded
    // with the fitted state of a model that never saw them (full-data statistics).
    let scratch = std::env::temp_dir().join(format!("trainer-eval-{}", std::process::id()));
    let via_update = via_update(
        &cfg,
        &mapping,
        &files,
        &truth.keys,
        &split.held_keys,
        &scratch,
        &mut log,
    )
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let (via_update, via_learned) = via_update?;
    variants.push(Variant {
        name: "via_update",
        what: "the held-out items absent at training, added as `trainer update` adds them",
        dims: via_update.ncols(),
        scores: score(via_update.view(), &Tiering::of(&via_learned)),
    });
    drop(via_update);
    let naive = split.naive;
    variants.push(Variant {
        name: "naive",
        what: "raw columns, ordinal codes, standardised, no cleaning, no weights",
        dims: naive.ncols(),
        scores: score(
            naive.view(),
            &Tiering {
                cal: &Calibration::identity(),
                props: &ProposalCalibration::default(),
            },
        ),
    });
    drop(naive);

    // ---- the index -----------------------------------------------------------------------------
    let vecs = trained_main.expect("trainer variant");
    let d = vecs.ncols();
    let (flat, _) = vecs.into_raw_vec_and_offset();
    let h = Hnsw::build(flat, d, cfg.hnsw.params(), |_, _| {});
    let ef = cfg.hnsw.ef_search;
    let via = index_neighbours(&h, holdout, &split.candidates, proposal_pool(10), ef);
    let via_index = scores(holdout, &via, &truth.seqs, thr, &Tiering::of(&learned));
    let sample = draw_sample(truth.keys.len(), opts.recall_queries, opts.seed);
    let checks = index_checks(&h, &sample, ef, &split.candidates, &truth.seqs);

    let report = EvalReport {
        items: truth.keys.len(),
        with_routing: split.with_routing,
        held_out: holdout.len(),
        threshold: cfg.similarity_threshold,
        variants,
        via_index,
        learned,
        calibration_bins: bins,
        agreement_bins,
        plot_path: cfg.output.models_dir.join("eval_calibration.svg"),
        recall_at_10: checks.recall_at_10,
        recall_queries: sample.len(),
        nearest_other_agreement: checks.nearest_other,
        routed_agreement: checks.routed,
        agreement_agreement: checks.agreement,
        ef_search: ef,
        hnsw_m: cfg.hnsw.m,
        opts: opts.clone(),
        report_path: cfg.output.models_dir.join("eval_report.json"),
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::create_dir_all(&cfg.output.models_dir)
        .map_err(|e| Error::io(&cfg.output.models_dir, "create the directory", e))?;
    write_json(&report.report_path, &report.json())?;
    atomic_write(&report.plot_path, report.svg().as_bytes())?;
    Ok(report)
}

/// The held-out split, drawn from the full data: every item's current JOB_CD sequence (the
/// truth), the naive baseline's vectors, and which items are held out.
struct Split {
    truth: Truth,
    naive: Array2<f32>,
    /// Labels of the held-out items.
    holdout: Vec<u32>,
    /// Per label: whether it may be proposed (it has a routing and is not held out).
    candidates: Vec<bool>,
    held_keys: Vec<String>,
    /// Items with a current routing.
    with_routing: usize,
}

impl Split {
    async fn draw(
        cfg: &Config,
        mapping: &crate::config::mapping::Mapping,
        files: &[crate::engine::sqlfiles::SqlFile],
        opts: &EvalOptions,
    ) -> Result<Split> {
        let volumes = ItemVolumes::load(&cfg.item_metadata)?;
        let full = Engine::build(cfg, mapping, &volumes).await?;
        transform::create_views(&full.ctx, files, &["01_map", "02_clean"], true).await?;
        let truth = read_sequences(&full.ctx).await?;
        let naive = naive_vectors(&full.ctx, &truth.keys).await?;
        drop(full);
        let n = truth.keys.len();
        let with_routing: Vec<u32> = (0..n as u32)
            .filter(|&i| truth.seqs[i as usize].is_some())
            .collect();
        let holdout = draw_holdout(&truth.keys, &with_routing, opts.holdout, opts.seed);
        if holdout.is_empty() {
            return Err(Error::input(
                "clean_routings",
                "no item has a current routing: nothing to evaluate (is the routing view empty?)",
            ));
        }
        let mut is_held = vec![false; n];
        for &i in &holdout {
            is_held[i as usize] = true;
        }
        let candidates: Vec<bool> = (0..n)
            .map(|i| truth.seqs[i].is_some() && !is_held[i])
            .collect();
        let held_keys: Vec<String> = holdout
            .iter()
            .map(|&i| truth.keys[i as usize].clone())
            .collect();
        Ok(Split {
            truth,
            naive,
            holdout,
            candidates,
            held_keys,
            with_routing: with_routing.len(),
        })
    }
}

/// The variants trained on the split: as configured, with the prior weights (only when the
/// config learns), and with every weight 1.
fn variant_configs(cfg: &Config) -> Vec<(&'static str, &'static str, Config)> {
    let mut prior_only = cfg.clone();
    prior_only.weights.learn = false;
    let mut no_weights = prior_only.clone();
    no_weights
        .weights
        .features
        .values_mut()
        .for_each(|w| *w = 1.0);
    no_weights.weights.item.volume_floor = 1.0;
    let mut out = vec![(
        "trainer",
        "the pipeline as configured (cleaning, SQL encoding, weights learned if weights.learn)",
        cfg.clone(),
    )];
    if cfg.weights.learn {
        out.push((
            "prior_weights",
            "the same pipeline with the configured weights, nothing learned",
            prior_only,
        ));
    }
    out.push((
        "no_weights",
        "the same pipeline, every feature and item weight 1, nothing learned",
        no_weights,
    ));
    out
}

async fn train(
    cfg: &Config,
    mapping: &crate::config::mapping::Mapping,
    files: &[crate::engine::sqlfiles::SqlFile],
    holdout: &[String],
    log: &mut RunLog,
) -> Result<train::TrainedVectors> {
    train_with(cfg, mapping, files, holdout, false, None, log).await
}

/// [`train`], optionally without the held-out items themselves and saving the fitted state.
async fn train_with(
    cfg: &Config,
    mapping: &crate::config::mapping::Mapping,
    files: &[crate::engine::sqlfiles::SqlFile],
    holdout: &[String],
    items_too: bool,
    fitted_dir: Option<&Path>,
    log: &mut RunLog,
) -> Result<train::TrainedVectors> {
    let mut timer = Timer::new();
    train::train_vectors(
        cfg,
        mapping,
        files,
        &TrainOptions {
            fitted_dir,
            holdout: Some(holdout),
            holdout_items_too: items_too,
            model_dir: None,
        },
        log,
        &mut timer,
    )
    .await
}

/// All items' vectors (`keys` order) when the `held` items are left out of training and then
/// encoded as `update` encodes new items: the training items' vectors from that training, the
/// held-out items' from the fitted state saved under `scratch`.
async fn via_update(
    cfg: &Config,
    mapping: &crate::config::mapping::Mapping,
    files: &[crate::engine::sqlfiles::SqlFile],
    keys: &[String],
    held: &[String],
    scratch: &Path,
    log: &mut RunLog,
) -> Result<(ndarray::Array2<f32>, crate::features::learn::LearnReport)> {
    use crate::apply::{self, Transforms};
    use crate::engine::{self, RowFilter};
    let fitted = scratch.join("fitted");
    std::fs::create_dir_all(&fitted).map_err(|e| Error::io(&fitted, "create the directory", e))?;
    let tv = train_with(cfg, mapping, files, held, true, Some(&fitted), log).await?;
    let t = Transforms {
        files: files.to_vec(),
        mapping: mapping.clone(),
        dims: crate::features::vectors::Dims::from_batch(&transform::load_table(
            &fitted.join("dims.parquet"),
        )?)?,
        fitted,
    };
    let ctx = engine::new_context();
    engine::sources::register_all(&ctx, cfg, mapping).await?;
    t.define_views(&ctx, RowFilter::All).await?;
    let all = apply::clean_items(&ctx).await?;
    let held_set: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
    let k = engine::column_as(
        &all,
        "item_key",
        &arrow::datatypes::DataType::Utf8,
        "clean_items",
    )?;
    let keep: arrow::array::BooleanArray = engine::strings(&k)
        .iter()
        .map(|x| Some(x.is_some_and(|x| held_set.contains(x))))
        .collect();
    let chosen = arrow::compute::filter_record_batch(&all, &keep)
        .map_err(|e| Error::internal(format!("held-out items: {e}")))?;
    engine::register_keys(&ctx, "only_items", held)?;
    t.define_views(&ctx, RowFilter::OnlyListed).await?;
    let enc = apply::encode(&ctx, &t, chosen).await?;
    let d = tv.vectors.ncols();
    let row_of = |ks: &[String]| -> std::collections::HashMap<String, usize> {
        ks.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect()
    };
    let (trained, added) = (row_of(&tv.items.keys), row_of(&enc.items.keys));
    let mut out = ndarray::Array2::<f32>::zeros((keys.len(), d));
    for (i, key) in keys.iter().enumerate() {
        let row = match (trained.get(key), added.get(key)) {
            (Some(&r), _) => tv.vectors.row(r),
            (None, Some(&r)) => enc.vectors.row(r),
            (None, None) => {
                return Err(Error::internal(format!(
                    "item {key} is neither trained nor added in the update variant"
                )));
            }
        };
        out.row_mut(i).assign(&row);
    }
    Ok((out, tv.learned))
}

/// Every item (clean_items, label order) with its current JOB_CD sequence (interned), if any.
struct Truth {
    keys: Vec<String>,
    seqs: Vec<Option<Vec<u32>>>,
}

async fn read_sequences(ctx: &datafusion::prelude::SessionContext) -> Result<Truth> {
    let what = "current routings (clean_items, clean_routings)";
    let sql = "SELECT c.item_key, r.seq FROM clean_items c LEFT JOIN ( \
                 SELECT item_key, array_agg(coalesce(job_cd, '') ORDER BY proc_seq) AS seq \
                 FROM clean_routings GROUP BY item_key) r ON r.item_key = c.item_key \
               ORDER BY c.item_key";
    let batches = engine::collect(ctx, sql, what).await?;
    let mut codes: HashMap<String, u32> = HashMap::new();
    let mut t = Truth {
        keys: Vec::new(),
        seqs: Vec::new(),
    };
    for b in &batches {
        let k = column_as(b, "item_key", &DataType::Utf8, what)?;
        let seq = b
            .column_by_name("seq")
            .and_then(|c| c.as_any().downcast_ref::<ListArray>())
            .ok_or_else(|| Error::internal("array_agg did not return a list"))?;
        for r in 0..b.num_rows() {
            t.keys.push(strings(&k).value(r).to_string());
            if seq.is_null(r) {
                t.seqs.push(None);
                continue;
            }
            let ops = arrow::compute::cast(&seq.value(r), &DataType::Utf8)
                .map_err(|e| Error::internal(format!("job codes: {e}")))?;
            let ops = strings(&ops);
            let ids = (0..ops.len())
                .map(|j| {
                    let next = codes.len() as u32;
                    *codes.entry(ops.value(j).to_string()).or_insert(next)
                })
                .collect();
            t.seqs.push(Some(ids));
        }
    }
    Ok(t)
}

/// `round(share · |with_routing|)` items (at least one), chosen by a seeded hash of the key, so
/// the draw does not depend on row order.
fn draw_holdout(keys: &[String], with_routing: &[u32], share: f64, seed: u64) -> Vec<u32> {
    if with_routing.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<(u64, u32)> = with_routing
        .iter()
        .map(|&i| {
            (
                mix64(fnv1a64(keys[i as usize].as_bytes()) ^ mix64(seed ^ 0x5EED_E7A1)),
                i,
            )
        })
        .collect();
    order.sort_unstable();
    let take = ((share * with_routing.len() as f64).round() as usize).clamp(1, with_routing.len());
    let mut out: Vec<u32> = order[..take].iter().map(|x| x.1).collect();
    out.sort_unstable();
    out
}

/// Up to `k` labels out of `0..n`, seeded, sorted.
fn draw_sample(n: usize, k: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<(u64, u32)> = (0..n as u32)
        .map(|i| (mix64(i as u64 ^ mix64(seed ^ 0x5A3B_1E00)), i))
        .collect();
    order.sort_unstable();
    let mut out: Vec<u32> = order.iter().take(k).map(|x| x.1).collect();
    out.sort_unstable();
    out
}

/// Exact top-`k` (cosine similarity, label) among `allowed` labels for each query, best first,
/// by blocks of `Q · Vᵀ` (the vectors are unit length, so the dot product is the cosine).
fn exact_neighbours(
    v: ArrayView2<'_, f32>,
    queries: &[u32],
    allowed: &[bool],
    k: usize,
) -> Vec<Vec<(f32, u32)>> {
    const QB: usize = 128;
    const CB: usize = 8192;
    let n = v.nrows();
    queries
        .par_chunks(QB)
        .flat_map_iter(|qs| {
            let q = Array2::from_shape_fn((qs.len(), v.ncols()), |(r, c)| v[[qs[r] as usize, c]]);
            let mut heaps: Vec<std::collections::BinaryHeap<Hit>> =
                vec![std::collections::BinaryHeap::with_capacity(k + 1); qs.len()];
            let mut start = 0;
            while start < n {
                let end = (start + CB).min(n);
                let sims = q.dot(&v.slice(s![start..end, ..]).t());
                for (r, row) in sims.outer_iter().enumerate() {
                    let heap = &mut heaps[r];
                    for (j, &sim) in row.iter().enumerate() {
                        let label = (start + j) as u32;
                        if !allowed[label as usize] || label == qs[r] {
                            continue;
                        }
                        keep_best(heap, Hit(sim, label), k);
                    }
                }
                start = end;
            }
            heaps.into_iter().map(|h| {
                h.into_sorted_vec()
                    .into_iter()
                    .map(|x| (x.0, x.1))
                    .collect::<Vec<_>>()
            })
        })
        .collect()
}

/// The index's answer as the recommender gets it: a search for 64 neighbours at `ef`, filtered to
/// `allowed` labels, the best `k` kept (cosine similarity, label).
fn index_neighbours(
    h: &Hnsw,
    queries: &[u32],
    allowed: &[bool],
    k: usize,
    ef: usize,
) -> Vec<Vec<(f32, u32)>> {
    queries
        .par_iter()
        .map(|&q| {
            with_visited(|vis| {
                h.search(h.vector(q), 64, ef.max(64), vis)
                    .into_iter()
                    .filter(|&(_, j)| j != q && allowed[j as usize])
                    .take(k)
                    .map(|(d, j)| (1.0 - d, j))
                    .collect()
            })
        })
        .collect()
}

/// What [`index_checks`] measured.
struct IndexChecks {
    recall_at_10: f64,
    nearest_other: f64,
    routed: f64,
    agreement: f64,
}

/// Recall@10 of `search` at `ef` against exact search over all items, and the shares of the
/// `sample` whose similarity check ([`near_one`]) finds a nearest other as close as the exact
/// one, the [`PROPOSALS`] nearest `routed` others exact search finds, and their agreement
/// ([`agreement`] over `seqs`).
fn index_checks(
    h: &Hnsw,
    sample: &[u32],
    ef: usize,
    routed: &[bool],
    seqs: &[Option<Vec<u32>>],
) -> IndexChecks {
    let quant = h.quantized();
    let empty: Vec<u32> = Vec::new();
    let ops = |l: u32| -> &[u32] { seqs[l as usize].as_deref().unwrap_or(&empty) };
    let agree = |ids: &[u32]| -> usize {
        let o: Vec<&[u32]> = ids.iter().map(|&l| ops(l)).collect();
        agreement(&o)
    };
    // Per item: recall hits, exact neighbours, and whether the nearest other, the routed
    // neighbours and their agreement are exact search's.
    type Checked = (usize, usize, bool, bool, bool);
    let per: Vec<Checked> = sample
        .par_iter()
        .map(|&q| {
            with_visited(|vis| {
                let qv = h.vector(q);
                let exact = h.brute_force(qv, h.len());
                let exact10: Vec<u32> = exact.iter().take(10).map(|x| x.1).collect();
                let hits = h.hits(qv, &exact10, ef, vis);
                let exact_other = exact.iter().find(|x| x.1 != q).map(|x| x.0);
                let exact_routed: Vec<u32> = exact
                    .iter()
                    .filter(|x| x.1 != q && routed[x.1 as usize])
                    .take(PROPOSALS)
                    .map(|x| x.1)
                    .collect();
                let got = near_one(h, &quant, q, routed, ef, vis);
                let same = match (got.other, exact_other) {
                    (Some(a), Some(b)) => 1.0 - a.1 <= b,
                    (None, None) => true,
                    _ => false,
                };
                let got_routed: Vec<u32> = got.routed.iter().map(|x| x.0).collect();
                (
                    hits,
                    exact10.len(),
                    same,
                    got_routed == exact_routed,
                    agree(&got_routed) == agree(&exact_routed),
                )
            })
        })
        .collect();
    let hits: usize = per.iter().map(|x| x.0).sum();
    let total: usize = per.iter().map(|x| x.1).sum();
    let share = |f: &dyn Fn(&Checked) -> bool| {
        per.iter().filter(|x| f(x)).count() as f64 / per.len().max(1) as f64
    };
    IndexChecks {
        recall_at_10: hits as f64 / total.max(1) as f64,
        nearest_other: share(&|x| x.2),
        routed: share(&|x| x.3),
        agreement: share(&|x| x.4),
    }
}

/// 1 − Levenshtein(a, b) / max(|a|, |b|) over operation codes (1 for two empty sequences).
pub fn seq_similarity(a: &[u32], b: &[u32]) -> f64 {
    let m = a.len().max(b.len());
    if m == 0 {
        return 1.0;
    }
    1.0 - crate::text::levenshtein(a, b) as f64 / m as f64
}

/// How an answer is tiered, as `trainer recommend` tiers it: by the agreement of its first
/// proposal (`props`), or, for a model without that calibration, by the first proposal's
/// calibrated similarity (`cal`).
struct Tiering<'a> {
    cal: &'a Calibration,
    props: &'a ProposalCalibration,
}

impl<'a> Tiering<'a> {
    fn of(l: &'a crate::features::learn::LearnReport) -> Self {
        Tiering {
            cal: &l.calibration,
            props: &l.proposal_calibration,
        }
    }

    fn confidence(&self, nn: &[(f32, u32)], seqs: &[Option<Vec<u32>>]) -> Option<f64> {
        let first = nn.first()?;
        let (_, agreement) = proposals(nn, seqs, 1)?;
        Some(
            self.props
                .apply(agreement)
                .unwrap_or_else(|| self.cal.apply(first.0 as f64)),
        )
    }
}

/// The scores of `neighbours` (per query, best first); an answer is HIGH when its
/// [`Tiering::confidence`] reaches `threshold`.
fn scores(
    queries: &[u32],
    neighbours: &[Vec<(f32, u32)>],
    seqs: &[Option<Vec<u32>>],
    threshold: f64,
    tiering: &Tiering,
) -> Scores {
    let (mut m1, mut h5, mut h10, mut sim, mut above) = (0usize, 0usize, 0usize, 0.0f64, 0usize);
    let mut n1 = 0usize;
    let (mut hm1, mut hh5, mut hsim, mut lm1, mut lh5) = (0usize, 0usize, 0.0f64, 0usize, 0usize);
    for (q, nn) in queries.iter().zip(neighbours) {
        let own = seqs[*q as usize]
            .as_deref()
            .expect("held-out items have a routing");
        let same = |j: u32| seqs[j as usize].as_deref() == Some(own);
        let props = proposals(nn, seqs, 10).map(|p| p.0).unwrap_or_default();
        let top1 = props.first() == Some(&Some(own));
        let hit5 = props.iter().take(5).any(|r| *r == Some(own));
        let s1 = props
            .first()
            .map(|r| seq_similarity(own, r.unwrap_or(&[])))
            .unwrap_or(0.0);
        m1 += usize::from(top1);
        n1 += usize::from(nn.first().is_some_and(|x| same(x.1)));
        h5 += usize::from(hit5);
        h10 += usize::from(props.contains(&Some(own)));
        sim += s1;
        if tiering.confidence(nn, seqs).is_some_and(|c| c >= threshold) {
            above += 1;
            hm1 += usize::from(top1);
            hh5 += usize::from(hit5);
            hsim += s1;
        } else {
            lm1 += usize::from(top1);
            lh5 += usize::from(hit5);
        }
    }
    let q = queries.len().max(1) as f64;
    let low = queries.len() - above;
    let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
    Scores {
        queries: queries.len(),
        top1_match: m1 as f64 / q,
        nearest_top1_match: n1 as f64 / q,
        hit_at_5: h5 as f64 / q,
        hit_at_10: h10 as f64 / q,
        top1_seq_similarity: sim / q,
        top1_at_or_above_threshold: above as f64 / q,
        high: above,
        high_top1_match: ratio(hm1 as f64, above),
        high_hit_at_5: ratio(hh5 as f64, above),
        high_top1_seq_similarity: ratio(hsim, above),
        low_top1_match: ratio(lm1 as f64, low),
        low_hit_at_5: ratio(lh5 as f64, low),
    }
}

/// The routings proposed from `nn` (routed neighbours, nearest first), in order and at most `k`
/// ([`proposal_order`]: what `trainer recommend` proposes), and the first one's [`agreement`].
/// None without neighbours.
fn proposals<'s>(
    nn: &[(f32, u32)],
    seqs: &'s [Option<Vec<u32>>],
    k: usize,
) -> Option<(Vec<Option<&'s [u32]>>, usize)> {
    let routes: Vec<Option<&[u32]>> = nn.iter().map(|x| seqs[x.1 as usize].as_deref()).collect();
    if routes.is_empty() {
        return None;
    }
    let ops: Vec<&[u32]> = routes.iter().map(|r| r.unwrap_or(&[])).collect();
    let a = agreement(&ops);
    let order = proposal_order(&routes, k);
    Some((order.into_iter().map(|i| routes[i]).collect(), a))
}

/// The held-out items by the agreement of their first proposal.
fn proposal_bins(
    queries: &[u32],
    neighbours: &[Vec<(f32, u32)>],
    seqs: &[Option<Vec<u32>>],
    props: &ProposalCalibration,
) -> Vec<AgreementBin> {
    // (items, top-1 right, routing among the proposals, first within one operation) per
    // agreement 0..=2·PROPOSALS.
    let mut counts = [(0usize, 0usize, 0usize, 0usize); 2 * PROPOSALS + 1];
    for (q, nn) in queries.iter().zip(neighbours) {
        let Some((routes, k)) = proposals(nn, seqs, PROPOSALS) else {
            continue;
        };
        let own = seqs[*q as usize].as_deref();
        let c = &mut counts[k];
        c.0 += 1;
        c.1 += usize::from(own.is_some() && routes[0] == own);
        c.2 += usize::from(own.is_some() && routes.contains(&own));
        c.3 += usize::from(matches!((own, routes[0]), (Some(a), Some(b)) if within_one_op(a, b)));
    }
    (1..=2 * PROPOSALS)
        .filter(|&k| counts[k].0 > 0)
        .map(|k| {
            let (n, right, hit, near) = counts[k];
            AgreementBin {
                agreement: k,
                items: n,
                calibrated: props.apply(k),
                observed_first_within_one_op: near as f64 / n as f64,
                observed_hit_at_5: hit as f64 / n as f64,
                observed_top1: right as f64 / n as f64,
            }
        })
        .collect()
}

/// The held-out items in `CAL_BINS` equal-count bins of their nearest routed neighbour's
/// similarity: the calibration's promise against the observed hit@5 and top-1.
fn calibration_bins(
    queries: &[u32],
    neighbours: &[Vec<(f32, u32)>],
    seqs: &[Option<Vec<u32>>],
    cal: &Calibration,
) -> Vec<CalibrationBin> {
    let mut rows: Vec<(f64, bool, bool)> = queries
        .iter()
        .zip(neighbours)
        .filter_map(|(q, nn)| {
            let own = seqs[*q as usize].as_deref()?;
            let same = |j: u32| seqs[j as usize].as_deref() == Some(own);
            let first = nn.first()?;
            Some((
                first.0 as f64,
                nn.iter()
                    .take(crate::features::learn::PROPOSALS)
                    .any(|x| same(x.1)),
                same(first.1),
            ))
        })
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = rows.len();
    let bins = crate::features::learn::CAL_BINS.min(n);
    (0..bins)
        .filter_map(|b| {
            let part = &rows[b * n / bins..(b + 1) * n / bins];
            let k = part.len() as f64;
            (!part.is_empty()).then(|| CalibrationBin {
                similarity_from: part[0].0,
                similarity_to: part[part.len() - 1].0,
                items: part.len(),
                calibrated: part.iter().map(|r| cal.apply(r.0)).sum::<f64>() / k,
                observed_hit_at_5: part.iter().filter(|r| r.1).count() as f64 / k,
                observed_top1: part.iter().filter(|r| r.2).count() as f64 / k,
            })
        })
        .collect()
}

/// The naive baseline's vectors, rows in `keys` order (the items of clean_items).
async fn naive_vectors(
    ctx: &datafusion::prelude::SessionContext,
    keys: &[String],
) -> Result<Array2<f32>> {
    let what = "naive baseline (map_items)";
    // Item keys only to line rows up with the labels; the values themselves are raw.
    let sql = "SELECT * FROM (SELECT item_key(m.item_cd) AS eval_key, m.*, \
                 ROW_NUMBER() OVER (PARTITION BY item_key(m.item_cd) \
                                    ORDER BY m.item_cd, m.part_type, m.item_material) AS eval_rn \
               FROM map_items m) WHERE eval_key IS NOT NULL AND eval_rn = 1 ORDER BY eval_key";
    let batches = engine::collect(ctx, sql, what).await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Ok(Array2::zeros((keys.len(), 0))),
    };
    let batch = engine::concat(&schema, &batches)?;
    let got = column_as(&batch, "eval_key", &DataType::Utf8, what)?;
    let got = strings(&got);
    if got.len() != keys.len() || (0..got.len()).any(|i| got.value(i) != keys[i]) {
        return Err(Error::internal(
            "the naive baseline's items differ from clean_items",
        ));
    }
    let n = keys.len();
    let mut cols: Vec<Vec<f64>> = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        if matches!(f.name().as_str(), "eval_key" | "eval_rn" | "item_cd") {
            continue;
        }
        let x: Vec<f64> = match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let a = arrow::compute::cast(col, &DataType::Utf8)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let a = strings(&a);
                let levels: BTreeMap<&str, usize> = a.iter().flatten().map(|v| (v, 0)).collect();
                let code: HashMap<&str, f64> = levels
                    .keys()
                    .enumerate()
                    .map(|(i, v)| (*v, (i + 1) as f64))
                    .collect();
                a.iter().map(|v| v.map_or(0.0, |v| code[v])).collect()
            }
            _ => {
                let a = arrow::compute::cast(col, &DataType::Float64)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let a = engine::f64s(&a);
                (0..n)
                    .map(|i| {
                        if a.is_null(i) || !a.value(i).is_finite() {
                            0.0
                        } else {
                            a.value(i)
                        }
                    })
                    .collect()
            }
        };
        let mean = x.iter().sum::<f64>() / n.max(1) as f64;
        let sd = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64).sqrt();
        if sd > 0.0 {
            cols.push(x.iter().map(|v| (v - mean) / sd).collect());
        }
    }
    let d = cols.len();
    let mut out = Array2::<f32>::zeros((n, d));
    for i in 0..n {
        let norm = cols.iter().map(|c| c[i] * c[i]).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (j, c) in cols.iter().enumerate() {
                out[[i, j]] = (c[i] / norm) as f32;
            }
        }
    }
    Ok(out)
}

impl Scores {
    fn json(&self) -> Value {
        json!({
            "queries": self.queries,
            "top1_routing_match": self.top1_match,
            "nearest_item_top1_routing_match": self.nearest_top1_match,
            "hit_at_5": self.hit_at_5,
            "hit_at_10": self.hit_at_10,
            "top1_sequence_similarity": self.top1_seq_similarity,
            "top1_similarity_at_or_above_threshold": self.top1_at_or_above_threshold,
            "high_tier": {
                "queries": self.high,
                "top1_routing_match": self.high_top1_match,
                "hit_at_5": self.high_hit_at_5,
                "top1_sequence_similarity": self.high_top1_seq_similarity,
            },
            "low_tier": {
                "queries": self.queries - self.high,
                "top1_routing_match": self.low_top1_match,
                "hit_at_5": self.low_hit_at_5,
            },
        })
    }
}

impl EvalReport {
    /// `models/eval_calibration.svg`: the calibration curve learned on the training items, the
    /// held-out items' observed hit@5 and top-1 per similarity bin, and the threshold.
    pub fn svg(&self) -> String {
        let (w, h, left, right, top, bottom) = (640.0, 420.0, 60.0, 20.0, 30.0, 50.0);
        let pts = &self.learned.calibration.points;
        let xs = pts
            .iter()
            .map(|p| p.0)
            .chain(self.calibration_bins.iter().map(|b| b.similarity_from));
        let lo = xs.fold(1.0f64, f64::min).clamp(-1.0, 0.99);
        let lo = (lo * 20.0).floor() / 20.0;
        let x = |v: f64| left + (v - lo) / (1.0 - lo) * (w - left - right);
        let y = |v: f64| top + (1.0 - v) * (h - top - bottom);
        let mut o = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
             <text x=\"{left}\" y=\"18\" font-size=\"14\">Calibrated similarity: does the item's routing come among the {} proposals?</text>\n",
            crate::features::learn::PROPOSALS
        );
        for k in 0..=10 {
            let v = k as f64 / 10.0;
            o.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0} %</text>\n",
                w - right,
                y(v),
                y(v),
                left - 6.0,
                y(v) + 4.0,
                100.0 * v
            ));
        }
        let steps = ((1.0 - lo) / 0.05).round() as usize;
        for k in 0..=steps {
            let v = lo + k as f64 * 0.05;
            o.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v:.2}</text>\n",
                x(v),
                h - bottom + 16.0
            ));
        }
        o.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">cosine similarity of the nearest routed neighbour</text>\n\
             <line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#c00\">threshold {} (HIGH above)</text>\n",
            (left + w - right) / 2.0,
            h - 12.0,
            w - right,
            y(self.threshold),
            y(self.threshold),
            w - right - 4.0,
            y(self.threshold) - 5.0,
            self.threshold
        ));
        if !pts.is_empty() {
            let line: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
                .collect();
            o.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n",
                line.join(" ")
            ));
        }
        for b in &self.calibration_bins {
            let cx = x((b.similarity_from + b.similarity_to) / 2.0);
            o.push_str(&format!(
                "<circle cx=\"{cx:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#ff7f0e\"/><rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#2ca02c\"/>\n",
                y(b.observed_hit_at_5),
                cx - 3.5,
                y(b.observed_top1) - 3.5
            ));
        }
        let legend = [
            ("#1f77b4", "calibration (training items, leave-one-out)"),
            ("#ff7f0e", "held-out items: routing among the proposals"),
            ("#2ca02c", "held-out items: nearest neighbour's routing"),
        ];
        for (k, (c, t)) in legend.iter().enumerate() {
            let ly = h - bottom - 60.0 + 16.0 * k as f64;
            o.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{t}</text>\n",
                left + 10.0,
                ly - 9.0,
                left + 26.0,
                ly
            ));
        }
        o.push_str("</svg>\n");
        o
    }

    pub fn json(&self) -> Value {
        json!({
            "items": self.items,
            "items_with_routing": self.with_routing,
            "held_out": self.held_out,
            "holdout_share": self.opts.holdout,
            "seed": self.opts.seed,
            "similarity_threshold": self.threshold,
            "neighbours": "exact cosine search among the training items that have a current routing",
            "variants": self.variants.iter().map(|v| (v.name.to_string(), {
                let mut o = v.scores.json();
                o["dims"] = json!(v.dims);
                o["what"] = json!(v.what);
                o
            })).collect::<serde_json::Map<_, _>>(),
            "trainer_via_index": self.via_index.json(),
            "feature_weights": self.learned,
            "calibration_held_out": self.calibration_bins,
            "proposal_calibration_held_out": self.agreement_bins,
            "calibration_plot": self.plot_path.display().to_string(),
            "index": {
                "m": self.hnsw_m,
                "ef_search": self.ef_search,
                "recall_at_10": self.recall_at_10,
                "recall_queries": self.recall_queries,
                "nearest_other_ef": NEAREST_OTHER_EF,
                "nearest_other_agrees_with_exact": self.nearest_other_agreement,
                "routed_neighbours_equal_exact": self.routed_agreement,
                "agreement_equals_exact": self.agreement_agreement,
            },
            "seconds": self.seconds,
        })
    }

    /// The table `trainer eval` prints.
    pub fn render(&self) -> String {
        let pct = |x: f64| format!("{:.1} %", 100.0 * x);
        let mut out = format!(
            "trainer eval: {} items, {} with a current routing; {} held out ({:.1} %, seed {}): \
             their routing and work-order rows removed before training.\n\
             Neighbours: exact cosine search among the {} training items with a routing.\n\n",
            self.items,
            self.with_routing,
            self.held_out,
            100.0 * self.opts.holdout,
            self.opts.seed,
            self.with_routing - self.held_out,
        );
        let thr = self.threshold;
        out.push_str(&format!(
            "{:<14} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7}   {:>6} {:>9} {:>9} {:>9} {:>9}\n",
            "variant",
            "dims",
            "top-1",
            "hit@5",
            "hit@10",
            "seq sim",
            "HIGH",
            "HIGH n",
            "HIGH top1",
            "HIGH h@5",
            "LOW top1",
            "LOW h@5"
        ));
        let mut rows: Vec<(String, String, &Scores)> = self
            .variants
            .iter()
            .map(|v| (v.name.to_string(), v.dims.to_string(), &v.scores))
            .collect();
        let via_dims = self.variants.first().map(|v| v.dims.to_string());
        rows.insert(
            1,
            (
                "  via index".to_string(),
                via_dims.unwrap_or_default(),
                &self.via_index,
            ),
        );
        for (name, dims, s) in rows {
            out.push_str(&format!(
                "{:<14} {:>5} {:>8} {:>8} {:>8} {:>8.3} {:>7}   {:>6} {:>9} {:>9} {:>9} {:>9}\n",
                name,
                dims,
                pct(s.top1_match),
                pct(s.hit_at_5),
                pct(s.hit_at_10),
                s.top1_seq_similarity,
                pct(s.top1_at_or_above_threshold),
                s.high,
                pct(s.high_top1_match),
                pct(s.high_hit_at_5),
                pct(s.low_top1_match),
                pct(s.low_hit_at_5),
            ));
        }
        let l = &self.learned;
        if l.learned {
            out.push_str(&format!(
                "\nlearned weights (trainer; leave-one-out over {} routed training items, held-out items never seen):\n\
                 top-1 {} -> {}, hit@5 {} -> {}; features whose weight moved (prior -> learned):\n",
                l.queries,
                pct(l.prior.top1),
                pct(l.result.top1),
                pct(l.prior.hit_at_5),
                pct(l.result.hit_at_5),
            ));
            let moved: Vec<String> = l
                .weights
                .iter()
                .filter(|w| w.learned != w.prior)
                .map(|w| format!("{} {:.2} -> {:.2}", w.feature, w.prior, w.learned))
                .collect();
            for chunk in moved.chunks(4) {
                out.push_str(&format!("  {}\n", chunk.join(", ")));
            }
            if moved.is_empty() {
                out.push_str("  none\n");
            }
        }
        if !self.calibration_bins.is_empty() {
            out.push_str(&format!(
                "\ncalibration (trainer, held-out items by the similarity of their nearest routed neighbour):\n\
                 {:<17} {:>6} {:>11} {:>11} {:>9}\n",
                "similarity", "items", "calibrated", "obs. hit@5", "obs. top1"
            ));
            for b in &self.calibration_bins {
                out.push_str(&format!(
                    "{:<17} {:>6} {:>11} {:>11} {:>9}\n",
                    format!("{:.3} - {:.3}", b.similarity_from, b.similarity_to),
                    b.items,
                    pct(b.calibrated),
                    pct(b.observed_hit_at_5),
                    pct(b.observed_top1),
                ));
            }
            out.push_str(&format!("plot written to {}\n", self.plot_path.display()));
        }
        if !self.agreement_bins.is_empty() {
            out.push_str(&format!(
                "\ntier (trainer, held-out items by the agreement of their first proposal: of their {PROPOSALS} nearest routed items, how many\n\
                 share its routing plus how many are within one operation of it):\n\
                 {:<9} {:>6} {:>11} {:>11} {:>11} {:>9}\n",
                "agreement", "items", "confidence", "obs. <=1 op", "obs. hit@5", "obs. top1"
            ));
            for b in &self.agreement_bins {
                out.push_str(&format!(
                    "{:<9} {:>6} {:>11} {:>11} {:>11} {:>9}\n",
                    format!("{} of {}", b.agreement, 2 * PROPOSALS),
                    b.items,
                    b.calibrated.map_or("-".to_string(), pct),
                    pct(b.observed_first_within_one_op),
                    pct(b.observed_hit_at_5),
                    pct(b.observed_top1),
                ));
            }
        }
        out.push_str(&format!(
            "\ntop-1: the first proposal's routing (JOB_CD sequence) is the held-out item's own; \
             hit@k: one of the first k proposals has it;\nseq sim: mean 1 - Levenshtein/max length of \
             the top-1's sequence; <=1 op: the top-1's sequence is the item's own or one operation \
             inserted, dropped or replaced from it;\nHIGH: share whose confidence (a 90 % lower \
             bound of the training share whose top-1 was within one operation, at its agreement) \
             reaches {thr} (naive: the raw cosine).\n\
             index (trainer vectors, M {}, ef_search {}): recall@10 against exact search {:.4} \
             over {} items; the similarity check (beam {}) finds a nearest other as close as the \
             exact one for {},\nthe {} nearest routed others of exact search for {}, and the \
             agreement of exact search (what a model item's tier is set by) for {}.\nreport \
             written to {}\n",
            self.hnsw_m,
            self.ef_search,
            self.recall_at_10,
            self.recall_queries,
            NEAREST_OTHER_EF,
            pct(self.nearest_other_agreement),
            PROPOSALS,
            pct(self.routed_agreement),
            pct(self.agreement_agreement),
            self.report_path.display(),
        ));
        out
    }
}

/// `trainer eval` on the command line: the report as a table, or as one JSON object.
pub async fn execute(config: &Path, opts: &EvalOptions, json: bool) -> Result<()> {
    let report = eval(config, opts).await?;
    if json {
        println!("{}", report.json());
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_similarity() {
        assert_eq!(seq_similarity(&[1, 2, 3], &[1, 2, 3]), 1.0);
        assert_eq!(seq_similarity(&[], &[]), 1.0);
        assert_eq!(seq_similarity(&[1, 2, 3], &[]), 0.0);
        // one insertion in 4
        assert_eq!(seq_similarity(&[1, 2, 3], &[1, 9, 2, 3]), 0.75);
        // one substitution in 3
        assert!((seq_similarity(&[1, 2, 3], &[1, 5, 3]) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn holdout_is_seeded_and_sized() {
        let keys: Vec<String> = (0..1000).map(|i| format!("ITEM{i}")).collect();
        let with: Vec<u32> = (0..1000).filter(|i| i % 3 != 0).collect();
        let a = draw_holdout(&keys, &with, 0.05, 42);
        assert_eq!(a.len(), (0.05f64 * with.len() as f64).round() as usize);
        assert!(a.iter().all(|i| i % 3 != 0));
        assert_eq!(a, draw_holdout(&keys, &with, 0.05, 42));
        assert_ne!(a, draw_holdout(&keys, &with, 0.05, 43));
    }

    #[test]
    fn exact_neighbours_match_a_scan() {
        let v = Array2::from_shape_fn((300, 5), |(i, j)| ((i * 7 + j * 13) % 11) as f32 - 5.0);
        let norms: Vec<f32> = v.outer_iter().map(|r| r.dot(&r).sqrt()).collect();
        let v = Array2::from_shape_fn((300, 5), |(i, j)| v[[i, j]] / norms[i].max(1e-6));
        let allowed: Vec<bool> = (0..300).map(|i| i % 4 != 1).collect();
        let queries = [1u32, 2, 50, 299];
        let got = exact_neighbours(v.view(), &queries, &allowed, 3);
        for (q, nn) in queries.iter().zip(&got) {
            let mut all: Vec<Hit> = (0..300u32)
                .filter(|&j| allowed[j as usize] && j != *q)
                .map(|j| Hit(v.row(*q as usize).dot(&v.row(j as usize)), j))
                .collect();
            all.sort();
            let want: Vec<u32> = all.iter().take(3).map(|h| h.1).collect();
            let got: Vec<u32> = nn.iter().map(|x| x.1).collect();
            assert_eq!(got, want);
        }
    }
}
