//! The one error type of `trainer` and its exit codes.
//!
//! Every failure a user can cause is a variant here with a message that names the file, table,
//! column or config key involved and says what to do. `main` renders the error once and exits
//! with [`Error::exit_code`]; nothing below `main` prints errors itself.

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit codes (documented in the README).
pub mod exit {
    /// Bad command line or configuration (config file, mapping file).
    pub const CONFIG: i32 = 2;
    /// Input data cannot be used: missing or corrupt file, missing column, bad item metadata.
    pub const INPUT: i32 = 3;
    /// Output cannot be written (permissions, disk); the previous model is left intact.
    pub const OUTPUT: i32 = 4;
    /// A SQL transform failed to plan or run.
    pub const SQL: i32 = 5;
    /// A bug in trainer.
    pub const INTERNAL: i32 = 70;
}

#[derive(Debug)]
pub enum Error {
    /// Command-line usage problems not caught by clap.
    Usage(String),
    /// Configuration or mapping file problems.
    Config { file: PathBuf, message: String },
    /// Input data problems.
    Input { what: String, message: String },
    /// Output could not be written.
    Output { path: PathBuf, message: String },
    /// A SQL transform failed.
    Sql { file: String, message: String },
    /// Invariant violations.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
    pub fn config(file: &Path, msg: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_path_buf(),
            message: msg.into(),
        }
    }
    pub fn input(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Input {
            what: what.into(),
            message: msg.into(),
        }
    }
    pub fn output(path: &Path, msg: impl Into<String>) -> Self {
        Error::Output {
            path: path.to_path_buf(),
            message: msg.into(),
        }
    }
    pub fn sql(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Sql {
            file: file.into(),
            message: msg.into(),
        }
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// An I/O error while writing `path` (reading errors use [`Error::input`]).
    pub fn io(path: &Path, doing: &str, e: std::io::Error) -> Self {
        Error::output(path, format!("cannot {doing}: {e}"))
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Config { .. } => exit::CONFIG,
            Error::Input { .. } => exit::INPUT,
            Error::Output { .. } => exit::OUTPUT,
            Error::Sql { .. } => exit::SQL,
            Error::Internal(_) => exit::INTERNAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::Config { file, message } => write!(f, "{}: {message}", file.display()),
            Error::Input { what, message } => write!(f, "{what}: {message}"),
            Error::Output { path, message } => write!(
                f,
                "{}: {message}\nNothing was replaced: the previous model (if any) is intact.",
                path.display()
            ),
            Error::Sql { file, message } => write!(f, "{file}: {message}"),
            Error::Internal(m) => {
                write!(f, "internal error (a bug in trainer, please report): {m}")
            }
        }
    }
}

impl std::error::Error for Error {}
