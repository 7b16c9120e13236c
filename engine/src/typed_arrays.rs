//! The typed arrays (`ArrayBuffer`, `SharedArrayBuffer`, the typed array constructors,
//! `DataView` and `Atomics`), made when a script first reaches for one. QuickJS makes them
//! with some four hundred functions and properties, a quarter of what a bare runtime costs, and
//! most scripts never use them; so a runtime starts without them, with each of their globals a
//! lazy property ([`crate::globals`]) whose first access makes them all
//! (`JS_AddIntrinsicTypedArraysTo`, a patch of the vendored QuickJS that defines their
//! globals on an object of the engine's instead of the global object, which no script sees).
//! Each global then reads its constructor from that object, so what a script did to the
//! global object before (`Uint8Array = 1`, `delete DataView`) changes only the globals it
//! touched, as it would had they been made at once.
//!
//! Nothing else makes a typed array or a buffer without them: QuickJS's other built-ins never
//! do, the bytecode the engine reads back is only ever its own compiled scripts, and the Web
//! APIs, whose natives make `Uint8Array`s and `ArrayBuffer`s, make the typed arrays before they
//! build themselves ([`crate::web`]), capturing what they use of them as they are made.

use std::ffi::c_int;

use rquickjs::{Ctx, Error, Object, Result, Value, qjs};

unsafe extern "C" {
    /// QuickJS's typed arrays intrinsic, with its globals defined on `target` (see
    /// `vendor/rquickjs-sys/PATCHES.md`, `lazy-typed-arrays`). Returns -1 with an exception
    /// pending on failure.
    fn JS_AddIntrinsicTypedArraysTo(ctx: *mut qjs::JSContext, target: qjs::JSValue) -> c_int;
}

/// The globals the typed arrays define, in the order QuickJS defines them.
pub const GLOBALS: [&str; 16] = [
    "ArrayBuffer",
    "SharedArrayBuffer",
    "Uint8ClampedArray",
    "Int8Array",
    "Uint8Array",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "BigInt64Array",
    "BigUint64Array",
    "Float16Array",
    "Float32Array",
    "Float64Array",
    "DataView",
    "Atomics",
];

/// Makes the typed arrays in `ctx`: an object with no prototype whose properties are their
/// globals ([`GLOBALS`]). Call it again only after it failed (out of memory, say): each call
/// makes new prototypes for the typed array classes, which objects made before keep theirs.
pub fn make<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: the context is live; the new object is owned and handed over, and the intrinsic
    // only defines properties on it.
    unsafe {
        let made = qjs::JS_NewObjectProto(raw, qjs::JS_NULL);
        if qjs::JS_IsException(made) {
            return Err(Error::Exception);
        }
        let made = Value::from_raw(ctx.clone(), made);
        if JS_AddIntrinsicTypedArraysTo(raw, made.as_raw()) < 0 {
            return Err(Error::Exception);
        }
        made.into_object().ok_or(Error::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use rquickjs::{Context, Runtime, context::intrinsic, object::Filter};

    use super::*;

    #[test]
    fn the_made_object_holds_every_global_the_intrinsic_defines_in_its_order() {
        let runtime = Runtime::new().unwrap();
        let eager = Context::custom::<intrinsic::TypedArrays>(&runtime).unwrap();
        let names = |object: &Object<'_>| -> Vec<String> {
            let keys = object.own_keys(Filter::new().string());
            keys.collect::<Result<_>>().unwrap()
        };
        let before = Context::base(&runtime)
            .unwrap()
            .with(|base| names(&base.globals()));
        let defined: Vec<String> = eager.with(|ctx| {
            let all = names(&ctx.globals());
            all.into_iter()
                .filter(|name| !before.contains(name))
                .collect()
        });
        assert_eq!(defined, GLOBALS);

        let lazy = Context::custom::<intrinsic::Eval>(&runtime).unwrap();
        lazy.with(|ctx| {
            let made = make(&ctx).unwrap();
            assert_eq!(names(&made), GLOBALS);
            assert!(made.get_prototype().is_none());
            assert!(ctx.globals().get::<_, Value>("Uint8Array").unwrap().is_undefined());
            // The constructors are QuickJS's own, on the same prototypes as made at once.
            ctx.globals().set("Uint8Array", made.get::<_, Value>("Uint8Array").unwrap()).unwrap();
            let text: String = ctx
                .eval("Uint8Array.fromBase64('aGk=').toHex() + ' ' + Object.getPrototypeOf(Uint8Array).name")
                .unwrap();
            assert_eq!(text, "6869 TypedArray");
        });
    }
}
