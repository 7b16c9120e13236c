//! The stack swc runs on: one per thread, mapped once ([`prepare_thread`]) and reused by every
//! strip, with an inaccessible guard region below it.
//!
//! Reusing it is part of what keeps stripping cheap: a stack mapped for each strip costs a
//! mapping, an unmapping and a page fault for every page swc touches, every time. The pages
//! past the first [`KEPT_WARM`] bytes are handed back to the system after each strip, so a
//! deeply nested script leaves no resident stack behind.
//!
//! The guard is what makes stripping safe against any input: swc's parser recurses once per
//! level of nesting with no limit of its own, and the nesting check ([`super::nesting`]) that
//! keeps ordinary deep input within the stack is an estimate that crafted input can fool. Input
//! that does runs swc into the guard, never past it (Rust probes every page of a large frame in
//! order), and the fault's address is inside [`guard`]: an embedding that catches the fault
//! (the worker does) answers the execution as nested too deeply instead of crashing. Nothing
//! can be recovered in the process after such a fault (swc's state and the allocator's may be
//! half-changed), so the embedding ends the process after answering.

use std::{cell::RefCell, ops::Range, panic};

/// The stack's size, its guard excluded.
pub const STRIP_STACK: usize = 16 * 1024 * 1024;

/// The inaccessible region below the stack. Larger than a page, although a page would do
/// with Rust's stack probes, in case code without them (none that swc uses) skipped a page.
const GUARD: usize = 256 * 1024;

/// The stretch at the stack's top whose pages stay resident between strips: what stripping an
/// ordinary script uses.
const KEPT_WARM: usize = 1024 * 1024;

/// A stack mapped with its guard; unmapped when its thread ends.
struct Stack {
    /// The mapping's start: the guard's.
    mapping: *mut u8,
}

impl Stack {
    fn map() -> Self {
        // SAFETY: an anonymous private mapping with no address asked for changes no memory in
        // use; its failure is checked.
        let mapping = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD + STRIP_STACK,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(
            mapping,
            libc::MAP_FAILED,
            "mapping the stripping stack failed: {}",
            std::io::Error::last_os_error()
        );
        let mapping = mapping.cast::<u8>();
        // SAFETY: the stretch above the guard is inside the mapping just made.
        let opened = unsafe {
            libc::mprotect(
                mapping.add(GUARD).cast(),
                STRIP_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(
            opened,
            0,
            "opening the stripping stack failed: {}",
            std::io::Error::last_os_error()
        );
        Self { mapping }
    }

    fn guard(&self) -> Range<usize> {
        let start = self.mapping as usize;
        start..start + GUARD
    }

    fn base(&self) -> *mut u8 {
        // SAFETY: the stack starts above the guard, inside the mapping.
        unsafe { self.mapping.add(GUARD) }
    }

    /// Gives the pages below the warm stretch back to the system; their contents are not
    /// needed again.
    fn release_cold_pages(&self) {
        // SAFETY: the range is inside the stack, below every frame alive now (none runs on
        // this stack between strips); reading it later gives zeroes, which is fine for a stack.
        unsafe {
            libc::madvise(
                self.base().cast(),
                STRIP_STACK - KEPT_WARM,
                libc::MADV_DONTNEED,
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's alone, and nothing runs on it now.
        unsafe { libc::munmap(self.mapping.cast(), GUARD + STRIP_STACK) };
    }
}

thread_local! {
    /// This thread's stack; taken out while a strip runs on it.
    static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

/// Maps this thread's stack now, if it has none, and returns its guard: the addresses whose
/// fault means a strip overflowed its stack. Call it before the thread is sandboxed.
pub fn prepare_thread() -> Range<usize> {
    STACK.with(|stack| stack.borrow_mut().get_or_insert_with(Stack::map).guard())
}

/// Runs `work` on this thread's stack.
pub fn run_on_stack<R>(work: impl FnOnce() -> R) -> R {
    // A strip never runs inside another; should one, it gets a stack of its own.
    let stack = STACK
        .with(|stack| stack.borrow_mut().take())
        .unwrap_or_else(Stack::map);
    let mut work = Some(work);
    let mut outcome = None;
    // SAFETY: the stack is page-aligned, a multiple of the page size, used by nothing else
    // while this runs, and guarded below; the callback does not unwind (a panic is caught
    // and resumed on the thread's own stack).
    unsafe {
        psm::on_stack(stack.base(), STRIP_STACK, || {
            let work = work.take().expect("run once");
            outcome = Some(panic::catch_unwind(panic::AssertUnwindSafe(work)));
        });
    }
    stack.release_cold_pages();
    STACK.with(|slot| *slot.borrow_mut() = Some(stack));
    match outcome.expect("the work ran") {
        Ok(value) => value,
        Err(panicked) => panic::resume_unwind(panicked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_the_mapped_stack_above_its_guard() {
        let guard = prepare_thread();
        let here = run_on_stack(|| {
            let marker = 0u8;
            std::hint::black_box(&marker) as *const u8 as usize
        });
        assert!(here > guard.end, "above the guard");
        assert!(here <= guard.end + STRIP_STACK, "inside the stack");
        assert_eq!(prepare_thread(), guard, "the same stack is reused");
    }

    #[test]
    fn a_panic_on_the_stack_reaches_the_caller() {
        let caught = panic::catch_unwind(|| run_on_stack(|| panic!("in swc")));
        assert!(caught.is_err());
        assert_eq!(run_on_stack(|| 2 + 2), 4, "the stack is usable again");
    }
}
