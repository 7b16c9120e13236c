//! The globals a runtime adds to the language's (`console`, the timer functions and the Web
//! APIs) and those of the language it makes late (the typed arrays, [`crate::typed_arrays`]).
//! They are all defined before any script runs, and none is built until a script first
//! reaches for it, so preparing a runtime costs little more than a bare one: each is a lazy
//! property of the global object (`JS_DefineLazyProperty`, a patch of the vendored QuickJS),
//! which takes a slot and no object, and whose value one loader function makes on first
//! access. From then on it is a plain data property, as if it had been defined at once: what
//! a script reads, replaces, deletes, or asks `Object.getOwnPropertyDescriptor` about is the
//! same, only later.

use std::{cell::RefCell, ffi::c_int, rc::Rc};

use rquickjs::{Ctx, Error, Function, Object, Result, Value, qjs};

use crate::{console::ConsoleLog, fault, timers::Timers, typed_arrays, web::WebApis};

unsafe extern "C" {
    /// Defines `prop` on `this_obj` as a property whose value is `loader(name)`, made on first
    /// access; an existing configurable property is replaced in place (see
    /// `vendor/rquickjs-sys/PATCHES.md`, `lazy-host-property`). The property keeps a reference
    /// to `loader`. Returns -1 with an exception pending on failure.
    fn JS_DefineLazyProperty(
        ctx: *mut qjs::JSContext,
        this_obj: qjs::JSValue,
        prop: qjs::JSAtom,
        loader: qjs::JSValue,
        flags: c_int,
    ) -> c_int;
}

/// WebIDL's globals, and `console` as in browsers: writable, configurable, not enumerable; so
/// are the language's constructors.
const WEB_IDL: c_int = (qjs::JS_PROP_WRITABLE | qjs::JS_PROP_CONFIGURABLE) as c_int;
/// The timer functions, as plain assignments made them: enumerable too.
const ASSIGNED: c_int = WEB_IDL | qjs::JS_PROP_ENUMERABLE as c_int;

/// The loader of one runtime's globals.
pub struct Globals<'js> {
    loader: Function<'js>,
}

impl<'js> Globals<'js> {
    /// Defines every global on `ctx`'s global object; must run before any script code.
    pub fn install(
        ctx: &Ctx<'js>,
        console: Rc<ConsoleLog<'js>>,
        timers: Rc<RefCell<Timers<'js>>>,
        web: Rc<WebApis<'js>>,
    ) -> Result<Self> {
        // The loader lives as long as the global object, so until the runtime is freed: it
        // holds the runtime's parts weakly, and they release their script values when the
        // runtime's owner drops them, before that.
        let (console, timers, web) = (
            Rc::downgrade(&console),
            Rc::downgrade(&timers),
            Rc::downgrade(&web),
        );
        let load = move |ctx: Ctx<'js>, name: String| -> Result<Value<'js>> {
            let over = || fault::internal_error(&ctx, "the execution is over");
            if name == "console" {
                let console = console.upgrade().ok_or_else(over)?;
                return Ok(console.build(&ctx)?.into_value());
            }
            if typed_arrays::GLOBALS.contains(&name.as_str()) {
                let web = web.upgrade().ok_or_else(over)?;
                return web.typed_arrays(&ctx)?.get(name);
            }
            if Timers::GLOBALS.contains(&name.as_str()) {
                let timers = timers.upgrade().ok_or_else(over)?;
                return Ok(Timers::global(&timers, &ctx, &name)?.into_value());
            }
            web.upgrade().ok_or_else(over)?.global(&ctx, &name)
        };
        let globals = Self {
            loader: Function::new(ctx.clone(), load)?,
        };
        // First, where the language's other globals end.
        for name in typed_arrays::GLOBALS {
            globals.define(ctx, name, WEB_IDL)?;
        }
        globals.define(ctx, "console", WEB_IDL)?;
        for name in Timers::GLOBALS {
            globals.define(ctx, name, ASSIGNED)?;
        }
        for (name, _) in crate::web::GLOBALS {
            globals.define(ctx, name, WEB_IDL)?;
        }
        Ok(globals)
    }

    /// Defines `fetch`, `Headers` and `Response`, for executions granted `fetch`.
    pub fn enable_fetch(&self, ctx: &Ctx<'js>) -> Result<()> {
        for (name, _) in crate::web::FETCH_GLOBALS {
            self.define(ctx, name, WEB_IDL)?;
        }
        Ok(())
    }

    fn define(&self, ctx: &Ctx<'js>, name: &str, flags: c_int) -> Result<()> {
        define_lazy(ctx, &ctx.globals(), name, &self.loader, flags)
    }
}

/// Defines `name` on `object` as a property whose value is `loader(name)`, made on first
/// access.
fn define_lazy<'js>(
    ctx: &Ctx<'js>,
    object: &Object<'js>,
    name: &str,
    loader: &Function<'js>,
    flags: c_int,
) -> Result<()> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY: the context, object and loader are live; `name` is `name.len()` bytes; the atom
    // is freed once, and the property takes its own reference to the loader.
    unsafe {
        let atom = qjs::JS_NewAtomLen(raw, name.as_ptr().cast(), name.len() as _);
        if atom == qjs::JS_ATOM_NULL {
            return Err(Error::Exception);
        }
        let status = JS_DefineLazyProperty(raw, object.as_raw(), atom, loader.as_raw(), flags);
        qjs::JS_FreeAtom(raw, atom);
        if status < 0 {
            return Err(Error::Exception);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rquickjs::{Context, Runtime};

    use super::*;

    #[test]
    fn a_loader_that_reshapes_the_object_or_reads_its_own_property_leaves_it_consistent() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let calls = Rc::new(Cell::new(0));
            let counted = calls.clone();
            let loader = move |ctx: Ctx<'_>, name: String| -> Result<String> {
                counted.set(counted.get() + 1);
                // Moves the object's property table and deletes a property waiting its turn.
                ctx.eval::<(), _>(
                    "for (let i = 0; i < 500; i++) globalThis['grown' + i] = i; \
                     delete globalThis.deleted;",
                )?;
                if name == "reentered" && counted.get() == 1 {
                    let inner: String = ctx.globals().get("reentered")?;
                    return Ok(format!("outer saw {inner}"));
                }
                Ok(format!("made {name}"))
            };
            let loader = Function::new(ctx.clone(), loader).unwrap();
            for name in ["reentered", "deleted", "plain"] {
                define_lazy(&ctx, &ctx.globals(), name, &loader, WEB_IDL).unwrap();
            }
            drop(loader);
            let seen: String = ctx
                .eval(
                    "JSON.stringify([reentered, reentered, typeof deleted, plain, grown499, \
                      Object.getOwnPropertyDescriptor(globalThis, 'plain').writable])",
                )
                .unwrap();
            // The inner call's value is the one kept; the outer one's is dropped.
            assert_eq!(
                seen,
                r#"["made reentered","made reentered","undefined","made plain",499,true]"#
            );
            assert_eq!(calls.get(), 3);
        });
        // The loader, held by the global object only, is freed with the runtime.
        drop(context);
        runtime.run_gc();
    }
}
