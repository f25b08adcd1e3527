//! `trainer recommend`: the contributions add up, nothing without a routing is proposed, new
//! items from a file are encoded exactly as `update` encodes them, the model is only read, and
//! the table, JSON, CSV and error output on the fixture and a calibrated answer on the sample
//! are snapshots.

use std::path::Path;

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::util::display::array_value_to_string;
use trainer::transform::load_table;

use crate::common::{Project, fixture_dir, read_bytes, redact, sample_dir, snapshots, trainer};
use crate::update::{sample_without, setup};

fn recommend(args: &[&str]) -> std::process::Output {
    let mut a = vec!["recommend"];
    a.extend_from_slice(args);
    trainer(&a)
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "trainer recommend failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn item_cds(models: &Path) -> Vec<String> {
    let items = load_table(&models.join("items.parquet")).unwrap();
    let c = items.column_by_name("ITEM_CD").unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    c.iter().map(|x| x.unwrap().to_string()).collect()
}

/// The rows of `view` for the items of `keys`, as CSV in the ERP's own columns.
fn item_csv(data: &Path, keys: &[String]) -> String {
    let b = load_table(&data.join("dbo_BI_ITEM_INFO_VIEW.parquet")).unwrap();
    let schema = b.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let cd = b.column_by_name("ITEM_CD").unwrap();
    let q = |s: String| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = names.join(",") + "\n";
    for r in 0..b.num_rows() {
        let key = array_value_to_string(cd, r).unwrap().trim().to_uppercase();
        if !keys.contains(&key) {
            continue;
        }
        let cells: Vec<String> = b
            .columns()
            .iter()
            .map(|c| {
                if c.is_null(r) {
                    String::new()
                } else {
                    q(array_value_to_string(c, r).unwrap())
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[test]
fn contributions_add_up_and_only_routed_items_are_proposed() {
    let p = Project::new(&sample_dir());
    p.run_ok();
    let m = p.models();
    let cds = item_cds(&m);
    let items = load_table(&m.join("items.parquet")).unwrap();
    let has = items.column_by_name("has_routing").unwrap();
    let has = has.as_any().downcast_ref::<BooleanArray>().unwrap();
    let routed: std::collections::HashSet<&str> = cds
        .iter()
        .enumerate()
        .filter(|(i, _)| has.value(*i))
        .map(|(_, c)| c.as_str())
        .collect();
    assert!(
        routed.len() < cds.len(),
        "the sample has items without a routing"
    );
    let asked: Vec<&str> = cds.iter().step_by(10).map(String::as_str).collect();
    let before = read_bytes(&m.join("hnsw_index.bin"));
    let mut args = vec!["--json", "--top-k", "10", "--model", m.to_str().unwrap()];
    args.extend(&asked);
    let out = ok(recommend(&args));
    assert_eq!(read_bytes(&m.join("hnsw_index.bin")), before);
    let mut checked = 0;
    for (line, cd) in out.lines().zip(&asked) {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(a["item_cd"], *cd);
        let ns = a["neighbours"].as_array().unwrap();
        assert!(!ns.is_empty() && ns.len() <= 10, "{} proposals", ns.len());
        let props: Vec<(u64, f64, f64)> = ns
            .iter()
            .map(|n| {
                (
                    n["support"].as_u64().unwrap(),
                    n["votes"].as_f64().unwrap(),
                    n["similarity"].as_f64().unwrap(),
                )
            })
            .collect();
        // The routing most of the 5 nearest share first (equally shared: the nearest); then by
        // votes, equal votes nearest first. Votes count each of the 5 nearest 1 down to 1/1.8.
        let (s0, _, sim0) = props[0];
        for (k, &(s, v, sim)) in props.iter().enumerate().skip(1) {
            assert!(
                s < s0 || (s == s0 && sim <= sim0 + 1e-7),
                "{cd}: first proposal at {k}"
            );
            let (_, pv, psim) = props[k - 1];
            assert!(
                k == 1 || v < pv || (v == pv && sim <= psim + 1e-7),
                "{cd}: proposals out of vote order at {k}"
            );
        }
        // (A routing none of the 5 nearest has shows support 1.)
        for &(s, v, _) in &props {
            assert!(
                s < 2 || v + 1e-9 >= s as f64 / 1.8,
                "{cd}: votes {v} below support {s}"
            );
        }
        let mut seen_routings = Vec::new();
        for n in ns {
            let ncd = n["item_cd"].as_str().unwrap();
            assert_ne!(ncd, *cd, "an item is never its own proposal");
            assert!(routed.contains(ncd), "{ncd} has no routing");
            let ops = n["routing"]["operations"].as_array().unwrap();
            assert!(!ops.is_empty());
            let jobs: Vec<&serde_json::Value> = ops.iter().map(|o| &o["job_cd"]).collect();
            assert!(
                !seen_routings.contains(&jobs),
                "{cd}: a routing proposed twice"
            );
            seen_routings.push(jobs);
            let sim = n["similarity"].as_f64().unwrap();
            let (c, d): (f64, f64) = n["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["contribution"].as_f64().unwrap(),
                        f["distance"].as_f64().unwrap(),
                    )
                })
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            // The per-feature terms are exact in f64; the similarity is the index's f32 dot.
            assert!((c - sim).abs() < 1e-5, "{cd}/{ncd}: {c} vs {sim}");
            assert!(
                (d - (1.0 - sim)).abs() < 1e-5,
                "{cd}/{ncd}: {d} vs {}",
                1.0 - sim
            );
            checked += 1;
        }
    }
    assert!(checked >= asked.len(), "{checked} proposals checked");
}

#[test]
fn new_items_from_a_file_are_encoded_as_update_encodes_them() {
    let s = setup(&sample_dir());
    let m = s.trained.models();
    // recommend first (the model is as trained), from CSV and from JSON lines.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("new.csv");
    std::fs::write(&csv, item_csv(&sample_dir(), &s.dropped)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (keys, vecs) = rt
        .block_on(trainer::commands::recommend::encode_input(&m, &csv))
        .unwrap();
    assert_eq!(keys, s.dropped);
    let jsonl = dir.path().join("new.jsonl");
    let mut text = String::new();
    let body = item_csv(&sample_dir(), &s.dropped);
    let records = trainer::csv::parse(&body).unwrap();
    let header = &records[0].1;
    let schema = load_table(&sample_dir().join("dbo_BI_ITEM_INFO_VIEW.parquet"))
        .unwrap()
        .schema();
    let numeric = |h: &str| schema.field_with_name(h).unwrap().data_type().is_numeric();
    for (_, r) in &records[1..] {
        let obj: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .zip(r)
            .map(|(h, v)| {
                let v = if v.is_empty() {
                    serde_json::Value::Null
                } else if numeric(h) {
                    v.parse::<f64>().unwrap().into()
                } else {
                    v.clone().into()
                };
                (h.clone(), v)
            })
            .collect();
        text.push_str(&serde_json::Value::Object(obj).to_string());
        text.push('\n');
    }
    std::fs::write(&jsonl, text).unwrap();
    let (keys2, vecs2) = rt
        .block_on(trainer::commands::recommend::encode_input(&m, &jsonl))
        .unwrap();
    assert_eq!(keys2, keys);
    assert!(
        vecs.iter()
            .zip(vecs2.iter())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    // The table answers for the file's items.
    let table = ok(recommend(&[
        "--model",
        m.to_str().unwrap(),
        "--input",
        csv.to_str().unwrap(),
    ]));
    assert_eq!(table.matches("new item, encoded").count(), s.dropped.len());
    // Then update: its vectors for the same items are the same bits.
    let out = trainer(&[
        "update",
        "--quiet",
        "--config",
        s.full.config.to_str().unwrap(),
        "--model",
        m.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (n, d, all) = crate::common::read_npy(&m.join("vectors.npy"));
    let n0 = n - keys.len();
    assert_eq!(d, vecs.ncols());
    for (k, key) in keys.iter().enumerate() {
        let row = &all[(n0 + k) * d..(n0 + k + 1) * d];
        assert!(
            row.iter()
                .zip(vecs.row(k).iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key}: recommend and update encode differently"
        );
    }
}

#[test]
fn output_and_errors_on_the_fixture() {
    let p = Project::new(&fixture_dir());
    p.run_ok();
    let m = p.models();
    let ms = m.to_str().unwrap();
    let cds = item_cds(&m);
    let (a, b) = (cds[3].as_str(), cds[17].as_str());
    let filters = |t: &str| redact(t, &p);
    let _guard = snapshots().bind_to_scope();
    insta::assert_snapshot!(
        "recommend_table",
        filters(&ok(recommend(&["--model", ms, "--top-k", "2", a, b])))
    );
    insta::assert_snapshot!(
        "recommend_json",
        filters(&ok(recommend(&[
            "--model", ms, "--top-k", "2", "--json", a
        ])))
    );
    insta::assert_snapshot!(
        "recommend_csv",
        filters(&ok(recommend(&[
            "--model", ms, "--top-k", "2", "--csv", a, b
        ])))
    );
    let err = |out: std::process::Output, code: i32| {
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        filters(&String::from_utf8_lossy(&out.stderr))
    };
    insta::assert_snapshot!(
        "recommend_unknown_item",
        err(recommend(&["--model", ms, a, "NOSUCHITEM", "nan"]), 3)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "ITEM_CD,PART_TYPE,OUTDIAMETER\nNEW1,35#1,52.1\nNEW2,35#1,12,5\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "recommend_malformed_row",
        err(
            recommend(&["--model", ms, "--input", bad.to_str().unwrap()]),
            3
        )
        .replace(&dir.path().display().to_string(), "[IN]")
    );
    std::fs::write(&bad, "ITEM_CD,PART_TYPE,OUTDIAMETER\nNEW1,35#1,abc\n").unwrap();
    insta::assert_snapshot!(
        "recommend_bad_number",
        err(
            recommend(&["--model", ms, "--input", bad.to_str().unwrap()]),
            3
        )
        .replace(&dir.path().display().to_string(), "[IN]")
    );
    // A new item from a file, with a misspelt column (ignored, named with a suggestion).
    std::fs::write(
        &bad,
        "ITEM_CD,PART_TYPE,PartNm,OUTDIAMETR,ITEM_MATERIAL\nNEW1,35#1,SLEEVE,52.1,Z023KX\n",
    )
    .unwrap();
    let out = recommend(&[
        "--model",
        ms,
        "--top-k",
        "2",
        "--input",
        bad.to_str().unwrap(),
    ]);
    let note = String::from_utf8_lossy(&out.stderr).to_string();
    insta::assert_snapshot!(
        "recommend_new_item_table",
        format!(
            "{}\n--- stderr\n{}",
            filters(&ok(out)),
            note.replace(&dir.path().display().to_string(), "[IN]")
        )
    );
    // Nothing asked; a model from an older trainer.
    insta::assert_snapshot!(
        "recommend_nothing_asked",
        err(recommend(&["--model", ms]), 2)
    );
    let meta = m.join("training_metadata.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        text.replace(
            &format!(
                "\"model_format_version\": {},",
                trainer::model::MODEL_FORMAT_VERSION
            ),
            "\"model_format_version\": 0,",
        ),
    )
    .unwrap();
    insta::assert_snapshot!(
        "recommend_incompatible_model",
        err(recommend(&["--model", ms, a]), 3)
    );
    let _ = sample_without;
}

#[test]
fn a_calibrated_answer_states_its_confidence() {
    // The bundled sample has enough routed items to calibrate; the fixture has not.
    let p = Project::new(&sample_dir());
    p.run_ok();
    let m = p.models();
    let cds = item_cds(&m);
    let _guard = snapshots().bind_to_scope();
    insta::assert_snapshot!(
        "recommend_calibrated_table",
        redact(
            &ok(recommend(&[
                "--model",
                m.to_str().unwrap(),
                "--top-k",
                "1",
                cds[5].as_str()
            ])),
            &p
        )
    );
}
