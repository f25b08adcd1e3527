//! One file per verb of the command line: each owns what its verb prints and returns (the
//! summary line, the report, the exit-code-bearing error), calling the library for the work.
//! [`dispatch`] is all `main.rs` calls.

pub mod eval;
pub mod explain;
pub mod recommend;
pub mod run;
pub mod sample;
pub mod sources;
pub mod update;
pub mod vectorize;

use crate::cli::{Command, SourcesCommand};
use crate::error::Result;

/// Runs one parsed command.
pub async fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run { config, quiet } => run::execute(&config, quiet).await,
        Command::Eval {
            config,
            holdout,
            seed,
            recall_queries,
            json,
            verbose,
        } => {
            let opts = eval::EvalOptions {
                holdout,
                seed,
                recall_queries,
                verbose,
            };
            eval::execute(&config, &opts, json).await
        }
        Command::Explain { view, config } => explain::execute(&config, view.as_deref()).await,
        Command::Sample {
            items,
            seed,
            profile,
            out,
        } => sample::execute(
            &crate::sample::SampleSpec {
                items,
                seed,
                profile,
            },
            &out,
        ),
        Command::Sources {
            command: SourcesCommand::Check { config },
        } => sources::check(&config).await,
        Command::Sources {
            command:
                SourcesCommand::Profile {
                    config,
                    model,
                    json,
                    html,
                },
        } => sources::profile(&config, model.as_deref(), json, html.as_deref()).await,
        Command::Extract { config, out } => sources::extract(&config, &out).await,
        Command::Update {
            config,
            model,
            quiet,
        } => update::execute(&config, model.as_deref(), quiet).await,
        Command::Recommend {
            items,
            input,
            model,
            top_k,
            explain,
            min_reports,
            json,
            csv,
        } => {
            let opts = recommend::Options {
                top_k,
                explain,
                min_reports,
                format: if json {
                    recommend::Format::Json
                } else if csv {
                    recommend::Format::Csv
                } else {
                    recommend::Format::Table
                },
            };
            recommend::execute(&model, &items, input.as_deref(), &opts).await
        }
        Command::Vectorize { model, config, out } => {
            vectorize::execute(&config, &model, &out).await
        }
    }
}
