//! Hierarchical Navigable Small World graphs (Malkov & Yashunin, 2018), cosine on unit vectors.
//!
//! * Levels are drawn up front from a seeded RNG: `level = floor(-ln(U)·mL)`, `mL = 1/ln(M)`.
//! * Neighbours are chosen with the paper's heuristic (Algorithm 4, as in hnswlib's
//!   `getNeighborsByHeuristic2`): a candidate is kept only if it is closer to the new point than
//!   to every neighbour kept so far. A node keeps at most `2M` links on level 0 and `M` above.
//! * **Parallel yet reproducible construction.** After a sequential prefix, points are inserted in
//!   batches: every point of a batch searches the graph as it was at the start of the batch (in
//!   parallel, read-only), then the batch is committed sequentially in insertion order (links,
//!   reverse links with pruning, entry point). Each result depends only on the snapshot, so the
//!   graph is bit-identical for any number of threads. A batch is at most 1/20 of the graph, so
//!   points of one batch missing each other costs little recall (tested against brute force).
//! * **Build distances in exact integer arithmetic.** While the graph is built (and when points
//!   are inserted later) vectors are compared as i16 (`round(x·32767)`; unit vectors, so no
//!   overflow): `1 - dot/32767²` with the dot summed in i32, which is exact in any order. So
//!   construction is reproducible whatever the CPU, SIMD width or row layout, and it reads a
//!   compact copy of the vectors (mostly one-hot: four cache lines a row at 325k items instead
//!   of 1348 bytes in f32; see [`super::quant`]) with AVX2's 16-lane multiply-add. The quantisation moves a
//!   distance by ~1e-5, far below what separates neighbours; the graph is then searched with f32
//!   distances (as hnswlib does with the saved file), and recall@10 against exact f32 search is
//!   what the tests, `trainer eval` and the benchmark measure.
//! * Search distances are `1 - dot(a, b)` with an 8-lane f32 dot product that the compiler
//!   vectorises; its summation order is fixed, so distances are reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::links::Links;
use super::quant::Quantized;
use super::vectors::Vectors;
use crate::rng::Rng;

/// How an index is built. The config's `hnsw` section gives them (`HnswConfig::params`);
/// [`HnswParams::plan`] has the Stage-2 plan's values.
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    /// Links per node above level 0 (`2m` on level 0); the plan's value is 32.
    pub m: usize,
    /// Beam width while inserting (at least `m`); the plan's value is 200.
    pub ef_construction: usize,
    /// Seed of the level draws: the same vectors and seed give the same graph and file.
    pub seed: u64,
}

impl HnswParams {
    /// The Stage-2 plan's parameters (M 32, ef_construction 200) with the given level seed.
    pub fn plan(seed: u64) -> HnswParams {
        HnswParams {
            m: 32,
            ef_construction: 200,
            seed,
        }
    }
}

/// An HNSW graph over `n` vectors of `dim` f32 (unit length for cosine).
#[derive(Debug, Clone)]
pub struct Hnsw {
    pub(crate) dim: usize,
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) ef_construction: usize,
    pub(crate) data: Vectors,
    pub(crate) levels: Vec<u8>,
    /// Neighbours of every node on every level (internal ids).
    pub(crate) links: Links,
    pub(crate) entry: Option<u32>,
    pub(crate) max_level: usize,
}

/// Dot product with a fixed summation order: 8 lanes (lane k sums the products of positions
/// ≡ k mod 8), then the lanes pairwise, then the tail. On x86-64 with AVX2 the same code is
/// compiled for 256-bit registers and chosen at run time; without FMA every multiply and add is
/// rounded exactly as in the baseline build, so distances, graphs and index files are
/// bit-identical on machines with and without AVX2.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// How many of the nearest-other beam's best (by quantised distance) are re-ranked in f32:
/// quantisation moves distances by ~1e-5, so only near-ties can swap.
pub const RERANK: usize = 4;
/// Kept items beyond the `k` wanted that [`Hnsw::nearest_others`] re-ranks in f32: the
/// quantised order is off by at most a few places.
const KEPT_RERANK: usize = 3;
/// Distances [`Hnsw::nearest_others`]'s walk may take before it gives way to a full search.
const FILTERED_VISITS: usize = 4096;
/// What [`Hnsw::nearest_others`] finds: the nearest other, and the nearest kept others, as
/// (cosine distance, id).
pub type NearestOthers = (Option<(f32, u32)>, Vec<(f32, u32)>);

/// A query's distances to stored points, as a search sees them.
trait Metric {
    fn dist(&self, j: u32) -> f32;
    /// Asks the CPU to start loading point j's vector (a hint: no effect on results).
    fn prefetch(&self, j: u32);
}

/// f32 distances (searches of the finished graph).
struct F32Metric<'a> {
    h: &'a Hnsw,
    q: &'a [f32],
}

impl Metric for F32Metric<'_> {
    #[inline]
    fn dist(&self, j: u32) -> f32 {
        self.h.dist(self.q, j)
    }
    #[inline]
    fn prefetch(&self, j: u32) {
        prefetch_slice(self.h.vector(j));
    }
}

/// Quantised distances (construction); `q` is an expanded query ([`Quantized::expand`]).
struct I16Metric<'a> {
    quant: &'a Quantized,
    q: &'a [i16],
}

impl Metric for I16Metric<'_> {
    #[inline]
    fn dist(&self, j: u32) -> f32 {
        self.quant.dist_to(self.q, j)
    }
    #[inline]
    fn prefetch(&self, j: u32) {
        prefetch_slice(self.quant.row(j));
    }
}

/// Prefetches every cache line `v` touches (x86-64; elsewhere nothing). Issued for all fresh
/// neighbours of a candidate before any of their distances, so the loads overlap. Every line
/// is prefetched: prefetching only the first lines of each vector was slower than none
/// (BENCHMARKS.md).
#[inline(always)]
fn prefetch_slice<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let mut line = start & !63;
        while line < end {
            // SAFETY: prefetch never faults; the line holds a byte of `v`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// (distance, id) ordered by distance, then id: a total order, so ties are deterministic.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cand(f32, u32);

impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Visited marks of one search: a bitset (40 KB at 325k points, so it stays in cache, where a
/// mark per point would not) cleared through the list of what was set.
pub struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Visited {
    pub fn new(n: usize) -> Self {
        Visited {
            bits: vec![0; n.div_ceil(64)],
            touched: Vec::new(),
        }
    }
    fn next(&mut self, n: usize) {
        for &t in &self.touched {
            self.bits[t as usize >> 6] = 0;
        }
        self.touched.clear();
        if self.bits.len() < n.div_ceil(64) {
            self.bits.resize(n.div_ceil(64), 0);
        }
    }
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let (w, b) = (i as usize >> 6, 1u64 << (i & 63));
        if self.bits[w] & b != 0 {
            false
        } else {
            self.bits[w] |= b;
            self.touched.push(i);
            true
        }
    }
}

thread_local! {
    static VISITED: std::cell::RefCell<Visited> = std::cell::RefCell::new(Visited::new(0));
}

/// Runs `f` with this thread's [`Visited`] marks (grown to the graph's size on first use), so
/// parallel loops do not allocate and zero a mark per node for every split of the work. `f`
/// must not re-enter (no parallel work inside it).
pub fn with_visited<R>(f: impl FnOnce(&mut Visited) -> R) -> R {
    VISITED.with_borrow_mut(f)
}

/// What one point of a batch will link to, computed against a snapshot.
struct Plan {
    /// `per_level[l]`: selected neighbours on level l (for l ≤ min(level, snapshot max level)).
    per_level: Vec<Vec<u32>>,
}

impl Hnsw {
    /// Levels for `n` points from the seed (hnswlib's formula).
    pub fn draw_levels(n: usize, m: usize, seed: u64) -> Vec<u8> {
        let ml = 1.0 / (m as f64).ln();
        let mut rng = Rng::derive(seed, "hnsw-levels");
        (0..n)
            .map(|_| {
                let u = 1.0 - rng.f64(); // (0, 1]
                ((-u.ln() * ml).floor() as usize).min(15) as u8
            })
            .collect()
    }

    /// Builds the graph over the rows of `data` (row-major, `dim` columns).
    pub fn build(
        data: Vec<f32>,
        dim: usize,
        p: HnswParams,
        progress: impl FnMut(usize, usize),
    ) -> Hnsw {
        Self::build_quantized(data, dim, p, progress).0
    }

    /// [`Hnsw::build`], also returning the quantised vectors construction compared, for a
    /// caller that goes on to [`Hnsw::nearest_others`] (the same as [`Hnsw::quantized`], without
    /// computing them twice).
    pub fn build_quantized(
        data: Vec<f32>,
        dim: usize,
        p: HnswParams,
        progress: impl FnMut(usize, usize),
    ) -> (Hnsw, Quantized) {
        let (h, quant, ()) = Self::build_beside(data, dim, p, progress, |_| ());
        (h, quant)
    }

    /// [`Hnsw::build_quantized`], running `beside` on the rows in a thread of its own meanwhile:
    /// construction compares only the quantised vectors, so the rows are free to be read (e.g.
    /// written to disk while the graph is built). Returns what `beside` returned.
    pub fn build_beside<R: Send>(
        data: Vec<f32>,
        dim: usize,
        p: HnswParams,
        mut progress: impl FnMut(usize, usize),
        beside: impl FnOnce(&Vectors) -> R + Send,
    ) -> (Hnsw, Quantized, R) {
        let n = data.len().checked_div(dim).unwrap_or(0);
        let data = Vectors::owned(data, dim);
        let levels = Self::draw_levels(n, p.m, p.seed);
        let mut h = Hnsw {
            dim,
            m: p.m,
            m0: 2 * p.m,
            ef_construction: p.ef_construction.max(p.m),
            data: Vectors::owned(Vec::new(), dim),
            levels,
            links: Links::new(2 * p.m),
            entry: None,
            max_level: 0,
        };
        h.links.reserve(n);
        for i in 0..n {
            h.links.push_node(h.levels[i] as usize);
        }
        let quant = Quantized::new(&data);
        let rows = &data;
        let side = std::thread::scope(|scope| {
            let side = scope.spawn(move || beside(rows));
            let sequential = n.min(1024);
            let mut visited = Visited::new(n);
            for i in 0..sequential {
                let plan = self_plan(&h, &quant, i as u32, &mut visited);
                h.commit(i as u32, plan, &quant);
                if (i + 1) % 64 == 0 || i + 1 == sequential {
                    progress(i + 1, n);
                }
            }
            let mut done = sequential;
            while done < n {
                let batch = (done / 20).clamp(1, 256).min(n - done);
                let plans: Vec<Plan> = (done..done + batch)
                    .into_par_iter()
                    .map(|i| with_visited(|vis| self_plan(&h, &quant, i as u32, vis)))
                    .collect();
                h.commit_batch(done as u32, plans, &quant);
                done += batch;
                progress(done, n);
            }
            side.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        h.data = data;
        (h, quant, side)
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether `other` has the same links on every level and the same entry point (a rebuild
    /// from the same vectors and seed must).
    pub fn same_graph(&self, other: &Hnsw) -> bool {
        self.links == other.links && self.entry == other.entry
    }

    /// The dimension of the vectors.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Links per node above level 0 (M).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Every vector (`len() × dim()`).
    pub fn vectors(&self) -> &Vectors {
        &self.data
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    #[inline]
    pub fn vector(&self, i: u32) -> &[f32] {
        self.data.row(i as usize)
    }

    #[inline]
    fn dist(&self, q: &[f32], i: u32) -> f32 {
        1.0 - dot(q, self.vector(i))
    }

    /// [`Hnsw::dist`] for the few f32 distances of a search on the quantised vectors: the row
    /// is read without touching a mapped file's pages ([`Vectors::read_row`]). The same value.
    fn dist_read(&self, q: &[f32], i: u32) -> f32 {
        ROW.with_borrow_mut(|buf| 1.0 - dot(q, self.data.read_row(i as usize, buf)))
    }

    /// Applies a plan: the point's own links, reverse links (pruned), entry point.
    fn commit(&mut self, i: u32, plan: Plan, quant: &Quantized) {
        let level = self.levels[i as usize] as usize;
        let Some(_) = self.entry else {
            self.entry = Some(i);
            self.max_level = level;
            return;
        };
        for (l, neigh) in plan.per_level.into_iter().enumerate() {
            for &nb in &neigh {
                self.add_link(nb, i, l, quant);
            }
            self.links.set(i, l, &neigh);
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = Some(i);
        }
    }

    /// Applies the plans of a batch (points `first..`), with the same result as committing them
    /// one by one: every reverse link targets a node of the snapshot, and what happens to one
    /// node's list depends only on that list and the links added to it, in insertion order. So
    /// the additions are grouped per (node, level) in insertion order and each group's pruning is
    /// computed in parallel (read-only), then written back.
    fn commit_batch(&mut self, first: u32, plans: Vec<Plan>, quant: &Quantized) {
        if self.entry.is_none() {
            for (k, plan) in plans.into_iter().enumerate() {
                self.commit(first + k as u32, plan, quant);
            }
            return;
        }
        let mut adds: Vec<(u32, u8, u32)> = Vec::new();
        for (k, plan) in plans.iter().enumerate() {
            for (l, neigh) in plan.per_level.iter().enumerate() {
                adds.extend(neigh.iter().map(|&nb| (nb, l as u8, first + k as u32)));
            }
        }
        // Stable: insertion order is kept within each (node, level).
        adds.sort_by_key(|a| (a.0, a.1));
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut s = 0;
        for e in 1..=adds.len() {
            if e == adds.len() || (adds[e].0, adds[e].1) != (adds[s].0, adds[s].1) {
                groups.push((s, e));
                s = e;
            }
        }
        let this = &*self;
        let lists: Vec<Vec<u32>> = groups
            .par_iter()
            .map(|&(s, e)| {
                let (node, l) = (adds[s].0, adds[s].1 as usize);
                let mut list = this.links.get(node, l).to_vec();
                for a in &adds[s..e] {
                    this.add_to(&mut list, node, a.2, l, quant);
                }
                list
            })
            .collect();
        for (&(s, _), list) in groups.iter().zip(lists) {
            self.links.set(adds[s].0, adds[s].1 as usize, &list);
        }
        for (k, plan) in plans.into_iter().enumerate() {
            let i = first + k as u32;
            for (l, neigh) in plan.per_level.iter().enumerate() {
                self.links.set(i, l, neigh);
            }
            let level = self.levels[i as usize] as usize;
            if level > self.max_level {
                self.max_level = level;
                self.entry = Some(i);
            }
        }
    }

    /// Adds `new` to `node`'s list on level l, pruning with the heuristic when full.
    fn add_link(&mut self, node: u32, new: u32, l: usize, quant: &Quantized) {
        let mut list = self.links.get(node, l).to_vec();
        self.add_to(&mut list, node, new, l, quant);
        self.links.set(node, l, &list);
    }

    /// [`Hnsw::add_link`] on a detached copy of `node`'s level-l list.
    fn add_to(&self, list: &mut Vec<u32>, node: u32, new: u32, l: usize, quant: &Quantized) {
        let cap = if l == 0 { self.m0 } else { self.m };
        if list.contains(&new) {
            return;
        }
        if list.len() < cap {
            list.push(new);
            return;
        }
        let q = quant.query(node);
        let mut cands: Vec<Cand> = list
            .iter()
            .chain(std::iter::once(&new))
            .map(|&x| Cand(quant.dist_to(&q, x), x))
            .collect();
        cands.sort();
        *list = heuristic(&cands, cap, quant);
    }

    /// Beam search on one level; returns up to `ef` candidates sorted by distance, never
    /// `exclude`. The neighbours of a candidate that were not visited yet are prefetched together
    /// before their distances are computed, so their loads overlap (as in hnswlib).
    fn search_layer(
        &self,
        metric: &impl Metric,
        entries: &[Cand],
        ef: usize,
        l: usize,
        visited: &mut Visited,
        exclude: Option<u32>,
    ) -> Vec<Cand> {
        visited.next(self.len());
        if let Some(x) = exclude {
            visited.insert(x);
        }
        let mut cand: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::new();
        let mut best: BinaryHeap<Cand> = BinaryHeap::new();
        for &e in entries {
            if visited.insert(e.1) {
                cand.push(std::cmp::Reverse(e));
                best.push(e);
            }
        }
        while best.len() > ef {
            best.pop();
        }
        let mut fresh: Vec<u32> = Vec::with_capacity(self.m0);
        while let Some(std::cmp::Reverse(c)) = cand.pop() {
            if let Some(worst) = best.peek()
                && c.0 > worst.0
                && best.len() >= ef
            {
                break;
            }
            // The next candidate's list is likely read next: start loading it now.
            if l == 0
                && let Some(std::cmp::Reverse(next)) = cand.peek()
            {
                self.links.prefetch0(next.1);
            }
            fresh.clear();
            for &nb in self.links.get(c.1, l) {
                if visited.insert(nb) {
                    metric.prefetch(nb);
                    fresh.push(nb);
                }
            }
            for &nb in &fresh {
                let d = metric.dist(nb);
                let admit = best.len() < ef || best.peek().is_some_and(|w| Cand(d, nb) < *w);
                if admit {
                    cand.push(std::cmp::Reverse(Cand(d, nb)));
                    best.push(Cand(d, nb));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        let mut v = best.into_vec();
        v.sort();
        v
    }

    /// Greedy descent from the entry point down to level `to` (exclusive of levels ≤ to).
    fn descend(&self, metric: &impl Metric, to: usize) -> Cand {
        let e = self.entry.expect("non-empty graph");
        let mut cur = Cand(metric.dist(e), e);
        let mut l = self.max_level;
        while l > to {
            let mut changed = true;
            while changed {
                changed = false;
                for &nb in self.links.get(cur.1, l) {
                    let c = Cand(metric.dist(nb), nb);
                    if c < cur {
                        cur = c;
                        changed = true;
                    }
                }
            }
            l -= 1;
        }
        cur
    }

    /// The `k` nearest stored points to `q` (unit length) as (cosine distance, label).
    pub fn search(&self, q: &[f32], k: usize, ef: usize, visited: &mut Visited) -> Vec<(f32, u32)> {
        if self.entry.is_none() || k == 0 {
            return Vec::new();
        }
        let metric = F32Metric { h: self, q };
        let ep = self.descend(&metric, 0);
        let res = self.search_layer(&metric, &[ep], ef.max(k), 0, visited, None);
        res.into_iter().take(k).map(|c| (c.0, c.1)).collect()
    }

    /// The vectors quantised as construction compares them (for [`Hnsw::nearest_others`]).
    pub fn quantized(&self) -> Quantized {
        Quantized::new(&self.data)
    }

    /// The nearest other stored point of stored point `i`, and the `k` nearest others that
    /// `keep` accepts, by exact f32 distance (ties: the lower id), nearest first, as (cosine
    /// distance, id).
    ///
    /// The graph already links each node to its close neighbours, so instead of a search from
    /// the top this is a beam search of width `ef` on level 0 that starts from `i`'s own links
    /// and never returns `i`: a few hundred distances instead of thousands. The beam compares the
    /// quantised vectors of `quant` (from [`Hnsw::quantized`]; half the memory traffic); its best
    /// [`RERANK`] are re-ranked by exact f32 distance for the nearest other. A node without links
    /// (a graph of one) falls back to a full search. How often it agrees with exact search is
    /// measured by `trainer eval`, the benchmark and the tests.
    ///
    /// The beam keeps its best `ef` of all items and, beside them, its
    /// best `max(ef, 2k)` kept ones, and goes on while either could still improve, so it walks
    /// through a neighbourhood of items `keep` rejects until it has found kept ones. Where
    /// that takes more than [`FILTERED_VISITS`] distances (kept items are rare around `i`), a full
    /// search on the quantised vectors at `ef_full` finds them, widened fourfold until `k` are
    /// found or every item was looked at, as `recommend` widens its search.
    #[allow(clippy::too_many_arguments)]
    pub fn nearest_others(
        &self,
        quant: &Quantized,
        i: u32,
        ef: usize,
        k: usize,
        keep: &dyn Fn(u32) -> bool,
        ef_full: usize,
        visited: &mut Visited,
    ) -> NearestOthers {
        let qi = quant.query(i);
        let metric = I16Metric { quant, q: &qi };
        let entries: Vec<Cand> = self
            .links
            .get(i, 0)
            .iter()
            .map(|&j| Cand(metric.dist(j), j))
            .collect();
        if entries.is_empty() {
            let other = self.search_other(i, ef, visited);
            return (
                other,
                self.kept_by_search(quant, i, k, keep, ef_full, visited),
            );
        }
        let ef_kept = ef.max(2 * k);
        let (beam, kept) =
            self.search_layer_kept(&metric, &entries, ef.max(RERANK), ef_kept, visited, i, keep);
        let other = self.rerank(i, beam.iter().map(|c| c.1));
        let found = match kept {
            Some(kept) if kept.len() >= k => {
                self.exact_best(i, kept.iter().map(|c| c.1).take(k + KEPT_RERANK), k)
            }
            _ => self.kept_by_search(quant, i, k, keep, ef_full, visited),
        };
        (other, found)
    }

    /// [`Hnsw::search_layer`] on level 0 that also keeps the best `ef_kept` items `keep`
    /// accepts, exploring on while that list is short or could improve (see
    /// [`Hnsw::nearest_others`]); never returns `exclude`. `None` for the kept ones: the walk
    /// took more than [`FILTERED_VISITS`] distances.
    #[allow(clippy::too_many_arguments)]
    fn search_layer_kept(
        &self,
        metric: &impl Metric,
        entries: &[Cand],
        ef: usize,
        ef_kept: usize,
        visited: &mut Visited,
        exclude: u32,
        keep: &dyn Fn(u32) -> bool,
    ) -> (Vec<Cand>, Option<Vec<Cand>>) {
        visited.next(self.len());
        visited.insert(exclude);
        let mut cand: BinaryHeap<std::cmp::Reverse<Cand>> = BinaryHeap::new();
        let mut best: BinaryHeap<Cand> = BinaryHeap::new();
        let mut kept: BinaryHeap<Cand> = BinaryHeap::new();
        for &e in entries {
            if visited.insert(e.1) {
                cand.push(std::cmp::Reverse(e));
                best.push(e);
                if keep(e.1) {
                    kept.push(e);
                }
            }
        }
        while best.len() > ef {
            best.pop();
        }
        while kept.len() > ef_kept {
            kept.pop();
        }
        let mut distances = entries.len();
        let mut fresh: Vec<u32> = Vec::with_capacity(self.m0);
        while let Some(std::cmp::Reverse(c)) = cand.pop() {
            let done = |h: &BinaryHeap<Cand>, cap: usize| {
                h.len() >= cap && h.peek().is_some_and(|w| c.0 > w.0)
            };
            if done(&best, ef) && done(&kept, ef_kept) {
                break;
            }
            if distances > FILTERED_VISITS {
                let mut v = best.into_vec();
                v.sort();
                return (v, None);
            }
            if let Some(std::cmp::Reverse(next)) = cand.peek() {
                self.links.prefetch0(next.1);
            }
            fresh.clear();
            for &nb in self.links.get(c.1, 0) {
                if visited.insert(nb) {
                    metric.prefetch(nb);
                    fresh.push(nb);
                }
            }
            distances += fresh.len();
            for &nb in &fresh {
                let x = Cand(metric.dist(nb), nb);
                let to_best = best.len() < ef || best.peek().is_some_and(|w| x < *w);
                let to_kept = kept.len() < ef_kept || kept.peek().is_some_and(|w| x < *w);
                if to_best {
                    best.push(x);
                    if best.len() > ef {
                        best.pop();
                    }
                }
                if to_kept && keep(nb) {
                    kept.push(x);
                    if kept.len() > ef_kept {
                        kept.pop();
                    }
                }
                // A rejected item is still a way through: walk on while the kept list could
                // take what lies beyond it.
                if to_best || to_kept {
                    cand.push(std::cmp::Reverse(x));
                }
            }
        }
        let (mut b, mut k) = (best.into_vec(), kept.into_vec());
        b.sort();
        k.sort();
        (b, Some(k))
    }

    /// The `k` nearest others of `i` that `keep` accepts, by a full quantised search at `ef`
    /// (widened fourfold while too few are found) re-ranked in f32 (see [`Hnsw::nearest_others`]).
    fn kept_by_search(
        &self,
        quant: &Quantized,
        i: u32,
        k: usize,
        keep: &dyn Fn(u32) -> bool,
        ef: usize,
        visited: &mut Visited,
    ) -> Vec<(f32, u32)> {
        let n = self.len();
        let mut ef = ef.max(k + 1).min(n.max(1));
        loop {
            let kept: Vec<u32> = self
                .search_quantized(quant, i, ef, visited)
                .into_iter()
                .map(|c| c.1)
                .filter(|&j| j != i && keep(j))
                .collect();
            if kept.len() >= k || ef >= n {
                return self.exact_best(i, kept.into_iter(), k);
            }
            ef = (ef * 4).min(n);
        }
    }

    /// The `k` of `ids` nearest to stored point `i` by exact f32 distance (ties: the lower id).
    fn exact_best(&self, i: u32, ids: impl Iterator<Item = u32>, k: usize) -> Vec<(f32, u32)> {
        let mut qbuf = Vec::new();
        let q = self.data.read_row(i as usize, &mut qbuf);
        let mut all: Vec<Cand> = ids.map(|j| Cand(self.dist_read(q, j), j)).collect();
        all.sort();
        all.truncate(k);
        all.into_iter().map(|c| (c.0, c.1)).collect()
    }

    /// The closest to stored point `i` by exact f32 distance among the first [`RERANK`] of
    /// `ids` (a quantised search's best, nearest first), as (cosine distance, id).
    fn rerank(&self, i: u32, ids: impl Iterator<Item = u32>) -> Option<(f32, u32)> {
        let mut qbuf = Vec::new();
        let q = self.data.read_row(i as usize, &mut qbuf);
        ids.take(RERANK)
            .map(|j| Cand(self.dist_read(q, j), j))
            .min()
            .map(|c| (c.0, c.1))
    }

    /// The `ef` nearest stored points to stored point `i` (itself included) by a full search
    /// that compares the quantised vectors of `quant` (from [`Hnsw::quantized`]), as (quantised
    /// cosine distance, id), nearest first. Reads no f32 vector: a model's rows read in place
    /// from its file stay unread ([`Vectors`]).
    pub fn search_quantized(
        &self,
        quant: &Quantized,
        i: u32,
        ef: usize,
        visited: &mut Visited,
    ) -> Vec<(f32, u32)> {
        if self.entry.is_none() || ef == 0 {
            return Vec::new();
        }
        let qi = quant.query(i);
        let metric = I16Metric { quant, q: &qi };
        let ep = self.descend(&metric, 0);
        let res = self.search_layer(&metric, &[ep], ef, 0, visited, None);
        res.into_iter().map(|c| (c.0, c.1)).collect()
    }

    /// The nearest other stored point of stored point `i` by a full search at `ef` on the
    /// quantised vectors ([`Hnsw::search_quantized`]), its best [`RERANK`] others re-ranked by
    /// exact f32 distance, as (cosine distance, id) (an exact duplicate of `i` counts as other).
    pub fn search_other_quantized(
        &self,
        quant: &Quantized,
        i: u32,
        ef: usize,
        visited: &mut Visited,
    ) -> Option<(f32, u32)> {
        let found = self.search_quantized(quant, i, ef.max(RERANK + 1), visited);
        self.rerank(i, found.into_iter().map(|r| r.1).filter(|&j| j != i))
    }

    /// Exact cosine distance between stored points `i` and `j` (read as [`Hnsw::dist_read`]).
    pub fn dist_between(&self, i: u32, j: u32) -> f32 {
        let mut qbuf = Vec::new();
        self.dist_read(self.data.read_row(i as usize, &mut qbuf), j)
    }

    /// The nearest other stored point of stored point `i` by a full search at `ef` (as a query
    /// would find it; an exact duplicate of `i` counts as other), as (cosine distance, id).
    pub fn search_other(&self, i: u32, ef: usize, visited: &mut Visited) -> Option<(f32, u32)> {
        self.search(self.vector(i), 2, ef.max(2), visited)
            .into_iter()
            .find(|r| r.1 != i)
    }

    /// Exact nearest other stored point of `i` by brute force (for checks).
    pub fn brute_force_other(&self, i: u32) -> Option<(f32, u32)> {
        let q = self.vector(i);
        (0..self.len() as u32)
            .filter(|&j| j != i)
            .map(|j| Cand(self.dist(q, j), j))
            .min()
            .map(|c| (c.0, c.1))
    }

    /// Exact k nearest neighbours by brute force (for recall checks).
    pub fn brute_force(&self, q: &[f32], k: usize) -> Vec<(f32, u32)> {
        let mut all: Vec<Cand> = (0..self.len() as u32)
            .map(|i| Cand(self.dist(q, i), i))
            .collect();
        all.sort();
        all.into_iter().take(k).map(|c| (c.0, c.1)).collect()
    }

    /// Recall@k of `search` at `ef` against exact search, averaged over `queries` (unit vectors):
    /// the share of the k exact nearest neighbours that the index returns. Queries run in
    /// parallel; the result does not depend on the thread count.
    pub fn recall_at<'a>(
        &self,
        queries: impl IntoIterator<Item = &'a [f32]>,
        k: usize,
        ef: usize,
    ) -> f64 {
        let queries: Vec<&[f32]> = queries.into_iter().collect();
        let per: Vec<(usize, usize)> = queries
            .par_iter()
            .map(|q| {
                let exact: Vec<u32> = self.brute_force(q, k).iter().map(|x| x.1).collect();
                let hits = with_visited(|vis| self.hits(q, &exact, ef, vis));
                (hits, exact.len())
            })
            .collect();
        let (hits, total) = per.iter().fold((0, 0), |(a, b), (h, t)| (a + h, b + t));
        hits as f64 / total.max(1) as f64
    }

    /// How many of `exact` (the exact nearest neighbours of `q`) a search for as many at `ef`
    /// returns.
    pub fn hits(&self, q: &[f32], exact: &[u32], ef: usize, vis: &mut Visited) -> usize {
        let got = self.search(q, exact.len(), ef, vis);
        exact
            .iter()
            .filter(|e| got.iter().any(|g| g.1 == **e))
            .count()
    }

    /// Appends points (incremental insertion, one at a time, deterministic). New points draw
    /// their levels from the same seeded sequence as `build`, so they reach upper levels too.
    /// Returns the quantised vectors of all points (for [`Hnsw::nearest_others`]).
    pub fn insert_all(&mut self, data: &[f32], seed: u64) -> Quantized {
        self.insert_all_beside(data, seed, |_| ()).0
    }

    /// [`Hnsw::insert_all`], running `beside` on all the rows (the old and the inserted ones) in a
    /// thread of its own while the links are made, as [`Hnsw::build_beside`] does. Returns the
    /// quantised vectors and what `beside` returned.
    pub fn insert_all_beside<R: Send>(
        &mut self,
        data: &[f32],
        seed: u64,
        beside: impl FnOnce(&Vectors) -> R + Send,
    ) -> (Quantized, R) {
        let start = self.len();
        let add = data.len() / self.dim;
        let all_levels = Self::draw_levels(start + add, self.m, seed);
        self.data.extend_from_slice(data);
        for &level in &all_levels[start..] {
            self.levels.push(level);
            self.links.push_node(level as usize);
        }
        let quant = Quantized::new(&self.data);
        // Insertion compares only the quantised vectors: the rows are lent out meanwhile.
        let rows = std::mem::replace(&mut self.data, Vectors::owned(Vec::new(), self.dim));
        let side = std::thread::scope(|scope| {
            let side = scope.spawn(|| beside(&rows));
            let mut visited = Visited::new(self.len());
            for i in start..start + add {
                let plan = self_plan(self, &quant, i as u32, &mut visited);
                self.commit(i as u32, plan, &quant);
            }
            side.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        self.data = rows;
        (quant, side)
    }
}

thread_local! {
    /// A row read by [`Hnsw::dist_read`] (reused).
    static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The kept neighbours of a [`heuristic`] call, expanded as queries (reused).
    static KEPT: std::cell::RefCell<Vec<i16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Neighbour selection heuristic over candidates sorted by distance. Each kept neighbour is
/// expanded once and compared with the later candidates (distances are symmetric and exact).
fn heuristic(cands: &[Cand], m: usize, quant: &Quantized) -> Vec<u32> {
    KEPT.with_borrow_mut(|kept| {
        let mut out: Vec<u32> = Vec::with_capacity(m);
        let mut q = Vec::with_capacity(quant.query_len());
        kept.clear();
        for c in cands {
            if out.len() >= m {
                break;
            }
            let ok = kept
                .chunks_exact(quant.query_len())
                .all(|ks| quant.dist_to(ks, c.1) >= c.0);
            if ok {
                out.push(c.1);
                if out.len() < m {
                    quant.expand(c.1, &mut q);
                    kept.extend_from_slice(&q);
                }
            }
        }
        out
    })
}

/// Plans the links of point `i` against the current graph (read-only).
fn self_plan(h: &Hnsw, quant: &Quantized, i: u32, visited: &mut Visited) -> Plan {
    let Some(_) = h.entry else {
        return Plan {
            per_level: Vec::new(),
        };
    };
    let q = quant.query(i);
    let metric = I16Metric { quant, q: &q };
    let level = h.levels[i as usize] as usize;
    let top = level.min(h.max_level);
    let mut ep = h.descend(&metric, top);
    let mut per_level = vec![Vec::new(); top + 1];
    let mut entries = vec![ep];
    for l in (0..=top).rev() {
        let w = h.search_layer(&metric, &entries, h.ef_construction, l, visited, None);
        let w: Vec<Cand> = w.into_iter().filter(|c| c.1 != i).collect();
        per_level[l] = heuristic(&w, h.m, quant);
        if let Some(first) = w.first() {
            ep = *first;
        }
        entries = w;
        if entries.is_empty() {
            entries = vec![ep];
        }
    }
    Plan { per_level }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_unit(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let row: Vec<f64> = (0..dim).map(|_| r.normal()).collect();
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.extend(row.iter().map(|x| (x / norm) as f32));
        }
        v
    }

    #[test]
    fn recall_at_10_against_brute_force() {
        let (n, dim) = (3000, 16);
        let data = random_unit(n, dim, 7);
        let h = Hnsw::build(
            data,
            dim,
            HnswParams {
                m: 16,
                ef_construction: 200,
                seed: 42,
            },
            |_, _| {},
        );
        let queries = random_unit(200, dim, 99);
        let recall = h.recall_at(queries.chunks(dim), 10, 256);
        assert!(recall >= 0.99, "recall@10 = {recall}");
    }

    #[test]
    fn building_beside_a_task_gives_the_same_graph_and_lends_it_the_rows() {
        let (n, dim) = (2000, 12);
        let data = random_unit(n, dim, 5);
        let p = HnswParams {
            m: 8,
            ef_construction: 40,
            seed: 42,
        };
        let alone = Hnsw::build(data.clone(), dim, p, |_, _| {});
        let (beside, _, seen) = Hnsw::build_beside(
            data.clone(),
            dim,
            p,
            |_, _| {},
            |rows| {
                let rows = rows.as_slice().unwrap();
                rows.iter().map(|x| x.to_bits() as u64).sum::<u64>()
            },
        );
        assert!(beside.same_graph(&alone));
        assert_eq!(beside.vectors().as_slice().unwrap(), &data[..]);
        assert_eq!(seen, data.iter().map(|x| x.to_bits() as u64).sum::<u64>());
    }

    #[test]
    fn inserting_beside_a_task_gives_the_same_graph_and_lends_it_all_rows() {
        let (n, add, dim) = (1500, 300, 12);
        let data = random_unit(n + add, dim, 6);
        let p = HnswParams {
            m: 8,
            ef_construction: 40,
            seed: 42,
        };
        let (old, new) = data.split_at(n * dim);
        let mut alone = Hnsw::build(old.to_vec(), dim, p, |_, _| {});
        let mut beside = Hnsw::build(old.to_vec(), dim, p, |_, _| {});
        alone.insert_all(new, 42);
        let (_, seen) = beside.insert_all_beside(new, 42, |rows| rows.as_slice().unwrap().to_vec());
        assert!(beside.same_graph(&alone));
        assert_eq!(beside.vectors().as_slice().unwrap(), &data[..]);
        assert_eq!(seen, data);
    }

    #[test]
    fn nearest_other_from_links_matches_exact_search() {
        // Clustered data (like items sharing a routing): many close pairs, where a wrong
        // nearest-other would show.
        let (n, dim) = (4000, 24);
        let centres = random_unit(200, dim, 5);
        let noise = random_unit(n, dim, 6);
        let mut data = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i % 200) * dim..(i % 200 + 1) * dim];
            let row: Vec<f32> = (0..dim).map(|k| c[k] + 0.15 * noise[i * dim + k]).collect();
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(row.iter().map(|x| x / norm));
        }
        let h = Hnsw::build(
            data,
            dim,
            HnswParams {
                m: 16,
                ef_construction: 100,
                seed: 42,
            },
            |_, _| {},
        );
        let mut vis = Visited::new(n);
        let quant = h.quantized();
        let (mut same, mut total) = (0, 0);
        for i in (0..n as u32).step_by(7) {
            let got = h
                .nearest_others(&quant, i, 32, 1, &|_| true, 32, &mut vis)
                .0
                .unwrap();
            let exact = h.brute_force_other(i).unwrap();
            assert_ne!(got.1, i);
            total += 1;
            // Equal distance counts (ties between equidistant points).
            if got.0 <= exact.0 {
                same += 1;
            }
        }
        let share = same as f64 / total as f64;
        assert!(
            share >= 0.995,
            "nearest-other agrees with exact search for {share}"
        );
    }

    #[test]
    fn incremental_insertion_keeps_recall() {
        let (n, dim) = (2000, 12);
        let data = random_unit(n, dim, 11);
        let p = HnswParams {
            m: 12,
            ef_construction: 100,
            seed: 5,
        };
        let mut h = Hnsw::build(data[..1000 * dim].to_vec(), dim, p, |_, _| {});
        h.insert_all(&data[1000 * dim..], 5);
        assert_eq!(h.len(), n);
        assert!(
            h.levels[1000..].iter().any(|&l| l > 0),
            "new points reach upper levels"
        );
        let recall = h.recall_at((0..n as u32).step_by(10).map(|q| h.vector(q)), 10, 128);
        assert!(
            recall >= 0.99,
            "recall@10 after incremental insertion = {recall}"
        );
    }

    #[test]
    fn batch_commit_equals_one_by_one() {
        let (n, dim) = (3000, 10);
        let data = random_unit(n, dim, 21);
        let p = HnswParams {
            m: 6,
            ef_construction: 40,
            seed: 9,
        };
        let a = Hnsw::build(data.clone(), dim, p, |_, _| {});
        // The same batches, committed point by point.
        let mut b = Hnsw::build(data[..1024 * dim].to_vec(), dim, p, |_, _| {});
        b.data = Vectors::owned(data, dim);
        b.levels = Hnsw::draw_levels(n, p.m, p.seed);
        for i in 1024..n {
            b.links.push_node(b.levels[i] as usize);
        }
        let mut done = 1024;
        while done < n {
            let batch = (done / 20).clamp(1, 256).min(n - done);
            let quant = Quantized::new(&b.data);
            let mut vis = Visited::new(n);
            let plans: Vec<Plan> = (done..done + batch)
                .map(|i| self_plan(&b, &quant, i as u32, &mut vis))
                .collect();
            for (k, plan) in plans.into_iter().enumerate() {
                b.commit((done + k) as u32, plan, &quant);
            }
            done += batch;
        }
        assert_eq!(a.links, b.links);
        assert_eq!(a.entry, b.entry);
    }

    #[test]
    fn dot_is_the_same_with_and_without_avx2() {
        let v = random_unit(50, 307, 13);
        for (a, b) in v.chunks(307).zip(v.chunks(307).skip(1)) {
            let want = dot_lanes(a, b);
            assert_eq!(dot(a, b).to_bits(), want.to_bits());
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_eq!(unsafe { dot_avx2(a, b) }.to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn same_seed_same_graph_any_thread_count() {
        let data = random_unit(2500, 8, 3);
        let p = HnswParams {
            m: 8,
            ef_construction: 64,
            seed: 42,
        };
        let a = Hnsw::build(data.clone(), 8, p, |_, _| {});
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| Hnsw::build(data.clone(), 8, p, |_, _| {}));
        assert_eq!(a.links, b.links);
        assert_eq!(a.entry, b.entry);
        let c = Hnsw::build(data, 8, HnswParams { seed: 43, ..p }, |_, _| {});
        assert_ne!(a.levels, c.levels);
    }
}
