//! The HNSW index: our implementation ([`hnsw`]), its neighbour lists ([`links`]), the compact
//! integer vectors construction compares ([`quant`]) and hnswlib's file layout ([`hnswlib_file`]).
//!
//! Why our own code and not hnsw_rs: measured on this kind of machine (100k × 64-dim, M=32,
//! efC=200, release) hnsw_rs 0.3.5 built ~28× slower than hnswlib and answered ~30× slower; its
//! level RNG seed is fixed, `parallel_insert` is not reproducible, the entry point is private and
//! reload-then-insert puts every new point on level 0. Here build speed, seeded levels, parallel
//! yet reproducible construction and the hnswlib file layout are ours.

// The graph's own layout (neighbour lists, integer vectors, node fields) is private to this
// module: the rest of trainer builds, searches, saves and loads an `Hnsw` through its methods.
pub(crate) mod hnsw;
pub mod hnswlib_file;
pub(crate) mod links;
pub(crate) mod quant;
pub mod similarity;
pub mod vectors;

pub use hnsw::{Hnsw, HnswParams, Visited, with_visited};
pub use quant::Quantized;
pub use vectors::Vectors;

/// Asks Linux to back `v`'s allocated capacity with transparent huge pages, before it is written
/// (a hint: results do not depend on it, and it does nothing elsewhere or when the kernel's THP
/// setting is `never`). Construction reads rows and neighbour lists at random all over tens to
/// hundreds of MB: with 4 KiB pages nearly every read also misses the TLB, and in a virtual
/// machine a miss walks two page tables.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        const HUGE: usize = 2 << 20;
        const MADV_HUGEPAGE: i32 = 14;
        unsafe extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let start = (v.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (v.as_ptr() as usize + v.capacity() * std::mem::size_of::<T>()) & !(PAGE - 1);
        if end >= start + HUGE {
            // SAFETY: [start, end) lies inside the vector's allocation, which is mapped; the
            // advice changes how pages are backed, never their contents. A failure (an old
            // kernel, THP compiled out) leaves ordinary pages, so the result is ignored.
            unsafe {
                madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}
