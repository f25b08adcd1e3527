//! Process memory: the peak resident set size per stage (what the log and `training_metadata.json`
//! report) and handing freed heap back to the OS between stages, so that one stage's peak is not
//! carried into the next.

/// Peak resident set size of this process in bytes (VmHWM), if the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peaks measured by [`mark_peak_rss`] since the last [`take_stage_peak_rss`], so that marking
/// sub-steps (SQL views) does not lose a stage's peak.
static FOLDED_PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resets the peak RSS (VmHWM) to the current RSS (Linux: `5` into `/proc/self/clear_refs`), so
/// that the next [`peak_rss_bytes`] reads the peak since now. Returns false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Starts measuring a stage: forgets earlier peaks. Returns false where the OS cannot reset the
/// peak (then every figure is the peak since the process started).
pub fn start_stage_peak_rss() -> bool {
    FOLDED_PEAK.store(0, std::sync::atomic::Ordering::Relaxed);
    reset_peak_rss()
}

/// The peak RSS since the previous mark (or stage start), and starts a new interval; the stage's
/// own peak is kept for [`take_stage_peak_rss`].
pub fn mark_peak_rss() -> Option<u64> {
    let p = peak_rss_bytes()?;
    FOLDED_PEAK.fetch_max(p, std::sync::atomic::Ordering::Relaxed);
    reset_peak_rss();
    Some(p)
}

/// The peak RSS of the stage so far (including marked intervals).
pub fn take_stage_peak_rss() -> Option<u64> {
    let p = peak_rss_bytes()?;
    Some(p.max(FOLDED_PEAK.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Sets glibc's allocator to serve every block of `MMAP_THRESHOLD` bytes or more with its own
/// mapping, for the rest of the process. glibc's default raises that threshold to the size of
/// each large block freed, so the SQL stage's Arrow buffers (many alive at once, freed in another
/// order than allocated) then come from the heap arenas, whose freed holes stay resident and
/// fragment. With a fixed threshold a freed
/// large block goes back to the OS at once, which lowers training's peak; each such block then
/// costs a mapping and fresh pages, which `trainer run` can afford but `update`'s inserts,
/// measured slower with it, do not need (docs/design.md, "Memory").
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// See [`tune_allocator`]: large enough that the many small buffers of a record batch stay on the
/// heap, small enough that the column buffers of large batches and tables do not.
pub const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Returns freed heap memory to the OS (glibc keeps freed chunks of its arenas mapped, so a
/// stage that follows a large one would otherwise be measured, and held, at the old size).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases memory glibc's allocator holds unused.
        unsafe {
            malloc_trim(0);
        }
    }
}
