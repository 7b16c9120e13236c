//! The JavaScript engine of the service: runs one script in a fresh QuickJS runtime and context
//! under time, memory, stack and output limits, and reports an [`Outcome`]. It knows nothing of
//! HTTP or processes; the worker decides where this runs and where the output goes.
//!
//! The script sees the JavaScript language, `console`, the timer functions and the standard,
//! host-free Web APIs ([`web`]: encoding, URLs, structured cloning, random values, abort
//! signals, and a `performance.now()` coarsened to 100 µs), and of the host only the functions
//! an operator exposes and the execution is granted ([`host`], which `fetch` is built on).
//!
//! - Time: QuickJS's interrupt handler stops the script at its deadline; the handler checks the
//!   clock about once a millisecond even when the script calls slow built-ins
//!   ([`context_fields`]). A built-in that never polls is the caller's to stop, by killing the
//!   process.
//! - Memory: the runtime's allocator enforces the limit and records that it did ([`memory`]).
//! - Output: everything that leaves the runtime is written as JSON within a byte budget
//!   ([`json`], [`serialize`], [`console`]); console entries go to a [`LogSink`] as they are
//!   made, so they survive whatever happens to the execution afterwards.

mod console;
pub mod context_fields;
mod fault;
pub mod host;
mod intrinsics;
pub mod json;
pub mod memory;
mod serialize;
mod timers;
mod web;

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    ffi::CString,
    mem::MaybeUninit,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rquickjs::{
    Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value, context::intrinsic,
    function::Rest, promise::PromiseState, qjs,
};

pub use contract::outcome::{ErrorKind, ScriptError};

pub use self::host::{
    CallContext, HostAccess, HostChannel, HostError, HostFunctions, HostFuture, Json, Usage,
};
use self::{
    console::ConsoleLog,
    context_fields::{ContextFields, QUICKJS_POLLS_PER_CHECK},
    host::HostRuntime,
    intrinsics::Intrinsics,
    json::{JsonWriter, bounded_text},
    memory::{MemoryMeter, MeteredAllocator},
    serialize::Serializer,
    timers::Timers,
    web::WebApis,
};

/// The language built-ins a script gets: everything QuickJS offers except its own `performance`,
/// whose clock is not coarsened ([`web`] installs one that is).
type Builtins = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
    intrinsic::WeakRef,
);

/// Longest wait for a host call's answer before the event loop looks at the clock and the
/// cancel flag again.
const HOST_WAIT_SLICE: Duration = Duration::from_millis(10);

/// How often the interrupt handler wants to look at the clock.
const CHECK_CLOCK_EVERY: Duration = Duration::from_millis(1);

/// Most promises rejected without a handler that are tracked at once; past this, the execution
/// fails as if one of them stayed unhandled, so host memory stays bounded.
const MAX_TRACKED_REJECTIONS: usize = 10_000;

/// Settings shared by every execution of one service.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest JavaScript stack, in bytes; deeper recursion is a `stack_overflow` error.
    pub stack_limit: usize,
    /// Caps on what an execution may send back.
    pub output: OutputLimits,
}

/// Caps on the size of an execution's answer, in bytes of JSON as sent.
#[derive(Debug, Clone)]
pub struct OutputLimits {
    /// Most console entries kept; later calls are dropped after a `truncated` marker entry.
    pub max_log_entries: usize,
    /// Most bytes the `log` array may take.
    pub max_log_bytes: usize,
    /// Largest serialised result; a larger one is an `output_limit` error. An error's name,
    /// message and stack share the same budget.
    pub max_result_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            stack_limit: 1024 * 1024,
            output: OutputLimits {
                max_log_entries: 1_000,
                max_log_bytes: 1024 * 1024,
                max_result_bytes: 1024 * 1024,
            },
        }
    }
}

/// Limits of one execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time from the start of evaluation, covering promise jobs, timers and the
    /// serialisation of the result.
    pub timeout: Duration,
    /// Most bytes the runtime may allocate, its own structures included.
    pub memory_limit: usize,
}

/// JavaScript source, the file name its stack traces show, and the JSON text of its `input`.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub source: Arc<str>,
    /// Parsed inside the execution into the global `input`, deeply frozen; `undefined` when
    /// `None`.
    pub input: Option<Arc<str>>,
}

/// Where console entries go, one JSON object at a time, as they are made. The engine keeps the
/// entry and byte caps; a sink only stores.
pub trait LogSink {
    /// Stores one entry's JSON text.
    fn append(&self, entry: &[u8]);
    /// Records that output was cut at a cap.
    fn mark_truncated(&self);
}

/// A [`LogSink`] in memory, for running the engine in-process.
#[derive(Debug, Default)]
pub struct LogBuffer {
    text: RefCell<Vec<u8>>,
    entries: Cell<usize>,
    truncated: Cell<bool>,
}

impl LogSink for LogBuffer {
    fn append(&self, entry: &[u8]) {
        let mut text = self.text.borrow_mut();
        if self.entries.get() > 0 {
            text.push(b',');
        }
        text.extend_from_slice(entry);
        self.entries.set(self.entries.get() + 1);
    }

    fn mark_truncated(&self) {
        self.truncated.set(true);
    }
}

impl LogBuffer {
    /// The `log` array as JSON text.
    pub fn json(&self) -> String {
        format!("[{}]", String::from_utf8_lossy(&self.text.borrow()))
    }

    /// Entries recorded.
    pub fn entries(&self) -> usize {
        self.entries.get()
    }

    /// True when output was cut at a cap.
    pub fn truncated(&self) -> bool {
        self.truncated.get()
    }
}

/// One script to run, with its limits, its stop flag and where its console output goes.
pub struct Assignment {
    pub script: Script,
    pub limits: Limits,
    /// Set from elsewhere to stop the execution at its next interrupt check.
    pub cancel: &'static AtomicBool,
    pub log: Rc<dyn LogSink>,
    /// The host functions the execution gets.
    pub host: HostAccess,
}

/// The end of one execution; its console output is in its [`LogSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The script's result as JSON text, or why it failed.
    pub result: Result<String, ScriptError>,
    /// Wall-clock time from the start of evaluation to the end of serialisation.
    pub duration: Duration,
    /// The most memory the runtime held at once, in bytes.
    pub memory_peak: usize,
    /// The engine faulted during the execution, whether or not the script caught the error:
    /// the allocator refused an allocation (QuickJS's out-of-memory paths may have corrupted
    /// the runtime's heap) or the engine failed internally ([`fault`]). The process should run
    /// nothing else. A native's charge that did not fit allocated nothing and does not count.
    pub engine_fault: bool,
}

impl Outcome {
    /// The outcome kind for logs and metrics: `success` or the error kind.
    pub fn kind(&self) -> &'static str {
        match &self.result {
            Ok(_) => "success",
            Err(error) => error.kind.as_str(),
        }
    }
}

/// The runtime could not be created (the host is out of memory).
#[derive(Debug, thiserror::Error)]
#[error("could not create a JavaScript runtime: {0}")]
pub struct SetupError(#[from] rquickjs::Error);

/// A flag nothing ever sets, for executions nobody will cancel.
pub static NEVER_CANCELLED: AtomicBool = AtomicBool::new(false);

/// Runs `script` in a fresh runtime on the current thread, with its console output in memory.
pub fn execute(
    settings: &EngineSettings,
    script: Script,
    limits: Limits,
) -> Result<(Outcome, Rc<LogBuffer>), SetupError> {
    execute_with_host(settings, script, limits, HostAccess::default())
}

/// As [`execute`], with host functions.
pub fn execute_with_host(
    settings: &EngineSettings,
    script: Script,
    limits: Limits,
    host: HostAccess,
) -> Result<(Outcome, Rc<LogBuffer>), SetupError> {
    let log = Rc::new(LogBuffer::default());
    let assignment = Assignment {
        script,
        limits,
        cancel: &NEVER_CANCELLED,
        log: log.clone(),
        host,
    };
    let outcome = run_in_fresh_runtime(settings, || Some(assignment))?;
    Ok((outcome.expect("the assignment is always given"), log))
}

/// True once a runtime was prepared in this process and the interrupt handler can check the
/// clock by time (see [`context_fields`]).
pub fn timed_interrupts() -> bool {
    TIMED_INTERRUPTS.load(Ordering::Relaxed)
}

static TIMED_INTERRUPTS: AtomicBool = AtomicBool::new(false);

/// Creates a fresh runtime and context with `console`, timers and the Web APIs, then calls `next` (which may
/// block) for the one script this runtime will ever run. Returns `None` when `next` does.
///
/// Creating the runtime before the script is known is what keeps its cost off the request path.
pub fn run_in_fresh_runtime(
    settings: &EngineSettings,
    next: impl FnOnce() -> Option<Assignment>,
) -> Result<Option<Outcome>, SetupError> {
    let meter = MemoryMeter::new();
    let runtime = Runtime::new_with_alloc(MeteredAllocator(meter.clone()))?;
    runtime.set_max_stack_size(settings.stack_limit);
    let context = Context::custom::<Builtins>(&runtime)?;
    let clock = Rc::new(Clock::default());
    let rejections = Rc::new(RefCell::new(Rejections::default()));

    let counter = context.with(|ctx| {
        let fields = ContextFields::get(&ctx)?;
        fields.seed_random(&ctx, fresh_seed());
        Some(fields.interrupt_counter(&ctx))
    });
    TIMED_INTERRUPTS.store(counter.is_some(), Ordering::Relaxed);
    clock.counter.set(counter);
    let handler_clock = clock.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || handler_clock.on_interrupt())));
    let tracked = rejections.clone();
    runtime.set_host_promise_rejection_tracker(Some(Box::new(
        move |ctx, promise, reason, handled| {
            tracked.borrow_mut().track(&ctx, promise, reason, handled)
        },
    )));

    let outcome = context.with(|ctx| {
        let intrinsics = Rc::new(Intrinsics::capture(&ctx)?);
        let console = ConsoleLog::new(intrinsics.clone(), &settings.output);
        console.install(&ctx)?;
        let timers = Rc::new(RefCell::new(Timers::default()));
        Timers::install(&timers, &ctx)?;
        let web = WebApis::install(&ctx, &timers)?;

        let Some(mut assignment) = next() else {
            console.close();
            return Ok(None);
        };
        let (host, fetch) = HostRuntime::install(&ctx, std::mem::take(&mut assignment.host))?;
        if let Some(fetch) = fetch {
            web.enable_fetch(fetch)?;
        }
        console.open(assignment.log.clone());
        // SAFETY: the runtime is live; the stack limit is measured from here on.
        unsafe { qjs::JS_UpdateStackTop(qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) };
        // SAFETY: the zone is the stretch of this thread's stack just above QuickJS's limit,
        // below this frame; the worker's stack is sized well beyond that limit.
        unsafe {
            meter.start(
                assignment.limits.memory_limit,
                stack_zone(settings.stack_limit),
            )
        };
        let started = Instant::now();
        web.start(started);
        clock.start(started + assignment.limits.timeout, assignment.cancel);

        let execution = Execution {
            ctx: ctx.clone(),
            clock: &clock,
            limits: assignment.limits,
            settings,
            intrinsics: &intrinsics,
            timers: &timers,
            meter: &meter,
            rejections: &rejections,
            host: &host,
        };
        let result = execution.run(&assignment.script);
        let duration = started.elapsed();
        let memory_peak = meter.peak();
        let engine_fault = meter.refused() || fault::take();

        // Script values held by Rust must be released before the runtime is freed.
        clock.stop();
        meter.stop();
        timers.borrow_mut().clear();
        host.clear();
        web.clear();
        rejections.borrow_mut().clear();
        console.close();
        Ok(Some(Outcome {
            result,
            duration,
            memory_peak,
            engine_fault,
        }))
    });
    runtime.set_host_promise_rejection_tracker(None);
    runtime.set_interrupt_handler(None);
    outcome
}

/// A seed for `Math.random` from the operating system's CSPRNG.
fn fresh_seed() -> u64 {
    getrandom::u64().expect("the operating system's CSPRNG answers")
}

/// The stretch of native stack where the script counts as being at the stack limit: the last
/// eighth of the JavaScript stack (at most 64 KiB), measured from here.
fn stack_zone(stack_limit: usize) -> std::ops::Range<usize> {
    let here = 0u8;
    let top = std::hint::black_box(&here) as *const u8 as usize;
    let margin = (stack_limit / 8).min(64 * 1024);
    let limit = top.saturating_sub(stack_limit);
    limit..limit + margin
}

/// The deadline, the cancel flag and the pace of the interrupt handler.
struct Clock {
    deadline: Cell<Option<Instant>>,
    cancel: Cell<Option<&'static AtomicBool>>,
    /// QuickJS's interrupt counter, when its place is known.
    counter: Cell<Option<*mut i32>>,
    /// Polls between two calls of the handler, and when it was last called.
    polls: Cell<i32>,
    last_check: Cell<Instant>,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            deadline: Cell::new(None),
            cancel: Cell::new(None),
            counter: Cell::new(None),
            polls: Cell::new(QUICKJS_POLLS_PER_CHECK),
            last_check: Cell::new(Instant::now()),
        }
    }
}

impl Clock {
    fn start(&self, deadline: Instant, cancel: &'static AtomicBool) {
        self.deadline.set(Some(deadline));
        self.cancel.set(Some(cancel));
        self.last_check.set(Instant::now());
        // Start by checking at the first poll: the pace then doubles while polls are quick,
        // so a script that is slow from its first loop is caught as early as a fast one.
        if let Some(counter) = self.counter.get() {
            self.polls.set(1);
            // SAFETY: see `on_interrupt`; no script is running while the clock starts.
            unsafe { counter.write(1) };
        }
    }

    fn stop(&self) {
        self.deadline.set(None);
        self.cancel.set(None);
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .get()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
    }

    fn expired(&self) -> bool {
        self.cancelled()
            || self
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn deadline(&self) -> Instant {
        self.deadline.get().unwrap_or_else(Instant::now)
    }

    /// The interrupt handler: true stops the script. When the last polls were slow, fewer polls
    /// are allowed before the next call, so that the clock is read about every
    /// [`CHECK_CLOCK_EVERY`] whatever the script does between polls.
    fn on_interrupt(&self) -> bool {
        let Some(deadline) = self.deadline.get() else {
            return false;
        };
        let now = Instant::now();
        if self.cancelled() || now >= deadline {
            return true;
        }
        if let Some(counter) = self.counter.get() {
            let elapsed = now.saturating_duration_since(self.last_check.get());
            let polls = self.polls.get();
            let next = if elapsed > CHECK_CLOCK_EVERY {
                let scaled = i128::from(polls) * CHECK_CLOCK_EVERY.as_nanos() as i128
                    / elapsed.as_nanos().max(1) as i128;
                scaled.clamp(1, i128::from(QUICKJS_POLLS_PER_CHECK)) as i32
            } else {
                polls.saturating_mul(2).min(QUICKJS_POLLS_PER_CHECK)
            };
            self.polls.set(next);
            self.last_check.set(now);
            // SAFETY: the pointer was verified for this build of QuickJS (see `context_fields`)
            // and points into the context, which lives as long as the runtime this handler is
            // installed on; QuickJS reset the counter just before calling us.
            unsafe { counter.write(next) };
        }
        false
    }
}

/// Promises rejected with no handler yet, as QuickJS's rejection tracker reports them.
#[derive(Default)]
struct Rejections {
    pending: HashMap<usize, (Persistent<Value<'static>>, Persistent<Value<'static>>)>,
    overflowed: bool,
}

impl Rejections {
    fn track<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        promise: Value<'js>,
        reason: Value<'js>,
        handled: bool,
    ) {
        // SAFETY: a promise is an object; its pointer identifies it while we keep it alive.
        let id = unsafe { qjs::JS_VALUE_GET_PTR(promise.as_raw()) } as usize;
        if handled {
            self.pending.remove(&id);
        } else if self.pending.len() < MAX_TRACKED_REJECTIONS {
            self.pending.insert(
                id,
                (
                    Persistent::save(ctx, promise),
                    Persistent::save(ctx, reason),
                ),
            );
        } else {
            self.overflowed = true;
        }
    }

    fn clear(&mut self) {
        self.pending.clear();
    }
}

/// The part of an execution that can fail.
#[derive(Clone, Copy)]
enum Phase {
    Compile,
    Run,
}

struct Execution<'a, 'js> {
    ctx: Ctx<'js>,
    clock: &'a Clock,
    limits: Limits,
    settings: &'a EngineSettings,
    intrinsics: &'a Intrinsics<'js>,
    timers: &'a RefCell<Timers<'js>>,
    meter: &'a MemoryMeter,
    rejections: &'a RefCell<Rejections>,
    host: &'a HostRuntime<'js>,
}

impl<'js> Execution<'_, 'js> {
    fn run(&self, script: &Script) -> Result<String, ScriptError> {
        self.install_input(script.input.as_deref())
            .map_err(|exception| self.error(exception, Phase::Run))?;
        let function = self
            .compile(script)
            .map_err(|exception| self.error(exception, Phase::Compile))?;
        let value = self
            .evaluate(function)
            .map_err(|exception| self.error(exception, Phase::Run))?;
        self.run_event_loop()?;
        let value = self.settle(value)?;
        self.unhandled_rejection()?;
        self.serialize_result(&value)
    }

    /// Defines the global `input`: `json` parsed and deeply frozen by the runtime's own,
    /// still untouched `JSON.parse` and `Object.freeze`, within the execution's limits. A plain
    /// global property, so a script may still declare its own `input`.
    fn install_input(&self, json: Option<&str>) -> Result<(), Value<'js>> {
        const PARSE_AND_FREEZE: &str = "(json) => { \
            const freeze = (value) => { \
                if (typeof value === 'object' && value !== null) { \
                    Object.freeze(value); \
                    for (const key of Object.keys(value)) freeze(value[key]); \
                } \
                return value; \
            }; \
            return freeze(JSON.parse(json)); \
        }";
        let value = match json {
            None => Value::new_undefined(self.ctx.clone()),
            Some(json) => {
                let parse: Function<'js> = self.catch(self.ctx.eval(PARSE_AND_FREEZE))?;
                self.catch(parse.call((json,)))?
            }
        };
        self.catch(self.ctx.globals().set("input", value))
    }

    /// The pending exception of a failed call, as a value.
    fn catch<T>(&self, result: rquickjs::Result<T>) -> Result<T, Value<'js>> {
        result.map_err(|_| self.ctx.catch())
    }

    fn compile(&self, script: &Script) -> Result<Value<'js>, Value<'js>> {
        let mut source = Vec::with_capacity(script.source.len() + 1);
        source.extend_from_slice(script.source.as_bytes());
        source.push(0);
        let name = CString::new(script.name.replace('\0', "")).unwrap_or_default();
        let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
        // SAFETY: `source` is NUL-terminated as JS_Eval requires and outlives the call; the
        // returned value is owned and handed to `Value`.
        let raw = unsafe {
            qjs::JS_Eval(
                self.ctx.as_raw().as_ptr(),
                source.as_ptr().cast(),
                script.source.len() as _,
                name.as_ptr(),
                flags,
            )
        };
        self.owned(raw)
    }

    fn evaluate(&self, function: Value<'js>) -> Result<Value<'js>, Value<'js>> {
        let ctx = self.ctx.as_raw().as_ptr();
        // SAFETY: JS_EvalFunction consumes one reference, so it gets a duplicate of ours.
        let raw = unsafe { qjs::JS_EvalFunction(ctx, qjs::JS_DupValue(ctx, function.as_raw())) };
        self.owned(raw)
    }

    fn owned(&self, raw: qjs::JSValue) -> Result<Value<'js>, Value<'js>> {
        // SAFETY: `raw` was just returned by QuickJS with a reference we own.
        if unsafe { qjs::JS_IsException(raw) } {
            Err(self.ctx.catch())
        } else {
            Ok(unsafe { Value::from_raw(self.ctx.clone(), raw) })
        }
    }

    /// Runs one pending promise job; false when none was left. A job that throws is reported.
    fn run_job(&self) -> Result<bool, Value<'js>> {
        let mut job_ctx = MaybeUninit::<*mut qjs::JSContext>::uninit();
        // SAFETY: the runtime is live; QuickJS writes the job's context on success or failure.
        let ran = unsafe {
            qjs::JS_ExecutePendingJob(
                qjs::JS_GetRuntime(self.ctx.as_raw().as_ptr()),
                job_ctx.as_mut_ptr(),
            )
        };
        if ran < 0 {
            // The runtime has one context: the exception is pending on ours.
            Err(self.ctx.catch())
        } else {
            Ok(ran > 0)
        }
    }

    /// Runs promise jobs, timers and the answers of host calls until none is left, as Node
    /// does before it exits.
    fn run_event_loop(&self) -> Result<(), ScriptError> {
        loop {
            while self
                .run_job()
                .map_err(|exception| self.error(exception, Phase::Run))?
            {
                if self.clock.expired() {
                    return Err(self.timeout());
                }
            }
            if self.clock.expired() {
                return Err(self.timeout());
            }
            let due = self.timers.borrow().next_due();
            let waiting = self.host.waiting();
            let Some(until) = due.or(waiting.then(|| self.clock.deadline())) else {
                return Ok(());
            };
            let now = Instant::now();
            let until = until.min(self.clock.deadline());
            if waiting {
                // Short waits, so that a cancelled execution stops soon.
                let until = until.min(now + HOST_WAIT_SLICE);
                let settled = self
                    .host
                    .settle_next(&self.ctx, until)
                    .map_err(|_| self.error(self.ctx.catch(), Phase::Run))?;
                if settled {
                    continue;
                }
            } else if until > now {
                std::thread::sleep(until - now);
                continue;
            }
            let timer = self.timers.borrow_mut().take_due(Instant::now());
            if let Some(timer) = timer {
                let called: rquickjs::Result<Value<'js>> = timer.callback.call((Rest(timer.args),));
                if called.is_err() {
                    return Err(self.error(self.ctx.catch(), Phase::Run));
                }
            }
        }
    }

    /// A promise result becomes what it settled to.
    fn settle(&self, value: Value<'js>) -> Result<Value<'js>, ScriptError> {
        let Some(promise) = value.as_promise() else {
            return Ok(value);
        };
        match promise.state() {
            PromiseState::Resolved => Ok(promise_result(promise)),
            PromiseState::Rejected => Err(self.error(promise_result(promise), Phase::Run)),
            PromiseState::Pending => Err(ScriptError::limit(
                ErrorKind::UnsettledPromise,
                "UnsettledPromiseError",
                "the script's result is a promise that never settles: no job or timer is left \
                 to settle it",
            )),
        }
    }

    /// Fails the execution, as Node does, when a promise was rejected and nothing handled it.
    fn unhandled_rejection(&self) -> Result<(), ScriptError> {
        let (first, overflowed) = {
            let mut rejections = self.rejections.borrow_mut();
            let first = rejections
                .pending
                .drain()
                .next()
                .map(|(_, (_, reason))| reason);
            (first, rejections.overflowed)
        };
        let reason = match first.map(|reason| reason.restore(&self.ctx)) {
            Some(Ok(reason)) => reason,
            Some(Err(_)) | None if overflowed => {
                return Err(ScriptError::limit(
                    ErrorKind::Exception,
                    "Uncaught",
                    format!(
                        "Uncaught (in promise): more than {MAX_TRACKED_REJECTIONS} promises \
                         were rejected without a handler"
                    ),
                ));
            }
            _ => return Ok(()),
        };
        let mut error = self.error(reason, Phase::Run);
        if error.kind == ErrorKind::Exception {
            error.message = bounded_text(
                &format!("Uncaught (in promise) {}", error.message),
                self.settings.output.max_result_bytes,
            );
        }
        Err(error)
    }

    fn serialize_result(&self, value: &Value<'js>) -> Result<String, ScriptError> {
        if value.is_undefined() {
            return Ok("null".to_owned());
        }
        let max = self.settings.output.max_result_bytes;
        let mut json = Vec::new();
        // The result is refused rather than cut, so no room is kept for a truncation marker:
        // a result of exactly `max` bytes is answered.
        let mut out = JsonWriter::whole(&mut json, max);
        let mut serializer = Serializer::new(self.ctx.clone(), self.intrinsics);
        serializer
            .value(&mut out, value)
            .map_err(|_| self.timeout())?;
        if out.exhausted() {
            return Err(ScriptError::limit(
                ErrorKind::OutputLimit,
                "OutputLimitError",
                format!("the result is larger than the {max} byte limit"),
            ));
        }
        Ok(String::from_utf8(json).expect("the writer writes UTF-8"))
    }

    fn timeout(&self) -> ScriptError {
        let message = if Instant::now() < self.clock.deadline() {
            "the script was stopped before its time limit because the service is shutting down \
             or the client left"
                .to_owned()
        } else {
            format!(
                "the script ran past its time limit of {} ms",
                self.limits.timeout.as_millis()
            )
        };
        ScriptError::limit(ErrorKind::Timeout, "TimeoutError", message)
    }

    /// Describes what was thrown. The kind comes from what the engine did: a refused allocation
    /// means the memory limit stopped the script, an allocation at the native stack limit with
    /// a `RangeError` means recursion did; otherwise it is the phase's kind.
    fn error(&self, exception: Value<'js>, phase: Phase) -> ScriptError {
        if self.clock.expired() || exception.is_uncatchable_error() {
            return self.timeout();
        }
        let budget = self.settings.output.max_result_bytes;
        let fields = match exception.as_object() {
            Some(error) if exception.is_error() => self.error_fields(error, budget),
            _ => {
                let mut serializer = Serializer::new(self.ctx.clone(), self.intrinsics);
                serializer
                    .text(&exception, budget)
                    .map(|text| ("Uncaught".to_owned(), text, None))
            }
        };
        // Reading the fields runs script code, which may itself hit the deadline.
        let Ok((name, message, stack)) = fields else {
            return self.timeout();
        };
        if self.clock.expired() {
            return self.timeout();
        }
        let engine_error = !exception.is_object() || name == "InternalError";
        if self.meter.limit_reached() && engine_error {
            return ScriptError {
                kind: ErrorKind::Memory,
                name: "InternalError".to_owned(),
                message: format!(
                    "out of memory: the script exceeded its memory limit of {} MB",
                    self.limits.memory_limit / (1024 * 1024)
                ),
                stack,
            };
        }
        let kind = if self.meter.reached_stack_limit() && name == "RangeError" {
            ErrorKind::StackOverflow
        } else {
            match phase {
                Phase::Compile => ErrorKind::Syntax,
                Phase::Run => ErrorKind::Exception,
            }
        };
        ScriptError {
            kind,
            name,
            message,
            stack,
        }
    }

    /// An error object's name, message and stack as text, sharing `budget` bytes of JSON.
    fn error_fields(
        &self,
        error: &Object<'js>,
        budget: usize,
    ) -> Result<(String, String, Option<String>), serialize::Interrupted<'js>> {
        let mut serializer = Serializer::new(self.ctx.clone(), self.intrinsics);
        let mut field =
            |key: &str, budget: usize| -> Result<Option<String>, serialize::Interrupted<'js>> {
                let value = match error.get::<_, Value<'js>>(key) {
                    Ok(value) if !value.is_undefined() => value,
                    Ok(_) => return Ok(None),
                    Err(_) => {
                        let thrown = self.ctx.catch();
                        if thrown.is_uncatchable_error() {
                            return Err(serialize::Interrupted(thrown));
                        }
                        return Ok(None);
                    }
                };
                serializer.text(&value, budget).map(Some)
            };
        let name = field("name", budget.min(1024))?.unwrap_or_else(|| "Error".to_owned());
        let budget = budget.saturating_sub(json::escaped_len(&name));
        let message = field("message", budget)?.unwrap_or_default();
        let budget = budget.saturating_sub(json::escaped_len(&message));
        let stack = field("stack", budget)?.filter(|stack| !stack.is_empty());
        Ok((name, message, stack))
    }
}

/// What a settled promise resolved to, or the reason it was rejected with.
fn promise_result<'js>(promise: &Promise<'js>) -> Value<'js> {
    match promise.result::<Value<'js>>() {
        Some(Ok(value)) => value,
        Some(Err(_)) => promise.ctx().catch(),
        None => Value::new_undefined(promise.ctx().clone()),
    }
}
