//! What the sandbox's processes hold, as the kernel counts it: resident memory of the
//! supervisor and of its workers, and the supervisor's open descriptors. Read from `/proc` at
//! scrape time for the metrics, so that operators and the load test see memory and descriptors
//! over time.

use std::fs;

/// Resident bytes of process `pid` (`self` for this one), from `/proc/<pid>/statm`.
pub fn resident_bytes(pid: &str) -> Option<u64> {
    let statm = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    Some(pages * page)
}

/// Descriptors this process has open.
pub fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count())
}
