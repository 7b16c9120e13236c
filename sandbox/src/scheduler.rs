//! Admission to the workers: at most `capacity` executions run at once, a tenant never runs more
//! than its own ceiling, and when workers are scarce the waiting tenants take turns (round robin
//! over tenants, first come first served within a tenant), so one tenant's flood cannot push
//! another tenant's requests out. Running scripts cannot be preempted, so while more than one
//! tenant has been active within [`RESERVATION_WINDOW`], a tenant that already runs something
//! may not take the last free worker: it stays free for the others. A tenant alone uses them
//! all. ("Tenant" here is whoever takes turns: a tenant with keys, or one anonymous client.)
//!
//! **Admission by time.** A request is refused at once only when it could not start within the
//! queue timeout: its wait is estimated from the tenant's recent execution times (a moving
//! average of how long its permits were held) and its share of the workers (its ceiling, or an
//! equal part among the tenants with work). Each tenant is judged by its own pace, remembered
//! across idle moments for the [`REMEMBERED_PACES`] most recent tenants, never by another's:
//! a tenant seen for the first time is assumed quick and, at worst, waits out the timeout. Bounds on the number and the bytes of waiting
//! requests only stop floods: they keep memory safe, they are not the admission rule. A refusal
//! says when to come back ([`Rejection::retry_after`]), from the same estimate.
//!
//! Every operation is O(1) apart from removing a waiter that gave up, which is linear in that
//! one tenant's bounded queue.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hashlink::LruCache;
use tokio::sync::oneshot;

/// How long after another tenant's last request a tenant is kept off the last free worker.
pub const RESERVATION_WINDOW: Duration = Duration::from_secs(10);

/// Execution time assumed before any has been measured.
const FIRST_ESTIMATE: Duration = Duration::from_millis(10);
/// Tenants whose recent pace is remembered while they have nothing running or waiting.
pub const REMEMBERED_PACES: usize = 4096;
/// Weight of the newest execution in the moving averages.
const AVERAGE_WEIGHT: f64 = 0.2;

/// How much of the service one tenant may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantShare {
    /// Most executions of this tenant running at once.
    pub max_running: usize,
    /// Most requests of this tenant waiting for a worker at once.
    pub max_waiting: usize,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Too many requests (or bytes of scripts) wait already: a flood.
    #[error("too many requests are waiting for a worker")]
    QueueFull { retry_after: Duration },
    /// At the tenant's recent pace and share of the workers, it would not start in time.
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
    queue_timeout: Duration,
    max_waiting_total: usize,
    max_waiting_bytes: usize,
}

struct State {
    capacity: usize,
    free: usize,
    /// The two tenants that asked most recently, and when: enough to tell whether a tenant
    /// other than a given one is active.
    recent: [Option<(Arc<str>, Instant)>; 2],
    waiting_total: usize,
    /// Bytes of the scripts waiting.
    waiting_bytes: usize,
    /// Moving average of how long permits were held, over all tenants: how fast the queue as a
    /// whole drains.
    average: Duration,
    /// Each recent tenant's moving average of how long its permits were held, kept while it is
    /// idle: a tenant whose requests come one at a time is forgotten by `tenants` between them.
    paces: LruCache<Arc<str>, Duration>,
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
    bytes: usize,
    grant: oneshot::Sender<()>,
}

impl Scheduler {
    /// `capacity` executions at once; a request waits at most `queue_timeout`, and at most
    /// `max_waiting_total` requests holding `max_waiting_bytes` of scripts wait over all
    /// tenants.
    pub fn new(
        capacity: usize,
        max_waiting_total: usize,
        max_waiting_bytes: usize,
        queue_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                capacity,
                free: capacity,
                recent: [None, None],
                waiting_total: 0,
                waiting_bytes: 0,
                average: FIRST_ESTIMATE,
                paces: LruCache::new(REMEMBERED_PACES),
                next_ticket: 0,
                tenants: HashMap::new(),
                ready: VecDeque::new(),
            }),
            queue_timeout,
            max_waiting_total,
            max_waiting_bytes,
        })
    }

    /// Waits for a permit for `tenant`, whose script is `bytes` long.
    pub async fn acquire(
        self: &Arc<Self>,
        tenant: &str,
        share: TenantShare,
        bytes: usize,
    ) -> Result<Permit, Rejection> {
        let (ticket, tenant, mut granted) = {
            let mut state = self.lock();
            if state.waiting_total >= self.max_waiting_total
                || state.waiting_bytes + bytes > self.max_waiting_bytes
            {
                return Err(Rejection::QueueFull {
                    retry_after: state.drain_time(),
                });
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
            let estimate = state.wait_estimate(&name);
            let refusal = if full {
                Some(Rejection::QueueFull {
                    retry_after: estimate,
                })
            } else if estimate > self.queue_timeout {
                Some(Rejection::WouldWaitTooLong {
                    estimate,
                    limit: self.queue_timeout,
                    retry_after: estimate - self.queue_timeout,
                })
            } else {
                None
            };
            if let Some(refusal) = refusal {
                state.forget_if_idle(&name);
                return Err(refusal);
            }
            let (grant, granted) = oneshot::channel();
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            let entry = state.tenants.get_mut(&name).expect("inserted above");
            entry.waiters.push_back(Waiter {
                ticket,
                bytes,
                grant,
            });
            state.waiting_total += 1;
            state.waiting_bytes += bytes;
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
            let retry_after = self.lock().drain_time();
            return Err(if timed_out {
                Rejection::WaitTimedOut { retry_after }
            } else {
                Rejection::QueueFull { retry_after }
            });
        }
        Ok(Permit {
            scheduler: self.clone(),
            tenant,
            granted: Instant::now(),
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

    /// Frees `tenant`'s worker; `held` is how long its execution kept it, when it ran.
    fn release(&self, tenant: &Arc<str>, held: Option<Duration>) {
        let mut state = self.lock();
        if let Some(entry) = state.tenants.get_mut(tenant) {
            entry.running -= 1;
        }
        if let Some(held) = held {
            let pace = moving_average(state.paces.get(tenant).copied(), held);
            state.paces.insert(tenant.clone(), pace);
            state.average = moving_average(Some(state.average), held);
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

/// The average after one more sample.
fn moving_average(average: Option<Duration>, sample: Duration) -> Duration {
    match average {
        None => sample,
        Some(average) => average.mul_f64(1.0 - AVERAGE_WEIGHT) + sample.mul_f64(AVERAGE_WEIGHT),
    }
}

impl State {
    /// How long a new request of `name` would wait: nothing when a worker is free for it now;
    /// otherwise its rounds (the requests ahead of it, and itself, over its share of the
    /// workers) times its recent execution time.
    fn wait_estimate(&self, name: &Arc<str>) -> Duration {
        let Some(tenant) = self.tenants.get(name) else {
            return Duration::ZERO;
        };
        let ahead = tenant.waiters.len();
        if ahead == 0
            && self.free > 0
            && tenant.running < tenant.share.max_running
            && !self.reserved_for_others(name, tenant.running)
        {
            return Duration::ZERO;
        }
        let active = self.tenants.len().max(1);
        let share = tenant
            .share
            .max_running
            .min((self.capacity / active).max(1))
            .max(1);
        let rounds = (ahead + 1).div_ceil(share);
        let pace = self.paces.peek(name).copied().unwrap_or(FIRST_ESTIMATE);
        pace * rounds as u32
    }

    /// How long every waiting request would take to start at the recent pace: when to come
    /// back after a refusal.
    fn drain_time(&self) -> Duration {
        let rounds = self.waiting_total.div_ceil(self.capacity.max(1)).max(1);
        (self.average * rounds as u32).max(Duration::from_secs(1))
    }

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
            self.waiting_bytes -= waiter.bytes;
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
        let waiter = tenant.waiters.remove(position);
        state.waiting_total -= 1;
        state.waiting_bytes -= waiter.map_or(0, |waiter| waiter.bytes);
        state.forget_if_idle(self.tenant);
        true
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.remove() {
            // Granted just as the request went away: hand the worker back.
            self.scheduler.release(self.tenant, None);
        }
    }
}

/// The right to run one execution; dropping it frees the worker for the next in turn.
pub struct Permit {
    scheduler: Arc<Scheduler>,
    tenant: Arc<str>,
    granted: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.scheduler
            .release(&self.tenant, Some(self.granted.elapsed()));
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
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _a = scheduler.acquire("a", SHARE, 1).await.unwrap();
        let _b = scheduler.acquire("a", SHARE, 1).await.unwrap();
        assert_eq!(
            scheduler
                .acquire("a", SHARE, 1)
                .await
                .err()
                .map(|rejection| rejection.reason()),
            Some("queue_timeout")
        );
        assert_eq!(scheduler.running(), 2);
    }

    #[tokio::test]
    async fn tenant_ceiling_holds_even_with_free_workers() {
        let scheduler = Scheduler::new(4, 16, usize::MAX, Duration::from_millis(50));
        let one = TenantShare {
            max_running: 1,
            max_waiting: 4,
        };
        let _a = scheduler.acquire("a", one, 1).await.unwrap();
        assert_eq!(
            scheduler
                .acquire("a", one, 1)
                .await
                .err()
                .map(|rejection| rejection.reason()),
            Some("queue_timeout")
        );
        assert!(scheduler.acquire("b", one, 1).await.is_ok());
    }

    #[tokio::test]
    async fn waiting_tenants_take_turns() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let held = scheduler.acquire("a", SHARE, 1).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Tenant a queues three requests before tenant b queues one.
        for tenant in ["a", "a", "a", "b"] {
            let scheduler = scheduler.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let permit = scheduler.acquire(tenant, SHARE, 1).await.unwrap();
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
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _first = scheduler.acquire("a", SHARE, 1).await.unwrap();
        assert!(scheduler.acquire("a", SHARE, 1).await.is_ok());
    }

    #[tokio::test]
    async fn the_last_worker_stays_free_while_another_tenant_is_active() {
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _a = scheduler.acquire("a", SHARE, 1).await.unwrap();
        drop(scheduler.acquire("b", SHARE, 1).await.unwrap());
        // b was active just now: a, already running one script, may not take the last worker...
        assert_eq!(
            scheduler
                .acquire("a", SHARE, 1)
                .await
                .err()
                .map(|rejection| rejection.reason()),
            Some("queue_timeout")
        );
        // ...which b gets at once.
        assert!(scheduler.acquire("b", SHARE, 1).await.is_ok());
    }

    #[tokio::test]
    async fn full_tenant_queue_rejects_at_once_without_affecting_others() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let small = TenantShare {
            max_running: 1,
            max_waiting: 1,
        };
        let _held = scheduler.acquire("a", small, 1).await.unwrap();
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("a", small, 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            scheduler
                .acquire("a", small, 1)
                .await
                .err()
                .map(|rejection| rejection.reason()),
            Some("queue_full")
        );
        let other = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("b", small, 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(_held);
        assert!(queued.await.unwrap().is_ok());
        assert!(other.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn abandoned_waiters_leave_no_trace() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let held = scheduler.acquire("a", SHARE, 1).await.unwrap();
        let waiter = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("b", SHARE, 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(scheduler.running(), 0);
        assert!(scheduler.lock().tenants.is_empty());
        assert!(scheduler.acquire("c", SHARE, 1).await.is_ok());
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    const WIDE: TenantShare = TenantShare {
        max_running: 2,
        max_waiting: 1024,
    };

    #[tokio::test]
    async fn a_request_that_would_wait_past_the_timeout_is_refused_at_once_with_its_estimate() {
        let scheduler = Scheduler::new(1, 4096, usize::MAX, Duration::from_millis(100));
        // Teach the scheduler that this tenant's scripts hold a worker for 60 ms.
        for _ in 0..20 {
            let permit = scheduler.acquire("slow", WIDE, 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            drop(permit);
        }
        let running = scheduler.acquire("slow", WIDE, 1).await.unwrap();
        // One waiter fits in 100 ms (about 60 ms); a second would start after about 120 ms.
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("slow", WIDE, 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        let Err(refused) = scheduler.acquire("slow", WIDE, 1).await else {
            panic!("admitted");
        };
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "refused at once"
        );
        assert_eq!(refused.reason(), "wait_estimate", "{refused}");
        assert!(refused.retry_after() > Duration::ZERO);
        drop(running);
        queued.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_quick_tenant_is_judged_by_its_own_pace_after_an_idle_moment_beside_a_slow_one() {
        let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_millis(30));
        // The slow tenant's scripts hold a worker for 150 ms, the quick one's for 1 ms, and
        // between its requests the quick tenant has nothing running or waiting.
        for _ in 0..3 {
            let permit = scheduler.acquire("slow", WIDE, 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            drop(permit);
        }
        for _ in 0..3 {
            let permit = scheduler.acquire("quick", WIDE, 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(permit);
        }
        // Both workers busy: one with the slow tenant, one with a quick request. The next quick
        // request waits about a millisecond, not the slow tenant's 150 ms.
        let slow = scheduler.acquire("slow", WIDE, 1).await.unwrap();
        let quick = scheduler.acquire("quick", WIDE, 1).await.unwrap();
        let next = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("quick", WIDE, 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(quick);
        next.await.unwrap().expect("admitted at its own pace");
        drop(slow);
    }

    #[tokio::test]
    async fn many_quick_requests_wait_their_turn_instead_of_being_refused() {
        let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_secs(2));
        // Sixty-four requests at once, each holding a worker for a millisecond: all run.
        let requests: Vec<_> = (0..64)
            .map(|_| {
                let scheduler = scheduler.clone();
                tokio::spawn(async move {
                    let permit = scheduler.acquire("batch", WIDE, 1).await?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    drop(permit);
                    Ok::<(), Rejection>(())
                })
            })
            .collect();
        for request in requests {
            request.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn the_bytes_of_waiting_scripts_are_bounded() {
        let scheduler = Scheduler::new(1, 4096, 100, Duration::from_secs(2));
        let running = scheduler.acquire("a", WIDE, 10).await.unwrap();
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire("a", WIDE, 80).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let Err(refused) = scheduler.acquire("b", WIDE, 30).await else {
            panic!("admitted");
        };
        assert_eq!(refused.reason(), "queue_full");
        drop(running);
        queued.await.unwrap().unwrap();
    }
}
