//! The run log `logs/trainer_YYYYMMDD.log`: one timestamped line per event, appended; the same
//! lines go to stderr. It records stage timings, dimensions, memory, the similarity distribution,
//! index parameters and LOW-tier warnings.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// Peak resident set size of this process in bytes (VmHWM), if the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
