//! Parquet I/O. Output: every Parquet file trainer writes (model artifacts, fitted state, extracts,
//! generated samples) goes through here, zstd-compressed and written atomically (a temporary
//! sibling renamed into place). Input: the footer of a source file ([`footer`]), read before
//! any query so that a corrupt file is named.

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::fsutil::{AtomicFile, atomic_write_with};

fn props() -> WriterProperties {
    props_with_row_groups(256 * 1024)
}

/// The writer holds a row group's encoded columns until the group is full: streamed results
/// use smaller groups, so that less is held beside the query that produces them.
fn props_with_row_groups(rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(rows))
        .set_created_by("trainer".to_string())
        .build()
}

/// Writes one batch as a Parquet file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    atomic_write_with(path, |w| {
        let mut writer = ArrowWriter::try_new(w, batch.schema(), Some(props()))
            .map_err(std::io::Error::other)?;
        // Row groups are cut by the writer; write in slices to bound memory per call.
        let step = 64 * 1024;
        let mut off = 0;
        while off < batch.num_rows() {
            let len = step.min(batch.num_rows() - off);
            writer
                .write(&batch.slice(off, len))
                .map_err(std::io::Error::other)?;
            off += len;
        }
        writer.close().map_err(std::io::Error::other)?;
        Ok(())
    })
}

/// Writes batches as one Parquet file (the row groups of [`write_parquet`]), holding one batch
/// at a time. The first error of `batches` stops the write; the file is then not created.
pub fn write_batches(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    let io = |e: parquet::errors::ParquetError| {
        Error::io(path, "write the file", std::io::Error::other(e))
    };
    let mut writer = ArrowWriter::try_new(file.writer(), schema, Some(props())).map_err(io)?;
    for b in batches {
        writer.write(&b?).map_err(io)?;
    }
    writer.close().map_err(io)?;
    file.commit()
}

/// Writes a query's result stream as a Parquet file batch by batch, never holding it whole.
/// Returns the number of rows.
pub async fn write_stream(
    path: &Path,
    schema: SchemaRef,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    what: &str,
) -> Result<usize> {
    use futures::StreamExt;
    let mut file = AtomicFile::create(path)?;
    let io = |e: parquet::errors::ParquetError| {
        Error::io(path, "write the file", std::io::Error::other(e))
    };
    let mut writer = ArrowWriter::try_new(
        file.writer(),
        schema,
        Some(props_with_row_groups(64 * 1024)),
    )
    .map_err(io)?;
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| Error::sql(what, e.to_string()))?;
        rows += b.num_rows();
        writer.write(&b).map_err(io)?;
    }
    writer.close().map_err(io)?;
    file.commit()?;
    Ok(rows)
}

/// Why a Parquet footer could not be read.
pub enum FooterError {
    /// Not a Parquet file, or a corrupt one.
    NotParquet(String),
    /// A Parquet file whose schema has no Arrow form.
    Schema(String),
}

/// The Arrow schema and row count a Parquet file's footer declares.
pub fn footer<R: parquet::file::reader::ChunkReader + 'static>(
    reader: R,
) -> std::result::Result<(arrow::datatypes::Schema, u64), FooterError> {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(reader)
        .map_err(|e| FooterError::NotParquet(e.to_string()))?;
    let meta = reader.metadata().file_metadata();
    let schema = parquet::arrow::parquet_to_arrow_schema(meta.schema_descr(), None)
        .map_err(|e| FooterError::Schema(e.to_string()))?;
    Ok((schema, meta.num_rows() as u64))
}

/// Decodes every page of a Parquet file without holding it (batch by batch): the first error,
/// if any. Used only after a query failed on a decoding error, to name the damaged file.
pub fn check_decodes(path: &Path) -> std::result::Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    for batch in reader {
        batch.map_err(|e| e.to_string())?;
    }
    Ok(())
}
