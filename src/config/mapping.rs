//! The field mapping (`config/schema_mappings.yaml`): ERP column name -> internal standard name,
//! per view.
//!
//! This is the only place ERP spellings live. The engine turns each view's mapping into a
//! generated view `erp_<logical>` (`SELECT "ITEM_CD" AS item_cd, ...`), so renaming a source
//! column needs an edit of the mapping file only; the SQL layers use standard names throughout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::parse_yaml;
use crate::error::{Error, Result};

/// A source view: its ERP name and the logical name the SQL layers use (`erp_<logical>`).
pub struct ViewDef {
    pub erp_name: &'static str,
    pub logical: &'static str,
}

pub const VIEWS: &[ViewDef] = &[
    ViewDef {
        erp_name: "dbo_BI_ITEM_INFO_VIEW",
        logical: "items",
    },
    ViewDef {
        erp_name: "dbo_BI_ROUTING_VIEW",
        logical: "routings",
    },
    ViewDef {
        erp_name: "dbo_BI_WORK_ORDER_RESULTS",
        logical: "work_orders",
    },
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub version: String,
    /// ERP view name -> (ERP column -> standard name). BTreeMap keeps the file order irrelevant
    /// and the generated SQL deterministic.
    pub views: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(skip)]
    pub file: PathBuf,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                path,
                format!("cannot read the mapping file: {e} (see key `mapping` in the config)"),
            )
        })?;
        let mut m: Mapping = parse_yaml(path, &text)?;
        m.file = path.to_path_buf();
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        for v in VIEWS {
            if !self.views.contains_key(v.erp_name) {
                return Err(Error::config(
                    &self.file,
                    format!(
                        "key `views.{}` is missing: every view needs a mapping",
                        v.erp_name
                    ),
                ));
            }
        }
        for (view, cols) in &self.views {
            if !VIEWS.iter().any(|v| v.erp_name == view) {
                let names: Vec<&str> = VIEWS.iter().map(|v| v.erp_name).collect();
                return Err(Error::config(
                    &self.file,
                    format!(
                        "key `views.{view}`: unknown view; expected one of {}",
                        names.join(", ")
                    ),
                ));
            }
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for (erp, std_name) in cols {
                let ok = !std_name.is_empty()
                    && std_name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !std_name.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    return Err(Error::config(
                        &self.file,
                        format!(
                            "key `views.{view}.{erp}`: expected a standard name in snake_case (a-z, 0-9, _), got `{std_name}`"
                        ),
                    ));
                }
                if let Some(prev) = seen.insert(std_name.as_str(), erp.as_str()) {
                    return Err(Error::config(
                        &self.file,
                        format!(
                            "key `views.{view}`: columns `{prev}` and `{erp}` both map to `{std_name}`"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn columns(&self, erp_view: &str) -> &BTreeMap<String, String> {
        &self.views[erp_view]
    }

    /// Checks that every mapped column exists in the source's columns; the error names the view,
    /// the column, close matches, and the file to edit.
    pub fn check_source_columns(
        &self,
        erp_view: &str,
        source_desc: &str,
        available: &[String],
    ) -> Result<()> {
        let mut missing = Vec::new();
        for erp_col in self.columns(erp_view).keys() {
            if !available.iter().any(|a| a == erp_col) {
                let close = close_matches(erp_col, available);
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!(" (close matches: {})", close.join(", "))
                };
                missing.push(format!("`{erp_col}`{hint}"));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::input(
            format!("{erp_view} ({source_desc})"),
            format!(
                "mapped column{} {} not found in the source. Fix the column name under `views.{erp_view}` in {}, or the source.",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                self.file.display()
            ),
        ))
    }

    /// `SELECT "ERP" AS std, ...` for one view, in standard-name order.
    pub fn select_sql(&self, erp_view: &str) -> String {
        let mut pairs: Vec<(&String, &String)> =
            self.columns(erp_view).iter().map(|(e, s)| (s, e)).collect();
        pairs.sort();
        let cols: Vec<String> = pairs
            .iter()
            .map(|(std_name, erp)| format!("\"{}\" AS {}", erp.replace('"', "\"\""), std_name))
            .collect();
        format!("SELECT {} FROM \"{}\"", cols.join(", "), erp_view)
    }
}

/// Names within edit distance 2, or equal ignoring case and non-alphanumerics.
pub fn close_matches(name: &str, candidates: &[String]) -> Vec<String> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(|c| c.to_lowercase())
            .collect::<String>()
    };
    let n = norm(name);
    let mut out: Vec<(usize, String)> = candidates
        .iter()
        .filter_map(|c| {
            let a: Vec<char> = n.chars().collect();
            let b: Vec<char> = norm(c).chars().collect();
            let d = levenshtein(&a, &b);
            (d <= 2).then(|| (d, c.clone()))
        })
        .collect();
    out.sort();
    out.into_iter().take(3).map(|(_, c)| c).collect()
}

/// Edit distance between two sequences (also used by `trainer eval` for JOB_CD sequences).
pub fn levenshtein<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
