//! The one place a DataFusion `SessionContext` is built.
//!
//! It registers, by name: the house UDF `norm_text` and aggregate `seq_join`, the `params` table (encoding parameters from
//! the config), the physical sources (one table per ERP view, see [`sources`]), the generated
//! `erp_<view>` views of the field mapping, and `item_metadata`. The SQL layers under `sql/`
//! then run on top (see [`crate::transform`]).
//!
//! Execution uses one partition and merges union branches in a fixed order (see
//! [`deterministic`]): float aggregates (weighted means, sums) are then computed in a fixed order,
//! which is what makes fitted state and vectors bit-identical across runs.

pub mod deterministic;
pub mod seq_join;
pub mod sources;
pub mod sqlfiles;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::Config;
use crate::config::mapping::Mapping;
use crate::erp::VIEWS;
use crate::error::{Error, Result};

/// A fresh context with trainer's settings and UDFs, no tables.
pub fn new_context() -> SessionContext {
    let mut cfg = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192)
        .with_information_schema(true);
    // Plain Utf8 strings: the Rust tail and the snapshots see one string type.
    cfg.options_mut().execution.parquet.schema_force_view_types = false;
    cfg.options_mut().sql_parser.map_string_types_to_utf8view = false;
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(cfg)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(deterministic::DeterministicCoalesce))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_udf(norm_text_udf("norm_text", false));
    ctx.register_udf(norm_text_udf("item_key", true));
    ctx.register_udaf(seq_join::seq_join_udaf());
    ctx
}

/// `norm_text(s)`: the house spelling of text. Trims Unicode white space (incl. U+3000, the
/// full-width space of Korean input methods), folds inner runs of white space to one ASCII space,
/// and maps the ERP's spellings of "missing" ('' , 'nan', 'null', 'none', any case) to NULL.
pub fn norm_text(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    norm_text_into(s, &mut out).then_some(out)
}

/// [`norm_text`] into a reused buffer (cleared first); false if the text counts as missing.
fn norm_text_into(s: &str, out: &mut String) -> bool {
    out.clear();
    for (i, part) in s
        .split(char::is_whitespace)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(part);
    }
    let missing = out.is_empty()
        || out.eq_ignore_ascii_case("nan")
        || out.eq_ignore_ascii_case("null")
        || out.eq_ignore_ascii_case("none");
    !missing
}

/// The key of an item: its ITEM_CD in the house spelling, upper-cased (`item_key(s)` in SQL), so
/// that codes differing by case or white space are one item. NULL for a missing code.
pub fn item_key(item_cd: &str) -> Option<String> {
    norm_text(item_cd).map(|s| s.to_uppercase())
}

/// The SQL function `name`: [`norm_text`], or with `upper` [`item_key`].
fn norm_text_udf(name: &str, upper: bool) -> datafusion::logical_expr::ScalarUDF {
    let fun = Arc::new(
        move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
            match &args[0] {
                ColumnarValue::Scalar(v) => {
                    let s = match v {
                        ScalarValue::Utf8(Some(s))
                        | ScalarValue::LargeUtf8(Some(s))
                        | ScalarValue::Utf8View(Some(s))
                            if upper =>
                        {
                            item_key(s)
                        }
                        ScalarValue::Utf8(Some(s))
                        | ScalarValue::LargeUtf8(Some(s))
                        | ScalarValue::Utf8View(Some(s)) => norm_text(s),
                        _ => None,
                    };
                    Ok(ColumnarValue::Scalar(ScalarValue::Utf8(s)))
                }
                ColumnarValue::Array(a) => {
                    let a = arrow::compute::cast(a, &DataType::Utf8)?;
                    let a = a
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .expect("cast to Utf8");
                    // One buffer for the whole batch: no allocation per value.
                    use arrow::array::Array;
                    let mut out =
                        arrow::array::StringBuilder::with_capacity(a.len(), a.value_data().len());
                    let mut buf = String::new();
                    for v in a.iter() {
                        match v {
                            Some(v) if norm_text_into(v, &mut buf) => {
                                if upper {
                                    out.append_value(buf.to_uppercase())
                                } else {
                                    out.append_value(&buf)
                                }
                            }
                            _ => out.append_null(),
                        }
                    }
                    Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
                }
            }
        },
    );
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        fun,
    )
}

/// The `params` table: one row of encoding parameters the SQL encode layer reads.
pub fn params_batch(cfg: &Config) -> RecordBatch {
    let e = &cfg.encoding;
    let schema = Arc::new(Schema::new(vec![
        Field::new("onehot_min_share", DataType::Float64, false),
        Field::new("onehot_max_levels", DataType::Int64, false),
        Field::new("target_folds", DataType::Int64, false),
        Field::new("target_smoothing", DataType::Float64, false),
        Field::new("clip_lower_q", DataType::Float64, false),
        Field::new("clip_upper_q", DataType::Float64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![e.onehot_min_share])),
            Arc::new(Int64Array::from(vec![e.onehot_max_levels])),
            Arc::new(Int64Array::from(vec![e.target_folds])),
            Arc::new(Float64Array::from(vec![e.target_smoothing])),
            Arc::new(Float64Array::from(vec![e.clip_quantiles[0]])),
            Arc::new(Float64Array::from(vec![e.clip_quantiles[1]])),
        ],
    )
    .expect("params schema")
}

/// Item volumes from `item_metadata.json`, keyed by the cleaned item key (upper-cased, trimmed).
#[derive(Debug)]
pub struct ItemVolumes {
    pub keys: Vec<String>,
    pub production: Vec<u64>,
    pub sales: Vec<u64>,
}

impl ItemVolumes {
    pub fn load(path: &std::path::Path) -> Result<ItemVolumes> {
        let what = path.display().to_string();
        let shape = || {
            Error::input(
                &what,
                "expected an object with key `item_volumes`: {ITEM_CD: {production_volume, sales_volume}}",
            )
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::input(
                &what,
                format!("cannot read item metadata: {e} (see key `item_metadata` in the config)"),
            )
        })?;
        // Read entry by entry: a JSON value of the whole file is several times the size of the
        // volumes kept.
        let mut de = serde_json::Deserializer::from_str(&text);
        let vols = match serde::Deserializer::deserialize_map(&mut de, MetadataFile)
            .and_then(|v| de.end().map(|()| v))
        {
            Ok(Some(vols)) => vols,
            Ok(None) => return Err(shape()),
            Err(e) if e.is_data() => return Err(shape()),
            Err(e) => return Err(Error::input(&what, format!("not valid JSON: {e}"))),
        };
        let mut rows = match vols {
            Ok(rows) => rows,
            Err(m) => return Err(Error::input(&what, m)),
        };
        // Duplicate keys after normalisation (case/space variants): keep the largest volumes.
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        rows.dedup_by(|a, b| a.0 == b.0);
        let (production, sales) = rows.iter().map(|r| (r.1, r.2)).unzip();
        Ok(ItemVolumes {
            keys: rows.into_iter().map(|r| r.0).collect(),
            production,
            sales,
        })
    }

    pub fn to_batch(&self) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("production_volume", DataType::UInt64, false),
            Field::new("sales_volume", DataType::UInt64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(self.keys.clone())),
                Arc::new(UInt64Array::from(self.production.clone())),
                Arc::new(UInt64Array::from(self.sales.clone())),
            ],
        )
        .expect("item_metadata schema")
    }
}

/// The top level of `item_metadata.json`: its `item_volumes` entries in file order (`None`
/// without that key); other keys are skipped unread.
struct MetadataFile;

impl<'de> serde::de::Visitor<'de> for MetadataFile {
    type Value = Option<std::result::Result<Vec<(String, u64, u64)>, String>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with key `item_volumes`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut m: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut vols = None;
        while let Some(k) = m.next_key::<std::borrow::Cow<str>>()? {
            if k == "item_volumes" {
                vols = Some(m.next_value::<VolumeEntries>()?.0);
            } else {
                m.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(vols)
    }
}

/// `item_volumes`: `{ITEM_CD: {production_volume, sales_volume}}` as (item key, production,
/// sales) rows, each entry checked as it is read; `Err`: the first bad entry's message.
struct VolumeEntries(std::result::Result<Vec<(String, u64, u64)>, String>);

impl<'de> serde::Deserialize<'de> for VolumeEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = VolumeEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object {ITEM_CD: {production_volume, sales_volume}}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<VolumeEntries, A::Error> {
                let mut rows = Ok(Vec::with_capacity(m.size_hint().unwrap_or(0)));
                while let Some((code, entry)) =
                    m.next_entry::<std::borrow::Cow<str>, serde_json::Value>()?
                {
                    if let Ok(r) = &mut rows {
                        match volume_row(&code, &entry) {
                            Ok(Some(row)) => r.push(row),
                            Ok(None) => {}
                            Err(e) => rows = Err(e),
                        }
                    }
                }
                Ok(VolumeEntries(rows))
            }
        }
        d.deserialize_map(V)
    }
}

/// One `item_volumes` entry as (item key, production, sales); `None` for a code that is no
/// item key (blank). A missing or null volume is 0.
fn volume_row(
    code: &str,
    entry: &serde_json::Value,
) -> std::result::Result<Option<(String, u64, u64)>, String> {
    let get = |k: &str| -> std::result::Result<u64, String> {
        match entry.get(k) {
            None | Some(serde_json::Value::Null) => Ok(0),
            Some(x) => x
                .as_f64()
                .filter(|f| *f >= 0.0 && f.is_finite())
                .map(|f| f.round() as u64)
                .ok_or_else(|| format!("item_volumes.{code}.{k}: expected a number >= 0, got {x}")),
        }
    };
    let Some(key) = item_key(code) else {
        return Ok(None);
    };
    Ok(Some((key, get("production_volume")?, get("sales_volume")?)))
}

/// Everything the SQL layers read, registered by name.
pub struct Engine {
    pub ctx: SessionContext,
    pub sources: Vec<sources::SourceInfo>,
}

impl Engine {
    /// Registers sources, mapping views, params and item metadata.
    pub async fn build(cfg: &Config, mapping: &Mapping, volumes: &ItemVolumes) -> Result<Engine> {
        Self::build_with_holdout(cfg, mapping, volumes, None, false).await
    }

    /// Like [`Engine::build`]; with `holdout` (cleaned item keys), the routing and work-order
    /// rows of those items are left out of `erp_routings` and `erp_work_orders`, as if they were
    /// new items whose routing is not written yet (`trainer eval`). The item view is unchanged.
    pub async fn build_with_holdout(
        cfg: &Config,
        mapping: &Mapping,
        volumes: &ItemVolumes,
        holdout: Option<&[String]>,
        items_too: bool,
    ) -> Result<Engine> {
        let ctx = new_context();
        let sources = sources::register_all(&ctx, cfg, mapping).await?;
        let filter = match holdout {
            Some(keys) => {
                register_keys(&ctx, "eval_holdout", keys)?;
                if items_too {
                    RowFilter::WithoutHoldoutItems
                } else {
                    RowFilter::ExceptHoldout
                }
            }
            None => RowFilter::All,
        };
        register_mapping_views(&ctx, mapping, filter).await?;
        ctx.register_batch("params", params_batch(cfg))
            .map_err(|e| Error::internal(format!("registering params: {e}")))?;
        ctx.register_batch("item_metadata", volumes.to_batch())
            .map_err(|e| Error::internal(format!("registering item_metadata: {e}")))?;
        Ok(Engine { ctx, sources })
    }
}

/// Which rows the mapping views let through (the routing and work-order views; the item view
/// only with [`RowFilter::WithoutHoldoutItems`] and [`RowFilter::OnlyListed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFilter {
    /// Every row.
    All,
    /// Leave out the items of table `eval_holdout` (`trainer eval`: as if their routings were
    /// not written yet).
    ExceptHoldout,
    /// Leave the items of table `eval_holdout` out of every view, the item view too (`trainer
    /// eval`: as if they did not exist yet, to be added by `update`).
    WithoutHoldoutItems,
    /// Only the items of table `only_items` (`trainer update`: the items that may be new or
    /// changed, then the new items; `trainer eval`: the held-out items).
    OnlyListed,
}

/// `CREATE VIEW erp_<logical> AS SELECT "ERP_COL" AS std_name, ... FROM <erp view>` per view
/// (replacing an earlier definition), filtered by `filter` on the cleaned item key.
pub async fn register_mapping_views(
    ctx: &SessionContext,
    mapping: &Mapping,
    filter: RowFilter,
) -> Result<()> {
    for v in VIEWS {
        let select = mapping.select_sql(v.erp_name);
        let key = "item_key(src.item_cd)";
        let filtered = v.logical != "items"
            || matches!(
                filter,
                RowFilter::WithoutHoldoutItems | RowFilter::OnlyListed
            );
        let sql = match filter {
            RowFilter::All => format!("CREATE VIEW erp_{} AS {select}", v.logical),
            _ if !filtered => format!("CREATE VIEW erp_{} AS {select}", v.logical),
            RowFilter::ExceptHoldout | RowFilter::WithoutHoldoutItems => format!(
                "CREATE VIEW erp_{} AS SELECT src.* FROM ({select}) src \
                 LEFT JOIN eval_holdout h ON h.item_key = {key} WHERE h.item_key IS NULL",
                v.logical
            ),
            RowFilter::OnlyListed => format!(
                "CREATE VIEW erp_{} AS SELECT src.* FROM ({select}) src \
                 WHERE {key} IN (SELECT item_key FROM only_items)",
                v.logical
            ),
        };
        let _ = ctx.deregister_table(format!("erp_{}", v.logical).as_str());
        ctx.sql(&sql).await.map_err(|e| {
            Error::sql(
                mapping.file.display().to_string(),
                format!("mapping view erp_{} failed: {e}", v.logical),
            )
        })?;
    }
    Ok(())
}

/// Registers (or replaces) the one-column table `name(item_key)`.
pub fn register_keys(ctx: &SessionContext, name: &str, keys: &[String]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "item_key",
        DataType::Utf8,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(keys.to_vec())) as ArrayRef],
    )
    .map_err(|e| Error::internal(format!("{name} table: {e}")))?;
    let _ = ctx.deregister_table(name);
    ctx.register_batch(name, batch)
        .map_err(|e| Error::internal(format!("registering {name}: {e}")))?;
    Ok(())
}

/// The columns of a table or view of the session.
pub async fn view_schema(ctx: &SessionContext, name: &str) -> Result<Schema> {
    Ok(ctx
        .table(name)
        .await
        .map_err(|e| Error::sql(name, e.to_string()))?
        .schema()
        .as_arrow()
        .clone())
}

/// Runs a query and collects all batches, partitions in order.
pub async fn collect(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| Error::sql(what, e.to_string()))?;
    collect_df(df, what).await
}

/// Runs a query and returns its result as one batch (of the query's schema, also when empty).
pub async fn collect_batch(ctx: &SessionContext, sql: &str, what: &str) -> Result<RecordBatch> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| Error::sql(what, e.to_string()))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = collect_df(df, what).await?;
    concat(&schema, &batches)
}

/// Collects a DataFrame partition by partition, in partition order (deterministic row order).
pub async fn collect_df(
    df: datafusion::dataframe::DataFrame,
    what: &str,
) -> Result<Vec<RecordBatch>> {
    let parts = df
        .collect_partitioned()
        .await
        .map_err(|e| Error::sql(what, e.to_string()))?;
    Ok(parts.into_iter().flatten().collect())
}

/// Runs a query as a stream of batches, with the joins built on the side the SQL puts first.
///
/// DataFusion may swap a join's inputs so that the side it estimates smaller is the one held in
/// its hash table. For the streamed encode views those estimates are unreliable (a join of a
/// small fitted table with a large input was estimated smaller than the item table, and the
/// join result, several times larger than the items, was held whole). So for these views the
/// written order decides, and sql/README tells analysts to put the small table first.
pub async fn stream_as_written(
    ctx: &SessionContext,
    sql: &str,
    what: &str,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    let err = |e: datafusion::error::DataFusionError| Error::sql(what, e.to_string());
    let (physical, task) = plan_as_written(ctx, sql, what).await?;
    datafusion::physical_plan::execute_stream(physical, task).map_err(err)
}

/// Like [`stream_as_written`], but one stream per branch of the query's top `UNION ALL` (one
/// stream if there is none), in branch order, so that a caller for which row order does not
/// matter can drain them concurrently. Only the ordered merge of the branches
/// ([`deterministic::OrderedConcatExec`]) is removed; each branch runs as before.
pub async fn branch_streams_as_written(
    ctx: &SessionContext,
    sql: &str,
    what: &str,
) -> Result<Vec<datafusion::physical_plan::SendableRecordBatchStream>> {
    let err = |e: datafusion::error::DataFusionError| Error::sql(what, e.to_string());
    let (physical, task) = plan_as_written(ctx, sql, what).await?;
    let split = deterministic::without_top_concat(physical).map_err(err)?;
    let n = split.properties().output_partitioning().partition_count();
    (0..n)
        .map(|i| split.execute(i, Arc::clone(&task)).map_err(err))
        .collect()
}

/// The physical plan of `sql` with join inputs as written (see [`stream_as_written`]).
async fn plan_as_written(
    ctx: &SessionContext,
    sql: &str,
    what: &str,
) -> Result<(
    Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    Arc<datafusion::execution::TaskContext>,
)> {
    let err = |e: datafusion::error::DataFusionError| Error::sql(what, e.to_string());
    let (state, plan) = ctx.sql(sql).await.map_err(err)?.into_parts();
    let mut config = state.config().clone();
    config.options_mut().optimizer.join_reordering = false;
    // The config is the context's, which says "create the default catalog": building a state
    // from it would register a fresh, empty default catalog in the catalog list it shares with
    // the context, and every table of the context would be gone after this query.
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = false;
    let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    let physical = state.create_physical_plan(&plan).await.map_err(err)?;
    Ok((physical, state.task_ctx()))
}

/// Concatenates batches into one (an empty batch of `schema` if there are none).
pub fn concat(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch> {
    arrow::compute::concat_batches(schema, batches)
        .map_err(|e| Error::internal(format!("concat: {e}")))
}

/// Column `name` of `batch` cast to `DataType`, with a clear error if absent.
pub fn column_as(batch: &RecordBatch, name: &str, ty: &DataType, what: &str) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| Error::sql(what, format!("the view must return a column `{name}`")))?;
    arrow::compute::cast(col, ty)
        .map_err(|e| Error::sql(what, format!("column `{name}` cannot be read as {ty}: {e}")))
}

pub fn strings(a: &ArrayRef) -> &StringArray {
    a.as_any()
        .downcast_ref::<StringArray>()
        .expect("Utf8 array")
}

pub fn f64s(a: &ArrayRef) -> &Float64Array {
    a.as_any()
        .downcast_ref::<Float64Array>()
        .expect("Float64 array")
}

pub fn i64s(a: &ArrayRef) -> &Int64Array {
    a.as_any()
        .downcast_ref::<Int64Array>()
        .expect("Int64 array")
}

#[cfg(test)]
mod tests {
    use super::norm_text;

    /// The UDF over an array (one reused buffer) spells text as `norm_text` does, NULLs kept.
    #[tokio::test]
    async fn norm_text_udf_over_a_column() {
        let ctx = super::new_context();
        let sql = "SELECT norm_text(s) AS t FROM (VALUES ('  a  b '), ('nan'), (NULL), ('x\u{3000}'), ('')) v(s)";
        let b = super::collect(&ctx, sql, "test").await.unwrap();
        let t = super::strings(b[0].column(0));
        let got: Vec<Option<&str>> = t.iter().collect();
        assert_eq!(got, vec![Some("a b"), None, None, Some("x"), None]);
        let sql =
            "SELECT item_key(s) AS k FROM (VALUES (' 0050a  b '), ('NaN'), (NULL), ('ß')) v(s)";
        let b = super::collect(&ctx, sql, "test").await.unwrap();
        let k = super::strings(b[0].column(0));
        let got: Vec<Option<&str>> = k.iter().collect();
        assert_eq!(got, vec![Some("0050A B"), None, None, Some("SS")]);
        let sql = "SELECT item_key(s) = upper(norm_text(s)) AS same \
                   FROM (VALUES (' ab\u{3000}c'), ('é x'), ('ß')) v(s)";
        let b = super::collect(&ctx, sql, "test").await.unwrap();
        let same = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .unwrap();
        assert!(same.iter().all(|v| v == Some(true)));
    }

    /// Which plans keep a reproducible row order without sorting, and splitting a union.
    #[tokio::test]
    async fn order_reproducibility_and_branch_streams() {
        use super::deterministic::order_is_reproducible;
        use futures::StreamExt;
        let ctx = super::new_context();
        let plan = async |sql: &str| {
            ctx.sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap()
        };
        let t = "(VALUES (1, 'a'), (2, 'b'), (2, 'c')) v(k, s)";
        let union = format!("SELECT k FROM {t} WHERE k > 1 UNION ALL SELECT k + 10 FROM {t}");
        assert!(order_is_reproducible(&plan(&union).await));
        let agg = format!("SELECT k, count(*) AS n FROM {t} GROUP BY k");
        assert!(!order_is_reproducible(&plan(&agg).await));
        let over_agg = format!("SELECT k FROM ({agg}) WHERE n > 0");
        assert!(!order_is_reproducible(&plan(&over_agg).await));

        // One stream per union branch, each with its own rows.
        let streams = super::branch_streams_as_written(&ctx, &union, "test")
            .await
            .unwrap();
        assert_eq!(streams.len(), 2);
        let mut rows = Vec::new();
        for mut s in streams {
            let mut n = 0;
            while let Some(b) = s.next().await {
                n += b.unwrap().num_rows();
            }
            rows.push(n);
        }
        assert_eq!(rows, vec![2, 3]);
    }

    #[test]
    fn item_volumes_read_entry_by_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("item_metadata.json");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            super::ItemVolumes::load(&path)
        };
        let v = load(
            r#"{"generator": {"nested": [1, {"item_volumes": 0}]},
               "item_volumes": {" b1 ": {"production_volume": 2.6, "sales_volume": null},
                                "B1": {"production_volume": 1, "sales_volume": 9},
                                "a-2": {},
                                "c3": 7,
                                "  ": {"production_volume": -1}},
               "after": "skipped"}"#,
        )
        .unwrap();
        assert_eq!(v.keys, ["A-2", "B1", "C3"]);
        assert_eq!(v.production, [0, 3, 0]);
        assert_eq!(v.sales, [0, 0, 0]);
        let e = load(r#"{"item_volumes": {"X": {"sales_volume": 1}, "Y": {"sales_volume": -2}, "Z": {"sales_volume": "a"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("item_volumes.Y.sales_volume: expected a number >= 0, got -2"),
            "{e}"
        );
        for bad in [r#"{"items": {}}"#, r#"[1]"#, r#"{"item_volumes": [1]}"#] {
            let e = load(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected an object with key `item_volumes`"),
                "{bad}: {e}"
            );
        }
        let e = load(r#"{"item_volumes": {}} x"#).unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn norm_text_spellings() {
        assert_eq!(norm_text("  SEC "), Some("SEC".into()));
        assert_eq!(norm_text("주조\u{3000}원소재"), Some("주조 원소재".into()));
        assert_eq!(norm_text("\u{3000}"), None);
        assert_eq!(norm_text("nan"), None);
        assert_eq!(norm_text("NaN"), None);
        assert_eq!(norm_text(""), None);
        assert_eq!(norm_text("NULL"), None);
        assert_eq!(norm_text("NA"), Some("NA".into()));
        assert_eq!(norm_text("P11-MS-Gld -"), Some("P11-MS-Gld -".into()));
    }
}
