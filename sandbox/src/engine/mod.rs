//! The JavaScript side of the service: runs one script in a fresh QuickJS runtime and context
//! under time, memory, stack and output limits, and reports an [`Outcome`]. Nothing here knows
//! about HTTP or threads; the worker pool decides where this runs.
//!
//! The script sees the JavaScript language (without `performance`, so `Date` is its only clock),
//! `console` and the timer functions, and nothing of the host.

mod console;
mod intrinsics;
pub mod outcome;
mod serialize;
mod timers;

use std::{
    cell::{Cell, RefCell},
    ffi::CString,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rquickjs::{
    Context, Ctx, Object, Promise, Runtime, Value, context::intrinsic, function::Rest,
    promise::PromiseState, qjs,
};

pub use self::outcome::{ConsoleEntry, ErrorKind, Outcome, ScriptError};
use self::{
    console::ConsoleLog,
    intrinsics::Intrinsics,
    serialize::{Budget, Serializer},
    timers::Timers,
};

/// The language built-ins a script gets: everything QuickJS offers except `performance`.
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

/// Settings shared by every execution of one service.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Largest JavaScript stack, in bytes; deeper recursion is a `stack_overflow` error.
    pub stack_limit: usize,
    /// Caps on what an execution may send back.
    pub output: OutputLimits,
}

/// Caps on the size of an execution's answer.
#[derive(Debug, Clone)]
pub struct OutputLimits {
    /// Most console entries kept; later calls are dropped after a `truncated` marker entry.
    pub max_log_entries: usize,
    /// Most bytes of serialised console arguments kept, over all entries.
    pub max_log_bytes: usize,
    /// Largest serialised result; a larger one is an `output_limit` error.
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
    /// Most bytes the runtime may allocate.
    pub memory_limit: usize,
}

/// JavaScript source and the file name its stack traces show.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub source: Arc<str>,
}

/// Set from another thread to stop an execution at its next interrupt check.
pub type CancelFlag = Arc<AtomicBool>;

/// One script to run, with its limits.
pub struct Assignment {
    pub script: Script,
    pub limits: Limits,
    pub cancel: CancelFlag,
}

/// The runtime could not be created (the host is out of memory).
#[derive(Debug, thiserror::Error)]
#[error("could not create a JavaScript runtime: {0}")]
pub struct SetupError(#[from] rquickjs::Error);

/// Runs `script` in a fresh runtime on the current thread.
pub fn execute(
    settings: &EngineSettings,
    script: Script,
    limits: Limits,
) -> Result<Outcome, SetupError> {
    let assignment = Assignment {
        script,
        limits,
        cancel: CancelFlag::default(),
    };
    let outcome = run_in_fresh_runtime(settings, || Some(assignment))?;
    Ok(outcome.expect("the assignment is always given"))
}

/// Creates a fresh runtime and context with `console` and timers, then calls `next` (which may
/// block) for the one script this runtime will ever run. Returns `None` when `next` does.
///
/// Creating the runtime before the script is known is what keeps its cost off the request path.
pub fn run_in_fresh_runtime(
    settings: &EngineSettings,
    next: impl FnOnce() -> Option<Assignment>,
) -> Result<Option<Outcome>, SetupError> {
    let clock = Rc::new(Clock::default());
    let runtime = Runtime::new()?;
    runtime.set_max_stack_size(settings.stack_limit);
    let handler_clock = clock.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || handler_clock.expired())));
    let context = Context::custom::<Builtins>(&runtime)?;

    context.with(|ctx| {
        let intrinsics = Rc::new(Intrinsics::capture(&ctx)?);
        let console = ConsoleLog::new(intrinsics.clone(), &settings.output);
        console.install(&ctx)?;
        let timers = Rc::new(RefCell::new(Timers::default()));
        Timers::install(&timers, &ctx)?;

        let Some(assignment) = next() else {
            console.close();
            return Ok(None);
        };
        // SAFETY: the runtime outlives this call and is only used from this thread.
        unsafe {
            qjs::JS_SetMemoryLimit(
                qjs::JS_GetRuntime(ctx.as_raw().as_ptr()),
                assignment.limits.memory_limit as _,
            );
        }
        let started = Instant::now();
        clock.start(
            started + assignment.limits.timeout,
            assignment.cancel.clone(),
        );

        let execution = Execution {
            ctx: ctx.clone(),
            clock: &clock,
            limits: assignment.limits,
            settings,
            intrinsics: &intrinsics,
            timers: &timers,
        };
        let result = execution.run(&assignment.script);

        // Script values held by Rust must be released before the runtime is freed.
        timers.borrow_mut().clear();
        console.close();
        let (log, log_truncated) = console.take();
        Ok(Some(Outcome {
            result,
            log,
            log_truncated,
            duration: started.elapsed(),
        }))
    })
}

/// The deadline and the cancel flag the interrupt handler checks.
#[derive(Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    cancel: RefCell<Option<CancelFlag>>,
}

impl Clock {
    fn start(&self, deadline: Instant, cancel: CancelFlag) {
        self.deadline.set(Some(deadline));
        *self.cancel.borrow_mut() = Some(cancel);
    }

    fn expired(&self) -> bool {
        let cancelled = self
            .cancel
            .borrow()
            .as_ref()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed));
        cancelled
            || self
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn deadline(&self) -> Instant {
        self.deadline.get().unwrap_or_else(Instant::now)
    }
}

struct Execution<'a, 'js> {
    ctx: Ctx<'js>,
    clock: &'a Clock,
    limits: Limits,
    settings: &'a EngineSettings,
    intrinsics: &'a Intrinsics<'js>,
    timers: &'a RefCell<Timers<'js>>,
}

impl<'js> Execution<'_, 'js> {
    fn run(&self, script: &Script) -> Result<serde_json::Value, ScriptError> {
        let function = self
            .compile(script)
            .map_err(|exception| self.error(exception, ErrorKind::Syntax))?;
        let value = self
            .evaluate(function)
            .map_err(|exception| self.error(exception, ErrorKind::Exception))?;
        self.run_event_loop()?;
        let value = self.settle(value)?;
        self.serialize_result(&value)
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

    /// Runs promise jobs and timers until none is left, as Node does before it exits.
    fn run_event_loop(&self) -> Result<(), ScriptError> {
        loop {
            while self.ctx.execute_pending_job() {
                if self.clock.expired() {
                    return Err(self.timeout());
                }
            }
            if self.clock.expired() {
                return Err(self.timeout());
            }
            let Some(due) = self.timers.borrow().next_due() else {
                return Ok(());
            };
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due.min(self.clock.deadline()) - now);
                continue;
            }
            let timer = self.timers.borrow_mut().take_due(now);
            if let Some(timer) = timer {
                let called: rquickjs::Result<Value<'js>> = timer.callback.call((Rest(timer.args),));
                if called.is_err() {
                    return Err(self.error(self.ctx.catch(), ErrorKind::Exception));
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
            PromiseState::Rejected => {
                Err(self.error(promise_result(promise), ErrorKind::Exception))
            }
            PromiseState::Pending => Err(ScriptError::limit(
                ErrorKind::UnsettledPromise,
                "UnsettledPromiseError",
                "the script's result is a promise that never settles: no job or timer is left \
                 to settle it"
                    .to_owned(),
            )),
        }
    }

    fn serialize_result(&self, value: &Value<'js>) -> Result<serde_json::Value, ScriptError> {
        if value.is_undefined() {
            return Ok(serde_json::Value::Null);
        }
        let max = self.settings.output.max_result_bytes;
        let budget = Cell::new(max);
        let mut serializer =
            Serializer::new(self.ctx.clone(), self.intrinsics, Budget::new(&budget));
        let json = serializer.value(value).map_err(|_| self.timeout())?;
        if serializer.truncated() {
            return Err(ScriptError::limit(
                ErrorKind::OutputLimit,
                "OutputLimitError",
                format!("the result is larger than the {max} byte limit"),
            ));
        }
        Ok(json)
    }

    fn timeout(&self) -> ScriptError {
        let message = if Instant::now() < self.clock.deadline() {
            "the script was stopped before its time limit because the service is shutting down"
                .to_owned()
        } else {
            format!(
                "the script ran past its time limit of {} ms",
                self.limits.timeout.as_millis()
            )
        };
        ScriptError::limit(ErrorKind::Timeout, "TimeoutError", message)
    }

    /// Describes a thrown value; `kind` applies unless a limit explains the failure better.
    fn error(&self, exception: Value<'js>, kind: ErrorKind) -> ScriptError {
        if self.clock.expired() {
            return self.timeout();
        }
        let (name, message, stack) = match exception.as_object() {
            Some(error)
                if exception.is_error() || error.contains_key("message").unwrap_or(false) =>
            {
                (
                    self.text_property(error, "name")
                        .unwrap_or_else(|| "Error".to_owned()),
                    self.text_property(error, "message").unwrap_or_default(),
                    self.text_property(error, "stack")
                        .filter(|stack| !stack.is_empty()),
                )
            }
            _ => ("Uncaught".to_owned(), self.display(&exception), None),
        };
        // Reading the properties runs script code, which may itself hit the deadline.
        if self.clock.expired() {
            return self.timeout();
        }
        // When memory runs out while QuickJS builds the error itself, what is thrown may not be
        // an error at all; the runtime's usage tells what happened.
        let out_of_memory = !exception.is_object() && self.near_memory_limit();
        let kind = match (name.as_str(), message.as_str()) {
            _ if out_of_memory => ErrorKind::Memory,
            ("InternalError", "out of memory") => ErrorKind::Memory,
            ("RangeError", "Maximum call stack size exceeded") => ErrorKind::StackOverflow,
            ("InternalError", message) if message.starts_with("stack overflow") => {
                ErrorKind::StackOverflow
            }
            _ => kind,
        };
        let name = if out_of_memory {
            "InternalError".to_owned()
        } else {
            name
        };
        let message = match kind {
            ErrorKind::Memory => format!(
                "out of memory: the script exceeded its memory limit of {} MB",
                self.limits.memory_limit / (1024 * 1024)
            ),
            _ => message,
        };
        ScriptError {
            kind,
            name,
            message,
            stack,
        }
    }

    /// True when the runtime has allocated nearly all of its memory limit.
    fn near_memory_limit(&self) -> bool {
        let mut usage = std::mem::MaybeUninit::<qjs::JSMemoryUsage>::zeroed();
        // SAFETY: the runtime is live and only used from this thread; the function fills the
        // whole struct, which is plain integers and so valid even zeroed.
        let usage = unsafe {
            qjs::JS_ComputeMemoryUsage(
                qjs::JS_GetRuntime(self.ctx.as_raw().as_ptr()),
                usage.as_mut_ptr(),
            );
            usage.assume_init()
        };
        usage.malloc_limit > 0 && usage.malloc_size >= usage.malloc_limit / 10 * 9
    }

    fn text_property(&self, object: &Object<'js>, key: &str) -> Option<String> {
        match object.get::<_, Value<'js>>(key) {
            Ok(value) if !value.is_undefined() => Some(self.display(&value)),
            Ok(_) => None,
            Err(_) => {
                self.ctx.catch();
                None
            }
        }
    }

    /// A value as text for error messages: strings as they are, anything else as JSON.
    fn display(&self, value: &Value<'js>) -> String {
        if let Some(text) = value.as_string().and_then(|text| text.to_string().ok()) {
            return text;
        }
        let budget = Cell::new(4096);
        let mut serializer =
            Serializer::new(self.ctx.clone(), self.intrinsics, Budget::new(&budget));
        match serializer.value(value) {
            Ok(serde_json::Value::String(text)) => text,
            Ok(json) => json.to_string(),
            Err(_) => String::new(),
        }
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
