//! The built-ins the Web APIs use, captured before any script runs, so that a script that
//! replaced `Object.defineProperty` or `Array.prototype.push` before its first use of `URL`
//! changes nothing in it. Capturing is property reads made here in Rust into a table the
//! runtime holds, which make nothing ([`crate::builtins`]): no script code is read or run, and
//! no object is made, until a script first reaches for a Web API (then `primordials.js` builds
//! the rest from this table). The typed arrays' built-ins are the exception: a runtime makes
//! the typed arrays late ([`crate::typed_arrays`]), and what is used of them is captured as
//! they are made ([`capture_typed`]), before any script can reach them.

use std::sync::OnceLock;

use rquickjs::{Ctx, Error, Object, Result, Value, qjs};

use crate::builtins::{self, Atom, Captured, CapturedList, Predefined, ProcessWide};

/// Where a captured value is read.
#[derive(Clone, Copy)]
enum Path {
    /// A global (`undefined` when there is none).
    Global(&'static str),
    /// A property of a global.
    Static(&'static str, &'static str),
    /// A property of the `prototype` of a global (of `%TypedArray%.prototype` for
    /// [`TYPED_ARRAY`]).
    Method(&'static str, &'static str),
    /// The getter of an accessor of the `prototype` of a global.
    Getter(&'static str, &'static str),
    /// The getter of `Symbol.toStringTag` on the `prototype` of a global.
    TagGetter(&'static str),
    /// The `next` of the iterators of a Map (`"Map"`) or a Set: what `for...of` calls on one,
    /// which lives on a prototype scripts can only reach through an iterator.
    IteratorNext(&'static str),
}

use Path::*;

/// The name `Method` and `Getter` use for `%TypedArray%` (the prototype of
/// `Uint8Array.prototype`), which is no global.
const TYPED_ARRAY: &str = "%TypedArray%";

/// What is captured, under the name the groups know it by. A name with `Prototype` and more
/// inside (`MapPrototypeGet`, not `ObjectGetPrototypeOf`) is a method or getter, "uncurried"
/// for the groups (see `primordials.js`).
const CAPTURED: &[(&str, Path)] = &[
    ("ReflectApply", Static("Reflect", "apply")),
    ("FunctionPrototypeBind", Method("Function", "bind")),
    ("FunctionPrototypeCall", Method("Function", "call")),
    ("ObjectDefineProperty", Static("Object", "defineProperty")),
    (
        "ObjectGetOwnPropertyDescriptor",
        Static("Object", "getOwnPropertyDescriptor"),
    ),
    ("ObjectSetPrototypeOf", Static("Object", "setPrototypeOf")),
    ("ObjectKeys", Static("Object", "keys")),
    ("ObjectHasOwn", Static("Object", "hasOwn")),
    ("ObjectPrototypeToString", Method("Object", "toString")),
    ("ReflectOwnKeys", Static("Reflect", "ownKeys")),
    ("Object_", Global("Object")),
    ("Array_", Global("Array")),
    ("ArrayPrototypeSort", Method("Array", "sort")),
    ("ArrayPrototypeSplice", Method("Array", "splice")),
    ("ArrayPrototypeSlice", Method("Array", "slice")),
    ("ArrayPrototypePush", Method("Array", "push")),
    ("IteratorPrototype", Static("Iterator", "prototype")),
    ("String_", Global("String")),
    ("StringPrototypeCharCodeAt", Method("String", "charCodeAt")),
    ("StringPrototypeSlice", Method("String", "slice")),
    (
        "StringPrototypeToLowerCase",
        Method("String", "toLowerCase"),
    ),
    (
        "StringPrototypeToUpperCase",
        Method("String", "toUpperCase"),
    ),
    (
        "StringPrototypeToWellFormed",
        Method("String", "toWellFormed"),
    ),
    ("StringPrototypeValueOf", Method("String", "valueOf")),
    ("NumberPrototypeValueOf", Method("Number", "valueOf")),
    ("BooleanPrototypeValueOf", Method("Boolean", "valueOf")),
    ("BigIntPrototypeValueOf", Method("BigInt", "valueOf")),
    ("Number_", Global("Number")),
    ("Promise_", Global("Promise")),
    ("PromisePrototypeThen", Method("Promise", "then")),
    ("JSONParse", Static("JSON", "parse")),
    ("JSONStringify", Static("JSON", "stringify")),
    ("MathFloor", Static("Math", "floor")),
    ("SymbolIterator", Static("Symbol", "iterator")),
    ("SymbolToStringTag", Static("Symbol", "toStringTag")),
    ("Error_", Global("Error")),
    ("TypeError_", Global("TypeError")),
    ("RangeError_", Global("RangeError")),
    ("EvalError_", Global("EvalError")),
    ("ReferenceError_", Global("ReferenceError")),
    ("SyntaxError_", Global("SyntaxError")),
    ("URIError_", Global("URIError")),
    ("Date_", Global("Date")),
    ("DatePrototypeGetTime", Method("Date", "getTime")),
    ("RegExp_", Global("RegExp")),
    ("RegExpPrototypeGetSource", Getter("RegExp", "source")),
    ("RegExpPrototypeGetFlags", Getter("RegExp", "flags")),
    ("Map_", Global("Map")),
    ("MapPrototypeGet", Method("Map", "get")),
    ("MapPrototypeSet", Method("Map", "set")),
    ("MapPrototypeHas", Method("Map", "has")),
    ("MapPrototypeEntries", Method("Map", "entries")),
    ("MapIteratorPrototypeNext", IteratorNext("Map")),
    ("Set_", Global("Set")),
    ("SetPrototypeAdd", Method("Set", "add")),
    ("SetPrototypeValues", Method("Set", "values")),
    ("SetIteratorPrototypeNext", IteratorNext("Set")),
];

/// What is captured of the typed arrays, which a runtime makes when a script first reaches for
/// them ([`crate::typed_arrays`]): read then, from the constructors as made, before the
/// script gets any of them. Their globals are read from where they were made, which no script
/// sees; anything else they need (`Symbol.toStringTag`) from [`CAPTURED`].
const CAPTURED_TYPED: &[(&str, Path)] = &[
    ("ArrayBuffer_", Global("ArrayBuffer")),
    ("ArrayBufferPrototypeSlice", Method("ArrayBuffer", "slice")),
    (
        "ArrayBufferPrototypeGetByteLength",
        Getter("ArrayBuffer", "byteLength"),
    ),
    (
        "ArrayBufferPrototypeGetDetached",
        Getter("ArrayBuffer", "detached"),
    ),
    (
        "ArrayBufferPrototypeGetResizable",
        Getter("ArrayBuffer", "resizable"),
    ),
    (
        "ArrayBufferPrototypeGetMaxByteLength",
        Getter("ArrayBuffer", "maxByteLength"),
    ),
    ("TypedArrayPrototypeGetName", TagGetter(TYPED_ARRAY)),
    (
        "TypedArrayPrototypeGetBuffer",
        Getter(TYPED_ARRAY, "buffer"),
    ),
    (
        "TypedArrayPrototypeGetByteOffset",
        Getter(TYPED_ARRAY, "byteOffset"),
    ),
    (
        "TypedArrayPrototypeGetByteLength",
        Getter(TYPED_ARRAY, "byteLength"),
    ),
    (
        "TypedArrayPrototypeGetLength",
        Getter(TYPED_ARRAY, "length"),
    ),
    ("TypedArrayPrototypeSet", Method(TYPED_ARRAY, "set")),
    ("Uint8Array_", Global("Uint8Array")),
    ("SharedArrayBuffer_", Global("SharedArrayBuffer")),
    (
        "SharedArrayBufferPrototypeGetByteLength",
        Getter("SharedArrayBuffer", "byteLength"),
    ),
    ("DataView_", Global("DataView")),
    ("DataViewPrototypeGetBuffer", Getter("DataView", "buffer")),
    (
        "DataViewPrototypeGetByteOffset",
        Getter("DataView", "byteOffset"),
    ),
    (
        "DataViewPrototypeGetByteLength",
        Getter("DataView", "byteLength"),
    ),
    ("Int8Array_", Global("Int8Array")),
    ("Uint8ClampedArray_", Global("Uint8ClampedArray")),
    ("Int16Array_", Global("Int16Array")),
    ("Uint16Array_", Global("Uint16Array")),
    ("Int32Array_", Global("Int32Array")),
    ("Uint32Array_", Global("Uint32Array")),
    ("Float16Array_", Global("Float16Array")),
    ("Float32Array_", Global("Float32Array")),
    ("Float64Array_", Global("Float64Array")),
    ("BigInt64Array_", Global("BigInt64Array")),
    ("BigUint64Array_", Global("BigUint64Array")),
];

/// Where the serializer's built-ins are in [`CAPTURED`] (see [`crate::intrinsics`]): `Map`'s
/// and `Set`'s iteration methods, their iterators' `next`, and `String.prototype.slice`.
pub const SERIALIZER: [usize; 5] = [
    index_of("MapPrototypeEntries"),
    index_of("StringPrototypeSlice"),
    index_of("MapIteratorPrototypeNext"),
    index_of("SetPrototypeValues"),
    index_of("SetIteratorPrototypeNext"),
];

/// The index of `name` in [`CAPTURED`], found when compiling.
const fn index_of(name: &str) -> usize {
    let mut index = 0;
    while index < CAPTURED.len() {
        let known = CAPTURED[index].0.as_bytes();
        let name = name.as_bytes();
        if known.len() == name.len() {
            let mut at = 0;
            while at < known.len() && known[at] == name[at] {
                at += 1;
            }
            if at == known.len() {
                return index;
            }
        }
        index += 1;
    }
    panic!("not a captured name")
}

/// Where `Symbol.toStringTag` is in [`CAPTURED`], for [`capture_typed`].
pub const TO_STRING_TAG: usize = index_of("SymbolToStringTag");

/// The names of the captured values: those [`capture`] returns, then those of
/// [`capture_typed`].
pub fn names() -> impl Iterator<Item = &'static str> {
    CAPTURED.iter().chain(CAPTURED_TYPED).map(|(name, _)| *name)
}

/// Captures every value of [`CAPTURED`]; must run before any script code.
pub fn capture<'js>(ctx: &Ctx<'js>) -> Result<CapturedList<'js>> {
    LANGUAGE.capture(ctx, ctx.globals().into_value(), None)
}

/// Captures every value of [`CAPTURED_TYPED`], reading their globals from `made`, where the
/// typed arrays were just made; must run before any script code gets one of them.
/// `to_string_tag` is `Symbol.toStringTag`, as [`capture`] captured it.
pub fn capture_typed<'js>(
    ctx: &Ctx<'js>,
    made: &Object<'js>,
    to_string_tag: Value<'js>,
) -> Result<CapturedList<'js>> {
    TYPED.capture(ctx, made.clone().into_value(), Some(to_string_tag))
}

static LANGUAGE: List = List::new(CAPTURED);
static TYPED: List = List::new(CAPTURED_TYPED);

/// One list of built-ins to capture, and what the first runtime of the process learnt of it.
struct List {
    paths: &'static [(&'static str, Path)],
    learnt: ProcessWide,
    /// The atoms of the names of [`Path::Global`]s, when predefined, by index in `paths`.
    global_atoms: OnceLock<Vec<Option<Predefined>>>,
}

impl List {
    const fn new(paths: &'static [(&'static str, Path)]) -> Self {
        Self {
            paths,
            learnt: ProcessWide::new(),
            global_atoms: OnceLock::new(),
        }
    }

    /// Captures the list, reading [`Path::Global`]s from `global`.
    fn capture<'js>(
        &'static self,
        ctx: &Ctx<'js>,
        global: Value<'js>,
        to_string_tag: Option<Value<'js>>,
    ) -> Result<CapturedList<'js>> {
        let mut reader = Reader {
            ctx,
            list: self,
            global,
            to_string_tag,
            learnt: self.learnt.learnt(),
            globals: Vec::with_capacity(48),
            prototypes: Vec::with_capacity(24),
        };
        let captured = self
            .learnt
            .capture(ctx, self.paths.len(), |index| reader.read(index))?;
        if self.global_atoms.get().is_none() {
            let atoms = self
                .paths
                .iter()
                .map(|(_, path)| match path {
                    Global(name) => Ok(Atom::new(ctx, name)?.predefined()),
                    _ => Ok(None),
                })
                .collect::<Result<_>>()?;
            self.global_atoms.get_or_init(|| atoms);
        }
        Ok(captured)
    }
}

/// Captures values, keeping the globals and prototypes read on the way for the next ones.
struct Reader<'a, 'js> {
    ctx: &'a Ctx<'js>,
    list: &'static List,
    /// Where [`Path::Global`]s are read.
    global: Value<'js>,
    /// `Symbol.toStringTag`, for [`Path::TagGetter`]s: given by the list's caller, never read
    /// from `global` (only [`CAPTURED_TYPED`] has them, whose `global` holds no `Symbol`).
    to_string_tag: Option<Value<'js>>,
    /// The first runtime learnt what is a built-in not made yet: what is left to read is made.
    learnt: bool,
    globals: Vec<(&'static str, Captured<'js>)>,
    prototypes: Vec<(&'static str, Value<'js>)>,
}

impl<'js> Reader<'_, 'js> {
    fn read(&mut self, index: usize) -> Result<Captured<'js>> {
        let ctx = self.ctx;
        match self.list.paths[index].1 {
            Global(name) => {
                let predefined = self.list.global_atoms.get().and_then(|atoms| atoms[index]);
                match predefined {
                    // Only what was made already is left to read.
                    Some(atom) if self.learnt => {
                        Captured::read_value(ctx, &self.global, &Atom::from_predefined(ctx, atom))
                    }
                    _ => self.global(name),
                }
            }
            Static(name, key) => Captured::read(ctx, &self.global(name)?, key),
            Method(name, key) => {
                Captured::read_atom(ctx, &self.prototype(name)?, &Atom::new(ctx, key)?)
            }
            Getter(name, key) => {
                Captured::getter(ctx, &self.prototype(name)?, &Atom::new(ctx, key)?)
            }
            TagGetter(name) => {
                let tag = self
                    .to_string_tag
                    .clone()
                    .ok_or_else(|| capture_failed(ctx))?;
                Captured::getter(ctx, &self.prototype(name)?, &Atom::of_value(ctx, &tag)?)
            }
            IteratorNext(name) => {
                let prototype = builtins::iterator_prototype(ctx, name == "Map")?;
                Captured::read_atom(ctx, &prototype, &Atom::new(ctx, "next")?)
            }
        }
    }

    fn global(&mut self, name: &'static str) -> Result<Captured<'js>> {
        if let Some((_, value)) = self
            .globals
            .iter()
            .rev()
            .find(|(known, _)| same(known, name))
        {
            return Ok(value.clone());
        }
        let atom = Atom::new(self.ctx, name)?;
        let value = if self.learnt {
            Captured::read_value(self.ctx, &self.global, &atom)?
        } else {
            Captured::read_atom(self.ctx, &self.global, &atom)?
        };
        self.globals.push((name, value.clone()));
        Ok(value)
    }

    fn prototype(&mut self, name: &'static str) -> Result<Value<'js>> {
        if let Some((_, value)) = self
            .prototypes
            .iter()
            .rev()
            .find(|(known, _)| same(known, name))
        {
            return Ok(value.clone());
        }
        let prototype = if name == TYPED_ARRAY {
            let uint8 = self.prototype("Uint8Array")?;
            // SAFETY: the context and value are live; the result is owned and handed over.
            unsafe {
                let prototype = qjs::JS_GetPrototype(self.ctx.as_raw().as_ptr(), uint8.as_raw());
                if qjs::JS_IsException(prototype) {
                    return Err(Error::Exception);
                }
                Value::from_raw(self.ctx.clone(), prototype)
            }
        } else {
            let constructor = self.global(name)?;
            let constructor = constructor
                .value()
                .ok_or_else(|| capture_failed(self.ctx))?;
            let key = Atom::new(self.ctx, "prototype")?;
            let prototype = Captured::read_atom(self.ctx, constructor, &key)?;
            let prototype = prototype.value().ok_or_else(|| capture_failed(self.ctx))?;
            prototype.clone()
        };
        self.prototypes.push((name, prototype.clone()));
        Ok(prototype)
    }
}

/// Whether two names of [`CAPTURED`] are the same literal: the caches compare addresses, as a
/// miss only reads a value twice.
fn same(known: &str, name: &str) -> bool {
    std::ptr::eq(known, name)
}

fn capture_failed(ctx: &Ctx<'_>) -> Error {
    crate::fault::internal_error(ctx, "a built-in of the Web APIs could not be captured")
}
