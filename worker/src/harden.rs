//! What a worker does to itself before any script runs, assuming the engine will one day be
//! exploited: keep no descriptor but its channel, make itself non-dumpable (no core files, no
//! ptrace by others of its user), cap its address space and what it could create with rlimits,
//! and read the time zone once so that no later date formatting needs a file. The system-call
//! filter ([`crate::seccomp`]) comes last.

use std::io;

/// Closes every descriptor but `keep`: standard input, output and error included, so nothing a
/// script could reach is open. Runs before the system-call filter, which allows neither
/// `close_range` nor reading a directory.
pub fn close_descriptors_except(keep: i32) {
    // The last argument stays at `i32::MAX`: Linux clamps a larger one, but gVisor from 2022-02
    // through release-20250120 answers EINVAL above it (fixed in release-20250127.0).
    let last = i32::MAX as u32;
    // SAFETY: closing descriptors is always safe here: nothing in this process uses the ones
    // closed (the region was mapped already and stays mapped).
    let closed = unsafe {
        let below = keep == 0 || libc::close_range(0, (keep - 1) as u32, 0) == 0;
        let above = libc::close_range(keep as u32 + 1, last, 0) == 0;
        below && above
    };
    if !closed {
        // Kernels and container runtimes without close_range: close them one by one.
        for fd in open_descriptors().filter(|fd| *fd != keep) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// The descriptors that may be open. `/proc/self/fd` lists exactly those (and the one it was
/// read with, closed again by the time they are): each close costs a system call, ~80 µs on
/// gVisor's ptrace platform, so trying every number below a 65,536 descriptor limit takes
/// seconds. Without `/proc`, every number below the descriptor limit.
fn open_descriptors() -> Box<dyn Iterator<Item = i32>> {
    let listed = std::fs::read_dir("/proc/self/fd").and_then(|entries| {
        entries
            .map(|entry| {
                Ok(entry?
                    .file_name()
                    .to_str()
                    .and_then(|name| name.parse().ok()))
            })
            .collect::<io::Result<Vec<Option<i32>>>>()
    });
    match listed {
        Ok(listed) => Box::new(listed.into_iter().flatten()),
        Err(_) => {
            // SAFETY: sysconf has no preconditions.
            let limit = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
            Box::new(0..limit.clamp(64, 1 << 20) as i32)
        }
    }
}

/// Resource limits of a worker. `RLIMIT_AS` is a backstop behind the engine's own memory
/// limit: it counts address space, not resident memory, so it is set well above the largest
/// memory limit a script can ask for.
pub fn limit_resources(address_space: u64) -> io::Result<()> {
    let limits = [
        (libc::RLIMIT_AS, address_space),
        // No descriptor can be created past the channel's.
        (libc::RLIMIT_NOFILE, 4),
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_FSIZE, 0),
        (libc::RLIMIT_NPROC, 0),
        (libc::RLIMIT_MEMLOCK, 0),
    ];
    for (resource, value) in limits {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// No core dumps, no `/proc/<pid>/mem` or ptrace for other processes of the same user.
pub fn make_non_dumpable() -> io::Result<()> {
    // SAFETY: a prctl with plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lets memory faults end the process with their own signal. The Rust runtime installs
/// handlers for SIGSEGV and SIGBUS to report stack overflows; under the system-call filter
/// they would turn every fault into SIGSYS (their `sigaction` is not allowed), hiding what
/// happened from the supervisor's log.
pub fn default_fault_signals() {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: restoring the default disposition of a signal has no preconditions.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
}

/// Loads the time zone now: the C library reads it from a file the first time a date is
/// formatted, which the filter would not allow later.
pub fn load_time_zone() {
    // SAFETY: tzset and localtime_r have no preconditions; `now` and `parts` are valid.
    unsafe {
        tzset();
        let now = libc::time(std::ptr::null_mut());
        let mut parts = std::mem::zeroed::<libc::tm>();
        libc::localtime_r(&now, &mut parts);
    }
}

unsafe extern "C" {
    /// POSIX `tzset(3)`, which the libc crate does not declare.
    fn tzset();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_lists_each_open_descriptor_and_not_every_number_below_the_limit() {
        let file = std::fs::File::open("/proc/self/status").expect("open a file");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let listed: Vec<i32> = open_descriptors().collect();
        assert!(listed.contains(&fd), "{fd} missing from {listed:?}");
        // SAFETY: sysconf has no preconditions.
        let limit = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        assert!(
            listed.len() < 256,
            "{} listed under a limit of {limit}",
            listed.len()
        );
    }
}
