//! `trainer update`: a model trained without some items takes them in from the full sources;
//! exactly the new items are added, old rows keep their vectors, new vectors are the ones
//! `vectorize` gives, the index stays consistent and loadable, the retrain queue keeps and
//! resolves rows, nothing new changes nothing, and a failed or killed update leaves the model.

use std::collections::HashSet;
use std::path::Path;

use arrow::array::{Array, BooleanArray, StringArray, UInt64Array};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::DataType;
use trainer::index::hnswlib_file;
use trainer::transform::load_table;

use crate::common::{Project, python, read_bytes, read_npy, sample_dir, trainer, tree_bytes};

const VIEWS: [&str; 3] = [
    "dbo_BI_ITEM_INFO_VIEW",
    "dbo_BI_ROUTING_VIEW",
    "dbo_BI_WORK_ORDER_RESULTS",
];

fn key(s: &str) -> String {
    s.trim().to_uppercase()
}

/// Every 50th item of the sample (20 items), by cleaned key.
fn dropped_keys() -> Vec<String> {
    let b = load_table(&sample_dir().join("dbo_BI_ITEM_INFO_VIEW.parquet")).unwrap();
    let c = cast(b.column_by_name("ITEM_CD").unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_any().downcast_ref::<StringArray>().unwrap();
    let mut keys: Vec<String> = c.iter().flatten().map(key).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().skip(7).step_by(50).collect()
}

/// A copy of the sample without the rows of `drop` in any view (as the ERP was before those
/// items existed).
pub fn sample_without(to: &Path, drop: &HashSet<String>) {
    std::fs::create_dir_all(to).unwrap();
    for view in VIEWS {
        let b = load_table(&sample_dir().join(format!("{view}.parquet"))).unwrap();
        let c = cast(b.column_by_name("ITEM_CD").unwrap(), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        let keep: BooleanArray = c
            .iter()
            .map(|v| Some(!v.is_some_and(|s| drop.contains(&key(s)))))
            .collect();
        let f = filter_record_batch(&b, &keep).unwrap();
        trainer::parquet_io::write_parquet(&to.join(format!("{view}.parquet")), &f).unwrap();
    }
    std::fs::copy(
        sample_dir().join("item_metadata.json"),
        to.join("item_metadata.json"),
    )
    .unwrap();
}

/// A model trained without the dropped items, and a config whose sources are `full`.
pub struct Setup {
    pub _data: tempfile::TempDir,
    pub trained: Project,
    pub full: Project,
    pub dropped: Vec<String>,
}

pub fn setup(full: &Path) -> Setup {
    let dropped = dropped_keys();
    let data = tempfile::tempdir().unwrap();
    sample_without(data.path(), &dropped.iter().cloned().collect());
    let trained = Project::new(data.path());
    trained.run_ok();
    Setup {
        _data: data,
        trained,
        full: Project::new(full),
        dropped,
    }
}

fn update(config: &Path, models: &Path, env: Option<(&str, &str)>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.args([
        "update",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--model",
        models.to_str().unwrap(),
    ]);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn update_ok(s: &Setup) -> String {
    let out = update(&s.full.config, &s.trained.models(), None);
    assert!(
        out.status.success(),
        "trainer update failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn strings(b: &arrow::record_batch::RecordBatch, c: &str) -> Vec<String> {
    let a = b.column_by_name(c).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    a.iter()
        .map(|x| x.unwrap_or_default().to_string())
        .collect()
}

/// Every file of a model directory with its bytes (relative path order).
#[test]
fn update_adds_exactly_the_new_items_with_vectorize_vectors() {
    let s = setup(&sample_dir());
    let m = s.trained.models();
    let before_items = load_table(&m.join("items.parquet")).unwrap();
    let (n0, d, before_vecs) = read_npy(&m.join("vectors.npy"));
    assert_eq!(n0, 1000 - s.dropped.len());

    let stdout = update_ok(&s);
    assert!(stdout.starts_with("update 1: added 20 items"), "{stdout}");

    // Every item's answer is the one exact search gives on the grown model: the new items', and
    // the existing items' that new routed items joined.
    crate::common::Answers::of(&m).check(0.8);
    let items = load_table(&m.join("items.parquet")).unwrap();
    assert_eq!(items.num_rows(), 1000);
    // Old rows keep their keys and labels; the new rows are exactly the dropped items, sorted.
    assert_eq!(
        strings(&items, "item_key")[..n0],
        strings(&before_items, "item_key")[..]
    );
    assert_eq!(strings(&items, "item_key")[n0..], s.dropped[..]);
    let labels = items.column_by_name("label").unwrap();
    let labels = labels.as_any().downcast_ref::<UInt64Array>().unwrap();
    assert!(
        labels
            .values()
            .iter()
            .enumerate()
            .all(|(i, &l)| l == i as u64)
    );

    // Old vectors unchanged to the bit; new ones are what `vectorize` gives with this model.
    let (n, d2, vecs) = read_npy(&m.join("vectors.npy"));
    assert_eq!((n, d2), (1000, d));
    assert!(
        vecs[..n0 * d]
            .iter()
            .zip(&before_vecs)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let v = rt
        .block_on(trainer::commands::vectorize::vectorize(&s.full.config, &m))
        .unwrap();
    for (k, key) in s.dropped.iter().enumerate() {
        let row = v.keys.iter().position(|x| x == key).unwrap();
        let got = &vecs[(n0 + k) * d..(n0 + k + 1) * d];
        assert!(
            got.iter()
                .zip(v.vectors.row(row).iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key}: update and vectorize differ"
        );
    }

    // The index holds all items, the same vectors, and searches find the new ones.
    let h = hnswlib_file::read(&m.join("hnsw_index.bin"), 200).unwrap();
    assert_eq!(h.len(), 1000);
    assert_eq!(h.vectors().to_vec(), vecs);
    let mut vis = trainer::index::Visited::new(h.len());
    for i in n0..n {
        let r = h.search(h.vector(i as u32), 1, 256, &mut vis);
        assert!(r[0].0 < 1e-6, "new item {i} does not find itself");
    }
    // Nearest others are consistent with the similarities recorded.
    let nl = items.column_by_name("nearest_other_label").unwrap();
    let nl = nl.as_any().downcast_ref::<UInt64Array>().unwrap();
    for i in n0..n {
        let j = nl.value(i) as usize;
        assert_ne!(i, j);
    }

    // The new items' routings are there; the metadata keeps training's fields and records it.
    let routings = load_table(&m.join("routings.parquet")).unwrap();
    let rkeys: HashSet<String> = strings(&routings, "item_key").into_iter().collect();
    let has = items.column_by_name("has_routing").unwrap();
    let has = has.as_any().downcast_ref::<BooleanArray>().unwrap();
    for (i, k) in strings(&items, "item_key").iter().enumerate() {
        assert_eq!(has.value(i), rkeys.contains(k), "{k}");
    }
    assert!(s.dropped.iter().filter(|k| rkeys.contains(*k)).count() > 5);
    let meta: serde_json::Value =
        serde_json::from_slice(&read_bytes(&m.join("training_metadata.json"))).unwrap();
    assert_eq!(meta["items"], n0);
    assert_eq!(meta["updates"][0]["added"], 20);
    assert_eq!(meta["updates"][0]["items_after"], 1000);
    let side: serde_json::Value =
        serde_json::from_slice(&read_bytes(&m.join("hnsw_index.json"))).unwrap();
    assert_eq!(side["N"], 1000);
    let (rows, d, v) = read_npy(&m.join("vectors.npy"));
    assert_eq!(rows, 1000);
    let raw = read_bytes(&m.join("tb_projector/vectors.bytes"));
    assert_eq!(raw.len(), 1000 * d * 4);
    let want: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert!(
        raw == want,
        "the projector's tensor differs from vectors.npy"
    );
    let meta_tsv = std::fs::read_to_string(m.join("tb_projector/metadata.tsv")).unwrap();
    assert_eq!(meta_tsv.lines().count(), 1001);

    // Nothing new: nothing changes, and it says so.
    let files = tree_bytes(&m);
    let again = update_ok(&s);
    assert!(
        again.starts_with("nothing new: 1000 items in the model"),
        "{again}"
    );
    assert!(tree_bytes(&m) == files, "a no-op update changed the model");

    // The real hnswlib loads the updated index and finds the same neighbours.
    if let Some(py) = python() {
        let out = std::process::Command::new(py)
            .arg(crate::common::repo().join("tests/python/check_hnswlib.py"))
            .arg(&m)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["n"], 1000);
        assert_eq!(r["self_hit_at_1"], 1.0);
        assert_eq!(r["resave_identical"], true, "{r}");
        assert!(
            r["nearest_other_agreement"].as_f64().unwrap() >= 0.99,
            "{r}"
        );
    }
}

#[test]
fn the_same_update_gives_the_same_bytes() {
    let a = setup(&sample_dir());
    let b = setup(&sample_dir());
    update_ok(&a);
    update_ok(&b);
    for f in [
        "hnsw_index.bin",
        "vectors.npy",
        "items.parquet",
        "routings.parquet",
        "item_features.parquet",
        "tb_projector/vectors.bytes",
        "tb_projector/metadata.tsv",
    ] {
        assert!(
            read_bytes(&a.trained.models().join(f)) == read_bytes(&b.trained.models().join(f)),
            "{f} differs"
        );
    }
}

/// The sample plus a copy of item `code`'s row under a new ITEM_CD.
/// The whole sample with twins of the item `code` added: per `(twin, routing)`, a copy of its
/// item row with the ITEM_CD `twin`, carrying a copy of the routing rows of the item `routing`.
fn sample_with_twins(to: &Path, code: &str, twins: &[(&str, &str)]) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(
        sample_dir().join("dbo_BI_WORK_ORDER_RESULTS.parquet"),
        to.join("dbo_BI_WORK_ORDER_RESULTS.parquet"),
    )
    .unwrap();
    // The rows of `of` in `b`, with the ITEM_CD `as_cd`.
    let copy = |b: &arrow::record_batch::RecordBatch, of: &str, as_cd: &str, first_only: bool| {
        let c = cast(b.column_by_name("ITEM_CD").unwrap(), &DataType::Utf8).unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        let pick: BooleanArray = c
            .iter()
            .map(|v| Some(v.map(key) == Some(of.into())))
            .collect();
        let mut rows = filter_record_batch(b, &pick).unwrap();
        assert!(rows.num_rows() > 0, "no rows of {of}");
        if first_only {
            rows = rows.slice(0, 1);
        }
        let idx = rows.schema().index_of("ITEM_CD").unwrap();
        let mut cols = rows.columns().to_vec();
        let cd: arrow::array::ArrayRef =
            std::sync::Arc::new(StringArray::from(vec![as_cd; rows.num_rows()]));
        cols[idx] = cast(&cd, cols[idx].data_type()).unwrap();
        arrow::record_batch::RecordBatch::try_new(rows.schema(), cols).unwrap()
    };
    let items = load_table(&sample_dir().join("dbo_BI_ITEM_INFO_VIEW.parquet")).unwrap();
    let routings = load_table(&sample_dir().join("dbo_BI_ROUTING_VIEW.parquet")).unwrap();
    let mut item_parts = vec![items.clone()];
    let mut routing_parts = vec![routings.clone()];
    for (twin, routing) in twins {
        item_parts.push(copy(&items, code, twin, true));
        routing_parts.push(copy(&routings, routing, twin, false));
    }
    for (view, parts) in [
        ("dbo_BI_ITEM_INFO_VIEW", item_parts),
        ("dbo_BI_ROUTING_VIEW", routing_parts),
    ] {
        let all = concat_batches(&parts[0].schema(), &parts).unwrap();
        trainer::parquet_io::write_parquet(&to.join(format!("{view}.parquet")), &all).unwrap();
    }
    std::fs::copy(
        sample_dir().join("item_metadata.json"),
        to.join("item_metadata.json"),
    )
    .unwrap();
}

/// Updates the model `m` from the sample with twins of `code` added ([`sample_with_twins`]);
/// returns what it printed.
fn update_with_twins(m: &Path, code: &str, twins: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    sample_with_twins(data.path(), code, twins);
    let full = Project::new(data.path());
    let out = update(&full.config, m, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The model's routed items with their routings (JOB_CD sequences), by item_key.
fn model_routings(m: &Path) -> Vec<(String, Vec<String>)> {
    let r = load_table(&m.join("routings.parquet")).unwrap();
    let (k, j) = (strings(&r, "item_key"), strings(&r, "job_cd"));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, j) in k.into_iter().zip(j) {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1.push(j),
            _ => out.push((k, vec![j])),
        }
    }
    out
}

/// An item of `tier` whose nearest other is not a duplicate (so that twins come first), with
/// its ITEM_CD and key.
fn item_of_tier(m: &Path, tier: &str) -> (String, String) {
    let items = load_table(&m.join("items.parquet")).unwrap();
    let (cds, keys, tiers) = (
        strings(&items, "ITEM_CD"),
        strings(&items, "item_key"),
        strings(&items, "similarity_tier"),
    );
    let sim = items.column_by_name("nearest_other_similarity").unwrap();
    let sim = sim
        .as_any()
        .downcast_ref::<arrow::array::Float32Array>()
        .unwrap();
    let i = (0..tiers.len())
        .find(|&i| tiers[i] == tier && sim.value(i) < 0.999 && cds[i] == keys[i])
        .unwrap_or_else(|| panic!("no {tier} item"));
    (cds[i].clone(), keys[i].clone())
}

/// The whole sample with three of its items edited in the item view: `keys[0]`'s ITEM_SPEC
/// changed; `keys[1]`'s ITEM_SPEC lower-cased and padded with white space, so that it cleans to
/// the row it had; `keys[2]` gone. The item `novel` (new to the model) gets a part name that
/// no other item has.
fn sample_edited(to: &Path, keys: &[String; 3], novel: &str) {
    std::fs::create_dir_all(to).unwrap();
    for view in &VIEWS[1..] {
        std::fs::copy(
            sample_dir().join(format!("{view}.parquet")),
            to.join(format!("{view}.parquet")),
        )
        .unwrap();
    }
    let b = load_table(&sample_dir().join("dbo_BI_ITEM_INFO_VIEW.parquet")).unwrap();
    let text = |c: &str| -> Vec<Option<String>> {
        let a = cast(b.column_by_name(c).unwrap(), &DataType::Utf8).unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        a.iter().map(|v| v.map(str::to_string)).collect()
    };
    let cds = text("ITEM_CD");
    let mut spec = text("ITEM_SPEC");
    let mut part = text("PartNm");
    let of = |i: usize| cds[i].as_deref().map(key);
    for (i, p) in part.iter_mut().enumerate() {
        if of(i).as_deref() == Some(novel) {
            *p = Some("PART NEVER SEEN 99".into());
        }
    }
    for (i, s) in spec.iter_mut().enumerate() {
        if of(i).as_ref() == Some(&keys[0]) {
            *s = Some("EDITED SPEC 77".into());
        }
        if of(i).as_ref() == Some(&keys[1]) {
            let was = s.clone().unwrap_or_default();
            *s = Some(format!(" {}\u{3000} ", was.to_lowercase()));
        }
    }
    let typed = |c: &str, v: Vec<Option<String>>| -> arrow::array::ArrayRef {
        let a: arrow::array::ArrayRef = std::sync::Arc::new(StringArray::from(v));
        cast(&a, b.column_by_name(c).unwrap().data_type()).unwrap()
    };
    let b = crate::common::with_column(&b, "ITEM_SPEC", typed("ITEM_SPEC", spec));
    let b = crate::common::with_column(&b, "PartNm", typed("PartNm", part));
    let keep: BooleanArray = (0..b.num_rows())
        .map(|i| Some(of(i).as_ref() != Some(&keys[2])))
        .collect();
    let b = filter_record_batch(&b, &keep).unwrap();
    trainer::parquet_io::write_parquet(&to.join("dbo_BI_ITEM_INFO_VIEW.parquet"), &b).unwrap();
    std::fs::copy(
        sample_dir().join("item_metadata.json"),
        to.join("item_metadata.json"),
    )
    .unwrap();
}

/// What `update` appended to its log (the log path is the last word of its output).
fn update_logged(config: &Path, models: &Path) -> (String, String) {
    let log_of = |stdout: &str| std::path::PathBuf::from(stdout.trim().rsplit(' ').next().unwrap());
    let out = update(config, models, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let log = std::fs::read_to_string(log_of(&stdout)).unwrap();
    (stdout, log)
}

#[test]
fn changed_and_vanished_items_are_listed_with_or_without_the_source_hashes() {
    const HASHES: &str = "item_source_hashes.parquet";
    let s = setup(&sample_dir());
    let trained = load_table(&s.trained.models().join("items.parquet")).unwrap();
    let (keys, cds) = (strings(&trained, "item_key"), strings(&trained, "ITEM_CD"));
    let picked = [keys[3].clone(), keys[4].clone(), keys[5].clone()];
    let data = tempfile::tempdir().unwrap();
    sample_edited(data.path(), &picked, &s.dropped[0]);
    let edited = Project::new(data.path());
    // The same model as an earlier trainer wrote it, without the source hashes.
    let old = tempfile::tempdir().unwrap();
    let old_model = old.path().join("models");
    crate::common::copy_tree(&s.trained.models(), &old_model);
    std::fs::remove_file(old_model.join(HASHES)).unwrap();

    let mut seen_logs = 0;
    for m in [s.trained.models(), old_model.clone()] {
        let (stdout, log) = update_logged(&edited.config, &m);
        let log = log[seen_logs..].to_string();
        assert!(
            stdout.starts_with("update 1: added 20 items")
                && stdout.contains("; 1 changed and 1 gone since training"),
            "{}: {stdout}",
            m.display()
        );
        assert!(
            log.contains(&format!(
                "changed since training (not re-encoded; retrain to pick it up): {} (item_spec)",
                cds[3]
            )),
            "{log}"
        );
        assert!(
            !log.contains(&format!("retrain to pick it up): {} ", cds[4])),
            "{log}"
        );
        assert!(
            log.contains(&format!(
                "no longer in the sources (still in the model): {}",
                cds[5]
            )),
            "{log}"
        );
        assert!(
            log.contains("items: 999 in the sources, 980 in the model; 20 new, 1 changed"),
            "{log}"
        );
        assert_eq!(
            log.contains(&format!("the model has no {HASHES}")),
            m == old_model,
            "{log}"
        );
        assert!(m.join(HASHES).is_file(), "the update writes {HASHES}");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(m.join("training_metadata.json")).unwrap())
                .unwrap();
        assert_eq!(
            meta["updates"][0]["new_items_with_unseen_levels"],
            1,
            "{}: one new item has a part name that no model item has",
            m.display()
        );
        // The changed item stays listed in later updates: it is still the training's in the
        // model.
        let (again, log) = update_logged(&edited.config, &m);
        seen_logs = log.len();
        assert!(
            again.starts_with(
                "nothing new: 1000 items in the model, unchanged (1 changed and 1 gone"
            ),
            "{again}"
        );
    }
    // Cleaning only the items whose source rows differ gives the model that cleaning all gives.
    crate::common::assert_same_files(
        &s.trained.models(),
        &old_model,
        &[
            "hnsw_index.bin",
            "vectors.npy",
            "items.parquet",
            "routings.parquet",
            "item_features.parquet",
        ],
        "update with and without the source hashes",
    );
}

#[test]
fn the_retrain_queue_keeps_rows_and_resolves_them() {
    // Train on the sample; take a LOW item and add five twins of it that share one routing:
    // its five nearest routed items now agree, so it is HIGH and its queue entry is resolved.
    let p = Project::new(&sample_dir());
    p.run_ok();
    let m = p.models();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.join("training_metadata.json")).unwrap())
            .unwrap();
    let params = trainer::model::SearchParams::from_metadata(&m, &meta).unwrap();
    assert!(
        params.proposals.apply(10).unwrap() >= 0.8,
        "the sample's calibration makes full agreement HIGH"
    );
    let queue0 = std::fs::read_to_string(m.join("retrain_queue.csv")).unwrap();
    let open0 = queue0.lines().count() - 1;
    assert!(open0 > 10);
    let (low_cd, _) = item_of_tier(&m, "LOW");
    let routing = model_routings(&m)[0].0.clone();
    let twins: Vec<String> = (1..=5).map(|k| format!("ZZTWIN000{k}")).collect();
    let pairs: Vec<(&str, &str)> = twins
        .iter()
        .map(|t| (t.as_str(), routing.as_str()))
        .collect();
    let stdout = update_with_twins(&m, &low_cd, &pairs);
    assert!(stdout.contains("added 5 items"), "{stdout}");
    let answers = crate::common::Answers::of(&m);
    answers.check(0.8);
    let i = answers.item_cd.iter().position(|c| *c == low_cd).unwrap();
    assert_eq!(answers.tier[i], "HIGH");
    assert_eq!(answers.agreement[i], Some(10));
    let queue = std::fs::read_to_string(m.join("retrain_queue.csv")).unwrap();
    let rows: Vec<&str> = queue.lines().skip(1).collect();
    // Every earlier row is kept, in order; the LOW item's is resolved by update 1; rows added
    // after them are update 1's LOW items, new or lowered.
    for (a, b) in queue0.lines().skip(1).zip(&rows) {
        assert_eq!(a.split(',').next(), b.split(',').next());
    }
    let resolved: Vec<&&str> = rows.iter().filter(|r| r.contains(",resolved,")).collect();
    assert!(!resolved.is_empty());
    assert!(resolved.iter().any(|r| r.starts_with(&format!("{low_cd},"))
        && r.contains(",run,")
        && r.contains(",update 1,")));
    for r in &rows[open0..] {
        assert!(r.contains(",open,update 1,"), "{r}");
        let cd = r.split(',').next().unwrap();
        let i = answers.item_cd.iter().position(|c| c == cd).unwrap();
        assert_eq!(answers.tier[i], "LOW", "{r}");
    }
    let low_now = answers.tier.iter().filter(|t| *t == "LOW").count();
    assert_eq!(
        rows.iter().filter(|r| r.contains(",open,")).count(),
        low_now,
        "the open rows are the LOW items"
    );
}

#[test]
fn an_update_that_makes_an_answer_doubtful_queues_the_item() {
    // A HIGH item gets five twins whose routings all differ (none one operation from another):
    // its nearest routed items now disagree, so it is LOW and queued by the update.
    let p = Project::new(&sample_dir());
    p.run_ok();
    let m = p.models();
    let (high_cd, high_key) = item_of_tier(&m, "HIGH");
    let mut chosen: Vec<(String, Vec<String>)> = Vec::new();
    for (k, ops) in model_routings(&m) {
        let far = chosen.iter().all(|(_, o)| {
            o.len().abs_diff(ops.len()) > 1
                || trainer::text::levenshtein(o.as_slice(), ops.as_slice()) > 1
        });
        if k != high_key && far {
            chosen.push((k, ops));
        }
        if chosen.len() == 5 {
            break;
        }
    }
    assert_eq!(chosen.len(), 5);
    let twins: Vec<String> = (1..=5).map(|k| format!("ZZMIX000{k}")).collect();
    let pairs: Vec<(&str, &str)> = twins
        .iter()
        .zip(&chosen)
        .map(|(t, c)| (t.as_str(), c.0.as_str()))
        .collect();
    update_with_twins(&m, &high_cd, &pairs);
    let answers = crate::common::Answers::of(&m);
    answers.check(0.8);
    let i = answers.item_cd.iter().position(|c| *c == high_cd).unwrap();
    assert_eq!(answers.tier[i], "LOW");
    assert_eq!(answers.agreement[i], Some(2));
    let queue = std::fs::read_to_string(m.join("retrain_queue.csv")).unwrap();
    assert!(
        queue
            .lines()
            .any(|r| r.starts_with(&format!("{high_cd},")) && r.contains(",open,update 1,")),
        "{queue}"
    );
}

#[test]
fn a_failed_or_killed_update_leaves_the_model_intact() {
    let s = setup(&sample_dir());
    let m = s.trained.models();
    let files = tree_bytes(&m);
    for point in [
        "update:read",
        "update:index",
        "update:staging",
        "update:before_swap",
    ] {
        let out = update(&s.full.config, &m, Some(("TRAINER_FAILPOINT", point)));
        assert!(!out.status.success(), "{point}: the update did not stop");
        assert!(tree_bytes(&m) == files, "{point}: the model changed");
    }
    // Bad input: the item view is not Parquet.
    let data = tempfile::tempdir().unwrap();
    for view in VIEWS {
        std::fs::copy(
            sample_dir().join(format!("{view}.parquet")),
            data.path().join(format!("{view}.parquet")),
        )
        .unwrap();
    }
    std::fs::copy(
        sample_dir().join("item_metadata.json"),
        data.path().join("item_metadata.json"),
    )
    .unwrap();
    std::fs::write(
        data.path().join("dbo_BI_ITEM_INFO_VIEW.parquet"),
        b"not parquet",
    )
    .unwrap();
    let bad = Project::new(data.path());
    let out = update(&bad.config, &m, None);
    assert_eq!(out.status.code(), Some(3));
    assert!(tree_bytes(&m) == files, "bad input changed the model");
    // A model written before model_format_version existed is refused (exit 3), untouched.
    let meta_path = m.join("training_metadata.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    let old = text.replace(
        &format!(
            "\"model_format_version\": {},",
            trainer::model::MODEL_FORMAT_VERSION
        ),
        "",
    );
    std::fs::write(&meta_path, &old).unwrap();
    let out = update(&s.full.config, &m, None);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retrain"), "{err}");
    std::fs::write(&meta_path, text).unwrap();
    // The killed updates' staging folders are left beside the model until the next writer
    // starts; it removes them.
    let parent = m.parent().unwrap();
    let leftovers = |p: &Path| {
        std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(".models.staging-") || n.starts_with(".models.old-")
            })
            .count()
    };
    assert!(leftovers(parent) > 0);
    // After all that, the update still works, and cleans up.
    update_ok(&s);
    assert_eq!(leftovers(parent), 0);
    let _ = trainer(&["--version"]);
}
