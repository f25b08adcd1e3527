//! The similarity check: each item's nearest other item and its nearest routed others, found in
//! the graph itself (`run` and `update` tier an item by the answer those routed others give, as
//! `recommend` does), and the similarity histogram the log and `training_metadata.json` report.

use rayon::prelude::*;

use super::Hnsw;
use super::hnsw::{Visited, with_visited};
use super::quant::Quantized;
use crate::features::learn::{
    Calibration, PROPOSALS, ProposalCalibration, agreement, answer_confidence,
};

/// Beam width of the similarity check's search, which starts from each item's own level-0
/// links (see [`Hnsw::nearest_others`]); agreement with exact search is measured by
/// `trainer eval` and the benchmark.
pub const NEAREST_OTHER_EF: usize = 10;

/// What the similarity check finds for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Near {
    /// Its nearest other item, as (label, cosine similarity).
    pub other: Option<(u32, f32)>,
    /// Its [`PROPOSALS`] nearest other items with a routing, as (label, cosine similarity),
    /// nearest first (fewer only when the model has fewer): the answer `recommend` would give
    /// it is drawn from these, and so is its tier.
    pub routed: Vec<(u32, f32)>,
}

impl Near {
    /// The similarity of the farthest routed neighbour the tier counted: a new routed item at
    /// least this close changes the item's answer. `None` when the model had fewer than
    /// [`PROPOSALS`] other routed items (any new one changes it).
    pub fn radius(&self) -> Option<f32> {
        (self.routed.len() >= PROPOSALS).then(|| self.routed[PROPOSALS - 1].1)
    }
}

/// The similarity check of item `i` ([`Hnsw::nearest_others`] with the beam [`NEAREST_OTHER_EF`]):
/// its nearest other, and its [`PROPOSALS`] nearest routed others (`routed[label]`), searched
/// for at `ef_search` when the beam holds too few. Both compare the quantised vectors and
/// re-rank in f32, so a model's f32 rows are read only for those few.
pub fn near_one(
    h: &Hnsw,
    quant: &Quantized,
    i: u32,
    routed: &[bool],
    ef_search: usize,
    vis: &mut Visited,
) -> Near {
    let keep = |j: u32| routed[j as usize];
    let (other, found) =
        h.nearest_others(quant, i, NEAREST_OTHER_EF, PROPOSALS, &keep, ef_search, vis);
    Near {
        other: other.map(|(d, j)| (j, 1.0 - d)),
        routed: found.into_iter().map(|(d, j)| (j, 1.0 - d)).collect(),
    }
}

/// An item's answer from its [`Near`]: the agreement of the first proposal among its routed
/// others (`ops_of(label)`: the operations of that item's routing) and the confidence the tier
/// compares with the threshold ([`answer_confidence`]), as `recommend` computes them.
pub fn answer_of<'a, T: PartialEq + 'a>(
    near: &Near,
    ops_of: impl Fn(u32) -> &'a [T],
    proposals: &ProposalCalibration,
    similarity: &Calibration,
) -> (Option<u8>, Option<f32>) {
    if near.routed.is_empty() {
        return (None, None);
    }
    let ops: Vec<&[T]> = near.routed.iter().map(|x| ops_of(x.0)).collect();
    let a = agreement(&ops);
    let c = answer_confidence(Some(a), Some(near.routed[0].1), proposals, similarity);
    (Some(a as u8), c)
}

/// [`near_one`] for the items `ids`, in parallel. `progress` is told every 1,024 items.
pub fn near_pass(
    h: &Hnsw,
    quant: &Quantized,
    ids: std::ops::Range<u32>,
    routed: &[bool],
    ef_search: usize,
    progress: impl Fn(u64) + Sync,
) -> Vec<Near> {
    let end = ids.end;
    ids.into_par_iter()
        .map(|i| {
            if i % 1024 == 0 {
                progress(1024.min((end - i) as u64));
            }
            with_visited(|vis| near_one(h, quant, i, routed, ef_search, vis))
        })
        .collect()
}

/// Counts of similarities in [0, 0.1), [0.1, 0.2), ... [0.9, 1] (negatives count as 0).
pub fn similarity_histogram(sims: impl Iterator<Item = f32>) -> [usize; 10] {
    let mut hist = [0usize; 10];
    for s in sims {
        hist[((s.max(0.0) * 10.0) as usize).min(9)] += 1;
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::HnswParams;
    use crate::index::hnsw::Visited;
    use crate::rng::Rng;

    #[test]
    fn near_finds_the_nearest_other_and_the_routed_ones_as_exact_search_does() {
        let (n, dim) = (3000, 12);
        let mut r = Rng::new(3);
        let mut data = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f64> = (0..dim).map(|_| r.normal()).collect();
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            data.extend(row.iter().map(|x| (x / norm) as f32));
        }
        let p = HnswParams {
            m: 8,
            ef_construction: 64,
            seed: 1,
        };
        let h = Hnsw::build(data, dim, p, |_, _| {});
        let quant = h.quantized();
        let mut vis = Visited::new(n);
        // One item in three routed: the beam often holds too few, so the full search is used too.
        for (share, every) in [("most", 10usize), ("a third", 3)] {
            let routed: Vec<bool> = (0..n).map(|i| i % every != 1).collect();
            let (mut same_other, mut same_routed) = (0, 0);
            for i in 0..n as u32 {
                let got = near_one(&h, &quant, i, &routed, 256, &mut vis);
                let exact_other = h.brute_force_other(i).unwrap();
                let (j, s) = got.other.unwrap();
                assert_ne!(j, i);
                assert!(
                    1.0 - s >= exact_other.0,
                    "item {i}: {got:?} closer than exact {exact_other:?}"
                );
                same_other += usize::from(j == exact_other.1);
                assert_eq!(got.routed.len(), PROPOSALS, "{share}: item {i}");
                assert!(got.routed.iter().all(|x| x.0 != i && routed[x.0 as usize]));
                assert!(got.routed.windows(2).all(|w| w[0].1 >= w[1].1));
                let exact: Vec<u32> = h
                    .brute_force(h.vector(i), n)
                    .into_iter()
                    .filter(|x| x.1 != i && routed[x.1 as usize])
                    .take(PROPOSALS)
                    .map(|x| x.1)
                    .collect();
                let ids: Vec<u32> = got.routed.iter().map(|x| x.0).collect();
                same_routed += usize::from(ids == exact);
                assert_eq!(got.radius(), Some(got.routed[PROPOSALS - 1].1));
            }
            // Random points in 12 dimensions are a hard case for a graph (no structure to
            // follow); on the generated plants both shares are above 99 % (`trainer eval`).
            assert!(
                same_other as f64 >= 0.99 * n as f64,
                "{share}: {same_other} of {n}"
            );
            assert!(
                same_routed as f64 >= 0.95 * n as f64,
                "{share}: {same_routed} of {n} routed lists exact"
            );
        }
        // Fewer routed items than proposals: all of them, and no radius.
        let routed: Vec<bool> = (0..n).map(|i| i < 3).collect();
        let got = near_one(&h, &quant, 10, &routed, 16, &mut vis);
        let mut ids: Vec<u32> = got.routed.iter().map(|x| x.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(got.radius(), None);
    }
}
