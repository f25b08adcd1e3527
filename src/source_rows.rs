//! What each item's source rows were when the model was trained: one hash per item key over its
//! rows of the item view (`erp_items`, the mapping view), saved as `item_source_hashes.parquet`.
//!
//! `trainer update` must tell new items from items already in the model, and list the items
//! whose attributes changed since training. Cleaning every item of the view to compare it with
//! `item_features.parquet` costs as much as the rest of an update together. The shipped
//! `clean_items` computes an item's row from that item's own source rows only (see sql/README),
//! so an item whose source rows hash as they did at training cleans to the row the model holds:
//! `update` cleans only the items whose hash is new or differs, and compares those.
//!
//! A row's hash covers every column of `erp_items` in order (each value as text, NULL told apart
//! from ''); an item's hash covers the multiset of its rows (duplicates of one ITEM_CD spelled
//! differently included), independent of their order in the view.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// `models/item_source_hashes.parquet`: `item_key`, `source_hash` (16 bytes), sorted by key.
pub const SOURCE_HASHES_FILE: &str = "item_source_hashes.parquet";

/// The view whose rows are hashed: the item view under the model's field mapping, before any
/// cleaning.
const VIEW: &str = "erp_items";

pub type Hash = [u8; 16];

/// Item keys and their source hashes, sorted by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceHashes {
    keys: Vec<String>,
    hashes: Vec<Hash>,
}

impl SourceHashes {
    /// The hash of every item key of the session's `erp_items` (rows without a key are not
    /// items and are left out, as `clean_items` leaves them out). Streams the view.
    pub async fn of_session(ctx: &SessionContext) -> Result<SourceHashes> {
        let mut rows = Vec::new();
        read(ctx, |b| {
            rows.extend(hash_rows(&b)?.into_iter().map(|(_, k, h)| (k, h)));
            Ok(())
        })
        .await?;
        Ok(Self::from_rows(rows))
    }

    /// [`SourceHashes::of_session`], keeping the rows read (`update` cleans the rows of the
    /// items that may have changed from them, without reading the view again).
    pub async fn with_rows(ctx: &SessionContext) -> Result<(SourceHashes, ItemRows)> {
        let mut batches = Vec::new();
        let schema = read(ctx, |b| {
            batches.push(b);
            Ok(())
        })
        .await?;
        use rayon::prelude::*;
        let hashed: Vec<Vec<(u32, String, Hash)>> =
            batches.par_iter().map(hash_rows).collect::<Result<_>>()?;
        let mut rows = Vec::new();
        let mut at = Vec::new();
        for (i, h) in hashed.into_iter().enumerate() {
            for (r, k, h) in h {
                at.push((i, r as usize, k.clone()));
                rows.push((k, h));
            }
        }
        Ok((
            Self::from_rows(rows),
            ItemRows {
                schema,
                batches,
                at,
            },
        ))
    }

    /// One hash per key from the hashes of its rows (any order).
    fn from_rows(mut rows: Vec<(String, Hash)>) -> SourceHashes {
        rows.sort_unstable();
        let mut out = SourceHashes::default();
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            while j < rows.len() && rows[j].0 == rows[i].0 {
                j += 1;
            }
            let h = if j - i == 1 {
                rows[i].1
            } else {
                let mut d = Sha256::new();
                d.update(b"rows");
                for r in &rows[i..j] {
                    d.update(r.1);
                }
                truncate(d)
            };
            out.keys.push(std::mem::take(&mut rows[i].0));
            out.hashes.push(h);
            i = j;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// (key, hash), by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Hash)> {
        self.keys.iter().map(String::as_str).zip(&self.hashes)
    }

    pub fn get(&self, key: &str) -> Option<&Hash> {
        self.keys
            .binary_search_by(|k| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.hashes[i])
    }

    /// Only the keys for which `keep` holds.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let (keys, hashes) = std::mem::take(&mut self.keys)
            .into_iter()
            .zip(std::mem::take(&mut self.hashes))
            .filter(|(k, _)| keep(k))
            .unzip();
        self.keys = keys;
        self.hashes = hashes;
    }

    /// These hashes and those of `keys` in `from` (keys not here yet; a key `from` lacks is
    /// left out).
    pub fn with(&self, from: &SourceHashes, keys: &[String]) -> SourceHashes {
        let mut rows: Vec<(String, Hash)> = self
            .keys
            .iter()
            .cloned()
            .zip(self.hashes.iter().copied())
            .collect();
        rows.extend(
            keys.iter()
                .filter_map(|k| from.get(k).map(|h| (k.clone(), *h))),
        );
        rows.sort_unstable();
        rows.dedup_by(|a, b| a.0 == b.0);
        let (keys, hashes) = rows.into_iter().unzip();
        SourceHashes { keys, hashes }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_key", DataType::Utf8, false),
            Field::new("source_hash", DataType::FixedSizeBinary(16), false),
        ]));
        let flat: Vec<u8> = self.hashes.concat();
        let hashes = FixedSizeBinaryArray::new(16, flat.into(), None);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(self.keys.clone())) as ArrayRef,
                Arc::new(hashes) as ArrayRef,
            ],
        )
        .map_err(|e| Error::internal(format!("source hashes: {e}")))?;
        crate::parquet_io::write_parquet(path, &batch)
    }

    /// The model's hashes; `None` if the model has no such file (written before there was one).
    pub fn load(path: &Path) -> Result<Option<SourceHashes>> {
        if !path.exists() {
            return Ok(None);
        }
        let b = crate::transform::load_table(path)?;
        let bad = |why: &str| Error::input(path.display().to_string(), format!("{why}; retrain"));
        let keys = b
            .column_by_name("item_key")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| bad("no text column `item_key`"))?;
        let hashes = b
            .column_by_name("source_hash")
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
            .filter(|c| c.value_length() == 16)
            .ok_or_else(|| bad("no 16-byte column `source_hash`"))?;
        if keys.null_count() > 0 || hashes.null_count() > 0 {
            return Err(bad("empty rows"));
        }
        let out = SourceHashes {
            keys: keys
                .iter()
                .map(|k| k.unwrap_or_default().to_string())
                .collect(),
            hashes: (0..hashes.len())
                .map(|i| hashes.value(i).try_into().expect("16 bytes"))
                .collect(),
        };
        if out.keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("rows are not sorted by item_key"));
        }
        Ok(Some(out))
    }
}

/// The rows of the item view as read, with each keyed row's item key.
pub struct ItemRows {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// (batch, row, item key) of every row with a key.
    at: Vec<(usize, usize, String)>,
}

impl ItemRows {
    /// The rows of the items `keys`, in the order read.
    pub fn of_keys(&self, keys: &HashSet<&str>) -> Result<RecordBatch> {
        let take: Vec<(usize, usize)> = self
            .at
            .iter()
            .filter(|(_, _, k)| keys.contains(k.as_str()))
            .map(|&(b, r, _)| (b, r))
            .collect();
        if take.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let err = |e: arrow::error::ArrowError| Error::internal(format!("{VIEW} rows: {e}"));
        let cols = (0..self.schema.fields().len())
            .map(|c| {
                let parts: Vec<&dyn Array> =
                    self.batches.iter().map(|b| b.column(c).as_ref()).collect();
                arrow::compute::interleave(&parts, &take).map_err(err)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        RecordBatch::try_new(self.schema.clone(), cols).map_err(err)
    }
}

/// Runs `SELECT * FROM erp_items`, handing each batch to `each`; returns the schema.
async fn read(
    ctx: &SessionContext,
    mut each: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<SchemaRef> {
    use futures::StreamExt;
    let df = ctx
        .sql(&format!("SELECT * FROM {VIEW}"))
        .await
        .map_err(|e| Error::sql(VIEW, e.to_string()))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| Error::sql(VIEW, e.to_string()))?;
    while let Some(b) = stream.next().await {
        each(b.map_err(|e| Error::sql(VIEW, e.to_string()))?)?;
    }
    Ok(schema)
}

thread_local! {
    /// A row's bytes as hashed (reused).
    static ROW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// (row, item key, row hash) of each row of `b` that has a key, hashed on all cores.
fn hash_rows(b: &RecordBatch) -> Result<Vec<(u32, String, Hash)>> {
    use rayon::prelude::*;
    let text: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(b.schema().fields())
        .map(|(c, f)| {
            arrow::compute::cast(c, &DataType::Utf8).map_err(|e| {
                Error::sql(
                    VIEW,
                    format!("column `{}` cannot be read as text: {e}", f.name()),
                )
            })
        })
        .collect::<Result<_>>()?;
    let text: Vec<&StringArray> = text.iter().map(crate::engine::strings).collect();
    let key_col = b
        .schema()
        .index_of("item_cd")
        .map_err(|_| Error::sql(VIEW, "the item view's mapping has no `item_cd`"))?;
    let hash = |r: usize| -> Option<(u32, String, Hash)> {
        let k = text[key_col];
        let key = k
            .is_valid(r)
            .then(|| crate::engine::item_key(k.value(r)))??;
        ROW.with_borrow_mut(|buf| {
            buf.clear();
            for c in &text {
                if c.is_valid(r) {
                    let v = c.value(r).as_bytes();
                    buf.push(1);
                    buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    buf.extend_from_slice(v);
                } else {
                    buf.push(0);
                }
            }
            let d: [u8; 32] = Sha256::digest(&buf[..]).into();
            Some((r as u32, key, d[..16].try_into().expect("16 bytes")))
        })
    };
    Ok((0..b.num_rows())
        .into_par_iter()
        .with_min_len(1024)
        .filter_map(hash)
        .collect())
}

fn truncate(d: Sha256) -> Hash {
    d.finalize()[..16].try_into().expect("16 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> Hash {
        [b; 16]
    }

    #[test]
    fn an_items_hash_does_not_depend_on_the_order_of_its_rows() {
        let a = SourceHashes::from_rows(vec![
            ("B".into(), h(2)),
            ("A".into(), h(1)),
            ("B".into(), h(3)),
        ]);
        let b = SourceHashes::from_rows(vec![
            ("B".into(), h(3)),
            ("B".into(), h(2)),
            ("A".into(), h(1)),
        ]);
        assert_eq!(a, b);
        assert_eq!(a.keys(), ["A", "B"]);
        assert_eq!(a.get("A"), Some(&h(1)));
        assert_ne!(a.get("B"), Some(&h(2)));
        assert_eq!(a.get("C"), None);
        // One row more of an item changes its hash.
        let c = SourceHashes::from_rows(vec![
            ("B".into(), h(3)),
            ("B".into(), h(2)),
            ("B".into(), h(2)),
            ("A".into(), h(1)),
        ]);
        assert_ne!(a.get("B"), c.get("B"));
    }

    #[test]
    fn rows_hash_by_value_with_null_apart_from_empty_and_keyless_rows_left_out() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("item_cd", DataType::Utf8, true),
            Field::new("spec", DataType::Utf8, true),
            Field::new("size", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some(" a1 "),
                    Some("A1"),
                    Some("b"),
                    Some("b"),
                    None,
                    Some("nan"),
                ])) as ArrayRef,
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("x"),
                    Some(""),
                    None,
                    Some("x"),
                    Some("x"),
                ])),
                Arc::new(arrow::array::Float64Array::from(vec![
                    Some(1.0),
                    Some(1.0),
                    None,
                    None,
                    None,
                    None,
                ])),
            ],
        )
        .unwrap();
        let rows = hash_rows(&b).unwrap();
        let keys: Vec<(u32, &str)> = rows.iter().map(|r| (r.0, r.1.as_str())).collect();
        assert_eq!(keys, [(0, "A1"), (1, "A1"), (2, "B"), (3, "B")]);
        // The raw code is part of the row: " a1 " and "A1" are two different rows of item A1.
        assert_ne!(rows[0].2, rows[1].2);
        // '' and NULL differ.
        assert_ne!(rows[2].2, rows[3].2);
        // The same values hash the same in another batch.
        assert_eq!(hash_rows(&b).unwrap(), rows);
        let kept = ItemRows {
            schema: b.schema(),
            batches: vec![b.clone(), b.clone()],
            at: vec![(0, 1, "A1".into()), (1, 0, "A1".into()), (1, 2, "B".into())],
        };
        let a1 = kept.of_keys(&HashSet::from(["A1"])).unwrap();
        let expected =
            arrow::compute::concat_batches(&b.schema(), &[b.slice(1, 1), b.slice(0, 1)]).unwrap();
        assert_eq!(a1, expected);
        assert_eq!(kept.of_keys(&HashSet::from(["C"])).unwrap().num_rows(), 0);
    }

    #[test]
    fn with_adds_the_new_keys_in_order_and_save_load_round_trips() {
        let model = SourceHashes::from_rows(vec![("B".into(), h(2)), ("D".into(), h(4))]);
        let now = SourceHashes::from_rows(vec![
            ("A".into(), h(1)),
            ("B".into(), h(9)),
            ("C".into(), h(3)),
            ("D".into(), h(4)),
        ]);
        let grown = model.with(&now, &["A".into(), "C".into()]);
        assert_eq!(grown.keys(), ["A", "B", "C", "D"]);
        // A changed item keeps its training hash (the model keeps its training attributes).
        assert_eq!(grown.get("B"), Some(&h(2)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.parquet");
        SourceHashes::default().save(&path).unwrap();
        assert_eq!(
            SourceHashes::load(&path).unwrap(),
            Some(SourceHashes::default())
        );
        let path = dir.path().join(SOURCE_HASHES_FILE);
        grown.save(&path).unwrap();
        assert_eq!(SourceHashes::load(&path).unwrap(), Some(grown));
        assert_eq!(
            SourceHashes::load(&dir.path().join("absent.parquet")).unwrap(),
            None
        );
    }
}
