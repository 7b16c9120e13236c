//! The runtime's allocator, which enforces the execution's memory limit itself instead of
//! leaving it to QuickJS, so that the engine knows when a limit stopped a script.
//!
//! QuickJS reports running out of memory by throwing an error that a script can imitate
//! (`throw new InternalError("out of memory")`), and sometimes by throwing `null` when it
//! cannot even build that error. Whether an execution ran out of memory is therefore decided
//! here, from whether an allocation was refused, never from what was thrown.
//!
//! The same hook notes how close the native stack came to QuickJS's stack limit: every error
//! QuickJS raises for a stack overflow is allocated right at that limit, which no script can
//! fake from a shallow depth.

use std::{cell::Cell, rc::Rc};

use rquickjs::allocator::Allocator;

/// What the allocator has seen during one execution.
#[derive(Debug, Default)]
pub struct MemoryMeter {
    used: Cell<usize>,
    /// The most `used` reached since [`MemoryMeter::start`].
    peak: Cell<usize>,
    limit: Cell<usize>,
    refused: Cell<bool>,
    /// Native stack address below which an allocation counts as being at the stack limit.
    stack_floor: Cell<usize>,
    reached_stack_floor: Cell<bool>,
}

impl MemoryMeter {
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            limit: Cell::new(usize::MAX),
            ..Self::default()
        })
    }

    /// Starts metering one execution: at most `limit` bytes in all (the runtime's own
    /// structures included), and allocations below `stack_floor` count as reaching the stack
    /// limit.
    pub fn start(&self, limit: usize, stack_floor: usize) {
        self.limit.set(limit);
        self.peak.set(self.used.get());
        self.refused.set(false);
        self.stack_floor.set(stack_floor);
        self.reached_stack_floor.set(false);
    }

    /// Lifts the limit, so that the runtime can be torn down whatever happened.
    pub fn stop(&self) {
        self.limit.set(usize::MAX);
        self.stack_floor.set(0);
    }

    /// True when an allocation was refused since [`MemoryMeter::start`].
    pub fn refused(&self) -> bool {
        self.refused.get()
    }

    /// True when something was allocated at the native stack limit since
    /// [`MemoryMeter::start`].
    pub fn reached_stack_limit(&self) -> bool {
        self.reached_stack_floor.get()
    }

    /// The most bytes allocated at once since [`MemoryMeter::start`].
    pub fn peak(&self) -> usize {
        self.peak.get()
    }

    fn admit(&self, bytes: usize) -> bool {
        note_stack(self);
        let fits = self
            .used
            .get()
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit.get());
        if !fits {
            self.refused.set(true);
        }
        fits
    }
}

fn note_stack(meter: &MemoryMeter) {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    if here < meter.stack_floor.get() {
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
        let used = self.0.used.get() + bytes;
        self.0.used.set(used);
        if used > self.0.peak.get() {
            self.0.peak.set(used);
        }
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
