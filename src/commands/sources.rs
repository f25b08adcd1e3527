//! `trainer sources check`, `trainer sources profile` and `trainer extract`: the command-line
//! side of [`crate::engine::sources::check`] and [`crate::profile`] (reports and exit codes).

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

/// `trainer sources profile`: the data-quality report, as text or JSON, and as an HTML page.
pub async fn profile(
    config: &Path,
    model: Option<&Path>,
    json: bool,
    html: Option<&Path>,
) -> Result<()> {
    let cfg = Config::load(config)?;
    let mapping = Mapping::load(&cfg.mapping)?;
    let model = match model {
        Some(m) if !m.join(crate::model::ITEM_FEATURES_FILE).is_file() => {
            return Err(Error::input(
                m.display().to_string(),
                "no trained model here (no item_features.parquet): give the folder `trainer run` \
                 wrote, or leave out --model",
            ));
        }
        Some(m) => Some(m.to_path_buf()),
        None => Some(cfg.output.models_dir.clone())
            .filter(|m| m.join(crate::model::ITEM_FEATURES_FILE).is_file()),
    };
    let p = crate::profile::profile(&cfg, &mapping, model.as_deref()).await?;
    if let Some(path) = html {
        crate::fsutil::atomic_write(path, crate::profile::render::html(&p).as_bytes())?;
    }
    if json {
        let text = serde_json::to_string_pretty(&p).map_err(|e| Error::internal(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", crate::profile::render::text(&p));
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
