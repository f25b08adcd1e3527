//! Shared helpers: a throwaway project (config pointing at a data folder, temp models/logs),
//! running the `trainer` binary, and finding the Python with hnswlib/tensorboard.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample_dir() -> PathBuf {
    repo().join("data/sample")
}

pub fn fixture_dir() -> PathBuf {
    repo().join("tests/fixtures/erp_small")
}

/// A temp project: `config.yml` using `data` as the source and the repo's mapping and SQL.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Project {
    pub fn new(data: &Path) -> Project {
        Self::with(data, |s| s)
    }

    /// Like `new`, with the config text passed through `edit` first.
    pub fn with(data: &Path, edit: impl FnOnce(String) -> String) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(repo().join("config/trainer.yml")).unwrap();
        let r = repo();
        let text = text
            .replace("dir: data/sample", &format!("dir: {}", data.display()))
            .replace(
                "mapping: config/schema_mappings.yaml",
                &format!(
                    "mapping: {}",
                    r.join("config/schema_mappings.yaml").display()
                ),
            )
            .replace(
                "item_metadata: data/sample/item_metadata.json",
                &format!(
                    "item_metadata: {}",
                    data.join("item_metadata.json").display()
                ),
            )
            .replace(
                "sql_dir: sql",
                &format!("sql_dir: {}", r.join("sql").display()),
            )
            .replace(
                "models_dir: models",
                &format!("models_dir: {}", dir.path().join("models").display()),
            )
            .replace(
                "logs_dir: logs",
                &format!("logs_dir: {}", dir.path().join("logs").display()),
            );
        let text = edit(text);
        let config = dir.path().join("config.yml");
        std::fs::write(&config, text).unwrap();
        Project { dir, config }
    }

    pub fn models(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    pub fn run(&self) -> Output {
        trainer(&["run", "--quiet", "--config", self.config.to_str().unwrap()])
    }

    pub fn run_ok(&self) {
        let out = self.run();
        assert!(
            out.status.success(),
            "trainer run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .unwrap()
}

/// stderr with temp paths replaced, for snapshots.
pub fn redact(text: &str, project: &Project) -> String {
    let tmp = project.dir.path().to_string_lossy().to_string();
    let repo = repo().to_string_lossy().to_string();
    // Object-store URLs in plans drop the leading slash of absolute paths.
    text.replace(&tmp, "[TMP]")
        .replace(tmp.trim_start_matches('/'), "[TMP]")
        .replace(&repo, "[REPO]")
        .replace(repo.trim_start_matches('/'), "[REPO]")
}

/// The Python interpreter with hnswlib, numpy, pyarrow and tensorboard, or None with the reason
/// printed. With TRAINER_REQUIRE_PYTHON=1 (set by .ci/run) a missing interpreter is a failure.
pub fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var("TRAINER_PYTHON").ok().map(PathBuf::from),
        Some(PathBuf::from("/var/cache/trainer-py/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        let ok = Command::new(&c)
            .args(["-c", "import hnswlib, numpy, pyarrow, tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    let why = "no Python with hnswlib, numpy, pyarrow and tensorboard (set TRAINER_PYTHON; .ci/run installs one)";
    if std::env::var("TRAINER_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

pub fn read_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Reads vectors.npy written by trainer: (n, d, data).
pub fn read_npy(p: &Path) -> (usize, usize, Vec<f32>) {
    let b = read_bytes(p);
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = b[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(data.len(), dims[0] * dims[1]);
    (dims[0], dims[1], data)
}

/// insta settings: snapshots live in the repository's top-level `snapshots/` folder.
pub fn snapshots() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(repo().join("snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s
}

/// `../shared` beside the clone (CI has it), or None with the reason printed. With
/// TRAINER_REQUIRE_SHARED=1 (set by .ci/run) its absence is a failure.
pub fn shared() -> Option<PathBuf> {
    let p = repo().join("../shared");
    if p.join("data").is_dir() {
        return Some(p.canonicalize().unwrap());
    }
    let why = "../shared is not beside the clone";
    if std::env::var("TRAINER_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The throwaway PostgreSQL of scripts/with-postgres: (connection string without password,
/// password). None with the reason printed; with TRAINER_REQUIRE_POSTGRES=1 a failure.
pub fn postgres() -> Option<(String, String)> {
    match (
        std::env::var("TRAINER_PG_CONN"),
        std::env::var("TRAINER_PG_PASSWORD"),
    ) {
        (Ok(c), Ok(p)) => Some((c, p)),
        _ => {
            let why = "no PostgreSQL (run the tests through `make test`, which starts one)";
            if std::env::var("TRAINER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// Is the named ODBC driver registered with unixODBC?
pub fn has_odbc_driver(name: &str) -> bool {
    let out = Command::new("odbcinst").args(["-q", "-d"]).output();
    let ok = out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("[{name}]")));
    if !ok {
        let why = format!("ODBC driver {name} is not installed (make deps installs it)");
        if std::env::var("TRAINER_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// A config for an ODBC source: `sources:` block replaced.
pub fn odbc_project(connection: &str, extra: &str, item_metadata: &Path) -> Project {
    let block = format!(
        "sources:\n  kind: odbc\n  connection: \"{}\"\n{extra}",
        connection.replace('"', "\\\"")
    );
    Project::with(&sample_dir(), |t| {
        let start = t.find("sources:\n").unwrap();
        let end = t[start..].find("\nmapping:").unwrap() + start;
        let t = format!("{}{}\n{}", &t[..start], block, &t[end..]);
        t.lines()
            .map(|l| {
                if l.starts_with("item_metadata:") {
                    format!("item_metadata: {}", item_metadata.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Asserts that each of `files` is byte-identical under two model folders.
pub fn assert_same_files(a: &Path, b: &Path, files: &[&str], what: &str) {
    for f in files {
        assert!(
            read_bytes(&a.join(f)) == read_bytes(&b.join(f)),
            "{f} differs: {what}"
        );
    }
}

/// Every file under `dir` (recursively) with its bytes, sorted by path: a model directory to
/// compare byte for byte.
pub fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Replaces the config line that starts (after indentation) with `key:`.
pub fn set_line(text: &str, key: &str, line: String) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key}:")) {
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `batch` with column `name` replaced by `col`.
pub fn with_column(batch: &RecordBatch, name: &str, col: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let i = schema.index_of(name).unwrap();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields[i] = Arc::new(arrow::datatypes::Field::new(
        name,
        col.data_type().clone(),
        true,
    ));
    let mut cols = batch.columns().to_vec();
    cols[i] = col;
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols).unwrap()
}

/// A text column of `n` rows cycling through `values`.
pub fn texts(n: usize, values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(
        (0..n).map(|i| values[i % values.len()]).collect::<Vec<_>>(),
    ))
}

/// One item's nearest other's similarity, agreement, confidence and 5th routed similarity.
pub type Answer = (f32, Option<u8>, Option<f32>, Option<f32>);

/// A model's items as `items.parquet` and `routings.parquet` hold them, with each item's answer
/// computed afresh by exact search: what the stored tiers are checked against.
pub struct Answers {
    pub item_cd: Vec<String>,
    pub tier: Vec<String>,
    pub nearest_similarity: Vec<f32>,
    pub agreement: Vec<Option<u8>>,
    pub confidence: Vec<Option<f32>>,
    pub radius: Vec<Option<f32>>,
    /// Per item, by exact search over the saved vectors: the nearest other's similarity, the
    /// agreement of the first proposal among the 5 nearest routed others, the answer's
    /// confidence and the 5th routed other's similarity.
    pub exact: Vec<Answer>,
}

impl Answers {
    pub fn of(models: &Path) -> Answers {
        use arrow::array::{Array, BooleanArray, Float32Array, UInt8Array};
        use trainer::features::learn::{PROPOSALS, agreement, answer_confidence};
        let items = trainer::transform::load_table(&models.join("items.parquet")).unwrap();
        let col = |name: &str| items.column_by_name(name).unwrap().clone();
        let strs = |name: &str| -> Vec<String> {
            let c = col(name);
            let c = c.as_any().downcast_ref::<StringArray>().unwrap();
            c.iter().map(|x| x.unwrap().to_string()).collect()
        };
        let f32s = |name: &str| -> Vec<Option<f32>> {
            let c = col(name);
            c.as_any()
                .downcast_ref::<Float32Array>()
                .unwrap()
                .iter()
                .collect()
        };
        let agreement_col = col("agreement");
        let has = col("has_routing");
        let has = has.as_any().downcast_ref::<BooleanArray>().unwrap();
        let keys = strs("item_key");
        let routings = trainer::transform::load_table(&models.join("routings.parquet")).unwrap();
        let rk = routings.column_by_name("item_key").unwrap();
        let rk = rk.as_any().downcast_ref::<StringArray>().unwrap();
        let rj = routings.column_by_name("job_cd").unwrap();
        let rj = rj.as_any().downcast_ref::<StringArray>().unwrap();
        let mut seq: std::collections::HashMap<&str, Vec<Option<&str>>> =
            std::collections::HashMap::new();
        for r in 0..routings.num_rows() {
            seq.entry(rk.value(r))
                .or_default()
                .push((!rj.is_null(r)).then(|| rj.value(r)));
        }
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(models.join("training_metadata.json")).unwrap(),
        )
        .unwrap();
        let params = trainer::model::SearchParams::from_metadata(models, &meta).unwrap();
        let h = trainer::index::hnswlib_file::read(&models.join("hnsw_index.bin"), 200).unwrap();
        let n = h.len();
        let exact = (0..n)
            .map(|i| {
                let all = h.brute_force(h.vector(i as u32), n);
                let other = all
                    .iter()
                    .find(|x| x.1 != i as u32)
                    .map_or(0.0, |x| 1.0 - x.0);
                let routed: Vec<(f32, u32)> = all
                    .iter()
                    .filter(|x| x.1 != i as u32 && has.value(x.1 as usize))
                    .take(PROPOSALS)
                    .copied()
                    .collect();
                if routed.is_empty() {
                    return (other, None, None, None);
                }
                let ops: Vec<&[Option<&str>]> = routed
                    .iter()
                    .map(|x| seq[keys[x.1 as usize].as_str()].as_slice())
                    .collect();
                let a = agreement(&ops);
                let c = answer_confidence(
                    Some(a),
                    Some(1.0 - routed[0].0),
                    &params.proposals,
                    &params.calibration,
                );
                let radius = (routed.len() == PROPOSALS).then(|| 1.0 - routed[PROPOSALS - 1].0);
                (other, Some(a as u8), c, radius)
            })
            .collect();
        Answers {
            item_cd: strs("ITEM_CD"),
            tier: strs("similarity_tier"),
            nearest_similarity: f32s("nearest_other_similarity")
                .into_iter()
                .map(Option::unwrap)
                .collect(),
            agreement: agreement_col
                .as_any()
                .downcast_ref::<UInt8Array>()
                .unwrap()
                .iter()
                .collect(),
            confidence: f32s("confidence"),
            radius: f32s("agreement_radius"),
            exact,
        }
    }

    /// Checks every stored tier against its stored confidence, and that at least 99 % of the
    /// stored answers are exact search's (the rest: where the graph search found other routed
    /// neighbours). Returns how many items are LOW.
    pub fn check(&self, threshold: f32) -> usize {
        let n = self.tier.len();
        let mut exact = 0;
        for i in 0..n {
            let (other, a, c, r) = self.exact[i];
            assert!(
                self.nearest_similarity[i] <= other + 1e-6,
                "row {i}: closer than exact"
            );
            assert_eq!(
                self.tier[i] == "HIGH",
                self.confidence[i].is_some_and(|c| c >= threshold),
                "row {i}"
            );
            // The same 5 routed neighbours (as far as the 5th one's similarity tells) and so the
            // same answer.
            let same_radius = match (self.radius[i], r) {
                (Some(x), Some(y)) => (x - y).abs() < 1e-6,
                (x, y) => x == y,
            };
            if same_radius && self.agreement[i] == a {
                exact += 1;
                assert_eq!(self.confidence[i], c, "row {i}");
            }
        }
        assert!(
            exact * 100 >= n * 99,
            "{exact} of {n} answers are exact search's"
        );
        self.tier.iter().filter(|t| *t == "LOW").count()
    }
}
