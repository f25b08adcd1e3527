//! Parquet sources: one file per view (`<dir>/<view>.parquet` unless `sources.files` says
//! otherwise). The file is checked before it is registered: it must exist, be valid Parquet and
//! carry every mapped column.

use std::path::PathBuf;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use sha2::{Digest, Sha256};

use super::SourceInfo;
use crate::config::Sources;
use crate::config::mapping::Mapping;
use crate::erp::VIEWS;
use crate::error::{Error, Result};
use crate::hash::hex;
use crate::parquet_io::{FooterError, footer};

pub fn file_for(sources: &Sources, view: &str) -> PathBuf {
    let dir = sources.dir.clone().unwrap_or_default();
    match sources.files.get(view) {
        Some(f) => dir.join(f),
        None => dir.join(format!("{view}.parquet")),
    }
}

pub async fn register_all(
    ctx: &SessionContext,
    sources: &Sources,
    mapping: &Mapping,
) -> Result<Vec<SourceInfo>> {
    let mut out = Vec::new();
    for v in VIEWS {
        let path = file_for(sources, v.erp_name);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::input(
                &shown,
                format!(
                    "cannot read the source file for view {}: {e}. Check `sources.dir` in the config, or create sample data with `trainer sample --out {}`",
                    v.erp_name,
                    sources.dir.clone().unwrap_or_default().display()
                ),
            )
        })?;
        // Validate the footer and schema up front so a corrupt file is named, not a query.
        let (schema, _) = footer(bytes::Bytes::from(bytes.clone())).map_err(|e| match e {
            FooterError::NotParquet(e) => Error::input(
                &shown,
                format!(
                    "not a readable Parquet file ({e}). Re-export view {} from the ERP.",
                    v.erp_name
                ),
            ),
            FooterError::Schema(e) => Error::input(
                &shown,
                format!("Parquet schema cannot be read as Arrow ({e})"),
            ),
        })?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        mapping.check_source_columns(v.erp_name, &shown, &columns)?;
        let abs = std::fs::canonicalize(&path).map_err(|e| Error::input(&shown, e.to_string()))?;
        ctx.register_parquet(
            datafusion::common::TableReference::bare(v.erp_name),
            abs.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| {
            Error::input(
                &shown,
                format!("cannot register as table {}: {e}", v.erp_name),
            )
        })?;
        let sha = hex(&Sha256::digest(&bytes));
        out.push(SourceInfo {
            view: v.erp_name.to_string(),
            location: shown,
            columns,
            sha256: sha,
        });
    }
    Ok(out)
}
