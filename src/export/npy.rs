//! `vectors.npy`: the item vectors in NumPy's file format, for Stage 3 and for people.

use std::path::Path;

use ndarray::ArrayView2;

use crate::error::Result;
use crate::fsutil::atomic_write_with;

/// Writes an (n × d) f32 matrix as a NumPy `.npy` file (version 1.0, little-endian, C order).
pub fn write_npy(path: &Path, m: ArrayView2<'_, f32>) -> Result<()> {
    let (n, d) = m.dim();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    atomic_write_with(path, |w| {
        use std::io::Write;
        w.write_all(b"\x93NUMPY\x01\x00")?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        write_f32_le(w, m)
    })
}

/// The values of `m` in C order as little-endian float32 bytes (the body of `vectors.npy`, and
/// the projector's raw tensor).
pub fn write_f32_le(w: &mut impl std::io::Write, m: ArrayView2<'_, f32>) -> std::io::Result<()> {
    match m.as_slice() {
        // Standard layout: the f32s are already little-endian in memory on every platform we
        // build for; write them in large blocks.
        Some(s) if cfg!(target_endian = "little") => {
            for chunk in s.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                w.write_all(&bytes)?;
            }
        }
        _ => {
            for x in m.iter() {
                w.write_all(&x.to_le_bytes())?;
            }
        }
    }
    Ok(())
}
