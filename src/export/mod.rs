//! Artifact writers; each module owns one artifact ([`write_vector_files`] writes the two that
//! hold every vector).

pub mod items;
pub mod log;
pub mod metadata;
pub mod npy;
pub mod projector;

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::{PROJECTOR_DIR, VECTORS_FILE};

/// The two files that hold every vector, `vectors.npy` and the projector's tensor, written into
/// the model folder `out` from `rows` (row-major, `dim` columns). `run` and `update` call it while
/// the index is built or grown (see `Hnsw::build_beside`).
pub fn write_vector_files(out: &Path, rows: &[f32], dim: usize) -> Result<projector::Tensor> {
    let m = ndarray::ArrayView2::from_shape((rows.len() / dim.max(1), dim), rows)
        .map_err(|e| Error::internal(format!("vectors: {e}")))?;
    npy::write_npy(&out.join(VECTORS_FILE), m)?;
    projector::write_tensor(&out.join(PROJECTOR_DIR), m)
}
