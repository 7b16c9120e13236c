//! Two fields of QuickJS's `JSContext` that its API does not reach, and that the sandbox needs:
//!
//! - `random_state`, the state of `Math.random`. QuickJS seeds it from the clock when a context
//!   is created, so a script that recovers it could predict the next tenant's values; each
//!   runtime gets a seed from the operating system instead.
//! - `interrupt_counter`. QuickJS calls the interrupt handler once every 10 000 polls (function
//!   calls and backward jumps), however long they take, so a loop around a slow built-in could
//!   overrun its deadline by thousands of iterations. The handler lowers the counter when polls
//!   are slow, so the clock is checked about once a millisecond (see `Clock` in the crate root).
//!
//! `JSContext` is private to quickjs.c. In the quickjs-ng version this crate is built with, its
//! last fields are `random_state` (u64), `hash_seed` (u32), `interrupt_counter` (int),
//! `loaded_modules` (two pointers), `compile_regexp`, `eval_internal` and `user_opaque`
//! (pointers). `user_opaque` is found by setting it through the public API to a unique value
//! and finding that value; the others sit at fixed distances before it. Before anything is
//! written, the layout is verified: `hash_seed` must be what QuickJS derived from
//! `random_state`, the counter must be in its range, and a seed written to `random_state` must
//! make `Math.random` return exactly what QuickJS's generator would. If any check fails (a
//! QuickJS upgrade changed the layout), nothing is ever written: `Math.random` keeps QuickJS's
//! seed, the handler keeps QuickJS's pace, and the supervisor's kill still bounds every
//! execution. The tests fail loudly in that case.

use std::{ffi::c_void, sync::OnceLock};

use rquickjs::{Ctx, Function, Object, qjs};

/// Byte offsets of the fields in `JSContext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextFields {
    random_state: usize,
    interrupt_counter: usize,
}

/// QuickJS's `JS_INTERRUPT_COUNTER_INIT`: polls between two calls of the interrupt handler.
pub const QUICKJS_POLLS_PER_CHECK: i32 = 10_000;

const RANDOM_STATE_BEFORE_OPAQUE: usize = 48;
const HASH_SEED_BEFORE_OPAQUE: usize = 40;
const COUNTER_BEFORE_OPAQUE: usize = 36;

/// A value only this module puts in `user_opaque`.
static SENTINEL: u8 = 0;

static LOCATED: OnceLock<Option<ContextFields>> = OnceLock::new();

impl ContextFields {
    /// The offsets, located and verified on the first fresh context of the process (`ctx` must
    /// be one no script has run in); `None` when the layout is not the expected one.
    pub fn get(ctx: &Ctx<'_>) -> Option<Self> {
        *LOCATED.get_or_init(|| {
            // SAFETY: `ctx` is a live context that no script has used, on this thread.
            unsafe { locate(ctx) }
        })
    }

    /// Seeds `Math.random` of `ctx`'s context.
    pub fn seed_random(&self, ctx: &Ctx<'_>, seed: u64) {
        // A zero state would make xorshift return zeros forever.
        let seed = seed.max(1);
        // SAFETY: the offset was verified for this build of QuickJS; the context is live and
        // used only on this thread.
        unsafe { field::<u64>(ctx, self.random_state).write_unaligned(seed) }
    }

    /// A pointer to the context's interrupt counter, valid while the context lives.
    pub fn interrupt_counter(&self, ctx: &Ctx<'_>) -> *mut i32 {
        // SAFETY: as in `seed_random`.
        unsafe { field::<i32>(ctx, self.interrupt_counter) }
    }
}

/// # Safety
/// `offset` must lie inside the context's allocation.
unsafe fn field<T>(ctx: &Ctx<'_>, offset: usize) -> *mut T {
    // SAFETY: the caller vouches for the offset.
    unsafe { ctx.as_raw().as_ptr().cast::<u8>().add(offset).cast::<T>() }
}

/// # Safety
/// `ctx` must be live, on this thread, and no script may have run in it.
unsafe fn locate(ctx: &Ctx<'_>) -> Option<ContextFields> {
    let raw = ctx.as_raw().as_ptr();
    // SAFETY (whole block): reads stay within the context's allocation, whose usable size
    // QuickJS reports; `user_opaque` is restored before returning.
    unsafe {
        let size = qjs::js_malloc_usable_size(raw, raw.cast::<c_void>().cast_const()) as usize;
        let previous = qjs::JS_GetContextOpaque(raw);
        let sentinel = (&raw const SENTINEL).cast_mut().cast::<c_void>();
        qjs::JS_SetContextOpaque(raw, sentinel);
        let base = raw.cast::<u8>().cast_const();
        let mut matches = (0..size.saturating_sub(size_of::<usize>() - 1))
            .step_by(size_of::<usize>())
            .filter(|offset| {
                base.add(*offset).cast::<usize>().read_unaligned() == sentinel as usize
            });
        let user_opaque = matches.next();
        let ambiguous = matches.next().is_some();
        qjs::JS_SetContextOpaque(raw, previous);
        let user_opaque = user_opaque.filter(|_| !ambiguous)?;

        let fields = ContextFields {
            random_state: user_opaque.checked_sub(RANDOM_STATE_BEFORE_OPAQUE)?,
            interrupt_counter: user_opaque - COUNTER_BEFORE_OPAQUE,
        };
        let state = base.add(fields.random_state).cast::<u64>().read_unaligned();
        let hash_seed = base
            .add(user_opaque - HASH_SEED_BEFORE_OPAQUE)
            .cast::<u32>()
            .read_unaligned();
        let counter = base
            .add(fields.interrupt_counter)
            .cast::<i32>()
            .read_unaligned();
        let layout_holds = state != 0
            && state.wrapping_mul(XORSHIFT_MULTIPLIER) as u32 == hash_seed
            && (0..=QUICKJS_POLLS_PER_CHECK).contains(&counter);
        if !layout_holds {
            return None;
        }
        // The write check: a known seed must give QuickJS's own first value.
        const PROBE_SEED: u64 = 0x0123_4567_89ab_cdef;
        fields.seed_random(ctx, PROBE_SEED);
        let drawn = math_random(ctx);
        fields.seed_random(ctx, state);
        (drawn == Some(first_random(PROBE_SEED))).then_some(fields)
    }
}

const XORSHIFT_MULTIPLIER: u64 = 0x2545_f491_4f6c_dd1d;

/// The first value QuickJS's `Math.random` gives from `state` (xorshift64*, as in quickjs.c).
fn first_random(state: u64) -> f64 {
    let mut x = state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    let v = x.wrapping_mul(XORSHIFT_MULTIPLIER);
    f64::from_bits((0x3ff << 52) | (v >> 12)) - 1.0
}

fn math_random(ctx: &Ctx<'_>) -> Option<f64> {
    let math: Object<'_> = ctx.globals().get("Math").ok()?;
    let random: Function<'_> = math.get("random").ok()?;
    random.call(()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rquickjs::{Context, Runtime};

    #[test]
    fn the_fields_are_found_in_this_build_of_quickjs() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            // SAFETY: a fresh context on this thread.
            let fields = unsafe { locate(&ctx) };
            assert!(
                fields.is_some(),
                "the JSContext layout changed: update context_fields.rs for this QuickJS"
            );
        });
    }

    #[test]
    fn a_seed_decides_math_random() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        context.with(|ctx| {
            let fields = ContextFields::get(&ctx).expect("located");
            fields.seed_random(&ctx, 42);
            let first: f64 = ctx.eval("Math.random()").unwrap();
            assert_eq!(first, first_random(42));
        });
    }

    #[test]
    fn a_lower_counter_makes_the_handler_run_more_often() {
        use std::{cell::Cell, rc::Rc};
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        let counter = context.with(|ctx| {
            let fields = ContextFields::get(&ctx).expect("located");
            fields.interrupt_counter(&ctx) as usize
        });
        let calls = Rc::new(Cell::new(0u32));
        let seen = calls.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            seen.set(seen.get() + 1);
            // SAFETY: the context outlives every call of the handler in this test.
            unsafe { (counter as *mut i32).write(10) };
            false
        })));
        context.with(|ctx| {
            ctx.eval::<(), _>("for (let i = 0; i < 10000; i++) {}")
                .unwrap()
        });
        // QuickJS alone would call the handler about once for 10 000 iterations.
        assert!(calls.get() > 500, "{} calls", calls.get());
    }
}
