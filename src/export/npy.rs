//! `vectors.npy`: the item vectors in NumPy's file format, for Stage 3 and for people.

use std::path::Path;

use ndarray::ArrayView2;

use crate::error::Result;
use crate::fsutil::{Sink, atomic_write_large_with};
use crate::index::Vectors;

/// Writes an (n × d) f32 matrix as a NumPy `.npy` file (version 1.0, little-endian, C order).
pub fn write_npy(path: &Path, m: ArrayView2<'_, f32>) -> Result<()> {
    write_npy_with(path, m.dim(), |w| write_f32_le(w, m))
}

/// Writes the rows of `v` as a NumPy `.npy` file, a block of rows at a time.
pub fn write_npy_rows(path: &Path, v: &Vectors) -> Result<()> {
    write_npy_with(path, (v.len(), v.dim()), |w| write_rows_le(w, v))
}

/// The header of an (n × d) f32 `.npy` file, then `body`.
fn write_npy_with(
    path: &Path,
    (n, d): (usize, usize),
    body: impl FnOnce(&mut Sink) -> std::io::Result<()>,
) -> Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    atomic_write_large_with(path, |w| {
        use std::io::Write;
        w.write_all(b"\x93NUMPY\x01\x00")?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        body(w)
    })
}

/// The values of `m` in C order as little-endian float32 bytes (the body of `vectors.npy`, and
/// the projector's raw tensor).
pub fn write_f32_le(w: &mut impl std::io::Write, m: ArrayView2<'_, f32>) -> std::io::Result<()> {
    match m.as_slice() {
        Some(s) => write_slice_le(w, s),
        None => {
            for x in m.iter() {
                w.write_all(&x.to_le_bytes())?;
            }
            Ok(())
        }
    }
}

/// [`write_f32_le`] of every row of `v`, a block of rows at a time.
pub fn write_rows_le(w: &mut impl std::io::Write, v: &Vectors) -> std::io::Result<()> {
    v.for_each_block(4096, |_, rows| write_slice_le(w, rows))
}

fn write_slice_le(w: &mut impl std::io::Write, s: &[f32]) -> std::io::Result<()> {
    for chunk in s.chunks(1 << 16) {
        if cfg!(target_endian = "little") {
            // SAFETY: on a little-endian target an f32's memory is its little-endian bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    chunk.as_ptr().cast::<u8>(),
                    std::mem::size_of_val(chunk),
                )
            };
            w.write_all(bytes)?;
        } else {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
    }
    Ok(())
}
