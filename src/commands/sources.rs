//! `trainer sources check` and `trainer extract`: the command-line side of
//! [`crate::engine::sources::check`] (reports and exit codes).

use std::path::Path;

use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::engine::sources::check;
use crate::error::{Error, Result};

/// `trainer sources check`: print each view's report; missing mapped columns are an input error.
pub async fn check(config: &Path) -> Result<()> {
    let cfg = Config::load(config)?;
    let mapping = Mapping::load(&cfg.mapping)?;
    let (reports, mapping) = tokio::task::spawn_blocking(move || {
        check::describe_sources(&cfg, &mapping).map(|r| (r, mapping))
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    let (text, ok) = check::render(&reports, &mapping);
    print!("{text}");
    if !ok {
        return Err(Error::input(
            "sources check",
            format!(
                "mapped columns are missing (see above); fix {} or the source",
                mapping.file.display()
            ),
        ));
    }
    Ok(())
}

/// `trainer extract`: snapshot the sources to Parquet and print the snapshot id.
pub async fn extract(config: &Path, out: &Path) -> Result<()> {
    let cfg = Config::load(config)?;
    let mapping = Mapping::load(&cfg.mapping)?;
    let x = check::extract(&cfg, &mapping, out).await?;
    println!(
        "extracted {} rows to {} (read in {:.2} s, {:.0} rows/s): snapshot id {}",
        x.rows,
        out.display(),
        x.read_seconds,
        x.rows as f64 / x.read_seconds.max(1e-9),
        x.snapshot_id
    );
    Ok(())
}
