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
//! (`JS_NewBuiltin`). Built-ins QuickJS made at once (constructors, getters, prototypes) are
//! captured as values.

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
    /// A new instance of the built-in `builtin` describes.
    fn JS_NewBuiltin(ctx: *mut qjs::JSContext, builtin: *const c_void) -> qjs::JSValue;
}

/// A built-in captured before any script ran.
#[derive(Clone)]
pub enum Captured<'js> {
    /// Made already: the value itself.
    Value(Value<'js>),
    /// Not made yet: QuickJS's static description of it, and the property to read from the
    /// instance made from it, if any (`Math.floor` is captured as `Math`'s description and
    /// `floor`).
    Builtin {
        builtin: *const c_void,
        key: Option<&'static str>,
    },
}

impl<'js> Captured<'js> {
    /// Captures own property `key` of `object` (the value of an accessor's getter when
    /// `getter`); a property of a built-in not made yet is captured as its description and
    /// `key`.
    pub fn read(ctx: &Ctx<'js>, object: &Self, key: &'static str) -> Result<Self> {
        match object {
            Self::Value(object) => {
                let atom = Atom::new(ctx, key)?;
                Self::read_atom(ctx, object, &atom)
            }
            Self::Builtin { builtin, key: None } => Ok(Self::Builtin {
                builtin: *builtin,
                key: Some(key),
            }),
            // No path reads three levels deep.
            Self::Builtin { .. } => Err(fault_path(ctx)),
        }
    }

    /// Captures own property `atom` of `object`, as [`Captured::read`].
    pub fn read_atom(ctx: &Ctx<'js>, object: &Value<'js>, atom: &Atom<'_, 'js>) -> Result<Self> {
        let raw = ctx.as_raw().as_ptr();
        let mut builtin = std::ptr::null();
        // SAFETY: the context, object and atom are live; QuickJS only reads the property.
        let found =
            unsafe { JS_GetOwnPropertyBuiltin(raw, object.as_raw(), atom.raw, &mut builtin) };
        if found == 1 && !builtin.is_null() {
            return Ok(Self::Builtin { builtin, key: None });
        }
        // SAFETY: as above; the result is owned.
        let value = unsafe { owned(ctx, qjs::JS_GetProperty(raw, object.as_raw(), atom.raw))? };
        Ok(Self::Value(value))
    }

    /// The getter of own accessor `atom` of `object` (`undefined` when there is none).
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
            Ok(Self::Value(Value::from_raw(ctx.clone(), descriptor.getter)))
        }
    }

    /// The value, made now if it was not made yet (a new instance each call).
    pub fn make(&self, ctx: &Ctx<'js>) -> Result<Value<'js>> {
        match self {
            Self::Value(value) => Ok(value.clone()),
            Self::Builtin { builtin, key } => {
                // SAFETY: `builtin` is a static description QuickJS gave; the result is owned.
                let made = unsafe { owned(ctx, JS_NewBuiltin(ctx.as_raw().as_ptr(), *builtin))? };
                match key {
                    None => Ok(made),
                    Some(key) => {
                        let atom = Atom::new(ctx, key)?;
                        // SAFETY: the context, value and atom are live; the result is owned.
                        unsafe {
                            owned(
                                ctx,
                                qjs::JS_GetProperty(ctx.as_raw().as_ptr(), made.as_raw(), atom.raw),
                            )
                        }
                    }
                }
            }
        }
    }

    /// The value when it was made already (a constructor or a prototype).
    pub fn value(&self) -> Option<&Value<'js>> {
        match self {
            Self::Value(value) => Some(value),
            Self::Builtin { .. } => None,
        }
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
