//! One script's execution in a prepared runtime: its input, compiling and evaluating it (a
//! TypeScript script is stripped to JavaScript first, within the execution's time and memory),
//! the event loop of promise jobs, timers and host answers, and turning what it produced or
//! threw into a result or a [`ScriptError`] of the right kind.

use std::{
    borrow::Cow,
    cell::{Cell, RefCell},
    ffi::CString,
    mem::MaybeUninit,
    time::{Duration, Instant},
};

use rquickjs::{Ctx, Function, Object, Promise, Value, function::Rest, promise::PromiseState, qjs};

use crate::{
    EngineSettings, ErrorKind, Language, Limits, Script, ScriptError,
    bytecode::{BytecodeCache, Compiled, Key},
    clock::Clock,
    host::HostRuntime,
    intrinsics::Intrinsics,
    json::{self, JsonWriter, bounded_text},
    memory::{self, MemoryMeter},
    rejections::{MAX_TRACKED_REJECTIONS, Rejections},
    serialize::{self, Serializer},
    timers::Timers,
    typescript,
};

/// How scripts are compiled: as global code, not modules. Part of the cache's key.
const COMPILE_FLAGS: i32 = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;

/// Longest wait for a host call's answer before the event loop looks at the clock and the
/// cancel flag again.
const HOST_WAIT_SLICE: Duration = Duration::from_millis(10);

/// The part of an execution that can fail.
#[derive(Clone, Copy)]
enum Phase {
    Compile,
    Run,
}

pub struct Execution<'a, 'js> {
    pub ctx: Ctx<'js>,
    pub clock: &'a Clock,
    pub limits: Limits,
    pub settings: &'a EngineSettings,
    pub intrinsics: &'a Intrinsics<'js>,
    pub timers: &'a RefCell<Timers<'js>>,
    pub meter: &'a MemoryMeter,
    pub rejections: &'a RefCell<Rejections>,
    pub host: &'a HostRuntime<'js>,
    /// Where the script's bytecode is looked up, if anywhere.
    pub bytecode: Option<&'a BytecodeCache>,
    /// Whether the bytecode came from the cache; set when the script is compiled or loaded.
    pub cache_hit: Cell<Option<bool>>,
    /// What this execution compiled (and stripped), for the cache once the execution ended
    /// without an engine fault.
    pub compiled: RefCell<Compiled>,
}

impl<'js> Execution<'_, 'js> {
    pub fn run(&self, script: &Script) -> Result<String, ScriptError> {
        self.install_input(script.input.as_deref())
            .map_err(|exception| self.error(exception, Phase::Run))?;
        let function = self.compile(script)?;
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

    /// The script as a function: loaded from the cache's bytecode when it holds the script's
    /// JavaScript, otherwise compiled (and its bytecode kept for the cache). A TypeScript
    /// script's bytecode is kept under its stripped JavaScript's key, so a TypeScript script
    /// and a JavaScript one of the same text never share bytecode, while TypeScript sources
    /// that strip to the same JavaScript do; a TypeScript script whose JavaScript's key the
    /// cache remembers is not stripped again.
    fn compile(&self, script: &Script) -> Result<Value<'js>, ScriptError> {
        let Some(cache) = self.bytecode else {
            return self.compile_source(script);
        };
        let key_of = |language, source: &str| {
            BytecodeCache::key(&script.name, COMPILE_FLAGS, language, source)
        };
        let (key, javascript, _charge) = match script.language {
            Language::JavaScript => {
                let key = key_of(Language::JavaScript, &script.source);
                if let Some(loaded) = self.load_cached(cache, &key) {
                    return loaded;
                }
                (key, Cow::Borrowed(&*script.source), None)
            }
            Language::TypeScript => {
                let typescript = key_of(Language::TypeScript, &script.source);
                let remembered = cache.stripped(&typescript);
                if let Some(loaded) = remembered.and_then(|key| self.load_cached(cache, &key)) {
                    return loaded;
                }
                // A script refused by the stripper was not found in the cache either.
                self.cache_hit.set(Some(false));
                let (stripped, charge) = self.strip(script)?;
                let key = key_of(Language::JavaScript, &stripped);
                self.compiled.borrow_mut().stripped = Some((typescript, key));
                // Its JavaScript, or another TypeScript source stripped to it, compiled it.
                if let Some(loaded) = self.load_cached(cache, &key) {
                    return loaded;
                }
                (key, Cow::Owned(stripped), Some(charge))
            }
        };
        self.cache_hit.set(Some(false));
        let function = self
            .compile_javascript(&script.name, &javascript)
            .map_err(|exception| self.error(exception, Phase::Compile))?;
        if let Some(bytecode) = self.write(&function) {
            self.compiled.borrow_mut().bytecode = Some((key, bytecode));
        }
        Ok(function)
    }

    /// The function of the bytecode `cache` keeps for `key`, if it keeps any.
    fn load_cached(
        &self,
        cache: &BytecodeCache,
        key: &Key,
    ) -> Option<Result<Value<'js>, ScriptError>> {
        let bytecode = cache.get(key)?;
        self.cache_hit.set(Some(true));
        Some(
            self.load(&bytecode)
                .map_err(|exception| self.error(exception, Phase::Compile)),
        )
    }

    /// Compiles the script's JavaScript, with no cache: its source, or for TypeScript the
    /// source stripped of its types.
    fn compile_source(&self, script: &Script) -> Result<Value<'js>, ScriptError> {
        let (javascript, _charge) = match script.language {
            Language::JavaScript => (Cow::Borrowed(&*script.source), None),
            Language::TypeScript => {
                let (stripped, charge) = self.strip(script)?;
                (Cow::Owned(stripped), Some(charge))
            }
        };
        self.compile_javascript(&script.name, &javascript)
            .map_err(|exception| self.error(exception, Phase::Compile))
    }

    /// A TypeScript script's JavaScript, and the charge for it held while it lives. Swc's
    /// allocations count against the memory limit as they are made (see
    /// [`memory::host_heap_limited`]), its time against the time limit, which cannot
    /// interrupt it: a script past its deadline when stripping ends has timed out.
    fn strip(&self, script: &Script) -> Result<(String, memory::Charge), ScriptError> {
        let out_of_memory = |_| self.error(self.ctx.catch(), Phase::Compile);
        let stripped = memory::host_heap_limited(&self.ctx, || typescript::strip(&script.source))
            .map_err(out_of_memory)?;
        if self.clock.expired() {
            return Err(self.timeout());
        }
        let javascript = stripped.map_err(|error| error.into_script_error(&script.name))?;
        let charge = memory::charge(&self.ctx, javascript.len()).map_err(out_of_memory)?;
        Ok((javascript, charge))
    }

    fn compile_javascript(&self, name: &str, javascript: &str) -> Result<Value<'js>, Value<'js>> {
        let mut source = Vec::with_capacity(javascript.len() + 1);
        source.extend_from_slice(javascript.as_bytes());
        source.push(0);
        let name = CString::new(name.replace('\0', "")).unwrap_or_default();
        // SAFETY: `source` is NUL-terminated as JS_Eval requires and outlives the call; the
        // returned value is owned and handed to `Value`.
        let raw = unsafe {
            qjs::JS_Eval(
                self.ctx.as_raw().as_ptr(),
                source.as_ptr().cast(),
                javascript.len() as _,
                name.as_ptr(),
                COMPILE_FLAGS,
            )
        };
        self.owned(raw)
    }

    /// The compiled function's bytecode, with its debug information (stack traces keep their
    /// lines) and source (`Function.prototype.toString` keeps working); `None` when QuickJS
    /// could not write it (out of memory), and the script then simply runs uncached.
    fn write(&self, function: &Value<'js>) -> Option<Vec<u8>> {
        let ctx = self.ctx.as_raw().as_ptr();
        let mut size = 0;
        // SAFETY: the context and function are live; the buffer QuickJS returns is copied
        // out and freed once.
        unsafe {
            let written = qjs::JS_WriteObject(
                ctx,
                &mut size,
                function.as_raw(),
                qjs::JS_WRITE_OBJ_BYTECODE as i32,
            );
            if written.is_null() {
                self.ctx.catch();
                return None;
            }
            let bytecode = std::slice::from_raw_parts(written, size as usize).to_vec();
            qjs::js_free(ctx, written.cast());
            Some(bytecode)
        }
    }

    /// Reads a function from bytecode this worker's compiler wrote.
    fn load(&self, bytecode: &[u8]) -> Result<Value<'js>, Value<'js>> {
        // SAFETY: the bytecode was written by `write` in this process, with this build of
        // QuickJS, from a script whose source hashes to the key it was found under; the
        // returned value is owned and handed to `Value`.
        let raw = unsafe {
            qjs::JS_ReadObject(
                self.ctx.as_raw().as_ptr(),
                bytecode.as_ptr(),
                bytecode.len() as _,
                qjs::JS_READ_OBJ_BYTECODE as i32,
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
