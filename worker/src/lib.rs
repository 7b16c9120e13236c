//! The worker role of the sandbox binary (`sandbox worker`): one process that runs the
//! supervisor's scripts one at a time, each in a fresh runtime, and that the supervisor kills
//! and replaces whenever it must.
//!
//! Started with its channel on [`CHANNEL_FD`] and its region on [`REGION_FD`] (see
//! `contract::worker`), it reads its [`Setup`], hardens itself ([`harden`], then [`seccomp`];
//! before the filter it also maps the stack that stripping TypeScript runs on, and answers a
//! fault in that stack's guard as the job's error ([`stack_guard`])), prepares a runtime, says
//! [`Ready`], and then loops: wait for a job with the next runtime
//! already prepared, run it with console output going straight to the region (loading the
//! script's bytecode from the worker's [`BytecodeCache`] when it compiled the same script
//! before), report [`Finished`] as soon as the outcome is known (its runtime is freed after,
//! off the request's path). While a job runs, its calls of asynchronous host functions go to the
//! supervisor as [`HostCall`]s and their answers come back on the same channel
//! ([`ChannelHost`]). A session's worker ([`Setup::keep_runtime`]) runs all its jobs in its
//! first runtime instead, so each sees what the earlier ones left. It exits when the channel
//! closes. The process has one thread: the engine runs
//! on the main thread, whose stack the supervisor sized before starting it.
//!
//! Anything that goes wrong here ends the process; the supervisor reports `crashed` for a job
//! that was running, and starts another worker, except running out of memory in Rust code,
//! which the job's answer calls `memory` ([`allocator`]), and TypeScript nested past the
//! stripper's stack, which it calls `syntax` ([`stack_guard`]). When the channel closes, the worker
//! ends with `_exit`, since the usual exit path makes calls its filter does not allow.

pub mod allocator;
pub mod harden;
pub mod seccomp;
pub mod stack_guard;

use std::{
    cell::{Cell, RefCell},
    io::Write,
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    process::ExitCode,
    rc::Rc,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use contract::worker::{
    CHANNEL_FD, Finished, HostAnswer, HostCall, HostError, Job, MAX_SUPERVISOR_FRAME, Order,
    REGION_FD, Ready, Region, Report, Setup, encode, read_frame,
};
use engine::{
    Assignment, BytecodeCache, EngineSettings, HostAccess, HostChannel, HostFunctions, Limits,
    LogSink, OnFinished, Outcome, OutputLimits, Script,
};

/// Console output goes straight into the region the supervisor can read even after a kill,
/// and the supervisor is woken when it asked to be (it passes the output on as it comes).
struct RegionSink {
    region: &'static Region,
    channel: Rc<RefCell<UnixStream>>,
    /// [`Report::Logged`], encoded once.
    logged: Vec<u8>,
}

impl RegionSink {
    fn wake_supervisor(&self) {
        if !self.region.take_wake_up() {
            return;
        }
        match self.channel.try_borrow_mut() {
            // A supervisor that is gone is noticed where the worker waits for its next job.
            Ok(mut channel) => {
                let _ = channel.write_all(&self.logged);
            }
            // Never while a frame is being written (no script runs then); should it be, the
            // next entry wakes it.
            Err(_) => self.region.ask_for_wake_up(),
        }
    }
}

impl LogSink for RegionSink {
    fn append(&self, entry: &[u8]) {
        // The engine keeps within the byte cap, which is the region's size.
        self.region.append_entry(entry);
        self.wake_supervisor();
    }

    fn mark_truncated(&self) {
        self.region.mark_truncated();
        self.wake_supervisor();
    }
}

/// Runs the worker role with the operator's host functions (the same registry the supervisor
/// has: the synchronous ones run here); returns when the supervisor closes the channel.
pub fn main(host: HostFunctions) -> ExitCode {
    // A panic is a crash like any other: end at once, without printing (standard error is
    // closed and writing to it is not allowed).
    std::panic::set_hook(Box::new(|_| std::process::abort()));
    // SAFETY: the supervisor started this process with these two descriptors open and owned by
    // nothing else in it.
    let (channel, region) = unsafe {
        (
            UnixStream::from_raw_fd(CHANNEL_FD),
            OwnedFd::from_raw_fd(REGION_FD),
        )
    };
    allocator::arm();
    // Rust work the engine does for a script (stripping TypeScript) counts against its limit.
    engine::memory::register_host_heap(&allocator::WorkerHeap);
    let channel = Rc::new(RefCell::new(channel));
    let Ok(Order::Setup(setup)) = read_frame(&mut *channel.borrow_mut(), MAX_SUPERVISOR_FRAME)
    else {
        return ExitCode::FAILURE;
    };
    let Ok(region) = Region::map(region) else {
        return ExitCode::FAILURE;
    };
    // The mapping lives as long as the process.
    let region: &'static Region = Box::leak(Box::new(region));
    if harden(&setup).is_err() {
        return ExitCode::FAILURE;
    }
    let code = serve(&setup, &channel, region, &host);
    // Under the filter, the runtime's own exit path (signal stack clean-up, standard stream
    // flushing) would make calls the filter refuses: end the process directly.
    // SAFETY: _exit ends the process; nothing here needs to run first.
    unsafe { libc::_exit(code) }
}

fn harden(setup: &Setup) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let filter = seccomp::compile(CHANNEL_FD, pid)?;
    harden::load_time_zone();
    let strip_guard = engine::typescript::prepare_thread();
    harden::default_fault_signals();
    stack_guard::install(strip_guard)?;
    harden::close_descriptors_except(CHANNEL_FD);
    harden::make_non_dumpable()?;
    harden::limit_resources(setup.address_space_limit)?;
    seccomp::install(&filter)?;
    Ok(())
}

/// Most bytes of compiled scripts a worker keeps ([`BytecodeCache`]). They live in the
/// worker's own heap, so they count in its resident memory, which the supervisor checks after
/// executions, and under its address-space limit, within the room the supervisor leaves beyond
/// the largest script heap (`WORKER_OVERHEAD_BYTES`); never in a script's memory limit.
const BYTECODE_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Runs jobs until the channel closes; the exit code.
fn serve(
    setup: &Setup,
    channel: &Rc<RefCell<UnixStream>>,
    region: &'static Region,
    host: &HostFunctions,
) -> i32 {
    let settings = EngineSettings {
        stack_limit: setup.stack_limit as usize,
        output: OutputLimits {
            max_log_entries: setup.max_log_entries as usize,
            max_log_bytes: setup.max_log_bytes as usize,
            max_result_bytes: setup.max_result_bytes as usize,
        },
    };
    let sink: Rc<dyn LogSink> = Rc::new(RegionSink {
        region,
        channel: channel.clone(),
        logged: encode(&Report::Logged),
    });
    let bytecode = Rc::new(BytecodeCache::new(BYTECODE_CACHE_BYTES));
    let mut jobs = Jobs {
        channel,
        region,
        sink,
        host,
        bytecode,
        ready: false,
    };
    if setup.keep_runtime {
        // A session's worker: every job in the one runtime; it ends with the channel, or
        // after a job that faulted the engine (the supervisor ends the session then).
        let reported = Rc::new(Cell::new(false));
        let ran = engine::run_in_session_runtime(&settings, || {
            allocator::job_ended();
            jobs.next(&reported)
        });
        return match ran {
            Ok(_) => 0,
            Err(_) => 1,
        };
    }
    loop {
        // Set once this job's report is written, before its runtime is freed.
        let reported = Rc::new(Cell::new(false));
        let ran = engine::run_in_fresh_runtime(&settings, || jobs.next(&reported));
        match ran {
            Ok(Some(_)) if reported.get() => {}
            Ok(None) => return 0,
            _ => return 1,
        }
        allocator::job_ended();
    }
}

/// Where jobs come from and what each is given.
struct Jobs<'a> {
    channel: &'a Rc<RefCell<UnixStream>>,
    region: &'static Region,
    sink: Rc<dyn LogSink>,
    host: &'a HostFunctions,
    bytecode: Rc<BytecodeCache>,
    /// Whether [`Report::Ready`] was sent.
    ready: bool,
}

impl Jobs<'_> {
    /// Called with a runtime prepared: says so, waits for the next job and makes it an
    /// assignment whose report sets `reported`; `None` when the channel closed or broke.
    fn next(&mut self, reported: &Rc<Cell<bool>>) -> Option<Assignment> {
        let (channel, region) = (self.channel, self.region);
        // The runtime is prepared: only now is this worker ready, or ready again.
        if !self.ready {
            let report = Report::Ready(Ready {
                timed_interrupts: engine::timed_interrupts(),
            });
            channel.borrow_mut().write_all(&encode(&report)).ok()?;
            self.ready = true;
        }
        // The supervisor prefers an idle worker whose runtime is prepared; it clears the flag
        // when it hands this one a job.
        region.prepared_flag().store(true, Ordering::Release);
        // Blocks in the kernel until the supervisor writes: an idle worker burns no CPU.
        let job = loop {
            match read_frame(&mut *channel.borrow_mut(), MAX_SUPERVISOR_FRAME) {
                Ok(Order::Run(job)) => break job,
                // The answer of a call the last job no longer waited for (an aborted
                // fetch): the supervisor sent it before it read that job's end.
                Ok(Order::Answer(_)) => continue,
                _ => return None,
            }
        };
        region.clear_log();
        allocator::job_started();
        let host = HostAccess {
            functions: self.host.clone(),
            grant: job.host.clone(),
            channel: Some(Rc::new(ChannelHost(channel.clone()))),
        };
        // The report goes out as soon as the outcome is known; the runtime is freed after.
        reported.set(false);
        let (channel, reported) = (channel.clone(), reported.clone());
        let report = Box::new(move |outcome: &mut Outcome| {
            let written = channel.borrow_mut().write_all(&encode(&finished(outcome)));
            reported.set(written.is_ok());
        });
        Some(assignment(
            job,
            region,
            self.sink.clone(),
            host,
            self.bytecode.clone(),
            report,
        ))
    }
}

/// The report of a finished execution; its result is taken out of `outcome`.
fn finished(outcome: &mut Outcome) -> Report {
    Report::Finished(Finished {
        duration_micros: outcome.duration.as_micros() as u64,
        memory_peak: outcome.memory_peak as u64,
        engine_fault: outcome.engine_fault,
        bytecode_cache_hit: outcome.bytecode_cache_hit,
        result: std::mem::replace(&mut outcome.result, Ok(String::new())),
    })
}

fn assignment(
    job: Job,
    region: &'static Region,
    log: Rc<dyn LogSink>,
    host: HostAccess,
    bytecode: Rc<BytecodeCache>,
    report: OnFinished,
) -> Assignment {
    Assignment {
        script: Script {
            name: job.script_name,
            source: Arc::from(job.source),
            language: job.language,
            input: job.input.map(Arc::from),
        },
        limits: Limits {
            timeout: job.timeout,
            memory_limit: job.memory_limit as usize,
        },
        cancel: region.cancel_flag(),
        log,
        host,
        bytecode: Some(bytecode),
        finished: Some(report),
    }
}

/// Asynchronous host calls over the channel to the supervisor.
struct ChannelHost(Rc<RefCell<UnixStream>>);

impl HostChannel for ChannelHost {
    fn send(&self, call: HostCall) -> Result<(), HostError> {
        self.0
            .borrow_mut()
            .write_all(&encode(&Report::Call(call)))
            .map_err(|_| HostError::new("the host function could not be called"))
    }

    fn wait(&self, until: Instant) -> Option<HostAnswer> {
        let timeout = until.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: CHANNEL_FD,
            events: libc::POLLIN,
            revents: 0,
        };
        let timespec = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: one valid pollfd and a valid timeout; no signal mask.
        let ready = unsafe { libc::ppoll(&mut poll, 1, &timespec, std::ptr::null()) };
        if ready <= 0 {
            return None;
        }
        match read_frame(&mut *self.0.borrow_mut(), MAX_SUPERVISOR_FRAME) {
            Ok(Order::Answer(answer)) => Some(answer),
            // The supervisor sends nothing else while a job runs, and a closed channel means it
            // is gone: either way this worker is done.
            _ => std::process::abort(),
        }
    }
}
