//! The 1k sample trains; quality, reproducibility, train/serve consistency, weights, leakage.

use std::collections::HashMap;

use arrow::array::{Array, Float64Array, StringArray, UInt64Array};
use trainer::index::hnswlib_file;
use trainer::transform::load_table;

use crate::common::{Project, read_bytes, read_npy, sample_dir};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sample_trains_with_sane_vectors_and_index() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let m = p.models();
    for f in [
        "hnsw_index.bin",
        "hnsw_index.json",
        "items.parquet",
        "retrain_queue.csv",
        "vectors.npy",
        "training_metadata.json",
        "tb_projector/vectors.bytes",
        "tb_projector/metadata.tsv",
        "tb_projector/projector_config.pbtxt",
        "tb_projector/projector_config.json",
        "fitted/item_sample.parquet",
        "fitted/dims.parquet",
        "fitted/fit_target_stats.parquet",
    ] {
        assert!(m.join(f).exists(), "missing artifact {f}");
    }
    let (n, d, v) = read_npy(&m.join("vectors.npy"));
    assert_eq!(n, 1000, "1001 rows, one duplicate item code");
    assert!(d > 50 && d < 2000, "dim {d}");
    // The projector's tensor is the same floats, raw, and its config carries their shape.
    let raw = read_bytes(&m.join("tb_projector/vectors.bytes"));
    let want: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert!(
        raw == want,
        "vectors.bytes differs from vectors.npy's values"
    );
    let pbtxt = std::fs::read_to_string(m.join("tb_projector/projector_config.pbtxt")).unwrap();
    assert!(
        pbtxt.contains(&format!("tensor_shape: {n}\n  tensor_shape: {d}\n")),
        "{pbtxt}"
    );
    // Unit length, and every dimension varies across items.
    for r in 0..n {
        let norm: f64 = v[r * d..(r + 1) * d]
            .iter()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {r} norm {norm}");
    }
    for j in 0..d {
        let mean = (0..n).map(|r| v[r * d + j] as f64).sum::<f64>() / n as f64;
        let var = (0..n)
            .map(|r| (v[r * d + j] as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(var > 0.0, "dimension {j} is constant");
    }
    // Share of HIGH items reported, and neither tier degenerate: the calibrated similarity
    // separates items whose proposals are likely right from the rest.
    let meta: serde_json::Value =
        serde_json::from_slice(&read_bytes(&m.join("training_metadata.json"))).unwrap();
    let high = meta["similarity"]["high"].as_u64().unwrap() as f64;
    let share = high / n as f64;
    assert!((0.05..0.95).contains(&share), "HIGH share {share}");
    // The learned weights and the calibration are recorded.
    let fw = &meta["feature_weights"];
    assert_eq!(fw["learned"], true, "{fw}");
    assert!(fw["result"]["top1"].as_f64().unwrap() >= fw["prior"]["top1"].as_f64().unwrap());
    let points = fw["calibration"]["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{fw}");
    assert_eq!(meta["dims"].as_u64().unwrap() as usize, d);
    for key in [
        "model_version",
        "data_version",
        "git_commit",
        "schema_mapping_version",
        "data_snapshot_id",
        "config",
        "sql",
        "row_counts",
        "stage_seconds",
        "peak_rss_bytes",
    ] {
        assert!(!meta[key].is_null(), "training_metadata.json lacks {key}");
    }
    // Recall@10 of the saved index against exact search at ef_search=256.
    let h = hnswlib_file::read(&m.join("hnsw_index.bin"), 200).unwrap();
    assert_eq!(
        h.vectors().to_vec(),
        v,
        "the index holds exactly the vectors"
    );
    let recall = h.recall_at((0..n as u32).map(|q| h.vector(q)), 10, 256);
    assert!(recall >= 0.99, "recall@10 = {recall}");
    // Each item's tier is that of the answer its nearest routed others give (as `recommend`
    // computes it), found as exact search finds them; the retrain queue lists the LOW ones.
    let low = crate::common::Answers::of(&m).check(0.8);
    assert!(low > 0 && low < n, "{low} of {n} LOW");
    let queue = std::fs::read_to_string(m.join("retrain_queue.csv")).unwrap();
    assert_eq!(queue.lines().count(), low + 1);
}

#[test]
fn three_runs_are_bit_identical() {
    let runs: Vec<Project> = (0..3).map(|_| Project::new(&sample_dir())).collect();
    for p in &runs {
        p.run_ok();
    }
    let files = [
        "vectors.npy",
        "hnsw_index.bin",
        "items.parquet",
        "tb_projector/vectors.bytes",
        "tb_projector/metadata.tsv",
        "fitted/item_sample.parquet",
        "fitted/dims.parquet",
        "fitted/params.parquet",
        "fitted/fit_onehot_vocab.parquet",
        "fitted/fit_numeric_bounds.parquet",
        "fitted/fit_numeric_stats.parquet",
        "fitted/fit_target_scale.parquet",
        "fitted/fit_target_prior.parquet",
        "fitted/fit_target_sums.parquet",
        "fitted/fit_target_stats.parquet",
    ];
    for f in files {
        let a = read_bytes(&runs[0].models().join(f));
        for p in &runs[1..] {
            assert!(
                a == read_bytes(&p.models().join(f)),
                "{f} differs between runs"
            );
        }
    }
    // A different HNSW seed changes the graph (the seed is really used).
    let other = Project::with(&sample_dir(), |t| {
        t.replace(
            "  ef_search: 256\n  seed: 42\n",
            "  ef_search: 256\n  seed: 7\n",
        )
    });
    other.run_ok();
    assert_ne!(
        read_bytes(&other.models().join("hnsw_index.bin")),
        read_bytes(&runs[0].models().join("hnsw_index.bin"))
    );
    assert_eq!(
        read_bytes(&other.models().join("vectors.npy")),
        read_bytes(&runs[0].models().join("vectors.npy"))
    );
}

#[test]
fn revectorising_training_items_is_bit_identical() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let (n, d, trained) = read_npy(&p.models().join("vectors.npy"));
    let v = rt()
        .block_on(trainer::commands::vectorize::vectorize(
            &p.config,
            &p.models(),
        ))
        .unwrap();
    assert_eq!(v.vectors.dim(), (n, d));
    let again: Vec<f32> = v.vectors.iter().copied().collect();
    assert!(
        again
            .iter()
            .zip(&trained)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "vectors differ"
    );
}

/// Writes a copy of `from` without item `code` (all three views and the metadata).
fn without_item(from: &std::path::Path, to: &std::path::Path, code: &str) {
    use arrow::compute::{cast, filter_record_batch};
    use arrow::datatypes::DataType;
    std::fs::create_dir_all(to).unwrap();
    for view in [
        "dbo_BI_ITEM_INFO_VIEW",
        "dbo_BI_ROUTING_VIEW",
        "dbo_BI_WORK_ORDER_RESULTS",
    ] {
        let b = load_table(&from.join(format!("{view}.parquet"))).unwrap();
        let c = cast(b.column_by_name("ITEM_CD").unwrap(), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        let keep: arrow::array::BooleanArray = c
            .iter()
            .map(|v| Some(v.map(|s| s.trim().to_uppercase()) != Some(code.to_string())))
            .collect();
        let f = filter_record_batch(&b, &keep).unwrap();
        assert!(f.num_rows() < b.num_rows() || view == "dbo_BI_WORK_ORDER_RESULTS");
        trainer::parquet_io::write_parquet(&to.join(format!("{view}.parquet")), &f).unwrap();
    }
    std::fs::copy(
        from.join("item_metadata.json"),
        to.join("item_metadata.json"),
    )
    .unwrap();
}

#[test]
fn new_item_uses_full_data_statistics_and_no_leakage() {
    // Pick an item with a routing, train without it, then vectorise the full data.
    let code = "H000010DB";
    let data = tempfile::tempdir().unwrap();
    without_item(&sample_dir(), data.path(), code);
    let train = Project::new(data.path());
    train.run_ok();
    let full = Project::new(&sample_dir());
    let rt = rt();
    let (eng, _) = rt
        .block_on(trainer::train::apply_session(&full.config, &train.models()))
        .unwrap();
    let q = |sql: &str| {
        rt.block_on(trainer::engine::collect(&eng.ctx, sql, "test"))
            .unwrap()
    };
    // The removed item is not in the training sample ...
    let b = q(&format!(
        "SELECT count(*) AS n FROM item_sample WHERE item_key = '{code}'"
    ));
    assert_eq!(
        b[0].column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0),
        0
    );
    // ... so every target encoding of it equals the full-data (fold -1) formula.
    let b = q(&format!(
        "SELECT e.dim, e.value, \
           CASE WHEN st.sw IS NULL THEN p.prior ELSE (st.swz + prm.target_smoothing * p.prior) / (st.sw + prm.target_smoothing) END AS expected \
         FROM enc_target e \
         JOIN enc_target_input i ON i.item_key = e.item_key AND i.feature = e.feature \
         JOIN fit_target_prior p ON p.fold = -1 AND e.dim = e.feature || '~' || p.target \
         LEFT JOIN fit_target_stats st ON st.fold = -1 AND st.feature = i.feature AND st.level = i.level AND st.target = p.target \
         CROSS JOIN params prm \
         WHERE e.item_key = '{code}'"
    ));
    let mut checked = 0;
    for batch in &b {
        let v = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let e = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for r in 0..batch.num_rows() {
            assert_eq!(v.value(r).to_bits(), e.value(r).to_bits(), "row {r}");
            checked += 1;
        }
    }
    assert_eq!(
        checked, 80,
        "5 target-encoded features x 16 targets (4 routing figures, 12 fingerprint components)"
    );
    // No leakage: for a training item whose level is seen in that item only, the encoding is
    // exactly its fold's prior: its own target does not enter.
    let b = q("WITH single AS ( \
            SELECT i.feature, i.level FROM enc_target_input i JOIN item_sample s ON s.item_key = i.item_key \
            WHERE i.level IS NOT NULL GROUP BY i.feature, i.level HAVING count(*) = 1) \
         SELECT e.value, p.prior FROM enc_target e \
         JOIN enc_target_input i ON i.item_key = e.item_key AND i.feature = e.feature \
         JOIN single g ON g.feature = i.feature AND g.level = i.level \
         JOIN item_sample s ON s.item_key = e.item_key \
         JOIN item_targets t ON t.item_key = e.item_key \
         JOIN fit_target_prior p ON p.fold = s.fold AND e.dim = e.feature || '~' || p.target");
    let mut singles = 0;
    for batch in &b {
        let v = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let pr = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for r in 0..batch.num_rows() {
            assert_eq!(
                v.value(r).to_bits(),
                pr.value(r).to_bits(),
                "a singleton level encodes its own target"
            );
            singles += 1;
        }
    }
    assert!(
        singles > 100,
        "expected many singleton levels (drawing numbers), got {singles}"
    );
}

/// Share of items whose nearest other item has the same PartNm.
fn same_part_share(models: &std::path::Path) -> f64 {
    let items = load_table(&models.join("items.parquet")).unwrap();
    let part = items
        .column_by_name("PartNm")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone();
    let near = items
        .column_by_name("nearest_other_label")
        .unwrap()
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .clone();
    let n = items.num_rows();
    let same = (0..n)
        .filter(|&i| !near.is_null(i) && part.value(i) == part.value(near.value(i) as usize))
        .count();
    same as f64 / n as f64
}

#[test]
fn raising_a_feature_weight_pulls_neighbours_together() {
    // The configured weights themselves (learning would move them).
    let fixed = |t: String| t.replace("  learn: true\n", "  learn: false\n");
    let base = Project::with(&sample_dir(), fixed);
    base.run_ok();
    let heavy = Project::with(&sample_dir(), |t| {
        fixed(t).replace("    part_nm: 0.4\n", "    part_nm: 8.0\n")
    });
    heavy.run_ok();
    let off = Project::with(&sample_dir(), |t| {
        fixed(t)
            .replace("    part_nm: 0.4\n", "    part_nm: 0.0\n")
            .replace("    part_type: 2.5\n", "    part_type: 0.0\n")
    });
    off.run_ok();
    let (b, h, o) = (
        same_part_share(&base.models()),
        same_part_share(&heavy.models()),
        same_part_share(&off.models()),
    );
    assert!(
        h > b,
        "raising part_nm's weight: same-PartNm neighbour share {b:.3} -> {h:.3}"
    );
    assert!(
        o < b,
        "zeroing part_nm/part_type weights: same-PartNm neighbour share {b:.3} -> {o:.3}"
    );
    assert!(
        h > 0.95,
        "with a dominant part_nm weight nearly every neighbour shares it ({h:.3})"
    );
    let _ = HashMap::<u8, u8>::new();
}
