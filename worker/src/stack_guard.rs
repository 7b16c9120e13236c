//! A job whose TypeScript runs the stripper out of stack ends as an error of that job, not as
//! a crash of its worker.
//!
//! swc's parser recurses once per level of nesting with no limit of its own. The engine runs it
//! on a stack of its own with an inaccessible guard region below (`engine::typescript`), and
//! refuses input whose nesting it estimates too deep for that stack; input crafted to fool the
//! estimate reaches the guard. Here a SIGSEGV handler, on an alternate signal stack of its own,
//! looks at the faulting address: inside the guard, it sends the pre-encoded
//! [`Report::NestedTooDeeply`] frame and exits with [`EXIT_NESTED_TOO_DEEPLY`], the same two
//! system calls as running out of memory ([`crate::allocator`]); the supervisor answers the
//! job `syntax`, nested too deeply, and replaces the worker. The process is not continued: swc's
//! state, and the allocator's if the fault came inside it, may be half-changed.
//!
//! Any other SIGSEGV (another fault, or one sent by another process) is not this handler's: it
//! was reset to the default action as it was entered (`SA_RESETHAND`), and raising the signal
//! again ends the process by SIGSEGV as before, for the supervisor to answer as a crash.

use std::{
    io,
    ops::Range,
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use contract::worker::{Report, encode};

use crate::allocator;

/// The exit code of a worker whose TypeScript stripping hit its stack's guard.
pub const EXIT_NESTED_TOO_DEEPLY: i32 = 87;

/// The stack the handler runs on: the faulting thread's own is exhausted.
const ALTERNATE_STACK: usize = 64 * 1024;

/// The [`Report::NestedTooDeeply`] frame, encoded ahead of time.
static FRAME: OnceLock<Vec<u8>> = OnceLock::new();
/// The guard region of the stripper's stack.
static GUARD_START: AtomicUsize = AtomicUsize::new(0);
static GUARD_END: AtomicUsize = AtomicUsize::new(0);

/// Answers a fault inside `guard` as described above, from now on. Call it once, after the
/// Rust runtime's own fault handlers were put back to the default (`harden`) and before the
/// system-call filter.
pub fn install(guard: Range<usize>) -> io::Result<()> {
    FRAME.get_or_init(|| encode(&Report::NestedTooDeeply));
    GUARD_START.store(guard.start, Ordering::Relaxed);
    GUARD_END.store(guard.end, Ordering::Release);
    // SAFETY: an anonymous private mapping with no address asked for; its failure is checked.
    // It is never unmapped: the handler may run until the process ends.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ALTERNATE_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let alternate = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALTERNATE_STACK,
    };
    // SAFETY: the alternate stack is a live mapping of the size given, owned by this module.
    if unsafe { libc::sigaltstack(&alternate, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler has the signature
    // SA_SIGINFO asks for and only does what a signal handler may (see `on_fault`).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_fault as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The SIGSEGV handler: atomic loads, then either [`allocator::last_words`] (a write and an
/// exit) or raising the signal again under its default action.
extern "C" fn on_fault(_signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a handler installed with SA_SIGINFO; its
    // address is only read for a fault the kernel raised (a positive code), where it is set.
    let fault = unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) };
    let guard = GUARD_START.load(Ordering::Relaxed)..GUARD_END.load(Ordering::Acquire);
    if fault.is_some_and(|address| guard.contains(&address))
        && let Some(frame) = FRAME.get()
    {
        allocator::last_words(frame, EXIT_NESTED_TOO_DEEPLY);
    }
    // Not ours. The default action is back (SA_RESETHAND) and the signal is blocked until the
    // handler returns, when it ends the process: raised again here, since a SIGSEGV sent by
    // another process would not come again by itself as a fault does.
    // SAFETY: raise is async-signal-safe; its calls (signal mask, tgkill to this process) are
    // allowed by the filter.
    unsafe { libc::raise(libc::SIGSEGV) };
}
