//! Worker threads and the watchdog.
//!
//! Each worker thread creates a fresh runtime, waits for one script, runs it, throws the runtime
//! away and starts over, so runtime creation happens between requests instead of inside them.
//!
//! The watchdog does not trust the engine to stop: QuickJS checks its interrupt handler only at
//! some points, and some built-ins (a huge `JSON.stringify`, say) run long stretches without it.
//! When an execution has not answered by its deadline plus [`PoolSettings::watchdog_grace`], the
//! client gets a `timeout` answer at once, the execution is cancelled, and its thread is
//! *abandoned*: lowered to the weakest CPU priority (nice 19), replaced by a fresh worker, and left
//! to exit when the engine returns. At most [`PoolSettings::max_abandoned`] abandoned threads may
//! exist; at that point no more replacements are made and the service reports itself unhealthy
//! on `/healthz` so the platform restarts it.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::Duration,
};

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::engine::{
    self, Assignment, CancelFlag, EngineSettings, ErrorKind, Limits, Outcome, Script, ScriptError,
};
use crate::scheduler::Permit;

/// How long an idle worker keeps polling for a job before it parks.
const SPIN_BEFORE_PARKING: Duration = Duration::from_micros(500);

/// How the worker threads are run.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Worker threads kept warm, each holding one fresh runtime.
    pub workers: usize,
    /// How long past an execution's deadline the watchdog waits before answering for it.
    pub watchdog_grace: Duration,
    /// Most abandoned threads that may exist before the service declares itself unhealthy.
    pub max_abandoned: usize,
    /// What every execution runs with.
    pub engine: EngineSettings,
}

/// Why the pool gave no outcome.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the worker running the execution failed")]
    WorkerLost,
}

/// The worker threads; they exit once every clone of the pool is dropped.
#[derive(Clone)]
pub struct WorkerPool {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    settings: PoolSettings,
    queue: Receiver<Job>,
    /// Threads whose execution was abandoned and has not returned yet.
    abandoned: AtomicUsize,
    /// Worker threads that take jobs (not counting abandoned ones).
    serving: AtomicUsize,
    /// Cancelled at shutdown so that running executions stop promptly.
    stopping: CancellationToken,
    /// Executions whose callers are waiting for an answer.
    in_flight: AtomicUsize,
}

/// Counts one execution in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }

    fn alone(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 1
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Job {
    assignment: Assignment,
    reply: oneshot::Sender<Outcome>,
    claim: Arc<Claim>,
}

/// Which thread runs a job, and whether the watchdog gave up on it.
struct Claim {
    state: Mutex<ClaimState>,
}

#[derive(Default)]
struct ClaimState {
    thread: Option<libc::pid_t>,
    abandoned: bool,
    /// The scheduler's permit, held until the worker is done with the job (or the watchdog
    /// gives up on it), even when the request that asked for it has gone away.
    permit: Option<Permit>,
}

impl Claim {
    fn new(permit: Permit) -> Self {
        Self {
            state: Mutex::new(ClaimState {
                permit: Some(permit),
                ..ClaimState::default()
            }),
        }
    }

    fn abandoned(&self) -> bool {
        self.state.lock().map_or(true, |state| state.abandoned)
    }

    /// Frees the job's worker slot for the next request in turn.
    fn release(&self) {
        let permit = self
            .state
            .lock()
            .ok()
            .and_then(|mut state| state.permit.take());
        drop(permit);
    }
}

impl WorkerPool {
    /// Starts the workers.
    pub fn start(settings: PoolSettings) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        let pool = Self {
            jobs,
            shared: Arc::new(Shared {
                settings,
                queue,
                abandoned: AtomicUsize::new(0),
                serving: AtomicUsize::new(0),
                stopping: CancellationToken::new(),
                in_flight: AtomicUsize::new(0),
            }),
        };
        for _ in 0..pool.shared.settings.workers {
            pool.shared.spawn_worker()?;
        }
        Ok(pool)
    }

    /// Runs one script under `permit`, answering by its deadline plus the watchdog grace
    /// whatever the engine does. The permit is released when the worker is done, not when the
    /// caller stops waiting, so a client that hangs up cannot make more scripts run at once.
    pub async fn run(
        &self,
        script: Script,
        limits: Limits,
        permit: Permit,
    ) -> Result<Outcome, PoolError> {
        let cancel = CancelFlag::default();
        let claim = Arc::new(Claim::new(permit));
        let (reply, mut outcome) = oneshot::channel();
        let job = Job {
            assignment: Assignment {
                script,
                limits,
                cancel: cancel.clone(),
            },
            reply,
            claim: claim.clone(),
        };
        self.jobs.send(job).map_err(|_| PoolError::WorkerLost)?;

        // Short scripts answer within microseconds: when this is the only execution in flight,
        // poll for the answer a little before letting the runtime thread park, since waking a
        // parked thread costs more than that. Under load the CPU is better left to the workers.
        let in_flight = InFlight::enter(&self.shared.in_flight);
        let polling_until = std::time::Instant::now() + SPIN_BEFORE_PARKING;
        while in_flight.alone() && std::time::Instant::now() < polling_until {
            match outcome.try_recv() {
                Ok(outcome) => return Ok(outcome),
                Err(oneshot::error::TryRecvError::Closed) => return Err(PoolError::WorkerLost),
                Err(oneshot::error::TryRecvError::Empty) => tokio::task::yield_now().await,
            }
        }

        let grace = self.shared.settings.watchdog_grace;
        let watchdog = tokio::time::sleep(limits.timeout + grace);
        tokio::select! {
            outcome = &mut outcome => return outcome.map_err(|_| PoolError::WorkerLost),
            () = watchdog => {}
            () = self.shared.stopping.cancelled() => {
                cancel.store(true, Ordering::Relaxed);
                if let Ok(Ok(outcome)) = tokio::time::timeout(grace, &mut outcome).await {
                    return Ok(outcome);
                }
            }
        }
        cancel.store(true, Ordering::Relaxed);
        self.shared.abandon(&claim);
        Ok(Outcome {
            result: Err(ScriptError::limit(
                ErrorKind::Timeout,
                "TimeoutError",
                format!(
                    "the script ran past its time limit of {} ms and did not stop; its output \
                     is lost",
                    limits.timeout.as_millis()
                ),
            )),
            log: Vec::new(),
            log_truncated: false,
            duration: limits.timeout + grace,
        })
    }

    /// False once too many threads were abandoned: the platform should restart the service.
    pub fn healthy(&self) -> bool {
        self.shared.abandoned.load(Ordering::Relaxed) < self.shared.settings.max_abandoned
    }

    /// Threads abandoned by the watchdog that are still running.
    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::Relaxed)
    }

    /// Cancels every running execution (they answer `timeout` at their next interrupt check);
    /// used when a shutdown's drain time is up.
    pub fn cancel_all(&self) {
        self.shared.stopping.cancel();
    }
}

impl Shared {
    fn spawn_worker(self: &Arc<Self>) -> std::io::Result<()> {
        // The thread's own stack is far larger than the JavaScript stack limit, so QuickJS's
        // check always fires before the thread could overflow.
        let stack = self.settings.engine.stack_limit * 4 + 8 * 1024 * 1024;
        let shared = self.clone();
        self.serving.fetch_add(1, Ordering::Relaxed);
        let spawned = thread::Builder::new()
            .name("js-worker".into())
            .stack_size(stack)
            .spawn(move || shared.work());
        if let Err(error) = spawned {
            self.serving.fetch_sub(1, Ordering::Relaxed);
            return Err(error);
        }
        Ok(())
    }

    fn work(self: Arc<Self>) {
        // SAFETY: gettid has no preconditions.
        let thread_id = unsafe { libc::gettid() };
        loop {
            let mut current: Option<(oneshot::Sender<Outcome>, Arc<Claim>)> = None;
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                engine::run_in_fresh_runtime(&self.settings.engine, || {
                    let (assignment, reply, claim) = self.next_job(thread_id)?;
                    current = Some((reply, claim));
                    Some(assignment)
                })
            }));
            match ran {
                Ok(Ok(Some(outcome))) => {
                    let (reply, claim) = current.take().expect("a job was taken");
                    // Free the slot first: whoever reads the answer may count on it.
                    claim.release();
                    let _ = reply.send(outcome);
                    if claim.abandoned() {
                        self.retire();
                        return;
                    }
                }
                // The pool is shutting down.
                Ok(Ok(None)) => {
                    self.serving.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "worker could not create a runtime");
                    thread::sleep(Duration::from_millis(100));
                }
                Err(_) => {
                    tracing::error!("worker panicked; its request gets an internal error");
                    if let Some((_, claim)) = current.take()
                        && {
                            claim.release();
                            claim.abandoned()
                        }
                    {
                        self.retire();
                        return;
                    }
                }
            }
        }
    }

    /// Blocks until a job arrives that is still wanted: neither given up on by the watchdog nor
    /// left by its client.
    fn next_job(
        &self,
        thread_id: libc::pid_t,
    ) -> Option<(Assignment, oneshot::Sender<Outcome>, Arc<Claim>)> {
        loop {
            let job = self.receive()?;
            let mut state = job.claim.state.lock().ok()?;
            if state.abandoned || job.reply.is_closed() {
                let permit = state.permit.take();
                drop(state);
                drop(permit);
                continue;
            }
            state.thread = Some(thread_id);
            drop(state);
            return Some((job.assignment, job.reply, job.claim));
        }
    }

    /// Waits for a job, yielding the CPU in a loop for a short while before parking: a parked
    /// thread takes tens of microseconds to wake, more than a trivial script takes to run.
    fn receive(&self) -> Option<Job> {
        let spin_until = std::time::Instant::now() + SPIN_BEFORE_PARKING;
        loop {
            match self.queue.try_recv() {
                Ok(job) => return Some(job),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            // Under load, jobs are queued already and spinning would only take CPU from others.
            let busy = self.in_flight.load(Ordering::Relaxed) > 1;
            if busy || std::time::Instant::now() >= spin_until {
                return self.queue.recv().ok();
            }
            thread::yield_now();
        }
    }

    /// The watchdog gave up on the job: demote its thread and put a fresh worker in its place.
    fn abandon(self: &Arc<Self>, claim: &Claim) {
        let thread = {
            let Ok(mut state) = claim.state.lock() else {
                return;
            };
            state.abandoned = true;
            // The replacement worker takes over the slot.
            drop(state.permit.take());
            state.thread
        };
        let Some(thread) = thread else {
            // Still queued: no worker will run it.
            return;
        };
        // SAFETY: setpriority only reads its arguments; a thread that already exited makes it
        // fail harmlessly with ESRCH.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 19);
        }
        let abandoned = self.abandoned.fetch_add(1, Ordering::Relaxed) + 1;
        self.serving.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(
            abandoned,
            "execution did not stop at its deadline; its thread is abandoned"
        );
        if abandoned <= self.settings.max_abandoned
            && let Err(error) = self.spawn_worker()
        {
            tracing::error!(%error, "could not start a replacement worker");
        }
    }

    /// An abandoned thread's engine returned at last: it exits, topping the pool back up if the
    /// watchdog could not replace it.
    fn retire(self: &Arc<Self>) {
        let before = self.abandoned.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(
            abandoned = before - 1,
            "abandoned execution finished; its thread exits"
        );
        if self.serving.load(Ordering::Relaxed) < self.settings.workers
            && let Err(error) = self.spawn_worker()
        {
            tracing::error!(%error, "could not start a replacement worker");
        }
    }
}
