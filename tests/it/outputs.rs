//! What users and Stage 3 see that no other module pins: the `run` summary line, the shape of
//! `training_metadata.json`, `hnsw_index.json`, the `sources check` report, the `sources
//! profile` report (text, JSON, HTML), the `eval` table and the message of a failing SQL
//! transform. Volatile parts (temporary paths, seconds, hashes,
//! dates, memory) are filtered out; everything else is compared as it is.

use std::process::Output;
use std::sync::Arc;

use arrow::array::StringArray;
use serde_json::Value;

use crate::common::{
    Project, copy_tree, redact, repo, sample_dir, snapshots, trainer, with_column,
};

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

#[test]
fn sources_profile_report_text_json_and_html() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let cfg = p.config.to_str().unwrap();
    let html = p.dir.path().join("profile.html");
    let out = ok(trainer(&[
        "sources",
        "profile",
        "--config",
        cfg,
        "--html",
        html.to_str().unwrap(),
    ]));
    let text = redact(&String::from_utf8_lossy(&out.stdout), &p);
    snapshots().bind(|| insta::assert_snapshot!("sources_profile", text));
    let page = redact(&std::fs::read_to_string(&html).unwrap(), &p);
    snapshots().bind(|| insta::assert_snapshot!("sources_profile_html", page));

    let out = ok(trainer(&["sources", "profile", "--config", cfg, "--json"]));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut lines = Vec::new();
    shape(&json, "", &mut lines);
    snapshots().bind(|| insta::assert_snapshot!("sources_profile_json_shape", lines.join("\n")));
    // The JSON and the table count the same.
    let items = &json["views"][0];
    assert_eq!(items["rows"], 1001);
    let od = items["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "OUTDIAMETER")
        .unwrap();
    assert_eq!(od["nines"], 2, "{od}");
}

/// Data that moved since training: the profile counts the bad values a strict run would stop
/// on (and does not stop), and flags the features that moved against the model.
#[test]
fn sources_profile_flags_bad_values_and_drift() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(&sample_dir(), data.path());
    let p = Project::new(data.path());
    p.run_ok();
    let items = data.path().join("dbo_BI_ITEM_INFO_VIEW.parquet");
    let b = trainer::transform::load_table(&items).unwrap();
    let n = b.num_rows();
    // Part types: a third missing now, another third a type no training item had.
    let part: Vec<Option<&str>> = (0..n)
        .map(|i| match i % 3 {
            0 => None,
            1 => Some("NEW-TYPE"),
            _ => Some("SFT0"),
        })
        .collect();
    let b = with_column(&b, "PART_TYPE", Arc::new(StringArray::from(part)));
    let od: Vec<Option<&str>> = (0..n)
        .map(|i| {
            if i % 100 == 7 {
                Some("12,5")
            } else {
                Some("10")
            }
        })
        .collect();
    let b = with_column(&b, "OUTDIAMETER", Arc::new(StringArray::from(od)));
    trainer::parquet_io::write_parquet(&items, &b).unwrap();

    let out = ok(trainer(&[
        "sources",
        "profile",
        "--config",
        p.config.to_str().unwrap(),
    ]));
    let text = redact(&String::from_utf8_lossy(&out.stdout), &p);
    let wanted: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("  OUTDIAMETER:")
                || l.starts_with("drift")
                || (l.starts_with("  ") && l.contains(": ") && l.contains("moved"))
                || l.starts_with("  part_type:")
        })
        .collect();
    snapshots().bind(|| insta::assert_snapshot!("sources_profile_drift", wanted.join("\n")));
    // A strict run stops on those values; the profile did not.
    assert_eq!(p.run().status.code(), Some(3));
}

/// Stage 1's `features.parquet` as the item view: `sources.files` points the view at it.
#[test]
fn stage1_features_parquet_as_the_item_view() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(&sample_dir(), data.path());
    std::fs::rename(
        data.path().join("dbo_BI_ITEM_INFO_VIEW.parquet"),
        data.path().join("features.parquet"),
    )
    .unwrap();
    let p = Project::with(data.path(), |t| {
        t.replace(
            "  kind: parquet\n",
            "  kind: parquet\n  files:\n    dbo_BI_ITEM_INFO_VIEW: features.parquet\n",
        )
    });
    p.run_ok();
    let same = Project::new(&sample_dir());
    same.run_ok();
    crate::common::assert_same_files(
        &p.models(),
        &same.models(),
        &["vectors.npy", "hnsw_index.bin", "items.parquet"],
        "features.parquet as the item view",
    );
}
