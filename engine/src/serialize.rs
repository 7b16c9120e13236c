//! Turns JavaScript values into JSON text for `result` and console `data`, within a byte budget.
//!
//! JSON-compatible values map to themselves (objects by their own enumerable string keys, with
//! `toJSON` honoured as `JSON.stringify` does). Everything else becomes a readable marker string
//! or a tagged object, as documented in the README:
//!
//! | value | rendered as |
//! |---|---|
//! | `undefined` | `"undefined"` |
//! | `NaN`, `Infinity`, `-Infinity` | `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | BigInt `10n` | `"10n"` |
//! | Symbol | `"Symbol(description)"` |
//! | function | `"[Function: name]"` |
//! | Error | `{"name": .., "message": .., "stack": ..}` |
//! | Map / Set | `{"[Map]": [[key, value], ..]}` / `{"[Set]": [value, ..]}` |
//! | Promise, ArrayBuffer | `"[Promise]"`, `"[ArrayBuffer(n)]"` |
//! | typed array | array of numbers |
//! | circular reference | `"[Circular]"` |
//! | nesting deeper than [`MAX_DEPTH`] | `"[Object]"` / `"[Array]"` |
//! | a getter, trap or `toJSON` that throws | `"[Thrown: message]"` |
//! | output past the byte budget | `"[truncated]"` |
//!
//! Nothing is copied out of the runtime whole: strings, keys, names and descriptions are cut
//! inside the runtime to what the budget can still hold, and Maps and Sets are walked one entry
//! at a time. Serialising runs script code (getters, `toJSON`, Proxy traps) and so stays under
//! the execution's interrupt handler; the only way it fails is the uncatchable interrupt, which
//! is handed back as [`Interrupted`] so the caller can re-throw it.

use rquickjs::{Ctx, Function, Object, Value, function::This, object::Filter, qjs};

use crate::{
    intrinsics::{Intrinsics, bounded_string},
    json::JsonWriter,
};

/// How deep objects and arrays are followed before they are summarised.
pub const MAX_DEPTH: usize = 64;

/// Longest message kept in a `"[Thrown: message]"` marker, in characters.
const MAX_THROWN_MESSAGE: usize = 200;

/// The uncatchable exception (the execution's interrupt) raised while serialising.
pub struct Interrupted<'js>(pub Value<'js>);

type Step<'js> = Result<(), Interrupted<'js>>;

/// Serialises values of one context.
pub struct Serializer<'a, 'js> {
    ctx: Ctx<'js>,
    intrinsics: &'a Intrinsics<'js>,
    ancestors: Vec<Value<'js>>,
}

impl<'a, 'js> Serializer<'a, 'js> {
    pub fn new(ctx: Ctx<'js>, intrinsics: &'a Intrinsics<'js>) -> Self {
        Self {
            ctx,
            intrinsics,
            ancestors: Vec::new(),
        }
    }

    /// Writes one value to `out`.
    pub fn value(&mut self, out: &mut JsonWriter<'_>, value: &Value<'js>) -> Step<'js> {
        self.serialize(out, value, None)
    }

    /// A value as text, for an error's fields: strings as they are, anything else as JSON, in
    /// at most `budget` bytes of JSON once escaped.
    pub fn text(&mut self, value: &Value<'js>, budget: usize) -> Result<String, Interrupted<'js>> {
        if value.is_string() {
            let text = match bounded_string(&self.ctx, self.intrinsics, value, budget) {
                Ok((text, _)) => text,
                Err(_) => return self.thrown_text(),
            };
            return Ok(crate::json::bounded_text(&text, budget));
        }
        let mut json = Vec::new();
        let mut out = JsonWriter::new(&mut json, budget);
        self.value(&mut out, value)?;
        Ok(String::from_utf8(json).unwrap_or_default())
    }

    fn serialize(
        &mut self,
        out: &mut JsonWriter<'_>,
        value: &Value<'js>,
        key: Option<&Value<'js>>,
    ) -> Step<'js> {
        if out.exhausted() {
            return Ok(());
        }
        if value.is_object()
            && !value.is_function()
            && let Some(replacement) = self.call_to_json(value, key)?
        {
            return self.primitive_or_structure(out, &replacement);
        }
        self.primitive_or_structure(out, value)
    }

    fn primitive_or_structure(
        &mut self,
        out: &mut JsonWriter<'_>,
        value: &Value<'js>,
    ) -> Step<'js> {
        if value.is_undefined() {
            out.string("undefined");
        } else if value.is_null() {
            out.raw("null");
        } else if let Some(b) = value.as_bool() {
            out.raw(if b { "true" } else { "false" });
        } else if let Some(i) = value.as_int() {
            out.raw(&i.to_string());
        } else if let Some(f) = value.as_float() {
            number(out, f);
        } else if value.is_string() {
            self.string(out, value)?;
        } else if let Some(symbol) = value.as_symbol() {
            let description = match symbol.description() {
                Ok(description) if description.is_string() => self.bounded(out, &description)?,
                Ok(_) => String::new(),
                Err(_) => self.thrown_text()?,
            };
            out.string_prefix(&format!("Symbol({description})"));
        } else if value.is_big_int() {
            // SAFETY: the context and value are live; JS_ToString returns an owned value.
            let text = unsafe { qjs::JS_ToString(self.ctx.as_raw().as_ptr(), value.as_raw()) };
            let text = self.owned(text)?;
            let digits = self.bounded(out, &text)?;
            out.string_prefix(&format!("{digits}n"));
        } else if let Some(function) = value.as_function() {
            let name = self.function_name(out, function)?;
            match name {
                Some(name) => out.string_prefix(&format!("[Function: {name}]")),
                None => out.string("[Function (anonymous)]"),
            };
        } else if let Some(object) = value.as_object() {
            self.object(out, value, object)?;
        } else {
            out.string(&format!("[{}]", value.type_name()));
        }
        Ok(())
    }

    fn object(
        &mut self,
        out: &mut JsonWriter<'_>,
        value: &Value<'js>,
        object: &Object<'js>,
    ) -> Step<'js> {
        if self.ancestors.iter().any(|ancestor| ancestor == value) {
            out.string("[Circular]");
            return Ok(());
        }
        if value.is_promise() {
            out.string("[Promise]");
            return Ok(());
        }
        let raw = value.as_raw();
        // SAFETY: `raw` is a live object value owned by `value` for the duration of these calls.
        let (is_map, is_set, is_buffer, typed_array) = unsafe {
            (
                qjs::JS_IsMap(raw),
                qjs::JS_IsSet(raw),
                qjs::JS_IsArrayBuffer(raw),
                qjs::JS_GetTypedArrayType(raw) >= 0,
            )
        };
        if is_buffer {
            let length = self.get(object, "byteLength")?;
            let length = length.as_number().unwrap_or(0.0);
            out.string(&format!("[ArrayBuffer({length})]"));
            return Ok(());
        }
        if self.ancestors.len() >= MAX_DEPTH {
            let summary = if value.is_array() || typed_array {
                "[Array]"
            } else {
                "[Object]"
            };
            out.string(summary);
            return Ok(());
        }

        self.ancestors.push(value.clone());
        let step = if value.is_error() {
            self.error(out, object)
        } else if is_map || is_set {
            self.collection(out, value, is_map)
        } else if value.is_array() || typed_array {
            self.array(out, object)
        } else {
            self.plain_object(out, object)
        };
        self.ancestors.pop();
        step
    }

    fn error(&mut self, out: &mut JsonWriter<'_>, object: &Object<'js>) -> Step<'js> {
        if !out.begin_object() {
            return Ok(());
        }
        for field in ["name", "message", "stack"] {
            let value = self.get(object, field)?;
            if value.is_undefined() {
                continue;
            }
            if !out.key(field) {
                break;
            }
            self.serialize(out, &value, None)?;
        }
        out.end();
        Ok(())
    }

    /// A Map's pairs or a Set's values, walked one at a time until the budget runs out.
    fn collection(
        &mut self,
        out: &mut JsonWriter<'_>,
        value: &Value<'js>,
        is_map: bool,
    ) -> Step<'js> {
        let (iterator, next) = match self.intrinsics.collection_iterator(value, is_map) {
            Ok(iterator) => iterator,
            Err(_) => {
                self.thrown_marker(out)?;
                return Ok(());
            }
        };
        if !out.begin_object() {
            return Ok(());
        }
        if out.key(if is_map { "[Map]" } else { "[Set]" }) && out.begin_array() {
            while !out.exhausted() {
                let step: Object<'js> = match next.call((This(iterator.clone()),)) {
                    Ok(step) => step,
                    Err(_) => {
                        self.thrown_marker(out)?;
                        break;
                    }
                };
                // The step is a fresh object the iterator made, with its own data properties.
                if self.get(&step, "done")?.as_bool().unwrap_or(true) {
                    break;
                }
                let item = self.get(&step, "value")?;
                if is_map {
                    let Some(pair) = item.as_object() else { break };
                    if !out.begin_array() {
                        break;
                    }
                    for index in 0..2u32 {
                        let part = match pair.get::<_, Value<'js>>(index) {
                            Ok(part) => part,
                            Err(_) => self.thrown_value()?,
                        };
                        self.serialize(out, &part, None)?;
                    }
                    out.end();
                } else {
                    self.serialize(out, &item, None)?;
                }
            }
            out.end();
        }
        out.end();
        Ok(())
    }

    fn array(&mut self, out: &mut JsonWriter<'_>, object: &Object<'js>) -> Step<'js> {
        let length = self.length(object)?;
        if !out.begin_array() {
            return Ok(());
        }
        let mut index: i64 = 0;
        while index < length && !out.exhausted() {
            let item = match object.get::<_, Value<'js>>(index as u32) {
                Ok(item) => item,
                Err(_) => self.thrown_value()?,
            };
            self.serialize(out, &item, None)?;
            index += 1;
        }
        out.end();
        Ok(())
    }

    fn plain_object(&mut self, out: &mut JsonWriter<'_>, object: &Object<'js>) -> Step<'js> {
        // The keys are listed when the iterator is made, so a throwing `ownKeys` (or
        // `getOwnPropertyDescriptor`) trap is its first item: the object as a whole is then
        // the thrown marker, as for a throwing getter.
        let mut keys = object
            .own_keys::<rquickjs::Atom<'js>>(Filter::new().string().enum_only())
            .peekable();
        if let Some(Err(_)) = keys.peek() {
            return self.thrown_marker(out);
        }
        if !out.begin_object() {
            return Ok(());
        }
        while !out.exhausted() {
            let Some(Ok(atom)) = keys.next() else { break };
            let Ok(key) = atom.to_js_string().map(|key| key.into_value()) else {
                self.ctx.catch();
                continue;
            };
            let name = self.bounded(out, &key)?;
            if !out.key(&name) {
                break;
            }
            let item = match object.get::<_, Value<'js>>(atom) {
                Ok(item) => item,
                Err(_) => self.thrown_value()?,
            };
            self.serialize(out, &item, Some(&key))?;
        }
        out.end();
        Ok(())
    }

    /// Calls `value.toJSON(key)` when it is a function, as `JSON.stringify` does.
    fn call_to_json(
        &mut self,
        value: &Value<'js>,
        key: Option<&Value<'js>>,
    ) -> Result<Option<Value<'js>>, Interrupted<'js>> {
        let Some(object) = value.as_object() else {
            return Ok(None);
        };
        let to_json = match object.get::<_, Value<'js>>("toJSON") {
            Ok(to_json) => to_json,
            Err(_) => return self.thrown_value().map(Some),
        };
        let Some(to_json) = to_json.as_function() else {
            return Ok(None);
        };
        let key = match key {
            Some(key) => key.clone(),
            None => rquickjs::String::from_str(self.ctx.clone(), "")
                .map(|empty| empty.into_value())
                .unwrap_or_else(|_| Value::new_undefined(self.ctx.clone())),
        };
        match to_json.call::<_, Value<'js>>((This(value.clone()), key)) {
            Ok(replacement) => Ok(Some(replacement)),
            Err(_) => self.thrown_value().map(Some),
        }
    }

    fn string(&mut self, out: &mut JsonWriter<'_>, value: &Value<'js>) -> Step<'js> {
        let text = self.bounded(out, value)?;
        out.string_prefix(&text);
        Ok(())
    }

    /// A string value copied out, no longer than what `out` can still hold.
    fn bounded(
        &mut self,
        out: &JsonWriter<'_>,
        value: &Value<'js>,
    ) -> Result<String, Interrupted<'js>> {
        // One more unit than fits, so that a string that is too long is known to be cut.
        let units = out.remaining().saturating_add(1);
        match bounded_string(&self.ctx, self.intrinsics, value, units) {
            Ok((text, _)) => Ok(text),
            Err(_) => self.thrown_text(),
        }
    }

    fn function_name(
        &mut self,
        out: &JsonWriter<'_>,
        function: &Function<'js>,
    ) -> Result<Option<String>, Interrupted<'js>> {
        let name = match function.as_object() {
            Some(object) => self.get(object, "name")?,
            None => return Ok(None),
        };
        if !name.is_string() {
            return Ok(None);
        }
        let name = self.bounded(out, &name)?;
        Ok((!name.is_empty()).then_some(name))
    }

    fn get(&mut self, object: &Object<'js>, key: &str) -> Result<Value<'js>, Interrupted<'js>> {
        match object.get::<_, Value<'js>>(key) {
            Ok(value) => Ok(value),
            Err(_) => self.thrown_value(),
        }
    }

    fn length(&mut self, object: &Object<'js>) -> Result<i64, Interrupted<'js>> {
        let mut length: i64 = 0;
        // SAFETY: the context and object are live for the call; `length` is a valid out pointer.
        let status =
            unsafe { qjs::JS_GetLength(self.ctx.as_raw().as_ptr(), object.as_raw(), &mut length) };
        if status < 0 {
            self.thrown_value()?;
            return Ok(0);
        }
        Ok(length)
    }

    /// Wraps a value QuickJS returned with a reference we own, or takes its exception.
    fn owned(&mut self, raw: qjs::JSValue) -> Result<Value<'js>, Interrupted<'js>> {
        // SAFETY: `raw` was just returned by QuickJS with a reference we own.
        if unsafe { qjs::JS_IsException(raw) } {
            self.thrown_value()
        } else {
            Ok(unsafe { Value::from_raw(self.ctx.clone(), raw) })
        }
    }

    /// Takes the pending exception: the interrupt propagates, anything else becomes a short
    /// description.
    fn thrown_message(&mut self) -> Result<String, Interrupted<'js>> {
        let exception = self.ctx.catch();
        if exception.is_uncatchable_error() {
            return Err(Interrupted(exception));
        }
        let message = match exception.as_object() {
            Some(error) => error.get::<_, Value<'js>>("message"),
            None => Ok(exception),
        };
        let message = match message {
            Ok(message) if message.is_string() => message,
            Ok(_) => return Ok(String::new()),
            Err(_) => {
                let again = self.ctx.catch();
                if again.is_uncatchable_error() {
                    return Err(Interrupted(again));
                }
                return Ok(String::new());
            }
        };
        match bounded_string(&self.ctx, self.intrinsics, &message, MAX_THROWN_MESSAGE) {
            Ok((text, _)) => Ok(text),
            Err(_) => {
                let again = self.ctx.catch();
                if again.is_uncatchable_error() {
                    return Err(Interrupted(again));
                }
                Ok(String::new())
            }
        }
    }

    fn thrown_marker(&mut self, out: &mut JsonWriter<'_>) -> Step<'js> {
        let message = self.thrown_message()?;
        out.string_prefix(&format!("[Thrown: {message}]"));
        Ok(())
    }

    /// Like [`Self::thrown_message`], for callers that need a value to continue with: the
    /// marker string.
    fn thrown_value(&mut self) -> Result<Value<'js>, Interrupted<'js>> {
        let message = self.thrown_message()?;
        Ok(
            rquickjs::String::from_str(self.ctx.clone(), &format!("[Thrown: {message}]"))
                .map(|marker| marker.into_value())
                .unwrap_or_else(|_| Value::new_undefined(self.ctx.clone())),
        )
    }

    fn thrown_text(&mut self) -> Result<String, Interrupted<'js>> {
        let message = self.thrown_message()?;
        Ok(format!("[Thrown: {message}]"))
    }
}

/// A float as JSON: integral values as integers, others in the shortest form that reads back
/// the same; NaN and the infinities as marker strings.
fn number(out: &mut JsonWriter<'_>, f: f64) {
    if f.is_nan() {
        out.string("NaN");
    } else if f.is_infinite() {
        out.string(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        out.raw(&(f as i64).to_string());
    } else {
        match serde_json::Number::from_f64(f) {
            Some(number) => out.raw(&number.to_string()),
            None => out.raw("null"),
        };
    }
}
