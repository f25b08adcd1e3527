//! Encoding items with a trained model's fitted state, outside training: the items `update` adds
//! and the new items `recommend` is asked about.
//!
//! It runs the SQL layers and the mapping the model was trained with (the copies `run` saves
//! under `fitted/`), with every `fit_` view loaded from `fitted/`, so a new item is encoded
//! exactly as `trainer vectorize` encodes it (full-data statistics, fold -1) whatever the working
//! tree's `sql/` holds today. Only the items asked for are encoded: `clean_items` is replaced by
//! their rows before the encode layer runs, so the cost grows with the new items, not the model.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use ndarray::Array2;

use crate::config::mapping::Mapping;
use crate::engine::RowFilter;
use crate::engine::sqlfiles::{self, SqlFile};
use crate::error::{Error, Result};
use crate::features::vectors::{self, Dims};
use crate::model::{FITTED_DIR, MAPPING_COPY, SQL_COPY_DIR};
use crate::train::{self, ItemTable};
use crate::transform::{self, Mode};

/// The transforms a model was trained with.
pub struct Transforms {
    pub files: Vec<SqlFile>,
    pub mapping: Mapping,
    pub fitted: PathBuf,
    pub dims: Dims,
}

impl Transforms {
    pub fn load(model_dir: &Path) -> Result<Transforms> {
        let fitted = model_dir.join(FITTED_DIR);
        let sql = fitted.join(SQL_COPY_DIR);
        if !sql.is_dir() {
            return Err(Error::input(
                sql.display().to_string(),
                "the model has no copy of its SQL transforms; retrain with this trainer (`trainer run`)",
            ));
        }
        let files = sqlfiles::load(&sql)?;
        let mapping = Mapping::load(&fitted.join(MAPPING_COPY))?;
        let dims = Dims::from_batch(&transform::load_table(&fitted.join("dims.parquet"))?)?;
        Ok(Transforms {
            files,
            mapping,
            fitted,
            dims,
        })
    }

    /// The SQL files (by path under `sql/`) and the mapping that differ between the working
    /// tree and this model: new items are still encoded with the model's copies, and a full
    /// retraining picks up the edits.
    pub fn edited_since(&self, files: &[SqlFile], mapping: &Mapping) -> Vec<String> {
        let mut out = Vec::new();
        for f in files {
            match self.files.iter().find(|g| g.rel == f.rel) {
                Some(g) if g.sha256 == f.sha256 => {}
                Some(_) => out.push(format!("sql/{} (edited)", f.rel)),
                None => out.push(format!("sql/{} (new)", f.rel)),
            }
        }
        for g in &self.files {
            if !files.iter().any(|f| f.rel == g.rel) {
                out.push(format!("sql/{} (removed)", g.rel));
            }
        }
        if mapping.views != self.mapping.views {
            out.push(format!("{} (edited)", mapping.file.display()));
        }
        out
    }

    /// Defines (or redefines) the model's map and clean views over the ERP tables of `ctx`
    /// (registered under their ERP names), routing and work-order rows filtered by `filter`, and
    /// registers its fitted `params` and `item_sample`.
    pub async fn define_views(&self, ctx: &SessionContext, filter: RowFilter) -> Result<()> {
        self.define_views_over(ctx, filter, None).await
    }

    /// [`Transforms::define_views`], the item view's rows (`erp_items`) being `items` if given
    /// (rows already read: `update` cleans the items that may have changed from them).
    pub async fn define_views_over(
        &self,
        ctx: &SessionContext,
        filter: RowFilter,
        items: Option<RecordBatch>,
    ) -> Result<()> {
        crate::engine::register_mapping_views(ctx, &self.mapping, filter).await?;
        if let Some(items) = items {
            let _ = ctx.deregister_table("erp_items");
            transform::register(ctx, "erp_items", items)?;
        }
        for f in self.files.iter().filter(|f| f.layer != "03_encode") {
            let _ = ctx.deregister_table(f.name.as_str());
        }
        transform::create_views(ctx, &self.files, &["01_map", "02_clean"], false).await?;
        for t in ["params", "item_sample"] {
            transform::register(
                ctx,
                t,
                transform::load_table(&self.fitted.join(format!("{t}.parquet")))?,
            )?;
        }
        Ok(())
    }
}

/// `clean_items` of the session, every column, sorted by item_key.
pub async fn clean_items(ctx: &SessionContext) -> Result<RecordBatch> {
    let df = ctx
        .sql("SELECT * FROM clean_items ORDER BY item_key")
        .await
        .map_err(|e| Error::sql("clean_items", e.to_string()))?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = crate::engine::collect_df(df, "clean_items").await?;
    crate::engine::concat(&schema, &batches)
}

/// Items encoded with the fitted state.
pub struct Encoded {
    pub items: ItemTable,
    pub vectors: Array2<f32>,
}

/// Encodes the items of `chosen` (rows of `clean_items`, sorted by item_key) with the model's
/// fitted state. `clean_items` is replaced by `chosen` in `ctx`.
pub async fn encode(ctx: &SessionContext, t: &Transforms, chosen: RecordBatch) -> Result<Encoded> {
    transform::register(ctx, "clean_items", chosen)?;
    transform::run_encode(
        ctx,
        &t.files,
        Mode::Apply {
            state_dir: &t.fitted,
        },
        None,
    )
    .await?;
    let (items, parts) = train::read_encoded(ctx).await?;
    let raw = vectors::Encoded::into_matrix(parts, &items.keys)?;
    Ok(Encoded {
        vectors: raw.into_vectors(&t.dims),
        items,
    })
}
