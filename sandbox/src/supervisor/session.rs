//! A session's worker: a process of its own, started by the same launcher and hardened exactly
//! as the pool's workers are (the same binary, set-up, seccomp filter and rlimits), but never in
//! the pool: it runs only its session's jobs, all in one runtime (`Setup::keep_runtime`), and
//! its address space is sized for the session's memory limit. Its executions are watched by the
//! pool's own watch, so deadlines, host calls, cancellation and streamed console output behave
//! as for any execution.
//!
//! What ends the session rather than one execution: a worker killed at its deadline (it did not
//! stop at the interrupt), one that crashed or broke the protocol, and an engine fault (out of
//! memory): the runtime, or the process, can no longer be trusted with the session's state. The
//! answer then says `session_lost` with the reason, and the worker is retired at once. A script
//! stopped at the interrupt by its deadline leaves the session as it was.

use std::{ops::DerefMut, sync::Arc, time::Instant};

use contract::{
    outcome::{ErrorKind, ScriptError},
    worker::{Job, Order, Report, encode},
};
use service_kit::telemetry::traces;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{
    Answer, Caller, Calls, Ended, Execution, LogEntries, PoolError, Shared, Stream, WorkerPool,
    answer::{checked, failed, nested_too_deeply},
    execution_span,
    launcher::Retirement,
    record_outcome,
    worker::Worker,
};

/// A session's worker process, idle between its session's executions.
pub struct SessionWorker {
    worker: Worker,
}

impl SessionWorker {
    /// Its resident memory as the kernel counts it: the runtime, what the session's
    /// executions left in it, and the program.
    pub fn resident_bytes(&self) -> Option<u64> {
        self.worker.resident_bytes()
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.worker.pid()
    }
}

/// A session execution's answer, and what ended the session with it, if anything did.
pub type SessionAnswer = (Answer, Option<SessionEnd>);

/// Why a session's execution ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Killed: it did not stop at its deadline.
    Killed,
    /// It crashed or broke the protocol.
    Crashed,
    /// Out of memory, or another fault of the engine.
    EngineFault,
    /// Its TypeScript ran the type stripper into its stack's guard, which ends the worker.
    NestedTooDeeply,
}

impl SessionEnd {
    /// For metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Killed => "killed",
            Self::Crashed => "crashed",
            Self::EngineFault => "engine_fault",
            Self::NestedTooDeeply => "nested_too_deeply",
        }
    }
}

impl WorkerPool {
    /// Starts a session's worker whose address space fits `memory_limit` bytes of heap, with
    /// the pool's set-up otherwise; waits until it is ready.
    pub async fn start_session_worker(
        &self,
        memory_limit: u64,
    ) -> Result<SessionWorker, PoolError> {
        let shared = &self.shared;
        let mut setup = shared.settings.setup.clone();
        setup.keep_runtime = true;
        setup.address_space_limit = shared.settings.session_address_space(memory_limit);
        let started = Instant::now();
        match Worker::start(&shared.launcher, &setup).await {
            Ok((worker, _)) => {
                shared.metrics.worker_started(started.elapsed());
                Ok(SessionWorker { worker })
            }
            Err(error) => {
                tracing::error!(%error, "could not start a session's worker");
                Err(PoolError::NoWorker)
            }
        }
    }

    /// Runs `job` on the session worker in `slot`, answering by its deadline plus the kill grace
    /// whatever the worker does. The run goes on if the caller stops waiting (the execution is
    /// cancelled, as a plain one is), and `slot` is released only when it has ended: holding it
    /// is what makes a session run one execution at a time. A run that ends the session empties
    /// `slot` and retires the worker; its answer says `session_lost`.
    pub async fn run_in_session<S>(
        &self,
        slot: S,
        job: Job,
        caller: Caller,
    ) -> Result<SessionAnswer, PoolError>
    where
        S: DerefMut<Target = Option<SessionWorker>> + Send + 'static,
    {
        let answer = self.start_in_session(slot, job, caller, None);
        answer.await.unwrap_or(Err(PoolError::Stopped))
    }

    /// Like [`WorkerPool::run_in_session`], for a client that streams: returns once the
    /// session's worker is being handed the job, with its console entries as they are
    /// published and the answer to come (see [`WorkerPool::run_streaming`]). The stream
    /// begins before the job is sent, so that a worker found dead is answered in it, as
    /// `session_lost`. Dropping the [`Execution`] cancels it.
    pub async fn run_in_session_streaming<S>(
        &self,
        slot: S,
        job: Job,
        caller: Caller,
    ) -> Result<(LogEntries, Execution<SessionAnswer>), PoolError>
    where
        S: DerefMut<Target = Option<SessionWorker>> + Send + 'static,
    {
        let (stream, started) = Stream::new();
        let answer = self.start_in_session(slot, job, caller, Some(stream));
        started.begun(answer).await
    }

    /// Starts the run of [`WorkerPool::run_in_session`] beside the caller; its answer.
    fn start_in_session<S>(
        &self,
        mut slot: S,
        job: Job,
        caller: Caller,
        stream: Option<Stream>,
    ) -> oneshot::Receiver<Result<SessionAnswer, PoolError>>
    where
        S: DerefMut<Target = Option<SessionWorker>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let shared = self.shared.clone();
        let span = execution_span(&caller);
        tokio::spawn(
            async move {
                let mut reply = reply;
                let Some(session) = slot.take() else {
                    let _ = reply.send(Err(PoolError::NoWorker));
                    return;
                };
                if traces::enabled() {
                    tracing::Span::current().record("worker.pid", session.pid());
                }
                let (answer, kept) = shared
                    .supervise_session(session, job, caller, stream, &mut reply)
                    .await;
                record_outcome(&answer.0);
                *slot = kept;
                drop(slot);
                let _ = reply.send(Ok(answer));
            }
            .instrument(span),
        );
        answer
    }
}

impl Shared {
    /// Runs one job on a session's worker and watches it to the end: the answer, and the
    /// worker when the session lives on.
    async fn supervise_session(
        self: &Arc<Self>,
        session: SessionWorker,
        job: Job,
        caller: Caller,
        stream: Option<Stream>,
        reply: &mut oneshot::Sender<Result<SessionAnswer, PoolError>>,
    ) -> (SessionAnswer, Option<SessionWorker>) {
        let SessionWorker { mut worker } = session;
        let timeout = job.timeout;
        let memory_limit = job.memory_limit;
        let calls_granted = job.host.functions.clone();
        let max_calls = job.host.max_calls;
        worker.region.ready_for_job();
        let mut feed = stream.and_then(Stream::begin);
        let delivered = Instant::now();
        if worker.send(&encode(&Order::Run(job))).await.is_err() {
            let log = worker.region.snapshot();
            let answer = failed(
                ErrorKind::Crashed,
                "the session's worker process had died".to_owned(),
                log,
                delivered.elapsed(),
            );
            worker.retire(Retirement::DiedIdle);
            return (lost(answer, SessionEnd::Crashed), None);
        }
        if let Some(feed) = &mut feed {
            feed.look_and_ask_again(&worker.region);
        }
        let mut calls = Calls::new(caller, calls_granted, max_calls, delivered + timeout);
        let ended = self
            .watch(&mut worker, timeout, reply, &mut calls, &mut feed, false)
            .await;
        calls.running.abort_all();
        let log = worker.region.snapshot();
        // The last entries go before the answer: the feed's channel closes here.
        if let Some(feed) = feed {
            feed.finish(&log);
        }
        let (answer, end) = match ended {
            Ended::Report(Ok(Report::Finished(finished))) => {
                let engine_fault = finished.engine_fault;
                if let Some(hit) = finished.bytecode_cache_hit {
                    self.metrics.bytecode_cache(hit);
                }
                match checked(finished, log) {
                    Ok(answer) => {
                        let out_of_memory = matches!(
                            &answer.result,
                            Err(error) if error.kind == ErrorKind::Memory
                        );
                        let end =
                            (engine_fault || out_of_memory).then_some(SessionEnd::EngineFault);
                        (answer, end)
                    }
                    Err(log) => (crashed(log, delivered), Some(SessionEnd::Crashed)),
                }
            }
            Ended::Report(Ok(Report::OutOfMemory)) => (
                failed(
                    ErrorKind::Memory,
                    format!(
                        "out of memory: the session exceeded its memory limit of {} MB",
                        memory_limit / (1024 * 1024)
                    ),
                    log,
                    delivered.elapsed(),
                ),
                Some(SessionEnd::EngineFault),
            ),
            Ended::Report(Ok(Report::NestedTooDeeply)) => (
                nested_too_deeply(log, delivered),
                Some(SessionEnd::NestedTooDeeply),
            ),
            Ended::Report(Ok(Report::Ready(_) | Report::Call(_) | Report::Logged) | Err(_)) => {
                (crashed(log, delivered), Some(SessionEnd::Crashed))
            }
            Ended::Deadline => (
                self.killed_at_deadline(timeout, log, delivered),
                Some(SessionEnd::Killed),
            ),
        };
        match end {
            None => ((answer, None), Some(SessionWorker { worker })),
            Some(end) => {
                worker.retire(match end {
                    SessionEnd::Killed => Retirement::Timeout,
                    SessionEnd::Crashed => Retirement::Crashed,
                    SessionEnd::EngineFault => Retirement::EngineFault,
                    SessionEnd::NestedTooDeeply => Retirement::NestedTooDeeply,
                });
                (lost(answer, end), None)
            }
        }
    }
}

/// The answer of an execution whose session ended with it: the error's kind becomes
/// `session_lost`, its name and message say why.
fn lost(mut answer: Answer, end: SessionEnd) -> SessionAnswer {
    let cause = match answer.result {
        Err(error) => error,
        Ok(_) => ScriptError::limit(
            ErrorKind::Crashed,
            "CrashError",
            "the engine faulted during the execution",
        ),
    };
    answer.result = Err(ScriptError {
        kind: ErrorKind::SessionLost,
        name: cause.name,
        message: format!(
            "{} (the session has ended: its state is gone; create a new session)",
            cause.message
        ),
        stack: cause.stack,
    });
    (answer, Some(end))
}

fn crashed(log: contract::worker::LogSnapshot, delivered: Instant) -> Answer {
    failed(
        ErrorKind::Crashed,
        "the session's worker process crashed".to_owned(),
        log,
        delivered.elapsed(),
    )
}
