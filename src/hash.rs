//! Content hashes (hex SHA-256) recorded in `training_metadata.json` and `extract.json`, so that
//! a model names exactly the data and transforms it was trained with.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}
