//! `seq_join(value, position)`: the house aggregate that spells a routing as one string.
//!
//! It joins a group's non-null values with single spaces in ascending order of `position`
//! (NULL positions last; equal positions ordered by value, NULL values first, which are then
//! skipped). A group whose values are all NULL gives `''`; no rows at all give NULL.
//!
//! `array_to_string(array_agg(job_cd ORDER BY proc_seq), ' ')` says the same, but DataFusion 55
//! runs an ordered `array_agg` row by row on `ScalarValue`s, which made it most of
//! `item_targets`' time; `seq_join` works on whole arrays (BENCHMARKS.md has the figures). The
//! result does not depend on the order rows arrive in, so it is reproducible however a plan
//! feeds the aggregate.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};

/// The UDAF, to register on a context.
pub fn seq_join_udaf() -> AggregateUDF {
    let item = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    create_udaf(
        "seq_join",
        vec![DataType::Utf8, DataType::Int64],
        Arc::new(DataType::Utf8),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::<SeqJoin>::default())),
        Arc::new(vec![item(DataType::Int64), item(DataType::Utf8)]),
    )
}

/// One group's (position, value) pairs, in arrival order until evaluated.
#[derive(Debug, Default)]
struct SeqJoin {
    items: Vec<(Option<i64>, Option<String>)>,
    /// Bytes of the values held (for `size`).
    bytes: usize,
}

impl SeqJoin {
    fn push(&mut self, pos: Option<i64>, value: Option<&str>) {
        self.bytes += value.map_or(0, str::len);
        self.items.push((pos, value.map(str::to_owned)));
    }
}

/// NULL positions after all others.
fn pos_key(p: Option<i64>) -> (bool, i64) {
    (p.is_none(), p.unwrap_or(0))
}

impl Accumulator for SeqJoin {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::error::Result<()> {
        let [v, p] = values else {
            return exec_err!("seq_join takes two arguments (value, position)");
        };
        let v = arrow::compute::cast(v, &DataType::Utf8)?;
        let p = arrow::compute::cast(p, &DataType::Int64)?;
        let (v, p) = (v.as_string::<i32>(), p.as_primitive::<Int64Type>());
        for i in 0..v.len() {
            let pos = p.is_valid(i).then(|| p.value(i));
            let value = v.is_valid(i).then(|| v.value(i));
            self.push(pos, value);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> datafusion::error::Result<ScalarValue> {
        if self.items.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        self.items
            .sort_by(|a, b| pos_key(a.0).cmp(&pos_key(b.0)).then_with(|| a.1.cmp(&b.1)));
        let mut out = String::with_capacity(self.bytes + self.items.len());
        for v in self.items.iter().filter_map(|x| x.1.as_deref()) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(v);
        }
        Ok(ScalarValue::Utf8(Some(out)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.items.capacity() * std::mem::size_of::<(Option<i64>, Option<String>)>()
            + self.bytes
    }

    fn state(&mut self) -> datafusion::error::Result<Vec<ScalarValue>> {
        let pos: Int64Array = self.items.iter().map(|x| x.0).collect();
        let val: StringArray = self.items.iter().map(|x| x.1.as_deref()).collect();
        let list = |a: ArrayRef, t: DataType| {
            let offsets = OffsetBuffer::from_lengths([a.len()]);
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new("item", t, true)),
                offsets,
                a,
                None,
            )))
        };
        Ok(vec![
            list(Arc::new(pos), DataType::Int64),
            list(Arc::new(val), DataType::Utf8),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::error::Result<()> {
        let [pos, val] = states else {
            return exec_err!("seq_join's state has two columns");
        };
        let (pos, val) = (pos.as_list::<i32>(), val.as_list::<i32>());
        for row in 0..pos.len() {
            if pos.is_null(row) || val.is_null(row) {
                continue;
            }
            let p = pos.value(row);
            let v = val.value(row);
            let (p, v) = (p.as_primitive::<Int64Type>(), v.as_string::<i32>());
            for i in 0..p.len() {
                let value = v.is_valid(i).then(|| v.value(i));
                self.push(p.is_valid(i).then(|| p.value(i)), value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> datafusion::prelude::SessionContext {
        crate::engine::new_context()
    }

    async fn rows(sql: &str) -> Vec<(i64, Option<String>)> {
        let batches = ctx().sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let g = b.column(0).as_primitive::<Int64Type>();
            let s = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let s = s.as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((g.value(i), s.is_valid(i).then(|| s.value(i).to_string())));
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn joins_by_position_whatever_the_row_order() {
        let sql = "SELECT g, seq_join(v, p) FROM (VALUES \
            (1, 'C', 30), (1, 'A', 10), (1, 'B', 20), \
            (2, 'y', 5), (2, NULL, 1), (2, 'x', 5), (2, 'z', NULL), \
            (3, NULL, 1), (3, NULL, 2)) t(g, v, p) GROUP BY g";
        assert_eq!(
            rows(sql).await,
            vec![
                (1, Some("A B C".into())),
                // Ties by value; NULL values skipped; NULL positions last.
                (2, Some("x y z".into())),
                (3, Some(String::new())),
            ]
        );
    }

    #[tokio::test]
    async fn no_rows_give_null_and_state_round_trips() {
        let sql = "SELECT 0 AS g, seq_join(v, p) FROM (VALUES ('a', 1)) t(v, p) WHERE p > 1";
        assert_eq!(rows(sql).await, vec![(0, None)]);
        // Accumulate in two parts, pass one's state to the other: the same as one pass.
        let batch = |v: Vec<Option<&str>>, p: Vec<Option<i64>>| -> Vec<ArrayRef> {
            vec![
                Arc::new(StringArray::from(v)),
                Arc::new(Int64Array::from(p)),
            ]
        };
        let mut a = SeqJoin::default();
        a.update_batch(&batch(vec![Some("c"), None], vec![Some(3), Some(0)]))
            .unwrap();
        let mut b = SeqJoin::default();
        b.update_batch(&batch(vec![Some("a"), Some("b")], vec![Some(1), Some(2)]))
            .unwrap();
        let state: Vec<ArrayRef> = a
            .state()
            .unwrap()
            .into_iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        b.merge_batch(&state).unwrap();
        assert_eq!(
            b.evaluate().unwrap(),
            ScalarValue::Utf8(Some("a b c".into()))
        );
    }
}
