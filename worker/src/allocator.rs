//! The process's global allocator: the system's, except in a worker, where an allocation the
//! system refuses (the address-space limit reached in Rust code) ends the process in a way its
//! seccomp filter allows and the supervisor understands.
//!
//! Rust's own answer to a refused allocation prints a message to standard error and aborts;
//! under the filter that write is forbidden, so the worker died by SIGSYS and its execution was
//! answered `crashed`, looking like an escape attempt. Here, once [`arm`] has run, a refusal
//! instead sends the pre-encoded [`Report::OutOfMemory`] frame on the channel (if a job is
//! running, see [`job_started`]) and exits with [`EXIT_OUT_OF_MEMORY`]: two system calls the
//! filter allows, and no allocation. The supervisor answers the job `memory` and replaces the
//! worker. Every refusal ends the worker this way, including one a fallible `try_reserve` would
//! have survived: the engine's natives charge their copies to the execution's limit before
//! allocating, so a refusal here means that accounting was outrun, and the process is not to
//! be trusted further.
//!
//! Arming also fixes glibc's threshold for serving a block by its own mapping at 128 KiB (its
//! starting value, which it otherwise raises up to 32 MiB as large blocks are freed): large
//! blocks go back to the system when freed, so freed memory of an execution does not stay
//! resident beside its live memory, and the worker's resident peak follows what the memory
//! limit counts.
//!
//! The allocator also counts, when the engine asks ([`WorkerHeap`], the engine's
//! `memory::HostHeap`), the Rust allocations of work the engine does for a script whose size it
//! cannot charge ahead of time (stripping TypeScript), and refuses past what remains of the
//! script's memory limit, the same way: the job's answer is `memory`. Counting is off
//! otherwise, and costs one load per allocation.
//!
//! The supervisor runs the same binary with the same allocator; there, unarmed, it behaves as
//! the system's.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        OnceLock,
        atomic::{AtomicBool, AtomicIsize, Ordering},
    },
};

use contract::worker::{CHANNEL_FD, Report, encode};

/// The exit code of a worker that ran out of memory in Rust code.
pub const EXIT_OUT_OF_MEMORY: i32 = 86;

/// The system allocator, with the worker's way of running out.
pub struct WorkerAllocator;

#[global_allocator]
static ALLOCATOR: WorkerAllocator = WorkerAllocator;

/// The [`Report::OutOfMemory`] frame, encoded while memory was still available.
static FRAME: OnceLock<Vec<u8>> = OnceLock::new();
/// Whether a job runs now, so that a refusal is its answer.
static JOB_RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether allocations are counted now ([`WorkerHeap`]).
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated less bytes freed since counting started; frees of older blocks may take it
/// below zero.
static COUNTED: AtomicIsize = AtomicIsize::new(0);
/// The most `COUNTED` reached since counting started.
static COUNTED_PEAK: AtomicIsize = AtomicIsize::new(0);
/// Where counting refuses: an allocation that would take `COUNTED` past it.
static CEILING: AtomicIsize = AtomicIsize::new(isize::MAX);

/// The worker's heap as the engine sees it: [`WorkerHeap::limit`] starts counting this
/// process's allocations against a ceiling, [`WorkerHeap::unlimit`] stops. The worker has one
/// thread, so the counters see only the engine's work.
pub struct WorkerHeap;

impl engine::memory::HostHeap for WorkerHeap {
    fn limit(&self, ceiling: usize) {
        COUNTED.store(0, Ordering::Relaxed);
        COUNTED_PEAK.store(0, Ordering::Relaxed);
        CEILING.store(
            isize::try_from(ceiling).unwrap_or(isize::MAX),
            Ordering::Relaxed,
        );
        COUNTING.store(true, Ordering::Release);
    }

    fn unlimit(&self) -> usize {
        COUNTING.store(false, Ordering::Release);
        CEILING.store(isize::MAX, Ordering::Relaxed);
        COUNTED_PEAK.load(Ordering::Relaxed).max(0) as usize
    }
}

/// Counts `grown` more bytes about to be allocated (negative: freed); false when counting and
/// they would pass the ceiling, and the allocation must be refused.
fn counted(grown: isize) -> bool {
    if !COUNTING.load(Ordering::Acquire) {
        return true;
    }
    let now = COUNTED.load(Ordering::Relaxed).saturating_add(grown);
    if grown > 0 && now > CEILING.load(Ordering::Relaxed) {
        return false;
    }
    COUNTED.store(now, Ordering::Relaxed);
    // Loads and stores, not a read-modify-write: the worker has one thread, and this runs for
    // every allocation of a strip.
    if now > COUNTED_PEAK.load(Ordering::Relaxed) {
        COUNTED_PEAK.store(now, Ordering::Relaxed);
    }
    true
}

/// Blocks at least this large get a mapping of their own, returned to the system when freed.
#[cfg(target_env = "gnu")]
const MAPPED_BLOCK: libc::c_int = 128 * 1024;

/// Makes a refused allocation end this process as described above, and large blocks go back
/// to the system when freed; call once the channel is at [`CHANNEL_FD`].
pub fn arm() {
    FRAME.get_or_init(|| encode(&Report::OutOfMemory));
    // SAFETY: mallopt only sets a parameter of the C allocator, before any thread exists.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_BLOCK);
    }
}

/// Marks the start of a job: from now until [`job_ended`], running out is the job's answer.
pub fn job_started() {
    JOB_RUNNING.store(true, Ordering::Release);
}

/// Marks the end of a job (its report sent).
pub fn job_ended() {
    JOB_RUNNING.store(false, Ordering::Release);
}

/// What to do with a refused allocation: in an armed worker, report and exit; otherwise hand
/// the null pointer back to the caller, as the system allocator does.
fn refused() -> *mut u8 {
    match FRAME.get() {
        Some(frame) => last_words(frame, EXIT_OUT_OF_MEMORY),
        None => std::ptr::null_mut(),
    }
}

/// Sends `frame` on the channel if a job is running (its answer), and ends the process with
/// `code`: two system calls the filter allows, no allocation, nothing that could fault, so it
/// may run in a signal handler.
pub(crate) fn last_words(frame: &[u8], code: i32) -> ! {
    if JOB_RUNNING.load(Ordering::Acquire) {
        let mut written = 0;
        while written < frame.len() {
            // SAFETY: writes from a live buffer to the channel's descriptor; no allocation.
            let count = unsafe {
                libc::write(
                    CHANNEL_FD,
                    frame[written..].as_ptr().cast(),
                    frame.len() - written,
                )
            };
            if count <= 0 {
                break;
            }
            written += count as usize;
        }
    }
    // SAFETY: _exit ends the process at once, making only the exit system call.
    unsafe { libc::_exit(code) }
}

/// A block's size as the counters take it.
fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every request is passed to the system allocator unchanged, or refused before it
// reaches it while counting; only a null answer is handled differently, and then nothing is
// returned at all in an armed worker.
unsafe impl GlobalAlloc for WorkerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !counted(size(layout.size())) {
            return refused();
        }
        // SAFETY: the caller's contract is the system allocator's.
        let pointer = unsafe { System.alloc(layout) };
        if pointer.is_null() {
            refused()
        } else {
            pointer
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !counted(size(layout.size())) {
            return refused();
        }
        // SAFETY: as above.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if pointer.is_null() {
            refused()
        } else {
            pointer
        }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        counted(-size(layout.size()));
        // SAFETY: as above.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !counted(size(new_size) - size(layout.size())) {
            return refused();
        }
        // SAFETY: as above.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if moved.is_null() { refused() } else { moved }
    }
}
