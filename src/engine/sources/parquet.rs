//! Parquet sources: one file per view (`<dir>/<view>.parquet` unless `sources.files` says
//! otherwise). The file is checked before it is registered: it must exist, be valid Parquet and
//! carry every mapped column.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use sha2::{Digest, Sha256};

use super::{SourceInfo, contract};
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

/// The bytes and Arrow schema of the Parquet file of `view`; a file that cannot be read, or is
/// not Parquet, is an input error naming it (checked before any query reads it).
fn open(sources: &Sources, view: &str, path: &Path) -> Result<(bytes::Bytes, Schema)> {
    let shown = path.display().to_string();
    let bytes = bytes::Bytes::from(std::fs::read(path).map_err(|e| {
        Error::input(
            &shown,
            format!(
                "cannot read the source file for view {view}: {e}. Check `sources.dir` in the config, or create sample data with `trainer sample --out {}`",
                sources.dir.clone().unwrap_or_default().display()
            ),
        )
    })?);
    let (schema, _) = footer(bytes.clone()).map_err(|e| match e {
        FooterError::NotParquet(e) => Error::input(
            &shown,
            format!("not a readable Parquet file ({e}). Re-export view {view} from the ERP."),
        ),
        FooterError::Schema(e) => Error::input(
            &shown,
            format!("Parquet schema cannot be read as Arrow ({e})"),
        ),
    })?;
    Ok((bytes, schema))
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
        let (bytes, schema) = open(sources, v.erp_name, &path)?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        mapping.check_source_columns(v.erp_name, &shown, &columns)?;
        let sha = hex(&Sha256::digest(&bytes));
        let convert = contract::columns_to_convert(v.erp_name, &shown, &schema, mapping)?;
        let mut nulled = Vec::new();
        if convert.is_empty() {
            let abs =
                std::fs::canonicalize(&path).map_err(|e| Error::input(&shown, e.to_string()))?;
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
        } else {
            // Text where the contract wants numbers or dates: converted here, in memory, so
            // that a bad value is named with its row instead of failing a SQL cast.
            let batches = read_batches(bytes, &shown)?;
            let batch = if batches.is_empty() {
                RecordBatch::new_empty(Arc::new(schema.clone()))
            } else {
                let (batch, n) =
                    contract::convert(v.erp_name, &shown, &batches, &convert, sources)?;
                nulled = n;
                batch
            };
            let table =
                datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])
                    .map_err(|e| Error::internal(e.to_string()))?;
            ctx.register_table(
                datafusion::common::TableReference::bare(v.erp_name),
                Arc::new(table),
            )
            .map_err(|e| Error::internal(e.to_string()))?;
        }
        out.push(SourceInfo {
            view: v.erp_name.to_string(),
            location: shown,
            columns,
            sha256: sha,
            nulled,
        });
    }
    Ok(out)
}

/// Each view's mapped columns as the file holds them.
pub fn read_raw(sources: &Sources, mapping: &Mapping) -> Result<Vec<super::RawView>> {
    let mut out = Vec::new();
    for v in VIEWS {
        let path = file_for(sources, v.erp_name);
        let shown = path.display().to_string();
        let (bytes, schema) = open(sources, v.erp_name, &path)?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        mapping.check_source_columns(v.erp_name, &shown, &names)?;
        let cols: Vec<&String> = mapping.columns(v.erp_name).keys().collect();
        let batches = read_batches(bytes, &shown)?;
        let all = if batches.is_empty() {
            RecordBatch::new_empty(Arc::new(schema.clone()))
        } else {
            arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| Error::internal(e.to_string()))?
        };
        let idx: Vec<usize> = cols
            .iter()
            .map(|c| all.schema().index_of(c))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::internal(e.to_string()))?;
        let batch = all
            .project(&idx)
            .map_err(|e| Error::internal(e.to_string()))?;
        let source_types = batch
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        out.push(super::RawView {
            view: v.erp_name.to_string(),
            location: shown,
            source_types,
            batch,
        });
    }
    Ok(out)
}

/// Every row of a Parquet file held in memory; a decoding error names the file.
fn read_batches(bytes: bytes::Bytes, shown: &str) -> Result<Vec<RecordBatch>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| Error::input(shown, format!("not a readable Parquet file ({e})")))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::input(shown, format!("a page of the file cannot be decoded ({e})")))
}
