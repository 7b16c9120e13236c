//! Built-ins captured before any script runs, so that copying values out keeps working when a
//! script replaces `Map.prototype.entries` or `String.prototype.slice`, and the bounded copy of
//! a string out of the runtime. Capturing is a few property reads: no script is compiled while
//! a runtime is being prepared.

use std::borrow::Cow;

use rquickjs::{
    Ctx, Function, Object, Result, Value,
    function::{Constructor, This},
    qjs,
};

/// The original built-ins the serializer calls.
pub struct Intrinsics<'js> {
    map_entries: Function<'js>,
    set_values: Function<'js>,
    map_iterator_next: Function<'js>,
    set_iterator_next: Function<'js>,
    string_slice: Function<'js>,
}

impl<'js> Intrinsics<'js> {
    /// Captures the built-ins; must run before any script code.
    pub fn capture(ctx: &Ctx<'js>) -> Result<Self> {
        let globals = ctx.globals();
        let prototype = |name: &str| -> Result<Object<'js>> {
            globals.get::<_, Object<'js>>(name)?.get("prototype")
        };
        let map_entries: Function<'js> = prototype("Map")?.get("entries")?;
        let set_values: Function<'js> = prototype("Set")?.get("values")?;
        // The iterators' `next` lives on their own prototypes, which scripts can reach and
        // change; capture it from a fresh iterator before any script runs.
        let next_of = |iterable: Object<'js>, iterate: &Function<'js>| -> Result<Function<'js>> {
            let iterator: Object<'js> = iterate.call((This(iterable),))?;
            iterator.get("next")
        };
        let construct = |name: &str| -> Result<Object<'js>> {
            globals.get::<_, Constructor<'js>>(name)?.construct(())
        };
        let (map, set) = (construct("Map")?, construct("Set")?);
        Ok(Self {
            map_iterator_next: next_of(map, &map_entries)?,
            set_iterator_next: next_of(set, &set_values)?,
            map_entries,
            set_values,
            string_slice: prototype("String")?.get("slice")?,
        })
    }

    /// An iterator over a Map's `[key, value]` pairs (`is_map`) or a Set's values, with the
    /// `next` to call on it.
    pub fn collection_iterator(
        &self,
        collection: &Value<'js>,
        is_map: bool,
    ) -> Result<(Object<'js>, &Function<'js>)> {
        let (iterate, next) = if is_map {
            (&self.map_entries, &self.map_iterator_next)
        } else {
            (&self.set_values, &self.set_iterator_next)
        };
        Ok((iterate.call((This(collection.clone()),))?, next))
    }

    /// The first `length` UTF-16 units of a string.
    pub fn string_head(&self, text: &Value<'js>, length: usize) -> Result<Value<'js>> {
        self.string_slice.call((This(text.clone()), 0, length))
    }
}

/// A string value copied out of the runtime, at most `max_units` UTF-16 units of it (cut inside
/// the runtime first, so no more than that is ever copied), as UTF-8 with unpaired surrogates
/// replaced. The flag says whether it was cut.
pub fn bounded_string<'js>(
    ctx: &Ctx<'js>,
    intrinsics: &Intrinsics<'js>,
    text: &Value<'js>,
    max_units: usize,
) -> Result<(String, bool)> {
    let units = string_units(ctx, text);
    let (text, cut) = if units > max_units {
        (intrinsics.string_head(text, max_units)?, true)
    } else {
        (text.clone(), false)
    };
    let mut length = 0;
    // SAFETY: the context and value are live; the returned buffer is owned by us until
    // JS_FreeCString and holds `length` bytes.
    let copied = unsafe {
        let pointer =
            qjs::JS_ToCStringLen2(ctx.as_raw().as_ptr(), &mut length, text.as_raw(), false);
        if pointer.is_null() {
            return Err(rquickjs::Error::Exception);
        }
        let bytes = std::slice::from_raw_parts(pointer.cast::<u8>(), length as usize);
        let copied = match String::from_utf8_lossy(bytes) {
            Cow::Borrowed(valid) => valid.to_owned(),
            Cow::Owned(replaced) => replaced,
        };
        qjs::JS_FreeCString(ctx.as_raw().as_ptr(), pointer);
        copied
    };
    Ok((copied, cut))
}

/// The length of a string value in UTF-16 units, read without running script code.
pub fn string_units(ctx: &Ctx<'_>, text: &Value<'_>) -> usize {
    let mut length: i64 = 0;
    // SAFETY: the context and value are live; a string primitive's length is read directly.
    let status = unsafe { qjs::JS_GetLength(ctx.as_raw().as_ptr(), text.as_raw(), &mut length) };
    if status < 0 {
        ctx.catch();
        return usize::MAX;
    }
    usize::try_from(length).unwrap_or(usize::MAX)
}
