//! Runs the SQL layers in order and owns fitted state.
//!
//! Training (`Mode::Fit`): every non-`fit_` file becomes a view; every `fit_` file is executed,
//! its result saved as `models/fitted/<view>.parquet` and registered in place of the view, so
//! what later views read is exactly what was saved. Vectorising later (`Mode::Apply`): the same
//! files run, but `fit_` views are loaded from the saved Parquet instead of recomputed, which
//! makes re-vectorising a training item bit-identical.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::engine::sqlfiles::SqlFile;
use crate::error::{Error, Result};

pub enum Mode<'a> {
    /// Compute fitted state and save it to this folder (if any).
    Fit { save_dir: Option<&'a Path> },
    /// Load fitted state from this folder.
    Apply { state_dir: &'a Path },
}

/// What creating one view cost: rows when it was materialised, and wall time.
#[derive(Debug, Clone)]
pub struct ViewStat {
    pub name: String,
    pub rows: Option<usize>,
    pub seconds: f64,
    /// Peak RSS while it was computed (materialised views).
    pub peak_rss: Option<u64>,
}

/// Creates the views of the given layers (which must contain no `fit_` files). With
/// `materialize`, each view of 02_clean is computed once and kept in memory as a table of the
/// same name: later views read it many times (every UNION branch of an encode input scans
/// clean_items), and plans stay small. Views that do not read each other are then computed at
/// the same time (see [`run_jobs`]). In 03_encode (see [`run_encode`]) only inputs that several
/// `fit_` views read are materialised; the rest are projections and joins streamed into the last
/// view (`encoded_features`, ~25M rows at 325k items), which the Rust tail reads batch by batch.
pub async fn create_views(
    ctx: &SessionContext,
    files: &[SqlFile],
    layers: &[&str],
    materialize: bool,
) -> Result<Vec<ViewStat>> {
    let chosen: Vec<&SqlFile> = files
        .iter()
        .filter(|f| layers.contains(&f.layer.as_str()))
        .collect();
    if let Some(f) = chosen.iter().find(|f| f.is_fit()) {
        return Err(Error::sql(
            format!("sql/{}", f.rel),
            "`fit_` views belong in 03_encode",
        ));
    }
    let jobs = chosen
        .iter()
        .map(|f| {
            let kind = if materialize && held_in_training(files, f) {
                Job::Materialize
            } else {
                Job::View
            };
            (*f, kind)
        })
        .collect::<Vec<_>>();
    run_jobs(ctx, files, &jobs, async |_, _: &[bool], _| Ok(())).await
}

/// The view the Rust tail streams (the contract in sql/README): the last file of 03_encode.
pub const STREAMED: &str = "encoded_features";

/// How [`run_jobs`] handles one SQL file.
#[derive(Clone)]
enum Job {
    /// `CREATE VIEW` (computed where it is read).
    View,
    /// Computed once and registered as a table.
    Materialize,
    /// A fitted table: computed and saved to this folder (if any), or loaded from this file.
    Fit {
        save_dir: Option<PathBuf>,
    },
    Load {
        path: PathBuf,
    },
}

/// Runs `jobs` (SQL files in run order), each as soon as the earlier jobs whose names it reads
/// (directly or through views of `files` that are not jobs) are registered, at most one per core
/// at a time. Every query still runs on one partition, so each table is the same as when the
/// files run one after the other; only the wall time changes. `after` runs after each job's
/// table or view is registered, with the job's index, which jobs are done, and whether it
/// registered a table (it may deregister tables no pending job needs). Returns the stats in
/// `jobs` order; a job's `peak_rss` is the peak between the previous job's end and its own, so
/// it includes the jobs running beside it.
async fn run_jobs(
    ctx: &SessionContext,
    files: &[SqlFile],
    jobs: &[(&SqlFile, Job)],
    mut after: impl AsyncFnMut(usize, &[bool], bool) -> Result<()>,
) -> Result<Vec<ViewStat>> {
    let names: Vec<String> = jobs.iter().map(|(f, _)| f.name.clone()).collect();
    let deps: Vec<Vec<usize>> = jobs
        .iter()
        .enumerate()
        .map(|(k, (f, _))| {
            (0..k)
                .filter(|&j| needs(files, &names, &f.body, &names[j]))
                .collect()
        })
        .collect();
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut started = vec![false; jobs.len()];
    let mut done = vec![false; jobs.len()];
    let mut stats: Vec<Option<ViewStat>> = vec![None; jobs.len()];
    let mut running = tokio::task::JoinSet::new();
    crate::memory::mark_peak_rss();
    loop {
        for k in 0..jobs.len() {
            if running.len() >= parallel {
                break;
            }
            if started[k] || !deps[k].iter().all(|&j| done[j]) {
                continue;
            }
            started[k] = true;
            let (ctx, f, job) = (ctx.clone(), jobs[k].0.clone(), jobs[k].1.clone());
            running.spawn(async move { (k, run_job(&ctx, &f, &job).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (k, out) = joined.map_err(|e| Error::internal(format!("SQL task failed: {e}")))?;
        let (batch, seconds) = out?;
        let rows = batch.as_ref().map(|(b, _)| b.num_rows());
        let table = batch.is_some();
        if let Some((batch, sorted)) = batch {
            register_table(ctx, &names[k], batch, sorted)?;
        }
        done[k] = true;
        after(k, &done, table).await?;
        stats[k] = Some(ViewStat {
            name: names[k].clone(),
            rows,
            seconds,
            peak_rss: crate::memory::mark_peak_rss(),
        });
    }
    // Every job has run: a job whose dependencies never finish cannot exist (deps point back).
    Ok(stats.into_iter().flatten().collect())
}

/// One job of [`run_jobs`]: the table to register (none for a view) with whether it is in
/// [`canonical`] order, and the wall time.
async fn run_job(
    ctx: &SessionContext,
    f: &SqlFile,
    job: &Job,
) -> Result<(Option<(RecordBatch, bool)>, f64)> {
    let what = format!("sql/{}", f.rel);
    let t = std::time::Instant::now();
    let batch = match job {
        Job::View => {
            define_view(ctx, f).await?;
            None
        }
        Job::Materialize => Some(compute_table(ctx, &f.body, &what).await?),
        Job::Fit { save_dir } => {
            let (batch, sorted) = compute_table(ctx, &f.body, &what).await?;
            if let Some(dir) = save_dir {
                save_table(&dir.join(format!("{}.parquet", f.name)), &batch)?;
            }
            Some((batch, sorted))
        }
        Job::Load { path } => Some((load_table(path)?, false)),
    };
    Ok((batch, t.elapsed().as_secs_f64()))
}

/// Whether training holds `f`, a non-`fit_` file of 03_encode, as a table: when two or more of
/// the `later` files that training computes (`fit_` files and other held inputs) read it. Each
/// of them would otherwise compute it again (DataFusion inlines a view wherever it is read), and
/// every one of them reads the same rows. An input that one `fit_` file reads stays a view: its
/// rows are computed where that file reads them and never held (the one-hot and
/// target-encoding inputs are millions of rows at production scale, cheap to recompute).
///
/// A file whose header says `-- held: yes` is held wherever a later computed file reads it: for
/// an input that a view reads many times over (`target_rows`, read in every branch of
/// `target_values`), which the count above does not see.
fn held_input<F: std::borrow::Borrow<SqlFile>>(later: &[F], f: &SqlFile) -> bool {
    if f.held {
        return later.iter().any(|g| reads(&g.borrow().body, &f.name));
    }
    let computed_readers = later
        .iter()
        .enumerate()
        .filter(|(k, g)| {
            let g = (*g).borrow();
            reads(&g.body, &f.name) && (g.is_fit() || held_input(&later[k + 1..], g))
        })
        .count();
    computed_readers >= 2
}

/// Whether training computes `f` into a table (the 02_clean files later files read, `fit_` files
/// and the 03_encode inputs that several computed files read, see `held_input`) rather than defining a
/// view, as [`create_views`] and [`run_encode`] do. `trainer explain` uses it to plan each file
/// over what training reads.
pub fn held_in_training(files: &[SqlFile], f: &SqlFile) -> bool {
    match f.layer.as_str() {
        // Held because later views read them, many times over; one that no file reads
        // (`routing_ops`, which `run` streams into routings.parquet) stays a view.
        "02_clean" => files
            .iter()
            .any(|g| g.name != f.name && reads(&g.body, &f.name)),
        "03_encode" => {
            let later = files
                .iter()
                .position(|g| g.name == f.name)
                .map_or(0, |i| i + 1);
            f.is_fit() || held_input(&files[later..], f)
        }
        _ => false,
    }
}

/// Registers an empty table named after `f`, of the schema `f`'s query has, declaring the
/// order training would sort it into: `trainer explain` plans later files over it exactly as
/// training plans them over the computed table, without computing anything.
pub async fn register_stand_in(ctx: &SessionContext, f: &SqlFile) -> Result<()> {
    let what = format!("sql/{}", f.rel);
    let err = |e: datafusion::error::DataFusionError| Error::sql(&what, e.to_string());
    let df = ctx.sql(&f.body).await.map_err(err)?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let plan = df.create_physical_plan().await.map_err(err)?;
    let sorted = !crate::engine::deterministic::order_is_reproducible(&plan);
    register_table(ctx, &f.name, RecordBatch::new_empty(schema), sorted)
}

/// `CREATE VIEW <name> AS <body>` for SQL file `f`.
pub async fn define_view(ctx: &SessionContext, f: &SqlFile) -> Result<()> {
    let err =
        |e: datafusion::error::DataFusionError| Error::sql(format!("sql/{}", f.rel), e.to_string());
    ctx.sql(&format!("CREATE VIEW {} AS {}", f.name, f.body))
        .await
        .map_err(err)?;
    // Planning a view does not optimise it: an error the optimiser finds (a constant that does
    // not cast) would surface in the first file that computes a reader of this view, and be
    // blamed on that file. Optimising the view's own query here blames this file instead.
    ctx.sql(&format!("SELECT * FROM {}", f.name))
        .await
        .map_err(err)?
        .into_optimized_plan()
        .map_err(err)?;
    Ok(())
}

/// Runs the encode layer in `mode`: `fit_` files are computed (or loaded) and registered as
/// tables; other files become views, streamed (computed where they are read, into
/// `encoded_features`), except inputs that several computed files read (see `held_input`):
/// those are computed once and held as tables until the last `fit_` file that reads them is
/// done. (A view reads its inputs in a fixed order too, see `engine::deterministic`, so a `fit_`
/// file sums the same rows in the same order either way.) Then a held input that a streamed view
/// still reads is replaced by its view: the stream does not depend on row order, and the inputs
/// are long-format rows that cost far more memory to hold than time to recompute. Files that do
/// not read each other run at the same time ([`run_jobs`]). Held
/// tables that no pending file needs, directly or through a view, are dropped as soon as the
/// last reader is done; `keep` names the ones the caller still reads (`None`: keep every table,
/// for a session that is inspected afterwards).
/// Returns a stat per file (rows for fitted and held tables).
pub async fn run_encode(
    ctx: &SessionContext,
    files: &[SqlFile],
    mode: Mode<'_>,
    keep: Option<&[&str]>,
) -> Result<Vec<ViewStat>> {
    let encode: Vec<&SqlFile> = files.iter().filter(|f| f.layer == "03_encode").collect();
    let mut held = held_tables(ctx, files).await;
    release_unneeded(ctx, files, &mut held, &encode, keep);
    let jobs: Vec<(&SqlFile, Job)> = encode
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let job = if f.is_fit() {
                match &mode {
                    Mode::Fit { save_dir } => Job::Fit {
                        save_dir: save_dir.map(Path::to_path_buf),
                    },
                    Mode::Apply { state_dir } => Job::Load {
                        path: state_dir.join(format!("{}.parquet", f.name)),
                    },
                }
            } else if matches!(mode, Mode::Fit { .. }) && held_input(&encode[k + 1..], f) {
                // Inputs that several fitted statistics read are computed once and held until
                // the last file that reads them is done. (When fitted state is loaded, those
                // statistics are not computed and the stream reads views: nothing is held.)
                Job::Materialize
            } else {
                Job::View
            };
            (*f, job)
        })
        .collect();
    run_jobs(ctx, files, &jobs, async |k, done: &[bool], table| {
        if table {
            held.push(jobs[k].0.name.clone());
        }
        if !jobs[k].0.is_fit() {
            return Ok(());
        }
        if keep.is_some() {
            swap_streamed_inputs(ctx, files, &jobs, done, &mut held).await?;
        }
        // Readers still to come: files not done yet, and the streamed view (read after this
        // function returns; `needs` follows the views it reads). A view that only `fit_` files
        // read is not read again once they are done.
        let pending: Vec<&SqlFile> = jobs
            .iter()
            .zip(done)
            .filter(|((f, _), d)| !**d || f.name == STREAMED)
            .map(|((f, _), _)| *f)
            .collect();
        release_unneeded(ctx, files, &mut held, &pending, keep);
        Ok(())
    })
    .await
}

/// Replaces each held encode input that no pending table (fit_ file or held input) reads any
/// more, but a streamed view does, by its view; see [`run_encode`].
async fn swap_streamed_inputs(
    ctx: &SessionContext,
    files: &[SqlFile],
    jobs: &[(&SqlFile, Job)],
    done: &[bool],
    held: &mut Vec<String>,
) -> Result<()> {
    let inputs: Vec<&SqlFile> = jobs
        .iter()
        .filter(|(f, job)| matches!(job, Job::Materialize) && held.contains(&f.name))
        .map(|(f, _)| *f)
        .collect();
    for f in inputs {
        let pending_table = jobs.iter().zip(done).any(|((g, job), d)| {
            !matches!(job, Job::View) && !d && needs(files, held, &g.body, &f.name)
        });
        // Only views the stream reads count: a view that only `fit_` files read (e.g.
        // enc_target_y when fit_target_prior alone reads it) is never read again, and turning
        // its input back into a view would plan that input over tables already released.
        let streamed = jobs
            .iter()
            .any(|(g, _)| g.name == STREAMED && needs(files, held, &g.body, &f.name));
        if pending_table || !streamed {
            continue;
        }
        let _ = ctx.deregister_table(f.name.as_str());
        held.retain(|t| t != &f.name);
        define_view(ctx, f).await?;
    }
    Ok(())
}

/// The SQL files' names that are registered as tables (materialised), not as views.
async fn held_tables(ctx: &SessionContext, files: &[SqlFile]) -> Vec<String> {
    let mut held = Vec::new();
    for f in files {
        if let Ok(t) = ctx.table_provider(f.name.as_str()).await
            && t.table_type() == datafusion::datasource::TableType::Base
        {
            held.push(f.name.clone());
        }
    }
    held
}

/// Deregisters the held tables that none of `later` reads, directly or through views defined by
/// `files`, unless listed in `keep`; frees their memory.
fn release_unneeded(
    ctx: &SessionContext,
    files: &[SqlFile],
    held: &mut Vec<String>,
    later: &[&SqlFile],
    keep: Option<&[&str]>,
) {
    let Some(keep) = keep else {
        return;
    };
    let before = held.len();
    let tables = held.clone();
    held.retain(|t| {
        let needed =
            keep.contains(&t.as_str()) || later.iter().any(|f| needs(files, &tables, &f.body, t));
        if !needed {
            let _ = ctx.deregister_table(t.as_str());
        }
        needed
    });
    if held.len() < before {
        crate::memory::release_free_memory();
    }
}

/// Whether SQL `body` reads `table`, directly or through the views of `files` it reads (a
/// file that is a fitted or held table, listed in `tables`, is not a view).
pub fn needs(files: &[SqlFile], tables: &[String], body: &str, table: &str) -> bool {
    fn walk(
        files: &[SqlFile],
        tables: &[String],
        body: &str,
        table: &str,
        seen: &mut Vec<String>,
    ) -> bool {
        if reads(body, table) {
            return true;
        }
        files.iter().filter(|v| !v.is_fit()).any(|v| {
            v.name != table
                && !tables.contains(&v.name)
                && !seen.contains(&v.name)
                && reads(body, &v.name)
                && {
                    seen.push(v.name.clone());
                    walk(files, tables, &v.body, table, seen)
                }
        })
    }
    walk(files, tables, body, table, &mut Vec::new())
}

/// Whether SQL text `body` names `table` (as a whole identifier, any case) outside comments and
/// string literals. (A comment such as "see clean_items" in `clean_routings` once made the
/// scheduler wait for `clean_items` before starting `clean_routings`.)
pub fn reads(body: &str, table: &str) -> bool {
    let body = code_only(body).to_ascii_lowercase();
    let table = table.to_ascii_lowercase();
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    body.match_indices(&table).any(|(i, _)| {
        !ident(body[..i].chars().next_back()) && !ident(body[i + table.len()..].chars().next())
    })
}

/// `sql` with its comments (`--` to the end of the line, `/* … */`) and string literals
/// (`'…'`, `''` inside) replaced by spaces, so what remains is code.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            '\'' => {
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push_str("''");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Runs `sql` and returns its result as one batch in a reproducible row order: as computed
/// when the plan's order is fixed by its inputs' order
/// ([`order_is_reproducible`](crate::engine::deterministic::order_is_reproducible)), else in
/// [`canonical`] order.
pub async fn compute(ctx: &SessionContext, sql: &str, what: &str) -> Result<RecordBatch> {
    Ok(compute_table(ctx, sql, what).await?.0)
}

/// [`compute`], and whether the rows were put in [`canonical`] order.
async fn compute_table(ctx: &SessionContext, sql: &str, what: &str) -> Result<(RecordBatch, bool)> {
    let err = |e: datafusion::error::DataFusionError| Error::sql(what, e.to_string());
    let df = ctx.sql(sql).await.map_err(err)?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await.map_err(err)?;
    let reproducible = crate::engine::deterministic::order_is_reproducible(&plan);
    let parts = datafusion::physical_plan::collect_partitioned(Arc::clone(&plan), task)
        .await
        .map_err(err)?;
    if std::env::var_os("TRAINER_SQL_METRICS").is_some() {
        eprintln!(
            "=== {what}\n{}",
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                plan.as_ref()
            )
            .indent(true)
        );
    }
    let batch = crate::engine::concat(&schema, &parts.into_iter().flatten().collect::<Vec<_>>())?;
    if reproducible {
        Ok((batch, false))
    } else {
        Ok((canonical(&batch)?, true))
    }
}

/// The rows of `batch` sorted by all columns (first column first). DataFusion does not promise
/// the order in which an aggregate emits its groups; a materialised table computed by one is
/// put in this canonical order so that later float sums over it add up in the same order in
/// every run. (Sorting a large table of strings is costly, so plans whose order is already
/// reproducible skip it.)
pub fn canonical(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
    if batch.num_rows() < 2 {
        return Ok(batch.clone());
    }
    let cols: Vec<SortColumn> = batch
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    let idx =
        lexsort_to_indices(&cols, None).map_err(|e| Error::internal(format!("sorting: {e}")))?;
    take_record_batch(batch, &idx).map_err(|e| Error::internal(format!("sorting: {e}")))
}

/// Registers (or replaces) a table by name.
pub fn register(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    register_table(ctx, name, batch, false)
}

/// Registers (or replaces) a table by name; `sorted`: its rows are in [`canonical`] order, which
/// the table then declares, so that DataFusion can aggregate it by leading columns as a stream
/// and skip sorts it already satisfies (e.g. `item_targets` over `clean_routings`, grouped by
/// item and ordered by operation: bounded memory instead of every group's rows held at once).
fn register_table(
    ctx: &SessionContext,
    name: &str,
    batch: RecordBatch,
    sorted: bool,
) -> Result<()> {
    use datafusion::logical_expr::col;
    let _ = ctx.deregister_table(name);
    // canonical() sorts with arrow's default options: ascending, nulls first.
    let order: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| col(datafusion::common::Column::new_unqualified(f.name())).sort(true, true))
        .collect();
    let mut table = MemTable::try_new(batch.schema(), vec![vec![batch]])
        .map_err(|e| Error::internal(format!("registering {name}: {e}")))?;
    if sorted {
        table = table.with_sort_order(vec![order]);
    }
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| Error::internal(format!("registering {name}: {e}")))?;
    Ok(())
}

pub fn save_table(path: &Path, batch: &RecordBatch) -> Result<()> {
    crate::parquet_io::write_parquet(path, batch)
}

pub fn load_table(path: &Path) -> Result<RecordBatch> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| {
        Error::input(
            &shown,
            format!(
                "cannot open fitted state: {e}. Is this a model folder written by `trainer run`?"
            ),
        )
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::input(&shown, format!("not a readable Parquet file: {e}")))?;
    let schema = reader.schema().clone();
    let batches: Vec<RecordBatch> = reader
        .build()
        .map_err(|e| Error::input(&shown, e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::input(&shown, e.to_string()))?;
    crate::engine::concat(&schema, &batches)
}

#[cfg(test)]
mod tests {
    use super::{held_input, needs, reads};
    use crate::engine::sqlfiles::SqlFile;

    fn file(layer: &str, name: &str, body: &str) -> SqlFile {
        SqlFile {
            layer: layer.into(),
            name: name.into(),
            rel: format!("{layer}/{name}.sql"),
            path: Default::default(),
            version: "1".into(),
            grain: String::new(),
            purpose: String::new(),
            sha256: String::new(),
            held: false,
            body: body.into(),
        }
    }

    /// A view that only a `fit_` file reads is dead once that file is done: the held input it
    /// reads must not be turned back into a view for it (planned then, the input would read a
    /// table released already). Found when `enc_target_y` became such a view.
    #[tokio::test]
    async fn a_view_only_fits_read_does_not_revive_its_input() {
        use super::{Mode, STREAMED, compute, register, run_encode};
        let ctx = crate::engine::new_context();
        let src = compute(
            &ctx,
            "SELECT * FROM (VALUES (1, 2.0), (2, 3.0)) v(k, y)",
            "t",
        )
        .await
        .unwrap();
        register(&ctx, "src", src).unwrap();
        let files = vec![
            file("02_clean", "src", "SELECT 1"),
            file("03_encode", "inp", "SELECT k, y FROM src"),
            file("03_encode", "dead", "SELECT k, y * 2 AS y FROM inp"),
            file("03_encode", "fit_a", "SELECT sum(y) AS s FROM dead"),
            file("03_encode", "fit_b", "SELECT max(y) AS m FROM inp"),
            file("03_encode", "fit_c", "SELECT min(y) AS m FROM inp"),
            file(
                "03_encode",
                STREAMED,
                "SELECT '1' AS item_key, 'f' AS feature, 'f' AS dim, m AS value FROM fit_b",
            ),
        ];
        // Nothing is kept: src is released once inp is held.
        let stats = run_encode(&ctx, &files, Mode::Fit { save_dir: None }, Some(&[]))
            .await
            .unwrap();
        let rows = |n: &str| stats.iter().find(|s| s.name == n).unwrap().rows;
        assert_eq!(rows("inp"), Some(2), "held: two fit_ files read it");
        assert_eq!(rows("dead"), None);
        assert_eq!(rows("fit_a"), Some(1));
        let out = compute(&ctx, &format!("SELECT * FROM {STREAMED}"), "t")
            .await
            .unwrap();
        assert_eq!(out.num_rows(), 1);
    }

    #[test]
    fn needs_follows_views_but_not_fitted_tables() {
        let files = vec![
            file("02_clean", "item_targets", "SELECT * FROM clean_routings"),
            file("03_encode", "enc_y", "SELECT * FROM item_targets"),
            file("03_encode", "fit_stats", "SELECT sum(y) FROM enc_y"),
            file("03_encode", "enc_apply", "SELECT * FROM fit_stats"),
        ];
        let none: Vec<String> = Vec::new();
        let held = vec!["item_targets".to_string()];
        let n = |tables: &[String], k: usize, t: &str| needs(&files, tables, &files[k].body, t);
        // enc_y is a view: reading it reads item_targets (and, through it, clean_routings).
        assert!(n(&none, 2, "item_targets"));
        assert!(n(&none, 2, "clean_routings"));
        // ... unless item_targets is held: then clean_routings is not read any more.
        assert!(n(&held, 2, "item_targets"));
        assert!(!n(&held, 2, "clean_routings"));
        // fit_stats is a fitted table: reading it does not need what it was computed from.
        assert!(!n(&none, 3, "item_targets"));
        assert!(!n(&none, 3, "enc_y"));
    }

    #[test]
    fn an_input_is_held_when_two_computed_files_read_it_or_its_header_says_so() {
        let mut enc = [
            file("03_encode", "rows", "SELECT * FROM item_targets"),
            file(
                "03_encode",
                "values",
                "SELECT y FROM rows UNION ALL SELECT z FROM rows",
            ),
            file("03_encode", "fit_scale", "SELECT sum(y) FROM values"),
            file("03_encode", "fit_sums", "SELECT sum(y) FROM rows"),
            file("03_encode", "twice", "SELECT * FROM item_targets"),
            file("03_encode", "fit_a", "SELECT sum(y) FROM twice"),
            file("03_encode", "fit_b", "SELECT max(y) FROM twice"),
        ];
        // rows: one computed file reads it directly (fit_sums); values is a view.
        assert!(!held_input(&enc[1..], &enc[0]));
        // values: one computed reader.
        assert!(!held_input(&enc[2..], &enc[1]));
        // twice: two computed readers.
        assert!(held_input(&enc[5..], &enc[4]));
        // `-- held: yes` holds rows, and values stays a view.
        enc[0].held = true;
        assert!(held_input(&enc[1..], &enc[0]));
        assert!(!held_input(&enc[2..], &enc[1]));
        // ... but not a file that nothing later reads.
        assert!(!held_input(&enc[4..], &enc[0]));
    }

    #[test]
    fn the_held_header_field_is_yes_or_no() {
        let dir = tempfile::tempdir().unwrap();
        let enc = dir.path().join("03_encode");
        std::fs::create_dir_all(&enc).unwrap();
        for l in ["01_map", "02_clean"] {
            std::fs::create_dir_all(dir.path().join(l)).unwrap();
        }
        let head = "-- version: 1\n-- grain: g\n-- purpose: p\n";
        std::fs::write(
            enc.join("10_a.sql"),
            format!("{head}-- held: yes\nSELECT 1"),
        )
        .unwrap();
        std::fs::write(enc.join("11_b.sql"), format!("{head}SELECT 1")).unwrap();
        let files = crate::engine::sqlfiles::load(dir.path()).unwrap();
        assert!(files.iter().any(|f| f.name == "a" && f.held));
        assert!(files.iter().any(|f| f.name == "b" && !f.held));
        std::fs::write(
            enc.join("11_b.sql"),
            format!("{head}-- held: maybe\nSELECT 1"),
        )
        .unwrap();
        let err = crate::engine::sqlfiles::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("11_b.sql") && err.contains("`held` must be `yes` or `no`, not `maybe`"),
            "{err}"
        );
    }

    /// The order a sorted table declares (every column ascending, nulls first) is the order
    /// `canonical` produces: DataFusion sorting the same rows that way gives the same batch.
    #[tokio::test]
    async fn canonical_order_is_the_declared_order() {
        let ctx = crate::engine::new_context();
        let sql = "SELECT * FROM (VALUES ('b', 2.0, 1), (NULL, 1.5, 2), ('a', NULL, 3), \
                   ('a', -0.5, 4), ('b', 2.0, NULL), ('a', -0.5, 0), (NULL, NULL, 1)) v(s, x, k)";
        let rows = super::compute(&ctx, &format!("{sql} WHERE k IS NULL OR k >= 0"), "test")
            .await
            .unwrap();
        let sorted = super::canonical(&rows).unwrap();
        let by_df = crate::engine::collect(
            &ctx,
            &format!("{sql} ORDER BY s ASC NULLS FIRST, x ASC NULLS FIRST, k ASC NULLS FIRST"),
            "test",
        )
        .await
        .unwrap();
        let by_df = crate::engine::concat(&sorted.schema(), &by_df).unwrap();
        assert_eq!(sorted, by_df);
        // Declared on a registered table, a query ordered that way needs no sort.
        super::register_table(&ctx, "t", sorted, true).unwrap();
        let plan = ctx
            .sql("EXPLAIN SELECT s, count(*) FROM t GROUP BY s")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(text.contains("ordering_mode=Sorted"), "{text}");
    }

    #[test]
    fn reads_names_whole_identifiers() {
        let sql = "SELECT * FROM enc_onehot_input i JOIN item_sample s ON s.item_key = i.item_key";
        assert!(reads(sql, "enc_onehot_input"));
        assert!(reads(sql, "ITEM_SAMPLE"));
        assert!(!reads(sql, "enc_onehot"));
        assert!(!reads(sql, "item"));
        assert!(!reads("SELECT 1 FROM x_enc_onehot", "enc_onehot"));
    }

    #[test]
    fn reads_ignores_comments_and_string_literals() {
        let sql = "-- see clean_items\nSELECT 'clean_items', 'it''s clean_items' AS x /* clean_items */\nFROM clean_routings -- clean_items";
        assert!(!reads(sql, "clean_items"));
        assert!(reads(sql, "clean_routings"));
        assert!(reads("SELECT a-b FROM t /* x */ JOIN u", "u"));
        assert!(reads("SELECT 'a' FROM t", "t"));
    }
}
