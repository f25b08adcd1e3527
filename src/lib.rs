//! `trainer`: the Stage-2 training service.
//!
//! Data flows one way:
//!
//! ```text
//! config (config.rs, mapping.rs)
//!   -> sources (engine/sources: one DataFusion table per ERP view)
//!   -> SQL layers (sql/01_map, 02_clean, 03_encode; run by transform.rs, fitted state saved)
//!   -> weights (weights.rs: item weights and folds; feature weights)
//!   -> vectors (vectors.rs: weighted, L2-normalised f32)
//!   -> index (index/: our HNSW, written in hnswlib's file layout)
//!   -> exports (export/: items.parquet, retrain queue, TensorBoard projector, log)
//! ```
//!
//! `pipeline.rs` runs the stages; `eval.rs` scores them (held-out routings against two
//! baselines); `main.rs` only parses the command line and renders errors.

pub mod apply;
pub mod cli;
pub mod config;
pub mod csv;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod fsutil;
pub mod index;
pub mod learn;
pub mod mapping;
pub mod model;
pub mod parquet_io;
pub mod pipeline;
pub mod recommend;
pub mod rng;
pub mod sample;
pub mod transform;
pub mod update;
pub mod vectors;
pub mod weights;
