//! The ERP contract, checked on a Parquet source before any SQL runs on it.
//!
//! The map layer casts every mapped column to its contract type (`erp.rs`). A file that delivers
//! a number, a date or a time stamp as text would otherwise fail inside that cast, blamed on a SQL
//! file nobody edited and naming neither the file, the column nor the row. So such columns are
//! converted here: the house's missing spellings (`''`, `nan`, `null`, `none`, white space, see
//! `norm_text`) become NULL, and any other value that is not of the contract type is an input
//! error naming the view, file, column, the first offending rows and how many there are, unless
//! `sources.strict` is false or the column is listed in `sources.lenient_columns`: then such a
//! value becomes NULL and is counted ([`Nulled`]), in the log and in `training_metadata.json`.
//! The key ITEM_CD delivered as a number is an error too: its leading zeros are gone, and with
//! them the match with the routing view and the item metadata.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::config::Sources;
use crate::config::mapping::Mapping;
use crate::error::{Error, Result};

/// Offending rows shown in the error; the count covers all of them.
const SHOWN: usize = 5;

/// The values of one column that were not of its contract type and became NULL because the
/// column is not strict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Nulled {
    pub column: String,
    /// How many values became NULL.
    pub count: usize,
    /// Rows in the view.
    pub rows: usize,
    /// The first of them, as `row N `value``.
    pub examples: Vec<String>,
}

impl Nulled {
    /// The log's warning for this column of `view`.
    pub fn warning(&self, view: &str) -> String {
        format!(
            "{view}: {} of {} values of column `{}` are not of its contract type and became NULL \
             (sources.strict): {}{}",
            self.count,
            self.rows,
            self.column,
            self.examples.join(", "),
            if self.count > self.examples.len() {
                ", ..."
            } else {
                ""
            }
        )
    }
}

/// `sources.lenient_columns` must name mapped columns whose contract type is not text (the only
/// ones a value can fail to convert to).
pub fn check_lenient(config: &std::path::Path, sources: &Sources, mapping: &Mapping) -> Result<()> {
    let mut candidates: Vec<String> = Vec::new();
    for v in crate::erp::VIEWS {
        let contract = crate::erp::contract_schema(v.erp_name);
        for col in mapping.columns(v.erp_name).keys() {
            if contract
                .field_with_name(col)
                .is_ok_and(|f| !is_text(f.data_type()))
                && !candidates.contains(col)
            {
                candidates.push(col.clone());
            }
        }
    }
    for col in &sources.lenient_columns {
        if !candidates.contains(col) {
            let close = crate::text::close_matches(col, &candidates);
            return Err(Error::config(
                config,
                format!(
                    "key `sources.lenient_columns`: `{col}` is not a mapped ERP column of a \
                     numeric or date type{}. Columns that can hold bad values: {}",
                    if close.is_empty() {
                        String::new()
                    } else {
                        format!(" (did you mean {}?)", close.join(", "))
                    },
                    candidates.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The mapped columns of `view` that the file delivers as text where the contract wants another
/// type, each with that type. An error if the key ITEM_CD is not text.
pub fn columns_to_convert(
    view: &str,
    shown: &str,
    schema: &Schema,
    mapping: &Mapping,
) -> Result<Vec<(String, DataType)>> {
    let contract = crate::erp::contract_schema(view);
    let mut out = Vec::new();
    for col in mapping.columns(view).keys() {
        let (Ok(want), Ok(got)) = (contract.field_with_name(col), schema.field_with_name(col))
        else {
            continue;
        };
        let (want, got) = (want.data_type(), got.data_type());
        if col == "ITEM_CD" && !is_text(got) {
            return Err(Error::input(
                format!("{view} ({shown})"),
                format!(
                    "column `ITEM_CD` is {got} in the file, but item codes are text: as numbers \
                     they lose their leading zeros and no longer match the other views or the \
                     item metadata. Export ITEM_CD as text."
                ),
            ));
        }
        if is_text(got) && !is_text(want) {
            out.push((col.clone(), want.clone()));
        }
    }
    Ok(out)
}

/// The file's rows with the `convert` columns in their contract types (missing spellings as
/// NULL), or an error naming the values that are not of the type; in the columns that are not
/// strict, such values become NULL and are counted.
pub fn convert(
    view: &str,
    shown: &str,
    batches: &[RecordBatch],
    convert: &[(String, DataType)],
    sources: &Sources,
) -> Result<(RecordBatch, Vec<Nulled>)> {
    let Some(first) = batches.first() else {
        return Err(Error::internal("convert called without batches"));
    };
    let schema = first.schema();
    let all = arrow::compute::concat_batches(&schema, batches)
        .map_err(|e| Error::input(format!("{view} ({shown})"), e.to_string()))?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = all.columns().to_vec();
    let mut nulled = Vec::new();
    for (col, want) in convert {
        let i = schema
            .index_of(col)
            .map_err(|e| Error::internal(e.to_string()))?;
        let strict = sources.strict_for(col);
        let (typed, bad) = convert_column(view, shown, col, &columns[i], want, strict)?;
        columns[i] = typed;
        nulled.extend(bad);
        fields[i] = Field::new(col, want.clone(), true);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok((batch, nulled))
}

fn convert_column(
    view: &str,
    shown: &str,
    col: &str,
    array: &ArrayRef,
    want: &DataType,
    strict: bool,
) -> Result<(ArrayRef, Option<Nulled>)> {
    let text = cast(array, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8 after cast");
    let cleaned: StringArray = (0..text.len())
        .map(|r| {
            if text.is_null(r) {
                None
            } else {
                crate::engine::norm_text(text.value(r))
            }
        })
        .collect();
    let (typed, bad) = typed_and_bad(&cleaned, want)?;
    if bad.is_empty() {
        return Ok((typed, None));
    }
    let examples: Vec<String> = bad
        .iter()
        .take(SHOWN)
        .map(|&r| format!("row {} `{}`", r + 1, text.value(r)))
        .collect();
    if !strict {
        // The cast already made them NULL (`safe`).
        let nulled = Nulled {
            column: col.to_string(),
            count: bad.len(),
            rows: text.len(),
            examples,
        };
        return Ok((typed, Some(nulled)));
    }
    Err(Error::input(
        format!("{view} ({shown})"),
        format!(
            "column `{col}` must hold {} values (the ERP contract), but {} of its {} values do not ({}{}). \
             Correct them in the source (a missing value may be empty, NULL or 'nan'), or \
             list the column in `sources.lenient_columns` to read them as NULL.",
            kind(want),
            bad.len(),
            text.len(),
            examples.join(", "),
            if bad.len() > SHOWN { ", ..." } else { "" }
        ),
    ))
}

/// `cleaned` (text in the house spelling, missing as NULL) in the contract type `want`, and the
/// rows whose value does not convert (NULL in the result): the rule the sources apply and the
/// data-quality profile counts by.
pub fn typed_and_bad(cleaned: &StringArray, want: &DataType) -> Result<(ArrayRef, Vec<usize>)> {
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let typed =
        cast_with_options(cleaned, want, &safe).map_err(|e| Error::internal(e.to_string()))?;
    let bad = (0..cleaned.len())
        .filter(|&r| cleaned.is_valid(r) && typed.is_null(r))
        .collect();
    Ok((typed, bad))
}

fn kind(t: &DataType) -> &'static str {
    match t {
        DataType::Float64 | DataType::Float32 => "numeric",
        DataType::Int32 | DataType::Int64 => "integer",
        DataType::Date32 => "date",
        DataType::Timestamp(..) => "date-time",
        _ => "typed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_spellings_become_null_and_other_text_is_named() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("12.5"),
            Some(" 3 "),
            Some(""),
            Some("nan"),
            None,
            Some("abc"),
            Some("12,5"),
        ]));
        let err = convert_column("V", "f.parquet", "OD", &a, &DataType::Float64, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column `OD`"), "{err}");
        assert!(err.contains("2 of its 7 values"), "{err}");
        assert!(err.contains("row 6 `abc`, row 7 `12,5`"), "{err}");
        let ok: ArrayRef = Arc::new(StringArray::from(vec![
            Some("12.5"),
            Some(" 3 "),
            Some(""),
            Some("NaN"),
            None,
        ]));
        let (typed, nulled) =
            convert_column("V", "f.parquet", "OD", &ok, &DataType::Float64, true).unwrap();
        assert_eq!(nulled, None);
        let f = typed
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap();
        assert_eq!(f.value(0), 12.5);
        assert_eq!(f.value(1), 3.0);
        assert!(f.is_null(2) && f.is_null(3) && f.is_null(4));
    }

    #[test]
    fn a_lenient_column_reads_bad_values_as_null_and_counts_them() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("12.5"),
            Some("abc"),
            Some(""),
            Some("12,5"),
            None,
        ]));
        let (typed, nulled) =
            convert_column("V", "f.parquet", "OD", &a, &DataType::Float64, false).unwrap();
        let f = typed
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap();
        assert_eq!(f.value(0), 12.5);
        assert_eq!(f.null_count(), 4);
        let n = nulled.expect("two bad values");
        assert_eq!(
            (n.count, n.rows, n.examples.clone()),
            (
                2,
                5,
                vec!["row 2 `abc`".to_string(), "row 4 `12,5`".to_string()]
            )
        );
        assert_eq!(
            n.warning("V"),
            "V: 2 of 5 values of column `OD` are not of its contract type and became NULL \
             (sources.strict): row 2 `abc`, row 4 `12,5`"
        );
    }
}
