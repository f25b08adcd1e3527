//! Crash-safe file output: every artifact is written to a temporary sibling and renamed into
//! place, so a failed run never leaves a half-written file where a good one was.
//!
//! The model's large files (the index and the two copies of the vectors, together more than a
//! gigabyte at 325k items) are written with direct I/O where the file system allows it
//! ([`atomic_write_large_with`]): they bypass the page cache, so writing them does not have to
//! find a gigabyte of fresh page-cache memory first. On a virtual machine whose free memory is
//! handed back to the host, that allocation, not the disk, is what makes a buffered write of
//! that size slow. The files are fsynced before the rename either way, so direct I/O changes
//! the speed, not what is durable.

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
    F: FnOnce(&mut Sink) -> std::io::Result<()>,
{
    AtomicFile::create(path)?.write_with(f)
}

/// [`atomic_write_with`] for a file of hundreds of megabytes written once and front to back:
/// with direct I/O where the file system supports it (see the module documentation).
pub fn atomic_write_large_with<F>(path: &Path, f: F) -> Result<()>
where
    F: FnOnce(&mut Sink) -> std::io::Result<()>,
{
    AtomicFile::create_large(path)?.write_with(f)
}

/// A file written under a temporary sibling name and renamed into place by [`AtomicFile::commit`]
/// (after an fsync); dropped uncommitted, the temporary file is removed.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<Sink>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let tmp = tmp_sibling(path);
        let file = File::create(&tmp).map_err(|e| Error::io(path, "write the file", e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            w: Some(Sink::Buffered(BufWriter::with_capacity(1 << 20, file))),
        })
    }

    /// As [`AtomicFile::create`], written with direct I/O when the file system accepts it (and
    /// through the page cache when it does not: only the speed differs).
    pub fn create_large(path: &Path) -> Result<AtomicFile> {
        let tmp = tmp_sibling(path);
        let w = match direct::create(&tmp) {
            Ok(Some(file)) => Sink::Direct(direct::Writer::new(file)),
            Ok(None) => Sink::Buffered(BufWriter::with_capacity(
                1 << 20,
                File::create(&tmp).map_err(|e| Error::io(path, "write the file", e))?,
            )),
            Err(e) => return Err(Error::io(path, "write the file", e)),
        };
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            w: Some(w),
        })
    }

    pub fn writer(&mut self) -> &mut Sink {
        self.w.as_mut().expect("an uncommitted file has its writer")
    }

    /// Writes the whole file through `f`, then commits it.
    fn write_with(mut self, f: impl FnOnce(&mut Sink) -> std::io::Result<()>) -> Result<()> {
        f(self.writer()).map_err(|e| Error::io(&self.path, "write the file", e))?;
        self.commit()
    }

    pub fn commit(mut self) -> Result<()> {
        let w = self.w.take().expect("committed once");
        let result = (|| -> std::io::Result<()> {
            let file = w.finish()?;
            file.sync_all()?;
            fs::rename(&self.tmp, &self.path)
        })();
        result.map_err(|e| Error::io(&self.path, "write the file", e))
    }
}

/// Where an [`AtomicFile`]'s bytes go before its commit: a buffered file, or a direct-I/O one.
pub enum Sink {
    Buffered(BufWriter<File>),
    Direct(direct::Writer),
}

impl Sink {
    /// Writes out what is still buffered and returns the file.
    fn finish(self) -> std::io::Result<File> {
        match self {
            Sink::Buffered(w) => w.into_inner().map_err(|e| e.into_error()),
            Sink::Direct(w) => w.finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Buffered(w) => w.write(buf),
            Sink::Direct(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Buffered(w) => w.write_all(buf),
            Sink::Direct(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Buffered(w) => w.flush(),
            Sink::Direct(w) => w.flush(),
        }
    }
}

/// Direct I/O (`O_DIRECT`): the file's bytes go from an aligned buffer straight to the device,
/// in whole aligned blocks; the final partial block is written after direct I/O is switched off
/// for the file (`fcntl`), which Linux allows on an open file.
pub mod direct {
    use std::fs::File;
    use std::io::Write;
    use std::path::Path;

    /// Alignment of the buffer, of every write's length and of every file offset: the largest
    /// logical block size of common devices, so it satisfies any smaller one too.
    const ALIGN: usize = 4096;
    /// Bytes per write: large enough that the device, not the system calls, sets the pace.
    const CHUNK: usize = 4 << 20;

    /// Creates (truncating) `path` for direct writes; `None` when the file system refuses direct
    /// I/O (`EINVAL`, e.g. tmpfs on older kernels) or the platform has none.
    #[cfg(target_os = "linux")]
    pub fn create(path: &Path) -> std::io::Result<Option<File>> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn create(_path: &Path) -> std::io::Result<Option<File>> {
        Ok(None)
    }

    /// Collects bytes in an aligned buffer and writes it whenever it is full.
    pub struct Writer {
        file: File,
        /// `CHUNK + ALIGN` bytes, of which `[start, start + CHUNK)` is aligned.
        buf: Vec<u8>,
        start: usize,
        len: usize,
    }

    impl Writer {
        pub fn new(file: File) -> Writer {
            let buf = vec![0u8; CHUNK + ALIGN];
            let start = buf.as_ptr().align_offset(ALIGN);
            Writer {
                file,
                buf,
                start,
                len: 0,
            }
        }

        fn write_chunk(&mut self) -> std::io::Result<()> {
            let (s, n) = (self.start, self.len);
            self.file.write_all(&self.buf[s..s + n])?;
            self.len = 0;
            Ok(())
        }

        /// Writes the buffered bytes: the whole blocks directly, the rest with direct I/O off.
        pub fn finish(mut self) -> std::io::Result<File> {
            let whole = self.len / ALIGN * ALIGN;
            let rest = self.len - whole;
            if whole > 0 {
                let s = self.start;
                self.file.write_all(&self.buf[s..s + whole])?;
            }
            if rest > 0 {
                direct_off(&self.file)?;
                let s = self.start + whole;
                self.file.write_all(&self.buf[s..s + rest])?;
            }
            Ok(self.file)
        }
    }

    impl Write for Writer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            let n = data.len().min(CHUNK - self.len);
            let at = self.start + self.len;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            if self.len == CHUNK {
                self.write_chunk()?;
            }
            Ok(n)
        }

        /// Nothing to do: only whole blocks can be written before [`Writer::finish`].
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[cfg(target_os = "linux")]
    fn direct_off(file: &File) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this `File` owns and keeps open; it only reads and sets
        // the descriptor's status flags.
        let rc = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT)
            }
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn direct_off(_file: &File) -> std::io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ at every offset, so a block written twice or out of place shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn large_files_hold_exactly_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = 4 << 20;
        let probe = dir.path().join("probe");
        let direct = direct::create(&probe).unwrap().is_some();
        if !direct {
            eprintln!(
                "{} refuses direct I/O: only the buffered fallback is tested",
                dir.path().display()
            );
        }
        for (k, &n) in [
            0,
            1,
            4095,
            4096,
            4097,
            chunk - 1,
            chunk,
            chunk + 1,
            2 * chunk + 123,
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("f{k}"));
            let data = pattern(n);
            let mut file = AtomicFile::create_large(&path).unwrap();
            assert_eq!(matches!(file.writer(), Sink::Direct(_)), direct);
            // Pieces of uneven sizes, as the index and vector writers produce them.
            let mut at = 0;
            for piece in [1, 100, 5000, 333 * 4, 1 << 20].iter().cycle() {
                if at == n {
                    break;
                }
                let end = (at + piece).min(n);
                file.writer().write_all(&data[at..end]).unwrap();
                at = end;
            }
            file.writer().flush().unwrap();
            assert!(
                !path.exists(),
                "nothing at the final path before the commit"
            );
            file.commit().unwrap();
            assert_eq!(fs::read(&path).unwrap(), data, "{n} bytes");
        }
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn an_uncommitted_large_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"previous").unwrap();
        let mut file = AtomicFile::create_large(&path).unwrap();
        file.writer().write_all(&pattern(5 << 20)).unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"previous");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
