//! The vectors as construction compares them: i16 in a compact row layout, with exact integer
//! dot products.
//!
//! * **Exact.** Each unit-vector component becomes `round(x·32767)` and a dot product is summed
//!   in i32. Integer sums are exact in any order, so a distance does not depend on the CPU, the
//!   SIMD width or the layout the rows are stored in (see the HNSW module docs for why
//!   construction uses them).
//! * **Compact.** Construction is bound by loading vectors, not by arithmetic: profiling showed
//!   the search loop waiting for vector lines. Item vectors are mostly one-hot blocks: every
//!   row has the same few numeric and target dims that are never zero, and one level of each
//!   one-hot feature. So the
//!   columns are reordered by how often they are non-zero, and a stored row is the leading
//!   ("dense") columns as i16, then the values of the row's non-zeros among the other columns
//!   (i16) and their positions (one byte each when the other columns fit in a byte, else two),
//!   padded with value-0 entries.
//! * **Whole cache lines.** Rows start on 64-byte boundaries and take whole lines (a power of
//!   two of bytes below 64), so a row costs exactly its lines; unaligned, a 280-byte row touched
//!   five or six. The dense prefix is chosen from the data among all cuts, fewest lines first,
//!   then fewest bytes, then more dense columns; dense data keeps the plain layout. Up to 0.1 %
//!   of the rows may keep their last non-zeros in a side list (see
//!   [`Quantized::choose_split`]).
//! * **Queries are expanded.** The point a search starts from is written out as a full vector in
//!   the reordered column order ([`Quantized::expand`]), so a distance is a SIMD dot product
//!   over the dense part plus one multiply-add per entry. Padding entries point at an extra
//!   slot of the query that is always 0.

use super::vectors::Vectors;
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

/// A bound on how far the quantised dot product of two unit vectors of `dim` components (as
/// [`Quantized::dist_to`] scales it) is from their f32 dot product ([`super::hnsw::dot`]): each
/// quantised component is off by at most half a step, so by Cauchy–Schwarz each cross term is
/// at most √dim/2 steps and the product of the errors dim/4 steps²; `dim·ε` covers the f32 dot's
/// own rounding and the final scaling. A search that compares quantised vectors can rule a
/// candidate out on this bound without reading its f32 vector.
pub fn dot_error_bound(dim: usize) -> f32 {
    let d = dim as f32;
    d.sqrt() / QSCALE + d / (4.0 * QSCALE * QSCALE) + 2.0 * d * f32::EPSILON
}

/// One cache line of stored rows.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// The vectors as i16, in the compact layout (see the module docs).
pub struct Quantized {
    dim: usize,
    /// Leading columns of the reordered order that are stored densely.
    dense: usize,
    /// Entries (value, position) per row for the other columns (non-zeros, then padding).
    pairs: usize,
    /// Positions take two bytes (more than 255 columns beyond `dense`) instead of one.
    wide: bool,
    /// Bytes per stored row: whole lines, or a power of two below 64.
    stride: usize,
    /// `order[k]`: the original column at position k of the reordered order.
    order: Vec<usize>,
    data: Vec<Line>,
    /// Rows with more non-zeros beyond `dense` than `pairs`: a bit per row (empty if none).
    extra_bits: Vec<u64>,
    /// Their remaining (offset, value) entries, by row: `extra[extra_at[r]..extra_at[r + 1]]`
    /// for the r-th such row (`extra_rows[r]`).
    extra_rows: Vec<u32>,
    extra_at: Vec<usize>,
    extra: Vec<(u16, i16)>,
}

/// (offset from `dense`, value) entries of one row.
type Entries = Vec<(u16, i16)>;

/// The most rows, as a share of all, whose non-zeros may exceed a row's entries (the rest go to
/// a side list, see [`Quantized::choose_split`]).
const MAX_OVERFLOW_SHARE: f64 = 0.001;

/// The stored row layout for a dense prefix of `cut` columns and `k` entries: (bytes used,
/// stride, wide positions).
/// Folds `f` over the rows of `data`, a block of `rows_per_block` rows at a time on all cores
/// (mapped rows released after their block), and merges the blocks' results with `merge`: the
/// result must not depend on how blocks are grouped (counts do not).
fn fold_blocks<T: Send>(
    data: &Vectors,
    rows_per_block: usize,
    init: impl Fn() -> T + Sync + Send,
    f: impl Fn(T, &[f32]) -> T + Sync + Send,
    merge: impl Fn(T, T) -> T + Sync + Send,
) -> T {
    let n = data.len();
    (0..n.div_ceil(rows_per_block))
        .into_par_iter()
        .map(|b| {
            let rows = b * rows_per_block..((b + 1) * rows_per_block).min(n);
            let mut buf = Vec::new();
            let acc = f(init(), data.block(rows.clone(), &mut buf));
            data.release(rows);
            acc
        })
        .reduce(&init, &merge)
}

fn layout_for(dim: usize, cut: usize, k: usize) -> (usize, usize, bool) {
    // Positions are offsets from `cut`; the zero slot is offset `dim - cut`.
    let wide = dim - cut > u8::MAX as usize;
    let bytes = 2 * cut + k * (2 + if wide { 2 } else { 1 });
    let stride = if bytes <= 64 {
        bytes.next_power_of_two().max(2)
    } else {
        bytes.div_ceil(64) * 64
    };
    (bytes, stride, wide)
}

/// `bytes` (an even offset into a row, which starts on a line) as i16.
#[inline(always)]
fn as_i16(bytes: &[u8]) -> &[i16] {
    debug_assert!((bytes.as_ptr() as usize).is_multiple_of(2) && bytes.len().is_multiple_of(2));
    // SAFETY: rows start on 64-byte lines and every i16 field sits at an even offset, so the
    // pointer is aligned for i16; the length is halved; any bit pattern is a valid i16.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i16>(), bytes.len() / 2) }
}

impl Quantized {
    /// Quantises `data` (unit vectors) and picks the layout. Reads every row three times, a
    /// block at a time on all cores (mapped rows are released after each block).
    pub fn new(data: &Vectors) -> Self {
        let dim = data.dim();
        let n = data.len();
        // Non-zero rows per column.
        let nonzero: Vec<usize> = fold_blocks(
            data,
            4096,
            || vec![0usize; dim],
            |mut c, rows| {
                for row in rows.chunks_exact(dim) {
                    for (k, &x) in row.iter().enumerate() {
                        c[k] += (quantize(x) != 0) as usize;
                    }
                }
                c
            },
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| nonzero[b].cmp(&nonzero[a]).then(a.cmp(&b)));
        // Two-byte positions must also hold the zero slot.
        let (dense, pairs) = if n == 0 || dim >= u16::MAX as usize {
            (dim, 0)
        } else {
            Self::choose_split(data, &order)
        };
        let (_, stride, wide) = layout_for(dim, dense, pairs);
        let mut q = Quantized {
            dim,
            dense,
            pairs,
            wide,
            stride,
            order,
            data: Vec::new(),
            extra_bits: Vec::new(),
            extra_rows: Vec::new(),
            extra_at: vec![0],
            extra: Vec::new(),
        };
        let len = (n * stride).div_ceil(64);
        let mut lines = Vec::with_capacity(len);
        super::advise_huge_pages(&lines);
        lines.resize(len, Line([0; 64]));
        let this = &q;
        // Whole blocks of 64 rows: a block is a whole number of lines for any stride.
        let rows_per_block = 64;
        let overflow: Vec<Vec<(u32, Entries)>> = lines
            .par_chunks_mut(rows_per_block * stride / 64)
            .enumerate()
            .map(|(b, dst)| {
                // SAFETY: a Line is 64 plain bytes; this is the same memory as bytes.
                let dst: &mut [u8] = unsafe {
                    std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len() * 64)
                };
                let first = b * rows_per_block;
                let rows = first..(first + rows_per_block).min(n);
                let mut buf = Vec::new();
                let src = data.block(rows.clone(), &mut buf);
                let mut more = Vec::new();
                for (k, (d, s)) in dst
                    .chunks_exact_mut(stride)
                    .zip(src.chunks_exact(dim.max(1)))
                    .enumerate()
                {
                    let rest = this.store_row(s, d);
                    if !rest.is_empty() {
                        more.push(((first + k) as u32, rest));
                    }
                }
                data.release(rows);
                more
            })
            .collect();
        q.data = lines;
        for (row, rest) in overflow.into_iter().flatten() {
            if q.extra_bits.is_empty() {
                q.extra_bits = vec![0; n.div_ceil(64)];
            }
            q.extra_bits[row as usize >> 6] |= 1 << (row & 63);
            q.extra_rows.push(row);
            q.extra.extend(rest);
            q.extra_at.push(q.extra.len());
        }
        q
    }

    /// The dense prefix and entry count whose rows take the fewest cache lines, over every cut
    /// of the reordered columns. A row's entries need not hold every non-zero of every row:
    /// up to [`MAX_OVERFLOW_SHARE`] of the rows may keep their last non-zeros in a side list,
    /// read only for them. (At 1M items one row in 50,000 has 24 non-zeros past the best cut,
    /// most have 16 to 19: sizing every row for the largest took 5 lines a row instead of 4.)
    /// Ties: fewer rows with a side list, then fewer bytes, then more dense columns.
    fn choose_split(data: &Vectors, order: &[usize]) -> (usize, usize) {
        let (n, dim) = (data.len(), data.dim());
        let mut pos_of = vec![0usize; dim];
        for (pos, &c) in order.iter().enumerate() {
            pos_of[c] = pos;
        }
        // counts[j·(dim+1) + t]: rows with t non-zeros at positions j.. of the reordered order.
        let width = dim + 1;
        let counts: Vec<u32> = fold_blocks(
            data,
            4096,
            || vec![0u32; width * width],
            |mut counts, rows| {
                let mut set = vec![0usize; dim];
                for row in rows.chunks_exact(dim) {
                    set.iter_mut().for_each(|x| *x = 0);
                    for (c, &x) in row.iter().enumerate() {
                        set[pos_of[c]] = (quantize(x) != 0) as usize;
                    }
                    let mut tail = 0;
                    counts[dim * width] += 1;
                    for j in (0..dim).rev() {
                        tail += set[j];
                        counts[j * width + tail] += 1;
                    }
                }
                counts
            },
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
        let allowed = (n as f64 * MAX_OVERFLOW_SHARE) as usize;
        (0..=dim)
            .map(|cut| {
                let hist = &counts[cut * width..(cut + 1) * width];
                // The fewest entries with at most `allowed` rows beyond them.
                let mut over = 0usize;
                let mut k = dim;
                while k > 0 && over + hist[k] as usize <= allowed {
                    over += hist[k] as usize;
                    k -= 1;
                }
                // (cut, entries, rows with more)
                (cut, k, over)
            })
            .min_by_key(|&(cut, k, over)| {
                let (bytes, stride, _) = layout_for(dim, cut, k);
                (stride.div_ceil(64), over, bytes, std::cmp::Reverse(cut))
            })
            .map(|(cut, k, _)| (cut, k))
            .expect("the all-dense cut is always a candidate")
    }

    /// Byte offsets of a row's entry values and positions.
    fn offsets(&self) -> (usize, usize) {
        let values = 2 * self.dense;
        (values, values + 2 * self.pairs)
    }

    /// Writes one row (f32, original column order) in the stored layout (`dst`: `stride` bytes);
    /// returns the (offset, value) entries that did not fit, for the side list.
    fn store_row(&self, src: &[f32], dst: &mut [u8]) -> Entries {
        let (values, positions) = self.offsets();
        for (k, &c) in self.order[..self.dense].iter().enumerate() {
            dst[2 * k..2 * k + 2].copy_from_slice(&quantize(src[c]).to_ne_bytes());
        }
        let zero_slot = self.dim - self.dense;
        let mut m = 0;
        let mut rest = Vec::new();
        let mut put = |m: usize, offset: usize, v: i16| {
            dst[values + 2 * m..values + 2 * m + 2].copy_from_slice(&v.to_ne_bytes());
            if self.wide {
                let p = positions + 2 * m;
                dst[p..p + 2].copy_from_slice(&(offset as u16).to_ne_bytes());
            } else {
                dst[positions + m] = offset as u8;
            }
        };
        for (pos, &c) in self.order.iter().enumerate().skip(self.dense) {
            let v = quantize(src[c]);
            if v != 0 {
                if m < self.pairs {
                    put(m, pos - self.dense, v);
                    m += 1;
                } else {
                    rest.push(((pos - self.dense) as u16, v));
                }
            }
        }
        for m in m..self.pairs {
            put(m, zero_slot, 0);
        }
        rest
    }

    /// Whether row j has entries in the side list.
    #[inline(always)]
    fn has_extra(&self, j: u32) -> bool {
        !self.extra_bits.is_empty() && self.extra_bits[j as usize >> 6] >> (j & 63) & 1 != 0
    }

    /// Row j's entries in the side list.
    #[cold]
    fn extra_of(&self, j: u32) -> &[(u16, i16)] {
        let r = self
            .extra_rows
            .binary_search(&j)
            .expect("a row marked in extra_bits is listed");
        &self.extra[self.extra_at[r]..self.extra_at[r + 1]]
    }

    /// Rows whose last non-zeros are in the side list.
    pub fn overflow_rows(&self) -> usize {
        self.extra_rows.len()
    }

    pub fn len(&self) -> usize {
        (self.data.len() * 64).checked_div(self.stride).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// (dense columns, entries) of a stored row.
    pub fn layout(&self) -> (usize, usize) {
        (self.dense, self.pairs)
    }

    /// Bytes of one stored row, padding included (the dense layout would take `2·dim`).
    pub fn row_bytes(&self) -> usize {
        self.stride
    }

    /// Length of an expanded query.
    pub fn query_len(&self) -> usize {
        self.dim + 1
    }

    /// Stored row i, `stride` bytes from the start of a line (for prefetching; its layout is
    /// private).
    #[inline]
    pub fn row(&self, i: u32) -> &[u8] {
        let s = i as usize * self.stride;
        // SAFETY: a Line is 64 plain bytes, so the lines are `64·len` initialised bytes.
        let all: &[u8] = unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().cast::<u8>(), self.data.len() * 64)
        };
        &all[s..s + self.stride]
    }

    /// Writes stored point i into `out` as a query: the full vector in the reordered column
    /// order, plus the zero slot.
    pub fn expand(&self, i: u32, out: &mut Vec<i16>) {
        let r = self.row(i);
        let (values, positions) = self.offsets();
        out.clear();
        out.extend_from_slice(as_i16(&r[..values]));
        out.resize(self.dim + 1, 0);
        let vals = as_i16(&r[values..positions]);
        let tail = &mut out[self.dense..];
        for (m, &v) in vals.iter().enumerate() {
            tail[self.position(r, positions, m)] = v;
        }
        if self.has_extra(i) {
            for &(p, v) in self.extra_of(i) {
                tail[p as usize] = v;
            }
        }
        out[self.dim] = 0;
    }

    /// Offset from `dense` of entry m of row `r`.
    #[inline(always)]
    fn position(&self, r: &[u8], positions: usize, m: usize) -> usize {
        if self.wide {
            u16::from_ne_bytes([r[positions + 2 * m], r[positions + 2 * m + 1]]) as usize
        } else {
            r[positions + m] as usize
        }
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
        let (values, positions) = self.offsets();
        let mut s = qdot(&q[..self.dense], as_i16(&r[..values]));
        let vals = as_i16(&r[values..positions]);
        let qt = &q[self.dense..];
        if self.wide {
            for (m, &v) in vals.iter().enumerate() {
                s = s.wrapping_add(qt[self.position(r, positions, m)] as i32 * v as i32);
            }
        } else {
            let pos = &r[positions..positions + self.pairs];
            for (&p, &v) in pos.iter().zip(vals) {
                s = s.wrapping_add(qt[p as usize] as i32 * v as i32);
            }
        }
        if self.has_extra(j) {
            for &(p, v) in self.extra_of(j) {
                s = s.wrapping_add(qt[p as usize] as i32 * v as i32);
            }
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
        let q = Quantized::new(&Vectors::owned(v.clone(), dim));
        // 12 dense columns; 5 one-hot levels plus the rare column in some rows: 24 + 6·3 bytes,
        // one line.
        assert_eq!(q.layout(), (12, 6));
        assert_eq!(q.row_bytes(), 64);
        assert_eq!(q.len(), n);
        assert!((0..n as u32).all(|i| (q.row(i).as_ptr() as usize).is_multiple_of(64)));
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
    fn rows_take_whole_lines_and_wide_positions_work() {
        // 300 one-hot columns past 4 numeric ones: positions need two bytes.
        let (n, dim) = (300, 4 + 3 * 100 + 1);
        let v = one_hot_rows(n, 4, 3, 100, 11);
        let q = Quantized::new(&Vectors::owned(v.clone(), dim));
        let (dense, pairs) = q.layout();
        assert!(dim - dense > 255, "layout {dense} + {pairs}");
        assert!(q.wide);
        // 4 dense i16 and 4 entries of 2 + 2 bytes: 24 bytes, stored in 32.
        assert_eq!((dense, pairs, q.row_bytes()), (4, 4, 32));
        for i in 0..n as u32 {
            let start = q.row(i).as_ptr() as usize % 64;
            assert_eq!(start % 32, 0);
            assert!(start + q.row(i).len() <= 64, "row {i} straddles a line");
        }
        for i in (0..n as u32).step_by(11) {
            let query = q.query(i);
            for j in (0..n as u32).step_by(3) {
                let (a, b) = (&v[i as usize * dim..][..dim], &v[j as usize * dim..][..dim]);
                assert_eq!(q.dot_to(&query, j), dense_dot(a, b), "rows {i}, {j}");
            }
        }
        // Short rows: a power of two of bytes, so no row straddles a line.
        let (n, dim) = (100, 6);
        let mut r = Rng::new(2);
        let mut v: Vec<f32> = (0..n * dim).map(|_| r.normal() as f32).collect();
        normalise(&mut v, dim);
        let q = Quantized::new(&Vectors::owned(v.clone(), dim));
        assert_eq!((q.layout(), q.row_bytes(), q.len()), ((6, 0), 16, n));
        for i in 0..n as u32 {
            let a = &v[i as usize * dim..][..dim];
            assert_eq!(q.dot_to(&q.query(i), i), dense_dot(a, a));
        }
    }

    #[test]
    fn a_few_fuller_rows_go_to_the_side_list() {
        // 3,000 rows of 12 numeric columns and 5 one-hot blocks; two rows also have 10 rare
        // columns set. Sizing every row for those two would take 16 entries instead of 5.
        let (n, base) = (3000, 12 + 5 * 8 + 1);
        let dim = base + 10;
        let v0 = one_hot_rows(n, 12, 5, 8, 21);
        let mut v = vec![0f32; n * dim];
        for (i, row) in v.chunks_exact_mut(dim).enumerate() {
            row[..base].copy_from_slice(&v0[i * base..(i + 1) * base]);
            if i == 5 || i == 1700 {
                row[base..].iter_mut().for_each(|x| *x = 0.2);
            }
        }
        normalise(&mut v, dim);
        let q = Quantized::new(&Vectors::owned(v.clone(), dim));
        let (dense, pairs) = q.layout();
        assert_eq!(q.overflow_rows(), 2, "layout {dense} + {pairs}");
        assert!(pairs < 16, "layout {dense} + {pairs}");
        for i in [0u32, 5, 6, 1700, 2999] {
            let query = q.query(i);
            let a = &v[i as usize * dim..][..dim];
            let want: Vec<i16> = q.order.iter().map(|&c| quantize(a[c])).collect();
            assert_eq!(&query[..dim], &want[..], "row {i} expanded");
            for j in [0u32, 5, 77, 1700, 2500] {
                let b = &v[j as usize * dim..][..dim];
                assert_eq!(q.dot_to(&query, j), dense_dot(a, b), "rows {i}, {j}");
            }
        }
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
        let q = Quantized::new(&Vectors::owned(v.clone(), dim));
        assert_eq!(q.layout(), (dim, 0));
        assert_eq!(q.row_bytes(), 128);
        for (i, j) in [(0u32, 1u32), (5, 199), (77, 77)] {
            let (a, b) = (&v[i as usize * dim..][..dim], &v[j as usize * dim..][..dim]);
            assert_eq!(q.dot_to(&q.query(i), j), dense_dot(a, b));
        }
        assert!(Quantized::new(&Vectors::owned(Vec::new(), dim)).is_empty());
    }

    /// The bound holds for the stored layout's distances against the f32 dot the index uses,
    /// on random dense rows, on one-hot rows and on rows built so that every component rounds by
    /// almost half a step in the same direction (the worst case the bound is derived from).
    #[test]
    fn dot_error_bound_holds() {
        let mut sets: Vec<(usize, Vec<f32>)> = Vec::new();
        let dim = 333;
        let mut r = Rng::new(5);
        let mut dense: Vec<f32> = (0..200 * dim).map(|_| r.normal() as f32).collect();
        normalise(&mut dense, dim);
        sets.push((dim, dense));
        sets.push((3 + 6 * 9 + 1, one_hot_rows(300, 3, 6, 9, 7)));
        for d in [16, 333, 1000] {
            // Components k/S + 0.49/S apart from normalisation: all round down by ~0.49 steps.
            let mut rows = Vec::new();
            for i in 0..40 {
                let row: Vec<f32> = (0..d)
                    .map(|k| ((1000 + 37 * i + (k % 13)) as f32 + 0.49) / QSCALE)
                    .collect();
                rows.extend(row);
            }
            normalise(&mut rows, d);
            sets.push((d, rows));
        }
        for (dim, rows) in sets {
            let n = rows.len() / dim;
            let bound = dot_error_bound(dim);
            let q = Quantized::new(&Vectors::owned(rows.clone(), dim));
            let mut worst = 0f32;
            for i in 0..n {
                let qi = q.query(i as u32);
                for j in 0..n {
                    let exact = 1.0
                        - super::super::hnsw::dot(&rows[i * dim..][..dim], &rows[j * dim..][..dim]);
                    let off = (q.dist_to(&qi, j as u32) - exact).abs();
                    worst = worst.max(off);
                }
            }
            assert!(worst <= bound, "dim {dim}: off by {worst}, bound {bound}");
        }
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
