//! The corpus of bad and hostile inputs (issue 18): config, mapping, data, item metadata, SQL,
//! ODBC, output, concurrency and interruption. Every case runs against a project that already
//! holds a trained model and asserts the documented exit code, an `error:` message (no panic),
//! and that the previous model is byte-identical afterwards. The messages are snapshots, one
//! table per group, so a reworded or misplaced message shows up in review.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use arrow::array::Int64Array;
use arrow::record_batch::RecordBatch;
use trainer::transform::load_table;

use crate::common::{
    Project, copy_tree, has_odbc_driver, repo, sample_dir, set_line, snapshots, texts, tree_bytes,
    with_column,
};

/// A trained model of the bundled sample, made once and copied into every case's project.
fn template() -> &'static Path {
    static T: OnceLock<(Project, PathBuf)> = OnceLock::new();
    &T.get_or_init(|| {
        let p = Project::new(&sample_dir());
        p.run_ok();
        let m = p.models();
        (p, m)
    })
    .1
}

/// One case's world: a copy of the sample data, of the SQL and of the mapping it may break, and a
/// project (config) over them that holds a copy of the trained model.
struct Case {
    data: tempfile::TempDir,
    sql: tempfile::TempDir,
    mapping: tempfile::TempDir,
    project: Project,
    env: Vec<(String, String)>,
}

impl Case {
    fn new() -> Case {
        Self::with(|t| t)
    }

    /// A case whose config text goes through `edit` (after the paths are pointed at the copies).
    fn with(edit: impl FnOnce(String) -> String) -> Case {
        let data = tempfile::tempdir().unwrap();
        copy_tree(&sample_dir(), data.path());
        let sql = tempfile::tempdir().unwrap();
        copy_tree(&repo().join("sql"), sql.path());
        let mapping = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("config/schema_mappings.yaml"),
            mapping.path().join("schema_mappings.yaml"),
        )
        .unwrap();
        let (sql_path, map_path) = (sql.path().to_path_buf(), mapping.path().to_path_buf());
        let project = Project::with(data.path(), |t| {
            let t = t
                .replace(
                    &format!("sql_dir: {}", repo().join("sql").display()),
                    &format!("sql_dir: {}", sql_path.display()),
                )
                .replace(
                    &format!(
                        "mapping: {}",
                        repo().join("config/schema_mappings.yaml").display()
                    ),
                    &format!(
                        "mapping: {}",
                        map_path.join("schema_mappings.yaml").display()
                    ),
                );
            edit(t)
        });
        copy_tree(template(), &project.models());
        Case {
            data,
            sql,
            mapping,
            project,
            env: Vec::new(),
        }
    }

    fn view(&self, view: &str) -> PathBuf {
        self.data.path().join(format!("{view}.parquet"))
    }

    /// Rewrites a view's Parquet file through `f`.
    fn edit_view(&self, view: &str, f: impl FnOnce(RecordBatch) -> RecordBatch) {
        let path = self.view(view);
        let b = load_table(&path).unwrap();
        trainer::parquet_io::write_parquet(&path, &f(b)).unwrap();
    }

    fn edit_file(&self, path: &Path, f: impl FnOnce(String) -> String) {
        let t = std::fs::read_to_string(path).unwrap();
        let changed = f(t.clone());
        assert_ne!(changed, t, "the case must change {}", path.display());
        std::fs::write(path, changed).unwrap();
    }

    fn sql_file(&self, rel: &str) -> PathBuf {
        self.sql.path().join(rel)
    }

    fn mapping_file(&self) -> PathBuf {
        self.mapping.path().join("schema_mappings.yaml")
    }

    fn trainer(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
        c.args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn run(&self) -> Output {
        let cfg = self.project.config.to_str().unwrap().to_string();
        self.trainer(&["run", "--quiet", "--config", &cfg])
    }

    fn update(&self) -> Output {
        let cfg = self.project.config.to_str().unwrap().to_string();
        self.trainer(&["update", "--quiet", "--config", &cfg])
    }

    fn recommend(&self, args: &[&str]) -> Output {
        let m = self.project.models().to_str().unwrap().to_string();
        let mut a = vec!["recommend", "--model", &m];
        a.extend_from_slice(args);
        self.trainer(&a)
    }

    /// Temporary paths of this case, replaced for the snapshot.
    fn redact(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (dir, name) in [
            (self.data.path(), "[DATA]"),
            (self.sql.path(), "[SQL]"),
            (self.mapping.path(), "[MAPPING]"),
            (self.project.dir.path(), "[TMP]"),
            (repo().as_path(), "[REPO]"),
        ] {
            t = t.replace(&dir.display().to_string(), name);
        }
        t
    }
}

/// A case of a group: its name, the exit code it must give (-1: killed), its world and what
/// it runs.
type CaseRow<'a> = (&'a str, i32, Case, fn(&Case) -> Output);

/// Runs the cases of one group: each must exit with its code, say `error: ...` without a panic
/// (or, for a kill, abort at its failpoint) and leave the model byte-identical. The table of
/// outcomes is the group's snapshot.
fn check(group: &str, cases: Vec<CaseRow>) {
    let before = tree_bytes(template());
    let mut table = String::new();
    for (name, want, case, act) in cases {
        let out = act(&case);
        let err = case.redact(&String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(code, want, "{group}/{name}: exit code\n{err}");
        assert!(!err.contains("panicked"), "{group}/{name}: panic\n{err}");
        let start = err
            .lines()
            .position(|l| l.starts_with("error: ") || l.starts_with("TRAINER_FAILPOINT="))
            .unwrap_or_else(|| panic!("{group}/{name}: no error line\n{err}"));
        // The whole message (a driver's diagnostics span lines), on one line of the table.
        let message = err.lines().skip(start).collect::<Vec<_>>().join(" | ");
        assert!(
            tree_bytes(&case.project.models()) == before,
            "{group}/{name}: the previous model changed"
        );
        table.push_str(&format!("{name} (exit {code}): {message}\n"));
    }
    let mut settings = snapshots();
    // Temporary folders outside the case's own (named above) are not the message's point.
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMPDIR]");
    settings.bind(|| insta::assert_snapshot!(format!("corpus_{group}"), table));
}

const ITEMS: &str = "dbo_BI_ITEM_INFO_VIEW";
const ROUTINGS: &str = "dbo_BI_ROUTING_VIEW";
const WORK_ORDERS: &str = "dbo_BI_WORK_ORDER_RESULTS";

/// A config edit: the line of `key` becomes `line`.
fn set(key: &'static str, line: &'static str) -> impl FnOnce(String) -> String {
    move |t: String| set_line(&t, key, line.to_string())
}

#[test]
fn config() {
    let missing = Case::new();
    std::fs::remove_file(&missing.project.config).unwrap();
    let not_yaml = Case::new();
    std::fs::write(&not_yaml.project.config, "hnsw: [unclosed\n  : :\n").unwrap();
    check(
        "config",
        vec![
            ("config file missing", 2, missing, Case::run),
            ("not YAML", 2, not_yaml, Case::run),
            (
                "unknown key",
                2,
                Case::with(|t| {
                    t.replace("  ef_search: 256\n", "  ef_search: 256\n  ef_serach: 100\n")
                }),
                Case::run,
            ),
            (
                "missing key",
                2,
                Case::with(|t| t.replace("  ef_search: 256\n", "")),
                Case::run,
            ),
            (
                "threshold out of range",
                2,
                Case::with(set("similarity_threshold", "similarity_threshold: 1.5")),
                Case::run,
            ),
            ("M of 1", 2, Case::with(set("m", "  m: 1")), Case::run),
            (
                "ef_construction below M",
                2,
                Case::with(set("ef_construction", "  ef_construction: 10")),
                Case::run,
            ),
            (
                "clip quantiles reversed",
                2,
                Case::with(set("clip_quantiles", "  clip_quantiles: [0.9, 0.1]")),
                Case::run,
            ),
            (
                "a number spelled as text",
                2,
                Case::with(set("m", "  m: many")),
                Case::run,
            ),
            (
                "negative feature weight",
                2,
                Case::with(set("part_type", "    part_type: -1")),
                Case::run,
            ),
            (
                "misspelt feature weight key",
                2,
                Case::with(|t| t.replace("    part_type: 2.5\n", "    part_typ: 2.5\n")),
                Case::run,
            ),
            (
                "learn_sample too small",
                2,
                Case::with(set("learn_sample", "  learn_sample: 10")),
                Case::run,
            ),
            (
                "odbc without a connection",
                2,
                Case::with(|t| t.replace("  kind: parquet", "  kind: odbc")),
                Case::run,
            ),
            (
                "misspelt column in sources.lenient_columns",
                2,
                Case::with(set("lenient_columns", "  lenient_columns: [OUTDIAMETR]")),
                Case::run,
            ),
            (
                "unknown view under sources.files",
                2,
                Case::with(|t| {
                    t.replace(
                        "  kind: parquet\n",
                        "  kind: parquet\n  files:\n    dbo_NO_SUCH_VIEW: x.parquet\n",
                    )
                }),
                Case::run,
            ),
        ],
    );
}

#[test]
fn mapping() {
    let missing = Case::new();
    std::fs::remove_file(missing.mapping_file()).unwrap();
    let not_yaml = Case::new();
    std::fs::write(not_yaml.mapping_file(), "views: [\n").unwrap();
    let absent_column = Case::new();
    absent_column.edit_file(&absent_column.mapping_file(), |t| {
        t.replacen("SealTypeGrup", "SealTypeGroupX", 1)
    });
    let unknown_key = Case::new();
    unknown_key.edit_file(&unknown_key.mapping_file(), |t| {
        format!("{t}\nextra_key: 1\n")
    });
    check(
        "mapping",
        vec![
            ("mapping file missing", 2, missing, Case::run),
            ("mapping not YAML", 2, not_yaml, Case::run),
            (
                "mapped column absent from the source",
                3,
                absent_column,
                Case::run,
            ),
            ("unknown key in the mapping", 2, unknown_key, Case::run),
        ],
    );
}

#[test]
fn data() {
    let missing = Case::new();
    std::fs::remove_file(missing.view(ROUTINGS)).unwrap();
    let garbage = Case::new();
    std::fs::write(garbage.view(ITEMS), b"not a parquet file at all").unwrap();
    let truncated = Case::new();
    let bytes = std::fs::read(truncated.view(ITEMS)).unwrap();
    std::fs::write(truncated.view(ITEMS), &bytes[..bytes.len() / 2]).unwrap();
    let damaged = Case::new();
    let mut bytes = std::fs::read(damaged.view(ITEMS)).unwrap();
    // Data pages a third into the file; the footer stays intact.
    let at = bytes.len() / 3;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(damaged.view(ITEMS), &bytes).unwrap();
    let empty_file = Case::new();
    std::fs::write(empty_file.view(WORK_ORDERS), b"").unwrap();
    let text_in_number = Case::new();
    text_in_number.edit_view(ITEMS, |b| {
        let n = b.num_rows();
        with_column(&b, "OUTDIAMETER", texts(n, &["12.5", "abc", "12,5", "n/a"]))
    });
    let integer_key = Case::new();
    integer_key.edit_view(ITEMS, |b| {
        let n = b.num_rows();
        with_column(
            &b,
            "ITEM_CD",
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        )
    });
    let no_routings = Case::new();
    no_routings.edit_view(ROUTINGS, |b| b.slice(0, 0));
    let no_items = Case::new();
    no_items.edit_view(ITEMS, |b| b.slice(0, 0));
    let one_item = Case::new();
    one_item.edit_view(ITEMS, |b| b.slice(0, 1));
    let text_seq = Case::new();
    text_seq.edit_view(ROUTINGS, |b| {
        let n = b.num_rows();
        with_column(&b, "PROC_SEQ", texts(n, &["10", "20", "n/a"]))
    });
    let date_as_text = Case::new();
    date_as_text.edit_view(ROUTINGS, |b| {
        let n = b.num_rows();
        with_column(&b, "INSRT_DT", texts(n, &["2024-01-01", "yesterday"]))
    });
    check(
        "data",
        vec![
            ("routing view file missing", 3, missing, Case::run),
            ("item view not Parquet", 3, garbage, Case::run),
            ("item view truncated", 3, truncated, Case::run),
            ("item view with a damaged data page", 3, damaged, Case::run),
            ("work-order view empty file", 3, empty_file, Case::run),
            ("text in a numeric column", 3, text_in_number, Case::run),
            ("ITEM_CD as integers", 3, integer_key, Case::run),
            ("routing view without rows", 3, no_routings, Case::run),
            ("item view without rows", 3, no_items, Case::run),
            ("one item only", 3, one_item, Case::run),
            ("PROC_SEQ with text", 3, text_seq, Case::run),
            ("INSRT_DT with text", 3, date_as_text, Case::run),
        ],
    );
}

/// Not strict (the column listed in `sources.lenient_columns`, or `strict: false` for every
/// column): the run goes on, the bad values are NULL, and the log and `training_metadata.json`
/// count them.
#[test]
fn columns_read_leniently_turn_bad_values_into_counted_nulls() {
    let edits = [
        ("lenient_columns", "  lenient_columns: [OUTDIAMETER]"),
        ("strict", "  strict: false"),
    ];
    for (what, line) in edits {
        let case = Case::with(set(what, line));
        let mut rows = 0;
        case.edit_view(ITEMS, |b| {
            rows = b.num_rows();
            with_column(&b, "OUTDIAMETER", texts(rows, &["12.5", "abc", "", "12,5"]))
        });
        let out = case.run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{what}: {err}");
        // Rows 2, 6, 10, ... hold `abc`, rows 4, 8, ... `12,5`; '' is missing, not bad.
        let bad = rows / 2;
        let warning = format!(
            "{ITEMS}: {bad} of {rows} values of column `OUTDIAMETER` are not of its contract \
             type and became NULL (sources.strict): row 2 `abc`, row 4 `12,5`, row 6 `abc`, \
             row 8 `12,5`, row 10 `abc`, ..."
        );
        let logs = case.project.dir.path().join("logs");
        let log: String = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert!(
            log.contains(&warning),
            "{what}: no warning in the log:\n{log}"
        );
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(case.project.models().join("training_metadata.json")).unwrap(),
        )
        .unwrap();
        let nulled = &meta["sources"][0]["nulled"][0];
        assert_eq!(nulled["column"], "OUTDIAMETER", "{what}: {meta}");
        assert_eq!(nulled["count"], bad as u64, "{what}");
        assert_eq!(nulled["rows"], rows as u64, "{what}");
        assert!(meta["sources"][1].get("nulled").is_none(), "{what}");
    }
}

#[test]
fn item_metadata() {
    let meta = |c: &Case| c.data.path().join("item_metadata.json");
    let missing = Case::new();
    std::fs::remove_file(meta(&missing)).unwrap();
    let not_json = Case::new();
    std::fs::write(meta(&not_json), "{\"item_volumes\": ").unwrap();
    let wrong_shape = Case::new();
    std::fs::write(meta(&wrong_shape), "{\"item_volumes\": [1, 2, 3]}").unwrap();
    let other_items = Case::new();
    std::fs::write(
        meta(&other_items),
        "{\"item_volumes\": {\"NOT-AN-ITEM\": {\"production_volume\": 1, \"sales_volume\": 1}}}",
    )
    .unwrap();
    check(
        "item_metadata",
        vec![
            ("item metadata missing", 3, missing, Case::run),
            ("item metadata not JSON", 3, not_json, Case::run),
            (
                "item metadata of the wrong shape",
                3,
                wrong_shape,
                Case::run,
            ),
            ("item metadata of other items", 3, other_items, Case::run),
        ],
    );
}

#[test]
fn sql() {
    let syntax = Case::new();
    syntax.edit_file(&syntax.sql_file("02_clean/30_clean_work_orders.sql"), |t| {
        t.replacen("SELECT", "SELEC", 1)
    });
    let no_header = Case::new();
    no_header.edit_file(&no_header.sql_file("02_clean/50_routing_ops.sql"), |t| {
        t.lines()
            .filter(|l| !l.starts_with("-- version:"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let bad_cast = Case::new();
    bad_cast.edit_file(&bad_cast.sql_file("01_map/10_map_items.sql"), |t| {
        t.replacen("SELECT", "SELECT CAST('x' AS DOUBLE) AS broken,", 1)
    });
    let view_gone = Case::new();
    std::fs::remove_file(view_gone.sql_file("02_clean/30_clean_work_orders.sql")).unwrap();
    let dir_gone = Case::new();
    std::fs::remove_dir_all(dir_gone.sql.path().join("03_encode")).unwrap();
    // A target added to item_targets but not to the views that list the targets by hand.
    let unlisted = Case::new();
    unlisted.edit_file(&unlisted.sql_file("03_encode/14_target_values.sql"), |t| {
        t.lines()
            .filter(|l| !l.contains("t_route_7 FROM"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let unsummed = Case::new();
    unsummed.edit_file(
        &unsummed.sql_file("03_encode/23_fit_target_sums.sql"),
        |t| {
            t.lines()
                .filter(|l| !l.contains("WHEN 'route_7' THEN s.sw_route_7"))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    check(
        "sql",
        vec![
            ("syntax error", 5, syntax, Case::run),
            ("file without a version header", 2, no_header, Case::run),
            ("a cast that fails in 01_map", 5, bad_cast, Case::run),
            ("a view other files read is gone", 5, view_gone, Case::run),
            ("a layer folder is gone", 2, dir_gone, Case::run),
            ("a target left out of target_values", 5, unlisted, Case::run),
            (
                "a target left out of fit_target_sums",
                5,
                unsummed,
                Case::run,
            ),
        ],
    );
}

/// The ODBC path with the real unixODBC driver manager and drivers (installed by `make deps`).
#[test]
fn odbc() {
    if !has_odbc_driver("MDBTools") || !has_odbc_driver("PostgreSQL Unicode") {
        return;
    }
    let odbc = |conn: &'static str, extra: &'static str| {
        Case::with(move |t| {
            let start = t.find("sources:\n").unwrap();
            let end = t[start..].find("\nmapping:").unwrap() + start;
            format!(
                "{}sources:\n  kind: odbc\n  connection: \"{conn}\"\n  retries: 0\n{extra}{}",
                &t[..start],
                &t[end..]
            )
        })
    };
    // The variable is never set: the password cannot be found.
    let no_password = odbc(
        "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=erp;Uid=trainer",
        "  password_env: TRAINER_CORPUS_UNSET_PASSWORD\n",
    );
    check(
        "odbc",
        vec![
            (
                "unknown driver",
                3,
                odbc("Driver={No Such Driver};Server=x", ""),
                Case::run,
            ),
            (
                "Access file that does not exist",
                3,
                odbc("Driver={MDBTools};DBQ=/nonexistent/erp.accdb", ""),
                Case::run,
            ),
            ("password variable unset", 3, no_password, Case::run),
            (
                "server refuses the connection (password in the string)",
                3,
                odbc(
                    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=erp;Uid=trainer;PWD={se;cret}",
                    "",
                ),
                Case::run,
            ),
        ],
    );
}

#[test]
fn output_and_concurrency() {
    let models_file = Case::new();
    let logs_file = Case::new();
    std::fs::write(logs_file.project.dir.path().join("logs"), b"a file").unwrap();
    let locked_run = Case::new();
    let locked_update = Case::new();
    let lock_path = |c: &Case| c.project.dir.path().join(".models.lock");
    let run_lock = std::fs::File::create(lock_path(&locked_run)).unwrap();
    run_lock.try_lock().unwrap();
    let update_lock = std::fs::File::create(lock_path(&locked_update)).unwrap();
    update_lock.try_lock().unwrap();
    // models_dir names a regular file (the case's own model folder stays as it was).
    let outside = tempfile::tempdir().unwrap();
    let file = outside.path().join("models-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let models_line = format!("models_dir: {}", models_file.project.models().display());
    models_file.edit_file(&models_file.project.config, |t| {
        t.replace(&models_line, &format!("models_dir: {}", file.display()))
    });
    check(
        "output",
        vec![
            ("models_dir is a file", 4, models_file, Case::run),
            ("logs_dir is a file", 4, logs_file, Case::run),
            (
                "a second run while one holds the lock",
                4,
                locked_run,
                Case::run,
            ),
            (
                "an update while a run holds the lock",
                4,
                locked_update,
                Case::update,
            ),
        ],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    drop((run_lock, update_lock));
}

#[test]
fn interruption_and_reading() {
    let killed = |point: &'static str| {
        let mut c = Case::new();
        c.env.push(("TRAINER_FAILPOINT".into(), point.into()));
        c
    };
    let bad_csv = Case::new();
    let csv = bad_csv.project.dir.path().join("new.csv");
    std::fs::write(&csv, "ITEM_CD,OUTDIAMETER\nNEW1,\"unterminated\n").unwrap();
    let other_format = Case::new();
    let meta = other_format.project.models().join("training_metadata.json");
    other_format.edit_file(&meta, |t| {
        t.replacen(
            &format!(
                "\"model_format_version\": {}",
                trainer::model::MODEL_FORMAT_VERSION
            ),
            "\"model_format_version\": 1",
            1,
        )
    });
    check(
        "interruption_and_reading",
        vec![
            (
                "run killed in the SQL stage",
                -1,
                killed("stage:sql_transforms"),
                Case::run,
            ),
            (
                "run killed after the index build",
                -1,
                killed("stage:index_build"),
                Case::run,
            ),
            (
                "run killed just before the swap",
                -1,
                killed("swap:before"),
                Case::run,
            ),
            (
                "update killed after reading",
                -1,
                killed("update:read"),
                Case::update,
            ),
            ("recommend: unknown ITEM_CD", 3, Case::new(), |c| {
                c.recommend(&["NO-SUCH-ITEM"])
            }),
            ("recommend: no model there", 3, Case::new(), |c| {
                c.trainer(&["recommend", "--model", "/nonexistent/models", "X"])
            }),
            ("recommend: malformed CSV", 3, bad_csv, |c| {
                let f = c.project.dir.path().join("new.csv");
                c.recommend(&["--input", f.to_str().unwrap()])
            }),
        ],
    );
    // A model of another format version is refused by every reader, and left as it is.
    let out = other_format.recommend(&["0050000002"]);
    assert_eq!(out.status.code(), Some(3));
    let out = other_format.update();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        std::fs::read_to_string(&meta)
            .unwrap()
            .contains("\"model_format_version\": 1")
    );
}
