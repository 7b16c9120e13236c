//! Admission to the workers: at most `capacity` executions run at once, a tenant never runs more
//! than its own ceiling, and when workers are scarce the waiting tenants take turns (round robin
//! over tenants, first come first served within a tenant), so one tenant's flood cannot push
//! another tenant's requests out. Running scripts cannot be preempted, so while more than one
//! tenant has been active within [`RESERVATION_WINDOW`], a tenant that already runs something
//! may not take the last free worker: it stays free for the others. A tenant alone uses them all. Every operation is O(1) apart from removing a waiter that gave
//! up, which is linear in that one tenant's bounded queue.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// How long after another tenant's last request a tenant is kept off the last free worker.
pub const RESERVATION_WINDOW: Duration = Duration::from_secs(10);

/// How much of the service one tenant may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantShare {
    /// Most executions of this tenant running at once.
    pub max_running: usize,
    /// Most requests of this tenant waiting for a worker at once.
    pub max_waiting: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("too many requests are waiting for a worker")]
    QueueFull,
    #[error("no worker became free in time")]
    WaitTimedOut,
}

/// Hands out permits to run.
pub struct Scheduler {
    state: Mutex<State>,
    queue_timeout: Duration,
    max_waiting_total: usize,
}

struct State {
    capacity: usize,
    free: usize,
    /// The two tenants that asked most recently, and when: enough to tell whether a tenant
    /// other than a given one is active.
    recent: [Option<(Arc<str>, Instant)>; 2],
    waiting_total: usize,
    next_ticket: u64,
    tenants: HashMap<Arc<str>, Tenant>,
    /// Tenants that have waiters and are below their ceiling, in turn order.
    ready: VecDeque<Arc<str>>,
}

struct Tenant {
    running: usize,
    share: TenantShare,
    waiters: VecDeque<Waiter>,
    in_ready: bool,
}

struct Waiter {
    ticket: u64,
    grant: oneshot::Sender<()>,
}

impl Scheduler {
    /// `capacity` executions at once; a request waits at most `queue_timeout`, and at most
    /// `max_waiting_total` requests wait over all tenants.
    pub fn new(capacity: usize, max_waiting_total: usize, queue_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                capacity,
                free: capacity,
                recent: [None, None],
                waiting_total: 0,
                next_ticket: 0,
                tenants: HashMap::new(),
                ready: VecDeque::new(),
            }),
            queue_timeout,
            max_waiting_total,
        })
    }

    /// Waits for a permit for `tenant`.
    pub async fn acquire(
        self: &Arc<Self>,
        tenant: &str,
        share: TenantShare,
    ) -> Result<Permit, Rejection> {
        let (ticket, tenant, mut granted) = {
            let mut state = self.lock();
            if state.waiting_total >= self.max_waiting_total {
                return Err(Rejection::QueueFull);
            }
            let name: Arc<str> = match state.tenants.get_key_value(tenant) {
                Some((name, _)) => name.clone(),
                None => Arc::from(tenant),
            };
            let entry = state.tenants.entry(name.clone()).or_insert_with(|| Tenant {
                running: 0,
                share,
                waiters: VecDeque::new(),
                in_ready: false,
            });
            entry.share = share;
            let full = entry.waiters.len() >= share.max_waiting;
            state.note_activity(&name);
            if full {
                state.forget_if_idle(&name);
                return Err(Rejection::QueueFull);
            }
            let (grant, granted) = oneshot::channel();
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            let entry = state.tenants.get_mut(&name).expect("inserted above");
            entry.waiters.push_back(Waiter { ticket, grant });
            state.waiting_total += 1;
            state.mark_ready(&name);
            state.dispatch();
            (ticket, name, granted)
        };
        let waiting = Waiting {
            scheduler: self,
            tenant: &tenant,
            ticket,
        };
        let timed_out = tokio::time::timeout(self.queue_timeout, &mut granted)
            .await
            .is_err();
        // Whether the permit was granted is decided under the lock: a waiter still queued has
        // not been granted one, and leaves the queue here.
        let still_queued = waiting.leave();
        if still_queued {
            return Err(if timed_out {
                Rejection::WaitTimedOut
            } else {
                Rejection::QueueFull
            });
        }
        Ok(Permit {
            scheduler: self.clone(),
            tenant,
        })
    }

    /// Executions running now.
    pub fn running(&self) -> usize {
        self.lock()
            .tenants
            .values()
            .map(|tenant| tenant.running)
            .sum()
    }

    fn release(&self, tenant: &Arc<str>) {
        let mut state = self.lock();
        if let Some(entry) = state.tenants.get_mut(tenant) {
            entry.running -= 1;
        }
        state.free += 1;
        state.mark_ready(tenant);
        state.forget_if_idle(tenant);
        state.dispatch();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere cannot poison it
        // in a way that matters.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Puts `name` in the turn order if it has waiters and room to run.
    fn mark_ready(&mut self, name: &Arc<str>) {
        if let Some(tenant) = self.tenants.get_mut(name)
            && !tenant.in_ready
            && !tenant.waiters.is_empty()
            && tenant.running < tenant.share.max_running
        {
            tenant.in_ready = true;
            self.ready.push_back(name.clone());
        }
    }

    fn note_activity(&mut self, name: &Arc<str>) {
        let now = Instant::now();
        match &mut self.recent {
            [Some((latest, at)), _] if latest == name => *at = now,
            [latest, previous] => {
                *previous = latest.take();
                *latest = Some((name.clone(), now));
            }
        }
    }

    /// True when the last free worker must stay free for tenants other than `name`.
    fn reserved_for_others(&self, name: &Arc<str>, running: usize) -> bool {
        self.capacity > 1
            && self.free == 1
            && running > 0
            && self
                .recent
                .iter()
                .flatten()
                .any(|(other, at)| other != name && at.elapsed() < RESERVATION_WINDOW)
    }

    /// Grants free workers to waiting tenants in turn.
    fn dispatch(&mut self) {
        let mut deferred = Vec::new();
        while self.free > 0 {
            let Some(name) = self.ready.pop_front() else {
                break;
            };
            let Some(running) = self.tenants.get(&name).map(|tenant| tenant.running) else {
                continue;
            };
            if self.reserved_for_others(&name, running) {
                // Still ready: it takes its turn once another worker frees up.
                deferred.push(name);
                continue;
            }
            let Some(tenant) = self.tenants.get_mut(&name) else {
                continue;
            };
            tenant.in_ready = false;
            let waiter = if tenant.running < tenant.share.max_running {
                tenant.waiters.pop_front()
            } else {
                None
            };
            let Some(waiter) = waiter else {
                // Its waiters gave up while it waited for its turn.
                self.forget_if_idle(&name);
                continue;
            };
            self.waiting_total -= 1;
            if waiter.grant.send(()).is_ok() {
                tenant.running += 1;
                self.free -= 1;
            }
            self.mark_ready(&name);
            self.forget_if_idle(&name);
        }
        self.ready.extend(deferred);
    }

    fn forget_if_idle(&mut self, name: &Arc<str>) {
        if self.tenants.get(name).is_some_and(|tenant| {
            tenant.running == 0 && tenant.waiters.is_empty() && !tenant.in_ready
        }) {
            self.tenants.remove(name);
        }
    }
}

/// A queued request; leaving the queue (on timeout, or when the request is dropped) is cleanup.
struct Waiting<'a> {
    scheduler: &'a Scheduler,
    tenant: &'a Arc<str>,
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
        let mut state = self.scheduler.lock();
        let Some(tenant) = state.tenants.get_mut(self.tenant) else {
            return false;
        };
        let Some(position) = tenant
            .waiters
            .iter()
            .position(|waiter| waiter.ticket == self.ticket)
        else {
            return false;
        };
        tenant.waiters.remove(position);
        state.waiting_total -= 1;
        state.forget_if_idle(self.tenant);
        true
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.remove() {
            // Granted just as the request went away: hand the worker back.
            self.scheduler.release(self.tenant);
        }
    }
}

/// The right to run one execution; dropping it frees the worker for the next in turn.
pub struct Permit {
    scheduler: Arc<Scheduler>,
    tenant: Arc<str>,
}

impl Permit {
    /// True while other requests wait for a worker: the machine is busy, and the CPU is better
    /// left to the workers than spent polling for an answer.
    pub fn contended(&self) -> bool {
        self.scheduler.lock().waiting_total > 0
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.scheduler.release(&self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARE: TenantShare = TenantShare {
        max_running: 2,
        max_waiting: 8,
    };

    #[tokio::test]
    async fn grants_up_to_capacity_then_queues() {
        let scheduler = Scheduler::new(2, 16, Duration::from_millis(50));
        let _a = scheduler.acquire("a", SHARE).await.unwrap();
        let _b = scheduler.acquire("a", SHARE).await.unwrap();
        assert_eq!(
            scheduler.acquire("a", SHARE).await.err(),
            Some(Rejection::WaitTimedOut)
        );
        assert_eq!(scheduler.running(), 2);
    }

    #[tokio::test]
    async fn tenant_ceiling_holds_even_with_free_workers() {
        let scheduler = Scheduler::new(4, 16, Duration::from_millis(50));
        let one = TenantShare {
            max_running: 1,
            max_waiting: 4,
        };
        let _a = scheduler.acquire("a", one).await.unwrap();
        assert_eq!(
            scheduler.acquire("a", one).await.err(),
            Some(Rejection::WaitTimedOut)
        );
        assert!(scheduler.acquire("b", one).await.is_ok());
    }

    #[tokio::test]
    async fn waiting_tenants_take_turns() {
        let scheduler = Scheduler::new(1, 64, Duration::from_secs(5));
        let held = scheduler.acquire("a", SHARE).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Tenant a queues three requests before tenant b queues one.
        for tenant in ["a", "a", "a", "b"] {
            let scheduler = scheduler.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let permit = scheduler.acquire(tenant, SHARE).await.unwrap();
                order.lock().unwrap().push(tenant);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order[..2],
            ["a", "b"],
            "b is served second, not after all of a: {order:?}"
        );
    }

    #[tokio::test]
    async fn a_lone_tenant_uses_every_worker() {
        let scheduler = Scheduler::new(2, 16, Duration::from_millis(50));
        let _first = scheduler.acquire("a", SHARE).await.unwrap();
        assert!(scheduler.acquire("a", SHARE).await.is_ok());
    }

    #[tokio::test]
    async fn the_last_worker_stays_free_while_another_tenant_is_active() {
        let scheduler = Scheduler::new(2, 16, Duration::from_millis(50));
        let _a = scheduler.acquire("a", SHARE).await.unwrap();
        drop(scheduler.acquire("b", SHARE).await.unwrap());
        // b was active just now: a, already running one script, may not take the last worker...
        assert_eq!(
            scheduler.acquire("a", SHARE).await.err(),
            Some(Rejection::WaitTimedOut)
        );
        // ...which b gets at once.
        assert!(scheduler.acquire("b", SHARE).await.is_ok());
    }

    #[tokio::test]
    async fn full_tenant_queue_rejects_at_once_without_affecting_others() {
        let scheduler = Scheduler::new(1, 64, Duration::from_secs(5));
        let small = TenantShare {
            max_running: 1,
            max_waiting: 1,
        };
        let _held = scheduler.acquire("a", small).await.unwrap();
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("a", small).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            scheduler.acquire("a", small).await.err(),
            Some(Rejection::QueueFull)
        );
        let other = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("b", small).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(_held);
        assert!(queued.await.unwrap().is_ok());
        assert!(other.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn abandoned_waiters_leave_no_trace() {
        let scheduler = Scheduler::new(1, 64, Duration::from_secs(5));
        let held = scheduler.acquire("a", SHARE).await.unwrap();
        let waiter = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("b", SHARE).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(scheduler.running(), 0);
        assert!(scheduler.lock().tenants.is_empty());
        assert!(scheduler.acquire("c", SHARE).await.is_ok());
    }
}
