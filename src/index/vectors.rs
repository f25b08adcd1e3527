//! The index's f32 vectors: held in memory (an index just built, or parsed from bytes), or read
//! in place from the hnswlib file a model's index was loaded from, with the rows appended since
//! held in memory behind them.
//!
//! Why mapped: `update` and `recommend` read a model's vectors at a few places only (the exact
//! re-ranking of a few candidates per query, the searches of `recommend`, and one sequential
//! pass that rewrites the files), yet parsing them into the heap held every one, the largest
//! thing a loaded model holds, for the whole process. Mapped, they stay in the page cache, which
//! the kernel shares and may drop; a sequential pass hands the pages it has read back as it goes
//! ([`Vectors::block`] then [`Vectors::release`]), so only what random access touches stays
//! resident. Results do not depend on where a row lives: every row is the same f32s either way.
//!
//! A few scattered rows are read with positioned reads instead ([`Vectors::read_row`]): the
//! kernel maps a touched page's cached neighbours along with it (fault-around, whatever
//! `madvise` says), so each scattered row read through the mapping would keep many pages of
//! other rows resident (BENCHMARKS.md, seventh session).
//!
//! A mapped file must not be truncated while it is mapped (the process would be killed on
//! access). Models are replaced by renaming a new directory over the old one, which leaves the
//! mapped file intact; `update` holds the model's lock.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

/// The largest folio the page cache maps at once (a PMD-sized huge page on x86-64).
const FOLIO_BYTES: usize = 2 << 20;

/// `len() × dim()` f32 rows.
#[derive(Clone)]
pub struct Vectors {
    dim: usize,
    mapped: Option<Mapped>,
    /// The rows after the mapped ones (all rows when nothing is mapped), row-major.
    tail: Vec<f32>,
}

/// Rows read in place: row `i` is the `dim` little-endian f32s at `base + i·stride` of `map`.
#[derive(Clone)]
struct Mapped {
    file: Arc<File>,
    map: Arc<Mmap>,
    base: usize,
    stride: usize,
    n: usize,
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vectors")
            .field("dim", &self.dim)
            .field("mapped_rows", &self.mapped.as_ref().map_or(0, |m| m.n))
            .field("held_rows", &self.tail.len().checked_div(self.dim))
            .finish()
    }
}

impl Vectors {
    /// Rows held in memory (`data`: row-major, a multiple of `dim` long).
    pub fn owned(data: Vec<f32>, dim: usize) -> Self {
        Vectors {
            dim,
            mapped: None,
            tail: data,
        }
    }

    /// The `n` rows of `dim` f32s at `base + i·stride` of `file`, mapped read-only. The caller
    /// has checked that the file holds them. Where a mapping cannot be read in place (a
    /// big-endian target, a misaligned layout) the rows are read into memory instead.
    pub fn map(
        file: &File,
        base: usize,
        stride: usize,
        n: usize,
        dim: usize,
    ) -> std::io::Result<Self> {
        // SAFETY: the mapping is read-only and trainer never writes a file it has mapped (models
        // are written to a staging directory and renamed into place); see the module docs.
        let map = unsafe { Mmap::map(file)? };
        let fits = n == 0 || base + (n - 1) * stride + 4 * dim <= map.len();
        if !fits {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than its rows",
            ));
        }
        // Random access: do not read ahead around every touched row.
        let _ = map.advise(memmap2::Advice::Random);
        let in_place = cfg!(target_endian = "little")
            && (map.as_ptr() as usize + base).is_multiple_of(4)
            && stride.is_multiple_of(4);
        let mapped = Mapped {
            file: Arc::new(file.try_clone()?),
            map: Arc::new(map),
            base,
            stride,
            n,
        };
        if in_place {
            return Ok(Vectors {
                dim,
                mapped: Some(mapped),
                tail: Vec::new(),
            });
        }
        let mut data = Vec::with_capacity(n * dim);
        for i in 0..n {
            let at = base + i * stride;
            data.extend(
                mapped.map[at..at + 4 * dim]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            );
        }
        Ok(Vectors::owned(data, dim))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows read in place from a file (the rest are held).
    pub fn mapped_rows(&self) -> usize {
        self.mapped.as_ref().map_or(0, |m| m.n)
    }

    pub fn len(&self) -> usize {
        self.mapped_rows() + self.tail.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        if let Some(m) = &self.mapped {
            if i < m.n {
                let at = m.base + i * m.stride;
                let bytes = &m.map[at..at + 4 * self.dim];
                // SAFETY: `map` built the in-place layout only on little-endian targets with
                // `base + i·stride` 4-byte aligned, and checked the rows lie inside the mapping;
                // every bit pattern is an f32.
                return unsafe {
                    std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.dim)
                };
            }
            let s = (i - m.n) * self.dim;
            return &self.tail[s..s + self.dim];
        }
        let s = i * self.dim;
        &self.tail[s..s + self.dim]
    }

    /// Row `i`: borrowed where it is held, else read from the file into `buf` with a positioned
    /// read (not through the mapping; see the module docs). The same f32s as [`Vectors::row`].
    pub fn read_row<'a>(&'a self, i: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        #[cfg(unix)]
        if let Some(m) = self.mapped.as_ref().filter(|m| i < m.n) {
            use std::os::unix::fs::FileExt;
            let mut bytes = [0u8; 4096];
            let want = 4 * self.dim;
            buf.clear();
            let mut done = 0;
            while done < want {
                let take = (want - done).min(bytes.len());
                let at = (m.base + i * m.stride + done) as u64;
                if m.file.read_exact_at(&mut bytes[..take], at).is_err() {
                    // The file was checked to hold every row when it was mapped; read it there.
                    buf.clear();
                    buf.extend_from_slice(self.row(i));
                    return buf;
                }
                buf.extend(
                    bytes[..take]
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
                );
                done += take;
            }
            return buf;
        }
        self.row(i)
    }

    /// All rows as one slice, when they are all held in memory.
    pub fn as_slice(&self) -> Option<&[f32]> {
        self.mapped.is_none().then_some(&self.tail[..])
    }

    /// Every row, copied into one row-major vector.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut all = Vec::with_capacity(self.len() * self.dim);
        for i in 0..self.len() {
            all.extend_from_slice(self.row(i));
        }
        all
    }

    /// Appends rows (row-major, a multiple of `dim` long) after the existing ones.
    pub fn extend_from_slice(&mut self, rows: &[f32]) {
        self.tail.extend_from_slice(rows);
    }

    /// Rows `range` as one row-major slice: borrowed where they are held, else copied into
    /// `buf`. A sequential pass calls [`Vectors::release`] after each block.
    pub fn block<'a>(&'a self, range: Range<usize>, buf: &'a mut Vec<f32>) -> &'a [f32] {
        let held_from = self.mapped_rows();
        if range.start >= held_from {
            let (a, b) = (range.start - held_from, range.end - held_from);
            return &self.tail[a * self.dim..b * self.dim];
        }
        buf.clear();
        for i in range {
            buf.extend_from_slice(self.row(i));
        }
        buf
    }

    /// Hands the pages of mapped rows `range` back to the page cache (they are read again from
    /// it if touched later), so that a pass over every row does not leave them all resident.
    /// Held rows are unaffected.
    ///
    /// The range is widened by [`FOLIO_BYTES`] on both sides: a page fault maps the whole
    /// cached folio the page is in (a freshly written file is cached in large folios), which can
    /// reach into rows an earlier block already released; releasing only its own rows, each
    /// block would leave part of its neighbours' folios mapped, and a pass right after training
    /// kept hundreds of MiB of the file resident. Releasing rows another thread is reading only
    /// makes it read them from the page cache again.
    pub fn release(&self, range: Range<usize>) {
        let Some(m) = &self.mapped else { return };
        let end = range.end.min(m.n);
        if range.start >= end {
            return;
        }
        let from = (m.base + range.start * m.stride).saturating_sub(FOLIO_BYTES);
        let to = (m.base + end * m.stride + FOLIO_BYTES).min(m.map.len());
        let len = to - from;
        // SAFETY: the mapping is read-only and private to this process's view of the file;
        // dropping its pages only makes the next access read them from the file again.
        let _ = unsafe {
            m.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, from, len)
        };
    }

    /// Calls `f(first_row, rows)` on consecutive blocks of at most `rows_per_block` rows, in
    /// order, releasing each mapped block after it.
    pub fn for_each_block<E>(
        &self,
        rows_per_block: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let n = self.len();
        let mut buf = Vec::new();
        let mut a = 0;
        while a < n {
            let b = (a + rows_per_block.max(1)).min(n);
            f(a, self.block(a..b, &mut buf))?;
            self.release(a..b);
            a = b;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file with a 12-byte header, then rows of 3 f32s each followed by 8 bytes of padding.
    fn strided_file(rows: &[[f32; 3]]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[7u8; 12]).unwrap();
        for r in rows {
            for x in r {
                f.write_all(&x.to_le_bytes()).unwrap();
            }
            f.write_all(&[9u8; 8]).unwrap();
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn mapped_rows_read_as_held_rows_and_appended_rows_follow() {
        let rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-0.5, 0.0, 7.25]];
        let f = strided_file(&rows);
        let mut v = Vectors::map(f.as_file(), 12, 20, 3, 3).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.mapped_rows(), 3);
        assert!(v.as_slice().is_none());
        v.extend_from_slice(&[8.0, 9.0, 10.0]);
        let held = Vectors::owned(
            rows.concat().into_iter().chain([8.0, 9.0, 10.0]).collect(),
            3,
        );
        assert_eq!(v.len(), 4);
        for i in 0..4 {
            assert_eq!(v.row(i), held.row(i), "row {i}");
        }
        let mut one = Vec::new();
        for i in 0..4 {
            assert_eq!(v.read_row(i, &mut one), held.row(i), "row {i} read");
        }
        // Blocks across the mapped and held parts, and after a release.
        let mut buf = Vec::new();
        assert_eq!(v.block(1..4, &mut buf), &held.as_slice().unwrap()[3..12]);
        v.release(0..4);
        assert_eq!(v.row(2), &[-0.5, 0.0, 7.25]);
        let mut seen = Vec::new();
        v.for_each_block(3, |a, rows| {
            seen.push((a, rows.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (0, held.as_slice().unwrap()[..9].to_vec()));
        assert_eq!(seen[1], (3, vec![8.0, 9.0, 10.0]));
    }

    #[test]
    fn a_file_shorter_than_its_rows_is_an_error() {
        let f = strided_file(&[[1.0, 2.0, 3.0]]);
        assert!(Vectors::map(f.as_file(), 12, 20, 2, 3).is_err());
    }

    #[test]
    fn a_misaligned_layout_is_read_into_memory() {
        let f = strided_file(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        // Rows 2 bytes off 4-byte alignment cannot be read in place: they are copied (the bytes
        // then make other floats, but the same ones as reading them by hand).
        let v = Vectors::map(f.as_file(), 14, 20, 2, 2).unwrap();
        assert_eq!(v.mapped_rows(), 0);
        assert_eq!(v.len(), 2);
        let bytes = std::fs::read(f.path()).unwrap();
        let by_hand = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(v.row(1), &[by_hand(34), by_hand(38)]);
    }
}
