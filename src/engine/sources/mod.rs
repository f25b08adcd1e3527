//! Sources: each ERP view becomes a named table DataFusion can scan.
//!
//! A source is registered under the view's ERP name (`dbo_BI_ITEM_INFO_VIEW`, ...); the mapping
//! views `erp_<logical>` select from it. Parquet is implemented here; an ODBC source registers the
//! same names (filled through odbc-api / arrow-odbc, see [`odbc`]), so the SQL layers never know
//! the difference.

pub mod check;
pub mod contract;
pub mod odbc;
pub mod parquet;

use datafusion::prelude::SessionContext;

use crate::config::mapping::Mapping;
use crate::config::{Config, SourceKind};
use crate::error::Result;

/// What was registered for one view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub view: String,
    /// Human-readable location (a file path, or a table on a connection with secrets redacted).
    pub location: String,
    pub columns: Vec<String>,
    /// SHA-256 of the source bytes (Parquet) for the data snapshot id.
    pub sha256: String,
    /// Columns whose values of the wrong type became NULL (`sources.strict`).
    pub nulled: Vec<contract::Nulled>,
}

/// One view's mapped columns as the source delivers them, before any conversion: what the
/// data-quality profile counts missing spellings, sentinels and bad values on.
pub struct RawView {
    pub view: String,
    pub location: String,
    /// (mapped ERP column, its type in the source)
    pub source_types: Vec<(String, String)>,
    /// The mapped columns, in mapping order (ODBC: every column as the driver's text).
    pub batch: arrow::record_batch::RecordBatch,
}

/// Reads every view's mapped columns as delivered (blocking for ODBC: call from
/// `spawn_blocking`).
pub fn read_raw(cfg: &Config, mapping: &Mapping) -> Result<Vec<RawView>> {
    match cfg.sources.kind {
        SourceKind::Parquet => parquet::read_raw(&cfg.sources, mapping),
        SourceKind::Odbc => odbc::read_raw(&cfg.sources, mapping),
    }
}

/// Registers every view of the config's source, checking mapped columns exist.
pub async fn register_all(
    ctx: &SessionContext,
    cfg: &Config,
    mapping: &Mapping,
) -> Result<Vec<SourceInfo>> {
    contract::check_lenient(&cfg.file, &cfg.sources, mapping)?;
    match cfg.sources.kind {
        SourceKind::Parquet => parquet::register_all(ctx, &cfg.sources, mapping).await,
        SourceKind::Odbc => odbc::register_all(ctx, &cfg.sources, mapping).await,
    }
}

/// One log line per source, and a warning per column whose bad values became NULL.
pub fn log_sources(sources: &[SourceInfo], log: &mut crate::export::log::RunLog) {
    for s in sources {
        log.info(format!(
            "source {}: {} ({} columns)",
            s.view,
            s.location,
            s.columns.len()
        ));
        for n in &s.nulled {
            log.warn(n.warning(&s.view));
        }
    }
}

/// The data snapshot id: SHA-256 over each view's name and content hash (Parquet: the file's
/// bytes; ODBC: the values read) and the item metadata file's hash.
pub fn snapshot_id(sources: &[SourceInfo], item_metadata_sha: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.view.as_bytes());
        h.update(s.sha256.as_bytes());
    }
    h.update(item_metadata_sha.as_bytes());
    crate::hash::hex(&h.finalize())
}
