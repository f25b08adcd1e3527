//! The field mapping (`config/schema_mappings.yaml`): ERP column name -> internal standard name,
//! per view.
//!
//! This is the only place ERP spellings live. The engine turns each view's mapping into a
//! generated view `erp_<logical>` (`SELECT "ITEM_CD" AS item_cd, ...`), so renaming a source
//! column needs an edit of the mapping file only; the SQL layers use standard names throughout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::yaml::read_yaml;
use crate::erp::VIEWS;
use crate::error::{Error, Result};
use crate::text::close_matches;

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
        let mut m: Mapping =
            read_yaml(path, "the mapping file", "see key `mapping` in the config")?;
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
