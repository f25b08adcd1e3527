//! hnswlib's index file layout (`saveIndex` / `loadIndex`, hnswlib 0.8.0), so the Python package
//! `hnswlib` loads `models/hnsw_index.bin` directly. See `specs/hnswlib_index_format.md`.
//!
//! Little-endian, 64-bit: a 96-byte header, N level-0 records of `S = L0 + 4·dim + 8` bytes
//! (u16 count, flags, reserved, `2M` u32 links, the f32 vector, the u64 label), then per element
//! a u32 byte size of its upper-level lists followed by `level · (4 + 4M)` bytes. Unused link
//! slots are zero. Labels are internal ids (the row index of `items.parquet`).

use std::io::{Read, Write};
use std::path::Path;

use super::hnsw::Hnsw;
use super::links::Links;
use super::vectors::Vectors;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_large_with;

pub const HEADER_BYTES: usize = 96;

/// Writes the graph in hnswlib's layout (atomically).
pub fn write(h: &Hnsw, path: &Path) -> Result<()> {
    atomic_write_large_with(path, |w| write_to(h, w))
}

pub fn write_to(h: &Hnsw, w: &mut impl Write) -> std::io::Result<()> {
    let n = h.len() as u64;
    let m = h.m as u64;
    let m0 = h.m0 as u64;
    let dim = h.dim as u64;
    let l0 = 4 + 4 * m0;
    let s = l0 + 4 * dim + 8;
    let (maxlevel, entry): (i32, u32) = match h.entry {
        Some(e) => (h.max_level as i32, e),
        None => (-1, u32::MAX),
    };
    w.write_all(&0u64.to_le_bytes())?; // offsetLevel0_
    w.write_all(&n.to_le_bytes())?; // max_elements_
    w.write_all(&n.to_le_bytes())?; // cur_element_count
    w.write_all(&s.to_le_bytes())?; // size_data_per_element_
    w.write_all(&(l0 + 4 * dim).to_le_bytes())?; // label_offset_
    w.write_all(&l0.to_le_bytes())?; // offsetData_
    w.write_all(&maxlevel.to_le_bytes())?;
    w.write_all(&entry.to_le_bytes())?;
    w.write_all(&m.to_le_bytes())?; // maxM_
    w.write_all(&m0.to_le_bytes())?; // maxM0_
    w.write_all(&m.to_le_bytes())?; // M_
    w.write_all(&(1.0 / (h.m as f64).ln()).to_le_bytes())?; // mult_
    w.write_all(&(h.ef_construction.max(h.m) as u64).to_le_bytes())?;
    let mut rec = vec![0u8; s as usize];
    let lo = (l0 + 4 * dim) as usize;
    let mut record = |i: usize, row: &[f32]| {
        rec.iter_mut().for_each(|b| *b = 0);
        let links = h.links.get(i as u32, 0);
        rec[0..2].copy_from_slice(&(links.len() as u16).to_le_bytes());
        for (k, &nb) in links.iter().enumerate() {
            rec[4 + 4 * k..8 + 4 * k].copy_from_slice(&nb.to_le_bytes());
        }
        let off = l0 as usize;
        for (k, x) in row.iter().enumerate() {
            rec[off + 4 * k..off + 4 * k + 4].copy_from_slice(&x.to_le_bytes());
        }
        rec[lo..lo + 8].copy_from_slice(&(i as u64).to_le_bytes());
        w.write_all(&rec)
    };
    if h.dim == 0 {
        for i in 0..h.len() {
            record(i, &[])?;
        }
    } else {
        // A block of rows at a time: rows read in place from a file are released after it.
        h.data.for_each_block(4096, |first, rows| {
            for (k, row) in rows.chunks_exact(h.dim).enumerate() {
                record(first + k, row)?;
            }
            Ok::<(), std::io::Error>(())
        })?;
    }
    let block = 4 + 4 * h.m;
    let mut up = vec![0u8; block];
    for i in 0..h.len() {
        let level = h.levels[i] as usize;
        w.write_all(&((level * block) as u32).to_le_bytes())?;
        for l in 1..=level {
            up.iter_mut().for_each(|b| *b = 0);
            let links = h.links.get(i as u32, l);
            up[0..2].copy_from_slice(&(links.len() as u16).to_le_bytes());
            for (k, &nb) in links.iter().enumerate() {
                up[4 + 4 * k..8 + 4 * k].copy_from_slice(&nb.to_le_bytes());
            }
            w.write_all(&up)?;
        }
    }
    Ok(())
}

/// Reads a file in hnswlib's layout (as written by `write` or by hnswlib itself): the graph is
/// parsed from a stream of its records (the file is never held whole), and the vectors are read
/// in place from the file, mapped (see [`Vectors`]).
pub fn read(path: &Path, ef_construction: usize) -> Result<Hnsw> {
    let shown = path.display().to_string();
    let cannot = |e: std::io::Error| Error::input(&shown, format!("cannot read the index: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, &file);
    let mut h = parse_from(&mut r, len, ef_construction, false)
        .map_err(|m| Error::input(&shown, format!("not an hnswlib index file: {m}; retrain")))?;
    let l0 = 4 + 4 * h.m0;
    let stride = l0 + 4 * h.dim + 8;
    h.data = Vectors::map(&file, HEADER_BYTES + l0, stride, h.len(), h.dim).map_err(cannot)?;
    Ok(h)
}

/// Parses a whole file's bytes (the vectors are copied out).
pub fn parse(b: &[u8], ef_construction: usize) -> std::result::Result<Hnsw, String> {
    parse_from(&mut &b[..], b.len() as u64, ef_construction, true)
}

/// Parses `len` bytes of `r`. Every size the header announces is checked against `len` before
/// anything is allocated, and every link against the element count, so a truncated or corrupt
/// file is an error, never a panic or a huge allocation.
fn parse_from(
    r: &mut impl Read,
    len: u64,
    ef_construction: usize,
    keep_vectors: bool,
) -> std::result::Result<Hnsw, String> {
    let mut header = [0u8; HEADER_BYTES];
    if len < HEADER_BYTES as u64 {
        return Err(format!("{len} bytes is shorter than the 96-byte header"));
    }
    r.read_exact(&mut header).map_err(|e| e.to_string())?;
    let u64_at = |o: usize| u64::from_le_bytes(header[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().unwrap());
    let n = u64_at(16);
    let s = u64_at(24);
    let l0 = u64_at(40);
    let maxlevel = u32_at(48) as i32;
    let entry = u32_at(52);
    let m = u64_at(56);
    let m0 = u64_at(64);
    if m == 0
        || m > 10_000
        || m0 != 2 * m
        || l0 != 4 + 4 * m0
        || s < l0 + 8
        || !(s - l0 - 8).is_multiple_of(4)
    {
        return Err(format!(
            "inconsistent header (M={m}, maxM0={m0}, offsetData={l0}, S={s})"
        ));
    }
    // Sizes come from the file: check them against its length before allocating.
    if n.checked_mul(s)
        .and_then(|x| x.checked_add(HEADER_BYTES as u64))
        .is_none_or(|x| x > len)
        || n >= u32::MAX as u64
    {
        return Err(format!(
            "{len} bytes cannot hold the {n} elements of {s} bytes its header announces (truncated?)"
        ));
    }
    if maxlevel >= 0 && entry as u64 >= n {
        return Err(format!(
            "entry point {entry} is not one of the {n} elements"
        ));
    }
    let (n, s, l0, m, m0) = (n as usize, s as usize, l0 as usize, m as usize, m0 as usize);
    let dim = (s - l0 - 8) / 4;
    let mut data = Vec::with_capacity(if keep_vectors { n * dim } else { 0 });
    let mut links = Links::new(m0);
    links.reserve(n);
    let mut rec = vec![0u8; s];
    let mut list = Vec::with_capacity(m0);
    let read_list = |bytes: &[u8], cnt: usize, list: &mut Vec<u32>, i: usize| {
        list.clear();
        list.extend(
            bytes[4..4 + 4 * cnt]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
        );
        match list.iter().find(|&&x| x as usize >= n) {
            Some(bad) => Err(format!(
                "element {i} links to {bad}, beyond the {n} elements"
            )),
            None => Ok(()),
        }
    };
    for i in 0..n {
        r.read_exact(&mut rec)
            .map_err(|_| format!("truncated in level-0 record {i}"))?;
        let cnt = u16::from_le_bytes([rec[0], rec[1]]) as usize;
        if cnt > m0 {
            return Err(format!(
                "element {i} has {cnt} level-0 links, more than maxM0={m0}"
            ));
        }
        read_list(&rec, cnt, &mut list, i)?;
        links.push_node(0);
        links.set(i as u32, 0, &list);
        if keep_vectors {
            data.extend(
                rec[l0..l0 + 4 * dim]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            );
        }
    }
    let block = 4 + 4 * m;
    let mut levels = Vec::with_capacity(n);
    let mut blk = vec![0u8; block];
    let mut consumed = (HEADER_BYTES + n * s) as u64;
    for i in 0..n {
        let mut size = [0u8; 4];
        r.read_exact(&mut size)
            .map_err(|_| format!("truncated in upper levels of element {i}"))?;
        let size = u32::from_le_bytes(size) as usize;
        consumed += 4 + size as u64;
        if !size.is_multiple_of(block) {
            return Err(format!(
                "element {i}: upper-level size {size} is not a multiple of {block}"
            ));
        }
        let level = size / block;
        if level > maxlevel.max(0) as usize || consumed > len {
            return Err(format!(
                "element {i} has {level} upper levels, above the header's maximum level {maxlevel} or beyond the file's end"
            ));
        }
        let mut upper = Vec::with_capacity(level);
        for _ in 0..level {
            r.read_exact(&mut blk)
                .map_err(|_| format!("truncated in upper levels of element {i}"))?;
            let cnt = (u16::from_le_bytes([blk[0], blk[1]]) as usize).min(m);
            read_list(&blk, cnt, &mut list, i)?;
            upper.push(list.clone());
        }
        links.set_upper(i as u32, upper);
        levels.push(level as u8);
    }
    let mut extra = [0u8; 1];
    if r.read(&mut extra).map_err(|e| e.to_string())? != 0 || consumed != len {
        return Err(format!(
            "{} trailing bytes after the last element",
            len.saturating_sub(consumed)
        ));
    }
    Ok(Hnsw {
        dim,
        m,
        m0,
        ef_construction,
        data: Vectors::owned(data, dim),
        levels,
        links,
        entry: (maxlevel >= 0).then_some(entry),
        max_level: maxlevel.max(0) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden fixture of the spec: N=2, dim=2, M=2, vectors (3,4)/(0,2) normalised,
    /// labels 10 and 11, element 1 at level 1 with an empty list.
    #[test]
    fn golden_fixture_layout() {
        let expected: Vec<u8> = [
            "00 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00",
            "02 00 00 00 00 00 00 00 24 00 00 00 00 00 00 00",
            "1c 00 00 00 00 00 00 00 14 00 00 00 00 00 00 00",
            "01 00 00 00 01 00 00 00 02 00 00 00 00 00 00 00",
            "04 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00",
            "fe 82 2b 65 47 15 f7 3f 02 00 00 00 00 00 00 00",
            "01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00",
            "00 00 00 00 9a 99 19 3f cd cc 4c 3f 0a 00 00 00",
            "00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00",
            "00 00 00 00 00 00 00 00 00 00 00 00 00 00 80 3f",
            "0b 00 00 00 00 00 00 00 00 00 00 00 0c 00 00 00",
            "00 00 00 00 00 00 00 00 00 00 00 00",
        ]
        .iter()
        .flat_map(|l| l.split(' ').map(|h| u8::from_str_radix(h, 16).unwrap()))
        .collect();
        // The fixture uses labels 10/11; our writer writes label = internal id, so patch those.
        let h = Hnsw {
            dim: 2,
            m: 2,
            m0: 4,
            ef_construction: 2,
            data: Vectors::owned(vec![0.6, 0.8, 0.0, 1.0], 2),
            levels: vec![0, 1],
            links: Links::from_lists(4, vec![vec![vec![1]], vec![vec![0], vec![]]]),
            entry: Some(1),
            max_level: 1,
        };
        let mut out = Vec::new();
        write_to(&h, &mut out).unwrap();
        assert_eq!(out.len(), 188);
        let mut exp = expected.clone();
        exp[0x7c] = 0; // label 10 -> 0
        exp[0xa0] = 1; // label 11 -> 1
        assert_eq!(out, exp);
        let back = parse(&out, 2).unwrap();
        assert_eq!(back.links, h.links);
        assert_eq!(back.data.as_slice(), h.data.as_slice());
        assert_eq!(back.entry, Some(1));
        let mut again = Vec::new();
        write_to(&back, &mut again).unwrap();
        assert_eq!(again, out);
        assert!(parse(&[out.clone(), vec![0]].concat(), 2).is_err());
    }

    /// Seeded mutation fuzzing of the reader: 20,000 corruptions of a small real index (bit
    /// flips, overwritten header fields, truncations, appended bytes) are each rejected with an
    /// error or read back as an index whose links and entry point are in range; none panics or
    /// allocates beyond what the file can hold. The corpus is this seed and this index.
    #[test]
    fn corrupt_files_are_errors_never_panics() {
        use crate::rng::Rng;
        let (n, dim) = (60, 8);
        let mut r = Rng::new(11);
        let data: Vec<f32> = (0..n * dim).map(|_| r.normal() as f32).collect();
        let data: Vec<f32> = data
            .chunks(dim)
            .flat_map(|row| {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter().map(move |x| x / norm).collect::<Vec<_>>()
            })
            .collect();
        let h = Hnsw::build(
            data,
            dim,
            crate::index::HnswParams {
                m: 4,
                ef_construction: 16,
                seed: 3,
            },
            |_, _| {},
        );
        let mut good = Vec::new();
        write_to(&h, &mut good).unwrap();
        assert!(parse(&good, 16).is_ok());
        let mut rng = Rng::new(42);
        let (mut rejected, mut read) = (0, 0);
        for _ in 0..20_000 {
            let mut b = good.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(b.len());
                        b[at] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    // A header field (u32 or u64 at an 4-byte offset) set to an arbitrary value.
                    let at = 4 * rng.below(HEADER_BYTES / 4 - 1);
                    let v = rng.next_u64().to_le_bytes();
                    let w = if rng.chance(0.5) { 4 } else { 8 };
                    b[at..at + w].copy_from_slice(&v[..w]);
                }
                2 => b.truncate(rng.below(b.len())),
                _ => b.extend((0..1 + rng.below(64)).map(|_| rng.below(256) as u8)),
            }
            match parse(&b, 16) {
                Err(_) => rejected += 1,
                Ok(x) => {
                    read += 1;
                    let len = x.len();
                    assert!(x.entry.is_none_or(|e| (e as usize) < len));
                    for i in 0..len {
                        for level in 0..=x.levels[i] as usize {
                            assert!(
                                x.links
                                    .get(i as u32, level)
                                    .iter()
                                    .all(|&j| (j as usize) < len)
                            );
                        }
                    }
                }
            }
        }
        assert!(
            rejected > 10_000,
            "most corruptions are caught: {rejected} of {}",
            rejected + read
        );
    }
}
