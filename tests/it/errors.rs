//! Bad input: a clear message naming the file, key, view or column, a documented non-zero exit
//! code, and no half-written artifacts (the previous model stays intact). Messages are snapshots.

use crate::common::{Project, copy_tree, redact, sample_dir, set_line, snapshots, tree_bytes};

fn stderr_of(p: &Project) -> (i32, String) {
    let out = p.run();
    (
        out.status.code().unwrap_or(-1),
        redact(&String::from_utf8_lossy(&out.stderr), p),
    )
}

#[test]
fn missing_input_file() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(&sample_dir(), data.path());
    std::fs::remove_file(data.path().join("dbo_BI_ROUTING_VIEW.parquet")).unwrap();
    let p = Project::new(data.path());
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 3);
    let err = err.replace(&data.path().to_string_lossy().to_string(), "[DATA]");
    snapshots().bind(|| insta::assert_snapshot!(err));
    assert!(!p.models().exists(), "no model may be written");
}

#[test]
fn missing_config_key() {
    let p = Project::with(&sample_dir(), |t| t.replace("  ef_search: 256\n", ""));
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 2);
    snapshots().bind(|| insta::assert_snapshot!(err));
}

#[test]
fn unknown_config_key() {
    let p = Project::with(&sample_dir(), |t| {
        t.replace("  ef_search: 256\n", "  ef_search: 256\n  ef_serach: 100\n")
    });
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 2);
    snapshots().bind(|| insta::assert_snapshot!(err));
}

#[test]
fn out_of_range_config_value() {
    let p = Project::with(&sample_dir(), |t| t.replace("  m: 32\n", "  m: 1\n"));
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 2);
    snapshots().bind(|| insta::assert_snapshot!(err));
}

#[test]
fn missing_mapped_column() {
    // The mapping expects `SealTypeGrup`; the source calls it something else.
    let mapping =
        std::fs::read_to_string(crate::common::repo().join("config/schema_mappings.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("mapping.yaml");
    std::fs::write(
        &m,
        mapping.replace(
            "SealTypeGrup: seal_type_grup",
            "SealTypeGroup: seal_type_grup",
        ),
    )
    .unwrap();
    let p = Project::with(&sample_dir(), |t| {
        set_line(&t, "mapping", format!("mapping: {}", m.display()))
    });
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 3);
    let err = err.replace(&dir.path().to_string_lossy().to_string(), "[MAPDIR]");
    snapshots().bind(|| insta::assert_snapshot!(err));
}

#[test]
fn corrupt_parquet() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(&sample_dir(), data.path());
    let f = data.path().join("dbo_BI_ITEM_INFO_VIEW.parquet");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let p = Project::new(data.path());
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 3);
    let err = err.replace(&data.path().to_string_lossy().to_string(), "[DATA]");
    snapshots().bind(|| insta::assert_snapshot!(err));
}

#[test]
fn unwritable_output_keeps_previous_model() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(&sample_dir());
    p.run_ok();
    let index = p.models().join("hnsw_index.bin");
    let before = std::fs::read(&index).unwrap();
    // Make the folder that holds models/ read-only: staging beside it cannot be created.
    let parent = p.dir.path();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = parent.join(".probe");
    let writable_anyway = std::fs::write(&probe, b"x").is_ok(); // root ignores permissions
    let _ = std::fs::remove_file(&probe);
    if writable_anyway {
        // Running as root: use a path under a regular file, which nobody can create.
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let blocker = parent.join("blocker");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let text = std::fs::read_to_string(&p.config).unwrap();
        let bad = blocker.join("models");
        std::fs::write(
            &p.config,
            set_line(
                &text,
                "models_dir",
                format!("  models_dir: {}", bad.display()),
            ),
        )
        .unwrap();
    }
    let (code, err) = stderr_of(&p);
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("previous model (if any) is intact"), "{err}");
    snapshots().bind(|| insta::assert_snapshot!(err));
    assert_eq!(
        std::fs::read(&index).unwrap(),
        before,
        "the previous model must be untouched"
    );
}

#[test]
fn failed_run_leaves_previous_model_intact() {
    // A model exists; the next run fails in the middle (a SQL transform breaks after the data
    // was read): models/ is byte-identical afterwards and no staging folder is left behind.
    let p = Project::new(&sample_dir());
    p.run_ok();
    let before = std::fs::read(p.models().join("hnsw_index.bin")).unwrap();
    let sql = tempfile::tempdir().unwrap();
    for layer in ["01_map", "02_clean", "03_encode"] {
        let to = sql.path().join(layer);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(crate::common::repo().join("sql").join(layer)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let f = sql.path().join("03_encode/40_encoded_features.sql");
    let t = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        t.replace(
            "SELECT item_key, feature, dim, value FROM enc_target",
            "SELECT item_key, feature, dim, no_such_column FROM enc_target",
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        set_line(
            &text,
            "sql_dir",
            format!("sql_dir: {}", sql.path().display()),
        ),
    )
    .unwrap();
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("40_encoded_features.sql"), "{err}");
    assert_eq!(
        std::fs::read(p.models().join("hnsw_index.bin")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "staging folder left behind");
}

/// Issue 18: an item view of one item, or of items that are all alike, has no dimension that
/// varies; that is a clear input error (exit 3), not a panic in the index.
#[test]
fn degenerate_item_views_are_errors_not_panics() {
    use arrow::array::{Array, BooleanArray, StringArray};
    use arrow::compute::{cast, concat_batches, filter_record_batch};
    for copies in [1usize, 3] {
        let data = tempfile::tempdir().unwrap();
        copy_tree(&sample_dir(), data.path());
        let f = data.path().join("dbo_BI_ITEM_INFO_VIEW.parquet");
        let b = trainer::transform::load_table(&f).unwrap();
        let c = cast(
            b.column_by_name("ITEM_CD").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        let first: BooleanArray = (0..c.len()).map(|i| Some(i == 0)).collect();
        let one = filter_record_batch(&b, &first).unwrap();
        // `copies` rows of the same item under different codes: all alike but their key.
        let rows: Vec<_> = (0..copies)
            .map(|k| {
                let idx = one.schema().index_of("ITEM_CD").unwrap();
                let mut cols = one.columns().to_vec();
                let cd: arrow::array::ArrayRef =
                    std::sync::Arc::new(StringArray::from(vec![format!("SAME{k}")]));
                cols[idx] = cast(&cd, cols[idx].data_type()).unwrap();
                arrow::record_batch::RecordBatch::try_new(one.schema(), cols).unwrap()
            })
            .collect();
        let all = concat_batches(&one.schema(), &rows).unwrap();
        trainer::parquet_io::write_parquet(&f, &all).unwrap();
        // Volumes for the renamed items, so that only the missing variation is wrong.
        let volumes: serde_json::Map<String, serde_json::Value> = (0..copies)
            .map(|k| {
                (
                    format!("SAME{k}"),
                    serde_json::json!({"production_volume": 1, "sales_volume": 1}),
                )
            })
            .collect();
        std::fs::write(
            data.path().join("item_metadata.json"),
            serde_json::json!({ "item_volumes": volumes }).to_string(),
        )
        .unwrap();
        let p = Project::new(data.path());
        let (code, err) = stderr_of(&p);
        assert_eq!(code, 3, "{copies} items: {err}");
        assert!(err.contains("no feature varies over the"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!p.models().exists(), "no model is written");
    }
}

/// Issue 18: a misspelt key under `weights.features` is an error naming it and the close match,
/// not a warning that the feature it meant defaulted to weight 1.
#[test]
fn misspelt_feature_weight_key() {
    let p = Project::with(&sample_dir(), |t| {
        t.replace("    part_type: 2.5\n", "    part_typ: 2.5\n")
    });
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `weights.features.part_typ`: `part_typ` is not a column of the clean_items view; did you mean `part_type`?"),
        "{err}"
    );
    assert!(!p.models().exists());
}

/// Issue 18: a second writer of the same model is refused (exit 4, nothing changed), and a
/// models_dir that is a regular file is an output error, not moved aside.
#[test]
fn a_second_writer_and_a_file_as_models_dir_are_refused() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let before = std::fs::read(p.models().join("hnsw_index.bin")).unwrap();
    let lock = std::fs::File::create(p.dir.path().join(".models.lock")).unwrap();
    lock.try_lock().unwrap();
    let (code, err) = stderr_of(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("another trainer run or update is writing this model"),
        "{err}"
    );
    let out = crate::common::trainer(&["update", "--config", p.config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    drop(lock);
    assert_eq!(
        std::fs::read(p.models().join("hnsw_index.bin")).unwrap(),
        before
    );

    let file_cfg = Project::with(&sample_dir(), |t| t);
    std::fs::write(file_cfg.models(), b"not a directory").unwrap();
    let (code, err) = stderr_of(&file_cfg);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("is a file, not a model directory"), "{err}");
    assert_eq!(
        std::fs::read(file_cfg.models()).unwrap(),
        b"not a directory"
    );
}

/// `trainer run` with `TRAINER_FAILPOINT` (and any other variables) set.
fn run_with(p: &Project, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args(["run", "--quiet", "--config", p.config.to_str().unwrap()]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// What a killed run left beside the model: staging and set-aside folders.
fn leftovers(p: &Project) -> Vec<String> {
    std::fs::read_dir(p.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".staging-") || n.contains(".old-"))
        .collect()
}

fn data_version(p: &Project) -> String {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.models().join("training_metadata.json")).unwrap())
            .unwrap();
    meta["data_version"].as_str().unwrap().to_string()
}

/// Issue 18: a run killed at any phase, the swap included, leaves the complete previous model
/// byte for byte, or once swapped the complete new one; the next run removes what it left, and
/// where the file system cannot exchange directories, a run cut between its two renames has its
/// previous model moved back by the next run.
#[test]
fn a_run_killed_at_any_phase_leaves_a_complete_model() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let first = tree_bytes(&p.models());
    // The runs below are told apart from the first by their data_version.
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        set_line(&text, "data_version", "data_version: \"second\"".into()),
    )
    .unwrap();
    for point in [
        "stage:read",
        "stage:sql_transforms",
        "stage:learn_weights",
        "stage:vectors",
        "stage:index_build",
        "stage:similarity_check",
        "stage:artifacts",
        "swap:before",
    ] {
        let out = run_with(&p, &[("TRAINER_FAILPOINT", point)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("TRAINER_FAILPOINT={point}: aborting")),
            "{point}: {err}"
        );
        assert!(
            tree_bytes(&p.models()) == first,
            "{point}: the model changed"
        );
    }
    // Killed after the exchange, before the previous model is removed: the new one is in place,
    // complete (the same files, the same vectors).
    let out = run_with(&p, &[("TRAINER_FAILPOINT", "swap:exchanged")]);
    assert!(!out.status.success());
    assert_eq!(data_version(&p), "second");
    let second = tree_bytes(&p.models());
    let names =
        |t: &[(std::path::PathBuf, Vec<u8>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&second), names(&first));
    let vectors = |t: &[(std::path::PathBuf, Vec<u8>)]| {
        t.iter()
            .find(|x| x.0.ends_with("vectors.npy"))
            .unwrap()
            .1
            .clone()
    };
    assert!(vectors(&second) == vectors(&first));
    assert_eq!(
        leftovers(&p).len(),
        1,
        "the previous model, under the staging name"
    );
    p.run_ok();
    assert!(leftovers(&p).is_empty(), "{:?}", leftovers(&p));

    // Without an exchange: cut between the two renames, the model folder is missing for a moment;
    // the next run (here killed as soon as it has read its input) moves the previous one back.
    let before = tree_bytes(&p.models());
    let out = run_with(
        &p,
        &[
            ("TRAINER_TEST_NO_EXCHANGE", "1"),
            ("TRAINER_FAILPOINT", "swap:between_renames"),
        ],
    );
    assert!(!out.status.success());
    assert!(!p.models().exists());
    let out = run_with(&p, &[("TRAINER_FAILPOINT", "stage:read")]);
    assert!(!out.status.success());
    assert!(
        tree_bytes(&p.models()) == before,
        "the previous model is back"
    );
    // And the two-rename swap itself, uninterrupted, swaps and cleans up.
    let out = run_with(&p, &[("TRAINER_TEST_NO_EXCHANGE", "1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.run_ok();
    assert!(leftovers(&p).is_empty(), "{:?}", leftovers(&p));
}
