//! The script's `console`: every call becomes one log entry, written as JSON text to the
//! execution's [`LogSink`] at call time (arguments are serialised as they are then), within
//! the entry and byte caps of [`OutputLimits`]. The byte cap counts the bytes of the `log`
//! array as it will be sent, escapes included; room for the entry that says why output stopped
//! is kept from the start.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::{Instant, SystemTime},
};

use contract::api::LogType;
use rquickjs::{
    Ctx, Exception, Function, Object, Result, Value,
    function::{Opt, Rest},
    qjs,
};

use crate::{
    LogSink, OutputLimits,
    intrinsics::{Intrinsics, bounded_string},
    json::JsonWriter,
    serialize::Serializer,
};

/// Most distinct labels `console.count` and `console.time` keep, so a script cannot grow host
/// memory through them.
const MAX_LABELS: usize = 1_000;
/// Longest label kept, in UTF-16 units.
const MAX_LABEL_UNITS: usize = 200;
/// Bytes kept back for the entry that ends a cut log.
const TRUNCATION_ENTRY_ROOM: usize = 160;

/// The console of one runtime; it records only while an execution is running.
pub struct ConsoleLog<'js> {
    /// Released by [`ConsoleLog::close`] so no script value outlives the execution.
    intrinsics: RefCell<Option<Rc<Intrinsics<'js>>>>,
    sink: RefCell<Option<Rc<dyn LogSink>>>,
    max_entries: usize,
    entries: Cell<usize>,
    /// Bytes of the `log` array still free, not counting the room kept for the last entry.
    bytes_left: Cell<usize>,
    /// What `bytes_left` is when an execution starts.
    byte_budget: usize,
    truncated: Cell<bool>,
    /// False when the byte cap is too small even for the entry that ends a cut log.
    room_for_marker: bool,
    scratch: RefCell<Vec<u8>>,
    counters: RefCell<HashMap<String, u64>>,
    timers: RefCell<HashMap<String, Instant>>,
}

impl<'js> ConsoleLog<'js> {
    pub fn new(intrinsics: Rc<Intrinsics<'js>>, limits: &OutputLimits) -> Rc<Self> {
        // The array's brackets and the room for the truncation entry come off the top.
        let kept_back = 2 + TRUNCATION_ENTRY_ROOM + 1;
        let byte_budget = limits.max_log_bytes.saturating_sub(kept_back);
        Rc::new(Self {
            intrinsics: RefCell::new(Some(intrinsics)),
            sink: RefCell::new(None),
            max_entries: limits.max_log_entries,
            entries: Cell::new(0),
            bytes_left: Cell::new(byte_budget),
            byte_budget,
            truncated: Cell::new(false),
            room_for_marker: limits.max_log_bytes >= kept_back,
            scratch: RefCell::new(Vec::new()),
            counters: RefCell::new(HashMap::new()),
            timers: RefCell::new(HashMap::new()),
        })
    }

    /// Starts recording into `sink`.
    /// Starts recording one execution's output into `sink`, with the entry and byte caps
    /// whole again (a session's runtime records one execution after another).
    pub fn open(&self, sink: Rc<dyn LogSink>) {
        self.entries.set(0);
        self.bytes_left.set(self.byte_budget);
        self.truncated.set(false);
        *self.sink.borrow_mut() = Some(sink);
    }

    /// Stops recording until the next [`ConsoleLog::open`].
    pub fn detach(&self) {
        self.sink.borrow_mut().take();
    }

    /// Ends recording and releases the script values the console holds.
    pub fn close(&self) {
        self.intrinsics.borrow_mut().take();
        self.sink.borrow_mut().take();
    }

    /// Builds the `console` object, when a script first reaches for it (see
    /// [`crate::globals`]).
    pub fn build(self: &Rc<Self>, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let console = Object::new(ctx.clone())?;
        for kind in LogType::PLAIN {
            let log = self.clone();
            let method =
                move |ctx: Ctx<'js>, args: Rest<Value<'js>>| log.record(&ctx, kind, &[], &args.0);
            add_method(&console, kind.as_str(), Function::new(ctx.clone(), method)?)?;
        }
        let log = self.clone();
        let group_end = move |ctx: Ctx<'js>| log.record(&ctx, LogType::GroupEnd, &[], &[]);
        add_method(&console, "groupEnd", Function::new(ctx.clone(), group_end)?)?;
        let log = self.clone();
        let trace = move |ctx: Ctx<'js>, args: Rest<Value<'js>>| log.trace(&ctx, args.0);
        add_method(&console, "trace", Function::new(ctx.clone(), trace)?)?;
        let log = self.clone();
        let assert = move |ctx: Ctx<'js>, condition: Opt<Value<'js>>, args: Rest<Value<'js>>| {
            log.assert(&ctx, condition.0, &args.0)
        };
        add_method(&console, "assert", Function::new(ctx.clone(), assert)?)?;
        let log = self.clone();
        let count = move |ctx: Ctx<'js>, label: Opt<Value<'js>>| log.count(&ctx, label.0);
        add_method(&console, "count", Function::new(ctx.clone(), count)?)?;
        let log = self.clone();
        let count_reset = move |ctx: Ctx<'js>, label: Opt<Value<'js>>| {
            let label = log.label(&ctx, label.0)?;
            log.counters.borrow_mut().remove(&label);
            Ok::<_, rquickjs::Error>(())
        };
        add_method(
            &console,
            "countReset",
            Function::new(ctx.clone(), count_reset)?,
        )?;
        let log = self.clone();
        let time = move |ctx: Ctx<'js>, label: Opt<Value<'js>>| log.time(&ctx, label.0);
        add_method(&console, "time", Function::new(ctx.clone(), time)?)?;
        for (kind, ends) in [(LogType::TimeLog, false), (LogType::TimeEnd, true)] {
            let log = self.clone();
            let method = move |ctx: Ctx<'js>, label: Opt<Value<'js>>, args: Rest<Value<'js>>| {
                log.time_log(&ctx, kind, ends, label.0, &args.0)
            };
            add_method(&console, kind.as_str(), Function::new(ctx.clone(), method)?)?;
        }
        Ok(console)
    }

    /// `console.trace(...args)`: the arguments, then the stack.
    fn trace(&self, ctx: &Ctx<'js>, mut args: Vec<Value<'js>>) -> Result<()> {
        let trace = Exception::from_message(ctx.clone(), "Trace")?;
        args.push(trace.get::<_, Value<'js>>("stack")?);
        self.record(ctx, LogType::Trace, &[], &args)
    }

    /// `console.assert(condition, ...args)`: recorded only when the condition is falsy.
    fn assert(
        &self,
        ctx: &Ctx<'js>,
        condition: Option<Value<'js>>,
        args: &[Value<'js>],
    ) -> Result<()> {
        if condition.is_some_and(|value| truthy(&value)) {
            return Ok(());
        }
        let prefix = if args.is_empty() {
            "Assertion failed"
        } else {
            "Assertion failed:"
        };
        self.record(ctx, LogType::Assert, &[prefix], args)
    }

    /// `console.count(label)`: `"label: n"`.
    fn count(&self, ctx: &Ctx<'js>, label: Option<Value<'js>>) -> Result<()> {
        let label = self.label(ctx, label)?;
        let count = {
            let mut counters = self.counters.borrow_mut();
            match counters.get_mut(&label) {
                Some(count) => {
                    *count += 1;
                    *count
                }
                None => {
                    if counters.len() < MAX_LABELS {
                        counters.insert(label.clone(), 1);
                    }
                    1
                }
            }
        };
        self.record(ctx, LogType::Count, &[&format!("{label}: {count}")], &[])
    }

    /// `console.time(label)`.
    fn time(&self, ctx: &Ctx<'js>, label: Option<Value<'js>>) -> Result<()> {
        let label = self.label(ctx, label)?;
        let mut timers = self.timers.borrow_mut();
        if timers.len() < MAX_LABELS || timers.contains_key(&label) {
            timers.insert(label, Instant::now());
        }
        Ok(())
    }

    /// `console.timeLog(label, ...args)` and `console.timeEnd(label)`: `"label: 12ms"`.
    fn time_log(
        &self,
        ctx: &Ctx<'js>,
        kind: LogType,
        ends: bool,
        label: Option<Value<'js>>,
        args: &[Value<'js>],
    ) -> Result<()> {
        let label = self.label(ctx, label)?;
        let started = if ends {
            self.timers.borrow_mut().remove(&label)
        } else {
            self.timers.borrow().get(&label).copied()
        };
        let text = match started {
            // Whole milliseconds: no finer clock than `Date` reaches the script.
            Some(started) => format!("{label}: {}ms", started.elapsed().as_millis()),
            None => format!("Timer '{label}' does not exist"),
        };
        self.record(ctx, kind, &[&text], args)
    }

    /// A label as text, `default` when none is given, cut to [`MAX_LABEL_UNITS`] inside the
    /// runtime.
    fn label(&self, ctx: &Ctx<'js>, label: Option<Value<'js>>) -> Result<String> {
        let Some(label) = label.filter(|label| !label.is_undefined()) else {
            return Ok("default".to_owned());
        };
        let Some(intrinsics) = self.intrinsics.borrow().clone() else {
            return Ok("default".to_owned());
        };
        // SAFETY: the context and value are live; JS_ToString returns an owned value.
        let text = unsafe { qjs::JS_ToString(ctx.as_raw().as_ptr(), label.as_raw()) };
        // SAFETY: as above, the reference is ours.
        if unsafe { qjs::JS_IsException(text) } {
            return Err(rquickjs::Error::Exception);
        }
        let text = unsafe { Value::from_raw(ctx.clone(), text) };
        Ok(bounded_string(ctx, &intrinsics, &text, MAX_LABEL_UNITS)?.0)
    }

    /// Records one call: `prefix` strings, then the arguments, serialised now.
    fn record(
        &self,
        ctx: &Ctx<'js>,
        kind: LogType,
        prefix: &[&str],
        args: &[Value<'js>],
    ) -> Result<()> {
        let Some(intrinsics) = self.intrinsics.borrow().clone() else {
            return Ok(());
        };
        let Some(sink) = self.sink.borrow().clone() else {
            return Ok(());
        };
        if self.truncated.get() {
            return Ok(());
        }
        if self.entries.get() >= self.max_entries {
            self.truncate(
                &*sink,
                &format!(
                    "console output truncated: more than {} entries",
                    self.max_entries
                ),
            );
            return Ok(());
        }
        let separator = usize::from(self.entries.get() > 0);
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        let limit = self.bytes_left.get().saturating_sub(separator);
        let mut out = JsonWriter::new(&mut scratch, limit);
        let opened = entry_head(&mut out, kind);
        if opened {
            for text in prefix {
                out.string_prefix(text);
            }
            let mut serializer = Serializer::new(ctx.clone(), &intrinsics);
            for arg in args {
                if let Err(interrupted) = serializer.value(&mut out, arg) {
                    return Err(ctx.throw(interrupted.0));
                }
            }
            out.end();
            out.end();
        }
        let cut = out.exhausted();
        if opened {
            sink.append(&scratch);
            self.entries.set(self.entries.get() + 1);
            self.bytes_left
                .set(self.bytes_left.get() - scratch.len() - separator);
        }
        drop(scratch);
        if cut {
            self.truncate(&*sink, "console output truncated: byte limit reached");
        }
        Ok(())
    }

    /// Ends the log with an entry saying why, in the room kept for it.
    fn truncate(&self, sink: &dyn LogSink, message: &str) {
        self.truncated.set(true);
        sink.mark_truncated();
        if !self.room_for_marker {
            return;
        }
        let mut entry = Vec::new();
        let mut out = JsonWriter::new(&mut entry, TRUNCATION_ENTRY_ROOM);
        if entry_head(&mut out, LogType::Truncated) {
            out.string_prefix(message);
            out.end();
            out.end();
            sink.append(&entry);
        }
    }
}

/// Writes `{"type":kind,"timestamp":now,"data":[` and leaves the object and array open; false
/// when even that does not fit.
fn entry_head(out: &mut JsonWriter<'_>, kind: LogType) -> bool {
    let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    if !out.begin_object() {
        return false;
    }
    let head = out.key("type")
        && out.string(kind.as_str())
        && out.key("timestamp")
        && out.string(&timestamp)
        && out.key("data")
        && out.begin_array();
    if !head {
        out.end();
    }
    head
}

fn add_method<'js>(console: &Object<'js>, name: &str, method: Function<'js>) -> Result<()> {
    console.set(name, method.with_name(name)?)
}

/// JavaScript truthiness, as `if (value)` decides it.
fn truthy(value: &Value<'_>) -> bool {
    // SAFETY: the context and value are live; JS_ToBool runs no script code.
    unsafe { qjs::JS_ToBool(value.ctx().as_raw().as_ptr(), value.as_raw()) > 0 }
}
