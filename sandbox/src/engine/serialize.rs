//! Turns JavaScript values into JSON for `result` and console `data`.
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
//! Serialising runs script code (getters, `toJSON`, Proxy traps) and so stays under the
//! execution's interrupt handler; the only way it fails is the uncatchable interrupt, which is
//! handed back as [`Interrupted`] so the caller can re-throw it.

use std::cell::Cell;

use rquickjs::{Atom, Ctx, Function, Object, Symbol, Value, function::This, object::Filter, qjs};
use serde_json::{Map, Number, Value as Json};

use super::intrinsics::Intrinsics;

/// How deep objects and arrays are followed before they are summarised.
pub const MAX_DEPTH: usize = 64;

/// Marker left where output was cut because the byte budget ran out.
pub const TRUNCATED: &str = "[truncated]";

/// The uncatchable exception (the execution's interrupt) raised while serialising.
pub struct Interrupted<'js>(pub Value<'js>);

/// A budget of output bytes shared by everything serialised against it.
pub struct Budget<'a> {
    remaining: &'a Cell<usize>,
    exhausted: bool,
}

impl<'a> Budget<'a> {
    pub fn new(remaining: &'a Cell<usize>) -> Self {
        Self {
            remaining,
            exhausted: remaining.get() == 0,
        }
    }

    /// True once something had to be cut.
    pub fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn exhaust(&mut self) {
        self.remaining.set(0);
        self.exhausted = true;
    }

    fn charge(&mut self, bytes: usize) -> bool {
        let left = self.remaining.get();
        if bytes > left {
            self.exhaust();
            false
        } else {
            self.remaining.set(left - bytes);
            true
        }
    }
}

/// A member of a Map (key and value) or of a Set.
enum Item<'js> {
    Pair([Value<'js>; 2]),
    Single(Value<'js>),
}

/// Serialises values of one context against one budget.
pub struct Serializer<'a, 'js> {
    ctx: Ctx<'js>,
    intrinsics: &'a Intrinsics<'js>,
    budget: Budget<'a>,
    ancestors: Vec<Value<'js>>,
}

type Outcome<'js> = Result<Json, Interrupted<'js>>;

impl<'a, 'js> Serializer<'a, 'js> {
    pub fn new(ctx: Ctx<'js>, intrinsics: &'a Intrinsics<'js>, budget: Budget<'a>) -> Self {
        Self {
            ctx,
            intrinsics,
            budget,
            ancestors: Vec::new(),
        }
    }

    /// True once output had to be cut for the budget.
    pub fn truncated(&self) -> bool {
        self.budget.exhausted()
    }

    /// Serialises one value.
    pub fn value(&mut self, value: &Value<'js>) -> Outcome<'js> {
        self.serialize(value, None)
    }

    fn serialize(&mut self, value: &Value<'js>, key: Option<&str>) -> Outcome<'js> {
        if self.budget.exhausted() {
            return Ok(Json::String(TRUNCATED.into()));
        }
        if value.is_object()
            && !value.is_function()
            && let Some(replacement) = self.call_to_json(value, key)?
        {
            return self.primitive_or_structure(&replacement);
        }
        self.primitive_or_structure(value)
    }

    fn primitive_or_structure(&mut self, value: &Value<'js>) -> Outcome<'js> {
        let json = if value.is_undefined() {
            self.marker("undefined")
        } else if value.is_null() {
            self.charged(Json::Null, 4)
        } else if let Some(b) = value.as_bool() {
            self.charged(Json::Bool(b), 5)
        } else if let Some(i) = value.as_int() {
            self.charged(Json::from(i), 11)
        } else if let Some(f) = value.as_float() {
            self.number(f)
        } else if value.is_string() {
            self.string(value)?
        } else if let Some(symbol) = value.as_symbol() {
            let text = symbol_text(symbol);
            self.marker(&text)
        } else if value.is_big_int() {
            let text = self.coerce_to_string(value)?;
            self.marker(&format!("{text}n"))
        } else if let Some(function) = value.as_function() {
            let text = self.function_text(function)?;
            self.marker(&text)
        } else if let Some(object) = value.as_object() {
            self.object(value, object)?
        } else {
            self.marker(&format!("[{}]", value.type_name()))
        };
        Ok(json)
    }

    fn object(&mut self, value: &Value<'js>, object: &Object<'js>) -> Outcome<'js> {
        if self.ancestors.iter().any(|ancestor| ancestor == value) {
            return Ok(self.marker("[Circular]"));
        }
        let raw = value.as_raw();
        if value.is_promise() {
            return Ok(self.marker("[Promise]"));
        }
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
            return Ok(self.marker(&format!("[ArrayBuffer({length})]")));
        }
        if self.ancestors.len() >= MAX_DEPTH {
            let summary = if value.is_array() || typed_array {
                "[Array]"
            } else {
                "[Object]"
            };
            return Ok(self.marker(summary));
        }

        self.ancestors.push(value.clone());
        let json = if value.is_error() {
            self.error(object)
        } else if is_map || is_set {
            self.collection(value, is_map)
        } else if value.is_array() || typed_array {
            self.array(object)
        } else {
            self.plain_object(object)
        };
        self.ancestors.pop();
        json
    }

    fn error(&mut self, object: &Object<'js>) -> Outcome<'js> {
        self.charge(2);
        let mut map = Map::new();
        for field in ["name", "message", "stack"] {
            let value = self.get(object, field)?;
            if value.is_undefined() {
                continue;
            }
            self.charge(field.len() + 4);
            map.insert(field.to_owned(), self.serialize(&value, Some(field))?);
        }
        Ok(Json::Object(map))
    }

    fn collection(&mut self, value: &Value<'js>, is_map: bool) -> Outcome<'js> {
        let limit = self.budget.remaining.get().max(1);
        let tag = if is_map { "[Map]" } else { "[Set]" };
        let items = if is_map {
            self.intrinsics
                .map_entries(&self.ctx, value, limit)
                .map(|entries| entries.into_iter().map(Item::Pair).collect::<Vec<_>>())
        } else {
            self.intrinsics
                .set_values(&self.ctx, value, limit)
                .map(|values| values.into_iter().map(Item::Single).collect::<Vec<_>>())
        };
        let Ok(items) = items else {
            return self.thrown();
        };
        self.charge(tag.len() + 4);
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if self.budget.exhausted() {
                out.push(Json::String(TRUNCATED.into()));
                break;
            }
            let json = match item {
                Item::Single(value) => self.serialize(&value, None)?,
                Item::Pair([key, value]) => {
                    self.charge(3);
                    Json::Array(vec![
                        self.serialize(&key, None)?,
                        self.serialize(&value, None)?,
                    ])
                }
            };
            self.charge(1);
            out.push(json);
        }
        let mut map = Map::new();
        map.insert(tag.to_owned(), Json::Array(out));
        Ok(Json::Object(map))
    }

    fn array(&mut self, object: &Object<'js>) -> Outcome<'js> {
        let length = self.length(object)?;
        self.charge(2);
        let mut items = Vec::new();
        let mut index: i64 = 0;
        while index < length {
            if self.budget.exhausted() {
                items.push(Json::String(TRUNCATED.into()));
                break;
            }
            let item = match object.get::<_, Value<'js>>(index as u32) {
                Ok(item) => self.serialize(&item, None)?,
                Err(_) => self.thrown()?,
            };
            self.charge(1);
            items.push(item);
            index += 1;
        }
        Ok(Json::Array(items))
    }

    fn plain_object(&mut self, object: &Object<'js>) -> Outcome<'js> {
        self.charge(2);
        let mut map = Map::new();
        let mut keys = object.own_keys::<Atom<'js>>(Filter::new().string().enum_only());
        loop {
            if self.budget.exhausted() {
                map.insert(TRUNCATED.into(), Json::String(TRUNCATED.into()));
                break;
            }
            let atom = match keys.next() {
                None => break,
                Some(Ok(atom)) => atom,
                Some(Err(_)) => {
                    let thrown = self.thrown()?;
                    map.insert("[keys]".into(), thrown);
                    break;
                }
            };
            let key = match atom.to_string() {
                Ok(key) => key,
                Err(_) => continue,
            };
            if !self.charge(key.len() + 4) {
                continue;
            }
            let item = match object.get::<_, Value<'js>>(atom) {
                Ok(item) => self.serialize(&item, Some(&key))?,
                Err(_) => self.thrown()?,
            };
            map.insert(key, item);
        }
        Ok(Json::Object(map))
    }

    /// Calls `value.toJSON(key)` when it is a function, as `JSON.stringify` does.
    fn call_to_json(
        &mut self,
        value: &Value<'js>,
        key: Option<&str>,
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
        match to_json.call::<_, Value<'js>>((This(value.clone()), key.unwrap_or(""))) {
            Ok(replacement) => Ok(Some(replacement)),
            Err(_) => self.thrown_value().map(Some),
        }
    }

    fn string(&mut self, value: &Value<'js>) -> Outcome<'js> {
        let length = self.length_of_string(value);
        let left = self.budget.remaining.get();
        // Strings are measured in UTF-16 units; one unit is at most three UTF-8 bytes.
        let text = if length.saturating_mul(3) + 2 <= left {
            self.coerce_to_string(value)?
        } else {
            let keep = left / 3;
            let head = match self.intrinsics.string_head(value, keep) {
                Ok(head) => head,
                Err(_) => return self.thrown(),
            };
            let mut text = self.coerce_to_string(&head)?;
            text.push_str(TRUNCATED);
            self.budget.exhaust();
            return Ok(Json::String(text));
        };
        self.charge(text.len() + 2);
        Ok(Json::String(text))
    }

    fn number(&mut self, f: f64) -> Json {
        if f.is_nan() {
            return self.marker("NaN");
        }
        if f.is_infinite() {
            return self.marker(if f > 0.0 { "Infinity" } else { "-Infinity" });
        }
        self.charge(24);
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            Json::from(f as i64)
        } else {
            Number::from_f64(f).map_or(Json::Null, Json::Number)
        }
    }

    fn function_text(&mut self, function: &Function<'js>) -> Result<String, Interrupted<'js>> {
        let name = match function.as_object() {
            Some(object) => self.get(object, "name")?,
            None => Value::new_undefined(self.ctx.clone()),
        };
        let name = name
            .as_string()
            .and_then(|name| name.to_string().ok())
            .filter(|name| !name.is_empty());
        Ok(match name {
            Some(name) => format!("[Function: {name}]"),
            None => "[Function (anonymous)]".to_owned(),
        })
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

    fn length_of_string(&self, value: &Value<'js>) -> usize {
        let mut length: i64 = 0;
        // SAFETY: as in `length`; a string primitive's length is read without running script code.
        let status =
            unsafe { qjs::JS_GetLength(self.ctx.as_raw().as_ptr(), value.as_raw(), &mut length) };
        if status < 0 {
            self.ctx.catch();
            return usize::MAX;
        }
        usize::try_from(length).unwrap_or(usize::MAX)
    }

    fn coerce_to_string(&mut self, value: &Value<'js>) -> Result<String, Interrupted<'js>> {
        match value.get::<rquickjs::Coerced<String>>() {
            Ok(text) => Ok(text.0),
            Err(_) => {
                self.thrown_value()?;
                Ok(String::new())
            }
        }
    }

    /// Takes the pending exception: the interrupt propagates, anything else becomes a marker.
    fn thrown(&mut self) -> Outcome<'js> {
        let exception = self.ctx.catch();
        if exception.is_uncatchable_error() {
            return Err(Interrupted(exception));
        }
        let message = self.describe(&exception)?;
        Ok(self.marker(&format!("[Thrown: {message}]")))
    }

    /// The message of a caught exception, cut short; reading it may itself be interrupted.
    fn describe(&mut self, exception: &Value<'js>) -> Result<String, Interrupted<'js>> {
        let text = match exception.as_object() {
            Some(error) => error.get::<_, rquickjs::Coerced<String>>("message"),
            None => exception.get::<rquickjs::Coerced<String>>(),
        };
        match text {
            Ok(text) => Ok(text.0.chars().take(200).collect()),
            Err(_) => {
                let exception = self.ctx.catch();
                if exception.is_uncatchable_error() {
                    Err(Interrupted(exception))
                } else {
                    Ok(String::new())
                }
            }
        }
    }

    /// Like [`Self::thrown`], for callers that need a value to continue with: `undefined`.
    fn thrown_value(&mut self) -> Result<Value<'js>, Interrupted<'js>> {
        self.thrown()?;
        Ok(Value::new_undefined(self.ctx.clone()))
    }

    fn marker(&mut self, text: &str) -> Json {
        if self.charge(text.len() + 2) {
            Json::String(text.to_owned())
        } else {
            Json::String(TRUNCATED.into())
        }
    }

    fn charged(&mut self, json: Json, bytes: usize) -> Json {
        if self.charge(bytes) {
            json
        } else {
            Json::String(TRUNCATED.into())
        }
    }

    fn charge(&mut self, bytes: usize) -> bool {
        self.budget.charge(bytes)
    }
}

fn symbol_text(symbol: &Symbol<'_>) -> String {
    let description = symbol
        .description()
        .ok()
        .and_then(|description| description.as_string().and_then(|d| d.to_string().ok()));
    format!("Symbol({})", description.unwrap_or_default())
}
