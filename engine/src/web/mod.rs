//! The standard, host-free Web APIs a script sees besides the language: `TextEncoder`,
//! `TextDecoder`, `atob`, `btoa`, `URL`, `URLSearchParams`, `structuredClone`, `crypto`,
//! `queueMicrotask`, `AbortController`, `AbortSignal`, `EventTarget`, `Event`, `DOMException`
//! and `performance`; and, for executions granted the `fetch` host function ([`crate::host`]),
//! `fetch`, `Headers` and `Response` on top of it.
//!
//! Each follows its specification. The parts whose logic is byte work are Rust, with crates
//! made for the job ([`encoding`], [`base64`], [`url`], [`crypto`]); the parts whose logic is
//! JavaScript objects (events, abort signals, the structured clone's graph walk, the classes
//! themselves) are the `.js` files beside this one, compiled once per process to QuickJS
//! bytecode. Nothing of them runs while a runtime is prepared: the built-ins they use are
//! captured then, as property reads into a table ([`capture`]), and the globals are defined
//! lazily by the caller ([`crate::globals`]). The first time a script reaches for a Web API,
//! `primordials.js` builds `DOMException` and what the groups share from that table; each
//! group of APIs is read and run the first time a script reaches for one of its globals. A
//! script that replaced `Object.defineProperty` or `Array.prototype.push` before then changes
//! nothing in them.

mod base64;
mod capture;
mod crypto;
mod encoding;
mod fetch;
mod url;

use std::{
    cell::{Cell, RefCell},
    ffi::{CStr, CString, c_int},
    rc::Rc,
    sync::OnceLock,
    time::{Duration, Instant, SystemTime},
};

use rquickjs::{
    Array, Ctx, Error, Exception, FromJs, Function, Object, Result, Value, function::Opt, qjs,
};

use crate::{
    builtins::{Captured, CapturedList},
    fault,
    host::FetchPrimitive,
    memory::{self, Charge},
    timers::Timers,
    typed_arrays,
};

/// What every group shares, built from the captured built-ins: `DOMException`,
/// `queueMicrotask` and the uncurried built-ins.
const PRIMORDIALS: &str = include_str!("primordials.js");

/// What every group starts with.
const HELPERS: &str = include_str!("helpers.js");

/// The groups of the JavaScript half; each is the body of a function of the primordials and
/// the Rust half, returning its globals.
const GROUPS: [&str; 6] = [
    include_str!("events.js"),
    include_str!("encoding.js"),
    include_str!("crypto.js"),
    include_str!("url.js"),
    include_str!("structured_clone.js"),
    include_str!("fetch.js"),
];

/// Every global of the Web APIs, in the order they are defined, and the group it is read
/// from; `None` for those of `primordials.js`.
pub const GLOBALS: [(&str, Option<usize>); 17] = [
    ("DOMException", None),
    ("queueMicrotask", None),
    ("Event", Some(0)),
    ("EventTarget", Some(0)),
    ("AbortController", Some(0)),
    ("AbortSignal", Some(0)),
    ("Performance", Some(0)),
    ("performance", Some(0)),
    ("TextEncoder", Some(1)),
    ("TextDecoder", Some(1)),
    ("atob", Some(1)),
    ("btoa", Some(1)),
    ("Crypto", Some(2)),
    ("crypto", Some(2)),
    ("URL", Some(3)),
    ("URLSearchParams", Some(3)),
    ("structuredClone", Some(4)),
];

/// The globals of the fetch group, defined only for executions granted `fetch`.
pub const FETCH_GLOBALS: [(&str, Option<usize>); 3] = [
    ("fetch", Some(5)),
    ("Headers", Some(5)),
    ("Response", Some(5)),
];

/// How coarse `performance.now()` is: timers are a side channel.
const TIMER_RESOLUTION: Duration = Duration::from_micros(100);

/// The JavaScript half as bytecode, compiled by the first runtime of the process.
static BYTECODE: OnceLock<Bytecode> = OnceLock::new();

struct Bytecode {
    /// The names `primordials.js` returns, in order: the captured ones, then its own.
    names: Vec<&'static str>,
    primordials: Vec<u8>,
    groups: Vec<Vec<u8>>,
}

/// The Web APIs of one runtime: the built-ins captured before any script ran, and what was
/// built from them since.
pub struct WebApis<'js> {
    /// When the execution started, the origin of `performance.now()`.
    time_origin: Rc<Cell<Option<(Instant, SystemTime)>>>,
    timers: Rc<RefCell<Timers<'js>>>,
    /// The host's `fetch` primitive, for executions granted it.
    fetch: RefCell<Option<FetchPrimitive<'js>>>,
    /// The captured built-ins, in the order of `capture::names`; `None` once released.
    captured: RefCell<Option<CapturedList<'js>>>,
    /// Once made: the typed arrays' constructors ([`crate::typed_arrays`]) and what was
    /// captured of them as they were made.
    typed_arrays: RefCell<Option<(Object<'js>, CapturedList<'js>)>>,
    /// What `primordials.js` returned, once a script reached for a Web API.
    primordials: RefCell<Option<Array<'js>>>,
    /// The globals of each group that was loaded.
    groups: RefCell<[Option<Object<'js>>; GROUPS.len()]>,
}

impl<'js> WebApis<'js> {
    /// Captures the built-ins the APIs use; must run before any script code. The globals
    /// ([`GLOBALS`]) are for the caller to define, and to read from [`WebApis::global`].
    pub fn new(ctx: &Ctx<'js>, timers: &Rc<RefCell<Timers<'js>>>) -> Result<Self> {
        let captured = capture::capture(ctx)?;
        if BYTECODE.get().is_none() {
            let compiled = Bytecode::compile(ctx)?;
            BYTECODE.get_or_init(|| compiled);
        }
        Ok(Self {
            time_origin: Rc::new(Cell::new(None)),
            timers: timers.clone(),
            fetch: RefCell::new(None),
            captured: RefCell::new(Some(captured)),
            typed_arrays: RefCell::new(None),
            primordials: RefCell::new(None),
            groups: RefCell::new(Default::default()),
        })
    }

    /// The serializer's built-ins, captured with these (see [`crate::intrinsics`]).
    pub fn serializer_builtins(&self) -> Result<[Captured<'js>; 5]> {
        let captured = self.captured.borrow();
        let list = captured.as_ref().ok_or(Error::Unknown)?;
        list.pick(capture::SERIALIZER)
    }

    /// The typed arrays' constructors, by their globals' names, made the first time they are
    /// asked for, by a script reaching for one of their globals or by the Web APIs building
    /// themselves: what the Web APIs use of them is captured then, before any script has one
    /// ([`capture::capture_typed`]).
    pub fn typed_arrays(&self, ctx: &Ctx<'js>) -> Result<Object<'js>> {
        if let Some((made, _)) = &*self.typed_arrays.borrow() {
            return Ok(made.clone());
        }
        let to_string_tag = match &*self.captured.borrow() {
            Some(list) => {
                let [tag] = list.pick([capture::TO_STRING_TAG])?;
                tag.make(ctx)?
            }
            None => return Err(fault::internal_error(ctx, "the runtime is over")),
        };
        let made = typed_arrays::make(ctx)?;
        let captured = capture::capture_typed(ctx, &made, to_string_tag)?;
        *self.typed_arrays.borrow_mut() = Some((made.clone(), captured));
        Ok(made)
    }

    /// The value of global `name` (one of [`GLOBALS`] or [`FETCH_GLOBALS`]), building its
    /// group first if no script reached for it before.
    pub fn global(&self, ctx: &Ctx<'js>, name: &str) -> Result<Value<'js>> {
        let bytecode = bytecode(ctx)?;
        let home = GLOBALS
            .iter()
            .chain(&FETCH_GLOBALS)
            .find(|(global, _)| *global == name)
            .ok_or_else(|| fault::internal_error(ctx, "no such Web API"))?;
        let primordials = self.primordials(ctx, bytecode)?;
        match home.1 {
            None => {
                let index = bytecode
                    .names
                    .iter()
                    .position(|known| *known == name)
                    .ok_or_else(|| fault::internal_error(ctx, "no such primordial"))?;
                primordials.get(index)
            }
            Some(group) => self.group(ctx, bytecode, group, primordials)?.get(name),
        }
    }

    /// `primordials.js`'s names, built on first use from the captured built-ins.
    fn primordials(&self, ctx: &Ctx<'js>, bytecode: &Bytecode) -> Result<Array<'js>> {
        if let Some(primordials) = &*self.primordials.borrow() {
            return Ok(primordials.clone());
        }
        // The natives make typed arrays, and the built-ins captured of them are needed now.
        self.typed_arrays(ctx)?;
        let captured = Array::new(ctx.clone())?;
        let entries: Vec<Captured<'js>> =
            match (&*self.captured.borrow(), &*self.typed_arrays.borrow()) {
                (Some(list), Some((_, typed))) => list.entries().chain(typed.entries()).collect(),
                _ => return Err(fault::internal_error(ctx, "the runtime is over")),
            };
        for (index, entry) in entries.iter().enumerate() {
            captured.set(index, entry.make(ctx)?)?;
        }
        let native = Object::new(ctx.clone())?;
        native.set(
            "queueMicrotask",
            Function::new(ctx.clone(), queue_microtask)?,
        )?;
        let primordials: Array<'js> = load(ctx, &bytecode.primordials)?.call((captured, native))?;
        Ok(self
            .primordials
            .borrow_mut()
            .get_or_insert(primordials)
            .clone())
    }

    /// The globals of group `index`, loaded on first use.
    fn group(
        &self,
        ctx: &Ctx<'js>,
        bytecode: &Bytecode,
        index: usize,
        primordials: Array<'js>,
    ) -> Result<Object<'js>> {
        if let Some(group) = &self.groups.borrow()[index] {
            return Ok(group.clone());
        }
        let native = natives(ctx, &self.timers, &self.time_origin)?;
        if let Some(primitive) = &*self.fetch.borrow() {
            native.set("hostFetch", primitive.call.clone())?;
            native.set("hostAbandon", primitive.abandon.clone())?;
        }
        let code = bytecode
            .groups
            .get(index)
            .ok_or_else(|| fault::internal_error(ctx, "no such group of Web APIs"))?;
        let group: Object<'js> = load(ctx, code)?.call((primordials, native))?;
        Ok(self.groups.borrow_mut()[index].get_or_insert(group).clone())
    }

    /// Keeps the host's `fetch` primitive for the fetch group, whose globals
    /// ([`FETCH_GLOBALS`]) are for the caller to define.
    pub fn enable_fetch(&self, primitive: FetchPrimitive<'js>) {
        *self.fetch.borrow_mut() = Some(primitive);
    }

    /// Releases the script values held (before the runtime is freed).
    pub fn clear(&self) {
        self.fetch.borrow_mut().take();
        self.captured.borrow_mut().take();
        self.typed_arrays.borrow_mut().take();
        self.primordials.borrow_mut().take();
        *self.groups.borrow_mut() = Default::default();
    }

    /// Starts the clock of `performance`.
    pub fn start(&self, at: Instant) {
        self.time_origin.set(Some((at, SystemTime::now())));
    }
}

/// The process's bytecode of the JavaScript half.
fn bytecode(ctx: &Ctx<'_>) -> Result<&'static Bytecode> {
    BYTECODE
        .get()
        .ok_or_else(|| fault::internal_error(ctx, "the Web APIs were not compiled"))
}

/// The Rust half a group of Web APIs uses (never handed to scripts).
fn natives<'js>(
    ctx: &Ctx<'js>,
    timers: &Rc<RefCell<Timers<'js>>>,
    time_origin: &Rc<Cell<Option<(Instant, SystemTime)>>>,
) -> Result<Object<'js>> {
    let native = Object::new(ctx.clone())?;
    let add = |name: &str, function: Function<'js>| native.set(name, function);
    add("classOf", Function::new(ctx.clone(), class_of)?)?;
    add(
        "queueMicrotask",
        Function::new(ctx.clone(), queue_microtask)?,
    )?;
    add("atob", Function::new(ctx.clone(), base64::atob)?)?;
    add("btoa", Function::new(ctx.clone(), base64::btoa)?)?;
    add(
        "fillRandom",
        Function::new(ctx.clone(), crypto::fill_random)?,
    )?;
    add(
        "randomUUID",
        Function::new(ctx.clone(), crypto::random_uuid)?,
    )?;
    add("encode", Function::new(ctx.clone(), encoding::encode)?)?;
    add(
        "encodeInto",
        Function::new(ctx.clone(), encoding::encode_into)?,
    )?;
    add(
        "encodingFor",
        Function::new(ctx.clone(), encoding::encoding_for)?,
    )?;
    add("decoder", Function::new(ctx.clone(), encoding::decoder)?)?;
    add("parseURL", Function::new(ctx.clone(), url::parse)?)?;
    add("toBase64", Function::new(ctx.clone(), fetch::to_base64)?)?;
    add(
        "fromBase64",
        Function::new(ctx.clone(), fetch::from_base64)?,
    )?;
    add(
        "decodeUtf8",
        Function::new(ctx.clone(), fetch::decode_utf8)?,
    )?;
    add("setURL", Function::new(ctx.clone(), url::set)?)?;
    add("parseQuery", Function::new(ctx.clone(), url::parse_query)?)?;
    add(
        "serializeQuery",
        Function::new(ctx.clone(), url::serialize_query)?,
    )?;
    let weak_timers = timers.clone();
    let set_weak_timeout = move |ctx: Ctx<'js>, callback: Function<'js>, delay: f64| {
        weak_timers.borrow_mut().add_weak(&ctx, callback, delay)
    };
    add(
        "setWeakTimeout",
        Function::new(ctx.clone(), set_weak_timeout)?,
    )?;
    let origin = time_origin.clone();
    let now = move || {
        origin
            .get()
            .map_or(0.0, |(started, _)| coarsen(started.elapsed()))
    };
    add("now", Function::new(ctx.clone(), now)?)?;
    let origin = time_origin.clone();
    let time_origin = move || {
        let (_, wall) = origin.get().unwrap_or((Instant::now(), SystemTime::now()));
        coarsen(
            wall.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    };
    add("timeOrigin", Function::new(ctx.clone(), time_origin)?)?;
    Ok(native)
}

/// Milliseconds, rounded down to a multiple of [`TIMER_RESOLUTION`].
fn coarsen(elapsed: Duration) -> f64 {
    let ticks = elapsed.as_nanos() / TIMER_RESOLUTION.as_nanos();
    let ticks_per_ms = Duration::from_millis(1).as_nanos() / TIMER_RESOLUTION.as_nanos();
    ticks as f64 / ticks_per_ms as f64
}

/// QuickJS's class of an object (0 for primitives): a brand check no script can fake.
fn class_of(value: Value<'_>) -> u32 {
    if !value.is_object() {
        return 0;
    }
    // SAFETY: the value is a live object.
    unsafe { qjs::JS_GetClassID(value.as_raw()) }
}

/// `queueMicrotask`: the callback runs as a QuickJS job, so an exception it throws ends the
/// execution as an uncaught error, as the HTML standard's "report the exception" does in Node.
fn queue_microtask<'js>(ctx: Ctx<'js>, callback: Opt<Value<'js>>) -> Result<()> {
    let Some(callback) = callback.0.filter(Value::is_function) else {
        return Err(Exception::throw_type(
            &ctx,
            "Failed to execute 'queueMicrotask': parameter 1 is not of type 'Function'.",
        ));
    };
    let mut argument = callback.as_raw();
    // SAFETY: the context is live; QuickJS duplicates the argument it keeps.
    let status =
        unsafe { qjs::JS_EnqueueJob(ctx.as_raw().as_ptr(), Some(run_microtask), 1, &mut argument) };
    if status < 0 {
        return Err(Error::Exception);
    }
    Ok(())
}

unsafe extern "C" fn run_microtask(
    ctx: *mut qjs::JSContext,
    _argc: c_int,
    argv: *mut qjs::JSValue,
) -> qjs::JSValue {
    // SAFETY: QuickJS calls a job with the one argument it was enqueued with.
    unsafe {
        let callback = *argv;
        let undefined = qjs::JS_UNDEFINED;
        let result = qjs::JS_Call(ctx, callback, undefined, 0, std::ptr::null_mut());
        if qjs::JS_IsException(result) {
            return result;
        }
        qjs::JS_FreeValue(ctx, result);
        undefined
    }
}

/// A string argument as Unicode scalar values: quickjs-ng copies unpaired surrogates out as
/// three-byte sequences (WTF-8), which become U+FFFD here, as WebIDL's USVString conversion
/// and the Encoding Standard's encoder ask. The host copy is charged to the execution's memory
/// limit for as long as the value lives.
pub struct Usv(
    pub String,
    #[allow(dead_code, reason = "held, not read")] Charge,
);

impl<'js> FromJs<'js> for Usv {
    fn from_js(ctx: &Ctx<'js>, value: Value<'js>) -> Result<Self> {
        let raw_ctx = ctx.as_raw().as_ptr();
        let mut length = 0;
        // SAFETY: the context and value are live.
        let pointer = unsafe { qjs::JS_ToCStringLen2(raw_ctx, &mut length, value.as_raw(), false) };
        if pointer.is_null() {
            return Err(Error::Exception);
        }
        let copied = memory::charge(ctx, length as usize).map(|charge| {
            // SAFETY: the buffer holds `length` bytes until JS_FreeCString below.
            let bytes =
                unsafe { std::slice::from_raw_parts(pointer.cast::<u8>(), length as usize) };
            (bytes.to_vec(), charge)
        });
        // SAFETY: the buffer came from JS_ToCStringLen2 and is freed once.
        unsafe { qjs::JS_FreeCString(raw_ctx, pointer) };
        let (mut bytes, charge) = copied?;
        let mut at = 0;
        while at + 2 < bytes.len() {
            // A surrogate's three-byte form is ED A0..BF xx; U+FFFD's is EF BF BD.
            if bytes[at] == 0xED && bytes[at + 1] >= 0xA0 {
                bytes[at..at + 3].copy_from_slice("\u{FFFD}".as_bytes());
                at += 3;
            } else {
                at += 1;
            }
        }
        // With every surrogate replaced the bytes are UTF-8, so no second copy is made.
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        Ok(Self(text, charge))
    }
}

/// The bytes `[offset, offset + length)` of an `ArrayBuffer` (or `SharedArrayBuffer`), or
/// nothing when the buffer was detached or shrunk since the view's bounds were read.
///
/// # Safety
/// The slice aliases the buffer's memory: no script code may run while it is used.
#[expect(
    clippy::mut_from_ref,
    reason = "the bytes belong to the runtime, not to the value handle"
)]
pub unsafe fn buffer_bytes<'a>(
    buffer: &'a Value<'_>,
    offset: usize,
    length: usize,
) -> Option<&'a mut [u8]> {
    let mut size = 0;
    let ctx = buffer.ctx().as_raw().as_ptr();
    // SAFETY: the context and value are live; a non-buffer leaves an exception we drop.
    let data = unsafe { qjs::JS_GetArrayBuffer(ctx, &mut size, buffer.as_raw()) };
    if data.is_null() {
        buffer.ctx().catch();
        return None;
    }
    let end = offset.checked_add(length)?;
    if end > size as usize {
        return None;
    }
    // SAFETY: `data` holds `size` bytes and `end <= size`; the caller runs no script code
    // while the slice lives.
    Some(unsafe { std::slice::from_raw_parts_mut(data.add(offset), length) })
}

/// Reads a function from bytecode and evaluates it.
fn load<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> Result<Function<'js>> {
    let raw_ctx = ctx.as_raw().as_ptr();
    // SAFETY: the bytecode was written by this build of QuickJS from our own source;
    // JS_EvalFunction consumes the function read.
    let value = unsafe {
        let function = qjs::JS_ReadObject(
            raw_ctx,
            bytecode.as_ptr(),
            bytecode.len() as _,
            qjs::JS_READ_OBJ_BYTECODE as c_int,
        );
        if qjs::JS_IsException(function) {
            return Err(Error::Exception);
        }
        let value = qjs::JS_EvalFunction(raw_ctx, function);
        if qjs::JS_IsException(value) {
            return Err(Error::Exception);
        }
        Value::from_raw(ctx.clone(), value)
    };
    value
        .into_function()
        .ok_or_else(|| Error::new_from_js("value", "function"))
}

impl Bytecode {
    /// Compiles the JavaScript half. `primordials.js` sees the captured built-ins and returns
    /// them with its own top-level names, as one array; the groups see them all, those with
    /// `Prototype` inside uncurried.
    fn compile(ctx: &Ctx<'_>) -> Result<Self> {
        let captured: Vec<&'static str> = capture::names().collect();
        let own = PRIMORDIALS.lines().filter_map(|line| {
            let declared = line
                .strip_prefix("const ")
                .or_else(|| line.strip_prefix("class "))?;
            let end = declared.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            Some(&declared[..end])
        });
        let names: Vec<&'static str> = captured.iter().copied().chain(own).collect();
        let is_method = |name: &str| {
            // `ObjectGetPrototypeOf` is a plain function; `MapPrototypeGet` is a method.
            name.split_once("Prototype").is_some_and(|(_, rest)| {
                rest != "Of" && rest.starts_with(|c: char| c.is_ascii_uppercase())
            })
        };
        let mut captured_prologue = String::new();
        for (index, name) in captured.iter().enumerate() {
            captured_prologue.push_str(&format!("const {name} = captured[{index}];\n"));
        }
        // An array literal is the cheapest object to build with them all; a dense array's own
        // elements are read without consulting `Array.prototype`.
        let primordials = format!(
            "(function (captured, native) {{\n'use strict';\n{captured_prologue}{PRIMORDIALS}\n\
             return [{}];\n}})",
            names.join(", ")
        );
        // `uncurryThis` is defined before the methods that use it.
        let mut prologue = String::new();
        for methods in [false, true] {
            for (index, name) in names.iter().enumerate() {
                if is_method(name) != methods {
                    continue;
                }
                let value = format!("primordials[{index}]");
                let value = if methods {
                    format!("uncurryThis({value})")
                } else {
                    value
                };
                prologue.push_str(&format!("const {name} = {value};\n"));
            }
        }
        let groups = GROUPS
            .iter()
            .map(|group| {
                let source = format!(
                    "(function (primordials, native) {{\n'use strict';\n{prologue}{HELPERS}\n\
                     {group}\n}})"
                );
                compile(ctx, &source)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            names,
            primordials: compile(ctx, &primordials)?,
            groups,
        })
    }
}

/// Compiles a script to bytecode, without source text or debug information (smaller, so
/// quicker to read into every runtime).
fn compile(ctx: &Ctx<'_>, source: &str) -> Result<Vec<u8>> {
    let length = source.len();
    let source = CString::new(source).expect("the Web APIs' source has no NUL byte");
    let name: &CStr = c"web.js";
    let raw_ctx = ctx.as_raw().as_ptr();
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as c_int;
    let write_flags =
        qjs::JS_WRITE_OBJ_BYTECODE | qjs::JS_WRITE_OBJ_STRIP_SOURCE | qjs::JS_WRITE_OBJ_STRIP_DEBUG;
    // SAFETY: `source` is NUL-terminated; every value and buffer QuickJS returns is freed.
    unsafe {
        let function = qjs::JS_Eval(raw_ctx, source.as_ptr(), length as _, name.as_ptr(), flags);
        if qjs::JS_IsException(function) {
            return Err(Error::Exception);
        }
        let mut size = 0;
        let written = qjs::JS_WriteObject(raw_ctx, &mut size, function, write_flags as c_int);
        qjs::JS_FreeValue(raw_ctx, function);
        if written.is_null() {
            return Err(Error::Exception);
        }
        let bytecode = std::slice::from_raw_parts(written, size as usize).to_vec();
        qjs::js_free(raw_ctx, written.cast());
        Ok(bytecode)
    }
}
