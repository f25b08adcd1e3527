//! `trainer eval` on the bundled 1k sample: the report's shape, its consistency, and that the
//! pipeline's design choices show in the numbers (it must beat the naive baseline).

use crate::common::{Project, sample_dir, trainer};

fn eval_json(p: &Project, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["eval", "--json", "--config", p.config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = trainer(&args);
    assert!(
        out.status.success(),
        "trainer eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn eval_scores_held_out_items_against_baselines() {
    let p = Project::new(&sample_dir());
    let r = eval_json(&p, &["--holdout", "0.2"]);
    let with = r["items_with_routing"].as_u64().unwrap();
    let held = r["held_out"].as_u64().unwrap();
    assert_eq!(r["items"].as_u64().unwrap(), 1000);
    assert_eq!(held, (0.2 * with as f64).round() as u64);
    for v in [
        "trainer",
        "prior_weights",
        "no_weights",
        "via_update",
        "naive",
    ] {
        let s = &r["variants"][v];
        assert_eq!(s["queries"].as_u64().unwrap(), held, "{v}");
        let (t1, h5, h10) = (
            s["top1_routing_match"].as_f64().unwrap(),
            s["hit_at_5"].as_f64().unwrap(),
            s["hit_at_10"].as_f64().unwrap(),
        );
        assert!(t1 <= h5 && h5 <= h10 && h10 <= 1.0, "{v}: {s}");
        let sim = s["top1_sequence_similarity"].as_f64().unwrap();
        assert!(
            sim >= t1 && sim <= 1.0,
            "{v}: a match has similarity 1: {s}"
        );
        let high = s["high_tier"]["queries"].as_u64().unwrap();
        let low = s["low_tier"]["queries"].as_u64().unwrap();
        assert_eq!(high + low, held, "{v}");
    }
    let top1 = |v: &str| r["variants"][v]["top1_routing_match"].as_f64().unwrap();
    let hit5 = |v: &str| r["variants"][v]["hit_at_5"].as_f64().unwrap();
    // The pipeline is worth its cleaning and encoding: clearly ahead of the naive encoding.
    assert!(
        top1("trainer") >= top1("naive") + 0.10,
        "trainer {} vs naive {}",
        top1("trainer"),
        top1("naive")
    );
    assert!(hit5("trainer") > hit5("naive"));
    // Items added by `update` are encoded from a model that never saw them: still clearly ahead
    // of the naive encoding (how close to `trainer` is measured at scale, see BENCHMARKS.md).
    assert!(hit5("via_update") > hit5("naive"), "{r}");
    // The index finds what exact search finds.
    assert!(r["index"]["recall_at_10"].as_f64().unwrap() >= 0.99);
    assert!(
        r["index"]["nearest_other_agrees_with_exact"]
            .as_f64()
            .unwrap()
            >= 0.98
    );
    // The learned weights are reported beside the prior ones, learned on training items only.
    let fw = &r["feature_weights"];
    assert_eq!(fw["learned"], true);
    assert!(fw["result"]["top1"].as_f64().unwrap() >= fw["prior"]["top1"].as_f64().unwrap());
    assert!(!fw["weights"].as_array().unwrap().is_empty());
    // The calibration check: every held-out item in one bin, rates are shares.
    let bins = r["calibration_held_out"].as_array().unwrap();
    assert!(!bins.is_empty());
    let in_bins: u64 = bins.iter().map(|b| b["items"].as_u64().unwrap()).sum();
    assert_eq!(in_bins, held);
    for b in bins {
        for k in ["calibrated", "observed_hit_at_5", "observed_top1"] {
            assert!((0.0..=1.0).contains(&b[k].as_f64().unwrap()), "{b}");
        }
    }
    // The plot is written and is an SVG with the curve and one marker per bin.
    let svg = std::fs::read_to_string(p.models().join("eval_calibration.svg"))
        .expect("models/eval_calibration.svg");
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline "));
    assert_eq!(svg.matches("<circle ").count(), bins.len());
    // The report is also written next to the model.
    let written: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.models().join("eval_report.json")).expect("models/eval_report.json"),
    )
    .unwrap();
    assert_eq!(written["variants"], r["variants"]);
}

#[test]
fn eval_is_reproducible_and_seeded() {
    let p = Project::new(&sample_dir());
    let a = eval_json(&p, &["--holdout", "0.05"]);
    let b = eval_json(&p, &["--holdout", "0.05"]);
    assert_eq!(a["variants"], b["variants"]);
    assert_eq!(a["index"], b["index"]);
    let c = eval_json(&p, &["--holdout", "0.05", "--seed", "7"]);
    assert_eq!(c["held_out"], a["held_out"]);
    assert_ne!(c["variants"]["trainer"], a["variants"]["trainer"]);
}

#[test]
fn eval_rejects_a_bad_holdout_share() {
    let p = Project::new(&sample_dir());
    let out = trainer(&[
        "eval",
        "--holdout",
        "0.9",
        "--config",
        p.config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--holdout 0.9"), "{err}");
    assert!(!p.models().join("eval_report.json").exists());
}

/// The calibrated tier separates: on a generated plant of 20k items, held-out items whose
/// nearest routed neighbour's calibrated similarity is HIGH match their routing clearly more
/// often than LOW ones, and neither tier is empty.
#[test]
fn calibrated_tiers_separate_on_a_generated_plant() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("plant");
    let out = trainer(&[
        "sample",
        "--items",
        "20000",
        "--seed",
        "5",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = Project::new(&data);
    let r = eval_json(&p, &["--holdout", "0.05"]);
    let t = &r["variants"]["trainer"];
    let (high, low) = (
        t["high_tier"]["queries"].as_u64().unwrap() as f64,
        t["low_tier"]["queries"].as_u64().unwrap() as f64,
    );
    let n = high + low;
    assert!(
        high / n >= 0.05 && low / n >= 0.05,
        "HIGH {high}, LOW {low}"
    );
    let (h1, l1) = (
        t["high_tier"]["top1_routing_match"].as_f64().unwrap(),
        t["low_tier"]["top1_routing_match"].as_f64().unwrap(),
    );
    assert!(h1 >= 1.5 * l1, "HIGH top-1 {h1} vs LOW {l1}");
}

/// Learning never sees a held-out item's routing: with some routed items held out, giving each
/// of them a routing no other item has changes neither the learned weights, nor the
/// calibration, nor any vector.
#[test]
fn learning_never_uses_held_out_routings() {
    use std::sync::Arc;

    use arrow::array::{Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use trainer::export::log::RunLog;
    use trainer::export::log::Timer;
    use trainer::train::{TrainOptions, load_inputs, train_vectors};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let train = |config: &std::path::Path, holdout: &[String]| {
        let (cfg, mapping, files) = load_inputs(config).unwrap();
        let opts = TrainOptions {
            fitted_dir: None,
            holdout: Some(holdout),
            holdout_items_too: false,
            model_dir: None,
        };
        let mut log = RunLog::stderr_only(true);
        let mut timer = Timer::new();
        rt.block_on(train_vectors(
            &cfg, &mapping, &files, &opts, &mut log, &mut timer,
        ))
        .unwrap()
    };
    let original = Project::new(&sample_dir());
    let all = train(&original.config, &[]);
    let held: Vec<String> = (0..all.items.keys.len())
        .filter(|&i| all.has_routing[i])
        .step_by(20)
        .map(|i| all.items.keys[i].clone())
        .collect();
    assert!(held.len() >= 20);

    // The same data with every held-out item's operations renamed to codes of its own.
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "dbo_BI_ITEM_INFO_VIEW.parquet",
        "dbo_BI_WORK_ORDER_RESULTS.parquet",
        "item_metadata.json",
    ] {
        std::fs::copy(sample_dir().join(f), dir.path().join(f)).unwrap();
    }
    let routing = "dbo_BI_ROUTING_VIEW.parquet";
    let b = trainer::transform::load_table(&sample_dir().join(routing)).unwrap();
    let col = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone()
    };
    let (cds, jobs) = (col("ITEM_CD"), col("JOB_CD"));
    let mut renamed = 0;
    let new_jobs: StringArray = (0..b.num_rows())
        .map(|r| {
            let key = (!cds.is_null(r)).then(|| cds.value(r).trim().to_uppercase());
            match key {
                Some(k) if held.contains(&k) => {
                    renamed += 1;
                    Some(format!("UNIQUE-{k}-{r}"))
                }
                _ => (!jobs.is_null(r)).then(|| jobs.value(r).to_string()),
            }
        })
        .collect();
    assert!(renamed >= held.len(), "{renamed} routing rows renamed");
    let idx = b.schema().index_of("JOB_CD").unwrap();
    let mut columns = b.columns().to_vec();
    columns[idx] = Arc::new(new_jobs);
    let changed = RecordBatch::try_new(b.schema(), columns).unwrap();
    trainer::parquet_io::write_parquet(&dir.path().join(routing), &changed).unwrap();
    let unique = Project::new(dir.path());

    let (a, c) = (train(&original.config, &held), train(&unique.config, &held));
    let weights = |t: &trainer::train::TrainedVectors| {
        let mut v = serde_json::to_value(&t.learned).unwrap();
        v["shortlist_seconds"] = serde_json::json!(0);
        v["search_seconds"] = serde_json::json!(0);
        v
    };
    assert!(a.learned.learned);
    assert_eq!(weights(&a), weights(&c));
    assert_eq!(a.vectors.dim(), c.vectors.dim());
    assert!(
        a.vectors
            .iter()
            .zip(c.vectors.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "a held-out routing changed a vector"
    );
    // Not vacuous: without holding them out, the renamed routings do change what is learned.
    let (a0, c0) = (train(&original.config, &[]), train(&unique.config, &[]));
    assert_ne!(weights(&a0), weights(&c0));
}
