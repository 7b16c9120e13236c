//! The deadline, the cancel flag and the pace of QuickJS's interrupt handler: what stops a
//! script on time even when it calls slow built-ins.

use std::{
    cell::Cell,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::context_fields::QUICKJS_POLLS_PER_CHECK;

/// How often the interrupt handler wants to look at the clock.
const CHECK_CLOCK_EVERY: Duration = Duration::from_millis(1);

/// The deadline, the cancel flag and the pace of the interrupt handler.
pub struct Clock {
    deadline: Cell<Option<Instant>>,
    cancel: Cell<Option<&'static AtomicBool>>,
    /// QuickJS's interrupt counter, when its place is known.
    pub counter: Cell<Option<*mut i32>>,
    /// Polls between two calls of the handler, and when it was last called.
    polls: Cell<i32>,
    last_check: Cell<Instant>,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            deadline: Cell::new(None),
            cancel: Cell::new(None),
            counter: Cell::new(None),
            polls: Cell::new(QUICKJS_POLLS_PER_CHECK),
            last_check: Cell::new(Instant::now()),
        }
    }
}

impl Clock {
    pub fn start(&self, deadline: Instant, cancel: &'static AtomicBool) {
        self.deadline.set(Some(deadline));
        self.cancel.set(Some(cancel));
        self.last_check.set(Instant::now());
        // Start by checking at the first poll: the pace then doubles while polls are quick,
        // so a script that is slow from its first loop is caught as early as a fast one.
        if let Some(counter) = self.counter.get() {
            self.polls.set(1);
            // SAFETY: see `on_interrupt`; no script is running while the clock starts.
            unsafe { counter.write(1) };
        }
    }

    pub fn stop(&self) {
        self.deadline.set(None);
        self.cancel.set(None);
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .get()
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
    }

    pub fn expired(&self) -> bool {
        self.cancelled()
            || self
                .deadline
                .get()
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    pub fn deadline(&self) -> Instant {
        self.deadline.get().unwrap_or_else(Instant::now)
    }

    /// The interrupt handler: true stops the script. When the last polls were slow, fewer polls
    /// are allowed before the next call, so that the clock is read about every
    /// [`CHECK_CLOCK_EVERY`] whatever the script does between polls.
    pub fn on_interrupt(&self) -> bool {
        let Some(deadline) = self.deadline.get() else {
            return false;
        };
        let now = Instant::now();
        if self.cancelled() || now >= deadline {
            return true;
        }
        if let Some(counter) = self.counter.get() {
            let elapsed = now.saturating_duration_since(self.last_check.get());
            let polls = self.polls.get();
            let next = if elapsed > CHECK_CLOCK_EVERY {
                let scaled = i128::from(polls) * CHECK_CLOCK_EVERY.as_nanos() as i128
                    / elapsed.as_nanos().max(1) as i128;
                scaled.clamp(1, i128::from(QUICKJS_POLLS_PER_CHECK)) as i32
            } else {
                polls.saturating_mul(2).min(QUICKJS_POLLS_PER_CHECK)
            };
            self.polls.set(next);
            self.last_check.set(now);
            // SAFETY: the pointer was verified for this build of QuickJS (see `context_fields`)
            // and points into the context, which lives as long as the runtime this handler is
            // installed on; QuickJS reset the counter just before calling us.
            unsafe { counter.write(next) };
        }
        false
    }
}
