//! Admission to the workers, in three levels: tiers, then tenants' clients within a tier.
//! At most `capacity` executions run at once. Turns are shared first between **tiers**: each
//! keyed tenant is a tier of its own, and the anonymous tier as a whole is one tier, however
//! many addresses it comes from. Within a tier, its **clients** take turns: a keyed tenant is
//! its own only client; each anonymous client (one address, or one IPv6 /64) is one client of
//! the anonymous tier. Round robin at both levels, first come first served within a client, so
//! a crowd of anonymous addresses gets the anonymous tier's turns and no more, and one client's
//! flood cannot push another's requests out.
//!
//! Running scripts cannot be preempted, so two rules keep a worker for the others:
//! - a tier may hold at most its own share of the workers (`tier_max_running`): the anonymous
//!   tier's is a setting whose default leaves one worker that only keyed tenants can take;
//! - while more than one tier has been active within [`RESERVATION_WINDOW`], a tier that already
//!   runs something may not take the last free worker: it stays free for the others. A tier
//!   alone uses all that its share allows.
//!
//! **Admission by time.** A request is refused at once only when it could not start within the
//! queue timeout: its wait is estimated from its client's recent execution times (a moving
//! average of how long its permits were held) and its share of the workers (its ceiling, or an
//! equal part of its tier's part among the active tiers). Each client is judged by its own
//! pace, remembered across idle moments for the [`REMEMBERED_PACES`] most recent clients, never
//! by another's: a client seen for the first time is assumed quick and, at worst, waits out the
//! timeout. Bounds on the number and the bytes of waiting requests only stop floods: they keep
//! memory safe, they are not the admission rule, and no one tier may fill more than half of
//! them, so a flood in one tier leaves room to queue for the others. A refusal says when to come
//! back ([`Rejection::retry_after`]), from the same estimate.
//!
//! Every operation is O(1) apart from removing a waiter that gave up, which is linear in that
//! one client's bounded queue.
//!
//! This module is the asynchronous side: a request waits here for its grant, and the waiting
//! guard and the permit hand back what they hold whatever happens to the request. Every rule of
//! admission and turn-taking is in `turns.rs`, synchronous and under the one lock.

mod turns;

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

use turns::{Bounds, Seat, State};

/// How long after another tier's last request a tier is kept off the last free worker.
pub const RESERVATION_WINDOW: Duration = Duration::from_secs(10);

/// Clients whose recent pace is remembered while they have nothing running or waiting.
pub const REMEMBERED_PACES: usize = 4096;

/// Who asks for a worker, and how much of the service it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn<'a> {
    /// The tier: a keyed tenant, or the anonymous tier as a whole.
    pub tier: &'a str,
    /// Who takes turns within the tier: the tenant itself, or one anonymous client.
    pub client: &'a str,
    /// Most executions of the whole tier running at once.
    pub tier_max_running: usize,
    /// The client's own share.
    pub share: TenantShare,
}

/// How much of the service one client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantShare {
    /// Most executions of this client running at once.
    pub max_running: usize,
    /// Most requests of this client waiting for a worker at once.
    pub max_waiting: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Too many requests (or bytes of scripts) wait already: a flood.
    #[error("too many requests are waiting for a worker")]
    QueueFull { retry_after: Duration },
    /// At the client's recent pace and share of the workers, it would not start in time.
    #[error(
        "at its recent pace, this request would wait about {} ms for a worker, more than the \
         {} ms allowed",
        estimate.as_millis(),
        limit.as_millis()
    )]
    WouldWaitTooLong {
        estimate: Duration,
        limit: Duration,
        retry_after: Duration,
    },
    /// It waited and no worker freed up in time.
    #[error("no worker became free in time")]
    WaitTimedOut { retry_after: Duration },
}

impl Rejection {
    /// When it is worth trying again.
    pub fn retry_after(&self) -> Duration {
        match *self {
            Self::QueueFull { retry_after }
            | Self::WouldWaitTooLong { retry_after, .. }
            | Self::WaitTimedOut { retry_after } => retry_after,
        }
    }

    /// The reason, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::QueueFull { .. } => "queue_full",
            Self::WouldWaitTooLong { .. } => "wait_estimate",
            Self::WaitTimedOut { .. } => "queue_timeout",
        }
    }
}

/// Hands out permits to run.
pub struct Scheduler {
    state: Mutex<State>,
    bounds: Bounds,
}

impl Scheduler {
    /// `capacity` executions at once; a request waits at most `queue_timeout`, and at most
    /// `max_waiting_total` requests holding `max_waiting_bytes` of scripts wait over all
    /// tiers, at most half of each in any one tier.
    pub fn new(
        capacity: usize,
        max_waiting_total: usize,
        max_waiting_bytes: usize,
        queue_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::new(capacity)),
            bounds: Bounds {
                queue_timeout,
                max_waiting_total,
                max_waiting_bytes,
            },
        })
    }

    /// Waits for a permit for `turn`, whose script is `bytes` long.
    pub async fn acquire(
        self: &Arc<Self>,
        turn: Turn<'_>,
        bytes: usize,
    ) -> Result<Permit, Rejection> {
        let (seat, ticket, mut granted) = self.lock().enqueue(turn, bytes, &self.bounds)?;
        let waiting = Waiting {
            scheduler: self,
            seat: &seat,
            ticket,
        };
        let timed_out = tokio::time::timeout(self.bounds.queue_timeout, &mut granted)
            .await
            .is_err();
        // Whether the permit was granted is decided under the lock: a waiter still queued has
        // not been granted one, and leaves the queue here.
        let still_queued = waiting.leave();
        if still_queued {
            let retry_after = self.lock().drain_time();
            return Err(if timed_out {
                Rejection::WaitTimedOut { retry_after }
            } else {
                Rejection::QueueFull { retry_after }
            });
        }
        Ok(Permit {
            scheduler: self.clone(),
            seat,
            granted: Instant::now(),
        })
    }

    /// Executions running now.
    pub fn running(&self) -> usize {
        self.lock().running()
    }

    /// Frees `seat`'s worker; `held` is how long its execution kept it, when it ran.
    fn release(&self, seat: &Seat, held: Option<Duration>) {
        self.lock().release(seat, held);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere cannot poison it
        // in a way that matters.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A queued request; leaving the queue (on timeout, or when the request is dropped) is cleanup.
struct Waiting<'a> {
    scheduler: &'a Scheduler,
    seat: &'a Seat,
    ticket: u64,
}

impl Waiting<'_> {
    /// Leaves the queue; true when the waiter was still queued (so no permit was granted).
    fn leave(self) -> bool {
        let removed = self.remove();
        std::mem::forget(self);
        removed
    }

    fn remove(&self) -> bool {
        self.scheduler.lock().leave_queue(self.seat, self.ticket)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.remove() {
            // Granted just as the request went away: hand the worker back.
            self.scheduler.release(self.seat, None);
        }
    }
}

/// The right to run one execution; dropping it frees the worker for the next in turn.
pub struct Permit {
    scheduler: Arc<Scheduler>,
    seat: Seat,
    granted: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.scheduler
            .release(&self.seat, Some(self.granted.elapsed()));
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod admission_tests;
