//! The runtime's allocator, which enforces the execution's memory limit itself instead of
//! leaving it to QuickJS, so that the engine knows when a limit stopped a script.
//!
//! QuickJS reports running out of memory by throwing an error that a script can imitate
//! (`throw new InternalError("out of memory")`), and sometimes by throwing `null` when it
//! cannot even build that error. Whether an execution ran out of memory is therefore decided
//! here, from whether an allocation was refused, never from what was thrown.
//!
//! The meter also tells whether the native stack came close to QuickJS's stack limit, which no
//! script can fake from a shallow depth. The hook notes allocations made there, but QuickJS
//! serves small allocations from its own arenas, so the error it raises for a stack overflow
//! often reaches no allocator at all; the last stretch of stack before the limit is therefore
//! also painted with a pattern when an execution starts, and a disturbed pattern means the
//! stack went that deep.
//!
//! Natives written in Rust (the Web APIs' byte work, string conversions) make copies of script
//! data in host memory, which the runtime's allocator never sees. Each takes a [`Charge`] for
//! the most it will allocate before it allocates, and holds it while the copy lives: the charge
//! counts against the same limit, and one that does not fit fails as any allocation past the
//! limit does, with QuickJS's out-of-memory error, so the execution ends as `memory`.
//!
//! Rust work whose size cannot be known before it runs (stripping TypeScript: swc's syntax
//! tree depends on the source's shape far more than on its length) is counted by the process's
//! own allocator instead, where the embedding registers one ([`HostHeap`]): it is limited to
//! what remains of the execution's limit while it runs ([`host_heap_limited`]).

use std::{
    cell::{Cell, RefCell},
    ops::Range,
    rc::{Rc, Weak},
    sync::OnceLock,
};

use rquickjs::{Ctx, allocator::Allocator, qjs};

/// What the allocator has seen during one execution.
#[derive(Debug, Default)]
pub struct MemoryMeter {
    used: Cell<usize>,
    /// The most `used` reached since [`MemoryMeter::start`].
    peak: Cell<usize>,
    limit: Cell<usize>,
    /// The allocator refused an allocation: QuickJS ran out inside itself.
    refused: Cell<bool>,
    /// A native's [`Charge`] did not fit: nothing was allocated, QuickJS was only told.
    charge_refused: Cell<bool>,
    /// The last stretch of native stack before QuickJS's limit: an allocation below its end
    /// counts as being at the stack limit, and it holds the painted pattern.
    stack_zone: Cell<(usize, usize)>,
    reached_stack_floor: Cell<bool>,
}

/// The pattern painted on the stack zone, one word every [`PAINT_STRIDE`] bytes.
const PAINT: usize = usize::from_ne_bytes([0xA5; size_of::<usize>()]);
const PAINT_STRIDE: usize = 64;

/// The painted words of `zone`.
fn painted_words(zone: &Range<usize>) -> impl Iterator<Item = *mut usize> {
    let start = zone.start.next_multiple_of(align_of::<usize>());
    (start..zone.end.saturating_sub(size_of::<usize>()))
        .step_by(PAINT_STRIDE)
        .map(|address| address as *mut usize)
}

thread_local! {
    /// The meter of the runtime created last on this thread, which natives charge.
    static CURRENT: RefCell<Weak<MemoryMeter>> = const { RefCell::new(Weak::new()) };
}

impl MemoryMeter {
    /// A meter with no limit yet; natives running on this thread charge it from now on (a
    /// thread runs one runtime at a time).
    pub fn new() -> Rc<Self> {
        let meter = Rc::new(Self {
            limit: Cell::new(usize::MAX),
            ..Self::default()
        });
        CURRENT.with(|current| *current.borrow_mut() = Rc::downgrade(&meter));
        meter
    }

    /// Starts metering one execution: at most `limit` bytes in all (the runtime's own
    /// structures included); reaching `stack_zone`, the stretch of native stack just above
    /// QuickJS's limit, counts as reaching the stack limit.
    ///
    /// # Safety
    /// `stack_zone` must be part of the current thread's stack, below the caller's frame and
    /// within its size limit: it is written to.
    pub unsafe fn start(&self, limit: usize, stack_zone: Range<usize>) {
        self.limit.set(limit);
        self.peak.set(self.used.get());
        self.refused.set(false);
        self.charge_refused.set(false);
        for word in painted_words(&stack_zone) {
            // SAFETY: the caller vouches for the zone; no frame lives there yet.
            unsafe { word.write_volatile(PAINT) };
        }
        self.stack_zone.set((stack_zone.start, stack_zone.end));
        self.reached_stack_floor.set(false);
    }

    /// Lifts the limit, so that the runtime can be torn down whatever happened.
    pub fn stop(&self) {
        self.limit.set(usize::MAX);
        self.stack_zone.set((0, 0));
    }

    /// True when the allocator refused an allocation since [`MemoryMeter::start`]: QuickJS
    /// met an out-of-memory path inside itself.
    pub fn refused(&self) -> bool {
        self.refused.get()
    }

    /// True when the limit stopped anything since [`MemoryMeter::start`]: an allocation, or a
    /// native's charge.
    pub fn limit_reached(&self) -> bool {
        self.refused.get() || self.charge_refused.get()
    }

    /// True when the native stack reached the zone just above QuickJS's stack limit since
    /// [`MemoryMeter::start`]: something was allocated there, or frames overwrote the pattern.
    /// Call it from a frame above the zone.
    pub fn reached_stack_limit(&self) -> bool {
        let (start, end) = self.stack_zone.get();
        // SAFETY: the zone was painted by `start` and is read from a frame above it.
        let disturbed =
            painted_words(&(start..end)).any(|word| unsafe { word.read_volatile() } != PAINT);
        self.reached_stack_floor.get() || disturbed
    }

    /// The most bytes allocated at once since [`MemoryMeter::start`].
    pub fn peak(&self) -> usize {
        self.peak.get()
    }

    fn grow(&self, bytes: usize) {
        let used = self.used.get() + bytes;
        self.used.set(used);
        if used > self.peak.get() {
            self.peak.set(used);
        }
    }

    fn fits(&self, bytes: usize) -> bool {
        self.used
            .get()
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit.get())
    }

    fn admit(&self, bytes: usize) -> bool {
        note_stack(self);
        let fits = self.fits(bytes);
        if !fits {
            self.refused.set(true);
        }
        fits
    }
}

/// Host memory a native holds for a moment, counted against the execution's memory limit
/// until it is dropped.
#[must_use = "the charge lasts only while it is held"]
pub struct Charge {
    meter: Weak<MemoryMeter>,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` more, as [`charge`] does; on failure the charge stays as it was.
    pub fn add(&mut self, ctx: &Ctx<'_>, bytes: usize) -> rquickjs::Result<()> {
        let more = charge(ctx, bytes)?;
        self.bytes += more.bytes;
        // The bytes now belong to `self`.
        std::mem::forget(more);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(meter) = self.meter.upgrade() {
            meter.used.set(meter.used.get() - self.bytes);
        }
    }
}

/// Charges `bytes` of host memory that a native is about to allocate to the execution running
/// on this thread, before it allocates them. When they do not fit in what remains of the
/// limit, nothing is charged or allocated, the refusal is recorded, and the script gets
/// QuickJS's out-of-memory error (the `Err` to return from the native), which ends the
/// execution as `memory` unless the script catches it.
pub fn charge(ctx: &Ctx<'_>, bytes: usize) -> rquickjs::Result<Charge> {
    let meter = CURRENT.with(|current| current.borrow().clone());
    let Some(metered) = meter.upgrade() else {
        // No runtime of ours on this thread: nothing to charge.
        return Ok(Charge { meter, bytes: 0 });
    };
    if !metered.fits(bytes) {
        metered.charge_refused.set(true);
        // SAFETY: the context is live; this only sets its pending exception.
        unsafe { qjs::JS_ThrowOutOfMemory(ctx.as_raw().as_ptr()) };
        return Err(rquickjs::Error::Exception);
    }
    metered.grow(bytes);
    Ok(Charge { meter, bytes })
}

/// The process's heap as its global allocator counts it, for Rust work done for a script that
/// cannot charge ahead of time what it will allocate. The worker's allocator is one.
pub trait HostHeap: Sync {
    /// Starts counting the bytes allocated (less those freed) from now on; an allocation that
    /// would take them past `ceiling` is refused, which ends the process as out of memory
    /// (the worker reports it, and the execution's answer is `memory`).
    fn limit(&self, ceiling: usize);
    /// Stops counting; the most bytes the count reached since [`HostHeap::limit`].
    fn unlimit(&self) -> usize;
}

static HOST_HEAP: OnceLock<&'static dyn HostHeap> = OnceLock::new();

/// Makes `heap` count the Rust work of every execution in this process from now on; the first
/// registration stands.
pub fn register_host_heap(heap: &'static dyn HostHeap) {
    // A later registration is ignored: the process has one global allocator.
    let _ = HOST_HEAP.set(heap);
}

/// Runs `work` with the host heap ([`HostHeap`]) limited to what remains of the memory limit
/// of the execution running on this thread, then charges what it held at most for a moment,
/// so that the execution's peak includes it. Without a registered heap or a running
/// execution, `work` runs uncounted.
pub(crate) fn host_heap_limited<T>(ctx: &Ctx<'_>, work: impl FnOnce() -> T) -> rquickjs::Result<T> {
    let meter = CURRENT.with(|current| current.borrow().upgrade());
    let (Some(heap), Some(meter)) = (HOST_HEAP.get(), meter) else {
        return Ok(work());
    };
    heap.limit(meter.limit.get().saturating_sub(meter.used.get()));
    let result = work();
    let peak = heap.unlimit();
    drop(charge(ctx, peak)?);
    Ok(result)
}

fn note_stack(meter: &MemoryMeter) {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    if here < meter.stack_zone.get().1 {
        meter.reached_stack_floor.set(true);
    }
}

/// The C allocator, metered by a [`MemoryMeter`].
pub struct MeteredAllocator(pub Rc<MemoryMeter>);

fn usable(pointer: *mut u8) -> usize {
    // SAFETY: `pointer` came from this allocator's malloc/calloc/realloc and is live.
    unsafe { libc::malloc_usable_size(pointer.cast()) }
}

// SAFETY: every pointer handed out comes from the C allocator, which aligns to at least 16
// bytes, and is only returned to it; `usable_size` asks the C allocator about its own pointer.
unsafe impl Allocator for MeteredAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.0.admit(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain C allocation.
        let pointer = unsafe { libc::malloc(size) }.cast::<u8>();
        self.account(pointer)
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if !self.0.admit(total) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain C allocation.
        let pointer = unsafe { libc::calloc(count, size) }.cast::<u8>();
        self.account(pointer)
    }

    unsafe fn dealloc(&mut self, pointer: *mut u8) {
        self.0.used.set(self.0.used.get() - usable(pointer));
        // SAFETY: the caller hands back a live pointer from this allocator.
        unsafe { libc::free(pointer.cast()) };
    }

    unsafe fn realloc(&mut self, pointer: *mut u8, new_size: usize) -> *mut u8 {
        let old = usable(pointer);
        if new_size > old && !self.0.admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller hands over a live pointer from this allocator.
        let moved = unsafe { libc::realloc(pointer.cast(), new_size) }.cast::<u8>();
        if moved.is_null() {
            self.0.refused.set(true);
            return moved;
        }
        self.0.used.set(self.0.used.get() - old);
        self.grow(usable(moved));
        moved
    }

    unsafe fn usable_size(pointer: *mut u8) -> usize {
        usable(pointer)
    }
}

impl MeteredAllocator {
    fn grow(&self, bytes: usize) {
        self.0.grow(bytes);
    }

    fn account(&self, pointer: *mut u8) -> *mut u8 {
        if pointer.is_null() {
            // The process itself is out of memory (or at its address-space limit).
            self.0.refused.set(true);
        } else {
            self.grow(usable(pointer));
        }
        pointer
    }
}
