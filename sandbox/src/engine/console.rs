//! The script's `console`: every call becomes a [`ConsoleEntry`] whose arguments are serialised
//! at call time, under the entry and byte caps of [`OutputLimits`].

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::{Instant, SystemTime},
};

use rquickjs::{
    Ctx, Exception, Function, Object, Result, Value,
    function::{Opt, Rest},
    object::{Accessor, Property},
};

use super::{
    OutputLimits,
    intrinsics::Intrinsics,
    outcome::ConsoleEntry,
    serialize::{Budget, Serializer},
};

/// Most distinct labels `console.count` and `console.time` keep, so a script cannot grow host
/// memory through them.
const MAX_LABELS: usize = 1_000;
/// Longest label kept, in characters.
const MAX_LABEL_CHARS: usize = 200;

/// Captured console output of one execution.
pub struct ConsoleLog<'js> {
    /// Released by [`ConsoleLog::close`] so no script value outlives the execution.
    intrinsics: RefCell<Option<Rc<Intrinsics<'js>>>>,
    entries: RefCell<Vec<ConsoleEntry>>,
    max_entries: usize,
    bytes_left: Cell<usize>,
    truncated: Cell<bool>,
    counters: RefCell<HashMap<String, u64>>,
    timers: RefCell<HashMap<String, Instant>>,
}

impl<'js> ConsoleLog<'js> {
    pub fn new(intrinsics: Rc<Intrinsics<'js>>, limits: &OutputLimits) -> Rc<Self> {
        Rc::new(Self {
            intrinsics: RefCell::new(Some(intrinsics)),
            entries: RefCell::new(Vec::new()),
            max_entries: limits.max_log_entries,
            bytes_left: Cell::new(limits.max_log_bytes),
            truncated: Cell::new(false),
            counters: RefCell::new(HashMap::new()),
            timers: RefCell::new(HashMap::new()),
        })
    }

    /// Installs `console` on the global object. The object and its methods are only built when
    /// a script first reaches for `console`, which keeps them off the cost of preparing every
    /// runtime; assigning to `console` first works as usual.
    pub fn install(self: &Rc<Self>, ctx: &Ctx<'js>) -> Result<()> {
        let log = self.clone();
        let get = move |ctx: Ctx<'js>| -> Result<Object<'js>> {
            let console = log.build(&ctx)?;
            define_console(&ctx, console.clone().into_value())?;
            Ok(console)
        };
        let set = |ctx: Ctx<'js>, value: Value<'js>| define_console(&ctx, value);
        ctx.globals()
            .prop("console", Accessor::new(get, set).configurable())
    }

    fn build(self: &Rc<Self>, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        let console = Object::new(ctx.clone())?;
        let plain = [
            "log",
            "info",
            "warn",
            "error",
            "debug",
            "dir",
            "table",
            "group",
            "groupCollapsed",
        ];
        for kind in plain {
            let log = self.clone();
            let method =
                Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
                    log.record(&ctx, kind, &[], &args.0)
                })?;
            console.set(kind, method.with_name(kind)?)?;
        }
        let log = self.clone();
        console.set(
            "groupEnd",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>| {
                log.record(&ctx, "groupEnd", &[], &[])
            })?
            .with_name("groupEnd")?,
        )?;
        let log = self.clone();
        console.set(
            "trace",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, args: Rest<Value<'js>>| {
                let mut data = args.0;
                let trace = Exception::from_message(ctx.clone(), "Trace")?;
                data.push(trace.get::<_, Value<'js>>("stack")?);
                log.record(&ctx, "trace", &[], &data)
            })?
            .with_name("trace")?,
        )?;
        let log = self.clone();
        console.set(
            "assert",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, condition: Opt<Value<'js>>, args: Rest<Value<'js>>| {
                    let holds = condition.0.is_some_and(|value| truthy(&value));
                    if holds {
                        return Ok(());
                    }
                    let prefix = if args.0.is_empty() {
                        "Assertion failed"
                    } else {
                        "Assertion failed:"
                    };
                    log.record(&ctx, "assert", &[prefix.into()], &args.0)
                },
            )?
            .with_name("assert")?,
        )?;
        let log = self.clone();
        console.set(
            "count",
            Function::new(ctx.clone(), move |ctx: Ctx<'js>, label: Opt<Value<'js>>| {
                let label = label_of(label)?;
                let count = log.bump_counter(&label);
                log.record(&ctx, "count", &[format!("{label}: {count}").into()], &[])
            })?
            .with_name("count")?,
        )?;
        let log = self.clone();
        console.set(
            "countReset",
            Function::new(ctx.clone(), move |label: Opt<Value<'js>>| {
                log.counters.borrow_mut().remove(&label_of(label)?);
                Ok::<_, rquickjs::Error>(())
            })?
            .with_name("countReset")?,
        )?;
        let log = self.clone();
        console.set(
            "time",
            Function::new(ctx.clone(), move |label: Opt<Value<'js>>| {
                let label = label_of(label)?;
                let mut timers = log.timers.borrow_mut();
                if timers.len() < MAX_LABELS || timers.contains_key(&label) {
                    timers.insert(label, Instant::now());
                }
                Ok::<_, rquickjs::Error>(())
            })?
            .with_name("time")?,
        )?;
        for (kind, ends) in [("timeLog", false), ("timeEnd", true)] {
            let log = self.clone();
            let method = Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, label: Opt<Value<'js>>, args: Rest<Value<'js>>| {
                    let label = label_of(label)?;
                    let started = if ends {
                        log.timers.borrow_mut().remove(&label)
                    } else {
                        log.timers.borrow().get(&label).copied()
                    };
                    let text = match started {
                        // Whole milliseconds: no finer clock than `Date` reaches the script.
                        Some(started) => format!("{label}: {}ms", started.elapsed().as_millis()),
                        None => format!("Timer '{label}' does not exist"),
                    };
                    log.record(&ctx, kind, &[text.into()], &args.0)
                },
            )?;
            console.set(kind, method.with_name(kind)?)?;
        }
        Ok(console)
    }

    /// Records one call; arguments are serialised now, as they are at the time of the call.
    fn record(
        &self,
        ctx: &Ctx<'js>,
        kind: &'static str,
        prefix: &[serde_json::Value],
        args: &[Value<'js>],
    ) -> Result<()> {
        let Some(intrinsics) = self.intrinsics.borrow().clone() else {
            return Ok(());
        };
        if self.truncated.get() {
            return Ok(());
        }
        if self.entries.borrow().len() >= self.max_entries {
            self.truncate(format!(
                "console output truncated: more than {} entries",
                self.max_entries
            ));
            return Ok(());
        }
        let timestamp = SystemTime::now();
        let mut serializer =
            Serializer::new(ctx.clone(), &intrinsics, Budget::new(&self.bytes_left));
        let mut data = prefix.to_vec();
        for arg in args {
            match serializer.value(arg) {
                Ok(json) => data.push(json),
                Err(interrupted) => return Err(ctx.throw(interrupted.0)),
            }
        }
        let cut = serializer.truncated();
        self.entries.borrow_mut().push(ConsoleEntry {
            kind,
            timestamp,
            data,
        });
        if cut {
            self.truncate("console output truncated: byte limit reached".to_owned());
        }
        Ok(())
    }

    fn truncate(&self, message: String) {
        self.truncated.set(true);
        self.entries.borrow_mut().push(ConsoleEntry {
            kind: "truncated",
            timestamp: SystemTime::now(),
            data: vec![message.into()],
        });
    }

    fn bump_counter(&self, label: &str) -> u64 {
        let mut counters = self.counters.borrow_mut();
        if let Some(count) = counters.get_mut(label) {
            *count += 1;
            return *count;
        }
        if counters.len() < MAX_LABELS {
            counters.insert(label.to_owned(), 1);
        }
        1
    }

    /// Ends recording and releases the script values the console holds.
    pub fn close(&self) {
        self.intrinsics.borrow_mut().take();
    }

    /// The entries so far and whether they were cut.
    pub fn take(&self) -> (Vec<ConsoleEntry>, bool) {
        (self.entries.take(), self.truncated.get())
    }
}

/// Makes `console` a plain global property holding `value`, as in browsers.
fn define_console<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<()> {
    ctx.globals()
        .prop("console", Property::from(value).writable().configurable())
}

fn label_of(label: Opt<Value<'_>>) -> Result<String> {
    let label = match label.0 {
        Some(value) if !value.is_undefined() => value.get::<rquickjs::Coerced<String>>()?.0,
        _ => "default".to_owned(),
    };
    Ok(label.chars().take(MAX_LABEL_CHARS).collect())
}

/// JavaScript truthiness, as `if (value)` decides it.
fn truthy(value: &Value<'_>) -> bool {
    // SAFETY: the context and value are live; JS_ToBool runs no script code.
    unsafe { rquickjs::qjs::JS_ToBool(value.ctx().as_raw().as_ptr(), value.as_raw()) > 0 }
}
