//! `trainer explain [VIEW]`: the logical, optimised and physical plans of the SQL views.
//!
//! All views are created as in training, except that `fit_` views stay views (nothing is
//! computed) and `item_sample` is an empty table of the right schema, so explaining never reads
//! more than Parquet footers.

use std::fmt::Write;

use datafusion::physical_plan::displayable;

use crate::engine::{Engine, ItemVolumes};
use crate::error::{Error, Result};
use crate::pipeline::load_inputs;
use crate::transform;
use crate::weights::ItemSample;

pub async fn explain(config_path: &std::path::Path, view: Option<&str>) -> Result<String> {
    let (cfg, mapping, files) = load_inputs(config_path)?;
    let volumes = ItemVolumes::load(&cfg.item_metadata)?;
    let eng = Engine::build(&cfg, &mapping, &volumes).await?;
    let ctx = &eng.ctx;
    transform::create_views(ctx, &files, &["01_map", "02_clean"], false).await?;
    let empty = ItemSample {
        keys: vec![],
        volume_weight: vec![],
        domain_weight: vec![],
        item_weight: vec![],
        sample_weight: vec![],
        fold: vec![],
    };
    transform::register(ctx, "item_sample", empty.to_batch())?;
    for f in files.iter().filter(|f| f.layer == "03_encode") {
        transform::define_view(ctx, f).await?;
    }
    let targets: Vec<&crate::engine::sqlfiles::SqlFile> = match view {
        Some(v) => {
            let f = files.iter().find(|f| f.name == v).ok_or_else(|| {
                let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
                Error::usage(format!(
                    "no SQL view named `{v}`; views are: {}",
                    names.join(", ")
                ))
            })?;
            vec![f]
        }
        None => files.iter().collect(),
    };
    let state = ctx.state();
    let mut out = String::new();
    for f in targets {
        let what = format!("sql/{}", f.rel);
        let df = ctx
            .sql(&format!("SELECT * FROM {}", f.name))
            .await
            .map_err(|e| Error::sql(&what, e.to_string()))?;
        let logical = df.logical_plan().clone();
        let optimized = state
            .optimize(&logical)
            .map_err(|e| Error::sql(&what, e.to_string()))?;
        let physical = state
            .create_physical_plan(&logical)
            .await
            .map_err(|e| Error::sql(&what, e.to_string()))?;
        let _ = writeln!(out, "=== {} ({}, version {}) ===", f.name, f.rel, f.version);
        let _ = writeln!(out, "grain: {}", f.grain);
        let _ = writeln!(out, "--- logical plan ---\n{}", logical.display_indent());
        let _ = writeln!(
            out,
            "--- optimised logical plan ---\n{}",
            optimized.display_indent()
        );
        let _ = writeln!(
            out,
            "--- physical plan ---\n{}",
            displayable(physical.as_ref()).indent(true)
        );
    }
    Ok(out)
}
