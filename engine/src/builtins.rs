//! Built-ins captured before any script runs, for the engine's own use, without making them.
//!
//! A script may replace `Map.prototype.entries` or `Object.defineProperty`; what the engine
//! calls (the serializer, the Web APIs) must be the originals, so they are captured before any
//! script runs. Reading them would make them: QuickJS defines most built-in methods, and
//! objects such as `Math` and `JSON`, as placeholders that become function objects on first
//! access, and making some eighty of them in every runtime costs as much as the rest of its
//! preparation. A [`Captured`] built-in that is still a placeholder is kept as QuickJS's static
//! description of it instead (`JS_GetOwnPropertyBuiltin`, a patch of the vendored QuickJS), and
//! a new instance, with the same native code, is made when the engine first needs it
//! (`JS_NewBuiltin`). Built-ins QuickJS made at once are captured as values (constructors,
//! prototypes), except getters implemented in C, kept as their native code
//! (`JS_GetCFunctionBuiltin`) and made anew in the same way. Descriptions are the same in every
//! runtime of the process: what the first runtime learnt stands for the originals in the later
//! ones ([`ProcessWide`]), which only read the values.

use std::{
    ffi::{c_int, c_void},
    sync::OnceLock,
};

use rquickjs::{Ctx, Error, Result, Value, qjs};

unsafe extern "C" {
    /// Stores in `*builtin` the static description of own property `prop` of `obj` and returns
    /// 1 when it is a built-in QuickJS has not made yet; 0 otherwise (see
    /// `vendor/rquickjs-sys/PATCHES.md`, `lazy-builtins`).
    fn JS_GetOwnPropertyBuiltin(
        ctx: *mut qjs::JSContext,
        obj: qjs::JSValue,
        prop: qjs::JSAtom,
        builtin: *mut *const c_void,
    ) -> c_int;
    /// Whether `atom` is one of QuickJS's predefined atoms, numbered alike in every runtime.
    fn JS_AtomIsPredefined(atom: qjs::JSAtom) -> c_int;
    /// A new instance of the built-in `builtin` describes.
    fn JS_NewBuiltin(ctx: *mut qjs::JSContext, builtin: *const c_void) -> qjs::JSValue;
    /// Stores what `JS_NewCFunction2` needs to make a function like `func` and returns 1 when
    /// `func` is a plain function implemented in C; 0 otherwise.
    fn JS_GetCFunctionBuiltin(
        ctx: *mut qjs::JSContext,
        func: qjs::JSValue,
        function: *mut qjs::JSCFunction,
        length: *mut c_int,
        cproto: *mut c_int,
        magic: *mut c_int,
    ) -> c_int;
}

/// A built-in described by what makes it, which is the same in every runtime of the process
/// and valid as long as it runs.
#[derive(Debug, Clone, Copy)]
pub enum Builtin {
    /// One QuickJS has not made yet: the address of its static `JSCFunctionListEntry`, and
    /// the property to read from the instance made from it, if any (`Math.floor` is `Math`'s
    /// entry and `floor`).
    Entry {
        entry: usize,
        key: Option<&'static str>,
    },
    /// A function implemented in C that QuickJS made at once (an accessor's getter): its
    /// native code and how QuickJS calls it.
    Native {
        function: qjs::JSCFunction,
        length: c_int,
        cproto: c_int,
        magic: c_int,
    },
}

/// A built-in captured before any script ran.
#[derive(Clone)]
pub enum Captured<'js> {
    /// Made already: the value itself.
    Value(Value<'js>),
    /// Not made yet.
    Builtin(Builtin),
}

impl<'js> Captured<'js> {
    /// Captures own property `key` of `object`; a property of a built-in not made yet is
    /// captured as its description and `key`.
    pub fn read(ctx: &Ctx<'js>, object: &Self, key: &'static str) -> Result<Self> {
        match object {
            Self::Value(object) => {
                let atom = Atom::new(ctx, key)?;
                Self::read_atom(ctx, object, &atom)
            }
            Self::Builtin(Builtin::Entry { entry, key: None }) => {
                Ok(Self::Builtin(Builtin::Entry {
                    entry: *entry,
                    key: Some(key),
                }))
            }
            // No path reads three levels deep.
            Self::Builtin(_) => Err(fault_path(ctx)),
        }
    }

    /// Captures property `atom` of `object` as a value, made now if it was not made yet (for
    /// what the first runtime found made already).
    pub fn read_value(ctx: &Ctx<'js>, object: &Value<'js>, atom: &Atom<'_, 'js>) -> Result<Self> {
        let raw = ctx.as_raw().as_ptr();
        // SAFETY: the context, object and atom are live; the result is owned.
        let value = unsafe { owned(ctx, qjs::JS_GetProperty(raw, object.as_raw(), atom.raw))? };
        Ok(Self::Value(value))
    }

    /// Captures own property `atom` of `object`, as [`Captured::read`].
    pub fn read_atom(ctx: &Ctx<'js>, object: &Value<'js>, atom: &Atom<'_, 'js>) -> Result<Self> {
        let raw = ctx.as_raw().as_ptr();
        let mut entry = std::ptr::null();
        // SAFETY: the context, object and atom are live; QuickJS only reads the property.
        let found = unsafe { JS_GetOwnPropertyBuiltin(raw, object.as_raw(), atom.raw, &mut entry) };
        if found == 1 && !entry.is_null() {
            return Ok(Self::Builtin(Builtin::Entry {
                entry: entry as usize,
                key: None,
            }));
        }
        // SAFETY: as above; the result is owned.
        let value = unsafe { owned(ctx, qjs::JS_GetProperty(raw, object.as_raw(), atom.raw))? };
        Ok(Self::Value(value))
    }

    /// The getter of own accessor `atom` of `object` (`undefined` when there is none); a
    /// getter implemented in C is captured as its native code.
    pub fn getter(ctx: &Ctx<'js>, object: &Value<'js>, atom: &Atom<'_, 'js>) -> Result<Self> {
        let raw = ctx.as_raw().as_ptr();
        let undefined = qjs::JS_UNDEFINED;
        let mut descriptor = qjs::JSPropertyDescriptor {
            flags: 0,
            value: undefined,
            getter: undefined,
            setter: undefined,
        };
        // SAFETY: the context, value and atom are live; a found descriptor's values are owned
        // and each is freed or handed over once.
        unsafe {
            let found = qjs::JS_GetOwnProperty(raw, &mut descriptor, object.as_raw(), atom.raw);
            if found < 0 {
                return Err(Error::Exception);
            }
            qjs::JS_FreeValue(raw, descriptor.value);
            qjs::JS_FreeValue(raw, descriptor.setter);
            let getter = Value::from_raw(ctx.clone(), descriptor.getter);
            let (mut function, mut length, mut cproto, mut magic) = (None, 0, 0, 0);
            let native = JS_GetCFunctionBuiltin(
                raw,
                getter.as_raw(),
                &mut function,
                &mut length,
                &mut cproto,
                &mut magic,
            );
            if native == 1 && function.is_some() {
                return Ok(Self::Builtin(Builtin::Native {
                    function,
                    length,
                    cproto,
                    magic,
                }));
            }
            Ok(Self::Value(getter))
        }
    }

    /// The value, made now if it was not made yet (a new instance each call).
    pub fn make(&self, ctx: &Ctx<'js>) -> Result<Value<'js>> {
        let raw = ctx.as_raw().as_ptr();
        match *self {
            Self::Value(ref value) => Ok(value.clone()),
            Self::Builtin(Builtin::Entry { entry, key }) => {
                // SAFETY: `entry` is a static description QuickJS gave; the result is owned.
                let made = unsafe { owned(ctx, JS_NewBuiltin(raw, entry as *const c_void))? };
                let Some(key) = key else {
                    return Ok(made);
                };
                let atom = Atom::new(ctx, key)?;
                // SAFETY: the context, value and atom are live; the result is owned.
                unsafe { owned(ctx, qjs::JS_GetProperty(raw, made.as_raw(), atom.raw)) }
            }
            Self::Builtin(Builtin::Native {
                function,
                length,
                cproto,
                magic,
            }) => {
                // SAFETY: the native code and the way to call it are what QuickJS gave for a
                // function of its own; the result is owned. The name is never shown: these
                // functions are only called by the engine's own code.
                unsafe {
                    owned(
                        ctx,
                        qjs::JS_NewCFunction2(
                            raw,
                            function,
                            c"".as_ptr(),
                            length,
                            cproto as qjs::JSCFunctionEnum,
                            magic,
                        ),
                    )
                }
            }
        }
    }

    /// The value when it was made already (a constructor or a prototype).
    pub fn value(&self) -> Option<&Value<'js>> {
        match self {
            Self::Value(value) => Some(value),
            Self::Builtin(_) => None,
        }
    }
}

/// A list of built-ins to capture in every runtime, remembering which were built-ins not
/// made yet when the first runtime of the process captured them: their descriptions are the
/// same in every runtime, and stand for the originals whatever a script does to the
/// properties, so later runtimes read only the others.
pub struct ProcessWide {
    learnt: OnceLock<Vec<Option<Builtin>>>,
}

/// The built-ins of one runtime's list: the process's descriptions, and the values this
/// runtime read for the others.
pub struct CapturedList<'js> {
    learnt: &'static [Option<Builtin>],
    /// In the order of the list, for the entries not learnt.
    values: Vec<Value<'js>>,
}

impl ProcessWide {
    pub const fn new() -> Self {
        Self {
            learnt: OnceLock::new(),
        }
    }

    /// True once the first runtime captured the list.
    pub fn learnt(&self) -> bool {
        self.learnt.get().is_some()
    }

    /// The `count` built-ins, the `i`th read by `read(i)` unless it was learnt; must run
    /// before any script code.
    pub fn capture<'js>(
        &'static self,
        ctx: &Ctx<'js>,
        count: usize,
        mut read: impl FnMut(usize) -> Result<Captured<'js>>,
    ) -> Result<CapturedList<'js>> {
        let mut values = Vec::new();
        let learnt = match self.learnt.get() {
            Some(learnt) => {
                for (index, learnt) in learnt.iter().enumerate() {
                    if learnt.is_none() {
                        // What the first runtime found made is made in every runtime.
                        let value = read(index)?;
                        let value = value.value().ok_or_else(|| fault_path(ctx))?;
                        values.push(value.clone());
                    }
                }
                learnt
            }
            None => {
                let mut learnt = Vec::with_capacity(count);
                for index in 0..count {
                    match read(index)? {
                        Captured::Builtin(builtin) => learnt.push(Some(builtin)),
                        Captured::Value(value) => {
                            learnt.push(None);
                            values.push(value);
                        }
                    }
                }
                self.learnt.get_or_init(|| learnt)
            }
        };
        Ok(CapturedList { learnt, values })
    }
}

impl<'js> CapturedList<'js> {
    /// The built-ins at `indices` of the list, in one pass.
    pub fn pick<const N: usize>(&self, indices: [usize; N]) -> Result<[Captured<'js>; N]> {
        let mut picked: [Option<Captured<'js>>; N] = std::array::from_fn(|_| None);
        let mut values = self.values.iter();
        for (index, learnt) in self.learnt.iter().enumerate() {
            let value = match learnt {
                Some(_) => None,
                None => values.next(),
            };
            let Some(slot) = indices.iter().position(|wanted| *wanted == index) else {
                continue;
            };
            picked[slot] = match (learnt, value) {
                (Some(builtin), _) => Some(Captured::Builtin(*builtin)),
                (None, value) => value.cloned().map(Captured::Value),
            };
        }
        let picked: Vec<Captured<'js>> = picked
            .into_iter()
            .collect::<Option<_>>()
            .ok_or(Error::Unknown)?;
        picked.try_into().map_err(|_| Error::Unknown)
    }

    /// Every built-in of the list, in order.
    pub fn entries(&self) -> impl Iterator<Item = Captured<'js>> + '_ {
        let mut values = self.values.iter();
        self.learnt.iter().map(move |learnt| match learnt {
            Some(builtin) => Captured::Builtin(*builtin),
            None => Captured::Value(values.next().expect("a value per entry not learnt").clone()),
        })
    }
}

/// The prototype of the iterators a Map's or Set's iteration methods return, which scripts
/// can reach and change through any iterator: `%MapIteratorPrototype%` (`of_map`) or
/// `%SetIteratorPrototype%`. Read by class, without making an iterator.
pub fn iterator_prototype<'js>(ctx: &Ctx<'js>, of_map: bool) -> Result<Value<'js>> {
    let (map, set) = *ITERATOR_CLASSES.get_or_init(|| learn_iterator_classes(ctx));
    let class = if of_map { map } else { set };
    if class == 0 {
        return Err(fault_path(ctx));
    }
    // SAFETY: the context is live and the class a built-in one; the result is owned.
    unsafe { owned(ctx, qjs::JS_GetClassProto(ctx.as_raw().as_ptr(), class)) }
}

/// QuickJS's class ids of the Map and Set iterators: built-in classes, numbered when QuickJS
/// is compiled, so the same in every runtime of the process. 0 when they could not be learnt.
static ITERATOR_CLASSES: OnceLock<(qjs::JSClassID, qjs::JSClassID)> = OnceLock::new();

fn learn_iterator_classes(ctx: &Ctx<'_>) -> (qjs::JSClassID, qjs::JSClassID) {
    let class_of = |source: &str| {
        ctx.eval::<Value<'_>, _>(source)
            .ok()
            .filter(Value::is_object)
            // SAFETY: the value is a live object.
            .map_or(0, |iterator| unsafe {
                qjs::JS_GetClassID(iterator.as_raw())
            })
    };
    (
        class_of("new Map().entries()"),
        class_of("new Set().values()"),
    )
}

/// An atom made from a name, freed when dropped.
pub struct Atom<'a, 'js> {
    ctx: &'a Ctx<'js>,
    raw: qjs::JSAtom,
}

impl<'a, 'js> Atom<'a, 'js> {
    pub fn new(ctx: &'a Ctx<'js>, name: &str) -> Result<Self> {
        // SAFETY: the context is live and `name` is `name.len()` bytes.
        let raw = unsafe {
            qjs::JS_NewAtomLen(ctx.as_raw().as_ptr(), name.as_ptr().cast(), name.len() as _)
        };
        if raw == qjs::JS_ATOM_NULL {
            return Err(Error::Exception);
        }
        Ok(Self { ctx, raw })
    }

    /// A predefined atom by its number (see [`Atom::predefined`]).
    pub fn from_predefined(ctx: &'a Ctx<'js>, predefined: Predefined) -> Self {
        Self {
            ctx,
            raw: predefined.0,
        }
    }

    /// The atom's number when it is one of QuickJS's predefined atoms (the names of its
    /// built-ins among them): the same in every runtime of the process, so a later runtime
    /// can use it without looking the name up.
    pub fn predefined(&self) -> Option<Predefined> {
        // SAFETY: a pure comparison of the number.
        (unsafe { JS_AtomIsPredefined(self.raw) } != 0).then_some(Predefined(self.raw))
    }

    /// The atom of a symbol (or of any value's property key).
    pub fn of_value(ctx: &'a Ctx<'js>, value: &Value<'js>) -> Result<Self> {
        // SAFETY: the context and value are live.
        let raw = unsafe { qjs::JS_ValueToAtom(ctx.as_raw().as_ptr(), value.as_raw()) };
        if raw == qjs::JS_ATOM_NULL {
            return Err(Error::Exception);
        }
        Ok(Self { ctx, raw })
    }
}

/// The number of a predefined atom, valid in every runtime; QuickJS neither counts nor frees
/// references to them.
#[derive(Debug, Clone, Copy)]
pub struct Predefined(qjs::JSAtom);

impl Drop for Atom<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: the atom was made by this value and is freed once.
        unsafe { qjs::JS_FreeAtom(self.ctx.as_raw().as_ptr(), self.raw) };
    }
}

/// # Safety
/// `value` must be owned by the caller, who gives it up.
unsafe fn owned<'js>(ctx: &Ctx<'js>, value: qjs::JSValue) -> Result<Value<'js>> {
    // SAFETY: the caller hands over its reference.
    unsafe {
        if qjs::JS_IsException(value) {
            return Err(Error::Exception);
        }
        Ok(Value::from_raw(ctx.clone(), value))
    }
}

fn fault_path(ctx: &Ctx<'_>) -> Error {
    crate::fault::internal_error(ctx, "a built-in could not be captured")
}
