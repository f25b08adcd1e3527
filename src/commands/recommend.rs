//! `trainer recommend`: which routings for this item, and why.
//!
//! For each item asked about (an ITEM_CD of the model, or a new item given in the item view's own
//! columns) it searches the model's index at its `ef_search`, keeps the nearest items that have a
//! current routing (never proposing one without), and for each gives the similarity and tier,
//! the neighbour's routing with standard times and work-order actuals, and why the two are
//! similar. Everything comes from the model directory, which is only read.
//!
//! **Why similar.** Item vectors are unit length and every dimension belongs to one feature, so
//! the cosine similarity is a sum of per-feature partial dot products, `sim = Σ_f Σ_{d∈f} q_d·n_d`
//! (the contributions), and the distance splits the same way, `1 − sim = Σ_f ½ Σ_{d∈f} (q_d −
//! n_d)²` (where they differ). Both are exact; the table shows the largest terms with the two
//! items' cleaned values.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rayon::prelude::*;
use serde::Serialize;

use crate::apply::{self, Transforms};
use crate::config::mapping::Mapping;
use crate::engine::{self, RowFilter};
use crate::error::{Error, Result};
use crate::index::{Visited, with_visited};
use crate::model::{ByKey, ITEM_FEATURES_FILE, Model, ROUTINGS_FILE, Routing, Routings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub top_k: usize,
    /// Features shown per neighbour in the table.
    pub explain: usize,
    pub min_reports: i64,
    pub format: Format,
}

/// One feature's part of a pair's similarity.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureTerm {
    pub feature: String,
    /// `Σ_{d∈f} q_d·n_d`: the terms add up to the similarity.
    pub contribution: f64,
    /// `½ Σ_{d∈f} (q_d − n_d)²`: the terms add up to 1 − similarity.
    pub distance: f64,
    /// The cleaned values of the two items (sizes in mm).
    pub query_value: Option<String>,
    pub neighbour_value: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    pub rank: usize,
    pub label: u32,
    pub item_cd: String,
    pub part_nm: Option<String>,
    pub part_type: Option<String>,
    pub similarity: f32,
    /// How many of the `PROPOSALS` nearest routed items have this routing (itself included).
    pub support: usize,
    /// The routing's votes among the routed items the proposals are drawn from: each with this
    /// routing counts `1 / (1 + rank / PROPOSALS)`, rank 0 being the nearest
    /// ([`votes`](crate::features::learn::votes)). After the first, proposals come in this order.
    pub votes: f64,
    /// Every feature, largest contribution first.
    pub features: Vec<FeatureTerm>,
    pub routing: Routing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub item_cd: String,
    pub item_key: String,
    /// `model`: the item is in the model and its saved vector was used; `encoded`: a new item,
    /// encoded with the model's fitted state.
    pub vector: &'static str,
    pub part_nm: Option<String>,
    pub part_type: Option<String>,
    /// The item's own current routing number, when it is in the model and has one.
    pub own_rout_no: Option<String>,
    pub threshold: f64,
    /// Whether the model's answers are calibrated (else confidence = the first proposal's
    /// similarity).
    pub calibrated: bool,
    /// The first proposal's agreement: of the `PROPOSALS` nearest routed items, how many share
    /// its routing plus how many have it or a routing one operation from it (none: no
    /// proposal).
    pub agreement: Option<usize>,
    /// Calibrated at training: a 90 % lower bound of the share of training items whose first
    /// proposal's routing was their own or one operation from it, when the first proposal had
    /// this agreement. The tier compares it with the threshold.
    pub confidence: Option<f32>,
    pub tier: &'static str,
    pub min_reports: i64,
    pub neighbours: Vec<Neighbour>,
}

/// Where an item's cleaned attributes are: a row of a `clean_items`-shaped table.
struct Attrs<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

/// A query: the item, its vector, where its attributes are, its own label if in the model.
struct Query<'a> {
    item_cd: String,
    item_key: String,
    label: Option<u32>,
    vector: Vec<f32>,
    attrs: Option<Attrs<'a>>,
}

/// `trainer recommend`: the rendered output.
///
/// A `run` or `update` may swap the model while it is read, and the files are read one by one:
/// the answer is kept only if `training_metadata.json` (rewritten by every writer) is the same
/// after reading as before, so that every file came from one model; otherwise it is read again.
pub async fn recommend(
    model_dir: &Path,
    codes: &[String],
    input: Option<&Path>,
    opts: &Options,
) -> Result<String> {
    if codes.is_empty() && input.is_none() {
        return Err(Error::usage(
            "give ITEM_CDs (`trainer recommend 0050000123 ...`) or a file of new items (`--input items.csv`, `--input -` for standard input)",
        ));
    }
    if opts.top_k == 0 {
        return Err(Error::usage("--top-k must be at least 1"));
    }
    let input = input.map(read_input).transpose()?;
    let generation = || std::fs::read(model_dir.join(crate::model::METADATA_FILE)).ok();
    const ATTEMPTS: usize = 3;
    for _ in 0..ATTEMPTS {
        let before = generation();
        let out = recommend_once(model_dir, codes, input.as_ref(), opts).await;
        if generation() == before {
            return out;
        }
    }
    Err(Error::input(
        model_dir.display().to_string(),
        format!(
            "the model was replaced {ATTEMPTS} times while it was read (a run or update is writing it); try again when it is done"
        ),
    ))
}

/// The items file (`-`: standard input), read once: shown name and text.
fn read_input(path: &Path) -> Result<(String, String)> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Error::input("standard input", e.to_string()))?;
        Ok(("standard input".to_string(), s))
    } else {
        let shown = path.display().to_string();
        let s = std::fs::read_to_string(path)
            .map_err(|e| Error::input(&shown, format!("cannot read the items file: {e}")))?;
        Ok((shown, s))
    }
}

async fn recommend_once(
    model_dir: &Path,
    codes: &[String],
    input: Option<&(String, String)>,
    opts: &Options,
) -> Result<String> {
    // The index (in Model) is read beside the tables of routings and attributes.
    let (model, tables) = rayon::join(
        || Model::load(model_dir),
        || -> Result<(Routings, ByKey)> {
            Ok((
                Routings::load(&model_dir.join(ROUTINGS_FILE))?,
                ByKey::load(&model_dir.join(ITEM_FEATURES_FILE))?,
            ))
        },
    );
    let (model, (routings, features)) = (model?, tables?);
    let by_key = model.items.by_key();

    let mut unknown = Vec::new();
    let mut queries = Vec::new();
    for c in codes {
        let key = item_key(c);
        match key.as_deref().and_then(|k| by_key.get(k)) {
            Some(&l) => queries.push(model_query(&model, &features, l)),
            None => unknown.push(c.clone()),
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(10).map(String::as_str).collect();
        return Err(Error::input(
            format!("ITEM_CD {}", shown.join(", ")),
            format!(
                "{} of the {} items asked for are not in the model {}; give a new item's \
                 attributes with --input (CSV or JSON lines in the item view's columns), or add it \
                 with `trainer update`",
                unknown.len(),
                codes.len(),
                model_dir.display()
            ),
        ));
    }
    let new_items;
    if let Some((shown, text)) = input {
        new_items = read_new_items(&model, model_dir, shown, text).await?;
        for (k, key) in new_items.keys.iter().enumerate() {
            match by_key.get(key.as_str()) {
                Some(&l) => {
                    eprintln!(
                        "note: {} is in the model: its saved vector is used (not the file's attributes)",
                        new_items.item_cd[k]
                    );
                    queries.push(model_query(&model, &features, l));
                }
                None => queries.push(Query {
                    item_cd: new_items.item_cd[k].clone(),
                    item_key: key.clone(),
                    label: None,
                    vector: new_items.vectors.row(k).to_vec(),
                    attrs: Some(Attrs {
                        batch: &new_items.clean,
                        row: k,
                    }),
                }),
            }
        }
    }

    let groups = FeatureGroups::new(&model.dims.features);
    // Items are answered on all cores (each answer depends on its item only; order is kept).
    let answers: Vec<Answer> = queries
        .par_iter()
        .map(|q| with_visited(|vis| answer(&model, &routings, &features, &groups, q, opts, vis)))
        .collect::<Result<_>>()?;
    Ok(match opts.format {
        Format::Table => render_table(&answers, opts),
        Format::Json => answers
            .iter()
            .map(|a| serde_json::to_string(a).unwrap() + "\n")
            .collect(),
        Format::Csv => render_csv(&answers, opts),
    })
}

pub use crate::engine::item_key;

fn model_query<'a>(model: &Model, features: &'a ByKey, l: u32) -> Query<'a> {
    let key = model.items.item_key[l as usize].clone();
    let rows = features.rows(&key);
    Query {
        item_cd: model.items.item_cd[l as usize].clone(),
        label: Some(l),
        vector: model.index.vector(l).to_vec(),
        attrs: (!rows.is_empty()).then_some(Attrs {
            batch: &features.batch,
            row: rows.start,
        }),
        item_key: key,
    }
}

/// The nearest items with a routing to unit vector `q`, other than `exclude`, as (label,
/// similarity), at most `k`: the index is searched at the model's `ef_search`; if that beam holds
/// fewer than `k` routed items, it is widened.
pub fn routed_neighbours(
    model: &Model,
    q: &[f32],
    exclude: Option<u32>,
    k: usize,
    vis: &mut Visited,
) -> Vec<(u32, f32)> {
    let n = model.index.len();
    let mut ef = model.params.ef_search.max(k);
    loop {
        let found: Vec<(u32, f32)> = model
            .index
            .search(q, ef, ef, vis)
            .into_iter()
            .filter(|&(_, l)| Some(l) != exclude && model.items.has_routing[l as usize])
            .take(k)
            .map(|(d, l)| (l, 1.0 - d))
            .collect();
        if found.len() >= k || ef >= n {
            return found;
        }
        ef = (ef * 4).min(n);
    }
}

/// Dimension -> feature group, features in order of first appearance.
struct FeatureGroups {
    names: Vec<String>,
    of_dim: Vec<usize>,
}

impl FeatureGroups {
    fn new(dim_features: &[String]) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut idx: HashMap<&str, usize> = HashMap::new();
        let of_dim = dim_features
            .iter()
            .map(|f| {
                *idx.entry(f.as_str()).or_insert_with(|| {
                    names.push(f.clone());
                    names.len() - 1
                })
            })
            .collect();
        FeatureGroups { names, of_dim }
    }
}

/// Per feature: (contribution to the similarity, share of the distance), in f64.
pub fn split_similarity(
    feature_of_dim: &[usize],
    n_features: usize,
    q: &[f32],
    v: &[f32],
) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0f64, 0.0f64); n_features];
    for ((&f, &a), &b) in feature_of_dim.iter().zip(q).zip(v) {
        let (a, b) = (a as f64, b as f64);
        out[f].0 += a * b;
        out[f].1 += 0.5 * (a - b) * (a - b);
    }
    out
}

fn answer(
    model: &Model,
    routings: &Routings,
    features: &ByKey,
    groups: &FeatureGroups,
    q: &Query,
    opts: &Options,
    vis: &mut Visited,
) -> Result<Answer> {
    let thr = model.params.threshold;
    // The neighbours the proposals are drawn from: at least those the calibration counts
    // support among, whatever --top-k shows, and several per proposal.
    let found = routed_neighbours(
        model,
        &q.vector,
        q.label,
        crate::features::learn::proposal_pool(opts.top_k),
        vis,
    );
    // Routings are compared by their JOB_CDs; only the proposed ones are built.
    let mut found_rows = Vec::with_capacity(found.len());
    for &(l, _) in &found {
        let rows = routings.rows(&model.items.item_key[l as usize]);
        if rows.is_empty() {
            return Err(Error::input(
                routings.path().display().to_string(),
                format!(
                    "item {} is marked as having a routing in items.parquet but has none here: \
                     the model files do not belong together; retrain",
                    model.items.item_cd[l as usize]
                ),
            ));
        }
        found_rows.push(rows);
    }
    let sequences: Vec<Vec<Option<&str>>> = found_rows
        .iter()
        .map(|r| r.clone().map(|i| routings.job_cd(i)).collect())
        .collect();
    // Equal routings share an id: the ordering compares ids, not JOB_CD strings.
    let ids: Vec<usize> = {
        let mut seen: HashMap<&[Option<&str>], usize> = HashMap::with_capacity(sequences.len());
        sequences
            .iter()
            .map(|s| {
                let next = seen.len();
                *seen.entry(s.as_slice()).or_insert(next)
            })
            .collect()
    };
    let support = crate::features::learn::supports(&ids);
    let votes = crate::features::learn::votes(&ids);
    // One proposal per distinct routing, the most shared first, then by votes (see
    // `proposal_order`; --top-k is at least 1, so the first proposal is always among them).
    let order = crate::features::learn::proposal_order_by(&ids, &votes, opts.top_k);
    let agreement = order.first().map(|&first| {
        let ops: Vec<&[Option<&str>]> = sequences.iter().map(Vec::as_slice).collect();
        crate::features::learn::agreement_of(&ops, first)
    });
    let nearest = found.first().map(|x| x.1);
    drop(sequences);
    let chosen: Vec<(usize, _)> = order
        .iter()
        .map(|&i| {
            (
                i,
                routings
                    .routing_at(found_rows[i].clone())
                    .expect("rows checked above"),
            )
        })
        .collect();
    // The query's side of every feature term, the same for each neighbour.
    let query_values: Vec<Option<String>> = groups
        .names
        .iter()
        .map(|f| q.attrs.as_ref().and_then(|a| display_value(a, f)))
        .collect();
    let mut neighbours = Vec::with_capacity(found.len());
    for (rank, (i, routing)) in chosen.into_iter().enumerate() {
        let ((l, sim), support, votes) = (found[i], support[i], votes[i]);
        let key = &model.items.item_key[l as usize];
        let nrow = features.rows(key);
        let nattrs = (!nrow.is_empty()).then_some(Attrs {
            batch: &features.batch,
            row: nrow.start,
        });
        let split = split_similarity(
            &groups.of_dim,
            groups.names.len(),
            &q.vector,
            model.index.vector(l),
        );
        let mut terms: Vec<FeatureTerm> = split
            .into_iter()
            .zip(groups.names.iter().zip(&query_values))
            .map(|((c, d), (f, qv))| FeatureTerm {
                feature: f.clone(),
                contribution: c,
                distance: d,
                query_value: qv.clone(),
                neighbour_value: nattrs.as_ref().and_then(|a| display_value(a, f)),
            })
            .collect();
        terms.sort_by(|a, b| {
            b.contribution
                .total_cmp(&a.contribution)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        neighbours.push(Neighbour {
            rank: rank + 1,
            label: l,
            item_cd: model.items.item_cd[l as usize].clone(),
            part_nm: model.items.part_nm[l as usize].clone(),
            part_type: nattrs.as_ref().and_then(|a| text_value(a, "part_type")),
            similarity: sim,
            support,
            votes,
            features: terms,
            routing,
        });
    }
    let confidence = crate::features::learn::answer_confidence(
        agreement,
        nearest,
        &model.params.proposals,
        &model.params.calibration,
    );
    let own = match q.label {
        Some(_) => routings.routing(&q.item_key).map(|r| r.rout_no),
        None => None,
    };
    Ok(Answer {
        item_cd: q.item_cd.clone(),
        item_key: q.item_key.clone(),
        vector: if q.label.is_some() {
            "model"
        } else {
            "encoded"
        },
        part_nm: q.attrs.as_ref().and_then(|a| text_value(a, "part_nm")),
        part_type: q.attrs.as_ref().and_then(|a| text_value(a, "part_type")),
        own_rout_no: own,
        threshold: thr,
        calibrated: !model.params.proposals.is_empty(),
        agreement,
        confidence,
        tier: if confidence.is_some_and(|c| c as f64 >= thr) {
            "HIGH"
        } else {
            "LOW"
        },
        min_reports: opts.min_reports,
        neighbours,
    })
}

fn text_value(a: &Attrs, col: &str) -> Option<String> {
    let c = a.batch.column_by_name(col)?;
    let s = c.as_any().downcast_ref::<StringArray>()?;
    (!s.is_null(a.row)).then(|| s.value(a.row).to_string())
}

/// Sizes: the clean layer stores lengths as `ln(1 + mm)` (sql/02_clean/10_clean_items.sql).
fn is_log_length(col: &str) -> bool {
    col.contains("diameter") || col.contains("thickness") || col.ends_with("_size")
}

/// A feature's cleaned value as a planner reads it: text as is, sizes back in mm.
fn display_value(a: &Attrs, col: &str) -> Option<String> {
    let c = a.batch.column_by_name(col)?;
    if c.is_null(a.row) {
        return Some("(missing)".into());
    }
    if let Some(s) = c.as_any().downcast_ref::<StringArray>() {
        return Some(s.value(a.row).to_string());
    }
    let x = number_at(c.as_ref(), a.row)?;
    Some(if is_log_length(col) {
        format!("{:.1} mm", x.exp_m1())
    } else {
        format!("{x}")
    })
}

/// The number at `row` of a numeric column as f64. The clean layer's numbers are f64 or i64,
/// read directly (this runs for every feature of every proposal); other types as Arrow casts them.
fn number_at(c: &dyn Array, row: usize) -> Option<f64> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};
    match c.data_type() {
        DataType::Float64 => Some(c.as_primitive::<Float64Type>().value(row)),
        DataType::Int64 => Some(c.as_primitive::<Int64Type>().value(row) as f64),
        _ => {
            let x = arrow::compute::cast(&c.slice(row, 1), &DataType::Float64).ok()?;
            Some(x.as_any().downcast_ref::<Float64Array>()?.value(0))
        }
    }
}

/// "+12 %" when both values are sizes in mm.
fn size_change(t: &FeatureTerm) -> Option<String> {
    let mm = |s: &Option<String>| s.as_deref()?.strip_suffix(" mm")?.parse::<f64>().ok();
    let (q, n) = (mm(&t.query_value)?, mm(&t.neighbour_value)?);
    (q > 0.0).then(|| format!("{:+.0} %", 100.0 * (n - q) / q))
}

fn trusted(reports: i64, min: i64) -> bool {
    reports >= min
}

fn render_table(answers: &[Answer], opts: &Options) -> String {
    let mut o = String::new();
    for a in answers {
        let _ = writeln!(
            o,
            "== {}  {} {}  ({}{})",
            a.item_cd,
            a.part_type.as_deref().unwrap_or("-"),
            a.part_nm.as_deref().unwrap_or("-"),
            if a.vector == "model" {
                "in the model"
            } else {
                "new item, encoded with the model's fitted state"
            },
            a.own_rout_no
                .as_ref()
                .map(|r| format!("; its own routing: {r}"))
                .unwrap_or_default()
        );
        if a.neighbours.is_empty() {
            let _ = writeln!(o, "   no item with a routing found");
        } else if let Some(c) = a.confidence {
            let _ = writeln!(
                o,
                "   {}: {}",
                a.tier,
                if a.calibrated {
                    format!(
                        "for at least {:.0} % of training items with agreement {} of {}, the first proposal's \
                         routing was their own or one operation from it (90 % confidence)",
                        100.0 * c,
                        a.agreement.unwrap_or(0),
                        2 * crate::features::learn::PROPOSALS
                    )
                } else {
                    format!("the nearest routed item's similarity {c:.4} (not calibrated)")
                }
            );
        }
        for n in &a.neighbours {
            let std: f64 = n.routing.operations.iter().map(|x| x.std_minutes).sum();
            let _ = writeln!(
                o,
                "{:>2}. {}  similarity {:.4}, {} of {} alike, votes {:.2}  {} {}  routing {}: {} operations, {:.1} standard minutes",
                n.rank,
                n.item_cd,
                n.similarity,
                n.support,
                crate::features::learn::PROPOSALS,
                n.votes,
                n.part_type.as_deref().unwrap_or("-"),
                n.part_nm.as_deref().unwrap_or("-"),
                n.routing.rout_no,
                n.routing.operations.len(),
                std
            );
            let why: Vec<String> = n
                .features
                .iter()
                .filter(|t| t.contribution > 0.0)
                .take(opts.explain)
                .map(|t| {
                    let same = match (&t.query_value, &t.neighbour_value) {
                        (Some(q), Some(v)) if q == v => format!(" same {q}"),
                        _ => String::new(),
                    };
                    format!("{} {:.3}{same}", t.feature, t.contribution)
                })
                .collect();
            let _ = writeln!(o, "    why similar: {}", why.join("; "));
            let mut diff: Vec<&FeatureTerm> =
                n.features.iter().filter(|t| t.distance > 0.0).collect();
            diff.sort_by(|a, b| {
                b.distance
                    .total_cmp(&a.distance)
                    .then_with(|| a.feature.cmp(&b.feature))
            });
            let differs: Vec<String> = diff
                .iter()
                .take(opts.explain)
                .map(|t| {
                    let vals = match (&t.query_value, &t.neighbour_value) {
                        (Some(q), Some(v)) if q != v => format!(
                            " {q} -> {v}{}",
                            size_change(t)
                                .map(|c| format!(" ({c})"))
                                .unwrap_or_default()
                        ),
                        _ => String::new(),
                    };
                    format!("{} {:.3}{vals}", t.feature, t.distance)
                })
                .collect();
            if !differs.is_empty() {
                let _ = writeln!(o, "    where they differ: {}", differs.join("; "));
            }
            let _ = writeln!(
                o,
                "    {:>5}  {:<10} {:<10} {:>9} {:>9} {:>5} {:>4}  actual h/unit (median ± MAD, reports)",
                "seq", "job", "resource", "setup min", "run min", "qty", "out"
            );
            for op in &n.routing.operations {
                let actual = match op.actual_hours_per_unit {
                    Some(m) if trusted(op.reports, opts.min_reports) => format!(
                        "{m:.4} ± {:.4} ({})",
                        op.actual_hours_per_unit_mad.unwrap_or(0.0),
                        op.reports
                    ),
                    Some(m) => format!(
                        "{m:.4} ({} report{}: too few to trust)",
                        op.reports,
                        if op.reports == 1 { "" } else { "s" }
                    ),
                    None => "no reports".into(),
                };
                let _ = writeln!(
                    o,
                    "    {:>5}  {:<10} {:<10} {:>9} {:>9} {:>5} {:>4}  {actual}",
                    op.proc_seq,
                    op.job_cd.as_deref().unwrap_or("-"),
                    op.res_cd.as_deref().unwrap_or("-"),
                    op.setup_minutes.map_or("-".into(), |x| format!("{x:.1}")),
                    op.run_minutes.map_or("-".into(), |x| format!("{x:.1}")),
                    format!("{}", op.run_time_qty),
                    if op.outsourced { "yes" } else { "-" },
                );
            }
        }
        o.push('\n');
    }
    match answers.first() {
        Some(a) if a.calibrated => {
            let _ = writeln!(
                o,
                "k of {n} alike: k of the {n} nearest items with a routing have this routing. Agreement: \
                 the first proposal's k, plus how many of the {n} have its routing or one operation \
                 (inserted, dropped or replaced) from it. Confidence: a 90 % lower bound of the share \
                 of training items whose first proposal's routing was their own or one operation \
                 from it, when the agreement was as high; HIGH from {:.0} %. Order: the routing \
                 most of the {n} share first, then by votes: each of the {pool} nearest items with a \
                 routing counts for its routing 1/(1 + rank/{n}), rank 0 the nearest.",
                100.0 * a.threshold,
                n = crate::features::learn::PROPOSALS,
                pool = crate::features::learn::proposal_pool(opts.top_k),
            );
        }
        Some(a) => {
            let _ = writeln!(
                o,
                "k of {} alike: k of the nearest items with a routing have this routing. Tier: the first \
                 proposal's similarity against {} (the model has too few routed items to calibrate it). \
                 Order: the routing most of the {} nearest share first, then by votes: each of the {} \
                 nearest items with a routing counts for its routing 1/(1 + rank/{}), rank 0 the nearest.",
                crate::features::learn::PROPOSALS,
                a.threshold,
                crate::features::learn::PROPOSALS,
                crate::features::learn::proposal_pool(opts.top_k),
                crate::features::learn::PROPOSALS,
            );
        }
        None => {}
    }
    o
}

fn render_csv(answers: &[Answer], opts: &Options) -> String {
    let mut o = String::from(
        "ITEM_CD,vector,confidence,tier,rank,neighbour_ITEM_CD,similarity,support,top_features,ROUT_NO,PROC_SEQ,JOB_CD,RES_CD,\
setup_minutes,run_minutes,run_time_qty,std_minutes,outsourced,reports,actual_hours_per_unit,\
actual_hours_per_unit_mad,actuals_trusted\n",
    );
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for a in answers {
        for n in &a.neighbours {
            let top: Vec<String> = n
                .features
                .iter()
                .filter(|t| t.contribution > 0.0)
                .take(opts.explain)
                .map(|t| format!("{}={:.4}", t.feature, t.contribution))
                .collect();
            for op in &n.routing.operations {
                let _ = writeln!(
                    o,
                    "{},{},{},{},{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    crate::csv::field(&a.item_cd),
                    a.vector,
                    a.confidence.map(|c| format!("{c:.6}")).unwrap_or_default(),
                    a.tier,
                    n.rank,
                    crate::csv::field(&n.item_cd),
                    n.similarity,
                    n.support,
                    crate::csv::field(&top.join(" ")),
                    crate::csv::field(&n.routing.rout_no),
                    op.proc_seq,
                    crate::csv::field(op.job_cd.as_deref().unwrap_or("")),
                    crate::csv::field(op.res_cd.as_deref().unwrap_or("")),
                    opt(op.setup_minutes),
                    opt(op.run_minutes),
                    op.run_time_qty,
                    op.std_minutes,
                    op.outsourced,
                    op.reports,
                    opt(op.actual_hours_per_unit),
                    opt(op.actual_hours_per_unit_mad),
                    op.actual_hours_per_unit.is_some() && trusted(op.reports, opts.min_reports),
                );
            }
        }
    }
    o
}

/// New items read from a file and encoded with the model's fitted state.
struct NewItems {
    keys: Vec<String>,
    item_cd: Vec<String>,
    vectors: ndarray::Array2<f32>,
    /// Their `clean_items` rows, in `keys` order.
    clean: RecordBatch,
}

/// The vectors `recommend` computes for the items of an input file (CSV or JSON lines), in
/// item_key order: (item_key, vector rows). What `update` would compute for them (tested).
pub async fn encode_input(
    model_dir: &Path,
    path: &Path,
) -> Result<(Vec<String>, ndarray::Array2<f32>)> {
    let model = Model::load(model_dir)?;
    let (shown, text) = read_input(path)?;
    let n = read_new_items(&model, model_dir, &shown, &text).await?;
    Ok((n.keys, n.vectors))
}

/// Reads new items (CSV with a header, or JSON lines) in the item view's own columns, cleans and
/// encodes them with the model's transforms and fitted state.
async fn read_new_items(
    model: &Model,
    model_dir: &Path,
    shown: &str,
    text: &str,
) -> Result<NewItems> {
    let t = Transforms::load(model_dir)?;
    let batch = item_view_batch(&t.mapping, shown, text)?;
    let ctx = engine::new_context();
    register_erp_tables(&ctx, &t.mapping, batch)?;
    t.define_views(&ctx, RowFilter::All).await?;
    let clean = apply::clean_items(&ctx).await?;
    let enc = apply::encode(&ctx, &t, clean.clone()).await?;
    if enc.vectors.ncols() != model.index.dim {
        return Err(Error::internal(
            "encoded vectors do not match the model's dimension",
        ));
    }
    Ok(NewItems {
        keys: enc.items.keys,
        item_cd: enc.items.item_cd,
        vectors: enc.vectors,
        clean,
    })
}

/// The ERP item view's mapped columns with their contract types (text where the contract has
/// none), and the type each gets.
fn item_columns(mapping: &Mapping) -> Vec<(String, DataType)> {
    let contract = crate::erp::item_schema();
    mapping
        .columns(crate::erp::VIEWS[0].erp_name)
        .keys()
        .map(|c| {
            let ty = contract
                .field_with_name(c)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Utf8);
            (c.clone(), ty)
        })
        .collect()
}

/// Parses the input (CSV with a header, or JSON lines: detected from the first character) into a
/// batch of the item view. Numbers are checked here so that an error names the line and column;
/// `''`, `nan`, `null` and `none` are missing, as in the ERP.
fn item_view_batch(mapping: &Mapping, shown: &str, text: &str) -> Result<RecordBatch> {
    let cols = item_columns(mapping);
    let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    let key_col = mapping
        .columns(crate::erp::VIEWS[0].erp_name)
        .iter()
        .find(|(_, std)| std.as_str() == "item_cd")
        .map(|(erp, _)| erp.clone())
        .unwrap_or_else(|| "ITEM_CD".into());
    // rows: (line, column -> raw text)
    let mut rows: Vec<(usize, HashMap<String, Option<String>>)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                Error::input(
                    format!("{shown}, line {}", i + 1),
                    format!("not a JSON object: {e}"),
                )
            })?;
            let obj = v.as_object().ok_or_else(|| {
                Error::input(format!("{shown}, line {}", i + 1), "not a JSON object")
            })?;
            let mut row = HashMap::new();
            for (k, val) in obj {
                if !names.contains(k) && !unknown.contains(k) {
                    unknown.push(k.clone());
                }
                let s = match val {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                };
                row.insert(k.clone(), s);
            }
            rows.push((i + 1, row));
        }
    } else {
        let records = crate::csv::parse(text).map_err(|e| Error::input(shown, e))?;
        let Some(((_, header), body)) = records.split_first() else {
            return Err(Error::input(
                shown,
                "empty: expected a header line and one item per line",
            ));
        };
        for h in header {
            if !names.contains(h) && !unknown.contains(h) {
                unknown.push(h.clone());
            }
        }
        for (line, rec) in body {
            if rec.len() != header.len() {
                return Err(Error::input(
                    format!("{shown}, line {line}"),
                    format!("{} fields, the header has {}", rec.len(), header.len()),
                ));
            }
            rows.push((
                *line,
                header
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(|v| Some(v.clone())))
                    .collect(),
            ));
        }
    }
    if rows.is_empty() {
        return Err(Error::input(shown, "no items in the file"));
    }
    if !unknown.is_empty() {
        eprintln!(
            "note: {shown}: columns not in the item view's mapping are ignored: {}",
            unknown
                .iter()
                .map(|u| {
                    let near = crate::text::close_matches(u, &names);
                    if near.is_empty() {
                        u.clone()
                    } else {
                        format!("{u} (did you mean {}?)", near.join(" or "))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (line, row) in &rows {
        if row
            .get(&key_col)
            .and_then(|v| v.as_deref())
            .and_then(engine::norm_text)
            .is_none()
        {
            return Err(Error::input(
                format!("{shown}, line {line}"),
                format!("`{key_col}` is empty: every item needs its ITEM_CD"),
            ));
        }
    }
    let missing = |s: &str| {
        let t = s.trim();
        t.is_empty() || ["nan", "null", "none"].contains(&t.to_ascii_lowercase().as_str())
    };
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, ty) in &cols {
        let raw = rows.iter().map(|(_, r)| r.get(name).cloned().flatten());
        let array: ArrayRef = match ty {
            DataType::Float64 => {
                let mut vals = Vec::with_capacity(rows.len());
                for ((line, _), v) in rows.iter().zip(raw) {
                    vals.push(match v {
                        Some(s) if !missing(&s) => Some(s.trim().parse::<f64>().map_err(|_| {
                            Error::input(
                                format!("{shown}, line {line}, column {name}"),
                                format!("`{s}` is not a number (missing values may be empty, nan or null)"),
                            )
                        })?),
                        _ => None,
                    });
                }
                Arc::new(Float64Array::from(vals))
            }
            _ => Arc::new(StringArray::from(raw.collect::<Vec<Option<String>>>())),
        };
        let ty = array.data_type().clone();
        fields.push(Field::new(name, ty, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::internal(format!("items batch: {e}")))
}

/// Registers the item view from `items` and empty routing and work-order views (every mapped
/// column, typed as the contract says) under their ERP names.
fn register_erp_tables(
    ctx: &datafusion::prelude::SessionContext,
    mapping: &Mapping,
    items: RecordBatch,
) -> Result<()> {
    // By their exact (mixed-case) names, as the Parquet and ODBC sources register them.
    let reg = |name: &str, b: RecordBatch| {
        let table = datafusion::datasource::MemTable::try_new(b.schema(), vec![vec![b]])
            .map_err(|e| Error::internal(format!("registering {name}: {e}")))?;
        ctx.register_table(
            datafusion::common::TableReference::bare(name),
            Arc::new(table),
        )
        .map(|_| ())
        .map_err(|e| Error::internal(format!("registering {name}: {e}")))
    };
    reg(crate::erp::VIEWS[0].erp_name, items)?;
    for (view, contract) in [
        (crate::erp::VIEWS[1].erp_name, crate::erp::routing_schema()),
        (
            crate::erp::VIEWS[2].erp_name,
            crate::erp::work_order_schema(),
        ),
    ] {
        let fields: Vec<Field> = mapping
            .columns(view)
            .keys()
            .map(|c| {
                let ty = contract
                    .field_with_name(c)
                    .map(|f| f.data_type().clone())
                    .unwrap_or(DataType::Utf8);
                Field::new(c, ty, true)
            })
            .collect();
        reg(view, RecordBatch::new_empty(Arc::new(Schema::new(fields))))?;
    }
    Ok(())
}

/// `trainer recommend` on the command line: the answer goes to standard output as one write.
pub async fn execute(
    model: &Path,
    items: &[String],
    input: Option<&Path>,
    opts: &Options,
) -> Result<()> {
    use std::io::Write;
    let out = recommend(model, items, input, opts).await?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .map_err(|e| Error::output(Path::new("stdout"), e.to_string()))
}
