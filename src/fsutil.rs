//! Crash-safe file output: every artifact is written to a temporary sibling and renamed into
//! place, so a failed run never leaves a half-written file where a good one was.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `path` through `f` into `path.tmp-<pid>`, fsyncs and renames it into place.
pub fn atomic_write_with<F>(path: &Path, f: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let mut file = AtomicFile::create(path)?;
    f(file.writer()).map_err(|e| Error::io(path, "write the file", e))?;
    file.commit()
}

/// A file written under a temporary sibling name and renamed into place by [`AtomicFile::commit`]
/// (after an fsync); dropped uncommitted, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let tmp = tmp_sibling(path);
        let file = File::create(&tmp).map_err(|e| Error::io(path, "write the file", e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            w: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.w.as_mut().expect("an uncommitted file has its writer")
    }

    pub fn commit(mut self) -> Result<()> {
        let w = self.w.take().expect("committed once");
        let result = (|| -> std::io::Result<()> {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&self.tmp, &self.path)
        })();
        result.map_err(|e| Error::io(&self.path, "write the file", e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// The folder a model directory lives in (created if missing) and the directory's name: where
/// its lock, staging and set-aside folders go.
fn parent_and_name(dir: &Path) -> Result<(PathBuf, String)> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create the directory", e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "models".into());
    Ok((parent.to_path_buf(), name))
}

/// An exclusive lock on a model directory, held by a run or update from its start to its end
/// (an `flock` on `<parent>/.<name>.lock`, released when the process ends however it ends): a
/// second writer of the same model is refused instead of racing the first.
pub struct ModelLock {
    _file: File,
}

impl ModelLock {
    pub fn acquire(models_dir: &Path) -> Result<ModelLock> {
        if models_dir.exists() && !models_dir.is_dir() {
            return Err(Error::output(
                models_dir,
                "is a file, not a model directory; point output.models_dir (or --model) at a directory",
            ));
        }
        let (parent, name) = parent_and_name(models_dir)?;
        let parent = parent.as_path();
        let path = parent.join(format!(".{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::io(
                    &path,
                    "create the model's lock file (is the directory writable?)",
                    e,
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(ModelLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::output(
                models_dir,
                format!(
                    "another trainer run or update is writing this model (it holds {}); wait for it to finish",
                    path.display()
                ),
            )),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, "lock the model", e)),
        }
    }
}

/// A directory of artifacts built in a staging directory beside its final place and swapped in
/// only when complete: `models/` is replaced as a whole or not at all.
pub struct StagedDir {
    final_path: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Creates `<parent>/.<name>.staging-<pid>`; fails early if the parent is not writable.
    pub fn create(final_path: &Path) -> Result<Self> {
        let (parent, name) = parent_and_name(final_path)?;
        let parent = parent.as_path();
        remove_leftovers(parent, &name);
        let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
        if staging.exists() {
            let _ = fs::remove_dir_all(&staging);
        }
        fs::create_dir_all(&staging).map_err(|e| {
            Error::io(
                final_path,
                "create a staging directory beside the output (is the directory writable?)",
                e,
            )
        })?;
        Ok(StagedDir {
            final_path: final_path.to_path_buf(),
            staging,
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Swaps the staging directory into place. The old directory is moved aside first and removed
    /// only after the new one is in place.
    pub fn commit(mut self) -> Result<()> {
        let old = self.final_path.with_file_name(format!(
            ".{}.old-{}",
            self.final_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            std::process::id()
        ));
        let had_old = self.final_path.exists();
        if had_old {
            fs::rename(&self.final_path, &old)
                .map_err(|e| Error::io(&self.final_path, "move the previous output aside", e))?;
        }
        if let Err(e) = fs::rename(&self.staging, &self.final_path) {
            if had_old {
                let _ = fs::rename(&old, &self.final_path);
            }
            return Err(Error::io(
                &self.final_path,
                "move the new output into place",
                e,
            ));
        }
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        self.committed = true;
        Ok(())
    }
}

/// Removes the staging and set-aside folders (`.<name>.staging-PID`, `.<name>.old-PID`) that
/// runs killed before they could clean up left beside `<name>`: those whose process is gone.
/// (At 325k items each is hundreds of MB.)
fn remove_leftovers(parent: &Path, name: &str) {
    let Ok(rd) = fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let pid = [".staging-", ".old-"].iter().find_map(|kind| {
            file.strip_prefix(&format!(".{name}{kind}"))
                .and_then(|p| p.parse::<u32>().ok())
        });
        if let Some(pid) = pid
            && pid != std::process::id()
            && !process_alive(pid)
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without /proc, keep what may belong to a live run.
        true
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Test hook: when the environment variable `TRAINER_FAILPOINT` names this point, the process
/// aborts here, as a `kill -9` would stop it (no destructor runs, nothing is cleaned up). The
/// tests use it to show that a crash at any phase leaves the previous model intact.
pub fn failpoint(name: &str) {
    if std::env::var_os("TRAINER_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("TRAINER_FAILPOINT={name}: aborting");
        std::process::abort();
    }
}
