//! Real clients read the artifacts: the `hnswlib` Python package loads the index and finds the
//! same neighbours; real TensorBoard (on 127.0.0.1) serves the projector tensor and metadata.
//! Skipped with a printed reason when no such Python exists, unless TRAINER_REQUIRE_PYTHON=1.

use std::process::Command;

use crate::common::{Project, python, repo, sample_dir};

fn run_json(py: &std::path::Path, script: &str, arg: &std::path::Path) -> serde_json::Value {
    let out = Command::new(py)
        .arg(repo().join("tests/python").join(script))
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hnswlib_loads_the_index_and_agrees() {
    let Some(py) = python() else { return };
    let p = Project::new(&sample_dir());
    p.run_ok();
    let r = run_json(&py, "check_hnswlib.py", &p.models());
    eprintln!("hnswlib check: {r}");
    assert_eq!(r["n"], 1000);
    assert_eq!(r["self_hit_at_1"], 1.0);
    assert!(r["recall_at_10"].as_f64().unwrap() >= 0.99, "{r}");
    assert!(
        r["nearest_other_agreement"].as_f64().unwrap() >= 0.99,
        "{r}"
    );
    assert!(
        r["nearest_other_similarity_max_abs_diff"].as_f64().unwrap() < 1e-5,
        "{r}"
    );
    assert_eq!(
        r["resave_identical"], true,
        "hnswlib's save_index must reproduce our file"
    );
}

#[test]
fn tensorboard_serves_the_projector() {
    let Some(py) = python() else { return };
    let p = Project::new(&sample_dir());
    p.run_ok();
    let r = run_json(&py, "check_projector.py", &p.models().join("tb_projector"));
    eprintln!("tensorboard check: {r}");
    assert_eq!(r["runs"], serde_json::json!(["."]));
    assert_eq!(r["tensor_path"], "vectors.bytes");
    let shape = r["tensor_shape"].as_array().unwrap();
    assert_eq!(shape[0], 1000);
    assert_eq!(r["tensor_max_abs_diff"].as_f64().unwrap(), 0.0);
    assert_eq!(
        r["metadata_header"],
        serde_json::json!(["ITEM_CD", "PartNm", "SealType", "similarity_tier"])
    );
    assert_eq!(r["metadata_rows"], 1000);
    assert!(!r["first_item"].as_str().unwrap().is_empty());
    assert!(!r["first_part_nm"].as_str().unwrap().is_empty());
}

/// The rare tensor whose raw bytes would read as text is written as TSV, and TensorBoard serves it.
#[test]
fn tensorboard_serves_a_tensor_written_as_text() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("tb_projector");
    // 0.5 and 2.0 are 00 00 00 3F and 00 00 00 40: ASCII bytes, so the raw file decodes as text.
    let v = ndarray::Array2::from_shape_fn((3, 4), |(i, j)| if i == j { 2.0f32 } else { 0.5 });
    let meta: Vec<trainer::export::projector::MetaRow> = ["X1", "X2", "X3"]
        .iter()
        .map(|cd| trainer::export::projector::MetaRow {
            item_cd: cd,
            part_nm: "RING",
            seal_type: "A",
            tier: "HIGH",
        })
        .collect();
    let tensor = trainer::export::projector::write(
        &proj,
        &trainer::index::Vectors::owned(v.into_raw_vec_and_offset().0, 4),
        &meta,
    )
    .unwrap();
    assert_eq!(tensor, trainer::export::projector::Tensor::Text);
    let r = run_json(&py, "check_projector.py", &proj);
    assert_eq!(r["tensor_path"], "vectors.tsv");
    assert_eq!(r["tensor_shape"], serde_json::json!([3, 4]));
    assert_eq!(r["tensor_max_abs_diff"].as_f64().unwrap(), 0.0);
    assert_eq!(r["metadata_rows"], 3);
}

#[test]
fn example_client_agrees_with_recommend() {
    let Some(py) = python() else { return };
    let p = Project::new(&sample_dir());
    p.run_ok();
    let items = trainer::transform::load_table(&p.models().join("items.parquet")).unwrap();
    let cds = items.column_by_name("ITEM_CD").unwrap();
    let cds = cds
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    let asked: Vec<String> = (0..arrow::array::Array::len(cds))
        .step_by(37)
        .map(|i| cds.value(i).to_string())
        .collect();
    let models = p.models();
    let mut args = vec![
        "recommend".to_string(),
        "--json".into(),
        "--model".into(),
        models.display().to_string(),
    ];
    args.extend(asked.iter().cloned());
    let ours = crate::common::trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = Command::new(&py)
        .arg(repo().join("examples/recommend.py"))
        .arg(&models)
        .args(&asked)
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let parse = |b: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (ours, theirs) = (parse(&ours.stdout), parse(&theirs.stdout));
    assert_eq!(ours.len(), asked.len());
    assert_eq!(theirs.len(), asked.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a["item_cd"], b["item_cd"]);
        // The answer's confidence and tier.
        assert_eq!(a["tier"], b["tier"], "{}", a["item_cd"]);
        assert_eq!(a["agreement"], b["agreement"], "{}", a["item_cd"]);
        assert!(
            (a["confidence"].as_f64().unwrap() - b["confidence"].as_f64().unwrap()).abs() < 1e-6,
            "{}",
            a["item_cd"]
        );
        // Neighbours as (similarity to 1e-5, ITEM_CD, routing, support, votes to 1e-6): the same
        // proposals, whatever the order of exact ties.
        type Key = (i64, String, String, u64, i64);
        let key = |v: &serde_json::Value| -> Vec<Key> {
            let mut n: Vec<Key> = v["neighbours"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        -(x["similarity"].as_f64().unwrap() * 1e5).round() as i64,
                        x["item_cd"].as_str().unwrap().to_string(),
                        x["routing"]["rout_no"].as_str().unwrap().to_string(),
                        x["support"].as_u64().unwrap(),
                        (x["votes"].as_f64().unwrap() * 1e6).round() as i64,
                    )
                })
                .collect();
            n.sort();
            n
        };
        assert_eq!(key(a), key(b), "{}", a["item_cd"]);
        let proposed = a["neighbours"].as_array().unwrap().len();
        assert!((1..=5).contains(&proposed), "{proposed} proposals");
    }
}
