//! ODBC sources: the ERP views read through a real ODBC driver (MS Access via mdbtools or the
//! Microsoft Access driver, SQL Server via FreeTDS or Microsoft's driver, PostgreSQL via psqlODBC)
//! into in-memory DataFusion tables named after the views, so the SQL layers run unchanged.
//!
//! Driver facts this module is built around (verified):
//! * mdbtools has no `SQLSetStmtAttr`: block (columnar) fetch fails with HY092 and arrow-odbc's
//!   reader panics instead of erroring. So the bulk path (arrow-odbc) is used only after asking
//!   the statement whether it accepts a row-array size; otherwise rows are fetched one by one.
//! * mdbtools understands only `SELECT cols FROM table`: we send exactly that, with quoted
//!   mapped column names, and filter/join in DataFusion. It ignores unknown columns in WHERE, so
//!   columns are checked against the column descriptions of `SELECT * FROM table` (not fetched).
//! * Drivers report types loosely (psqlODBC: double precision as FLOAT(17) → arrow-odbc Float32):
//!   the Arrow schema always comes from the ERP contract (`crate::sample::*_schema`).
//! * An Access link to SQL Server holds no data: mdbtools says "X is not a table in this
//!   database"; that becomes an error telling the user to connect to the SQL Server directly.
//! * Passwords: taken from the environment variable `sources.password_env` and appended as
//!   `PWD=...`; connection strings are shown only through
//!   [`redact`](crate::config::redact::redact).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Date32Builder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use odbc_api::handles::{AsStatementRef, Statement};
use odbc_api::{ConnectionOptions, Cursor, Environment, ResultSetMetadata};
use sha2::{Digest, Sha256};

use super::{SourceInfo, contract};
use crate::config::Sources;
use crate::config::mapping::Mapping;
use crate::config::redact::redact;
use crate::erp::{VIEWS, contract_schema};
use crate::error::{Error, Result};

/// The value of attribute `key` (any case) of an ODBC connection string, braces removed.
fn attribute(conn: &str, key: &str) -> Option<String> {
    conn.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| {
            v.trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .to_string()
        })
    })
}

/// A file-based driver (MS Access: `DBQ=`) is told about a missing file only as "no
/// diagnostics": check the file first and say what is wrong.
fn check_database_file(full: &str, shown: &str) -> Result<()> {
    let Some(dbq) = attribute(full, "DBQ") else {
        return Ok(());
    };
    let path = std::path::Path::new(&dbq);
    match std::fs::File::open(path) {
        Ok(_) if path.is_file() => Ok(()),
        Ok(_) => Err(Error::input(
            format!("ODBC connection {shown}"),
            format!("DBQ={dbq} is not a file; give the path of the .accdb or .mdb file"),
        )),
        Err(e) => Err(Error::input(
            format!("ODBC connection {shown}"),
            format!(
                "the database file DBQ={dbq} cannot be read: {e}; check the path (absolute) in sources.connection"
            ),
        )),
    }
}

/// The connection string with the password from the environment, and its redacted form.
fn connection_string(sources: &Sources) -> Result<(String, String)> {
    let base = sources.connection.clone().unwrap_or_default();
    let mut full = base.clone();
    if let Some(var) = &sources.password_env {
        let pwd = std::env::var(var).map_err(|_| {
            Error::input(
                "sources.password_env",
                format!("environment variable {var} is not set (it holds the database password)"),
            )
        })?;
        if !full.trim_end().ends_with(';') && !full.is_empty() {
            full.push(';');
        }
        // Braces protect ';' and '=' inside the password.
        full.push_str(&format!("PWD={{{}}};", pwd.replace('}', "}}")));
    }
    Ok((full, redact(&base)))
}

/// SQLSTATEs worth a retry: connection failures and timeouts.
fn is_transient(e: &odbc_api::Error) -> bool {
    is_transient_text(&e.to_string())
}

/// Connection failures, dropped connections, timeouts and deadlocks are worth a retry; a refused
/// login is not (psqlODBC reports it as 08001 too, so the text decides).
fn is_transient_text(text: &str) -> bool {
    let lower = text.to_lowercase();
    if lower.contains("authentication")
        || lower.contains("password")
        || lower.contains("login failed")
    {
        return false;
    }
    [
        "State: 08001",
        "State: 08S01",
        "State: 08004",
        "State: 57P01",
        "HYT00",
        "HYT01",
        "40001",
        "terminating connection",
        "server closed the connection",
    ]
    .iter()
    .any(|s| text.contains(s))
}

fn odbc_env() -> Result<&'static Environment> {
    static ENV: std::sync::OnceLock<std::result::Result<Environment, String>> =
        std::sync::OnceLock::new();
    ENV.get_or_init(|| Environment::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| {
            Error::input(
                "ODBC",
                format!("cannot initialise the ODBC driver manager (is unixODBC installed?): {e}"),
            )
        })
}

/// Connects, retrying transient failures a bounded number of times with exponential backoff.
fn connect(sources: &Sources) -> Result<(odbc_api::Connection<'static>, String)> {
    let env = odbc_env()?;
    let (full, shown) = connection_string(sources)?;
    check_database_file(&full, &shown)?;
    let attempts = sources.retries + 1;
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=attempts {
        match connect_nul_safe(env, &full) {
            Ok(c) => return Ok((c, shown)),
            Err(e) if attempt < attempts && is_transient(&e) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => {
                let msg = redact(&e.to_string()).replace(&full, &shown);
                let hint = if msg.to_lowercase().contains("authentication")
                    || msg.to_lowercase().contains("login failed")
                {
                    "The login was refused: check the user in sources.connection and the password in the variable named by sources.password_env."
                } else {
                    "Check the driver name (odbcinst -q -d), server, port, database and credentials."
                };
                return Err(Error::input(
                    format!("ODBC connection {shown}"),
                    format!("cannot connect after {attempt} attempt(s): {msg}. {hint}"),
                ));
            }
        }
    }
    unreachable!("the loop returns")
}

/// The `MSysObjects.Type` of `table` in an Access file (1 local table, 4 linked ODBC table,
/// 6 linked Access table), or None when the source is not Access or has no such object. mdbtools
/// answers a query on a linked table only with "Couldn't parse SQL"; the catalog tells why.
fn access_object_type(conn: &odbc_api::Connection<'_>, table: &str) -> Option<i64> {
    let name = table.trim_matches(|c| c == '[' || c == ']' || c == '"');
    let mut cursor = conn
        .execute("SELECT \"Name\", \"Type\" FROM MSysObjects", (), None)
        .ok()??;
    let (mut n, mut t) = (Vec::new(), Vec::new());
    while let Ok(Some(mut row)) = cursor.next_row() {
        if row.get_text(1, &mut n).ok()? && row.get_text(2, &mut t).ok()? && n == name.as_bytes() {
            return String::from_utf8_lossy(&t).trim().parse().ok();
        }
    }
    None
}

/// mdbtools reads the connection string up to a NUL byte, ignoring its length: pass a slice of
/// a buffer that has a NUL right after it.
fn connect_nul_safe(
    env: &'static Environment,
    conn: &str,
) -> std::result::Result<odbc_api::Connection<'static>, odbc_api::Error> {
    let buf = format!("{conn}\0");
    env.connect_with_connection_string(&buf[..conn.len()], ConnectionOptions::default())
}

/// Column names and ODBC types of `table` as the driver describes them (nothing is fetched).
pub fn describe(
    conn: &odbc_api::Connection<'_>,
    view: &str,
    table: &str,
    shown: &str,
) -> Result<Vec<(String, String)>> {
    let sql = format!("SELECT * FROM {table}");
    let cursor = conn.execute(&sql, (), None).map_err(|e| {
        let text = e.to_string();
        match access_object_type(conn, table) {
            // MSysObjects types 4 and 6: linked ODBC / linked Access tables (no data in the file).
            Some(4) | Some(6) => Error::input(
                format!("{view} ({shown})"),
                format!("{table} in this Access file is a link to a SQL Server view and holds no data; connect to the SQL Server directly (see docs/odbc.md)"),
            ),
            _ => Error::input(format!("{view} ({shown})"), format!("cannot read table {table}: {}", redact(&text))),
        }
    })?;
    let mut cursor = cursor
        .ok_or_else(|| Error::input(view, format!("{table}: the query returned no result set")))?;
    let n = cursor
        .num_result_cols()
        .map_err(|e| Error::input(view, e.to_string()))?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    for i in 1..=n as u16 {
        // SQLDescribeCol: mdbtools leaves SQLColAttribute's name empty but answers this.
        let mut d = odbc_api::ColumnDescription::default();
        cursor
            .describe_col(i, &mut d)
            .map_err(|e| Error::input(view, e.to_string()))?;
        let mut name = d.name_to_string().unwrap_or_default();
        if name.is_empty() {
            name = cursor.col_name(i).unwrap_or_default();
        }
        out.push((name, format!("{:?}", d.data_type)));
    }
    Ok(out)
}

/// Does the driver accept block fetch (a row-array size > 1)? mdbtools does not.
fn supports_bulk(conn: &odbc_api::Connection<'_>) -> bool {
    let Ok(mut pre) = conn.preallocate() else {
        return false;
    };
    let mut stmt = pre.as_stmt_ref();
    // Safety: the statement has no bound buffers; we only probe the attribute and reset it.
    let ok = unsafe { stmt.set_row_array_size(64) }
        .into_result(&stmt)
        .is_ok();
    if ok {
        let _ = unsafe { stmt.set_row_array_size(1) };
    }
    ok
}

/// Parses driver text into the contract type. Errors name view, column and row.
struct Columns {
    builders: Vec<ColBuilder>,
}

enum ColBuilder {
    Text(StringBuilder),
    F64(Float64Builder),
    I32(Int32Builder),
    Ts(TimestampMillisecondBuilder),
    Date(Date32Builder),
}

fn parse_datetime(s: &str) -> Option<chrono::NaiveDateTime> {
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%m/%d/%y %H:%M:%S",
        "%m/%d/%Y %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

impl Columns {
    fn new(schema: &Schema) -> Columns {
        Columns {
            builders: schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Float64 => ColBuilder::F64(Float64Builder::new()),
                    DataType::Int32 => ColBuilder::I32(Int32Builder::new()),
                    DataType::Timestamp(_, _) => ColBuilder::Ts(TimestampMillisecondBuilder::new()),
                    DataType::Date32 => ColBuilder::Date(Date32Builder::new()),
                    _ => ColBuilder::Text(StringBuilder::new()),
                })
                .collect(),
        }
    }

    fn push(&mut self, col: usize, value: Option<&str>) -> std::result::Result<(), String> {
        let b = &mut self.builders[col];
        let Some(v) = value else {
            match b {
                ColBuilder::Text(b) => b.append_null(),
                ColBuilder::F64(b) => b.append_null(),
                ColBuilder::I32(b) => b.append_null(),
                ColBuilder::Ts(b) => b.append_null(),
                ColBuilder::Date(b) => b.append_null(),
            }
            return Ok(());
        };
        match b {
            ColBuilder::Text(b) => b.append_value(v),
            ColBuilder::F64(b) => b.append_value(
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{v}` is not a number"))?,
            ),
            ColBuilder::I32(b) => {
                let x = v
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{v}` is not an integer"))?;
                if x.fract() != 0.0 || x.abs() > i32::MAX as f64 {
                    return Err(format!("`{v}` is not a 32-bit integer"));
                }
                b.append_value(x as i32)
            }
            ColBuilder::Ts(b) => {
                let t =
                    parse_datetime(v.trim()).ok_or_else(|| format!("`{v}` is not a date-time"))?;
                b.append_value(t.and_utc().timestamp_millis())
            }
            ColBuilder::Date(b) => {
                let t = parse_datetime(v.trim()).ok_or_else(|| format!("`{v}` is not a date"))?;
                b.append_value((t.and_utc().timestamp().div_euclid(86_400)) as i32)
            }
        }
        Ok(())
    }

    fn finish(
        self,
        schema: SchemaRef,
    ) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        let arrays: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    ColBuilder::Text(mut b) => Arc::new(b.finish()),
                    ColBuilder::F64(mut b) => Arc::new(b.finish()),
                    ColBuilder::I32(mut b) => Arc::new(b.finish()),
                    ColBuilder::Ts(mut b) => Arc::new(b.finish()),
                    ColBuilder::Date(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(schema, arrays)
    }
}

/// Reads the mapped columns of one view into a batch of the contract schema. A column the
/// driver declares as text where the contract wants a number or a date is fetched as text and
/// converted as a Parquet file's is (`contract::convert`): the same missing spellings, the same
/// errors naming the rows, the same `sources.strict`.
fn read_view(
    conn: &odbc_api::Connection<'_>,
    view: &str,
    table: &str,
    shown: &str,
    sources: &Sources,
    mapping: &Mapping,
    bulk: bool,
) -> Result<(RecordBatch, Vec<String>, Vec<contract::Nulled>)> {
    let where_ = format!("{table} on {shown}");
    let what = format!("{view} ({where_})");
    let described = describe(conn, view, table, shown)?;
    let available: Vec<String> = described.iter().map(|(n, _)| n.clone()).collect();
    mapping.check_source_columns(view, &where_, &available)?;
    let contract = contract_schema(view);
    let cols: Vec<&String> = mapping.columns(view).keys().collect();
    let wanted: Vec<Field> = cols
        .iter()
        .map(|c| {
            contract
                .field_with_name(c)
                .cloned()
                .unwrap_or_else(|_| Field::new(c.as_str(), DataType::Utf8, true))
                .with_nullable(true)
        })
        .collect();
    let mut to_convert = Vec::new();
    let fetched: Vec<Field> = wanted
        .iter()
        .map(|f| {
            let declared_text = described
                .iter()
                .any(|(n, t)| n == f.name() && is_text_type(t));
            if declared_text && *f.data_type() != DataType::Utf8 {
                to_convert.push((f.name().clone(), f.data_type().clone()));
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.clone()
            }
        })
        .collect();
    let batch = fetch(conn, table, &Arc::new(Schema::new(fetched)), bulk, &what)?;
    if to_convert.is_empty() || batch.num_rows() == 0 {
        let batch = batch_in(batch, Arc::new(Schema::new(wanted)))?;
        return Ok((batch, available, vec![]));
    }
    let (batch, nulled) = contract::convert(view, &where_, &[batch], &to_convert, sources)?;
    Ok((batch, available, nulled))
}

/// ODBC type names (as [`describe`] spells them) of character columns.
fn is_text_type(t: &str) -> bool {
    [
        "Char",
        "Varchar",
        "LongVarchar",
        "WChar",
        "WVarchar",
        "WLongVarchar",
    ]
    .iter()
    .any(|p| t == *p || t.starts_with(&format!("{p} ")) || t.starts_with(&format!("{p}{{")))
}

/// `batch` (no rows, or no column to convert) in `schema`: an empty text column becomes an
/// empty column of the contract type.
fn batch_in(batch: RecordBatch, schema: SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(e.to_string()))?;
    RecordBatch::try_new(schema, columns).map_err(|e| Error::internal(e.to_string()))
}

/// `SELECT "c1", "c2", ... FROM table` (the only form mdbtools understands), read into `schema`
/// (bulk through arrow-odbc, or row by row).
fn fetch(
    conn: &odbc_api::Connection<'_>,
    table: &str,
    schema: &SchemaRef,
    bulk: bool,
    what: &str,
) -> Result<RecordBatch> {
    let select: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name().replace('"', "\"\"")))
        .collect();
    let sql = format!("SELECT {} FROM {table}", select.join(", "));
    let cursor = conn
        .execute(&sql, (), None)
        .map_err(|e| Error::input(what, format!("query failed: {}", redact(&e.to_string()))))?
        .ok_or_else(|| Error::input(what, "the query returned no result set"))?;
    if !bulk {
        return read_rows(cursor, schema, what);
    }
    let reader = arrow_odbc::OdbcReaderBuilder::new()
        .with_schema(Arc::clone(schema))
        .with_max_num_rows_per_batch(8192)
        .with_max_text_size(4096)
        .build(cursor)
        .map_err(|e| Error::input(what, format!("cannot set up a bulk read: {e}")))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| {
            Error::input(
                what,
                format!(
                    "reading failed (connection lost?): {}",
                    redact(&e.to_string())
                ),
            )
        })?);
    }
    arrow::compute::concat_batches(schema, &batches).map_err(|e| Error::internal(e.to_string()))
}

/// Reads columns of any table into the given schema over a fresh connection (no retries):
/// for tools and tests. `connection` must already contain any password.
pub fn read_table(connection: &str, table: &str, schema: SchemaRef) -> Result<RecordBatch> {
    let env = odbc_env()?;
    let shown = redact(connection);
    let conn = connect_nul_safe(env, connection).map_err(|e| {
        Error::input(
            format!("ODBC connection {shown}"),
            format!("cannot connect: {}", redact(&e.to_string())),
        )
    })?;
    let what = format!("{table} on {shown}");
    let available: Vec<String> = describe(&conn, table, table, &shown)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for f in schema.fields() {
        if !available.iter().any(|a| a == f.name()) {
            return Err(Error::input(
                &what,
                format!(
                    "no column `{}` (columns: {})",
                    f.name(),
                    available.join(", ")
                ),
            ));
        }
    }
    fetch(&conn, table, &schema, supports_bulk(&conn), &what)
}

/// Row-by-row fetch for drivers without block cursors (mdbtools).
fn read_rows(mut cursor: impl Cursor, schema: &SchemaRef, what: &str) -> Result<RecordBatch> {
    let mut cols = Columns::new(schema);
    let mut buf = Vec::new();
    let mut row_no = 0usize;
    while let Some(mut row) = cursor.next_row().map_err(|e| {
        Error::input(
            what,
            format!("reading row {}: {}", row_no + 1, redact(&e.to_string())),
        )
    })? {
        row_no += 1;
        for (i, f) in schema.fields().iter().enumerate() {
            let present = row.get_text((i + 1) as u16, &mut buf).map_err(|e| {
                Error::input(what, format!("row {row_no}, column {}: {e}", f.name()))
            })?;
            let text = if present {
                Some(String::from_utf8_lossy(&buf).into_owned())
            } else {
                None
            };
            cols.push(i, text.as_deref()).map_err(|m| {
                Error::input(what, format!("row {row_no}, column {}: {m}", f.name()))
            })?;
        }
    }
    cols.finish(Arc::clone(schema))
        .map_err(|e| Error::internal(e.to_string()))
}

/// SHA-256 over a batch's column names and values (as text, NULL distinct from ''), so the same
/// data read through different drivers gets the same id.
pub fn hash_batch(batch: &RecordBatch) -> Result<String> {
    let mut h = Sha256::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        h.update(f.name().as_bytes());
        h.update([0x1e]);
        let text =
            arrow::compute::cast(c, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
        let text = crate::engine::strings(&text);
        for v in text.iter() {
            match v {
                Some(s) => {
                    h.update([0x01]);
                    h.update(s.as_bytes());
                }
                None => h.update([0x00]),
            }
            h.update([0x1f]);
        }
    }
    Ok(crate::hash::hex(&h.finalize()))
}

/// For `sources check`: (view, table, redacted connection + fetch mode, columns with ODBC
/// types, row count) of every configured view. Counts with `SELECT COUNT(*)`.
#[allow(clippy::type_complexity)]
pub fn describe_all(
    sources: &Sources,
) -> Result<Vec<(String, String, String, Vec<(String, String)>, u64)>> {
    let (conn, shown) = connect(sources)?;
    let mode = if supports_bulk(&conn) {
        "bulk fetch"
    } else {
        "row-by-row fetch: the driver has no block cursors"
    };
    let mut out = Vec::new();
    for v in VIEWS {
        let table = table_for(sources, v.erp_name);
        let cols = describe(&conn, v.erp_name, &table, &shown)?;
        let what = format!("{} ({table} on {shown})", v.erp_name);
        let mut cursor = conn
            .execute(&format!("SELECT COUNT(*) FROM {table}"), (), None)
            .map_err(|e| {
                Error::input(
                    &what,
                    format!("cannot count rows: {}", redact(&e.to_string())),
                )
            })?
            .ok_or_else(|| Error::input(&what, "COUNT(*) returned no result set"))?;
        let mut buf = Vec::new();
        let mut rows = 0u64;
        if let Some(mut row) = cursor
            .next_row()
            .map_err(|e| Error::input(&what, e.to_string()))?
        {
            row.get_text(1, &mut buf)
                .map_err(|e| Error::input(&what, e.to_string()))?;
            rows = String::from_utf8_lossy(&buf)
                .trim()
                .parse::<f64>()
                .unwrap_or(0.0) as u64;
        }
        out.push((
            v.erp_name.to_string(),
            table,
            format!("{shown} ({mode})"),
            cols,
            rows,
        ));
    }
    Ok(out)
}

/// The table behind an ERP view: `sources.tables.<view>`, else the view's own name.
fn table_for(sources: &Sources, view: &str) -> String {
    sources
        .tables
        .get(view)
        .cloned()
        .unwrap_or_else(|| view.to_string())
}

/// Reads every view (blocking; call from `spawn_blocking`).
pub fn read_all(sources: &Sources, mapping: &Mapping) -> Result<Vec<(SourceInfo, RecordBatch)>> {
    // A connection dropped mid-read is retried from the start (reads are idempotent), with the
    // same bounded backoff as connecting.
    let attempts = sources.retries + 1;
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=attempts {
        match read_all_once(sources, mapping) {
            Err(Error::Input { what, message })
                if is_transient_text(&message) && !what.starts_with("ODBC connection") =>
            {
                if attempt == attempts {
                    return Err(Error::input(
                        what,
                        format!(
                            "the connection was lost while reading, {attempts} attempt(s): {message}"
                        ),
                    ));
                }
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns")
}

fn read_all_once(sources: &Sources, mapping: &Mapping) -> Result<Vec<(SourceInfo, RecordBatch)>> {
    let (conn, shown) = connect(sources)?;
    let bulk = supports_bulk(&conn);
    let mut out = Vec::new();
    for v in VIEWS {
        let table = table_for(sources, v.erp_name);
        let (batch, columns, nulled) =
            read_view(&conn, v.erp_name, &table, &shown, sources, mapping, bulk)?;
        let h = hash_batch(&batch)?;
        out.push((
            SourceInfo {
                view: v.erp_name.to_string(),
                location: format!(
                    "{table} on {shown} ({} fetch)",
                    if bulk { "bulk" } else { "row-by-row" }
                ),
                columns,
                sha256: h,
                nulled,
            },
            batch,
        ));
    }
    Ok(out)
}

/// Each view's mapped columns as the driver's text (nothing converted).
pub fn read_raw(sources: &Sources, mapping: &Mapping) -> Result<Vec<super::RawView>> {
    let (conn, shown) = connect(sources)?;
    let bulk = supports_bulk(&conn);
    let mut out = Vec::new();
    for v in VIEWS {
        let table = table_for(sources, v.erp_name);
        let where_ = format!("{table} on {shown}");
        let described = describe(&conn, v.erp_name, &table, &shown)?;
        let available: Vec<String> = described.iter().map(|(n, _)| n.clone()).collect();
        mapping.check_source_columns(v.erp_name, &where_, &available)?;
        let cols: Vec<&String> = mapping.columns(v.erp_name).keys().collect();
        let schema = Arc::new(Schema::new(
            cols.iter()
                .map(|c| Field::new(c.as_str(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let what = format!("{} ({where_})", v.erp_name);
        let batch = fetch(&conn, &table, &schema, bulk, &what)?;
        let source_types = cols
            .iter()
            .map(|c| {
                let t = described
                    .iter()
                    .find(|(n, _)| n == *c)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                (c.to_string(), t)
            })
            .collect();
        out.push(super::RawView {
            view: v.erp_name.to_string(),
            location: where_,
            source_types,
            batch,
        });
    }
    Ok(out)
}

pub async fn register_all(
    ctx: &SessionContext,
    sources: &Sources,
    mapping: &Mapping,
) -> Result<Vec<SourceInfo>> {
    let s = sources.clone();
    let m = mapping.clone();
    let read = tokio::task::spawn_blocking(move || read_all(&s, &m))
        .await
        .map_err(|e| Error::internal(format!("ODBC reader thread: {e}")))??;
    let mut infos = Vec::new();
    for (info, batch) in read {
        let _ = ctx.deregister_table(datafusion::common::TableReference::bare(info.view.as_str()));
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])
            .map_err(|e| Error::internal(e.to_string()))?;
        ctx.register_table(
            datafusion::common::TableReference::bare(info.view.as_str()),
            Arc::new(table),
        )
        .map_err(|e| Error::internal(e.to_string()))?;
        infos.push(info);
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("Driver={FreeTDS};Server=db;UID=sa;PWD=s3cret;"),
            "Driver={FreeTDS};Server=db;UID=sa;PWD=***;"
        );
        assert_eq!(redact("DSN=erp;Password=x"), "DSN=erp;Password=***");
    }

    #[test]
    fn a_missing_database_file_is_named() {
        let err = super::check_database_file(
            "Driver={MDBTools};DBQ=/nonexistent.accdb",
            "Driver={MDBTools};DBQ=/nonexistent.accdb",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DBQ=/nonexistent.accdb cannot be read: No such file"),
            "{err}"
        );
        assert!(super::check_database_file("DSN=erp;UID=u", "DSN=erp;UID=u").is_ok());
        assert_eq!(
            super::attribute("Driver={x};dbq={/a b/c.accdb};", "DBQ").as_deref(),
            Some("/a b/c.accdb")
        );
    }

    #[test]
    fn passwords_are_hidden_whatever_their_quoting() {
        for (conn, want) in [
            ("DSN=erp;UID=sa;PWD=secret", "DSN=erp;UID=sa;PWD=***"),
            ("PWD={abc;secret123};UID=x", "PWD=***;UID=x"),
            (
                "Driver={ODBC Driver 18};Password={a}}b;c};Server=h",
                "Driver={ODBC Driver 18};Password=***;Server=h",
            ),
            ("pwd = {x;y}", "pwd =***"),
            ("UID=u;PassWord=p", "UID=u;PassWord=***"),
            ("PWD={unclosed;UID=u", "PWD=***"),
            (
                "login failed: PWD=hunter2 rejected",
                "login failed: PWD=***",
            ),
            ("no secret here", "no secret here"),
        ] {
            let got = redact(conn);
            assert_eq!(got, want, "{conn}");
            for leaked in ["secret", "abc", "hunter2", "b;c"] {
                assert!(!got.contains(leaked) || conn.contains("no secret"), "{got}");
            }
        }
    }
}
