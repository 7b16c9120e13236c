//! The worker's system-call allow-list. Once it is installed, the process can compute, manage
//! its own memory, read the clock, sleep, draw random numbers, talk over its channel and exit;
//! every other system call kills it (SIGSYS). There is no `open`, `socket`, `connect`,
//! `execve`, `fork`/`clone`, `ptrace`, `kill` of another process, nor any way to map memory
//! executable.
//!
//! Stripping TypeScript needs nothing more: swc only computes and allocates, and the stack it
//! runs on is an anonymous mapping made readable and writable (never executable) and unmapped
//! after; the one file it would read, the thread's stack bounds, is read before the filter.
//!
//! The list is what the worker was measured to need after hardening (the engine runs on the
//! process's only thread, which exists before the filter, so thread creation is not allowed).
//! Cloud Run's first generation runs it on gVisor: `tests/gvisor/run` (CI) runs the sandbox under
//! Debian's `runsc` and checks that the filter is installed (`Seccomp: 2`) and that executions
//! that use these calls (success, timeout, out of memory, syntax error) are answered there. That
//! is one gVisor release on one platform; the filter's default action, `KillProcess`, is one
//! gVisor applies to the calling thread, which in a single-threaded worker is the process.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("unsupported architecture {0}")]
    Architecture(&'static str),
    #[error("building the filter failed: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("installing the filter failed: {0}")]
    Install(#[from] seccompiler::Error),
}

/// The allow-list for a worker whose channel is `channel_fd`, compiled for this architecture.
pub fn compile(channel_fd: i32, pid: i32) -> Result<BpfProgram, FilterError> {
    let arch = std::env::consts::ARCH;
    let target = arch
        .try_into()
        .map_err(|_| FilterError::Architecture(arch))?;
    let filter = SeccompFilter::new(
        rules(channel_fd, pid)?,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        target,
    )?;
    let program: BpfProgram = filter.try_into()?;
    Ok(program)
}

/// Installs `program` on the calling thread (which must be the only one), after setting
/// `no_new_privs`; it cannot be removed.
pub fn install(program: &BpfProgram) -> Result<(), FilterError> {
    seccompiler::apply_filter(program)?;
    Ok(())
}

fn rules(channel_fd: i32, pid: i32) -> Result<BTreeMap<i64, Vec<SeccompRule>>, FilterError> {
    let on_channel = || -> Result<Vec<SeccompRule>, FilterError> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            channel_fd as u64,
        )?])?])
    };
    let not_executable = |prot_arg: u8| -> Result<Vec<SeccompRule>, FilterError> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            prot_arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
            0,
        )?])?])
    };
    let to_self = vec![SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        pid as u64,
    )?])?];
    let one_descriptor = vec![SeccompRule::new(vec![SeccompCondition::new(
        1,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Eq,
        1,
    )?])?];
    let always = Vec::new;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    // The channel: frames in and out, on that descriptor only.
    rules.insert(libc::SYS_read, on_channel()?);
    rules.insert(libc::SYS_recvfrom, on_channel()?);
    rules.insert(libc::SYS_write, on_channel()?);
    rules.insert(libc::SYS_sendto, on_channel()?);
    // Waiting for the answer of a host call, on one descriptor (the channel is the only one
    // open).
    rules.insert(libc::SYS_ppoll, one_descriptor);
    // Memory, never executable.
    rules.insert(libc::SYS_mmap, not_executable(2)?);
    rules.insert(libc::SYS_mprotect, not_executable(2)?);
    rules.insert(libc::SYS_munmap, always());
    rules.insert(libc::SYS_mremap, always());
    rules.insert(libc::SYS_brk, always());
    rules.insert(libc::SYS_madvise, always());
    // Time, sleeping between timers, and the locks of the C library.
    rules.insert(libc::SYS_clock_gettime, always());
    rules.insert(libc::SYS_gettimeofday, always());
    rules.insert(libc::SYS_clock_nanosleep, always());
    rules.insert(libc::SYS_nanosleep, always());
    rules.insert(libc::SYS_futex, always());
    rules.insert(libc::SYS_sched_yield, always());
    rules.insert(libc::SYS_getcpu, always());
    // Each runtime's Math.random seed.
    rules.insert(libc::SYS_getrandom, always());
    // Ending: normally, or by abort(), which signals only this process.
    rules.insert(libc::SYS_exit, always());
    rules.insert(libc::SYS_exit_group, always());
    rules.insert(libc::SYS_close, always());
    rules.insert(libc::SYS_rt_sigreturn, always());
    rules.insert(libc::SYS_rt_sigprocmask, always());
    rules.insert(libc::SYS_getpid, always());
    rules.insert(libc::SYS_gettid, always());
    rules.insert(libc::SYS_tgkill, to_self);
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `probe` in a forked child under the filter and returns how the child ended. The
    /// program is compiled before the fork; the child only installs it and makes raw calls.
    fn in_filtered_child(probe: fn() -> i32) -> libc::c_int {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let program = compile(3, parent).unwrap();
        // SAFETY: the child runs only async-signal-safe code (prctl, seccomp, raw system calls,
        // _exit) before it exits.
        unsafe {
            match libc::fork() {
                -1 => panic!("fork failed"),
                0 => {
                    // The child's pid differs from the one the filter allows tgkill on; the
                    // probes below do not signal themselves.
                    if seccompiler::apply_filter(&program).is_err() {
                        libc::_exit(100);
                    }
                    libc::_exit(probe());
                }
                child => {
                    let mut status = 0;
                    libc::waitpid(child, &mut status, 0);
                    status
                }
            }
        }
    }

    fn killed_by_sigsys(status: libc::c_int) -> bool {
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
    }

    #[test]
    fn allowed_calls_work_under_the_filter() {
        let status = in_filtered_child(|| {
            // SAFETY: plain system calls with valid arguments.
            unsafe {
                let mut now = std::mem::zeroed::<libc::timespec>();
                let mut random = [0u8; 8];
                let ok = libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) == 0
                    && libc::getrandom(random.as_mut_ptr().cast(), 8, 0) == 8
                    && libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    ) != libc::MAP_FAILED;
                if ok { 0 } else { 1 }
            }
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
    }

    #[test]
    fn opening_a_file_kills_the_worker() {
        let status = in_filtered_child(|| {
            // SAFETY: a raw call the filter must stop before it runs.
            unsafe {
                libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/etc/passwd".as_ptr(), 0) as i32
            }
        });
        assert!(killed_by_sigsys(status), "{status:#x}");
    }

    #[test]
    fn network_and_process_calls_kill_the_worker() {
        for probe in [
            (|| unsafe {
                libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) as i32
            }) as fn() -> i32,
            || unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) as i32 },
            || unsafe { libc::syscall(libc::SYS_execve, c"/bin/sh".as_ptr(), 0, 0) as i32 },
            || unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) as i32 },
            || unsafe { libc::syscall(libc::SYS_kill, 1, libc::SIGKILL) as i32 },
        ] {
            let status = in_filtered_child(probe);
            assert!(killed_by_sigsys(status), "{status:#x}");
        }
    }

    #[test]
    fn writing_anywhere_but_the_channel_kills_the_worker() {
        let status = in_filtered_child(|| {
            // SAFETY: a raw write to standard error, which the filter must stop.
            unsafe { libc::syscall(libc::SYS_write, 2, c"x".as_ptr(), 1) as i32 }
        });
        assert!(killed_by_sigsys(status), "{status:#x}");
    }

    #[test]
    fn executable_memory_kills_the_worker() {
        let status = in_filtered_child(|| {
            // SAFETY: a raw mapping request the filter must stop.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
            }
            0
        });
        assert!(killed_by_sigsys(status), "{status:#x}");
    }
}
