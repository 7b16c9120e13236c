//! Built-ins captured before any script runs, so the serializer keeps working even when a script
//! replaces `Map.prototype.forEach` or `String.prototype.slice`. Capturing is a few property
//! reads: no script is compiled while a runtime is being prepared.

use std::{cell::RefCell, rc::Rc};

use rquickjs::{Ctx, Function, Object, Result, Value, function::This};

/// The original built-ins the serializer calls.
pub struct Intrinsics<'js> {
    map_for_each: Function<'js>,
    set_for_each: Function<'js>,
    string_slice: Function<'js>,
}

impl<'js> Intrinsics<'js> {
    /// Captures the built-ins; must run before any script code.
    pub fn capture(ctx: &Ctx<'js>) -> Result<Self> {
        let globals = ctx.globals();
        let prototype = |name: &str| -> Result<Object<'js>> {
            globals.get::<_, Object<'js>>(name)?.get("prototype")
        };
        Ok(Self {
            map_for_each: prototype("Map")?.get("forEach")?,
            set_for_each: prototype("Set")?.get("forEach")?,
            string_slice: prototype("String")?.get("slice")?,
        })
    }

    /// A Map's `[key, value]` pairs, at most `limit` of them.
    pub fn map_entries(
        &self,
        ctx: &Ctx<'js>,
        map: &Value<'js>,
        limit: usize,
    ) -> Result<Vec<[Value<'js>; 2]>> {
        let entries = Rc::new(RefCell::new(Vec::new()));
        let sink = entries.clone();
        let collect = Function::new(ctx.clone(), move |value: Value<'js>, key: Value<'js>| {
            let mut entries = sink.borrow_mut();
            if entries.len() < limit {
                entries.push([key, value]);
            }
        })?;
        self.map_for_each
            .call::<_, ()>((This(map.clone()), collect))?;
        Ok(entries.take())
    }

    /// A Set's values, at most `limit` of them.
    pub fn set_values(
        &self,
        ctx: &Ctx<'js>,
        set: &Value<'js>,
        limit: usize,
    ) -> Result<Vec<Value<'js>>> {
        let values = Rc::new(RefCell::new(Vec::new()));
        let sink = values.clone();
        let collect = Function::new(ctx.clone(), move |value: Value<'js>| {
            let mut values = sink.borrow_mut();
            if values.len() < limit {
                values.push(value);
            }
        })?;
        self.set_for_each
            .call::<_, ()>((This(set.clone()), collect))?;
        Ok(values.take())
    }

    /// The first `length` UTF-16 units of a string.
    pub fn string_head(&self, text: &Value<'js>, length: usize) -> Result<Value<'js>> {
        self.string_slice.call((This(text.clone()), 0, length))
    }
}
