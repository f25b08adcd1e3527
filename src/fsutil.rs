//! Crash-safe file output: every artifact is written to a temporary sibling and renamed into
//! place, so a failed run never leaves a half-written file where a good one was.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `value` as pretty-printed JSON with a final newline, atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    atomic_write(
        path,
        format!("{}\n", serde_json::to_string_pretty(value).unwrap()).as_bytes(),
    )
}

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

    /// Swaps the staging directory into place in one atomic step: on Linux the two directories
    /// are exchanged (`renameat2` with `RENAME_EXCHANGE`), so at every instant the final path
    /// holds either the complete previous output or the complete new one; the previous one, now
    /// under the staging name, is removed afterwards (a run killed before that leaves it to the
    /// next run's clean-up). Where the file system cannot exchange, the previous directory is
    /// moved aside and the new one renamed into place; a crash between those two renames is
    /// repaired at the next start ([`StagedDir::create`] moves the previous output back).
    pub fn commit(mut self) -> Result<()> {
        sync_dir(&self.staging);
        let parent = self
            .final_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        failpoint("swap:before");
        if self.final_path.exists() {
            match exchange(&self.staging, &self.final_path) {
                Ok(()) => {
                    sync_dir(&parent);
                    self.committed = true;
                    failpoint("swap:exchanged");
                    // The staging name now holds the previous output.
                    let _ = fs::remove_dir_all(&self.staging);
                    return Ok(());
                }
                Err(e) if exchange_unsupported(&e) => return self.commit_by_two_renames(&parent),
                Err(e) => {
                    return Err(Error::io(
                        &self.final_path,
                        "swap the new output into place",
                        e,
                    ));
                }
            }
        }
        fs::rename(&self.staging, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, "move the new output into place", e))?;
        sync_dir(&parent);
        self.committed = true;
        Ok(())
    }

    /// The swap where the file system cannot exchange two directories: the previous output is
    /// moved aside (`.<name>.old-PID`), the new one renamed into place, the previous removed.
    fn commit_by_two_renames(mut self, parent: &Path) -> Result<()> {
        let old = set_aside_path(&self.final_path, std::process::id());
        fs::rename(&self.final_path, &old)
            .map_err(|e| Error::io(&self.final_path, "move the previous output aside", e))?;
        failpoint("swap:between_renames");
        if let Err(e) = fs::rename(&self.staging, &self.final_path) {
            let _ = fs::rename(&old, &self.final_path);
            return Err(Error::io(
                &self.final_path,
                "move the new output into place",
                e,
            ));
        }
        sync_dir(parent);
        self.committed = true;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    }
}

/// `.<name>.old-<pid>` beside `final_path`: where the two-rename swap sets the previous output
/// aside.
fn set_aside_path(final_path: &Path, pid: u32) -> PathBuf {
    final_path.with_file_name(format!(
        ".{}.old-{pid}",
        final_path.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// Exchanges two paths atomically (Linux `renameat2(..., RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    const AT_FDCWD: i32 = -100;
    const RENAME_EXCHANGE: u32 = 2;
    use std::ffi::c_char;
    unsafe extern "C" {
        fn renameat2(
            olddirfd: i32,
            oldpath: *const c_char,
            newdirfd: i32,
            newpath: *const c_char,
            flags: u32,
        ) -> i32;
    }
    // Test hook: the file-system-without-exchange path, on any file system.
    if std::env::var_os("TRAINER_TEST_NO_EXCHANGE").is_some() {
        return Err(std::io::Error::from_raw_os_error(22));
    }
    let (a, b) = (
        CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?,
        CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?,
    );
    // SAFETY: both paths are NUL-terminated C strings that live across the call; the call only
    // renames.
    let rc = unsafe { renameat2(AT_FDCWD, a.as_ptr(), AT_FDCWD, b.as_ptr(), RENAME_EXCHANGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Whether `exchange` failed because the file system or kernel cannot exchange (EINVAL, ENOSYS,
/// ENOTSUP), rather than for a reason the two-rename swap would meet too.
fn exchange_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(22 | 38 | 95)) || e.kind() == std::io::ErrorKind::Unsupported
}

/// Flushes a directory's entries to disk (best effort: a file system without directory fsync
/// still renames atomically, only the durability after a power cut is weaker).
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Cleans up after runs killed before they could: removes their staging folders
/// (`.<name>.staging-PID`, which after an exchange may hold the previous output) and set-aside
/// folders (`.<name>.old-PID`) whose process is gone. A set-aside folder while `<name>` itself is
/// missing is a two-rename swap cut between its renames: it is the previous output, and it is
/// moved back instead.
fn remove_leftovers(parent: &Path, name: &str) {
    let Ok(rd) = fs::read_dir(parent) else {
        return;
    };
    let final_path = parent.join(name);
    for e in rd.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let found = [".staging-", ".old-"].iter().find_map(|kind| {
            file.strip_prefix(&format!(".{name}{kind}"))
                .and_then(|p| p.parse::<u32>().ok())
                .map(|pid| (*kind, pid))
        });
        let Some((kind, pid)) = found else { continue };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        if kind == ".old-" && !final_path.exists() && fs::rename(e.path(), &final_path).is_ok() {
            continue;
        }
        let _ = fs::remove_dir_all(e.path());
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
