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

mod builtins;
mod bytecode;
mod clock;
mod console;
pub mod context_fields;
mod execution;
mod fault;
mod globals;
pub mod host;
mod intrinsics;
pub mod json;
pub mod memory;
mod rejections;
mod runtime;
mod serialize;
mod timers;
mod typed_arrays;
pub mod typescript;
mod web;

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

pub use contract::{
    outcome::{ErrorKind, ScriptError},
    request::Language,
};

pub use self::{
    bytecode::BytecodeCache,
    host::{
        CallContext, HostAccess, HostChannel, HostError, HostFunctions, HostFuture, Json, Usage,
    },
    runtime::{
        Builtins, EagerBuiltins, run_in_fresh_runtime, run_in_session_runtime, timed_interrupts,
    },
};

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

/// A script's source and language, the file name its stack traces show, and the JSON text of
/// its `input`.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub source: Arc<str>,
    /// JavaScript, or TypeScript whose types are stripped inside the execution ([`typescript`]).
    pub language: Language,
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
    /// Where the script's bytecode is looked up and kept; `None` compiles it every time.
    pub bytecode: Option<Rc<BytecodeCache>>,
    /// Called with the outcome as soon as it is known, before the runtime is freed, so that
    /// whoever waits for it (the worker's report) need not wait for the teardown too. It may
    /// take what it needs out of the outcome; what it leaves is returned.
    pub finished: Option<OnFinished>,
}

/// What [`Assignment::finished`] calls.
pub type OnFinished = Box<dyn FnOnce(&mut Outcome)>;

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
    /// Whether the script's bytecode came from the [`BytecodeCache`] (`Some(true)`) or was
    /// compiled and offered to it (`Some(false)`); `None` without a cache or when the script
    /// was never compiled (its input failed first).
    pub bytecode_cache_hit: Option<bool>,
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
        bytecode: None,
        finished: None,
    };
    let outcome = run_in_fresh_runtime(settings, || Some(assignment))?;
    Ok((outcome.expect("the assignment is always given"), log))
}
