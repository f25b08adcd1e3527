//! YAML parsing for the config and the mapping: errors name the file and the key path.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses YAML into `T`, naming the key path of any unknown, missing or mistyped key.
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    let value: serde_json::Value = serde_saphyr::from_str(text)
        .map_err(|e| Error::config(file, format!("not valid YAML: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde says "missing field `x`" at the parent's path: name the full key instead.
        if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            let full = if path == "." { field.to_string() } else { format!("{path}.{field}") };
            return Error::config(
                file,
                format!(
                    "key `{full}` is missing: every key is required (config/trainer.yml in the repository shows each with its default)"
                ),
            );
        }
        let key = if path == "." {
            "top level".to_string()
        } else {
            format!("key `{path}`")
        };
        Error::config(file, format!("{key}: {inner}"))
    })
}

/// Reads `path` and parses it into `T`; an unreadable file is a config error saying what the
/// file is (`what`) and where it is configured (`hint`).
pub fn read_yaml<T: DeserializeOwned>(path: &Path, what: &str, hint: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(path, format!("cannot read {what}: {e} ({hint})")))?;
    parse_yaml(path, &text)
}
