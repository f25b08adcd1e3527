//! The run log `logs/trainer_YYYYMMDD.log`: one timestamped line per event, appended; the same
//! lines go to stderr. It records stage timings, dimensions, memory, the similarity distribution,
//! index parameters and LOW-tier warnings. Also the stage [`Timer`] and the progress bar: what a
//! user sees of a run while it runs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::error::{Error, Result};
use crate::memory::{peak_rss_bytes, start_stage_peak_rss, take_stage_peak_rss};

pub struct RunLog {
    file: Option<File>,
    pub path: PathBuf,
    quiet: bool,
}

impl RunLog {
    pub fn open(dir: &Path, quiet: bool) -> Result<RunLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create the log directory", e))?;
        let path = dir.join(format!(
            "trainer_{}.log",
            chrono::Local::now().format("%Y%m%d")
        ));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open the log file", e))?;
        Ok(RunLog {
            file: Some(file),
            path,
            quiet,
        })
    }

    /// A log that only prints (used where no log directory is configured, e.g. `explain`).
    pub fn stderr_only(quiet: bool) -> RunLog {
        RunLog {
            file: None,
            path: PathBuf::new(),
            quiet,
        }
    }

    pub fn info(&mut self, msg: impl AsRef<str>) {
        self.line("INFO", msg.as_ref());
    }

    pub fn warn(&mut self, msg: impl AsRef<str>) {
        self.line("WARN", msg.as_ref());
    }

    fn line(&mut self, level: &str, msg: &str) {
        let ts = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f");
        for l in msg.lines() {
            let text = format!("{ts} {level} {l}");
            if !self.quiet {
                eprintln!("{text}");
            }
            if let Some(f) = &mut self.file {
                let _ = writeln!(f, "{text}");
            }
        }
    }
}

/// Stage timings and per-stage peak RSS. The peak is reset at each stage boundary where the OS
/// allows it, so each stage reports its own peak; `peak` is the maximum over all stages.
pub struct Timer {
    stages: Vec<Stage>,
    t: Instant,
    per_stage_rss: bool,
    peak: Option<u64>,
}

struct Stage {
    name: String,
    seconds: f64,
    peak_rss: Option<u64>,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub fn new() -> Self {
        Timer {
            stages: Vec::new(),
            t: Instant::now(),
            per_stage_rss: start_stage_peak_rss(),
            peak: peak_rss_bytes(),
        }
    }
    pub fn lap(&mut self, name: &str, log: &mut RunLog) {
        let s = self.t.elapsed().as_secs_f64();
        let rss = take_stage_peak_rss();
        self.peak = self.peak.max(rss);
        log.info(format!(
            "stage {name}: {s:.3} s, peak RSS {}{}",
            mib(rss),
            if self.per_stage_rss {
                ""
            } else {
                " (since start)"
            }
        ));
        self.stages.push(Stage {
            name: name.to_string(),
            seconds: s,
            peak_rss: rss,
        });
        if self.per_stage_rss {
            start_stage_peak_rss();
        }
        crate::fsutil::failpoint(&format!("stage:{name}"));
        self.t = Instant::now();
    }
    /// The largest peak RSS seen so far.
    pub fn peak(&self) -> Option<u64> {
        self.peak
    }
    pub fn json(&self) -> (serde_json::Value, serde_json::Value) {
        let secs = self
            .stages
            .iter()
            .map(|st| (st.name.clone(), json!(st.seconds)))
            .collect::<serde_json::Map<_, _>>();
        let rss = self
            .stages
            .iter()
            .map(|st| (st.name.clone(), json!(st.peak_rss)))
            .collect::<serde_json::Map<_, _>>();
        (secs.into(), rss.into())
    }
}

pub fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{} MiB", b / (1024 * 1024)))
        .unwrap_or_else(|| "?".into())
}

pub fn log_histogram(log: &mut RunLog, what: &str, hist: &[usize; 10]) {
    for (k, c) in hist.iter().enumerate() {
        log.info(format!(
            "{what} [{:.1}, {:.1}{}: {c}",
            k as f64 / 10.0,
            (k + 1) as f64 / 10.0,
            if k == 9 { "]" } else { ")" }
        ));
    }
}

pub fn progress_bar(len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    b.set_prefix(what.to_string());
    Some(b)
}
