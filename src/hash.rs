//! Content hashes: the data snapshot id and file hashes recorded in `training_metadata.json` and
//! `extract.json`, so that a model names exactly the data it was trained on.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The data snapshot id: SHA-256 over each view's name and content hash (Parquet: the file's
/// bytes; ODBC: the values read) and the item metadata file's hash.
pub fn snapshot_id(
    sources: &[crate::engine::sources::SourceInfo],
    item_metadata_sha: &str,
) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.view.as_bytes());
        h.update(s.sha256.as_bytes());
    }
    h.update(item_metadata_sha.as_bytes());
    hex(&h.finalize())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::input(path.display().to_string(), e.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}
