//! Failures of the engine itself, as opposed to the script's: an invariant of a native that did
//! not hold, or a host facility (the random number source) that failed. The script gets an
//! `InternalError`, as from QuickJS, and the execution is marked, so that the process that ran
//! it runs nothing else ([`crate::Outcome::engine_fault`]). A script can throw an
//! `InternalError` of its own; only these mark the execution.

use std::cell::Cell;

use rquickjs::{Ctx, Exception};

thread_local! {
    /// Whether the execution running on this thread met a failure of the engine.
    static FAULTED: Cell<bool> = const { Cell::new(false) };
}

/// Throws an `InternalError` with `message` in the script and marks the execution as having
/// met a failure of the engine; the `Err` to return from the native.
pub fn internal_error(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    FAULTED.with(|faulted| faulted.set(true));
    Exception::throw_internal(ctx, message)
}

/// Whether a failure of the engine was met since the last call; clears the mark.
pub fn take() -> bool {
    FAULTED.with(Cell::take)
}

#[cfg(test)]
mod tests {
    use rquickjs::{Context, Runtime};

    use super::*;

    #[test]
    fn an_internal_error_marks_the_execution_until_the_mark_is_taken() {
        let runtime = Runtime::new().unwrap();
        let context = Context::full(&runtime).unwrap();
        take();
        context.with(|ctx| {
            let error = internal_error(&ctx, "an invariant did not hold");
            assert!(error.is_exception());
            let thrown = ctx.catch();
            let message: String = thrown.as_object().unwrap().get("message").unwrap();
            assert_eq!(message, "an invariant did not hold");
        });
        assert!(take());
        assert!(!take());
    }
}
