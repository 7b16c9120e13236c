//! The built-ins the serializer calls, captured before any script runs with those of the Web
//! APIs ([`crate::builtins`]), so that copying values out keeps working when a script replaces
//! `Map.prototype.entries` or `String.prototype.slice`, and the bounded copy of a string out of
//! the runtime. The functions are made the first time they are called.

use std::{borrow::Cow, cell::OnceCell};

use rquickjs::{Ctx, Function, Object, Result, Value, function::This, qjs};

use crate::builtins::Captured;

/// The original built-ins the serializer calls.
pub struct Intrinsics<'js> {
    map_entries: Captured<'js>,
    set_values: Captured<'js>,
    map_iterator_next: Captured<'js>,
    set_iterator_next: Captured<'js>,
    string_slice: Captured<'js>,
    made: OnceCell<Made<'js>>,
}

/// The functions, once made.
struct Made<'js> {
    map_entries: Function<'js>,
    set_values: Function<'js>,
    map_iterator_next: Function<'js>,
    set_iterator_next: Function<'js>,
    string_slice: Function<'js>,
}

impl<'js> Intrinsics<'js> {
    /// The serializer's built-ins, from those captured for the Web APIs before any script ran
    /// (`web::capture::SERIALIZER`): `Map.prototype.entries`, `String.prototype.slice`,
    /// `%MapIteratorPrototype%.next`, `Set.prototype.values` and `%SetIteratorPrototype%.next`.
    pub fn new(captured: [Captured<'js>; 5]) -> Self {
        let [
            map_entries,
            string_slice,
            map_iterator_next,
            set_values,
            set_iterator_next,
        ] = captured;
        Self {
            map_entries,
            set_values,
            map_iterator_next,
            set_iterator_next,
            string_slice,
            made: OnceCell::new(),
        }
    }

    fn made(&self, ctx: &Ctx<'js>) -> Result<&Made<'js>> {
        if let Some(made) = self.made.get() {
            return Ok(made);
        }
        let make = |captured: &Captured<'js>| -> Result<Function<'js>> {
            captured
                .make(ctx)?
                .into_function()
                .ok_or_else(|| rquickjs::Error::new_from_js("value", "function"))
        };
        let made = Made {
            map_entries: make(&self.map_entries)?,
            set_values: make(&self.set_values)?,
            map_iterator_next: make(&self.map_iterator_next)?,
            set_iterator_next: make(&self.set_iterator_next)?,
            string_slice: make(&self.string_slice)?,
        };
        Ok(self.made.get_or_init(|| made))
    }

    /// An iterator over a Map's `[key, value]` pairs (`is_map`) or a Set's values, with the
    /// `next` to call on it.
    pub fn collection_iterator(
        &self,
        collection: &Value<'js>,
        is_map: bool,
    ) -> Result<(Object<'js>, &Function<'js>)> {
        let made = self.made(collection.ctx())?;
        let (iterate, next) = if is_map {
            (&made.map_entries, &made.map_iterator_next)
        } else {
            (&made.set_values, &made.set_iterator_next)
        };
        Ok((iterate.call((This(collection.clone()),))?, next))
    }

    /// The first `length` UTF-16 units of a string.
    pub fn string_head(&self, text: &Value<'js>, length: usize) -> Result<Value<'js>> {
        let made = self.made(text.ctx())?;
        made.string_slice.call((This(text.clone()), 0, length))
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
