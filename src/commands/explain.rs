//! `trainer explain [VIEW]`: the logical, optimised and physical plans of the SQL views.
//!
//! Each file is planned as training plans it, over what training has registered by then: the
//! files training computes into tables (02_clean, `fit_` files, inputs of later `fit_` files;
//! see [`transform::held_in_training`]) are empty stand-in tables of the same schema and
//! declared order, the others are views, and held encode inputs become views again before the
//! streamed views that read them, as in training. `item_sample` is an empty table of the right
//! schema. So explaining computes nothing and reads no more than Parquet footers. (Planned over
//! views instead, DataFusion 55 rejected `fit_numeric_stats` over the `enc_numeric_input` view
//! in its plan sanity check.) One difference remains: a stand-in has no rows, so where a join
//! reads one, DataFusion may hash the other side than in training, where it sees the real sizes.

use std::fmt::Write;

use datafusion::physical_plan::displayable;

use datafusion::prelude::SessionContext;

use crate::engine::sqlfiles::SqlFile;
use crate::engine::{Engine, ItemVolumes};
use crate::error::{Error, Result};
use crate::features::weights::ItemSample;
use crate::train::load_inputs;
use crate::transform;

pub async fn explain(config_path: &std::path::Path, view: Option<&str>) -> Result<String> {
    let (cfg, mapping, files) = load_inputs(config_path)?;
    let volumes = ItemVolumes::load(&cfg.item_metadata)?;
    let eng = Engine::build(&cfg, &mapping, &volumes).await?;
    let ctx = &eng.ctx;
    let targets: Vec<&SqlFile> = match view {
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
    let empty = ItemSample {
        keys: vec![],
        volume_weight: vec![],
        domain_weight: vec![],
        item_weight: vec![],
        sample_weight: vec![],
        fold: vec![],
        max_volume: 0.0,
        metadata_matched: 0,
    };
    let mut out = String::new();
    // Encode inputs held as tables, until no later fit_ file reads them.
    let mut held_inputs: Vec<&SqlFile> = Vec::new();
    let mut sample_registered = false;
    for (k, f) in files.iter().enumerate() {
        if f.layer == "03_encode" && !sample_registered {
            // Training registers the item sample after the clean layer.
            transform::register(ctx, "item_sample", empty.to_batch())?;
            sample_registered = true;
        }
        let held = transform::held_in_training(&files, f);
        if !held {
            // Training streams this view after every fit_ file that reads the held inputs.
            let later = &files[k..];
            let mut still = Vec::new();
            for h in held_inputs.drain(..) {
                if later
                    .iter()
                    .any(|g| g.is_fit() && transform::reads(&g.body, &h.name))
                {
                    still.push(h);
                } else {
                    let _ = ctx.deregister_table(h.name.as_str());
                    transform::define_view(ctx, h).await?;
                }
            }
            held_inputs = still;
        }
        if targets.iter().any(|t| t.name == f.name) {
            explain_one(ctx, f, &mut out).await?;
            if targets.last().is_some_and(|t| t.name == f.name) {
                // Later files cannot change the plans shown: do not plan them.
                break;
            }
        }
        if held {
            transform::register_stand_in(ctx, f).await?;
            if f.layer == "03_encode" && !f.is_fit() {
                held_inputs.push(f);
            }
        } else {
            transform::define_view(ctx, f).await?;
        }
    }
    Ok(out)
}

/// Appends the plans of `f`'s query, over what is registered now.
async fn explain_one(ctx: &SessionContext, f: &SqlFile, out: &mut String) -> Result<()> {
    let what = format!("sql/{}", f.rel);
    let state = ctx.state();
    let df = ctx
        .sql(&f.body)
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
    Ok(())
}

/// `trainer explain` on the command line.
pub async fn execute(config: &std::path::Path, view: Option<&str>) -> Result<()> {
    print!("{}", explain(config, view).await?);
    Ok(())
}
