//! Weights: per-feature domain weights and per-item weights (the formulas are in the README).
//!
//! * Feature weight `w_f` (config `weights.features`): multiplies every dimension of feature `f`
//!   after standardisation, so it scales that feature's share of the cosine similarity.
//! * Item weight `h_i`: the harmonic mean of a volume weight `v_i` and a domain weight `d_i`:
//!   `v_i = a + (1-a)·ln(1+P_i+S_i)/ln(1+max_j(P_j+S_j))` (P, S: production and sales volume),
//!   `d_i = a + (1-a)·Σ_c w_c·[c present]/Σ_c w_c` over `weights.item.domain_columns`,
//!   `h_i = 2·v_i·d_i/(v_i+d_i)`, with `a = weights.item.volume_floor`. The sample weight used
//!   when fitting statistics is `h_i / mean(h)`.
//! * Fold `k_i = mix64(fnv1a(item_key) xor mix64(seed)) mod K`: independent of row order.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::config::Config;
use crate::engine::{column_as, f64s, strings};
use crate::error::{Error, Result};
use crate::rng::{fnv1a64, mix64};

/// The training items with their weights and folds, in item_key order.
#[derive(Debug, Clone)]
pub struct ItemSample {
    pub keys: Vec<String>,
    pub volume_weight: Vec<f64>,
    pub domain_weight: Vec<f64>,
    pub item_weight: Vec<f64>,
    pub sample_weight: Vec<f64>,
    pub fold: Vec<i64>,
    /// max_j (P_j + S_j) over the training items (new items' volume weights are relative to it).
    pub max_volume: f64,
    /// Items with an entry in the item metadata (the others have volume 0).
    pub metadata_matched: usize,
}

pub fn feature_weight(cfg: &Config, feature: &str) -> Option<f64> {
    cfg.weights.features.get(feature).copied()
}

pub fn fold_of(key: &str, seed: u64, folds: i64) -> i64 {
    (mix64(fnv1a64(key.as_bytes()) ^ mix64(seed)) % folds as u64) as i64
}

/// Per item of `clean_items` (item_key order): key, volume `P + S`, and the weighted share of
/// the domain columns present; and how many items have an entry in the item metadata.
async fn weight_inputs(
    ctx: &SessionContext,
    cfg: &Config,
) -> Result<(Vec<String>, Vec<f64>, Vec<f64>, usize)> {
    let iw = &cfg.weights.item;
    let schema = crate::engine::view_schema(ctx, "clean_items").await?;
    for c in &iw.domain_columns {
        if schema.field_with_name(c).is_err() {
            return Err(Error::config(
                &cfg.file,
                format!(
                    "key `weights.item.domain_columns`: `{c}` is not a column of the clean_items view"
                ),
            ));
        }
    }
    let presence: Vec<String> = iw
        .domain_columns
        .iter()
        .map(|c| format!("CASE WHEN c.{c} IS NULL THEN 0.0 ELSE 1.0 END AS p_{c}"))
        .collect();
    let sql = format!(
        "SELECT c.item_key, CAST(coalesce(m.production_volume, 0) + coalesce(m.sales_volume, 0) AS DOUBLE) AS volume, \
         m.item_key IS NOT NULL AS in_metadata, {} \
         FROM clean_items c LEFT JOIN item_metadata m ON m.item_key = c.item_key ORDER BY c.item_key",
        presence.join(", ")
    );
    let batches = crate::engine::collect(ctx, &sql, "item weights").await?;
    let mut keys = Vec::new();
    let mut volume = Vec::new();
    let mut dom_num = Vec::new();
    let mut matched = 0usize;
    let wsum: f64 = iw
        .domain_columns
        .iter()
        .map(|c| feature_weight(cfg, c).unwrap_or(1.0))
        .sum();
    for b in &batches {
        let k = column_as(b, "item_key", &DataType::Utf8, "item weights")?;
        let v = column_as(b, "volume", &DataType::Float64, "item weights")?;
        let found = column_as(b, "in_metadata", &DataType::Boolean, "item weights")?;
        let found = found
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .expect("boolean");
        matched += found.true_count();
        let ps: Vec<_> = iw
            .domain_columns
            .iter()
            .map(|c| column_as(b, &format!("p_{c}"), &DataType::Float64, "item weights"))
            .collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            keys.push(strings(&k).value(r).to_string());
            volume.push(f64s(&v).value(r));
            let mut d = 0.0;
            for (c, p) in iw.domain_columns.iter().zip(&ps) {
                d += feature_weight(cfg, c).unwrap_or(1.0) * f64s(p).value(r);
            }
            dom_num.push(if wsum > 0.0 { d / wsum } else { 0.0 });
        }
    }
    Ok((keys, volume, dom_num, matched))
}

/// `(v, d, h)`: the volume, domain and item weight of an item with volume `P + S` and weighted
/// share `dom` of domain columns present; `max_volume` is the training items' largest volume.
pub fn item_weight(volume: f64, dom: f64, floor: f64, max_volume: f64) -> (f64, f64, f64) {
    let a = floor;
    let v = if max_volume > 0.0 {
        a + (1.0 - a) * (1.0 + volume).ln() / (1.0 + max_volume).ln()
    } else {
        1.0
    };
    let d = a + (1.0 - a) * dom;
    (v, d, 2.0 * v * d / (v + d))
}

/// Item weights `h_i` of the items of `clean_items` that are not training items, with the
/// training's `max_volume` (see [`item_weight`]), in item_key order. An item bigger than every
/// training item counts as big as the biggest.
pub async fn new_item_weights(
    ctx: &SessionContext,
    cfg: &Config,
    max_volume: f64,
) -> Result<Vec<f64>> {
    let (_, volume, dom, _) = weight_inputs(ctx, cfg).await?;
    Ok(volume
        .iter()
        .zip(&dom)
        .map(|(&v, &d)| {
            item_weight(
                v.min(max_volume),
                d,
                cfg.weights.item.volume_floor,
                max_volume,
            )
            .2
        })
        .collect())
}

/// Computes the item sample from `clean_items` and `item_metadata`.
pub async fn fit_item_sample(ctx: &SessionContext, cfg: &Config) -> Result<ItemSample> {
    let (keys, volume, dom_num, matched) = weight_inputs(ctx, cfg).await?;
    if keys.is_empty() {
        return Err(Error::input(
            "clean_items",
            "no items left after cleaning: is the item view empty?",
        ));
    }
    // Volumes that match (almost) no item mean the two sides spell ITEM_CD differently (an
    // export that dropped leading zeros, another plant's file): every volume weight would
    // silently be the floor.
    if matched * 100 < keys.len() {
        return Err(Error::input(
            cfg.item_metadata.display().to_string(),
            format!(
                "only {matched} of the {} items of the item view have an entry under `item_volumes` \
                 (keys are ITEM_CD upper-cased and trimmed, e.g. `{}`); is this the metadata of \
                 these items, with ITEM_CD spelled as in the item view?",
                keys.len(),
                keys[0]
            ),
        ));
    }
    let max_v = volume.iter().cloned().fold(0.0f64, f64::max);
    let vdh: Vec<(f64, f64, f64)> = volume
        .iter()
        .zip(&dom_num)
        .map(|(&v, &d)| item_weight(v, d, cfg.weights.item.volume_floor, max_v))
        .collect();
    let volume_weight: Vec<f64> = vdh.iter().map(|x| x.0).collect();
    let domain_weight: Vec<f64> = vdh.iter().map(|x| x.1).collect();
    let item_weight: Vec<f64> = vdh.iter().map(|x| x.2).collect();
    let mean = item_weight.iter().sum::<f64>() / item_weight.len() as f64;
    let sample_weight = item_weight.iter().map(|h| h / mean).collect();
    let fold = keys
        .iter()
        .map(|k| fold_of(k, cfg.encoding.seed, cfg.encoding.target_folds))
        .collect();
    Ok(ItemSample {
        metadata_matched: matched,
        keys,
        volume_weight,
        domain_weight,
        item_weight,
        sample_weight,
        fold,
        max_volume: max_v,
    })
}

impl ItemSample {
    pub fn to_batch(&self) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("volume_weight", DataType::Float64, false),
            Field::new("domain_weight", DataType::Float64, false),
            Field::new("item_weight", DataType::Float64, false),
            Field::new("sample_weight", DataType::Float64, false),
            Field::new("fold", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(self.keys.clone())),
                Arc::new(Float64Array::from(self.volume_weight.clone())),
                Arc::new(Float64Array::from(self.domain_weight.clone())),
                Arc::new(Float64Array::from(self.item_weight.clone())),
                Arc::new(Float64Array::from(self.sample_weight.clone())),
                Arc::new(Int64Array::from(self.fold.clone())),
            ],
        )
        .expect("item_sample schema")
    }
}
