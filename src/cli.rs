//! The command line (clap derive). Parsing only: every command calls into the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trainer",
    version,
    about = "Stage-2 training service: ERP views -> SQL transforms -> weighted item vectors -> HNSW index",
    long_about = "Learns item vectors from the ERP views so that the routings of the most similar existing \
items can be proposed for a new item. Runs the versioned SQL transforms under sql/ in an embedded \
DataFusion engine, builds weighted float32 vectors and an HNSW index (hnswlib file format), and writes \
the artifacts under models/ and a log under logs/.",
    after_help = "Exit codes: 0 ok, 2 usage or config error, 3 input data error, 4 output error, 5 SQL transform error, 70 internal error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Connect, list each view's columns with their source types and row count, and say which
    /// mapped columns are missing (exit code 3 if any) -- before a long run.
    Check {
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
    },
    /// Data-quality report: per mapped column the missing values by spelling, the sentinels 0
    /// and 9999, distinct and commonest values, values that do not convert to the contract type;
    /// unit spellings and what they become; drift of the cleaned features against the trained
    /// model.
    Profile {
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// The trained model to compare with (default: the config's `output.models_dir`, when it
        /// holds a model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the report as an HTML page to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train: read the sources, run the SQL transforms, build vectors and the index, write models/.
    Run {
        /// Pipeline configuration.
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// Only write the log file, print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Measure recommendation quality: hold out items with routings, train without their
    /// routings, and check whether their nearest neighbours share their routing (against two
    /// baselines). Writes models/eval_report.json.
    Eval {
        /// Pipeline configuration.
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// Share of the items with a routing that is held out, in (0, 0.5].
        #[arg(long, default_value_t = 0.02)]
        holdout: f64,
        /// Seed of the holdout draw (and of the index-check sample).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Items whose index search is compared with exact search (recall@10).
        #[arg(long, default_value_t = 1000)]
        recall_queries: usize,
        /// Print the report as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Print the training log lines of the evaluated runs.
        #[arg(long)]
        verbose: bool,
    },
    /// Print the logical, optimised and physical plans of the SQL views (all, or one).
    Explain {
        /// View name, e.g. clean_items (default: every view, in run order).
        view: Option<String>,
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
    },
    /// Generate a deterministic synthetic ERP extract (three views as Parquet + item_metadata.json).
    Sample {
        /// Number of items.
        #[arg(long)]
        items: usize,
        /// Random seed; the same seed gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Which hidden plant to generate (same views and pathologies, other routing drivers).
        #[arg(long, value_enum, default_value = "plant-a")]
        profile: crate::sample::Profile,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Inspect the configured sources (connect, list columns, types and row counts).
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Snapshot the configured sources to Parquet (the Stage-1 extract) with a snapshot id.
    Extract {
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// Output directory: one <view>.parquet per view, item_metadata.json, extract.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add the items created since training to a model without retraining: encode only the new
    /// items with the model's fitted state, insert them into its index, re-check the items they
    /// came close to, and keep the retrain queue. Swaps the model in atomically, like `run`.
    Update {
        /// Pipeline configuration (its sources are read; the model's own transforms are used).
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// Model directory (default: the config's output.models_dir).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Only write the log file, print nothing but errors and the summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Propose routings for items: the nearest items that have a routing, why they are similar,
    /// and their operations with standard times and work-order actuals. Needs only the model
    /// directory; never modifies it.
    Recommend {
        /// ITEM_CDs of items in the model.
        items: Vec<String>,
        /// New items in the item view's own columns: a CSV file with a header, or JSON lines
        /// (one object per line); `-` reads standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Model directory written by `trainer run` / `trainer update`.
        #[arg(long, default_value = "models")]
        model: PathBuf,
        /// Neighbours with a routing to propose per item.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        /// Features shown per neighbour in the table: the ones adding most to the similarity
        /// and the ones where the two items differ most (JSON and CSV carry all).
        #[arg(long, default_value_t = 3)]
        explain: usize,
        /// Work-order reports an operation needs before its actuals are called trustworthy.
        #[arg(long, default_value_t = 3)]
        min_reports: i64,
        /// One JSON object per input item, one per line.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV: one row per input item x neighbour x operation.
        #[arg(long)]
        csv: bool,
    },
    /// Vectorise the items of the config's sources with a trained model's fitted state.
    Vectorize {
        /// Model directory written by `trainer run`.
        #[arg(long, default_value = "models")]
        model: PathBuf,
        #[arg(long, default_value = "config/trainer.yml")]
        config: PathBuf,
        /// Output directory for vectors.npy and items.csv.
        #[arg(long)]
        out: PathBuf,
    },
}
