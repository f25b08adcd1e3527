//! Deterministic merging of partitions.
//!
//! A `UNION ALL` of N branches has N partitions even with `target_partitions = 1`, and
//! DataFusion's `CoalescePartitionsExec` interleaves them in whatever order they finish. Rows
//! then reach aggregates in a different order from run to run, and float sums (weighted means,
//! target statistics) differ in their last bits. This module replaces every
//! `CoalescePartitionsExec` with [`OrderedConcatExec`], which emits partition 0, then 1, ... in
//! order, so every query of trainer is bit-reproducible. It costs the parallelism between union
//! branches, which trainer does not rely on.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

/// Whether `plan` emits its rows in an order fixed by its inputs' row order alone, so that a
/// table it computes needs no sorting to be reproducible. True when every operator is one of a
/// known list that keeps (or deterministically permutes) row order within each partition:
/// scans, projections, filters, unions (one partition per branch, read in branch order by
/// `collect_partitioned` and by [`OrderedConcatExec`]), hash joins (probe order, then build rows
/// in insertion order), cross joins, sorts and window functions over them. Aggregates are not on
/// the list (DataFusion does not promise their group order), nor is a repartition (it deals rows
/// out as they come): tables computed through them go through `transform::canonical`.
pub fn order_is_reproducible(plan: &Arc<dyn ExecutionPlan>) -> bool {
    const KEEPS_ORDER: &[&str] = &[
        "DataSourceExec",
        "ProjectionExec",
        "FilterExec",
        "CoalesceBatchesExec",
        "OrderedConcatExec",
        "UnionExec",
        "HashJoinExec",
        "NestedLoopJoinExec",
        "CrossJoinExec",
        "SortExec",
        "BoundedWindowAggExec",
        "WindowAggExec",
        "EmptyExec",
        "PlaceholderRowExec",
    ];
    KEEPS_ORDER.contains(&plan.name()) && plan.children().into_iter().all(order_is_reproducible)
}

/// `plan` with its topmost [`OrderedConcatExec`] removed, if only row-wise operators
/// (projections, filters, batch coalescing) stand above it: the result has one partition per
/// branch of the union below, each computed exactly as before. Otherwise `plan` unchanged.
pub fn without_top_concat(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(c) = plan.downcast_ref::<OrderedConcatExec>() {
        return Ok(Arc::clone(&c.input));
    }
    const ROW_WISE: &[&str] = &["ProjectionExec", "FilterExec", "CoalesceBatchesExec"];
    let children = plan.children();
    if !ROW_WISE.contains(&plan.name()) || children.len() != 1 {
        return Ok(plan);
    }
    let child = without_top_concat(Arc::clone(children[0]))?;
    datafusion::physical_plan::execution_plan::replace_children_if_necessary(plan, vec![child])
}

/// Concatenates the input's partitions in partition order into one partition.
#[derive(Debug)]
pub struct OrderedConcatExec {
    input: Arc<dyn ExecutionPlan>,
    props: Arc<PlanProperties>,
}

impl OrderedConcatExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        // Same properties as a CoalescePartitionsExec over the same input.
        let props = Arc::clone(CoalescePartitionsExec::new(Arc::clone(&input)).properties());
        OrderedConcatExec { input, props }
    }
}

impl DisplayAs for OrderedConcatExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "OrderedConcatExec")
    }
}

impl ExecutionPlan for OrderedConcatExec {
    fn name(&self) -> &'static str {
        "OrderedConcatExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(OrderedConcatExec::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "OrderedConcatExec has one partition, asked for {partition}"
            )));
        }
        let n = self
            .input
            .properties()
            .output_partitioning()
            .partition_count();
        let input = Arc::clone(&self.input);
        let schema = self.input.schema();
        // Open each partition only when the previous one is exhausted.
        let stream = futures::stream::iter(0..n)
            .map(move |i| match input.execute(i, Arc::clone(&context)) {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The physical optimizer rule that swaps `CoalescePartitionsExec` (without a LIMIT) for
/// [`OrderedConcatExec`]. It runs last.
#[derive(Debug, Default)]
pub struct DeterministicCoalesce;

impl PhysicalOptimizerRule for DeterministicCoalesce {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|p| {
            if let Some(c) = p.downcast_ref::<CoalescePartitionsExec>()
                && c.fetch().is_none()
            {
                return Ok(Transformed::yes(
                    Arc::new(OrderedConcatExec::new(Arc::clone(c.input())))
                        as Arc<dyn ExecutionPlan>,
                ));
            }
            Ok(Transformed::no(p))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "deterministic_coalesce"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
