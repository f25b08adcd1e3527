//! `trainer sources check` and `trainer extract`: look at the configured sources before a long
//! run, and snapshot them to Parquet (the Stage-1 extract) so a run can be repeated on exactly
//! the same data.

use std::fmt::Write;
use std::path::Path;

use crate::config::mapping::Mapping;
use crate::config::{Config, SourceKind};
use crate::erp::VIEWS;
use crate::error::{Error, Result};
use crate::parquet_io::{FooterError, footer};

/// One view as the source describes it.
pub struct ViewReport {
    pub view: String,
    pub location: String,
    /// (column, source type)
    pub columns: Vec<(String, String)>,
    pub rows: u64,
    pub missing: Vec<String>,
}

/// Describes every configured view: columns with their source types, row count, and the mapped
/// columns it lacks. Nothing but counts is read.
pub fn describe_sources(cfg: &Config, mapping: &Mapping) -> Result<Vec<ViewReport>> {
    let mut out = Vec::new();
    match cfg.sources.kind {
        SourceKind::Parquet => {
            for v in VIEWS {
                let path = super::parquet::file_for(&cfg.sources, v.erp_name);
                let shown = path.display().to_string();
                let file = std::fs::File::open(&path)
                    .map_err(|e| Error::input(&shown, format!("cannot open: {e}")))?;
                let (schema, rows) = footer(file).map_err(|e| match e {
                    FooterError::NotParquet(e) => {
                        Error::input(&shown, format!("not a readable Parquet file ({e})"))
                    }
                    FooterError::Schema(e) => Error::input(&shown, e),
                })?;
                let columns: Vec<(String, String)> = schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().to_string()))
                    .collect();
                out.push(report(v.erp_name, shown, columns, rows, mapping));
            }
        }
        SourceKind::Odbc => {
            for (view, table, location, columns, rows) in super::odbc::describe_all(&cfg.sources)? {
                out.push(report(
                    &view,
                    format!("{table} on {location}"),
                    columns,
                    rows,
                    mapping,
                ));
            }
        }
    }
    Ok(out)
}

fn report(
    view: &str,
    location: String,
    columns: Vec<(String, String)>,
    rows: u64,
    mapping: &Mapping,
) -> ViewReport {
    let missing = mapping
        .columns(view)
        .keys()
        .filter(|c| !columns.iter().any(|(n, _)| n == *c))
        .cloned()
        .collect();
    ViewReport {
        view: view.to_string(),
        location,
        columns,
        rows,
        missing,
    }
}

/// The human-readable report; the bool is false when a mapped column is missing.
pub fn render(reports: &[ViewReport], mapping: &Mapping) -> (String, bool) {
    let mut s = String::new();
    let mut ok = true;
    for r in reports {
        let _ = writeln!(
            s,
            "{}: {} ({} rows, {} columns)",
            r.view,
            r.location,
            r.rows,
            r.columns.len()
        );
        let width = r
            .columns
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, ty) in &r.columns {
            let mapped = mapping
                .columns(&r.view)
                .get(name)
                .map(|s| format!("-> {s}"))
                .unwrap_or_else(|| "(not mapped)".into());
            let pad = width - name.chars().count();
            let _ = writeln!(s, "  {name}{} {ty}  {mapped}", " ".repeat(pad));
        }
        if r.missing.is_empty() {
            let _ = writeln!(
                s,
                "  all {} mapped columns present",
                mapping.columns(&r.view).len()
            );
        } else {
            ok = false;
            let close: Vec<String> = r
                .missing
                .iter()
                .map(|m| {
                    let names: Vec<String> = r.columns.iter().map(|(n, _)| n.clone()).collect();
                    let c = crate::text::close_matches(m, &names);
                    if c.is_empty() {
                        m.clone()
                    } else {
                        format!("{m} (close: {})", c.join(", "))
                    }
                })
                .collect();
            let _ = writeln!(s, "  MISSING mapped columns: {}", close.join("; "));
        }
    }
    (s, ok)
}

/// Snapshots the configured sources to `<out>/<view>.parquet` (mapped columns, contract types)
/// with `item_metadata.json` and `extract.json`. A Parquet config pointed at `<out>` trains on
/// exactly this data and reports the same `data_snapshot_id`.
pub async fn extract(cfg: &Config, mapping: &Mapping, out: &Path) -> Result<Extracted> {
    let staged = crate::fsutil::StagedDir::create(out)?;
    let ctx = crate::engine::new_context();
    let t = std::time::Instant::now();
    let infos = super::register_all(&ctx, cfg, mapping).await?;
    let read_seconds = t.elapsed().as_secs_f64();
    let mut files = Vec::new();
    let mut rows = serde_json::Map::new();
    let mut total_rows = 0u64;
    for v in VIEWS {
        let cols: Vec<String> = mapping
            .columns(v.erp_name)
            .keys()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        let sql = format!("SELECT {} FROM \"{}\"", cols.join(", "), v.erp_name);
        let batch = crate::engine::collect_batch(&ctx, &sql, v.erp_name).await?;
        rows.insert(v.erp_name.to_string(), serde_json::json!(batch.num_rows()));
        total_rows += batch.num_rows() as u64;
        let path = staged.path().join(format!("{}.parquet", v.erp_name));
        crate::parquet_io::write_parquet(&path, &batch)?;
        files.push(crate::engine::sources::SourceInfo {
            view: v.erp_name.to_string(),
            location: String::new(),
            columns: vec![],
            sha256: crate::hash::sha256_file(&path)?,
            nulled: vec![],
        });
    }
    std::fs::copy(&cfg.item_metadata, staged.path().join("item_metadata.json")).map_err(|e| {
        Error::input(
            cfg.item_metadata.display().to_string(),
            format!("cannot copy item metadata: {e}"),
        )
    })?;
    let meta_sha = crate::hash::sha256_file(&cfg.item_metadata)?;
    let id = super::snapshot_id(&files, &meta_sha);
    let doc = serde_json::json!({
        "snapshot_id": id,
        "created_at": chrono::Local::now().to_rfc3339(),
        "source_kind": cfg.sources.kind,
        "sources": infos.iter().map(|s| serde_json::json!({"view": s.view, "location": s.location, "content_sha256": s.sha256})).collect::<Vec<_>>(),
        "files": files.iter().map(|f| serde_json::json!({"file": format!("{}.parquet", f.view), "sha256": f.sha256})).collect::<Vec<_>>(),
        "item_metadata_sha256": meta_sha,
        "rows": rows,
        "read_seconds": read_seconds,
        "schema_mapping_version": mapping.version,
    });
    crate::fsutil::write_json(&staged.path().join("extract.json"), &doc)?;
    staged.commit()?;
    Ok(Extracted {
        snapshot_id: id,
        rows: total_rows,
        read_seconds,
    })
}

/// What [`extract`] wrote (`extract.json` has the details).
pub struct Extracted {
    pub snapshot_id: String,
    /// Rows over all views.
    pub rows: u64,
    pub read_seconds: f64,
}
