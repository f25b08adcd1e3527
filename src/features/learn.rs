//! Feature weights learned from the plant's own routings, and the calibrations that decide the
//! tier.
//!
//! Both answer one question on the training data: for a routed item, does its nearest routed
//! neighbour (itself left out) have the same current routing? The config's domain weights are
//! the prior; what the data shows moves them.
//!
//! * A seeded sample of routed training items are the queries. Items held out by `trainer eval`
//!   have no routing rows at training time, so they are never queries or answers.
//! * A feature's weight scales its block of dimensions before the row is normalised, so the
//!   cosine of two items splits into per-feature partial dot products and norms:
//!   `cos_w(i, j) = Σ_f w_f²·p_f(i,j) / sqrt(Σ_f w_f²·n_f(i) · Σ_f w_f²·n_f(j))`. They are
//!   computed once for each query and its shortlist (the `SHORTLIST` nearest routed items by
//!   exact search under the prior, and again under the first round's weights), after which a
//!   trial weighting costs O(queries × shortlist).
//! * Coordinate search over a grid of multipliers of the prior (0 and 2^(k/2), k = -6..6) on
//!   the leave-one-out objective `mean(1/rank of the first same-routing neighbour) +
//!   ½·hit@5`, minus `PENALTY · Σ_f |log2 multiplier_f|` (a zero counts as 1/16): a weight moves
//!   away from its prior only when the gain outweighs that, so weak evidence leaves it alone.
//!   Passes repeat until nothing moves (at most `MAX_PASSES`).
//! * Calibrations on the queries under the final weights; the tier compares an answer's
//!   confidence with `similarity_threshold`.
//!   - An answer (`recommend`, `eval`, and a model item's own in `run` and `update`):
//!     [`ProposalCalibration`], by the [`agreement`] of its
//!     first proposal (how many of the `PROPOSALS` nearest routed neighbours share its routing,
//!     plus how many have it or a routing one operation from it), of the event "the first
//!     proposal's routing is the item's own or one operation from it" ([`within_one_op`]), the
//!     rate per agreement made non-decreasing (pool adjacent violators) and taken at its lower
//!     confidence bound, so that a level seen on few items is HIGH only when even its
//!     uncertain rate reaches the threshold. Variants one operation
//!     apart count because a neighbourhood of one routing and its variants says the first
//!     proposal is of the right family even when its exact routing is rare there.
//!     Not "exactly the item's own": on a plant where one routing in five deviates at random
//!     from what its attributes imply, no answer can be right 8 times in 10, so the HIGH tier
//!     would be empty by construction (docs/quality.md).
//!   - The similarity (`eval`'s calibration plot, and an answer's confidence in a model too
//!     small for the former): [`Calibration`], by the similarity of the nearest routed
//!     neighbour, in `CAL_BINS` equal-count bins, made non-decreasing and interpolated linearly
//!     between bin centres, of the event "one of the query's `PROPOSALS` nearest routed
//!     neighbours has its routing".
//!
//! Everything is deterministic: the sample is a seeded hash of the label (items are in
//! `item_key` order), neighbour ties go to the lower label, and sums run in query order.

use std::collections::BinaryHeap;

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::features::vectors::{Dims, RawMatrix};
use crate::rng::{fnv1a64, mix64};

/// Routed neighbours kept per query and per shortlist round.
pub const SHORTLIST: usize = 64;
/// Objective units a doubling (or halving) of a weight away from its prior must earn.
pub const PENALTY: f64 = 0.002;
pub const MAX_PASSES: usize = 3;
/// Routings a planner is shown (`trainer recommend`'s default `--top-k`): the calibrated
/// similarity is the chance that one of them is the item's own.
pub const PROPOSALS: usize = 5;
/// Equal-count bins of the calibration curve.
pub const CAL_BINS: usize = 10;
/// Fewer routed queries than this: no learning and no calibration (reported, not hidden).
pub const MIN_QUERIES: usize = crate::config::MIN_LEARN_SAMPLE;

/// Multipliers of the prior weight the search tries.
fn grid() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((-6..=6).map(|k| 2f64.powf(k as f64 / 2.0)))
        .collect()
}

fn penalty(m: f64) -> f64 {
    if m <= 0.0 { 4.0 } else { m.log2().abs() }
}

/// The leave-one-out scores of one weighting on the queries.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Loo {
    pub top1: f64,
    pub hit_at_5: f64,
    pub mrr: f64,
}

impl Loo {
    pub fn objective(&self) -> f64 {
        self.mrr + 0.5 * self.hit_at_5
    }
}

/// One feature's weight before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureWeight {
    pub feature: String,
    pub prior: f64,
    pub learned: f64,
}

/// What [`fit`] did, for `training_metadata.json`, the log and `trainer eval`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnReport {
    pub learned: bool,
    pub queries: usize,
    pub shortlist: usize,
    pub passes: usize,
    pub prior: Loo,
    pub result: Loo,
    pub weights: Vec<FeatureWeight>,
    pub calibration: Calibration,
    /// What `recommend` and `eval` tier a proposal by.
    pub proposal_calibration: ProposalCalibration,
    /// Time spent finding shortlists (exact search) and searching weights.
    pub shortlist_seconds: f64,
    pub search_seconds: f64,
}

/// similarity -> observed share of top-1 pairs with the same routing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// (mean similarity of the bin, same-routing rate, queries), similarity ascending, rates
    /// non-decreasing. Empty: not calibrated (the raw cosine is used).
    pub points: Vec<(f64, f64, usize)>,
}

impl Calibration {
    pub fn identity() -> Self {
        Calibration { points: Vec::new() }
    }

    pub fn is_identity(&self) -> bool {
        self.points.is_empty()
    }

    /// The calibrated value of a cosine similarity (the raw value when not calibrated).
    pub fn apply(&self, s: f64) -> f64 {
        let p = &self.points;
        match p.len() {
            0 => s,
            _ if s <= p[0].0 => p[0].1,
            _ if s >= p[p.len() - 1].0 => p[p.len() - 1].1,
            _ => {
                let k = p.partition_point(|x| x.0 <= s);
                let (a, b) = (p[k - 1], p[k]);
                let t = if b.0 > a.0 {
                    (s - a.0) / (b.0 - a.0)
                } else {
                    1.0
                };
                a.1 + t * (b.1 - a.1)
            }
        }
    }

    /// The smallest cosine similarity whose calibrated value reaches `threshold` (the raw
    /// threshold when not calibrated; +∞ when no similarity reaches it).
    pub fn raw_threshold(&self, threshold: f64) -> f64 {
        let p = &self.points;
        if p.is_empty() {
            return threshold;
        }
        if threshold <= p[0].1 {
            return f64::NEG_INFINITY;
        }
        for k in 1..p.len() {
            let (a, b) = (p[k - 1], p[k]);
            if threshold <= b.1 {
                return a.0 + (threshold - a.1) / (b.1 - a.1) * (b.0 - a.0);
            }
        }
        f64::INFINITY
    }

    /// Reads the calibration a model's `training_metadata.json` records (absent: identity).
    pub fn from_metadata(meta: &serde_json::Value) -> Calibration {
        meta.pointer("/feature_weights/calibration")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_else(Calibration::identity)
    }

    /// Fits the curve to (similarity, same routing) pairs.
    pub fn fit(pairs: &[(f64, bool)]) -> Self {
        if pairs.len() < MIN_QUERIES {
            return Calibration::identity();
        }
        let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let n = sorted.len();
        // (sum of similarity, hits, count) per bin, then pooled while a rate decreases.
        let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
        for b in 0..CAL_BINS {
            let (lo, hi) = (b * n / CAL_BINS, (b + 1) * n / CAL_BINS);
            if hi <= lo {
                continue;
            }
            let part = &sorted[lo..hi];
            let s: f64 = part.iter().map(|x| x.0).sum();
            let h = part.iter().filter(|x| x.1).count() as f64;
            blocks.push((s, h, part.len()));
            while blocks.len() >= 2 {
                let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
                if a.1 / a.2 as f64 <= b.1 / b.2 as f64 {
                    break;
                }
                blocks.pop();
                blocks.pop();
                blocks.push((a.0 + b.0, a.1 + b.1, a.2 + b.2));
            }
        }
        Calibration {
            points: blocks
                .into_iter()
                .map(|(s, h, c)| (s / c as f64, h / c as f64, c))
                .collect(),
        }
    }
}

/// The confidence of an answer: how often a training item's first proposal was its routing or
/// one operation from it ([`within_one_op`]), by the first proposal's [`agreement`], taken at a
/// one-sided lower bound ([`wilson_lower`], [`CONFIDENCE_Z`]). This is what `recommend` and
/// `eval` tier an answer by.
///
/// The bound, not the observed share: a level seen on a few dozen training items can clear the
/// threshold by chance where the plant's rate is below it, and an answer is HIGH only when the
/// evidence says its rate reaches the threshold. A level seen often keeps nearly its observed share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ProposalCalibration {
    /// (agreement, confidence, items), agreement ascending, confidences non-decreasing: the
    /// lower bound of the pooled level's share, raised to the level below's where that is
    /// higher. Empty: not calibrated.
    pub levels: Vec<(usize, f64, usize)>,
    /// (agreement, observed share) of the same levels, for reports.
    #[serde(default)]
    pub rates: Vec<(usize, f64)>,
}

/// z of the one-sided bound an answer's confidence is ([`ProposalCalibration`]): 90 % of the
/// time the plant's rate is at least the bound (`recommend` and `eval` say "90 %").
pub const CONFIDENCE_Z: f64 = 1.2816;

/// The Wilson score lower bound of a rate seen `hits` times in `n` (z = `z`).
pub fn wilson_lower(hits: f64, n: usize, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    let p = hits / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

impl ProposalCalibration {
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The confidence of an answer whose first proposal has this [`agreement`] (one never seen
    /// takes the nearest lower level's, or the lowest level's); `None` when not calibrated.
    pub fn apply(&self, agreement: usize) -> Option<f64> {
        let first = self.levels.first()?;
        Some(
            self.levels
                .iter()
                .rev()
                .find(|l| l.0 <= agreement)
                .unwrap_or(first)
                .1,
        )
    }

    /// Fits the levels to (agreement, right) pairs: shares made non-decreasing in the agreement
    /// (pool adjacent violators), then each pooled level's lower bound.
    pub fn fit(pairs: &[(usize, bool)]) -> Self {
        if pairs.len() < MIN_QUERIES {
            return ProposalCalibration::default();
        }
        // (first agreement, last agreement, hits, count) per pooled block.
        let mut blocks: Vec<(usize, usize, f64, usize)> = Vec::new();
        for k in 1..=2 * PROPOSALS {
            let n = pairs.iter().filter(|p| p.0 == k).count();
            if n == 0 {
                continue;
            }
            let h = pairs.iter().filter(|p| p.0 == k && p.1).count() as f64;
            blocks.push((k, k, h, n));
            while blocks.len() >= 2 {
                let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
                if a.2 / a.3 as f64 <= b.2 / b.3 as f64 {
                    break;
                }
                blocks.pop();
                blocks.pop();
                blocks.push((a.0, b.1, a.2 + b.2, a.3 + b.3));
            }
        }
        let mut floor = 0.0f64;
        ProposalCalibration {
            levels: blocks
                .iter()
                .map(|&(k, _, h, n)| {
                    floor = floor.max(wilson_lower(h, n, CONFIDENCE_Z));
                    (k, floor, n)
                })
                .collect(),
            rates: blocks
                .iter()
                .map(|&(k, _, h, n)| (k, h / n as f64))
                .collect(),
        }
    }
}

/// The agreement of the first proposal ([`proposal_order`]) among routed neighbours (their
/// routings, nearest first): how many of the first `PROPOSALS` neighbours have its routing, plus
/// how many have it or one operation from it ([`within_one_op`]); it counts in both, so
/// 2 ..= 2·`PROPOSALS` (0: no neighbour).
pub fn agreement<T: PartialEq>(neighbours: &[&[T]]) -> usize {
    match proposal_order(neighbours, 1).first() {
        Some(&i) => agreement_of(neighbours, i),
        None => 0,
    }
}

/// The confidence of an answer, as `recommend` shows it and the tier compares it with the
/// threshold, for a new item and a model item alike: the proposal calibration's at the first
/// proposal's `agreement`, or without that calibration (a model with too few routed items) the
/// similarity calibration's at the nearest routed neighbour's similarity `nearest`. `None`: no
/// routed neighbour, so nothing to propose.
pub fn answer_confidence(
    agreement: Option<usize>,
    nearest: Option<f32>,
    proposals: &ProposalCalibration,
    similarity: &Calibration,
) -> Option<f32> {
    nearest.map(|sim| {
        proposals
            .apply(agreement.unwrap_or(0))
            .unwrap_or_else(|| similarity.apply(sim as f64)) as f32
    })
}

/// [`agreement`] when the first proposal, `neighbours[first]`, is already known.
pub fn agreement_of<T: PartialEq>(neighbours: &[&[T]], first: usize) -> usize {
    let top = &neighbours[..neighbours.len().min(PROPOSALS)];
    let first = neighbours[first];
    let same = top.iter().filter(|r| **r == first).count();
    let near = top.iter().filter(|r| within_one_op(first, r)).count();
    same + near
}

/// How many routed neighbours (nearest first) `k` proposals are drawn from: several per
/// proposal, since near items often share a routing and a routing is proposed once; and never
/// fewer than for 10, the most `trainer eval` scores (hit@10), so that the first 5 proposals
/// `recommend` shows are the 5 that eval's hit@5 counts.
pub fn proposal_pool(k: usize) -> usize {
    4 * k.max(2 * PROPOSALS)
}

/// Which routed neighbours (their routings, nearest first) are proposed, in order: one proposal
/// per distinct routing, made by its nearest neighbour. First the routing most of the first
/// `PROPOSALS` neighbours share (ties: the nearest), the answer the tier is calibrated on: a
/// routing that five near items share is a better first answer than the routing of the single
/// nearest item. Then the other routings by their [`votes`] over all of `routings`, ties nearest
/// first: a routing that many items of the pool share is a likelier alternative than one that a
/// single item a little nearer has. At most `k` indices into `routings`; five copies of one
/// routing are one proposal, not five.
pub fn proposal_order<T: PartialEq>(routings: &[T], k: usize) -> Vec<usize> {
    if k <= 1 {
        // The first proposal does not depend on the votes (the calibration's hot path).
        return proposal_order_by(routings, &vec![0.0; routings.len()], k);
    }
    proposal_order_by(routings, &votes(routings), k)
}

/// [`proposal_order`] with the [`votes`] of `routings` already computed.
pub fn proposal_order_by<T: PartialEq>(routings: &[T], votes: &[f64], k: usize) -> Vec<usize> {
    let top = &routings[..routings.len().min(PROPOSALS)];
    // (support among the first PROPOSALS, votes, index of the routing's nearest neighbour)
    let mut firsts: Vec<(usize, f64, usize)> = routings
        .iter()
        .enumerate()
        .filter(|&(i, r)| !routings[..i].contains(r))
        .map(|(i, r)| (top.iter().filter(|x| *x == r).count(), votes[i], i))
        .collect();
    let Some(first) = (0..firsts.len())
        .max_by(|&a, &b| (firsts[a].0.cmp(&firsts[b].0)).then(firsts[b].2.cmp(&firsts[a].2)))
    else {
        return Vec::new();
    };
    let first = firsts.remove(first);
    firsts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    std::iter::once(first)
        .chain(firsts)
        .take(k)
        .map(|x| x.2)
        .collect()
}

/// Per routed neighbour (nearest first, each with its routing), its routing's votes: each
/// neighbour with that routing counts `1 / (1 + rank / PROPOSALS)`, rank 0 being the nearest.
/// The first `PROPOSALS` count 1 down to 0.56, the 40th 0.11: a routing's weight in the pool
/// falls off with distance but never to nothing.
pub fn votes<T: PartialEq>(routings: &[T]) -> Vec<f64> {
    let weight = |rank: usize| 1.0 / (1.0 + rank as f64 / PROPOSALS as f64);
    routings
        .iter()
        .map(|r| {
            routings
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == r)
                .map(|(j, _)| weight(j))
                .sum()
        })
        .collect()
}

/// Whether routing `b` is routing `a` or one operation from it: one operation inserted,
/// dropped or replaced (Levenshtein distance over the operations at most 1). A planner adapts
/// such a routing in a minute; the answer tier is calibrated on this event.
pub fn within_one_op<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.len().abs_diff(b.len()) <= 1 && crate::text::levenshtein(a, b) <= 1
}

/// Per routed neighbour (nearest first, each with its routing), its routing's support: how many
/// of the first `PROPOSALS` neighbours share it (at least 1).
pub fn supports<T: PartialEq>(routings: &[T]) -> Vec<usize> {
    let top = &routings[..routings.len().min(PROPOSALS)];
    routings
        .iter()
        .map(|r| top.iter().filter(|x| *x == r).count().max(1))
        .collect()
}

/// How [`fit`] runs.
pub struct LearnOptions {
    /// Learn the weights (else only calibrate the configured ones).
    pub learn: bool,
    /// Routed training items used as queries.
    pub sample: usize,
    pub seed: u64,
}

/// The layout's columns grouped into feature blocks.
struct Blocks {
    names: Vec<String>,
    /// Layout column -> raw matrix column.
    src: Vec<usize>,
    /// Layout column -> feature block.
    block: Vec<usize>,
    /// Prior weight per block.
    prior: Vec<f64>,
}

impl Blocks {
    fn new(raw: &RawMatrix, dims: &Dims) -> Blocks {
        let col_of: std::collections::HashMap<&str, usize> = raw
            .dim_names
            .iter()
            .enumerate()
            .map(|(j, d)| (d.as_str(), j))
            .collect();
        let mut b = Blocks {
            names: Vec::new(),
            src: Vec::new(),
            block: Vec::new(),
            prior: Vec::new(),
        };
        for (c, d) in dims.names.iter().enumerate() {
            let f = &dims.features[c];
            let id = match b.names.iter().position(|x| x == f) {
                Some(id) => id,
                None => {
                    b.names.push(f.clone());
                    b.prior.push(dims.weights[c]);
                    b.names.len() - 1
                }
            };
            b.src.push(col_of[d.as_str()]);
            b.block.push(id);
        }
        b
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// Fits the feature weights (when asked) and the calibration; writes the learned weights into
/// `dims` and drops the dimensions whose weight became 0 from the layout.
///
/// `labels` holds each item's routing id (none: no current routing), `routings` each routing
/// id's operations.
pub fn fit(
    raw: &RawMatrix,
    dims: &mut Dims,
    labels: &[Option<u32>],
    routings: &[Vec<u32>],
    opts: &LearnOptions,
) -> LearnReport {
    let blocks = Blocks::new(raw, dims);
    let queries = draw_queries(labels, opts.sample, opts.seed);
    let routed: Vec<u32> = (0..labels.len() as u32)
        .filter(|&i| labels[i as usize].is_some())
        .collect();
    let prior_w2: Vec<f64> = blocks.prior.iter().map(|w| w * w).collect();
    let mut report = LearnReport {
        learned: false,
        queries: queries.len(),
        shortlist: SHORTLIST,
        passes: 0,
        prior: Loo::default(),
        result: Loo::default(),
        weights: blocks
            .names
            .iter()
            .zip(&blocks.prior)
            .map(|(f, &w)| FeatureWeight {
                feature: f.clone(),
                prior: w,
                learned: w,
            })
            .collect(),
        calibration: Calibration::identity(),
        proposal_calibration: ProposalCalibration::default(),
        shortlist_seconds: 0.0,
        search_seconds: 0.0,
    };
    if queries.len() < MIN_QUERIES || blocks.len() == 0 {
        return report;
    }
    let clock = std::time::Instant::now();
    let first = shortlist(raw, &blocks, &blocks.prior, &queries, &routed, SHORTLIST);
    report.shortlist_seconds += clock.elapsed().as_secs_f64();
    let mut mult = vec![1.0; blocks.len()];
    if opts.learn {
        let parts = Partials::new(raw, &blocks, &queries, labels, &first);
        report.prior = parts.score(&prior_w2);
        let clock = std::time::Instant::now();
        report.passes += search(&parts, &blocks.prior, &mut mult);
        report.search_seconds += clock.elapsed().as_secs_f64();
        // Second round: the shortlist of the first round's weights joins the prior's, so that
        // items the new weighting brings close are candidates too.
        let w1: Vec<f64> = blocks.prior.iter().zip(&mult).map(|(p, m)| p * m).collect();
        let clock = std::time::Instant::now();
        let second = shortlist(raw, &blocks, &w1, &queries, &routed, SHORTLIST);
        report.shortlist_seconds += clock.elapsed().as_secs_f64();
        let merged: Vec<Vec<u32>> = first
            .iter()
            .zip(&second)
            .map(|(a, b)| {
                let mut c: Vec<u32> = a.iter().chain(b).copied().collect();
                c.sort_unstable();
                c.dedup();
                c
            })
            .collect();
        let parts = Partials::new(raw, &blocks, &queries, labels, &merged);
        let clock = std::time::Instant::now();
        report.passes += search(&parts, &blocks.prior, &mut mult);
        report.search_seconds += clock.elapsed().as_secs_f64();
        report.shortlist = merged.iter().map(Vec::len).max().unwrap_or(0);
        let w2: Vec<f64> = blocks
            .prior
            .iter()
            .zip(&mult)
            .map(|(p, m)| (p * m) * (p * m))
            .collect();
        report.result = parts.score(&w2);
        report.calibration = Calibration::fit(&parts.calibration_pairs(&w2));
        report.proposal_calibration =
            ProposalCalibration::fit(&parts.proposal_pairs(&w2, labels, routings));
        report.learned = true;
    } else {
        let parts = Partials::new(raw, &blocks, &queries, labels, &first);
        report.prior = parts.score(&prior_w2);
        report.result = report.prior;
        report.calibration = Calibration::fit(&parts.calibration_pairs(&prior_w2));
        report.proposal_calibration =
            ProposalCalibration::fit(&parts.proposal_pairs(&prior_w2, labels, routings));
    }
    for (fw, m) in report.weights.iter_mut().zip(&mult) {
        fw.learned = fw.prior * m;
    }
    // The layout keeps the dimensions of features that still weigh something.
    let keep: Vec<bool> = (0..dims.names.len())
        .map(|c| mult[blocks.block[c]] > 0.0)
        .collect();
    let pick = |v: &Vec<String>| -> Vec<String> {
        v.iter()
            .zip(&keep)
            .filter(|x| *x.1)
            .map(|x| x.0.clone())
            .collect()
    };
    let weights: Vec<f64> = (0..dims.names.len())
        .filter(|&c| keep[c])
        .map(|c| dims.weights[c] * mult[blocks.block[c]])
        .collect();
    let variances: Vec<f64> = (0..dims.names.len())
        .filter(|&c| keep[c])
        .map(|c| dims.variances[c])
        .collect();
    *dims = Dims {
        names: pick(&dims.names),
        features: pick(&dims.features),
        weights,
        variances,
    };
    report
}

/// Up to `k` routed labels, chosen by a seeded hash of the label, sorted.
fn draw_queries(labels: &[Option<u32>], k: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<(u64, u32)> = (0..labels.len() as u32)
        .filter(|&i| labels[i as usize].is_some())
        .map(|i| (mix64(i as u64 ^ mix64(seed ^ fnv1a64(b"learn queries"))), i))
        .collect();
    order.sort_unstable();
    let mut out: Vec<u32> = order.iter().take(k).map(|x| x.1).collect();
    out.sort_unstable();
    out
}

/// Row `i` of the layout weighted by `w` (per block) and L2-normalised, into `out`.
fn weighted_row(raw: &RawMatrix, blocks: &Blocks, w: &[f64], i: usize, out: &mut [f32]) {
    let row = &raw.values[i * raw.width..(i + 1) * raw.width];
    let mut norm = 0.0f64;
    for (c, o) in out.iter_mut().enumerate() {
        let x = row[blocks.src[c]] as f64 * w[blocks.block[c]];
        norm += x * x;
        *o = x as f32;
    }
    let norm = norm.sqrt();
    for o in out.iter_mut() {
        *o = if norm > 0.0 {
            (*o as f64 / norm) as f32
        } else {
            0.0
        };
    }
}

/// The rows `ids` of the layout, weighted by `w` and L2-normalised ([`weighted_row`]).
fn weighted_rows(raw: &RawMatrix, blocks: &Blocks, w: &[f64], ids: &[u32]) -> Array2<f32> {
    let mut m = Array2::<f32>::zeros((ids.len(), blocks.src.len()));
    for (r, &i) in ids.iter().enumerate() {
        weighted_row(
            raw,
            blocks,
            w,
            i as usize,
            m.row_mut(r).as_slice_mut().expect("row-major"),
        );
    }
    m
}

/// (similarity, label) with a total order: "less" is better (higher similarity, then lower
/// label), so a max-heap keeps the worst on top. Exact searches here and in `eval` use it.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Hit(pub f32, pub u32);
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Hit {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

/// Keeps the `k` best hits in `heap` (a max-heap of [`Hit`], worst on top).
pub(crate) fn keep_best(heap: &mut BinaryHeap<Hit>, h: Hit, k: usize) {
    if heap.len() < k {
        heap.push(h);
    } else if heap.peek().is_some_and(|worst| h < *worst) {
        heap.pop();
        heap.push(h);
    }
}

/// The `k` nearest `candidates` of each query (itself excluded) by exact cosine under the
/// block weights `w`, as sorted labels. Blocks of candidates run in parallel; their partial
/// top-k lists merge under a total order, so the result does not depend on scheduling.
fn shortlist(
    raw: &RawMatrix,
    blocks: &Blocks,
    w: &[f64],
    queries: &[u32],
    candidates: &[u32],
    k: usize,
) -> Vec<Vec<u32>> {
    const CB: usize = 2048;
    let q = weighted_rows(raw, blocks, w, queries);
    let top = |hits: Vec<Hit>| -> Vec<Hit> {
        let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
        for h in hits {
            keep_best(&mut heap, h, k);
        }
        heap.into_vec()
    };
    let empty = || vec![Vec::<Hit>::new(); queries.len()];
    let merged = candidates
        .par_chunks(CB)
        .map(|cs| {
            let sims = q.dot(&weighted_rows(raw, blocks, w, cs).t());
            sims.outer_iter()
                .zip(queries)
                .map(|(row, &qi)| {
                    let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
                    for (&s, &j) in row.iter().zip(cs) {
                        if j == qi {
                            continue;
                        }
                        keep_best(&mut heap, Hit(s, j), k);
                    }
                    heap.into_vec()
                })
                .collect::<Vec<_>>()
        })
        .reduce(empty, |a, b| {
            a.into_iter()
                .zip(b)
                .map(|(x, y)| top(x.into_iter().chain(y).collect()))
                .collect()
        });
    merged
        .into_iter()
        .map(|hits| {
            let mut l: Vec<u32> = hits.into_iter().map(|h| h.1).collect();
            l.sort_unstable();
            l
        })
        .collect()
}

/// Per query: its shortlist with the per-block partial dot products and squared norms.
struct Partials {
    nb: usize,
    queries: Vec<QueryParts>,
}

struct QueryParts {
    /// The query's label.
    label: u32,
    /// Squared norm of the query per block.
    nq: Vec<f64>,
    /// Candidate labels (ascending), whether each shares the query's routing.
    cands: Vec<u32>,
    same: Vec<bool>,
    /// blocks × cands (block-major): partial dot products, and the candidates' squared norms
    /// per block.
    p: Vec<f32>,
    nc: Vec<f32>,
}

impl Partials {
    fn new(
        raw: &RawMatrix,
        blocks: &Blocks,
        queries: &[u32],
        labels: &[Option<u32>],
        lists: &[Vec<u32>],
    ) -> Partials {
        let nb = blocks.len();
        let sq = |i: usize| -> Vec<f64> {
            let row = &raw.values[i * raw.width..(i + 1) * raw.width];
            let mut out = vec![0.0; nb];
            for (c, &s) in blocks.src.iter().enumerate() {
                let x = row[s] as f64;
                out[blocks.block[c]] += x * x;
            }
            out
        };
        let queries = queries
            .par_iter()
            .zip(lists.par_iter())
            .map(|(&qi, cands)| {
                let qi = qi as usize;
                let qrow = &raw.values[qi * raw.width..(qi + 1) * raw.width];
                let mut p = vec![0.0; cands.len() * nb];
                let mut nc = Vec::with_capacity(cands.len() * nb);
                for (r, &j) in cands.iter().enumerate() {
                    let j = j as usize;
                    let crow = &raw.values[j * raw.width..(j + 1) * raw.width];
                    let pr = &mut p[r * nb..(r + 1) * nb];
                    for (c, &s) in blocks.src.iter().enumerate() {
                        pr[blocks.block[c]] += qrow[s] as f64 * crow[s] as f64;
                    }
                    nc.extend(sq(j));
                }
                // Block-major, so that a trial on one block reads one contiguous run.
                let k = cands.len();
                let major = |x: &[f64]| -> Vec<f32> {
                    (0..nb * k)
                        .map(|i| x[(i % k) * nb + i / k] as f32)
                        .collect()
                };
                QueryParts {
                    label: qi as u32,
                    nq: sq(qi),
                    same: cands
                        .iter()
                        .map(|&j| labels[j as usize] == labels[qi])
                        .collect(),
                    cands: cands.clone(),
                    p: major(&p),
                    nc: major(&nc),
                }
            })
            .collect();
        Partials { nb, queries }
    }

    /// Each query's rank of its first same-routing candidate (0: none) and its top-1
    /// (similarity, same routing), under squared block weights `w2`.
    fn ranks(&self, w2: &[f64]) -> Vec<(usize, f64, bool)> {
        let c = self.cache(w2);
        self.queries
            .par_iter()
            .enumerate()
            .map(|(i, q)| rank_of(&c.sims(i), &q.same))
            .collect()
    }

    /// Per query: the agreement of its first proposal under `w2`, and whether that proposal's
    /// routing is the query's own or one operation from it.
    fn proposal_pairs(
        &self,
        w2: &[f64],
        labels: &[Option<u32>],
        routings: &[Vec<u32>],
    ) -> Vec<(usize, bool)> {
        let c = self.cache(w2);
        let mut out = Vec::new();
        for (i, q) in self.queries.iter().enumerate() {
            let mut order: Vec<(f64, usize)> =
                c.sims(i).into_iter().zip(0..q.cands.len()).collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            order.truncate(PROPOSALS);
            let routes: Vec<Option<u32>> = order
                .iter()
                .map(|x| labels[q.cands[x.1] as usize])
                .collect();
            let ops: Vec<&[u32]> = routes
                .iter()
                .map(|r| r.map_or(&[][..], |r| &routings[r as usize][..]))
                .collect();
            let near = |r: Option<u32>| match (r, labels[q.label as usize]) {
                (Some(a), Some(b)) => {
                    a == b || within_one_op(&routings[a as usize], &routings[b as usize])
                }
                _ => false,
            };
            if let Some(&i) = proposal_order(&ops, 1).first() {
                out.push((agreement(&ops), near(routes[i])));
            }
        }
        out
    }

    fn score(&self, w2: &[f64]) -> Loo {
        summarise(&self.ranks(w2))
    }

    /// Per query: (similarity of its nearest routed neighbour, whether one of its
    /// `PROPOSALS` nearest shares its routing).
    fn calibration_pairs(&self, w2: &[f64]) -> Vec<(f64, bool)> {
        self.ranks(w2)
            .into_iter()
            .filter(|r| r.1.is_finite())
            .map(|r| (r.1, (1..=PROPOSALS).contains(&r.0)))
            .collect()
    }
}

/// The rank (1-based; 0: none) of the best same-routing candidate among `sims` (candidates in
/// ascending label order, so a tie goes to the earlier one), and the top-1 (similarity, same).
fn rank_of(sims: &[f64], same: &[bool]) -> (usize, f64, bool) {
    if sims.is_empty() {
        return (0, f64::NAN, false);
    }
    let mut best = 0;
    for (r, s) in sims.iter().enumerate() {
        if *s > sims[best] {
            best = r;
        }
    }
    let first_same = (0..sims.len())
        .filter(|&r| same[r])
        .fold(None::<usize>, |acc, r| match acc {
            Some(a) if sims[a] >= sims[r] => Some(a),
            _ => Some(r),
        });
    let rank = match first_same {
        None => 0,
        Some(m) => {
            1 + (0..sims.len())
                .filter(|&r| sims[r] > sims[m] || (sims[r] == sims[m] && r < m))
                .count()
        }
    };
    (rank, sims[best], same[best])
}

fn summarise(ranks: &[(usize, f64, bool)]) -> Loo {
    let n = ranks.len().max(1) as f64;
    let mut l = Loo::default();
    for &(r, _, _) in ranks {
        if r > 0 {
            l.mrr += 1.0 / r as f64;
            l.top1 += f64::from(u8::from(r == 1));
            l.hit_at_5 += f64::from(u8::from(r <= 5));
        }
    }
    l.top1 /= n;
    l.hit_at_5 /= n;
    l.mrr /= n;
    l
}

/// Coordinate search from `mult` (multipliers of `prior`); returns the passes made.
///
/// A trial changes one block's weight, so each query keeps its candidates' weighted dot
/// products and norms under the current weights and a trial only adds that block's change:
/// O(queries × shortlist) per trial instead of × blocks.
fn search(parts: &Partials, prior: &[f64], mult: &mut [f64]) -> usize {
    let grid = grid();
    let w2_of = |mult: &[f64]| -> Vec<f64> {
        prior
            .iter()
            .zip(mult)
            .map(|(p, m)| (p * m) * (p * m))
            .collect()
    };
    let pen = |mult: &[f64]| PENALTY * mult.iter().map(|&m| penalty(m)).sum::<f64>();
    let mut w2 = w2_of(mult);
    let mut cache = parts.cache(&w2);
    let mut current = parts.objective_cached(&cache, None) - pen(mult);
    let mut passes = 0;
    for _ in 0..MAX_PASSES {
        passes += 1;
        let mut moved = false;
        for f in 0..prior.len() {
            if prior[f] <= 0.0 {
                continue;
            }
            let mut best = (current, mult[f]);
            for &g in &grid {
                if g == mult[f] {
                    continue;
                }
                let mut trial = mult.to_vec();
                trial[f] = g;
                // Never zero every feature.
                if trial.iter().zip(prior).all(|(m, p)| m * p <= 0.0) {
                    continue;
                }
                let delta = (prior[f] * g) * (prior[f] * g) - w2[f];
                let v = parts.objective_cached(&cache, Some((f, delta))) - pen(&trial);
                if v > best.0 + 1e-12 {
                    best = (v, g);
                }
            }
            if best.1 != mult[f] {
                mult[f] = best.1;
                current = best.0;
                moved = true;
                w2 = w2_of(mult);
                cache = parts.cache(&w2);
            }
        }
        if !moved {
            break;
        }
    }
    passes
}

/// Per query: the squared norm under the current weights, and per candidate the weighted dot
/// product and squared norm.
struct Cache {
    nq: Vec<f64>,
    t: Vec<Vec<f64>>,
    nc: Vec<Vec<f64>>,
}

impl Cache {
    /// Query `i`'s cosine to each of its candidates.
    fn sims(&self, i: usize) -> Vec<f64> {
        let nq = self.nq[i];
        self.t[i]
            .iter()
            .zip(&self.nc[i])
            .map(|(t, n)| {
                let den = (nq * n).sqrt();
                if den > 0.0 { t / den } else { 0.0 }
            })
            .collect()
    }
}

impl Partials {
    fn cache(&self, w2: &[f64]) -> Cache {
        let nb = self.nb;
        let per: Vec<(f64, Vec<f64>, Vec<f64>)> = self
            .queries
            .par_iter()
            .map(|q| {
                let k = q.cands.len();
                let weigh = |x: &[f32]| -> Vec<f64> {
                    let mut out = vec![0.0f64; k];
                    for (f, w) in w2.iter().enumerate().take(nb) {
                        for (o, v) in out.iter_mut().zip(&x[f * k..(f + 1) * k]) {
                            *o += w * *v as f64;
                        }
                    }
                    out
                };
                (
                    q.nq.iter().zip(w2).map(|(a, b)| a * b).sum(),
                    weigh(&q.p),
                    weigh(&q.nc),
                )
            })
            .collect();
        let mut c = Cache {
            nq: Vec::with_capacity(per.len()),
            t: Vec::with_capacity(per.len()),
            nc: Vec::with_capacity(per.len()),
        };
        for (a, b, d) in per {
            c.nq.push(a);
            c.t.push(b);
            c.nc.push(d);
        }
        c
    }

    /// The objective (without penalty) from a cache, with block `f`'s squared weight changed by
    /// `delta`; per query in parallel, summed in query order.
    fn objective_cached(&self, c: &Cache, change: Option<(usize, f64)>) -> f64 {
        let per: Vec<f64> = self
            .queries
            .par_iter()
            .enumerate()
            .map(|(i, q)| {
                let (f, dw) = change.unwrap_or((0, 0.0));
                let nq = c.nq[i] + dw * q.nq[f];
                let mut sims = [0f64; 2 * SHORTLIST];
                let k = q.cands.len();
                for (r, s) in sims[..k].iter_mut().enumerate() {
                    let t = c.t[i][r] + dw * q.p[f * k + r] as f64;
                    let n = c.nc[i][r] + dw * q.nc[f * k + r] as f64;
                    let den = (nq * n).sqrt();
                    *s = if den > 0.0 { t / den } else { 0.0 };
                }
                let (rank, _, _) = rank_of(&sims[..k], &q.same);
                contribution(rank)
            })
            .collect();
        per.iter().sum::<f64>() / per.len().max(1) as f64
    }
}

/// A query's part of the objective: 1/rank + ½·[rank ≤ 5] (0 when no candidate shares its
/// routing).
fn contribution(rank: usize) -> f64 {
    if rank == 0 {
        0.0
    } else {
        1.0 / rank as f64 + if rank <= 5 { 0.5 } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_is_monotone_and_interpolates() {
        // similarity i/200, same routing when above 0.5 except every 4th.
        let pairs: Vec<(f64, bool)> = (0..200)
            .map(|i| (i as f64 / 200.0, i >= 100 && i % 4 != 0))
            .collect();
        let c = Calibration::fit(&pairs);
        assert!(!c.is_identity());
        for w in c.points.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{:?}", c.points);
        }
        assert_eq!(c.apply(0.0), 0.0);
        assert!((c.apply(0.99) - 0.75).abs() < 1e-9, "{}", c.apply(0.99));
        let mid = c.apply(0.5);
        assert!(mid > 0.0 && mid < 0.75, "{mid}");
        assert_eq!(Calibration::fit(&pairs[..10]), Calibration::identity());
        assert_eq!(Calibration::identity().apply(0.42), 0.42);
        for t in [0.1, 0.3, 0.6, 0.75] {
            let s = c.raw_threshold(t);
            assert!((c.apply(s) - t).abs() < 1e-9, "{t}: {s} -> {}", c.apply(s));
        }
        assert_eq!(c.raw_threshold(0.9), f64::INFINITY);
        assert_eq!(c.raw_threshold(0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn proposal_calibration_by_support() {
        assert_eq!(supports(&[7, 7, 3, 7, 3, 9, 3]), vec![3, 3, 2, 3, 2, 1, 2]);
        assert_eq!(supports(&[1, 2]), vec![1, 1]);
        // support 1: 1 in 4 hits, 2: 1 in 2, 3: never seen, 4: 9 in 10, 5: 3 in 4 (pooled
        // with 4, as a share may not fall with more support).
        let mut pairs = Vec::new();
        for (k, right, n) in [(1, 10, 40), (2, 10, 20), (4, 9, 10), (5, 3, 4)] {
            for j in 0..n {
                pairs.push((k, j < right));
            }
        }
        let c = ProposalCalibration::fit(&pairs);
        assert_eq!(c.rates, vec![(1, 0.25), (2, 0.5), (4, 12.0 / 14.0)]);
        let z = CONFIDENCE_Z;
        assert_eq!(c.apply(1), Some(wilson_lower(10.0, 40, z)));
        assert_eq!(c.apply(2), Some(wilson_lower(10.0, 20, z)));
        assert_eq!(c.apply(3), c.apply(2));
        assert_eq!(c.apply(4), Some(wilson_lower(12.0, 14, z)));
        assert_eq!(c.apply(5), c.apply(4));
        for (k, rate) in &c.rates {
            assert!(c.apply(*k).unwrap() < *rate, "a bound lies below its share");
        }
        assert_eq!(ProposalCalibration::fit(&pairs[..10]).apply(3), None);
        // A level seen often keeps a bound above the one seen rarely, at the same share; a
        // level's bound never falls below the level under it.
        let mut pairs = Vec::new();
        for (k, right, n) in [(1, 90, 100), (2, 9, 10), (3, 900, 1000)] {
            for j in 0..n {
                pairs.push((k, j < right));
            }
        }
        let c = ProposalCalibration::fit(&pairs);
        let (b1, b2, b3) = (
            c.apply(1).unwrap(),
            c.apply(2).unwrap(),
            c.apply(3).unwrap(),
        );
        assert!(b1 > 0.85 && b1 < 0.9, "{b1}");
        assert_eq!(
            b2, b1,
            "the rarer level 2 would bound lower; it keeps level 1's"
        );
        assert!(b3 > b1 && b3 < 0.9, "{b3}");
    }

    #[test]
    fn wilson_lower_bound() {
        assert_eq!(wilson_lower(0.0, 0, CONFIDENCE_Z), 0.0);
        assert!(wilson_lower(0.0, 10, CONFIDENCE_Z) < 1e-12);
        // 80 of 100 at z = 1.2816: 0.7441 (the score interval's lower end).
        assert!((wilson_lower(80.0, 100, CONFIDENCE_Z) - 0.7441).abs() < 1e-3);
        assert!(wilson_lower(10.0, 10, CONFIDENCE_Z) < 1.0);
        assert!(wilson_lower(8.0, 10, CONFIDENCE_Z) < wilson_lower(800.0, 1000, CONFIDENCE_Z));
    }

    #[test]
    fn rank_of_first_same_routing_neighbour() {
        let sims = [0.9, 0.5, 0.95, 0.5];
        assert_eq!(rank_of(&sims, &[false, false, true, false]).0, 1);
        assert_eq!(rank_of(&sims, &[true, false, false, false]).0, 2);
        // a tie goes to the earlier candidate
        assert_eq!(rank_of(&sims, &[false, false, false, true]).0, 4);
        assert_eq!(rank_of(&sims, &[false, true, false, false]).0, 3);
        assert_eq!(rank_of(&sims, &[false; 4]).0, 0);
        let (_, s, same) = rank_of(&sims, &[false, false, true, false]);
        assert_eq!((s, same), (0.95, true));
    }

    /// Items whose routing follows block `a`, with block `b` pure noise of the same prior
    /// weight: the learned weights keep `a` and drive `b` to (near) zero, and the result is
    /// the same on every run.
    #[test]
    fn a_noise_feature_loses_its_weight() {
        let mut rng = crate::rng::Rng::new(7);
        let n = 1200;
        let centres: Vec<f32> = (0..12 * 4).map(|_| rng.normal() as f32).collect();
        let (mut values, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let class = rng.below(12);
            for d in 0..4 {
                // block a: the class's centre plus a little noise
                values.push(centres[class * 4 + d] + (rng.f64() as f32 - 0.5) * 0.4);
            }
            for _ in 0..4 {
                values.push((rng.f64() as f32 - 0.5) * 6.0);
            }
            labels.push(Some(class as u32));
        }
        let raw = RawMatrix {
            n,
            width: 8,
            values,
            dim_names: (0..8).map(|d| format!("d{d}")).collect(),
            dim_features: (0..8)
                .map(|d| if d < 4 { "a" } else { "b" }.to_string())
                .collect(),
        };
        let dims = Dims {
            names: raw.dim_names.clone(),
            features: raw.dim_features.clone(),
            weights: vec![1.0; 8],
            variances: vec![1.0; 8],
        };
        let opts = LearnOptions {
            learn: true,
            sample: 400,
            seed: 42,
        };
        // Twelve routings, each three operations away from every other.
        let routings: Vec<Vec<u32>> = (0..12).map(|c| vec![c, 100 + c, 200 + c]).collect();
        let mut d1 = dims.clone();
        let r = fit(&raw, &mut d1, &labels, &routings, &opts);
        assert!(r.learned);
        let w = |f: &str| r.weights.iter().find(|x| x.feature == f).unwrap().learned;
        // Near zero: the noise block's share of the squared norm (4 dims each, variance about 1
        // in block a and 3 in block b) falls from 75 % under the prior to under 5 %.
        let share = |a: f64, b: f64| (b * b * 12.0) / (a * a * 4.0 + b * b * 12.0);
        assert!(share(1.0, 1.0) > 0.5);
        assert!(share(w("a"), w("b")) < 0.05, "{:?}", r.weights);
        assert!(
            r.result.top1 > r.prior.top1 + 0.2,
            "{:?} -> {:?}",
            r.prior,
            r.result
        );
        let mut d2 = dims.clone();
        let again = fit(&raw, &mut d2, &labels, &routings, &opts);
        assert_eq!(d1.weights, d2.weights);
        assert_eq!(d1.names, d2.names);
        assert_eq!(r.calibration, again.calibration);
        assert_eq!(r.proposal_calibration, again.proposal_calibration);
        assert!(!r.proposal_calibration.is_empty());
    }

    #[test]
    fn agreement_counts_the_same_routing_and_its_one_operation_variants() {
        let (a, b, c, far): (&[u8], &[u8], &[u8], &[u8]) = (b"CDE", b"CXE", b"CE", b"XYZ");
        // a twice (itself included): 2 + 2; b and c one operation from a: + 2; far: nothing.
        assert_eq!(agreement(&[a, b, a, c, far]), 6);
        assert_eq!(agreement(&[a, a, a, a, a]), 10);
        // The first proposal is the routing most of them share (a), not the nearest's (far).
        assert_eq!(agreement(&[far, a, b, c, a]), 6);
        // b twice; a, c and b itself within one operation of b.
        assert_eq!(agreement(&[far, a, b, c, b]), 2 + 4);
        // Only the first PROPOSALS count: far, four times there, is the first proposal.
        assert_eq!(agreement(&[a, far, far, far, far, a, a]), 8);
        assert_eq!(agreement::<u8>(&[]), 0);
    }

    #[test]
    fn proposals_are_distinct_routings_the_most_shared_first_then_by_votes() {
        assert_eq!(proposal_order(&[7, 7, 3, 7, 3, 9, 3], 10), vec![0, 2, 5]);
        // Ties: the nearer first; beyond the first PROPOSALS, support 0, nearest first.
        assert_eq!(
            proposal_order(&[3, 9, 9, 3, 5, 8, 9, 4], 10),
            vec![0, 1, 4, 5, 7]
        );
        assert_eq!(proposal_order(&[3, 9, 9, 3, 5, 8, 9, 4], 2), vec![0, 1]);
        assert_eq!(proposal_order(&[1, 2, 2, 2, 1], 5), vec![1, 0]);
        assert_eq!(proposal_order::<u8>(&[], 5), Vec::<usize>::new());
        // The first proposal by support (all 1: the nearest); after it, four items a little
        // farther outvote each single nearer one.
        let pool = [1, 2, 3, 4, 5, 6, 6, 6, 6];
        assert_eq!(proposal_order(&pool, 10), vec![0, 5, 1, 2, 3, 4]);
        assert_eq!(proposal_order(&pool, 2), vec![0, 5]);
        // ... but never the first: a shared routing among the first PROPOSALS stays first.
        assert_eq!(proposal_order(&[1, 2, 1, 3, 4, 2, 2, 2], 3), vec![0, 1, 3]);
    }

    #[test]
    fn votes_fall_off_with_rank() {
        let v = votes(&[1, 2, 1, 3, 4, 5, 1]);
        let w = |r: f64| 1.0 / (1.0 + r / 5.0);
        assert_eq!(v[0], w(0.0) + w(2.0) + w(6.0));
        assert_eq!(v[2], v[0]);
        assert_eq!(v[1], w(1.0));
        assert_eq!(v[5], 0.5);
        assert!(votes::<u8>(&[]).is_empty());
    }

    #[test]
    fn one_operation_inserted_dropped_or_replaced_is_near() {
        let a = ["C10", "C20", "Q30"];
        assert!(within_one_op(&a, &a));
        assert!(within_one_op(&a, &["C10", "C20", "F61", "Q30"]));
        assert!(within_one_op(&a, &["C10", "Q30"]));
        assert!(within_one_op(&a, &["C10", "E10", "Q30"]));
        assert!(!within_one_op(&a, &["C20", "C10", "Q30"]));
        assert!(!within_one_op(&a, &["C10"]));
        assert!(!within_one_op(&a, &["E10", "E20", "Q30"]));
        assert!(within_one_op::<&str>(&[], &["C10"]));
    }
}
