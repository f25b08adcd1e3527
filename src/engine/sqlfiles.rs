//! The versioned SQL transforms under `sql/`: discovery, header parsing, hashing.
//!
//! Layers are folders run in name order (`01_map`, `02_clean`, `03_encode`); files within a layer
//! run in name order and each defines one view named after the file stem without its `NN_`
//! ordering prefix (`02_clean/10_clean_items.sql` defines `clean_items`). A view whose name starts
//! with `fit_` computes fitted state (statistics learned from training data); its result is saved
//! under `models/fitted/` and, when vectorising later, loaded instead of recomputed.
//!
//! Every file starts with a header of `-- key: value` lines; `version`, `grain` and `purpose` are
//! required, so a change to a transform is visible in the file and in `training_metadata.json`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlFile {
    /// Layer folder, e.g. `02_clean`.
    pub layer: String,
    /// View name (the file stem).
    pub name: String,
    /// Path relative to the SQL folder, e.g. `02_clean/clean_items.sql`.
    pub rel: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub version: String,
    pub grain: String,
    pub purpose: String,
    pub sha256: String,
    /// `-- held: yes` in the header: training computes this 03_encode view once and holds it,
    /// even where one computed file reads it (see `transform::held_input`).
    #[serde(skip)]
    pub held: bool,
    #[serde(skip)]
    pub body: String,
}

impl SqlFile {
    pub fn is_fit(&self) -> bool {
        self.name.starts_with("fit_")
    }
}

pub const LAYERS: &[&str] = &["01_map", "02_clean", "03_encode"];

/// Loads every layer of `dir`; errors name the file and the missing header field.
pub fn load(dir: &Path) -> Result<Vec<SqlFile>> {
    let mut out = Vec::new();
    for layer in LAYERS {
        let ldir = dir.join(layer);
        let rd = std::fs::read_dir(&ldir).map_err(|e| {
            Error::config(
                &ldir,
                format!("cannot read SQL layer folder: {e} (see key `sql_dir` in the config)"),
            )
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for path in files {
            out.push(parse_file(layer, &path)?);
        }
    }
    let mut names: Vec<&str> = out.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    for w in names.windows(2) {
        if w[0] == w[1] {
            return Err(Error::config(
                dir,
                format!("two SQL files define the view `{}`", w[0]),
            ));
        }
    }
    Ok(out)
}

fn parse_file(layer: &str, path: &Path) -> Result<SqlFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(path, format!("cannot read: {e}")))?;
    let stem = path
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // An `NN_` ordering prefix is not part of the view name.
    let name = match stem.split_once('_') {
        Some((p, rest)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            rest.to_string()
        }
        _ => stem.clone(),
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::config(
            path,
            "SQL file names must be snake_case view names (a-z, 0-9, _)",
        ));
    }
    let mut version = None;
    let mut grain = None;
    let mut purpose = None;
    let mut held = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("--") else {
            break;
        };
        if let Some((k, v)) = rest.trim().split_once(':') {
            let v = v.trim().to_string();
            match k.trim() {
                "version" => version = Some(v),
                "grain" => grain = Some(v),
                "purpose" => purpose = Some(v),
                "held" => held = Some(v),
                _ => {}
            }
        }
    }
    let need = |v: Option<String>, key: &str| {
        v.filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(
                path,
                format!(
                    "the header must have a `-- {key}: ...` line (fields: version, grain, purpose)"
                ),
            )
        })
    };
    let held = match held.as_deref() {
        None | Some("no") => false,
        Some("yes") => true,
        Some(other) => {
            return Err(Error::config(
                path,
                format!("header field `held` must be `yes` or `no`, not `{other}`"),
            ));
        }
    };
    let body = text.clone();
    if body.trim_end().ends_with(';') {
        return Err(Error::config(
            path,
            "a transform is one SELECT without a trailing `;`",
        ));
    }
    Ok(SqlFile {
        layer: layer.to_string(),
        rel: format!(
            "{layer}/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        version: need(version, "version")?,
        grain: need(grain, "grain")?,
        purpose: need(purpose, "purpose")?,
        sha256: crate::hash::hex(&Sha256::digest(text.as_bytes())),
        held,
        path: path.to_path_buf(),
        name,
        body,
    })
}
