//! Promises rejected with no handler yet, tracked as QuickJS reports them, so an execution fails
//! as Node's does when one stays unhandled, with host memory bounded.

use std::collections::HashMap;

use rquickjs::{Ctx, Persistent, Value, qjs};

/// Most promises rejected without a handler that are tracked at once; past this, the execution
/// fails as if one of them stayed unhandled, so host memory stays bounded.
pub const MAX_TRACKED_REJECTIONS: usize = 10_000;

/// Promises rejected with no handler yet, as QuickJS's rejection tracker reports them.
#[derive(Default)]
pub struct Rejections {
    pub pending: HashMap<usize, (Persistent<Value<'static>>, Persistent<Value<'static>>)>,
    pub overflowed: bool,
}

impl Rejections {
    pub fn track<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        promise: Value<'js>,
        reason: Value<'js>,
        handled: bool,
    ) {
        // SAFETY: a promise is an object; its pointer identifies it while we keep it alive.
        let id = unsafe { qjs::JS_VALUE_GET_PTR(promise.as_raw()) } as usize;
        if handled {
            self.pending.remove(&id);
        } else if self.pending.len() < MAX_TRACKED_REJECTIONS {
            self.pending.insert(
                id,
                (
                    Persistent::save(ctx, promise),
                    Persistent::save(ctx, reason),
                ),
            );
        } else {
            self.overflowed = true;
        }
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }
}
