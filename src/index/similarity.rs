//! The similarity check: each item's nearest other item and its similarity, found in the graph
//! itself (what `run` and `update` tier items by), and the similarity histogram the log and
//! `training_metadata.json` report.

use rayon::prelude::*;

use super::Hnsw;
use super::hnsw::{Visited, with_visited};
use super::quant::Quantized;

/// Beam width of the similarity check's nearest-other search, which starts from each item's own
/// level-0 links (see [`Hnsw::nearest_other`]); agreement with exact search is measured by
/// `trainer eval` and the benchmark.
pub const NEAREST_OTHER_EF: usize = 10;

/// The similarity check's nearest other of item `i`, as (cosine distance, id): the beam of
/// [`Hnsw::nearest_other`] (width `beam`, [`NEAREST_OTHER_EF`] in `trainer run`), and for an
/// item it leaves below `threshold` (LOW, so queued for review) also a full search at
/// `ef_search` ([`Hnsw::search_other_quantized`]), the closer of the two. Both compare the
/// quantised vectors and re-rank their best few in f32, so a model's f32 rows are read only for
/// those few. A search can only miss a closer item, never report one
/// closer than exists, so a HIGH answer is final while a LOW one is worth a second look; LOW
/// items are outliers, which a graph search finds least reliably. No second look when even a
/// similarity of 1 would stay below `threshold` (a calibration under which no similarity is
/// HIGH gives +∞): it could not change the tier, and on such a plant every item would be
/// searched twice. `trainer eval` and the benchmark measure the agreement with exact search.
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
    if (1.0 - beam.0) as f64 >= threshold || threshold > 1.0 {
        return Some(beam);
    }
    let full = h.search_other_quantized(quant, i, ef_search, vis);
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
        // No similarity can be HIGH: the beam's answer stands for every item.
        for t in [f64::INFINITY, 1.5] {
            for i in (0..n as u32).step_by(7) {
                let beam = h.nearest_other(&quant, i, NEAREST_OTHER_EF, &mut vis);
                let got = similarity_nearest(&h, &quant, i, NEAREST_OTHER_EF, 1024, t, &mut vis);
                assert_eq!(got, beam, "item {i}, threshold {t}");
            }
        }
    }
}
