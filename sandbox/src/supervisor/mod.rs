//! The supervisor: `MAX_CONCURRENCY` worker processes, each running one execution at a time
//! with its next runtime already prepared, and everything that bounds them.
//!
//! - **The deadline cannot fail.** Each execution is watched by one task that waits for the
//!   worker's answer or for the deadline plus [`PoolSettings::kill_grace`], whichever comes
//!   first. Only that task reads the worker's channel, so "finished" and "killed" are decided
//!   in one place: if the answer has not been read when the time is up, the worker is killed
//!   (SIGKILL) and never read again, the client gets `timeout` at once, and a replacement is
//!   started off every request's path.
//! - **Console output survives a kill.** The worker writes it to its region as it goes; the
//!   answer carries what was published before the kill.
//! - **A crash costs one execution.** A worker that dies (a signal, an abort, a broken frame)
//!   fails only the execution it was running, as `crashed`, and is replaced.
//! - **No job after an engine fault.** A worker whose execution answered `memory`, had an
//!   allocation refused or an internal error of the engine (even one the script caught), or
//!   ran out of memory in its own code (it reports so and exits) is retired, never handed
//!   another job: QuickJS's out-of-memory paths may leave its heap corrupt. Its replacement starts in the background, like every
//!   other, while the next request takes an idle worker.
//! - **Short executions first.** An execution that has run [`BACKGROUND_AFTER`] while other
//!   executions were handed to workers beside it is moved to background priority (nice
//!   [`BACKGROUND_NICE`]): the kernel then gives its core to the short executions, the ingress
//!   and the supervisor first, so a flood of endless loops takes only the CPU that others leave.
//!   Alone, it keeps normal priority. Its worker is retired afterwards (an unprivileged process
//!   cannot raise a priority again): one worker start per long execution that had company.
//! - **Memory over time.** A worker is replaced after [`PoolSettings::max_executions`]
//!   executions, or when its resident memory, as the kernel reports it, passes
//!   [`PoolSettings::max_resident_bytes`].
//! - **A batch's items go where their script is compiled, if that worker is ready.** Every job
//!   takes an idle worker whose next runtime is prepared where there is one; among those, an
//!   item of a batch takes the one that ran an item of the same script last, so its bytecode
//!   cache has the script ([`WorkerPool::run_batch_item`]), and other jobs one that ran no
//!   batch's items (see `take_worker`).
//! - **Clients that leave** get their execution cancelled (through the region's flag), so
//!   their worker is free again within a millisecond or so; one that does not stop by the
//!   kill grace is killed, as at its deadline.
//! - **Streams cost only their own.** An execution whose client asked for a stream has its
//!   console output handed on as it is published (`feed.rs`), by the same watching task, which
//!   never waits for the client; other executions are not looked at until they end.
//! - **Host calls run here.** A script's call of an asynchronous host function (`fetch`, or
//!   an operator's) arrives as a `Call` on the channel; the watching task checks it against
//!   the job's grant and runs the function beside the watch, and answers on the channel. The
//!   calls end with the execution: at its deadline, unanswered calls are dropped.
//!
//! - **Sessions have workers of their own** ([`session`]), started by the same launcher with
//!   the same hardening, never in the pool; their executions are watched by the same watch.
//!
//! Workers are started and reaped by the [`launcher`] thread.

mod answer;
mod feed;
mod launcher;
mod session;
mod worker;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use contract::{
    capabilities::Capabilities,
    outcome::ErrorKind,
    worker::{HostAnswer, HostCall, HostError, Job, LogSnapshot, Order, Report, Setup, encode},
};
use engine::{CallContext, HostFunctions, Json, Usage, host::MAX_HOST_JSON_BYTES};
use service_kit::telemetry::traces;
use tokio::{
    sync::{Notify, oneshot},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::{
    answer::Answer,
    feed::LogEntries,
    session::{SessionAnswer, SessionEnd, SessionWorker},
    worker::ScriptKey,
};
use self::{
    answer::{checked, failed, nested_too_deeply},
    feed::LogFeed,
    launcher::{LaunchSettings, Launcher, Retirement},
    worker::Worker,
};
use crate::{metrics::Metrics, scheduler::Permit};

/// Attempts at handing one job to a worker that turns out to have died while idle.
const DELIVERY_ATTEMPTS: usize = 3;
/// Longest pause between attempts to start a worker after failures.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// Bytes a report may carry beyond the result budget (the error's kind, durations, framing).
pub(crate) const REPORT_OVERHEAD: usize = 64 * 1024;
/// How long an execution runs at normal priority, while others are being served beside it,
/// before it is moved to the background; checked again at every such interval.
pub(crate) const BACKGROUND_AFTER: Duration = Duration::from_millis(500);
/// The nice value of a worker in the background: its weight is a tenth of a normal process's.
const BACKGROUND_NICE: i32 = 10;
/// Executions between two reads of a worker's resident memory, whatever the worker says about
/// its heap.
const CHECK_RESIDENT_EVERY: u64 = 16;

/// How workers are run.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Worker processes, each running one execution at a time.
    pub workers: usize,
    /// The sandbox binary, started as `sandbox worker`.
    pub program: PathBuf,
    /// How long past its deadline an execution may take to answer before its worker is killed.
    pub kill_grace: Duration,
    /// What every worker is told at start-up.
    pub setup: Setup,
    /// The worker's stack (`RLIMIT_STACK`), on whose main thread the engine runs.
    pub stack_bytes: u64,
    /// Executions a worker runs before it is replaced.
    pub max_executions: u64,
    /// Resident memory past which a worker is replaced after its execution.
    pub max_resident_bytes: u64,
}

impl PoolSettings {
    /// The address space (`RLIMIT_AS`) of a worker for `memory_limit` bytes of heap: that, its
    /// stack, and [`crate::config::WORKER_OVERHEAD_BYTES`], as for the pool's workers.
    pub fn session_address_space(&self, memory_limit: u64) -> u64 {
        memory_limit + self.stack_bytes + crate::config::WORKER_OVERHEAD_BYTES
    }
}

/// Why the pool gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No worker could be started in time.
    #[error("no worker is available: workers could not be started")]
    NoWorker,
    /// The supervising task went away (the service is stopping).
    #[error("the execution was abandoned while the service stopped")]
    Stopped,
}

/// The workers; cheap to clone. They stop once every clone is dropped.
#[derive(Clone)]
pub struct WorkerPool {
    shared: Arc<Shared>,
}

struct Shared {
    settings: PoolSettings,
    /// The host functions; the asynchronous ones run here.
    host: HostFunctions,
    launcher: Launcher,
    idle: Mutex<Vec<Worker>>,
    idle_changed: Notify,
    /// Workers that exist or are being started.
    alive: AtomicUsize,
    /// Jobs handed to workers so far: a long execution sees from it whether others ran beside.
    deliveries: AtomicU64,
    /// Consecutive failures to start a worker.
    start_failures: AtomicUsize,
    /// Process ids of the workers that exist now.
    pids: Mutex<std::collections::BTreeSet<u32>>,
    stopping: CancellationToken,
    metrics: Arc<Metrics>,
}

impl WorkerPool {
    /// Starts the workers and waits until all are ready; fails when none can be started.
    pub async fn start(
        settings: PoolSettings,
        host: HostFunctions,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let launcher = Launcher::start(
            LaunchSettings {
                program: settings.program.clone(),
                stack_bytes: settings.stack_bytes,
                region_capacity: settings.setup.max_log_bytes as usize,
            },
            metrics.clone(),
        )?;
        let shared = Arc::new(Shared {
            settings,
            host,
            launcher,
            idle: Mutex::new(Vec::new()),
            idle_changed: Notify::new(),
            alive: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            start_failures: AtomicUsize::new(0),
            pids: Mutex::new(std::collections::BTreeSet::new()),
            stopping: CancellationToken::new(),
            metrics,
        });
        let mut first = None;
        for _ in 0..shared.settings.workers {
            match shared.start_worker().await {
                Ok(worker) => shared.make_idle(worker),
                Err(error) => {
                    first.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first {
            if shared.idle.lock().expect("idle list").is_empty() {
                return Err(std::io::Error::other(error.to_string()));
            }
            tracing::error!(%error, "some workers could not be started; retrying in the background");
            let missing = shared.settings.workers - shared.alive.load(Ordering::Relaxed);
            for _ in 0..missing {
                shared.clone().replace();
            }
        }
        Ok(Self { shared })
    }

    /// Runs `job` under `permit`, answering by its deadline plus the kill grace whatever the
    /// worker does. The permit is released when the worker is free again (or replaced), not
    /// when the caller stops waiting, so a client that hangs up cannot make more scripts run
    /// at once; its execution is cancelled instead.
    pub async fn run(&self, job: Job, caller: Caller, permit: Permit) -> Result<Answer, PoolError> {
        self.run_on(job, caller, permit, None).await
    }

    /// Runs one item of a batch as [`WorkerPool::run`] runs a job, on the prepared idle worker
    /// that last ran an item of the script `script` if there is one: its bytecode cache holds
    /// the script, so the batch's script is compiled once per worker it uses.
    pub async fn run_batch_item(
        &self,
        job: Job,
        caller: Caller,
        permit: Permit,
        script: ScriptKey,
    ) -> Result<Answer, PoolError> {
        self.run_on(job, caller, permit, Some(script)).await
    }

    async fn run_on(
        &self,
        job: Job,
        caller: Caller,
        permit: Permit,
        script: Option<ScriptKey>,
    ) -> Result<Answer, PoolError> {
        let (reply, answer) = oneshot::channel();
        let shared = self.shared.clone();
        let span = execution_span(&caller);
        tokio::spawn(
            async move {
                let mut reply = reply;
                let answer = shared
                    .supervise(job, caller, permit, script, None, &mut reply)
                    .await;
                let _ = reply.send(answer);
            }
            .instrument(span),
        );
        answer.await.unwrap_or(Err(PoolError::Stopped))
    }

    /// Like [`WorkerPool::run`], for a client that streams: returns once a worker has the job,
    /// with its console entries as they are published (see [`LogEntries`]) and the answer to
    /// come, which arrives after the last entry. Dropping the [`Execution`] cancels it.
    pub async fn run_streaming(
        &self,
        job: Job,
        caller: Caller,
        permit: Permit,
    ) -> Result<(LogEntries, Execution), PoolError> {
        let (reply, answer) = oneshot::channel();
        let (stream, started) = Stream::new();
        let shared = self.shared.clone();
        let span = execution_span(&caller);
        tokio::spawn(
            async move {
                let mut reply = reply;
                let answer = shared
                    .supervise(job, caller, permit, None, Some(stream), &mut reply)
                    .await;
                let _ = reply.send(answer);
            }
            .instrument(span),
        );
        started.begun(answer).await
    }

    /// The process ids of the workers that exist now.
    pub fn pids(&self) -> Vec<u32> {
        self.shared
            .pids
            .lock()
            .expect("pids")
            .iter()
            .copied()
            .collect()
    }

    /// Workers that exist or are being started.
    pub fn alive(&self) -> usize {
        self.shared.alive.load(Ordering::Relaxed)
    }

    /// False while no worker exists and none could be started: the platform should restart
    /// the service. Scripts cannot cause this; they only cost their own worker.
    pub fn healthy(&self) -> bool {
        self.alive() > 0 && self.shared.start_failures.load(Ordering::Relaxed) < 3
    }

    /// Asks every running execution to stop (they answer `timeout` at their next interrupt
    /// check, or their worker is killed after the grace); used when a shutdown's drain time
    /// is up.
    pub fn cancel_all(&self) {
        self.shared.stopping.cancel();
    }
}

/// A started execution whose client streams: its answer (for a session's execution, with
/// whether it ended the session), once it has finished. Dropping it cancels the execution, as
/// a client that leaves a plain request does.
pub struct Execution<T = Answer> {
    answer: oneshot::Receiver<Result<T, PoolError>>,
}

impl<T> Execution<T> {
    /// The answer, after every console entry was handed on.
    pub async fn answer(self) -> Result<T, PoolError> {
        self.answer.await.unwrap_or(Err(PoolError::Stopped))
    }
}

/// What the watching task of a streaming execution holds: where its entries go, and whom to
/// tell that a worker has the job.
struct Stream {
    feed: LogFeed,
    started: oneshot::Sender<()>,
}

impl Stream {
    /// A stream for the watching task, and the caller's end of it.
    fn new() -> (Self, Started) {
        let (started, delivered) = oneshot::channel();
        let (feed, entries) = LogFeed::channel();
        (Self { feed, started }, Started { delivered, entries })
    }

    /// Tells the caller that a worker has the job; the feed, unless the caller has left.
    fn begin(self) -> Option<LogFeed> {
        // A client that left meanwhile is noticed by the watch, which cancels the job.
        self.started.send(()).ok().map(|()| self.feed)
    }
}

/// The caller's end of a [`Stream`] before the stream begins.
struct Started {
    delivered: oneshot::Receiver<()>,
    entries: LogEntries,
}

impl Started {
    /// Waits until a worker has the job: its entries and the answer to come; or the error
    /// that says why no worker took it.
    async fn begun<T>(
        self,
        answer: oneshot::Receiver<Result<T, PoolError>>,
    ) -> Result<(LogEntries, Execution<T>), PoolError> {
        if self.delivered.await.is_ok() {
            return Ok((self.entries, Execution { answer }));
        }
        Err(match answer.await {
            Ok(Err(error)) => error,
            Ok(Ok(_)) | Err(_) => PoolError::Stopped,
        })
    }
}

/// Who an execution runs for, as its host calls see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: Arc<str>,
    pub capabilities: Arc<Capabilities>,
}

/// The host calls of one execution in flight.
struct Calls {
    caller: Caller,
    /// Names the job was granted.
    granted: Vec<String>,
    max_calls: u32,
    made: u32,
    deadline: Instant,
    usage: Arc<Usage>,
    running: JoinSet<HostAnswer>,
}

impl Calls {
    /// None made yet, of at most `max_calls` to the `granted` functions, until `deadline`.
    fn new(caller: Caller, granted: Vec<String>, max_calls: u32, deadline: Instant) -> Calls {
        Calls {
            caller,
            granted,
            max_calls,
            made: 0,
            deadline,
            usage: Arc::new(Usage::default()),
            running: JoinSet::new(),
        }
    }
}

/// How an execution's watch ended.
enum Ended {
    Report(Result<Report, contract::worker::FrameError>),
    Deadline,
}

impl Shared {
    async fn start_worker(&self) -> Result<Worker, worker::StartError> {
        self.alive.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match Worker::start(&self.launcher, &self.settings.setup).await {
            Ok((worker, ready)) => {
                self.metrics.worker_started(started.elapsed());
                if let Some(pid) = worker.pid() {
                    self.pids.lock().expect("pids").insert(pid);
                }
                self.start_failures.store(0, Ordering::Relaxed);
                if !ready.timed_interrupts {
                    tracing::warn!(
                        "the engine cannot pace its interrupt checks by time in this build; \
                         slow loops are stopped by the kill grace"
                    );
                }
                Ok(worker)
            }
            Err(error) => {
                self.alive.fetch_sub(1, Ordering::Relaxed);
                self.start_failures.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    fn make_idle(&self, worker: Worker) {
        self.idle.lock().expect("idle list").push(worker);
        self.idle_changed.notify_one();
    }

    /// Waits for an idle worker, chosen by [`take_worker`]: for a batch item, the one that last
    /// ran an item of `script`; else one whose next runtime is prepared where there is one. A
    /// permit holder finds one at once unless one is being replaced, which takes milliseconds;
    /// if none comes, workers cannot be started.
    async fn take_idle(&self, script: Option<ScriptKey>) -> Result<Worker, PoolError> {
        let wait = async {
            loop {
                let notified = self.idle_changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(worker) = take_worker(&mut self.idle.lock().expect("idle list"), script)
                {
                    return worker;
                }
                notified.await;
            }
        };
        tokio::time::timeout(worker::STARTUP_TIMEOUT, wait)
            .await
            .map_err(|_| PoolError::NoWorker)
    }

    /// Retires `worker` and starts its replacement in the background.
    fn retire(self: &Arc<Self>, worker: Worker, why: Retirement) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
        if let Some(pid) = worker.pid() {
            self.pids.lock().expect("pids").remove(&pid);
        }
        worker.retire(why);
        self.clone().replace();
    }

    /// Starts one worker in the background, retrying with backoff until it succeeds or the
    /// pool stops.
    fn replace(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            while !self.stopping.is_cancelled() {
                match self.start_worker().await {
                    Ok(worker) => return self.make_idle(worker),
                    Err(error) => {
                        tracing::error!(%error, "could not start a replacement worker");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
                    }
                }
            }
        });
    }

    /// Runs one job on a worker and watches it to the end.
    async fn supervise(
        self: &Arc<Self>,
        job: Job,
        caller: Caller,
        permit: Permit,
        script: Option<ScriptKey>,
        stream: Option<Stream>,
        reply: &mut oneshot::Sender<Result<Answer, PoolError>>,
    ) -> Result<Answer, PoolError> {
        let timeout = job.timeout;
        let memory_limit = job.memory_limit;
        let granted = job.host.functions.clone();
        let max_calls = job.host.max_calls;
        let frame = encode(&Order::Run(job));
        let handoff = traces::span(|| {
            tracing::info_span!("worker_handoff", worker.pid = tracing::field::Empty)
        });
        let mut worker = self
            .hand_off(&frame, script)
            .instrument(handoff.clone())
            .await?;
        if let Some(pid) = worker.pid() {
            handoff.record("worker.pid", pid);
        }
        drop(handoff);
        let delivered = Instant::now();
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let mut feed = stream.and_then(Stream::begin);
        if let Some(feed) = &mut feed {
            feed.look_and_ask_again(&worker.region);
        }
        // No polling for the answer here: a task spinning in the runtime (and the runtime
        // threads it wakes by yielding) took the CPU the worker needed, and under load cost
        // more throughput and latency than a wake-up does.
        let mut calls = Calls::new(caller, granted, max_calls, delivered + timeout);
        let ended = self
            .watch(&mut worker, timeout, reply, &mut calls, &mut feed, true)
            .await;
        // Calls still running are abandoned with the execution.
        calls.running.abort_all();
        let log = worker.region.snapshot();
        // The last entries go before the answer: the feed's channel closes here.
        if let Some(feed) = feed {
            feed.finish(&log);
        }
        self.conclude(
            worker,
            (ended, log),
            timeout,
            memory_limit,
            delivered,
            permit,
        )
    }

    /// Hands the job's `frame` to an idle worker (the one that ran `script` last, if any),
    /// trying another when a worker turns out to have died idle.
    async fn hand_off(
        self: &Arc<Self>,
        frame: &[u8],
        script: Option<ScriptKey>,
    ) -> Result<Worker, PoolError> {
        let mut attempts = 0;
        loop {
            let mut worker = self.take_idle(script).await?;
            if script.is_some() {
                worker.last_batch_script = script;
            }
            worker.region.ready_for_job();
            match worker.send(frame).await {
                Ok(()) => return Ok(worker),
                Err(_) if attempts + 1 < DELIVERY_ATTEMPTS => {
                    attempts += 1;
                    self.retire(worker, Retirement::DiedIdle);
                }
                Err(_) => {
                    self.retire(worker, Retirement::DiedIdle);
                    return Err(PoolError::NoWorker);
                }
            }
        }
    }

    /// Waits for `worker`'s report until the deadline plus the kill grace, running its host
    /// calls meanwhile, handing on its console entries when it streams, and cancelling the
    /// execution when the service stops or its client leaves: a cancelled execution that has
    /// not stopped within the kill grace is killed. With `demote`, a long execution with
    /// company is moved to the background (a session's worker, which outlives the execution,
    /// never is).
    #[allow(clippy::too_many_arguments)]
    async fn watch<T>(
        &self,
        worker: &mut Worker,
        timeout: Duration,
        reply: &mut oneshot::Sender<T>,
        calls: &mut Calls,
        feed: &mut Option<LogFeed>,
        demote: bool,
    ) -> Ended {
        // A report is a result, or a host call's arguments (bounded by the engine).
        let max_frame = (self.settings.setup.max_result_bytes as usize).max(MAX_HOST_JSON_BYTES)
            + REPORT_OVERHEAD;
        let deadline = tokio::time::sleep(timeout + self.settings.kill_grace);
        tokio::pin!(deadline);
        let mut background = tokio::time::interval_at(
            tokio::time::Instant::now() + BACKGROUND_AFTER,
            BACKGROUND_AFTER,
        );
        let mut deliveries = self.deliveries.load(Ordering::Relaxed);
        let mut cancelled = false;
        loop {
            tokio::select! {
                biased;
                report = worker.report(max_frame) => match report {
                    Ok(Report::Logged) => {
                        // Only sent when asked, which only a stream does; from a worker that
                        // sends it anyway, it costs it its own time.
                        if let Some(feed) = feed {
                            feed.look_and_ask_again(&worker.region);
                        }
                    }
                    Ok(Report::Call(call)) => {
                        if let Err(answer) = self.start_call(call, calls) {
                            let frame = encode(&Order::Answer(answer));
                            let sent = tokio::time::timeout_at(deadline.deadline(), worker.send(&frame));
                            if !matches!(sent.await, Ok(Ok(()))) {
                                return Ended::Deadline;
                            }
                        }
                    }
                    other => return Ended::Report(other),
                },
                Some(done) = calls.running.join_next(), if !calls.running.is_empty() => {
                    let Ok(answer) = done else { continue };
                    let frame = encode(&Order::Answer(answer));
                    // A worker that does not read its answers is killed at the deadline.
                    let sent = tokio::time::timeout_at(deadline.deadline(), worker.send(&frame));
                    if !matches!(sent.await, Ok(Ok(()))) {
                        return Ended::Deadline;
                    }
                }
                () = &mut deadline => return Ended::Deadline,
                _ = background.tick(), if demote && !worker.in_background => {
                    let now = self.deliveries.load(Ordering::Relaxed);
                    if now != deliveries {
                        worker.send_to_background(BACKGROUND_NICE);
                    }
                    deliveries = now;
                }
                () = self.stopping.cancelled(), if !cancelled => {
                    cancelled = true;
                    self.cancel(worker, deadline.as_mut());
                }
                () = reply.closed(), if !cancelled => {
                    cancelled = true;
                    self.cancel(worker, deadline.as_mut());
                }
            }
        }
    }

    /// Asks `worker`'s execution to stop at its next interrupt check, and brings its kill
    /// forward to the grace from now if that is sooner than its deadline's.
    fn cancel(&self, worker: &Worker, deadline: std::pin::Pin<&mut tokio::time::Sleep>) {
        worker.region.cancel_flag().store(true, Ordering::Release);
        let grace = tokio::time::Instant::now() + self.settings.kill_grace;
        if grace < deadline.deadline() {
            deadline.reset(grace);
        }
    }

    /// Checks a worker's host call against the job's grant and starts it beside the watch; a
    /// call that cannot run is answered at once with the error. A worker sends only what its
    /// script may call, but the worker runs attackers' code: nothing it says is trusted.
    fn start_call(&self, call: HostCall, calls: &mut Calls) -> Result<(), HostAnswer> {
        let refuse = |message: String| HostAnswer {
            id: call.id,
            result: Err(HostError::new(message)),
        };
        if !calls.granted.contains(&call.name) || !self.host.is_async(&call.name) {
            return Err(refuse(format!(
                "{} is not a host function of this execution",
                call.name
            )));
        }
        if calls.made >= calls.max_calls {
            return Err(refuse(format!(
                "{}: this execution made its {} host function calls, the most it may make",
                call.name, calls.max_calls
            )));
        }
        calls.made += 1;
        let Ok(arguments) = serde_json::from_str::<Vec<Json>>(&call.arguments) else {
            return Err(refuse(format!(
                "{}: the arguments are not a JSON array",
                call.name
            )));
        };
        let context = CallContext {
            tenant: calls.caller.tenant.clone(),
            capabilities: calls.caller.capabilities.clone(),
            deadline: calls.deadline,
            usage: calls.usage.clone(),
        };
        let Some(future) = self.host.call_async(&call.name, arguments, context) else {
            return Err(refuse(format!(
                "{} is not an asynchronous host function",
                call.name
            )));
        };
        let metrics = self.metrics.clone();
        // Under the execution's span; `fetch` adds the origin it asked (never path or query).
        let span = traces::span(|| {
            tracing::info_span!(
                "host_call",
                host.function = %call.name,
                url.origin = tracing::field::Empty,
                http.request.method = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            )
        });
        // No deadline of its own: the call is dropped when the execution ends (at its deadline
        // at the latest), so a call still running then ends the execution as a `timeout` rather
        // than answering an error the script could catch a moment before its own deadline.
        calls.running.spawn(async move {
            let started = Instant::now();
            let result = future.instrument(span.clone()).await;
            if result.is_err() {
                span.record("otel.status_code", "error");
            }
            let result = result.and_then(|value| {
                let json = serde_json::to_string(&value).expect("JSON values serialise");
                if json.len() > MAX_HOST_JSON_BYTES {
                    return Err(HostError::named(
                        "RangeError",
                        format!(
                            "{}: the result is larger than {MAX_HOST_JSON_BYTES} bytes of JSON",
                            call.name
                        ),
                    ));
                }
                Ok(json)
            });
            metrics.host_call(&call.name, result.is_ok(), started.elapsed());
            HostAnswer {
                id: call.id,
                result,
            }
        });
        Ok(())
    }

    /// Turns how the watch ended, with the console output published by then, into the answer,
    /// and returns the worker to the idle list or retires it; the permit is released last.
    fn conclude(
        self: &Arc<Self>,
        mut worker: Worker,
        (ended, log): (Ended, LogSnapshot),
        timeout: Duration,
        memory_limit: u64,
        delivered: Instant,
        permit: Permit,
    ) -> Result<Answer, PoolError> {
        let answer = match ended {
            Ended::Report(Ok(Report::Finished(finished))) => {
                let memory_peak = finished.memory_peak;
                let heavy = memory_peak > self.settings.max_resident_bytes / 2;
                let engine_fault = finished.engine_fault;
                if let Some(hit) = finished.bytecode_cache_hit {
                    self.metrics.bytecode_cache(hit);
                }
                match checked(finished, log) {
                    Ok(answer) => {
                        worker.executions += 1;
                        if traces::enabled() {
                            let span = tracing::Span::current();
                            span.record("memory.peak_bytes", memory_peak);
                            span.record("worker.pid", worker.pid());
                            span.record("worker.executions", worker.executions);
                        }
                        let out_of_memory = matches!(
                            &answer.result,
                            Err(error) if error.kind == ErrorKind::Memory
                        );
                        if engine_fault || out_of_memory {
                            self.retire(worker, Retirement::EngineFault);
                        } else {
                            self.put_back(worker, heavy);
                        }
                        answer
                    }
                    Err(log) => {
                        tracing::warn!(
                            pid = worker.pid(),
                            "worker sent malformed JSON; replacing it"
                        );
                        self.crashed(worker, log, delivered)
                    }
                }
            }
            Ended::Report(Ok(Report::OutOfMemory)) => {
                self.retire(worker, Retirement::EngineFault);
                failed(
                    ErrorKind::Memory,
                    format!(
                        "out of memory: the script exceeded its memory limit of {} MB",
                        memory_limit / (1024 * 1024)
                    ),
                    log,
                    delivered.elapsed(),
                )
            }
            Ended::Report(Ok(Report::NestedTooDeeply)) => {
                self.retire(worker, Retirement::NestedTooDeeply);
                nested_too_deeply(log, delivered)
            }
            Ended::Report(Ok(Report::Ready(_) | Report::Call(_) | Report::Logged) | Err(_)) => {
                self.crashed(worker, log, delivered)
            }
            Ended::Deadline => {
                self.retire(worker, Retirement::Timeout);
                self.killed_at_deadline(timeout, log, delivered)
            }
        };
        // The worker is back (or being replaced) before the slot is given to the next request.
        drop(permit);
        record_outcome(&answer);
        Ok(answer)
    }

    /// The answer for an execution whose worker died or broke the protocol; the worker is
    /// replaced.
    /// The answer of an execution whose worker was killed at its deadline (`timeout` and the
    /// kill grace after `delivered`), or when the service's shutdown cancelled it.
    fn killed_at_deadline(
        &self,
        timeout: Duration,
        log: LogSnapshot,
        delivered: Instant,
    ) -> Answer {
        let message = if self.stopping.is_cancelled() {
            "the script was stopped because the service is shutting down".to_owned()
        } else {
            format!(
                "the script ran past its time limit of {} ms and did not stop; its worker was \
                 killed",
                timeout.as_millis()
            )
        };
        failed(ErrorKind::Timeout, message, log, delivered.elapsed())
    }

    fn crashed(self: &Arc<Self>, worker: Worker, log: LogSnapshot, delivered: Instant) -> Answer {
        self.retire(worker, Retirement::Crashed);
        failed(
            ErrorKind::Crashed,
            "the worker process running the script crashed; only this execution was lost and \
             the worker has been replaced"
                .to_owned(),
            log,
            delivered.elapsed(),
        )
    }

    /// Returns a worker to the idle list, or replaces it when it ran in the background, has
    /// run its share or holds too much memory. Resident memory is read after an execution that used a lot of heap,
    /// and every [`CHECK_RESIDENT_EVERY`] executions in any case.
    fn put_back(self: &Arc<Self>, worker: Worker, used_much: bool) {
        let settings = &self.settings;
        if worker.in_background {
            self.retire(worker, Retirement::LongRun);
            return;
        }
        let worn = worker.executions >= settings.max_executions;
        let check = used_much || worker.executions.is_multiple_of(CHECK_RESIDENT_EVERY);
        let heavy = check
            && worker
                .resident_bytes()
                .is_some_and(|bytes| bytes > settings.max_resident_bytes);
        if worn || heavy {
            self.retire(worker, Retirement::Recycled);
        } else {
            self.make_idle(worker);
        }
    }
}

/// Takes the idle worker a job runs on. Preparation comes first, then a batch item's affinity,
/// then keeping the batches' workers to them:
///
/// 1. for a batch item, a prepared worker that last ran an item of its `script`: its bytecode
///    cache holds the script;
/// 2. else a prepared worker that has run no batch's items, so that other jobs leave the
///    batches' workers (and their caches) to them while they can;
/// 3. else any prepared worker;
/// 4. else, for a batch item, the unprepared worker that last ran its script (the one returned
///    last);
/// 5. else the one returned first, the nearest to being prepared.
///
/// Among prepared workers the one returned last is taken (its caches are the warmest). An
/// unprepared one is avoided, even by a batch item whose script it has compiled, because the
/// worker that just answered is still freeing its runtime and preparing the next (most of a
/// worker's CPU per execution, and more after a script that built a large heap): a job sent to
/// it waits for both while another worker sits ready. A batch whose items all went back to the
/// worker that ran the last one ran that work in series with its items, where a loop of
/// requests, taking whichever worker was ready, ran it beside them; a compile on another worker
/// costs less, and is paid once per worker the batch uses.
fn take_worker(idle: &mut Vec<Worker>, script: Option<ScriptKey>) -> Option<Worker> {
    let prepared = |worker: &Worker| worker.region.prepared_flag().load(Ordering::Acquire);
    let has_script = |worker: &Worker| script.is_some() && worker.last_batch_script == script;
    let chosen = idle
        .iter()
        .rposition(|worker| has_script(worker) && prepared(worker))
        .or_else(|| {
            idle.iter()
                .rposition(|worker| prepared(worker) && worker.last_batch_script.is_none())
        })
        .or_else(|| idle.iter().rposition(prepared))
        .or_else(|| idle.iter().rposition(has_script))
        .or((!idle.is_empty()).then_some(0));
    chosen.map(|at| idle.remove(at))
}

/// Records `answer`'s outcome kind and `executionTime` (ms) on the current (execution) span.
fn record_outcome(answer: &Answer) {
    if traces::enabled() {
        let span = tracing::Span::current();
        span.record("outcome", answer.kind());
        span.record("executionTime", answer.duration.as_secs_f64() * 1000.0);
    }
}

/// The span of one execution, from its hand-off to a worker to its answer, with what an
/// operator slices by: the tenant, the outcome kind, `executionTime` (ms), the worker's memory
/// peak, its pid and how many executions it has run. None when traces are not exported.
fn execution_span(caller: &Caller) -> tracing::Span {
    traces::span(|| {
        tracing::info_span!(
            "execution",
            tenant.id = &*caller.tenant,
            outcome = tracing::field::Empty,
            executionTime = tracing::field::Empty,
            memory.peak_bytes = tracing::field::Empty,
            worker.pid = tracing::field::Empty,
            worker.executions = tracing::field::Empty,
        )
    })
}
