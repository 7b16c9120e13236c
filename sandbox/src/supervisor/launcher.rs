//! The thread that starts worker processes and reaps them.
//!
//! Workers are started from one long-lived thread, at normal priority, for two reasons: a
//! worker asks the kernel to kill it when its parent dies (`PR_SET_PDEATHSIG`), and "parent"
//! there means the thread that forked it, so that thread must live as long as the sandbox; and
//! forking is kept off the threads that serve requests. The same thread owns every worker's
//! process handle: it kills retired workers (SIGKILL) and reaps them, logging how each ended
//! and counting it in the metrics, and when the pool is gone it ends and reaps whatever is
//! left, so no zombie outlives the pool whatever was dropped when.
//!
//! A worker is the sandbox binary itself, started as `sandbox worker` with an empty
//! environment, standard streams on `/dev/null`, and two descriptors: its end of a Unix
//! socket pair at [`CHANNEL_FD`] and its region's memfd at [`REGION_FD`]. Every other
//! descriptor of the sandbox is close-on-exec, so nothing else is inherited.
//!
//! Memory: each worker's address space is capped (`RLIMIT_AS`) from its first instruction,
//! before it has read its set-up, and a replacement is started only once every retired worker
//! has been reaped, so that at most `MAX_CONCURRENCY` workers' address spaces exist at once
//! (README, "Memory budget"), besides the sessions' workers, each of which is charged to the
//! memory budget for the session's life.

use std::{
    collections::HashMap,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::{net::UnixStream, process::CommandExt},
    },
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    thread,
    time::Duration,
};

use contract::worker::{CHANNEL_FD, REGION_FD, Region, WORKER_ARGUMENT};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// How often retired workers that have not exited yet are checked.
const REAP_EVERY: Duration = Duration::from_millis(5);

/// Why a worker was retired, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retirement {
    /// Killed because its execution ran past the deadline plus the grace.
    Timeout,
    /// It died, or broke the protocol, while running an execution.
    Crashed,
    /// It died while idle.
    DiedIdle,
    /// It ran its share of executions, or grew past the memory bound.
    Recycled,
    /// Its execution ran out of memory or had an allocation refused: the engine's heap may be
    /// corrupt, so it runs nothing else.
    EngineFault,
    /// Its execution's TypeScript nested past the stripper's stack, whose guard it hit: it
    /// answered and exited, as nothing in it can be trusted after that.
    NestedTooDeeply,
    /// Its execution ran long enough to be moved to background priority, which an
    /// unprivileged process cannot undo.
    LongRun,
    /// It never became ready.
    FailedToStart,
    /// The pool was dropped.
    Stopped,
}

impl Retirement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Crashed => "crashed",
            Self::DiedIdle => "died_idle",
            Self::Recycled => "recycled",
            Self::EngineFault => "engine_fault",
            Self::NestedTooDeeply => "nested_too_deeply",
            Self::LongRun => "long_run",
            Self::FailedToStart => "failed_to_start",
            Self::Stopped => "stopped",
        }
    }
}

/// A started worker process, not yet set up. Its process handle stays with the launcher; the
/// pid names it in [`Launcher::retire`].
pub struct Spawned {
    pub pid: u32,
    pub channel: UnixStream,
    pub region: Region,
}

/// How to start workers.
#[derive(Debug, Clone)]
pub struct LaunchSettings {
    /// The sandbox binary.
    pub program: PathBuf,
    /// The worker's stack (`RLIMIT_STACK`), on whose main thread the engine runs.
    pub stack_bytes: u64,
    /// Bytes of console text each worker's region holds.
    pub region_capacity: usize,
}

enum Task {
    /// Start a worker whose address space (`RLIMIT_AS`) is the given bytes, set before it
    /// starts: the pool's workers' own, or a session's.
    Spawn(u64, oneshot::Sender<io::Result<Spawned>>),
    Retire(u32, Retirement),
}

/// A handle on the launcher thread; the thread ends once every handle is dropped, after
/// killing and reaping what is left.
#[derive(Clone)]
pub struct Launcher {
    commands: Sender<Task>,
}

impl Launcher {
    /// Starts the launcher thread.
    pub fn start(settings: LaunchSettings, metrics: Arc<Metrics>) -> io::Result<Self> {
        let (commands, queue) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name("worker-launcher".into())
            .spawn(move || launch_and_reap(&settings, &queue, &metrics))?;
        Ok(Self { commands })
    }

    /// Starts a worker process with `address_space_bytes` of address space.
    pub async fn spawn(&self, address_space_bytes: u64) -> io::Result<Spawned> {
        let (reply, spawned) = oneshot::channel();
        self.commands
            .send(Task::Spawn(address_space_bytes, reply))
            .map_err(|_| io::Error::other("the launcher thread is gone"))?;
        spawned
            .await
            .map_err(|_| io::Error::other("the launcher thread is gone"))?
    }

    /// Kills the worker `pid` (if it still runs) and reaps it, off the caller's thread.
    pub fn retire(&self, pid: u32, why: Retirement) {
        // Only fails when the launcher is gone, and then the process is exiting anyway.
        let _ = self.commands.send(Task::Retire(pid, why));
    }
}

fn launch_and_reap(settings: &LaunchSettings, queue: &Receiver<Task>, metrics: &Metrics) {
    let mut live: HashMap<u32, Child> = HashMap::new();
    let mut retired: Vec<(Child, Retirement)> = Vec::new();
    loop {
        let command = if retired.is_empty() {
            queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            queue.recv_timeout(REAP_EVERY)
        };
        match command {
            Ok(Task::Spawn(address_space_bytes, reply)) => {
                // The worker this one replaces is killed already; its memory is the kernel's
                // again once it has been reaped, and only then may another worker take it.
                for (mut child, why) in retired.drain(..) {
                    if let Ok(status) = child.wait() {
                        record_exit(child.id(), why, status, metrics);
                    }
                }
                let spawned = spawn(settings, address_space_bytes).map(|(child, spawned)| {
                    live.insert(spawned.pid, child);
                    spawned
                });
                // Whoever asked may have gone (the pool is stopping): then the new process
                // is this thread's to end.
                if let Err(Ok(unwanted)) = reply.send(spawned)
                    && let Some(mut child) = live.remove(&unwanted.pid)
                {
                    let _ = child.kill();
                    retired.push((child, Retirement::Stopped));
                }
            }
            Ok(Task::Retire(pid, why)) => {
                if let Some(mut child) = live.remove(&pid) {
                    // An error means it has exited already; it is reaped below either way.
                    let _ = child.kill();
                    retired.push((child, why));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let left = live.drain().map(|(_, child)| (child, Retirement::Stopped));
                for (mut child, why) in retired.drain(..).chain(left) {
                    let _ = child.kill();
                    if let Ok(status) = child.wait() {
                        record_exit(child.id(), why, status, metrics);
                    }
                }
                return;
            }
        }
        retired.retain_mut(|(child, why)| match child.try_wait() {
            Ok(Some(status)) => {
                record_exit(child.id(), *why, status, metrics);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
    }
}

fn record_exit(pid: u32, why: Retirement, status: ExitStatus, metrics: &Metrics) {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal().map(signal_name);
    metrics.worker_exited(why.as_str(), signal.unwrap_or("none"));
    match why {
        Retirement::Crashed | Retirement::DiedIdle | Retirement::FailedToStart => tracing::warn!(
            pid,
            reason = why.as_str(),
            signal,
            code = status.code(),
            "worker process died"
        ),
        _ => tracing::debug!(pid, reason = why.as_str(), signal, "worker process retired"),
    }
}

/// The name of a signal that ends processes, for logs and metric labels (a fixed set).
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGSYS => "SIGSYS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => "other",
    }
}

fn spawn(settings: &LaunchSettings, address_space_bytes: u64) -> io::Result<(Child, Spawned)> {
    let (channel, worker_end) = UnixStream::pair()?;
    let (region, region_fd) = Region::create(settings.region_capacity)?;
    let mut command = Command::new(&settings.program);
    command
        .arg(WORKER_ARGUMENT)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let inherit = Inheritance {
        parent: std::process::id() as libc::pid_t,
        channel: worker_end.as_raw_fd(),
        region: region_fd.as_raw_fd(),
        stack_bytes: settings.stack_bytes,
        address_space_bytes,
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, fcntl, dup2, getrlimit, setrlimit).
    unsafe {
        command.pre_exec(move || inherit.apply());
    }
    let child = command.spawn()?;
    drop::<(UnixStream, OwnedFd)>((worker_end, region_fd));
    let pid = child.id();
    Ok((
        child,
        Spawned {
            pid,
            channel,
            region,
        },
    ))
}

/// What the child sets up between fork and exec.
#[derive(Clone, Copy)]
struct Inheritance {
    parent: libc::pid_t,
    channel: i32,
    region: i32,
    stack_bytes: u64,
    address_space_bytes: u64,
}

impl Inheritance {
    /// # Safety
    /// Only between fork and exec, in the child.
    unsafe fn apply(self) -> io::Result<()> {
        let check = |result: libc::c_int| {
            if result < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(result)
            }
        };
        // SAFETY: async-signal-safe calls on descriptors this process owns.
        unsafe {
            // Die with the launcher thread; if the parent is already gone, do not start.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if libc::getppid() != self.parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Move both descriptors out of the way first, so that placing one cannot clobber
            // the other; dup2 leaves the copies inheritable, the originals close on exec.
            let channel = check(libc::fcntl(self.channel, libc::F_DUPFD_CLOEXEC, 10))?;
            let region = check(libc::fcntl(self.region, libc::F_DUPFD_CLOEXEC, 10))?;
            check(libc::dup2(channel, CHANNEL_FD))?;
            check(libc::dup2(region, REGION_FD))?;
            // The main thread's stack may grow to the soft limit; the hard one cannot be raised.
            let mut stack = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            check(libc::getrlimit(libc::RLIMIT_STACK, &mut stack))?;
            stack.rlim_cur = self.stack_bytes.min(stack.rlim_max);
            check(libc::setrlimit(libc::RLIMIT_STACK, &stack))?;
            let address_space = libc::rlimit {
                rlim_cur: self.address_space_bytes,
                rlim_max: self.address_space_bytes,
            };
            check(libc::setrlimit(libc::RLIMIT_AS, &address_space))?;
        }
        Ok(())
    }
}
