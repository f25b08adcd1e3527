//! `trainer vectorize`: the vectors of the config's sources under a trained model's fitted
//! state (`vectors.npy` and `items.csv` in the output folder). Training items get back exactly
//! their training vectors; other items are encoded with full-data statistics.

use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::export::npy::write_npy;
use crate::features::vectors::{self, Dims};
use crate::fsutil::atomic_write;
use crate::train::{apply_session, read_encoded};
use crate::transform;

/// `trainer vectorize` on the command line: vectorise, write `vectors.npy` and `items.csv` into
/// `out`, print a summary line.
pub async fn execute(config: &Path, model: &Path, out: &Path) -> Result<()> {
    let v = vectorize(config, model).await?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, "create the directory", e))?;
    write_npy(&out.join("vectors.npy"), v.vectors.view())?;
    let mut csv = String::from("row,ITEM_CD\n");
    for (i, c) in v.item_cd.iter().enumerate() {
        csv.push_str(&format!("{i},{}\n", c.replace(',', " ")));
    }
    atomic_write(&out.join("items.csv"), csv.as_bytes())?;
    println!(
        "vectorised {} items x {} dims into {}",
        v.keys.len(),
        v.vectors.ncols(),
        out.display()
    );
    Ok(())
}

/// Vectors of the items in the config's sources, computed with a trained model's fitted state.
/// Training items get back exactly their training vectors; other items use full-data statistics.
pub struct Vectorized {
    pub keys: Vec<String>,
    pub item_cd: Vec<String>,
    pub vectors: Array2<f32>,
}

/// `trainer vectorize`.
pub async fn vectorize(config_path: &Path, model_dir: &Path) -> Result<Vectorized> {
    let (eng, _files) = apply_session(config_path, model_dir).await?;
    let ctx = &eng.ctx;
    let dims = Dims::from_batch(&transform::load_table(
        &model_dir.join("fitted").join("dims.parquet"),
    )?)?;
    let (items, parts) = read_encoded(ctx).await?;
    drop(eng);
    let raw = vectors::Encoded::into_matrix(parts, &items.keys)?;
    let vecs = raw.into_vectors(&dims);
    Ok(Vectorized {
        keys: items.keys,
        item_cd: items.item_cd,
        vectors: vecs,
    })
}
