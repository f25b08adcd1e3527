//! `config/trainer.yml` and `config/schema_mappings.yaml` ([`mapping`]): raw YAML ([`yaml`]) ->
//! validated structs.
//!
//! Validation is complete before any data is read: an unknown key, a missing key or a value out
//! of range is an error that names the key path (`hnsw.m`) and the expected value. Relative paths
//! in the config are resolved against the current working directory (the project root when run
//! through `make`), and reported as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod mapping;
pub mod redact;
pub mod yaml;

/// The smallest `weights.learn_sample`: with fewer routed items the weights are not learned and
/// the similarity is not calibrated.
pub const MIN_LEARN_SAMPLE: usize = 50;

/// The validated pipeline configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Version label of the model this config produces (free text, e.g. `2026.11.0`).
    pub model_version: String,
    /// Label of the data the model is trained on (free text, e.g. `erp-2025-10-21`).
    pub data_version: String,
    pub sources: Sources,
    /// Path of the schema mapping file.
    pub mapping: PathBuf,
    /// Path of `item_metadata.json` (production and sales volumes per ITEM_CD).
    pub item_metadata: PathBuf,
    /// Folder of the versioned SQL transforms (`01_map`, `02_clean`, `03_encode`).
    pub sql_dir: PathBuf,
    /// Nearest-other cosine similarity at or above which an item is HIGH tier.
    pub similarity_threshold: f64,
    pub encoding: Encoding,
    pub weights: Weights,
    pub hnsw: HnswConfig,
    pub update: UpdateConfig,
    pub output: Output,
    /// The file this config was read from (errors found after loading name it).
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// One Parquet file per view in `sources.dir`.
    Parquet,
    /// An ODBC connection (`sources.connection`), one table or view per ERP view.
    Odbc,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub kind: SourceKind,
    /// Parquet: folder holding one Parquet file per view.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Parquet: optional per-view file names (default `<view>.parquet`).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// ODBC: the connection string (or `DSN=...`). Never put a password here: use
    /// `password_env`. Any `PWD=`/`Password=` value is redacted wherever the string is shown.
    #[serde(default, serialize_with = "serialize_redacted")]
    pub connection: Option<String>,
    /// ODBC: name of the environment variable holding the password (appended as `PWD=`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// ODBC: per-view table names (default: the view name, e.g. `dbo_BI_ITEM_INFO_VIEW` in
    /// Access; on SQL Server use `dbo.BI_ITEM_INFO_VIEW`).
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// ODBC: how often a transient connection error is retried (with exponential backoff).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// What a value that is not of its column's contract type does (text such as `abc` or
    /// `12,5` where the contract wants a number): `true` (the default) stops the run with an
    /// input error naming the rows; `false` turns every such value into NULL, counted in the log
    /// and in `training_metadata.json`.
    #[serde(default = "default_strict")]
    pub strict: bool,
    /// ERP columns (mapped, of a non-text contract type) whose bad values become NULL even when
    /// `strict` is true: the per-column exceptions.
    #[serde(default)]
    pub lenient_columns: Vec<String>,
}

fn default_retries() -> u32 {
    3
}

fn default_strict() -> bool {
    true
}

impl Sources {
    /// Whether a bad value in ERP column `col` stops the run (else it becomes NULL).
    pub fn strict_for(&self, col: &str) -> bool {
        self.strict && !self.lenient_columns.iter().any(|c| c == col)
    }
}

fn serialize_redacted<S: serde::Serializer>(
    v: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(c) => s.serialize_some(&redact::redact(c)),
        None => s.serialize_none(),
    }
}

/// Parameters the SQL encode layer reads from the `params` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    /// A one-hot level needs at least this weighted share of items, else it becomes OTHER.
    pub onehot_min_share: f64,
    /// At most this many levels per one-hot column (most frequent first); the rest is OTHER.
    pub onehot_max_levels: i64,
    /// Number of folds for target-encoding cross-fitting.
    pub target_folds: i64,
    /// Smoothing strength m of target encoding: (Σw·y + m·prior) / (Σw + m).
    pub target_smoothing: f64,
    /// Lower and upper quantile for clipping numeric features.
    pub clip_quantiles: [f64; 2],
    /// Seed of the fold assignment.
    pub seed: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Domain weight per feature (standard name as produced by the SQL encode layer).
    pub features: BTreeMap<String, f64>,
    /// Learn the feature weights from the training items' routings, with `features` as the
    /// prior (`learn.rs`).
    pub learn: bool,
    /// Routed training items whose leave-one-out neighbours score a weighting.
    pub learn_sample: usize,
    pub item: ItemWeights,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ItemWeights {
    /// Smallest volume weight (items never sold still count).
    pub volume_floor: f64,
    /// Standard column names whose presence makes up an item's domain weight.
    pub domain_columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    Cosine,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HnswConfig {
    pub space: Space,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub seed: u64,
}

impl HnswConfig {
    /// The construction parameters of the index this config builds.
    pub fn params(&self) -> crate::index::HnswParams {
        crate::index::HnswParams {
            m: self.m,
            ef_construction: self.ef_construction,
            seed: self.seed,
        }
    }
}

/// When `trainer update` advises a full retraining (it never retrains by itself).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Items added by updates since training, as a share of the trained items.
    pub retrain_share: f64,
    /// Share of an update's new items that carry a one-hot category level no training item had.
    pub unseen_level_share: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    pub models_dir: PathBuf,
    pub logs_dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let mut cfg: Config = yaml::read_yaml(path, "the config file", "pass --config PATH")?;
        cfg.validate(path)?;
        cfg.file = path.to_path_buf();
        Ok(cfg)
    }

    /// Range checks that serde cannot express.
    /// Checks every value against its range, section by section, in file order: the first
    /// offending key is reported with the expected value.
    pub fn validate(&self, file: &Path) -> Result<()> {
        if !(self.similarity_threshold > 0.0 && self.similarity_threshold < 1.0) {
            return bad(
                file,
                "similarity_threshold",
                "a number in (0, 1), e.g. 0.8",
                self.similarity_threshold.to_string(),
            );
        }
        self.encoding.validate(file)?;
        self.weights.validate(file)?;
        self.hnsw.validate(file)?;
        self.update.validate(file)?;
        if self.model_version.trim().is_empty() {
            return bad(
                file,
                "model_version",
                "a non-empty version label",
                "\"\"".into(),
            );
        }
        self.sources.validate(file)
    }
}

impl Encoding {
    /// The `encoding` section's ranges.
    fn validate(&self, file: &Path) -> Result<()> {
        let e = self;
        if !(0.0..0.5).contains(&e.onehot_min_share) {
            return bad(
                file,
                "encoding.onehot_min_share",
                "a share in [0, 0.5), e.g. 0.005",
                e.onehot_min_share.to_string(),
            );
        }
        if !(2..=1000).contains(&e.onehot_max_levels) {
            return bad(
                file,
                "encoding.onehot_max_levels",
                "an integer in 2..=1000",
                e.onehot_max_levels.to_string(),
            );
        }
        if !(2..=20).contains(&e.target_folds) {
            return bad(
                file,
                "encoding.target_folds",
                "an integer in 2..=20, e.g. 5",
                e.target_folds.to_string(),
            );
        }
        if !(e.target_smoothing.is_finite() && e.target_smoothing >= 0.0) {
            return bad(
                file,
                "encoding.target_smoothing",
                "a number >= 0, e.g. 20",
                e.target_smoothing.to_string(),
            );
        }
        let [lo, hi] = e.clip_quantiles;
        if !(0.0 <= lo && lo < hi && hi <= 1.0) {
            return bad(
                file,
                "encoding.clip_quantiles",
                "[lower, upper] with 0 <= lower < upper <= 1",
                format!("[{lo}, {hi}]"),
            );
        }
        Ok(())
    }
}

impl Weights {
    /// The `weights` section's ranges.
    fn validate(&self, file: &Path) -> Result<()> {
        for (k, w) in &self.features {
            if !(w.is_finite() && *w >= 0.0 && *w <= 100.0) {
                return bad(
                    file,
                    &format!("weights.features.{k}"),
                    "a weight in [0, 100]",
                    w.to_string(),
                );
            }
        }
        if !(MIN_LEARN_SAMPLE..=100_000).contains(&self.learn_sample) {
            return bad(
                file,
                "weights.learn_sample",
                &format!("an integer in {}..=100000, e.g. 1000", MIN_LEARN_SAMPLE),
                self.learn_sample.to_string(),
            );
        }
        let iw = &self.item;
        if !(iw.volume_floor > 0.0 && iw.volume_floor <= 1.0) {
            return bad(
                file,
                "weights.item.volume_floor",
                "a number in (0, 1], e.g. 0.1",
                iw.volume_floor.to_string(),
            );
        }
        if iw.domain_columns.is_empty() {
            return bad(
                file,
                "weights.item.domain_columns",
                "a non-empty list of standard column names",
                "[]".into(),
            );
        }
        Ok(())
    }
}

impl HnswConfig {
    /// The `hnsw` section's ranges.
    fn validate(&self, file: &Path) -> Result<()> {
        let h = self;
        if !(2..=128).contains(&h.m) {
            return bad(
                file,
                "hnsw.m",
                "an integer in 2..=128, e.g. 32",
                h.m.to_string(),
            );
        }
        if !(h.m..=10_000).contains(&h.ef_construction) {
            return bad(
                file,
                "hnsw.ef_construction",
                &format!("an integer in {}..=10000 (at least hnsw.m)", h.m),
                h.ef_construction.to_string(),
            );
        }
        if !(1..=10_000).contains(&h.ef_search) {
            return bad(
                file,
                "hnsw.ef_search",
                "an integer in 1..=10000, e.g. 256",
                h.ef_search.to_string(),
            );
        }
        Ok(())
    }
}

impl UpdateConfig {
    /// The `update` section's shares.
    fn validate(&self, file: &Path) -> Result<()> {
        for (key, v) in [
            ("update.retrain_share", self.retrain_share),
            ("update.unseen_level_share", self.unseen_level_share),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(file, key, "a share in (0, 1], e.g. 0.1", v.to_string());
            }
        }
        Ok(())
    }
}

impl Sources {
    /// The `sources` section: the settings of its kind, and only those; known view names.
    fn validate(&self, file: &Path) -> Result<()> {
        let src = self;
        match src.kind {
            SourceKind::Parquet => {
                if src.dir.is_none() {
                    return bad(
                        file,
                        "sources.dir",
                        "the folder with one <view>.parquet per ERP view (kind: parquet)",
                        "nothing".into(),
                    );
                }
                for k in ["connection", "password_env"] {
                    let set = if k == "connection" {
                        src.connection.is_some()
                    } else {
                        src.password_env.is_some()
                    };
                    if set {
                        return bad(
                            file,
                            &format!("sources.{k}"),
                            "no ODBC settings with kind: parquet",
                            "a value".into(),
                        );
                    }
                }
            }
            SourceKind::Odbc => {
                if src
                    .connection
                    .as_deref()
                    .is_none_or(|c| c.trim().is_empty())
                {
                    return bad(
                        file,
                        "sources.connection",
                        "an ODBC connection string, e.g. DRIVER={MDBTools};DBQ=/abs/path/erp.accdb (kind: odbc)",
                        "nothing".into(),
                    );
                }
                if src.dir.is_some() || !src.files.is_empty() {
                    return bad(
                        file,
                        "sources.dir",
                        "no Parquet settings with kind: odbc (use sources.tables)",
                        "a value".into(),
                    );
                }
                if src.retries > 10 {
                    return bad(
                        file,
                        "sources.retries",
                        "an integer in 0..=10",
                        src.retries.to_string(),
                    );
                }
            }
        }
        let names: Vec<&str> = crate::erp::VIEWS.iter().map(|v| v.erp_name).collect();
        let keyed = [
            ("tables", src.tables.keys().collect::<Vec<_>>()),
            ("files", src.files.keys().collect()),
        ];
        for (section, views) in keyed {
            if let Some(view) = views.into_iter().find(|v| !names.contains(&v.as_str())) {
                return bad(
                    file,
                    &format!("sources.{section}.{view}"),
                    &format!("one of {}", names.join(", ")),
                    view.clone(),
                );
            }
        }
        Ok(())
    }
}

/// The error for `key`: what was expected and what was found.
fn bad(file: &Path, key: &str, expected: &str, got: String) -> Result<()> {
    Err(Error::config(
        file,
        format!("key `{key}`: expected {expected}, got {got}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped config keeps the Stage-2 plan's numbers as its defaults.
    #[test]
    fn shipped_config_has_the_plans_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trainer.yml");
        let cfg = Config::load(&path).unwrap();
        let plan = crate::index::HnswParams::plan(42);
        let got = cfg.hnsw.params();
        assert_eq!(
            (got.m, got.ef_construction, got.seed),
            (plan.m, plan.ef_construction, plan.seed)
        );
        assert_eq!(cfg.hnsw.space, Space::Cosine);
        assert_eq!(cfg.hnsw.ef_search, 256);
        assert_eq!(cfg.similarity_threshold, 0.8);
        assert_eq!(cfg.encoding.seed, 42);
    }

    /// Seeded mutation fuzzing of the config parser: 5,000 corruptions of the shipped config
    /// (lines dropped, duplicated or swapped, characters replaced by YAML's special ones, the
    /// text cut short) each parse and validate to a config or an error naming the file; none
    /// panics. The corpus is this seed and config/trainer.yml.
    #[test]
    fn corrupt_configs_are_errors_never_panics() {
        use crate::rng::Rng;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trainer.yml");
        let text = std::fs::read_to_string(&path).unwrap();
        let specials: Vec<char> = ":-[]{}\"' \t\n#&*!|>%@`,?0a~".chars().collect();
        let mut rng = Rng::new(7);
        let mut errors = 0;
        for _ in 0..5_000 {
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            let t = match rng.below(5) {
                0 => {
                    lines.remove(rng.below(lines.len()));
                    lines.join("\n")
                }
                1 => {
                    let k = rng.below(lines.len());
                    lines.insert(k, lines[k].clone());
                    lines.join("\n")
                }
                2 => {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                    lines.join("\n")
                }
                3 => {
                    let mut chars: Vec<char> = text.chars().collect();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(chars.len());
                        chars[at] = specials[rng.below(specials.len())];
                    }
                    chars.into_iter().collect()
                }
                _ => text.chars().take(rng.below(text.chars().count())).collect(),
            };
            let parsed: Result<Config> =
                yaml::parse_yaml(&path, &t).and_then(|c: Config| c.validate(&path).map(|_| c));
            if let Err(e) = parsed {
                errors += 1;
                assert!(e.to_string().contains("trainer.yml"), "{e}");
            }
        }
        assert!(errors > 1_000, "{errors} of 5000 mutations rejected");
    }
}
