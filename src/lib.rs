//! `trainer`: the Stage-2 training service.
//!
//! Data flows one way:
//!
//! ```text
//! config (config/: trainer.yml, the field mapping)
//!   -> sources (engine/sources: one DataFusion table per ERP view, erp.rs the contract)
//!   -> SQL layers (sql/01_map, 02_clean, 03_encode; run by transform.rs, fitted state saved)
//!   -> features (features/: item weights and folds, learned feature weights, vectors)
//!   -> index (index/: our HNSW in hnswlib's file layout, the similarity check)
//!   -> exports (export/: items.parquet, retrain queue, projector, metadata, log)
//! ```
//!
//! `train.rs` runs the path up to the vectors; `commands/` has one file per verb; `main.rs`
//! only parses the command line and renders errors. `docs/architecture.md` has the map.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod csv;
pub mod engine;
pub mod erp;
pub mod error;
pub mod export;
pub mod features;
pub mod fsutil;
pub mod hash;
pub mod index;
pub mod memory;
pub mod model;
pub mod parquet_io;
pub mod profile;
pub mod rng;
pub mod sample;
pub mod source_rows;
pub mod text;
pub mod train;
pub mod transform;
