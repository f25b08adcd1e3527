//! What users and Stage 3 see that no other module pins: the `run` summary line, the shape of
//! `training_metadata.json`, `hnsw_index.json`, the `sources check` report, the `eval` table and
//! the message of a failing SQL transform. Volatile parts (temporary paths, seconds, hashes,
//! dates, memory) are filtered out; everything else is compared as it is.

use std::process::Output;

use serde_json::Value;

use crate::common::{Project, copy_tree, redact, repo, sample_dir, snapshots, trainer};

/// The output of a command that must succeed.
fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Snapshot settings that blank out what changes from run to run.
fn filtered() -> insta::Settings {
    let mut s = snapshots();
    s.add_filter(r"\d+\.\d+ s\b", "[SECS] s");
    s.add_filter(r"trainer_\d{8}\.log", "trainer_[DATE].log");
    s
}

/// Every key path of `v` with the JSON type of its value; an array is described by its length
/// and its first element.
fn shape(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                shape(x, &format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            out.push(format!("{path}: array[{}]", a.len()));
            if let Some(first) = a.first() {
                shape(first, &format!("{path}/0"), out);
            }
        }
        Value::Null => out.push(format!("{path}: null")),
        Value::Bool(_) => out.push(format!("{path}: bool")),
        Value::Number(_) => out.push(format!("{path}: number")),
        Value::String(_) => out.push(format!("{path}: string")),
    }
}

#[test]
fn run_summary_metadata_and_sidecar() {
    let p = Project::new(&sample_dir());
    let out = ok(p.run());
    let line = redact(&String::from_utf8_lossy(&out.stdout), &p);
    filtered().bind(|| insta::assert_snapshot!("run_summary", line));

    let meta: Value =
        serde_json::from_slice(&std::fs::read(p.models().join("training_metadata.json")).unwrap())
            .unwrap();
    let mut lines = Vec::new();
    shape(&meta, "", &mut lines);
    snapshots().bind(|| insta::assert_snapshot!("training_metadata_shape", lines.join("\n")));

    let sidecar = std::fs::read_to_string(p.models().join("hnsw_index.json")).unwrap();
    snapshots().bind(|| insta::assert_snapshot!("hnsw_index_json", sidecar));
}

#[test]
fn sources_check_report() {
    let p = Project::new(&sample_dir());
    let out = ok(trainer(&[
        "sources",
        "check",
        "--config",
        p.config.to_str().unwrap(),
    ]));
    let text = redact(&String::from_utf8_lossy(&out.stdout), &p);
    snapshots().bind(|| insta::assert_snapshot!("sources_check", text));
}

#[test]
fn eval_table() {
    let p = Project::new(&sample_dir());
    let out = ok(trainer(&["eval", "--config", p.config.to_str().unwrap()]));
    let text = redact(&String::from_utf8_lossy(&out.stdout), &p);
    filtered().bind(|| insta::assert_snapshot!("eval_table", text));
}

#[test]
fn failing_sql_transform_is_named_and_leaves_no_model() {
    let sql = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("sql"), sql.path());
    let file = sql.path().join("02_clean/20_clean_routings.sql");
    let text = std::fs::read_to_string(&file).unwrap();
    // An analyst's typo: a column the mapped view does not have.
    let broken = text.replacen("job_cd", "job_code", 1);
    assert_ne!(broken, text, "the edit must change the file");
    std::fs::write(&file, broken).unwrap();
    let p = Project::with(&sample_dir(), |t| {
        t.replace(
            &format!("sql_dir: {}", repo().join("sql").display()),
            &format!("sql_dir: {}", sql.path().display()),
        )
    });
    let out = p.run();
    assert_eq!(out.status.code(), Some(5), "a failed SQL transform exits 5");
    let err = redact(&String::from_utf8_lossy(&out.stderr), &p)
        .replace(&sql.path().display().to_string(), "[SQL]");
    snapshots().bind(|| insta::assert_snapshot!("sql_failure", err));
    assert!(!p.models().exists(), "no model may be written");
}
