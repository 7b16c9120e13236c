//! Host functions: how an operator gives scripts more than the language and the Web APIs, for
//! example a lookup in the operator's own data, or `fetch` (the first capability built on it).
//!
//! An operator registers functions in a [`HostFunctions`] registry under a global name (a dotted
//! path such as `"lookup"` or `"billing.rate"` defines the objects on the way) and hands it to
//! the sandbox binary (`sandbox::main`). Each function takes the script's arguments as JSON
//! values and returns one JSON value, or a [`HostError`] that the script sees as an exception:
//!
//! - **Synchronous** functions ([`HostFunctions::sync`]) run in the worker process, on the
//!   script's thread, under its system-call filter: pure computation on the arguments, with no
//!   files, network or clock beyond what the filter allows. The script waits for them; their
//!   time counts against its deadline, which cannot interrupt them, so they must be quick.
//! - **Asynchronous** functions ([`HostFunctions::asynchronous`]) return a future, which runs in
//!   the sandbox's supervisor, outside the worker process and its filter, where it may reach
//!   the network or the operator's services. The script gets a promise at once; the worker's
//!   event loop waits for the answer as it waits for timers, within the execution's deadline.
//!   Past the deadline the execution ends as a `timeout` and the future is dropped.
//!
//! Every call is charged to the execution: the calls of all functions together are capped per
//! execution ([`HostGrant::max_calls`]), arguments and results are bounded in bytes, and the
//! time they take is the execution's time. A function can also be offered only to tenants
//! whose capabilities allow it ([`HostFunctions::offered_when`]), as `fetch` is.
//!
//! The engine's side of a run is [`HostAccess`]: the registry, the grant of the execution, and
//! the [`HostChannel`] over which asynchronous calls leave the runtime (the worker implements it
//! with its channel to the supervisor).

use std::{
    cell::{Cell, RefCell},
    collections::{BTreeMap, HashMap},
    fmt,
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{Arc, Mutex},
    time::Instant,
};

pub use contract::{
    capabilities::Capabilities,
    worker::{HostAnswer, HostCall, HostError, HostGrant},
};
use rquickjs::{Ctx, Exception, Function, Object, Value, function::Rest};

use crate::{
    intrinsics,
    memory::{self, Charge},
};

/// A JSON value passed to or returned by a host function.
pub type Json = serde_json::Value;

/// What an asynchronous host function returns.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<Json, HostError>> + Send>>;

type SyncFunction = dyn Fn(Vec<Json>) -> Result<Json, HostError> + Send + Sync;
type AsyncFunction = dyn Fn(Vec<Json>, CallContext) -> HostFuture + Send + Sync;
type Offered = dyn Fn(&Capabilities) -> bool + Send + Sync;

/// Largest JSON text of one call's arguments, and of one result.
pub const MAX_HOST_JSON_BYTES: usize = 4 * 1024 * 1024;

/// What an asynchronous host function knows of the execution that called it.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The tenant the execution belongs to (`anonymous` without a key).
    pub tenant: Arc<str>,
    /// What the tenant was granted in the tenants file.
    pub capabilities: Arc<Capabilities>,
    /// When the execution's time is up; the future is dropped then in any case.
    pub deadline: Instant,
    /// Counters shared by every call of the execution, for caps of a function's own (bytes
    /// fetched, ...).
    pub usage: Arc<Usage>,
}

/// Per-execution counters that host functions charge.
#[derive(Debug, Default)]
pub struct Usage {
    counters: Mutex<HashMap<&'static str, u64>>,
}

impl Usage {
    /// Adds `amount` to `counter` if the total stays within `limit`; otherwise changes nothing
    /// and returns the total so far.
    pub fn charge(&self, counter: &'static str, amount: u64, limit: u64) -> Result<u64, u64> {
        let mut counters = self.counters.lock().expect("usage counters");
        let total = counters.entry(counter).or_default();
        match total.checked_add(amount).filter(|sum| *sum <= limit) {
            Some(sum) => {
                *total = sum;
                Ok(sum)
            }
            None => Err(*total),
        }
    }

    /// The total charged to `counter`.
    pub fn get(&self, counter: &'static str) -> u64 {
        let counters = self.counters.lock().expect("usage counters");
        counters.get(counter).copied().unwrap_or_default()
    }
}

#[derive(Clone)]
enum Kind {
    Sync(Arc<SyncFunction>),
    Async(Arc<AsyncFunction>),
}

#[derive(Clone)]
struct Entry {
    kind: Kind,
    offered: Option<Arc<Offered>>,
}

/// The host functions an operator exposes to scripts; cheap to clone.
#[derive(Clone, Default)]
pub struct HostFunctions {
    /// Shared, so that each execution's copy (the worker makes one per job) costs a count.
    entries: Arc<BTreeMap<String, Entry>>,
}

impl fmt::Debug for HostFunctions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.entries.keys()).finish()
    }
}

impl HostFunctions {
    /// No host functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a synchronous function under `name`, run in the worker on the script's
    /// thread. `name` is a global name or a dotted path (`"billing.rate"`).
    ///
    /// # Panics
    /// When `name` is not identifiers separated by dots, or is already registered.
    pub fn sync(
        mut self,
        name: &str,
        function: impl Fn(Vec<Json>) -> Result<Json, HostError> + Send + Sync + 'static,
    ) -> Self {
        self.insert(name, Kind::Sync(Arc::new(function)));
        self
    }

    /// Registers an asynchronous function under `name`, run by the supervisor; the script
    /// gets a promise of its result.
    ///
    /// # Panics
    /// As [`Self::sync`].
    pub fn asynchronous<F>(
        mut self,
        name: &str,
        function: impl Fn(Vec<Json>, CallContext) -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = Result<Json, HostError>> + Send + 'static,
    {
        let boxed =
            move |arguments, context| -> HostFuture { Box::pin(function(arguments, context)) };
        self.insert(name, Kind::Async(Arc::new(boxed)));
        self
    }

    /// Offers the function registered as `name` only to executions whose tenant's
    /// capabilities satisfy `offered`; others do not see it at all.
    ///
    /// # Panics
    /// When `name` is not registered.
    pub fn offered_when(
        mut self,
        name: &str,
        offered: impl Fn(&Capabilities) -> bool + Send + Sync + 'static,
    ) -> Self {
        let entry = Arc::make_mut(&mut self.entries)
            .get_mut(name)
            .unwrap_or_else(|| panic!("no host function is registered as `{name}`"));
        entry.offered = Some(Arc::new(offered));
        self
    }

    fn insert(&mut self, name: &str, kind: Kind) {
        assert!(
            is_valid_name(name),
            "`{name}` is not a host function name: expected identifiers separated by dots"
        );
        let entry = Entry {
            kind,
            offered: None,
        };
        assert!(
            Arc::make_mut(&mut self.entries)
                .insert(name.to_owned(), entry)
                .is_none(),
            "`{name}` is registered twice"
        );
    }

    /// The names offered to an execution with `capabilities`.
    pub fn offered(&self, capabilities: &Capabilities) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, entry)| {
                entry
                    .offered
                    .as_ref()
                    .is_none_or(|offered| offered(capabilities))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// True when `name` is a registered asynchronous function.
    pub fn is_async(&self, name: &str) -> bool {
        matches!(
            self.entries.get(name).map(|entry| &entry.kind),
            Some(Kind::Async(_))
        )
    }

    /// Starts the asynchronous function `name` (the supervisor's side); `None` when no such
    /// function is registered.
    pub fn call_async(
        &self,
        name: &str,
        arguments: Vec<Json>,
        context: CallContext,
    ) -> Option<HostFuture> {
        match &self.entries.get(name)?.kind {
            Kind::Async(function) => Some(function(arguments, context)),
            Kind::Sync(_) => None,
        }
    }
}

fn is_valid_name(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    })
}

/// How asynchronous calls leave the runtime and their answers come back.
pub trait HostChannel {
    /// Sends a call; an error fails the call (the script's promise is rejected with it).
    fn send(&self, call: HostCall) -> Result<(), HostError>;
    /// Waits until `until` at most for the next answer; `None` when none came in time.
    fn wait(&self, until: Instant) -> Option<HostAnswer>;
}

/// The host functions of one execution.
#[derive(Clone, Default)]
pub struct HostAccess {
    /// Every registered function.
    pub functions: HostFunctions,
    /// Which of them this execution gets, and its call budget.
    pub grant: HostGrant,
    /// Where asynchronous calls go; without one, asynchronous functions are not installed.
    pub channel: Option<Rc<dyn HostChannel>>,
}

/// A call's promise and its settling functions.
struct Pending<'js> {
    promise: Value<'js>,
    resolve: Function<'js>,
    reject: Function<'js>,
}

/// The host's `fetch`, as the Web APIs' `fetch` uses it: the call, and a function that
/// abandons a call's promise (an aborted fetch), so the event loop no longer waits for it.
pub struct FetchPrimitive<'js> {
    pub call: Function<'js>,
    pub abandon: Function<'js>,
}

/// The host functions installed in one runtime and their calls in flight.
pub struct HostRuntime<'js> {
    access: HostAccess,
    calls: Cell<u32>,
    next_id: Cell<u32>,
    pending: RefCell<HashMap<u32, Pending<'js>>>,
}

impl<'js> HostRuntime<'js> {
    /// Installs the functions `access` grants on the global object; returns the runtime state
    /// and, when granted, the asynchronous `fetch` primitive (which the Web APIs wrap).
    pub fn install(
        ctx: &Ctx<'js>,
        access: HostAccess,
    ) -> rquickjs::Result<(Rc<Self>, Option<FetchPrimitive<'js>>)> {
        let host = Rc::new(Self {
            access,
            calls: Cell::new(0),
            next_id: Cell::new(0),
            pending: RefCell::new(HashMap::new()),
        });
        let mut fetch = None;
        for name in &host.access.grant.functions {
            let Some(entry) = host.access.functions.entries.get(name) else {
                continue;
            };
            let function = match &entry.kind {
                Kind::Sync(function) => host.sync_function(ctx, name, function.clone())?,
                Kind::Async(_) if host.access.channel.is_some() => {
                    host.async_function(ctx, name)?
                }
                Kind::Async(_) => continue,
            };
            if name == "fetch" {
                fetch = Some(FetchPrimitive {
                    call: function,
                    abandon: host.abandon_function(ctx)?,
                });
            } else {
                define_path(ctx, name, function)?;
            }
        }
        Ok((host, fetch))
    }

    fn charge_call(&self, ctx: &Ctx<'js>, name: &str) -> rquickjs::Result<()> {
        let max = self.access.grant.max_calls;
        if self.calls.get() >= max {
            return Err(Exception::throw_range(
                ctx,
                &format!(
                    "{name}: this execution made its {max} host function calls, the most it \
                     may make"
                ),
            ));
        }
        self.calls.set(self.calls.get() + 1);
        Ok(())
    }

    fn sync_function(
        self: &Rc<Self>,
        ctx: &Ctx<'js>,
        name: &str,
        function: Arc<SyncFunction>,
    ) -> rquickjs::Result<Function<'js>> {
        let host = self.clone();
        let label = name.to_owned();
        let call = move |ctx: Ctx<'js>, arguments: Rest<Value<'js>>| {
            host.charge_call(&ctx, &label)?;
            let (_copy, text) = arguments_json(&ctx, &label, arguments)?;
            let _parsed = memory::charge(&ctx, parsed_size_bound(&text))?;
            let arguments: Vec<Json> = serde_json::from_str(&text)
                .map_err(|error| Exception::throw_type(&ctx, &format!("{label}: {error}")))?;
            drop(text);
            match function(arguments) {
                Ok(result) => result_value(&ctx, &label, &result),
                Err(error) => Err(throw(&ctx, &error)),
            }
        };
        Function::new(ctx.clone(), call)?.with_name(last_part(name))
    }

    fn async_function(
        self: &Rc<Self>,
        ctx: &Ctx<'js>,
        name: &str,
    ) -> rquickjs::Result<Function<'js>> {
        let host = self.clone();
        let label = name.to_owned();
        let call = move |ctx: Ctx<'js>, arguments: Rest<Value<'js>>| {
            host.charge_call(&ctx, &label)?;
            // The supervisor reads the text as it is, JSON made by the runtime's own
            // `JSON.stringify`: nothing to parse here.
            let (_copy, arguments) = arguments_json(&ctx, &label, arguments)?;
            let (promise, resolve, reject) = ctx.promise()?;
            let id = host.next_id.get().wrapping_add(1);
            host.next_id.set(id);
            let channel = host
                .access
                .channel
                .as_ref()
                .expect("installed with a channel");
            let call = HostCall {
                id,
                name: label.clone(),
                arguments,
            };
            match channel.send(call) {
                Ok(()) => {
                    let pending = Pending {
                        promise: promise.clone().into_value(),
                        resolve,
                        reject,
                    };
                    host.pending.borrow_mut().insert(id, pending);
                }
                Err(error) => {
                    let reason = error_value(&ctx, &error);
                    reject.call::<_, ()>((reason,))?;
                }
            }
            Ok::<_, rquickjs::Error>(promise)
        };
        Function::new(ctx.clone(), call)?.with_name(last_part(name))
    }

    /// A function of a call's promise that forgets the call: its answer, if it comes, is
    /// ignored, and the event loop does not wait for it.
    fn abandon_function(self: &Rc<Self>, ctx: &Ctx<'js>) -> rquickjs::Result<Function<'js>> {
        let host = self.clone();
        Function::new(ctx.clone(), move |promise: Value<'js>| {
            host.pending
                .borrow_mut()
                .retain(|_, pending| pending.promise != promise);
        })
    }

    /// True while asynchronous calls are in flight.
    pub fn waiting(&self) -> bool {
        !self.pending.borrow().is_empty()
    }

    /// Waits until `until` at most for one answer and settles its promise; false when none
    /// came. The settling runs as promise jobs, which the event loop runs next.
    pub fn settle_next(&self, ctx: &Ctx<'js>, until: Instant) -> rquickjs::Result<bool> {
        let Some(channel) = &self.access.channel else {
            return Ok(false);
        };
        let Some(answer) = channel.wait(until) else {
            return Ok(false);
        };
        let Some(pending) = self.pending.borrow_mut().remove(&answer.id) else {
            // Not a call of ours: the supervisor's answers are trusted, so this cannot happen;
            // ignoring it is safe.
            return Ok(true);
        };
        match answer.result {
            Ok(json) => match parse(ctx, &json) {
                Ok(value) => pending.resolve.call::<_, ()>((value,))?,
                Err(error) => pending.reject.call::<_, ()>((error,))?,
            },
            Err(error) => {
                let reason = error_value(ctx, &error);
                pending.reject.call::<_, ()>((reason,))?;
            }
        }
        Ok(true)
    }

    /// A whole call budget again, for the next execution in the same runtime (a session's).
    pub fn renew(&self) {
        self.calls.set(0);
    }

    /// Drops the promises of calls still in flight (at the end of an execution).
    pub fn clear(&self) {
        self.pending.borrow_mut().clear();
    }
}

fn last_part(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Defines `function` at the dotted `path` from the global object, making plain objects on the
/// way where nothing is defined yet.
fn define_path<'js>(ctx: &Ctx<'js>, path: &str, function: Function<'js>) -> rquickjs::Result<()> {
    let mut object = ctx.globals();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            return object.set(part, function);
        }
        let next = match object.get::<_, Option<Object<'js>>>(part)? {
            Some(next) => next,
            None => {
                let next = Object::new(ctx.clone())?;
                object.set(part, next.clone())?;
                next
            }
        };
        object = next;
    }
    Ok(())
}

/// The script's arguments as the text of a JSON array (what `JSON.stringify` makes of them:
/// `undefined` and functions become `null`), within [`MAX_HOST_JSON_BYTES`], with the charge
/// of its host copy.
fn arguments_json<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    arguments: Rest<Value<'js>>,
) -> rquickjs::Result<(Option<Charge>, String)> {
    let array = rquickjs::Array::new(ctx.clone())?;
    for (index, argument) in arguments.0.into_iter().enumerate() {
        array.set(index, argument)?;
    }
    let (copy, text) = match ctx.json_stringify(array)? {
        Some(text) => {
            // Each UTF-16 unit takes at least one byte of UTF-8 and at most three: a text too
            // long is refused before it is copied out, and the copy is charged to the limit.
            let units = intrinsics::string_units(ctx, text.as_value());
            if units > MAX_HOST_JSON_BYTES {
                return Err(Exception::throw_range(
                    ctx,
                    &format!(
                        "{name}: the arguments take more than the {MAX_HOST_JSON_BYTES} bytes of \
                         JSON allowed"
                    ),
                ));
            }
            let copy = memory::charge(ctx, 3 * units)?;
            (Some(copy), text.to_string()?)
        }
        None => (None, "[]".to_owned()),
    };
    if text.len() > MAX_HOST_JSON_BYTES {
        return Err(Exception::throw_range(
            ctx,
            &format!(
                "{name}: the arguments take {} bytes of JSON, more than the {MAX_HOST_JSON_BYTES} \
                 allowed",
                text.len()
            ),
        ));
    }
    Ok((copy, text))
}

/// The most host memory `serde_json` may take to parse `json` into [`Json`] values, from the
/// text's shape: every value in a `Vec` that may have doubled, every object a B-tree leaf of
/// eleven entries, every entry a key and a value that may sit in a node of their own, every
/// string an allocation of at least a malloc chunk, and the text's bytes once more. Parsing
/// can multiply a text's size by tens (`{"a":0},` is 8 bytes and a whole leaf), so it is
/// charged before the parse, not guessed from the length.
fn parsed_size_bound(json: &str) -> usize {
    const VALUE: usize = size_of::<Json>();
    const ENTRY: usize = size_of::<String>() + VALUE;
    const LEAF: usize = 11 * ENTRY + 64;
    const CHUNK: usize = 32;
    let (mut values, mut objects, mut entries, mut strings) = (1, 0, 0, 0);
    let (mut in_string, mut escaped) = (false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                strings += 1;
            }
            b'{' => {
                objects += 1;
                values += 1;
            }
            b'[' | b',' => values += 1,
            b':' => entries += 1,
            _ => {}
        }
    }
    (2 * VALUE * values)
        .saturating_add(LEAF * objects)
        .saturating_add(2 * ENTRY * entries)
        .saturating_add(CHUNK * strings)
        .saturating_add(json.len())
}

/// A host function's result as a script value, within [`MAX_HOST_JSON_BYTES`].
fn result_value<'js>(ctx: &Ctx<'js>, name: &str, result: &Json) -> rquickjs::Result<Value<'js>> {
    let text = serde_json::to_string(result).expect("JSON values serialise");
    if text.len() > MAX_HOST_JSON_BYTES {
        return Err(Exception::throw_range(
            ctx,
            &format!("{name}: the result is larger than {MAX_HOST_JSON_BYTES} bytes of JSON"),
        ));
    }
    ctx.json_parse(text)
}

/// Parses an answer's JSON text; a failure (the memory limit, most likely) as the exception.
fn parse<'js>(ctx: &Ctx<'js>, json: &str) -> Result<Value<'js>, Value<'js>> {
    if json.len() > MAX_HOST_JSON_BYTES {
        let _ = Exception::throw_range(ctx, "a host function's result is too large");
        return Err(ctx.catch());
    }
    ctx.json_parse(json).map_err(|_| ctx.catch())
}

/// Throws `error` in the script.
fn throw(ctx: &Ctx<'_>, error: &HostError) -> rquickjs::Error {
    let value = error_value(ctx, error);
    ctx.throw(value)
}

/// `error` as an exception object of its class: the standard error classes by name, any other
/// name as an `Error` whose `name` is set.
fn error_value<'js>(ctx: &Ctx<'js>, error: &HostError) -> Value<'js> {
    type Throw<'js> = fn(&Ctx<'js>, &str) -> rquickjs::Error;
    let (throw, own_class): (Throw<'js>, bool) = match error.name.as_str() {
        "TypeError" => (Exception::throw_type, true),
        "RangeError" => (Exception::throw_range, true),
        "SyntaxError" => (Exception::throw_syntax, true),
        "ReferenceError" => (Exception::throw_reference, true),
        "Error" => (Exception::throw_message, true),
        _ => (Exception::throw_message, false),
    };
    let _ = throw(ctx, &error.message);
    let value = ctx.catch();
    if !own_class && let Some(object) = value.as_object() {
        let _ = object.set("name", error.name.as_str());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers_separated_by_dots() {
        for name in ["lookup", "billing.rate", "_a.$b.c1"] {
            assert!(is_valid_name(name), "{name}");
        }
        for name in ["", "a..b", "1a", "a-b", "a.", ".a", "a b"] {
            assert!(!is_valid_name(name), "{name}");
        }
    }

    #[test]
    fn usage_is_charged_within_its_limit_only() {
        let usage = Usage::default();
        assert_eq!(usage.charge("bytes", 60, 100), Ok(60));
        assert_eq!(usage.charge("bytes", 50, 100), Err(60));
        assert_eq!(usage.charge("bytes", 40, 100), Ok(100));
        assert_eq!(usage.get("bytes"), 100);
        assert_eq!(usage.get("other"), 0);
    }

    #[test]
    fn functions_are_offered_by_capability() {
        let functions = HostFunctions::new()
            .sync("double", |_| Ok(Json::Null))
            .asynchronous("fetch", |_, _| async { Ok(Json::Null) })
            .offered_when("fetch", |capabilities| capabilities.fetch.is_some());
        assert_eq!(functions.offered(&Capabilities::default()), ["double"]);
        assert!(functions.is_async("fetch"));
        assert!(!functions.is_async("double"));
    }
}
