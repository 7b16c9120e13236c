//! Built-ins captured before any script runs, so the serializer keeps working even when a script
//! replaces `Map.prototype.forEach`, `String.prototype.slice` or `Reflect.apply`. The helpers live
//! in a closure that no script can reach.

use rquickjs::{Ctx, Function, Object, Result};

const PRELUDE: &str = r#"(() => {
  const apply = Reflect.apply;
  const mapForEach = Map.prototype.forEach;
  const setForEach = Set.prototype.forEach;
  const slice = String.prototype.slice;
  return {
    mapEntries(map, limit) {
      const out = [];
      apply(mapForEach, map, [(value, key) => { if (out.length < limit) out[out.length] = [key, value]; }]);
      return out;
    },
    setValues(set, limit) {
      const out = [];
      apply(setForEach, set, [(value) => { if (out.length < limit) out[out.length] = value; }]);
      return out;
    },
    stringHead(text, length) {
      return apply(slice, text, [0, length]);
    },
  };
})()"#;

/// Helpers the serializer calls instead of the script-visible built-ins.
pub struct Intrinsics<'js> {
    /// `(map, limit) => [[key, value], ...]`, at most `limit` entries.
    pub map_entries: Function<'js>,
    /// `(set, limit) => [value, ...]`, at most `limit` values.
    pub set_values: Function<'js>,
    /// `(string, length) => string.slice(0, length)`.
    pub string_head: Function<'js>,
}

impl<'js> Intrinsics<'js> {
    /// Captures the helpers; must run before any script code.
    pub fn capture(ctx: &Ctx<'js>) -> Result<Self> {
        let helpers: Object<'js> = ctx.eval(PRELUDE)?;
        Ok(Self {
            map_entries: helpers.get("mapEntries")?,
            set_values: helpers.get("setValues")?,
            string_head: helpers.get("stringHead")?,
        })
    }
}
