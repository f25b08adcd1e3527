//! ODBC sources through real drivers: MS Access files through the mdbtools driver (types,
//! non-ASCII text, NULL vs '', the linked-table error, Access-vs-Parquet parity), and PostgreSQL
//! (`dbo` views, the SQL Server stand-in, bulk fetch) with its failure modes. Skipped with a
//! printed reason when `../shared`, the drivers or the server are absent, unless .ci/run requires
//! them.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use trainer::engine::sources::odbc::read_table;

use crate::common::{
    Project, assert_same_files, has_odbc_driver, odbc_project, postgres, read_bytes, redact,
    sample_dir, shared, snapshots, trainer,
};

fn mdb(file: &std::path::Path) -> String {
    format!("DRIVER={{MDBTools}};DBQ={}", file.display())
}

fn access() -> Option<std::path::PathBuf> {
    let s = shared()?;
    has_odbc_driver("MDBTools").then(|| s.join("data"))
}

#[test]
fn access_types_and_values() {
    let Some(data) = access() else { return };
    let schema = Arc::new(Schema::new(vec![
        Field::new("A", DataType::Utf8, true),
        Field::new("B", DataType::Utf8, true),
        Field::new("E", DataType::Float64, true),
        Field::new("F", DataType::Float64, true),
        Field::new("G", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let b = read_table(&mdb(&data.join("access/testV1997.mdb")), "Table1", schema).unwrap();
    assert_eq!(b.num_rows(), 2);
    let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(a.value(1), "abcdefg");
    let e = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(e.value(1), 333333333.0);
    let f = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(f.value(1), 444.555);
    let g = b
        .column(4)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(g.value(1), 148_953_600_000, "1974-09-21 00:00:00");
}

#[test]
fn access_non_ascii_text() {
    let Some(data) = access() else { return };
    let schema = Arc::new(Schema::new(vec![Field::new(
        "Unicode",
        DataType::Utf8,
        true,
    )]));
    let b = read_table(
        &mdb(&data.join("access/testUnicodeCompV2003.mdb")),
        "[Table]",
        schema,
    )
    .unwrap();
    let u = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let all: Vec<&str> = u.iter().flatten().collect();
    assert!(all.contains(&"ääkkösiä"), "{all:?}");
    assert!(all.contains(&"Мир"), "{all:?}");
}

#[test]
fn access_invalid_dates_are_a_clear_error() {
    // mdbtools returns the impossible '1900-01-00 00:00:00' for dates before 1900.
    let Some(data) = access() else { return };
    let schema = Arc::new(Schema::new(vec![Field::new(
        "DateField",
        DataType::Timestamp(TimeUnit::Millisecond, None),
        true,
    )]));
    let err = read_table(
        &mdb(&data.join("access/oldDatesV2007.accdb")),
        "Table1",
        schema,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row 1, column DateField") && err.contains("is not a date-time"),
        "{err}"
    );
}

#[test]
fn access_linked_table_is_named() {
    let Some(data) = access() else { return };
    let schema = Arc::new(Schema::new(vec![Field::new("ID", DataType::Utf8, true)]));
    let err = read_table(
        &mdb(&data.join("access/odbcLinkerTestV2007.accdb")),
        "Ordrar",
        schema,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Ordrar in this Access file is a link to a SQL Server view"),
        "{err}"
    );
    assert!(err.contains("connect to the SQL Server directly"), "{err}");
    // The local table of the same file reads fine.
    let schema = Arc::new(Schema::new(vec![Field::new("ID", DataType::Float64, true)]));
    let b = read_table(
        &mdb(&data.join("access/odbcLinkerTestV2007.accdb")),
        "Lokal",
        schema,
    )
    .unwrap();
    assert_eq!(b.num_rows(), 1);
}

#[test]
fn access_missing_values_and_text_match_parquet() {
    // The Access file keeps NULL and '' distinct; the mdbtools driver reports '' as NULL (a
    // driver limitation: it cannot even filter on IS NULL). Both spellings are "missing" to the
    // cleaning layer, so what must hold is: the same rows are missing, and every other value is
    // identical to the Parquet copy of the same data.
    let Some(data) = access() else { return };
    let erp = data.join("erp_sample");
    let names = [
        "ITEM_CD",
        "GROUP3",
        "ITEM_SUFFIX",
        "OUT_SEALSIZE_UOM",
        "RAW_MATL_KINDNM",
        "ITEM_ACCT",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let b = read_table(
        &mdb(&erp.join("erp_sample_v2016.accdb")),
        "dbo_BI_ITEM_INFO_VIEW",
        schema,
    )
    .unwrap();
    let pq = trainer::transform::load_table(&erp.join("dbo_BI_ITEM_INFO_VIEW.parquet")).unwrap();
    assert_eq!(b.num_rows(), pq.num_rows());
    for name in names {
        let a = b
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let p = pq
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for r in 0..a.len() {
            let av = a.is_valid(r).then(|| a.value(r)).filter(|v| !v.is_empty());
            let pv = p.is_valid(r).then(|| p.value(r)).filter(|v| !v.is_empty());
            assert_eq!(av, pv, "{name}, row {r}");
        }
    }
    // Korean text and U+3000 come through unchanged.
    let acct = b
        .column_by_name("ITEM_ACCT")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(acct.iter().flatten().any(|v| v == "반제품:M1"));
    let nm = b
        .column_by_name("RAW_MATL_KINDNM")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(nm.iter().flatten().any(|v| v.contains('\u{3000}')));
}

#[test]
fn access_trains_identically_to_parquet() {
    let Some(data) = access() else { return };
    let erp = data.join("erp_sample");
    let acc = odbc_project(
        &mdb(&erp.join("erp_sample_v2016.accdb")),
        "",
        &erp.join("item_metadata.json"),
    );
    acc.run_ok();
    let pq = Project::with(&erp, |t| t);
    pq.run_ok();
    let files = [
        "vectors.npy",
        "hnsw_index.bin",
        "items.parquet",
        "fitted/fit_target_stats.parquet",
        "fitted/dims.parquet",
    ];
    assert_same_files(&acc.models(), &pq.models(), &files, "Access vs Parquet");
    // sources check lists the views with ODBC types and row counts.
    let out = trainer(&["sources", "check", "--config", acc.config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = redact(&String::from_utf8_lossy(&out.stdout), &acc)
        .replace(&data.to_string_lossy().to_string(), "[SHARED]");
    snapshots().bind(|| insta::assert_snapshot!(text));
    // An extract trains to the same model and reports the extract's snapshot id.
    let ext = tempfile::tempdir().unwrap();
    let out_dir = ext.path().join("extract");
    let out = trainer(&[
        "extract",
        "--config",
        acc.config.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_extract = Project::new(&out_dir);
    from_extract.run_ok();
    assert!(
        read_bytes(&from_extract.models().join("vectors.npy"))
            == read_bytes(&acc.models().join("vectors.npy"))
    );
    let ex: serde_json::Value =
        serde_json::from_slice(&read_bytes(&out_dir.join("extract.json"))).unwrap();
    let tm: serde_json::Value = serde_json::from_slice(&read_bytes(
        &from_extract.models().join("training_metadata.json"),
    ))
    .unwrap();
    assert_eq!(ex["snapshot_id"], tm["data_snapshot_id"]);
}

// ---- PostgreSQL (SQL Server stand-in) -----------------------------------------------------------

fn pg_type(t: &DataType) -> &'static str {
    match t {
        DataType::Float64 => "double precision",
        DataType::Int32 => "integer",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Date32 => "date",
        _ => "text",
    }
}

/// Loads data/sample into PostgreSQL: tables dbo.<view>_t and views dbo.<VIEW> (folded to lower
/// case, as unquoted names are), plus two broken views for the failure tests. Idempotent.
fn load_postgres(conn_str: &str, password: &str) {
    use odbc_api::{ConnectionOptions, Environment};
    // Tests run in parallel threads: load once.
    static LOADED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if *loaded {
        return;
    }
    let env = Environment::new().unwrap();
    let conn = env
        .connect_with_connection_string(
            &format!("{conn_str}PWD={{{password}}};"),
            ConnectionOptions::default(),
        )
        .unwrap();
    let views = [
        ("dbo_BI_ITEM_INFO_VIEW", "BI_ITEM_INFO_VIEW"),
        ("dbo_BI_ROUTING_VIEW", "BI_ROUTING_VIEW"),
        ("dbo_BI_WORK_ORDER_RESULTS", "BI_WORK_ORDER_RESULTS"),
    ];
    let exists = conn
        .execute("SELECT 1 FROM dbo.bi_item_info_view LIMIT 1", (), None)
        .is_ok();
    if exists {
        *loaded = true;
        return;
    }
    conn.execute("CREATE SCHEMA IF NOT EXISTS dbo", (), None)
        .unwrap();
    for (file, view) in views {
        let batch =
            trainer::transform::load_table(&sample_dir().join(format!("{file}.parquet"))).unwrap();
        let cols: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("\"{}\" {}", f.name(), pg_type(f.data_type())))
            .collect();
        let table = format!("dbo.{}_t", view.to_lowercase());
        conn.execute(
            &format!("CREATE TABLE {table} ({})", cols.join(", ")),
            (),
            None,
        )
        .unwrap();
        let schema = batch.schema();
        let mut reader = arrow::record_batch::RecordBatchIterator::new(vec![Ok(batch)], schema);
        arrow_odbc::insert_into_table(&conn, &mut reader, &table, 1000).unwrap();
        conn.execute(
            &format!("CREATE VIEW dbo.{view} AS SELECT * FROM {table}"),
            (),
            None,
        )
        .unwrap();
    }
    *loaded = true;
    // Missing column: the item view without SealTypeGrup.
    conn.execute(
        "CREATE VIEW dbo.items_missing_col AS SELECT \"ITEM_CD\", \"PART_TYPE\" FROM dbo.bi_item_info_view_t",
        (),
        None,
    )
    .unwrap();
    // OUTDIAMETER as text: valid numbers only, and with seven values that are not numbers.
    for (table, bad) in [("items_text_dims", 0), ("items_bad_dims", 7)] {
        for sql in [
            format!("CREATE TABLE dbo.{table} AS SELECT * FROM dbo.bi_item_info_view_t"),
            format!("ALTER TABLE dbo.{table} ALTER COLUMN \"OUTDIAMETER\" TYPE text"),
            format!(
                "UPDATE dbo.{table} SET \"OUTDIAMETER\" = '12,5' WHERE \"ITEM_CD\" IN \
                 (SELECT \"ITEM_CD\" FROM dbo.{table} ORDER BY \"ITEM_CD\" LIMIT {bad})"
            ),
        ] {
            conn.execute(&sql, (), None).unwrap();
        }
    }
    // Connection dropped mid-read: the server terminates this very session at row 5000.
    conn.execute(
        "CREATE VIEW dbo.routing_drops AS SELECT r.*, CASE WHEN row_number() OVER () = 5000 \
         THEN pg_terminate_backend(pg_backend_pid()) END AS boom FROM dbo.bi_routing_view_t r",
        (),
        None,
    )
    .unwrap();
}

const PG_TABLES: &str = "  password_env: TRAINER_PG_PASSWORD\n  retries: 2\n  tables:\n    dbo_BI_ITEM_INFO_VIEW: dbo.BI_ITEM_INFO_VIEW\n    dbo_BI_ROUTING_VIEW: dbo.BI_ROUTING_VIEW\n    dbo_BI_WORK_ORDER_RESULTS: dbo.BI_WORK_ORDER_RESULTS\n";

fn pg() -> Option<(String, String)> {
    let (c, p) = postgres()?;
    if !has_odbc_driver("PostgreSQL Unicode") {
        return None;
    }
    load_postgres(&c, &p);
    Some((c, p))
}

#[test]
fn postgres_trains_identically_to_parquet() {
    let Some((conn, _)) = pg() else { return };
    let p = odbc_project(&conn, PG_TABLES, &sample_dir().join("item_metadata.json"));
    p.run_ok();
    let pq = Project::new(&sample_dir());
    pq.run_ok();
    let files = [
        "vectors.npy",
        "hnsw_index.bin",
        "items.parquet",
        "fitted/fit_target_stats.parquet",
        "fitted/dims.parquet",
    ];
    assert_same_files(&p.models(), &pq.models(), &files, "PostgreSQL vs Parquet");
    let tm = String::from_utf8(read_bytes(&p.models().join("training_metadata.json"))).unwrap();
    assert!(
        tm.contains("bulk fetch"),
        "psqlODBC supports block cursors: the bulk path must be used"
    );
    let (_, password) = postgres().unwrap();
    assert!(
        !tm.contains(&password),
        "the password leaked into training_metadata.json"
    );
}

/// A column PostgreSQL declares as text where the contract wants a number is converted as a
/// Parquet file's is: valid numbers train identically, bad ones stop the run naming the column,
/// or become counted NULLs in a lenient column.
#[test]
fn postgres_text_in_a_numeric_column() {
    let Some((conn, password)) = pg() else { return };
    let meta = sample_dir().join("item_metadata.json");
    let as_text = PG_TABLES.replace("dbo.BI_ITEM_INFO_VIEW", "dbo.items_text_dims");
    let p = odbc_project(&conn, &as_text, &meta);
    p.run_ok();
    let pq = Project::new(&sample_dir());
    pq.run_ok();
    assert_same_files(
        &p.models(),
        &pq.models(),
        &["vectors.npy", "hnsw_index.bin", "items.parquet"],
        "OUTDIAMETER as text in PostgreSQL vs Parquet",
    );
    let bad = PG_TABLES.replace("dbo.BI_ITEM_INFO_VIEW", "dbo.items_bad_dims");
    let err = fails_cleanly(
        &odbc_project(&conn, &bad, &meta),
        "column `OUTDIAMETER` must hold numeric values (the ERP contract), but 7 of its",
        &password,
    );
    assert!(err.contains("dbo.items_bad_dims on"), "{err}");
    let lenient = odbc_project(
        &conn,
        &format!("{bad}  lenient_columns: [OUTDIAMETER]\n"),
        &meta,
    );
    lenient.run_ok();
    let tm: serde_json::Value = serde_json::from_slice(&read_bytes(
        &lenient.models().join("training_metadata.json"),
    ))
    .unwrap();
    assert_eq!(tm["sources"][0]["nulled"][0]["count"], 7, "{tm}");
}

/// Runs `trainer run` and checks: exit code 3, the message contains `expect`, the password is
/// nowhere in the output, and no model was written.
fn fails_cleanly(p: &Project, expect: &str, password: &str) -> String {
    let out = p.run();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(expect), "expected `{expect}` in:\n{err}");
    assert!(!err.contains(password), "password printed:\n{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(password));
    assert!(!p.models().exists(), "a failed run must not write a model");
    eprintln!("--- {expect}:\n{err}");
    let log = std::fs::read_dir(p.dir.path().join("logs"))
        .map(|d| d.count())
        .unwrap_or(0);
    if log > 0 {
        for e in std::fs::read_dir(p.dir.path().join("logs")).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(!text.contains(password), "password in the log");
        }
    }
    err
}

#[test]
fn postgres_failures_are_clear() {
    let Some((conn, password)) = pg() else { return };
    let meta = sample_dir().join("item_metadata.json");
    // Wrong password (the variable is set, its value is wrong).
    let p = odbc_project(
        &conn,
        &PG_TABLES.replace("TRAINER_PG_PASSWORD", "TRAINER_TEST_WRONG_PASSWORD"),
        &meta,
    );
    // SAFETY: tests in this binary do not read this variable concurrently.
    unsafe { std::env::set_var("TRAINER_TEST_WRONG_PASSWORD", "wrong-password-123") };
    let err = fails_cleanly(
        &p,
        "cannot connect after 1 attempt(s)",
        "wrong-password-123",
    );
    assert!(err.contains("The login was refused"), "{err}");
    // Password variable not set.
    let p = odbc_project(
        &conn,
        &PG_TABLES.replace("TRAINER_PG_PASSWORD", "TRAINER_TEST_UNSET_VAR"),
        &meta,
    );
    fails_cleanly(
        &p,
        "environment variable TRAINER_TEST_UNSET_VAR is not set",
        &password,
    );
    // Unreachable server (nothing listens on port 1): retried, then a clear error.
    let p = odbc_project(&conn.replace("Port=", "Port=1;X="), PG_TABLES, &meta);
    let err = fails_cleanly(&p, "cannot connect after 3 attempt(s)", &password);
    assert!(err.contains("PWD=***") || !err.contains("PWD"), "{err}");
    // Unknown driver name.
    let p = odbc_project("Driver={No Such Driver};Server=127.0.0.1", "", &meta);
    fails_cleanly(&p, "odbcinst -q -d", &password);
    // Missing table.
    let p = odbc_project(
        &conn,
        &PG_TABLES.replace("dbo.BI_WORK_ORDER_RESULTS", "dbo.no_such_view"),
        &meta,
    );
    fails_cleanly(&p, "cannot read table dbo.no_such_view", &password);
    // Missing column.
    let p = odbc_project(
        &conn,
        &PG_TABLES.replace("dbo.BI_ITEM_INFO_VIEW", "dbo.items_missing_col"),
        &meta,
    );
    fails_cleanly(&p, "mapped columns", &password);
    // Connection dropped mid-read.
    let p = odbc_project(
        &conn,
        &PG_TABLES.replace("dbo.BI_ROUTING_VIEW", "dbo.routing_drops"),
        &meta,
    );
    fails_cleanly(
        &p,
        "the connection was lost while reading, 3 attempt(s)",
        &password,
    );
}
