//! The vectors as construction compares them: i16 in a compact row layout, with exact integer
//! dot products.
//!
//! * **Exact.** Each unit-vector component becomes `round(x·32767)` and a dot product is summed
//!   in i32. Integer sums are exact in any order, so a distance does not depend on the CPU, the
//!   SIMD width or the layout the rows are stored in (see the HNSW module docs for why
//!   construction uses them).
//! * **Compact.** Construction is bound by loading vectors, not by arithmetic. Item vectors are
//!   mostly one-hot blocks: at 325k items × 337 dims every row has exactly 111 non-zeros (85
//!   numeric and target dims that are never zero, one level of each of 26 one-hot features).
//!   So the columns are reordered by how often they are non-zero, and a stored row is the dense
//!   columns as i16 followed by a fixed number of (position, value) pairs for the non-zeros of
//!   the other columns, padded with pairs whose value is 0. The split is chosen from the data
//!   (the smallest row among a few candidate splits, plain dense rows when nothing is saved), so
//!   dense data keeps the plain layout; at 325k items it is 94 dense columns and 23 pairs, 280
//!   bytes instead of 674.
//! * **Queries are expanded.** The point a search starts from is written out as a full vector in
//!   the reordered column order ([`Quantized::expand`]), so a distance is a SIMD dot product
//!   over the dense part plus one multiply-add per pair. Padding pairs point at an extra slot
//!   of the query that is always 0.

use rayon::prelude::*;

/// Scale of the i16 quantisation of unit vectors.
pub const QSCALE: f32 = 32767.0;

/// The quantised value of one component of a unit vector: `round(x·32767)`, halves away from
/// zero, clamped to ±32767. Written out because `f32::round` is a libm call on baseline
/// x86-64; `|y| + 0.5` is exact in f64, so this is the same value.
#[inline]
pub fn quantize(x: f32) -> i16 {
    let y = x * QSCALE;
    let r = ((y.abs() as f64 + 0.5) as i64).min(QSCALE as i64) as i16;
    if y < 0.0 { -r } else { r }
}

/// The vectors as i16, in the compact layout (see the module docs).
pub struct Quantized {
    dim: usize,
    /// Leading columns of the reordered order that are stored densely.
    dense: usize,
    /// (position, value) pairs per row for the other columns (non-zeros, then padding).
    pairs: usize,
    /// `dense + 2·pairs` i16 per stored row.
    stride: usize,
    /// `order[k]`: the original column at position k of the reordered order.
    order: Vec<usize>,
    data: Vec<i16>,
}

/// Candidate dense shares: a column is stored densely when it is non-zero in at least this
/// share of rows. Each gives one candidate split; the one with the smallest row wins.
const DENSE_SHARES: [f64; 8] = [1.0, 0.999, 0.99, 0.95, 0.9, 0.75, 0.5, 0.25];

impl Quantized {
    /// Quantises `data` (row-major, `dim` columns of unit vectors) and picks the layout.
    pub fn new(data: &[f32], dim: usize) -> Self {
        let n = data.len().checked_div(dim).unwrap_or(0);
        let chunk = 4096 * dim.max(1);
        // Non-zero rows per column.
        let nonzero: Vec<usize> = data
            .par_chunks(chunk)
            .map(|rows| {
                let mut c = vec![0usize; dim];
                for row in rows.chunks_exact(dim) {
                    for (k, &x) in row.iter().enumerate() {
                        c[k] += (quantize(x) != 0) as usize;
                    }
                }
                c
            })
            .reduce(
                || vec![0; dim],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| nonzero[b].cmp(&nonzero[a]).then(a.cmp(&b)));
        // Pair positions are u16 and `dim` itself is the zero slot.
        let (dense, pairs) = if n == 0 || dim >= u16::MAX as usize {
            (dim, 0)
        } else {
            Self::choose_split(data, dim, n, &order, &nonzero)
        };
        let stride = dense + 2 * pairs;
        let mut q = Quantized {
            dim,
            dense,
            pairs,
            stride,
            order,
            data: Vec::new(),
        };
        let mut out = vec![0i16; n * stride];
        let this = &q;
        out.par_chunks_mut(stride.max(1) * 4096)
            .zip(data.par_chunks(chunk))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(stride).zip(src.chunks_exact(dim)) {
                    this.store_row(s, d);
                }
            });
        q.data = out;
        q
    }

    /// The dense prefix and pair count with the smallest stored row (ties: more dense columns).
    fn choose_split(
        data: &[f32],
        dim: usize,
        n: usize,
        order: &[usize],
        nonzero: &[usize],
    ) -> (usize, usize) {
        // Candidate prefixes: columns non-zero in at least share·n rows; all columns = dense.
        let mut cuts: Vec<usize> = DENSE_SHARES
            .iter()
            .map(|&s| {
                let need = (s * n as f64).ceil() as usize;
                order.iter().take_while(|&&c| nonzero[c] >= need).count()
            })
            .collect();
        cuts.push(dim);
        cuts.sort_unstable();
        cuts.dedup();
        // band[c]: how many cuts column c's position is at or past.
        let mut band = vec![0usize; dim];
        for (pos, &c) in order.iter().enumerate() {
            band[c] = cuts.iter().take_while(|&&cut| pos >= cut).count();
        }
        // Most non-zeros of one row beyond each cut.
        let beyond: Vec<usize> = data
            .par_chunks(4096 * dim)
            .map(|rows| {
                let mut most = vec![0usize; cuts.len()];
                let mut per_band = vec![0usize; cuts.len() + 1];
                for row in rows.chunks_exact(dim) {
                    per_band.iter_mut().for_each(|x| *x = 0);
                    for (c, &x) in row.iter().enumerate() {
                        if quantize(x) != 0 {
                            per_band[band[c]] += 1;
                        }
                    }
                    // Non-zeros beyond cut j: those in bands j+1.. .
                    let mut tail = 0;
                    for j in (0..cuts.len()).rev() {
                        tail += per_band[j + 1];
                        most[j] = most[j].max(tail);
                    }
                }
                most
            })
            .reduce(
                || vec![0; cuts.len()],
                |a, b| a.iter().zip(b).map(|(x, y)| (*x).max(y)).collect(),
            );
        cuts.iter()
            .zip(beyond)
            .map(|(&cut, k)| (cut, k))
            .min_by_key(|&(cut, k)| (cut + 2 * k, std::cmp::Reverse(cut)))
            .expect("the all-dense cut is always a candidate")
    }

    /// Writes one row (f32, original column order) in the stored layout.
    fn store_row(&self, src: &[f32], dst: &mut [i16]) {
        let (head, tail) = dst.split_at_mut(self.dense);
        for (d, &c) in head.iter_mut().zip(&self.order) {
            *d = quantize(src[c]);
        }
        let mut slots = tail.chunks_exact_mut(2);
        for (pos, &c) in self.order.iter().enumerate().skip(self.dense) {
            let v = quantize(src[c]);
            if v != 0 {
                let s = slots
                    .next()
                    .expect("pairs sized to the row with most non-zeros");
                s[0] = pos as u16 as i16;
                s[1] = v;
            }
        }
        for s in slots {
            s[0] = self.dim as u16 as i16;
            s[1] = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.stride).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// (dense columns, pairs) of a stored row.
    pub fn layout(&self) -> (usize, usize) {
        (self.dense, self.pairs)
    }

    /// Bytes of one stored row (the dense layout would take `2·dim`).
    pub fn row_bytes(&self) -> usize {
        2 * self.stride
    }

    /// Length of an expanded query.
    pub fn query_len(&self) -> usize {
        self.dim + 1
    }

    /// Stored row i (for prefetching; its layout is private).
    #[inline]
    pub fn row(&self, i: u32) -> &[i16] {
        let s = i as usize * self.stride;
        &self.data[s..s + self.stride]
    }

    /// Writes stored point i into `out` as a query: the full vector in the reordered column
    /// order, plus the zero slot.
    pub fn expand(&self, i: u32, out: &mut Vec<i16>) {
        let r = self.row(i);
        out.clear();
        out.extend_from_slice(&r[..self.dense]);
        out.resize(self.dim + 1, 0);
        for p in r[self.dense..].chunks_exact(2) {
            out[p[0] as u16 as usize] = p[1];
        }
        out[self.dim] = 0;
    }

    /// Point i as an owned query (see [`Quantized::expand`]).
    pub fn query(&self, i: u32) -> Vec<i16> {
        let mut q = Vec::with_capacity(self.query_len());
        self.expand(i, &mut q);
        q
    }

    /// Exact dot product of an expanded query and stored point j.
    #[inline]
    pub fn dot_to(&self, q: &[i16], j: u32) -> i32 {
        let r = self.row(j);
        let (head, tail) = r.split_at(self.dense);
        let mut s = qdot(&q[..self.dense], head);
        for p in tail.chunks_exact(2) {
            s = s.wrapping_add(q[p[0] as u16 as usize] as i32 * p[1] as i32);
        }
        s
    }

    /// Cosine distance between an expanded query and stored point j.
    #[inline]
    pub fn dist_to(&self, q: &[i16], j: u32) -> f32 {
        1.0 - self.dot_to(q, j) as f32 * (1.0 / (QSCALE * QSCALE))
    }

    /// Cosine distance between stored points i and j.
    pub fn dist(&self, i: u32, j: u32) -> f32 {
        self.dist_to(&self.query(i), j)
    }
}

/// Exact dot product of two i16 vectors (|sum| < 2^31 for quantised unit vectors).
#[inline]
pub fn qdot(a: &[i16], b: &[i16]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            return unsafe { qdot_avx2(a, b) };
        }
    }
    qdot_scalar(a, b)
}

#[inline(always)]
fn qdot_scalar(a: &[i16], b: &[i16]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |s, (&x, &y)| s.wrapping_add(x as i32 * y as i32))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn qdot_avx2(a: &[i16], b: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    // SAFETY: every load reads 16 i16 at offsets i..i+16 <= n of both slices.
    unsafe {
        while i + 32 <= n {
            let x0 = _mm256_loadu_si256(pa.add(i) as *const __m256i);
            let y0 = _mm256_loadu_si256(pb.add(i) as *const __m256i);
            let x1 = _mm256_loadu_si256(pa.add(i + 16) as *const __m256i);
            let y1 = _mm256_loadu_si256(pb.add(i + 16) as *const __m256i);
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(x0, y0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(x1, y1));
            i += 32;
        }
        if i + 16 <= n {
            let x0 = _mm256_loadu_si256(pa.add(i) as *const __m256i);
            let y0 = _mm256_loadu_si256(pb.add(i) as *const __m256i);
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(x0, y0));
            i += 16;
        }
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds 8 i32 = 256 bits.
    unsafe {
        _mm256_storeu_si256(
            lanes.as_mut_ptr() as *mut __m256i,
            _mm256_add_epi32(acc0, acc1),
        )
    };
    lanes
        .iter()
        .fold(0i32, |s, &x| s.wrapping_add(x))
        .wrapping_add(qdot_scalar(&a[i..n], &b[i..n]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn normalise(rows: &mut [f32], dim: usize) {
        for row in rows.chunks_exact_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }

    /// Rows like item vectors: `numeric` dims never zero, then one-hot blocks of `levels`
    /// (exactly one level set per block), plus one rare column set in a few rows.
    fn one_hot_rows(n: usize, numeric: usize, blocks: usize, levels: usize, seed: u64) -> Vec<f32> {
        let dim = numeric + blocks * levels + 1;
        let mut r = Rng::new(seed);
        let mut v = vec![0f32; n * dim];
        for (i, row) in v.chunks_exact_mut(dim).enumerate() {
            for x in &mut row[..numeric] {
                // Bounded away from 0, so these columns are never quantised to 0.
                *x = (r.normal() as f32).abs() + 0.1;
            }
            for b in 0..blocks {
                let level = (r.f64() * levels as f64) as usize % levels;
                row[numeric + b * levels + level] = 0.5 + r.f64() as f32;
            }
            if i % 97 == 0 {
                row[dim - 1] = 0.3;
            }
        }
        normalise(&mut v, dim);
        v
    }

    fn dense_dot(a: &[f32], b: &[f32]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| quantize(x) as i32 * quantize(y) as i32)
            .sum()
    }

    #[test]
    fn compact_rows_give_the_exact_dense_dot() {
        let (n, dim) = (600, 12 + 5 * 8 + 1);
        let v = one_hot_rows(n, 12, 5, 8, 3);
        let q = Quantized::new(&v, dim);
        // 12 dense columns; 5 one-hot levels plus the rare column in some rows.
        assert_eq!(q.layout(), (12, 6));
        assert_eq!(q.row_bytes(), 2 * (12 + 2 * 6));
        assert_eq!(q.len(), n);
        for i in (0..n as u32).step_by(7) {
            let query = q.query(i);
            for j in (0..n as u32).step_by(5) {
                let (a, b) = (&v[i as usize * dim..][..dim], &v[j as usize * dim..][..dim]);
                assert_eq!(q.dot_to(&query, j), dense_dot(a, b), "rows {i}, {j}");
            }
        }
        // A point with itself: distance 0 up to the quantisation.
        assert!(q.dist(3, 3).abs() < 1e-4);
    }

    #[test]
    fn quantize_rounds_like_f32_round() {
        let mut r = Rng::new(8);
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.5,
            0.5 / QSCALE,
            -0.5 / QSCALE,
            1e-9,
            f32::NAN,
        ];
        let random = (0..100_000).map(|_| (r.f64() * 2.0 - 1.0) as f32);
        for x in special.into_iter().chain(random) {
            let want = (x * QSCALE).round().clamp(-QSCALE, QSCALE) as i16;
            assert_eq!(quantize(x), want, "x = {x}");
        }
    }

    #[test]
    fn dense_data_keeps_the_dense_layout() {
        let (n, dim) = (200, 40);
        let mut r = Rng::new(5);
        let mut v: Vec<f32> = (0..n * dim).map(|_| r.normal() as f32).collect();
        normalise(&mut v, dim);
        let q = Quantized::new(&v, dim);
        assert_eq!(q.layout(), (dim, 0));
        assert_eq!(q.row_bytes(), 2 * dim);
        for (i, j) in [(0u32, 1u32), (5, 199), (77, 77)] {
            let (a, b) = (&v[i as usize * dim..][..dim], &v[j as usize * dim..][..dim]);
            assert_eq!(q.dot_to(&q.query(i), j), dense_dot(a, b));
        }
        assert!(Quantized::new(&[], dim).is_empty());
    }

    #[test]
    fn quantised_dot_is_exact_and_close_to_f32() {
        let dim = 337;
        let mut r = Rng::new(17);
        let mut v: Vec<f32> = (0..60 * dim).map(|_| r.normal() as f32).collect();
        normalise(&mut v, dim);
        let q: Vec<i16> = v.iter().map(|&x| quantize(x)).collect();
        for i in 0..59 {
            let (a, b) = (&q[i * dim..][..dim], &q[(i + 1) * dim..][..dim]);
            let want: i64 = a.iter().zip(b).map(|(&x, &y)| x as i64 * y as i64).sum();
            assert_eq!(qdot(a, b) as i64, want);
            assert_eq!(qdot_scalar(a, b) as i64, want);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // Every length, to cover the 32-, 16- and scalar tails.
                for len in [0, 1, 15, 16, 17, 31, 32, 33, 48, 200] {
                    let w: i64 = a[..len]
                        .iter()
                        .zip(&b[..len])
                        .map(|(&x, &y)| x as i64 * y as i64)
                        .sum();
                    assert_eq!(unsafe { qdot_avx2(&a[..len], &b[..len]) } as i64, w);
                }
            }
            let exact: f32 = v[i * dim..][..dim]
                .iter()
                .zip(&v[(i + 1) * dim..][..dim])
                .map(|(x, y)| x * y)
                .sum();
            let qd = 1.0 - want as f32 / (QSCALE * QSCALE);
            assert!((qd - (1.0 - exact)).abs() < 1e-4);
        }
    }
}
