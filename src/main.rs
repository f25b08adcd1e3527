//! `trainer`: parse the command line, call the library, render an error once, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use trainer::cli::{Cli, Command, SourcesCommand};
use trainer::error::Result;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run { config, quiet } => {
            let s =
                trainer::pipeline::run(&config, &trainer::pipeline::RunOptions { quiet }).await?;
            println!(
                "trained {} items x {} dims in {:.2} s: {} HIGH, {} LOW; model in {}, log {}",
                s.items,
                s.dim,
                s.seconds,
                s.high,
                s.low,
                s.models_dir.display(),
                s.log_path.display()
            );
        }
        Command::Eval {
            config,
            holdout,
            seed,
            recall_queries,
            json,
            verbose,
        } => {
            let opts = trainer::eval::EvalOptions {
                holdout,
                seed,
                recall_queries,
                verbose,
            };
            let report = trainer::eval::eval(&config, &opts).await?;
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.render());
            }
        }
        Command::Explain { view, config } => {
            print!(
                "{}",
                trainer::engine::explain::explain(&config, view.as_deref()).await?
            );
        }
        Command::Sample {
            items,
            seed,
            profile,
            out,
        } => {
            let t = std::time::Instant::now();
            let s = trainer::sample::write_sample(
                &trainer::sample::SampleSpec {
                    items,
                    seed,
                    profile,
                },
                &out,
            )?;
            println!(
                "wrote {} item rows, {} routing rows, {} work-order rows to {} in {:.2} s",
                s.item_rows,
                s.routing_rows,
                s.work_order_rows,
                out.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Command::Sources {
            command: SourcesCommand::Check { config },
        } => {
            let cfg = trainer::config::Config::load(&config)?;
            let mapping = trainer::mapping::Mapping::load(&cfg.mapping)?;
            let reports = tokio::task::spawn_blocking(move || {
                trainer::engine::sources::check::describe_sources(&cfg, &mapping)
                    .map(|r| (r, mapping))
            })
            .await
            .map_err(|e| trainer::error::Error::internal(e.to_string()))??;
            let (text, ok) = trainer::engine::sources::check::render(&reports.0, &reports.1);
            print!("{text}");
            if !ok {
                return Err(trainer::error::Error::input(
                    "sources check",
                    format!(
                        "mapped columns are missing (see above); fix {} or the source",
                        reports.1.file.display()
                    ),
                ));
            }
        }
        Command::Extract { config, out } => {
            let cfg = trainer::config::Config::load(&config)?;
            let mapping = trainer::mapping::Mapping::load(&cfg.mapping)?;
            let doc = trainer::engine::sources::check::extract(&cfg, &mapping, &out).await?;
            let rows: u64 = doc["rows"]
                .as_object()
                .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
                .unwrap_or(0);
            let secs = doc["read_seconds"].as_f64().unwrap_or(0.0);
            println!(
                "extracted {rows} rows to {} (read in {secs:.2} s, {:.0} rows/s): snapshot id {}",
                out.display(),
                rows as f64 / secs.max(1e-9),
                doc["snapshot_id"].as_str().unwrap_or("")
            );
        }
        Command::Update {
            config,
            model,
            quiet,
        } => {
            let s = trainer::update::update(&config, model.as_deref(), quiet).await?;
            if s.update == 0 {
                println!(
                    "nothing new: {} items in the model, unchanged ({} changed and {} gone since training, see the log); log {}",
                    s.items,
                    s.changed,
                    s.disappeared,
                    s.log_path.display()
                );
            } else {
                println!(
                    "update {}: added {} items ({} LOW, queued) in {:.2} s; {} existing items now nearest to a new one, {} queued items resolved; {} changed and {} gone since training (see the log); model in {} ({} items), log {}",
                    s.update,
                    s.added,
                    s.low,
                    s.seconds,
                    s.rechecked,
                    s.resolved,
                    s.changed,
                    s.disappeared,
                    s.models_dir.display(),
                    s.items,
                    s.log_path.display()
                );
            }
            for a in &s.advice {
                println!("advice: {a}");
            }
        }
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
            let opts = trainer::recommend::Options {
                top_k,
                explain,
                min_reports,
                format: if json {
                    trainer::recommend::Format::Json
                } else if csv {
                    trainer::recommend::Format::Csv
                } else {
                    trainer::recommend::Format::Table
                },
            };
            let out =
                trainer::recommend::recommend(&model, &items, input.as_deref(), &opts).await?;
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(out.as_bytes()).map_err(|e| {
                trainer::error::Error::output(std::path::Path::new("stdout"), e.to_string())
            })?;
        }
        Command::Vectorize { model, config, out } => {
            let v = trainer::pipeline::vectorize(&config, &model).await?;
            std::fs::create_dir_all(&out)
                .map_err(|e| trainer::error::Error::io(&out, "create the directory", e))?;
            trainer::pipeline::write_npy(&out.join("vectors.npy"), v.vectors.view())?;
            let mut csv = String::from("row,ITEM_CD\n");
            for (i, c) in v.item_cd.iter().enumerate() {
                csv.push_str(&format!("{i},{}\n", c.replace(',', " ")));
            }
            trainer::fsutil::atomic_write(&out.join("items.csv"), csv.as_bytes())?;
            println!(
                "vectorised {} items x {} dims into {}",
                v.keys.len(),
                v.vectors.ncols(),
                out.display()
            );
        }
    }
    Ok(())
}
