//! Artifact writers; each module owns one artifact ([`write_vector_files`] writes the two that
//! hold every vector).

pub mod items;
pub mod log;
pub mod metadata;
pub mod npy;
pub mod projector;

use std::path::Path;

use crate::error::Result;
use crate::index::Vectors;
use crate::model::{PROJECTOR_DIR, VECTORS_FILE};

/// The two files that hold every vector, `vectors.npy` and the projector's tensor, written into
/// the model folder `out` from `rows`. `run` and `update` call it while the index is built or
/// grown (see `Hnsw::build_beside`).
pub fn write_vector_files(out: &Path, rows: &Vectors) -> Result<projector::Tensor> {
    npy::write_npy_rows(&out.join(VECTORS_FILE), rows)?;
    projector::write_tensor(&out.join(PROJECTOR_DIR), rows)
}
