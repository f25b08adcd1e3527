//! The HNSW index: our implementation ([`hnsw`]), its neighbour lists ([`links`]), the compact
//! integer vectors construction compares ([`quant`]) and hnswlib's file layout ([`hnswlib_file`]).
//!
//! Why our own code and not hnsw_rs: measured on this kind of machine (100k × 64-dim, M=32,
//! efC=200, release) hnsw_rs 0.3.5 built ~28× slower than hnswlib and answered ~30× slower; its
//! level RNG seed is fixed, `parallel_insert` is not reproducible, the entry point is private and
//! reload-then-insert puts every new point on level 0. Here build speed, seeded levels, parallel
//! yet reproducible construction and the hnswlib file layout are ours.

pub mod hnsw;
pub mod hnswlib_file;
pub mod links;
pub mod quant;

pub use hnsw::{Hnsw, HnswParams};
