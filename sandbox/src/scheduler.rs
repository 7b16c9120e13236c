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

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use hashlink::LruCache;
use tokio::{sync::oneshot, time::Instant};

/// How long after another tier's last request a tier is kept off the last free worker.
pub const RESERVATION_WINDOW: Duration = Duration::from_secs(10);

/// Execution time assumed before any has been measured.
const FIRST_ESTIMATE: Duration = Duration::from_millis(10);
/// Clients whose recent pace is remembered while they have nothing running or waiting.
pub const REMEMBERED_PACES: usize = 4096;
/// Weight of the newest execution in the moving averages.
const AVERAGE_WEIGHT: f64 = 0.2;

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
    queue_timeout: Duration,
    max_waiting_total: usize,
    max_waiting_bytes: usize,
}

/// A client's place: its tier and its name within it.
type Seat = (Arc<str>, Arc<str>);

struct State {
    capacity: usize,
    free: usize,
    /// The two tiers that asked most recently, and when: enough to tell whether a tier other
    /// than a given one is active.
    recent: [Option<(Arc<str>, Instant)>; 2],
    waiting_total: usize,
    /// Bytes of the scripts waiting.
    waiting_bytes: usize,
    /// Moving average of how long permits were held, over all clients: how fast the queue as a
    /// whole drains.
    average: Duration,
    /// Each recent client's moving average of how long its permits were held, kept while it is
    /// idle: a client whose requests come one at a time is forgotten by `tiers` between them.
    paces: LruCache<Seat, Duration>,
    next_ticket: u64,
    tiers: HashMap<Arc<str>, Tier>,
    /// Tiers that have a ready client and room to run, in turn order.
    ready: VecDeque<Arc<str>>,
}

struct Tier {
    running: usize,
    max_running: usize,
    waiting: usize,
    waiting_bytes: usize,
    clients: HashMap<Arc<str>, Client>,
    /// Clients that have waiters and are below their ceiling, in turn order.
    ready: VecDeque<Arc<str>>,
    in_ready: bool,
}

struct Client {
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
    /// tiers, at most half of each in any one tier.
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
                tiers: HashMap::new(),
                ready: VecDeque::new(),
            }),
            queue_timeout,
            max_waiting_total,
            max_waiting_bytes,
        })
    }

    /// Waits for a permit for `turn`, whose script is `bytes` long.
    pub async fn acquire(
        self: &Arc<Self>,
        turn: Turn<'_>,
        bytes: usize,
    ) -> Result<Permit, Rejection> {
        let (ticket, seat, mut granted) = {
            let mut state = self.lock();
            let seat = state.seat(turn);
            let tier = &state.tiers[&seat.0];
            let flood = state.waiting_total >= self.max_waiting_total
                || state.waiting_bytes + bytes > self.max_waiting_bytes
                || tier.waiting >= self.max_waiting_total.div_ceil(2)
                || tier.waiting_bytes + bytes > self.max_waiting_bytes.div_ceil(2);
            let full = tier.clients[&seat.1].waiters.len() >= turn.share.max_waiting;
            if flood {
                let retry_after = state.drain_time();
                state.forget_if_idle(&seat);
                return Err(Rejection::QueueFull { retry_after });
            }
            state.note_activity(&seat.0);
            let estimate = state.wait_estimate(&seat);
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
                state.forget_if_idle(&seat);
                return Err(refusal);
            }
            let (grant, granted) = oneshot::channel();
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            let tier = state.tiers.get_mut(&seat.0).expect("seated above");
            tier.waiting += 1;
            tier.waiting_bytes += bytes;
            let client = tier.clients.get_mut(&seat.1).expect("seated above");
            client.waiters.push_back(Waiter {
                ticket,
                bytes,
                grant,
            });
            state.waiting_total += 1;
            state.waiting_bytes += bytes;
            state.mark_ready(&seat);
            state.dispatch();
            (ticket, seat, granted)
        };
        let waiting = Waiting {
            scheduler: self,
            seat: &seat,
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
            seat,
            granted: Instant::now(),
        })
    }

    /// Executions running now.
    pub fn running(&self) -> usize {
        let state = self.lock();
        state.capacity - state.free
    }

    /// Frees `seat`'s worker; `held` is how long its execution kept it, when it ran.
    fn release(&self, seat: &Seat, held: Option<Duration>) {
        let mut state = self.lock();
        if let Some(tier) = state.tiers.get_mut(&seat.0) {
            tier.running -= 1;
            if let Some(client) = tier.clients.get_mut(&seat.1) {
                client.running -= 1;
            }
        }
        if let Some(held) = held {
            let pace = moving_average(state.paces.get(seat).copied(), held);
            state.paces.insert(seat.clone(), pace);
            state.average = moving_average(Some(state.average), held);
        }
        state.free += 1;
        state.mark_ready(seat);
        state.forget_if_idle(seat);
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
    /// The tier and client of `turn`, entered (or updated) with its share.
    fn seat(&mut self, turn: Turn<'_>) -> Seat {
        let tier_name: Arc<str> = match self.tiers.get_key_value(turn.tier) {
            Some((name, _)) => name.clone(),
            None => Arc::from(turn.tier),
        };
        let tier = self.tiers.entry(tier_name.clone()).or_insert_with(|| Tier {
            running: 0,
            max_running: turn.tier_max_running,
            waiting: 0,
            waiting_bytes: 0,
            clients: HashMap::new(),
            ready: VecDeque::new(),
            in_ready: false,
        });
        tier.max_running = turn.tier_max_running;
        let client_name: Arc<str> = match tier.clients.get_key_value(turn.client) {
            Some((name, _)) => name.clone(),
            None => Arc::from(turn.client),
        };
        let client = tier
            .clients
            .entry(client_name.clone())
            .or_insert_with(|| Client {
                running: 0,
                share: turn.share,
                waiters: VecDeque::new(),
                in_ready: false,
            });
        client.share = turn.share;
        (tier_name, client_name)
    }

    /// How long a new request of `seat` would wait: nothing when a worker is free for it now;
    /// otherwise its rounds (the requests ahead of it, and itself, over its share of the
    /// workers) times its recent execution time.
    fn wait_estimate(&self, seat: &Seat) -> Duration {
        let Some(tier) = self.tiers.get(&seat.0) else {
            return Duration::ZERO;
        };
        let Some(client) = tier.clients.get(&seat.1) else {
            return Duration::ZERO;
        };
        let ahead = client.waiters.len();
        if ahead == 0
            && self.free > 0
            && client.running < client.share.max_running
            && tier.running < tier.max_running
            && !self.reserved_for_others(&seat.0, tier.running)
        {
            return Duration::ZERO;
        }
        let tier_share = tier
            .max_running
            .min(self.capacity / self.tiers.len().max(1))
            .max(1);
        let share = client
            .share
            .max_running
            .min(tier_share / tier.clients.len().max(1))
            .max(1);
        let rounds = (ahead + 1).div_ceil(share);
        let pace = self.paces.peek(seat).copied().unwrap_or(FIRST_ESTIMATE);
        pace * rounds as u32
    }

    /// How long every waiting request would take to start at the recent pace: when to come
    /// back after a refusal.
    fn drain_time(&self) -> Duration {
        let rounds = self.waiting_total.div_ceil(self.capacity.max(1)).max(1);
        (self.average * rounds as u32).max(Duration::from_secs(1))
    }

    /// Puts `seat`'s client in its tier's turn order if it has waiters and room to run, and
    /// the tier in the turn order of tiers if it has a ready client and room to run.
    fn mark_ready(&mut self, seat: &Seat) {
        let Some(tier) = self.tiers.get_mut(&seat.0) else {
            return;
        };
        if let Some(client) = tier.clients.get_mut(&seat.1)
            && !client.in_ready
            && !client.waiters.is_empty()
            && client.running < client.share.max_running
        {
            client.in_ready = true;
            tier.ready.push_back(seat.1.clone());
        }
        if !tier.in_ready && !tier.ready.is_empty() && tier.running < tier.max_running {
            tier.in_ready = true;
            self.ready.push_back(seat.0.clone());
        }
    }

    fn note_activity(&mut self, tier: &Arc<str>) {
        let now = Instant::now();
        match &mut self.recent {
            [Some((latest, at)), _] if latest == tier => *at = now,
            [latest, previous] => {
                *previous = latest.take();
                *latest = Some((tier.clone(), now));
            }
        }
    }

    /// True when the last free worker must stay free for tiers other than `tier`.
    fn reserved_for_others(&self, tier: &Arc<str>, running: usize) -> bool {
        self.capacity > 1
            && self.free == 1
            && running > 0
            && self
                .recent
                .iter()
                .flatten()
                .any(|(other, at)| other != tier && at.elapsed() < RESERVATION_WINDOW)
    }

    /// Grants free workers to waiting clients: tiers in turn, and within a tier its clients in
    /// turn.
    fn dispatch(&mut self) {
        let mut deferred = Vec::new();
        while self.free > 0 {
            let Some(tier_name) = self.ready.pop_front() else {
                break;
            };
            let Some(running) = self.tiers.get(&tier_name).map(|tier| tier.running) else {
                continue;
            };
            if self.reserved_for_others(&tier_name, running) {
                // Still ready: it takes its turn once another worker frees up.
                deferred.push(tier_name);
                continue;
            }
            let Some(tier) = self.tiers.get_mut(&tier_name) else {
                continue;
            };
            tier.in_ready = false;
            if tier.running >= tier.max_running {
                // Its share was lowered while it waited; it is ready again once under it.
                continue;
            }
            let Some((client_name, waiter)) = tier.next_waiter() else {
                // Its clients' waiters gave up while it waited for its turn.
                self.forget_tier_if_idle(&tier_name);
                continue;
            };
            let seat = (tier_name, client_name);
            self.waiting_total -= 1;
            self.waiting_bytes -= waiter.bytes;
            let tier = self.tiers.get_mut(&seat.0).expect("present above");
            tier.waiting -= 1;
            tier.waiting_bytes -= waiter.bytes;
            if waiter.grant.send(()).is_ok() {
                tier.running += 1;
                if let Some(client) = tier.clients.get_mut(&seat.1) {
                    client.running += 1;
                }
                self.free -= 1;
            }
            self.mark_ready(&seat);
            self.forget_if_idle(&seat);
        }
        self.ready.extend(deferred);
    }

    fn forget_if_idle(&mut self, seat: &Seat) {
        if let Some(tier) = self.tiers.get_mut(&seat.0)
            && tier.clients.get(&seat.1).is_some_and(Client::is_idle)
        {
            tier.clients.remove(&seat.1);
        }
        self.forget_tier_if_idle(&seat.0);
    }

    fn forget_tier_if_idle(&mut self, name: &Arc<str>) {
        if self
            .tiers
            .get(name)
            .is_some_and(|tier| tier.running == 0 && tier.clients.is_empty() && !tier.in_ready)
        {
            self.tiers.remove(name);
        }
    }
}

impl Tier {
    /// The next ready client's first waiter, with the client's name; the client goes back in
    /// the turn order if it has more to run. Clients whose waiters all gave up are forgotten.
    fn next_waiter(&mut self) -> Option<(Arc<str>, Waiter)> {
        while let Some(name) = self.ready.pop_front() {
            let Some(client) = self.clients.get_mut(&name) else {
                continue;
            };
            client.in_ready = false;
            let waiter = if client.running < client.share.max_running {
                client.waiters.pop_front()
            } else {
                None
            };
            match waiter {
                Some(waiter) => return Some((name, waiter)),
                None if client.is_idle() => {
                    self.clients.remove(&name);
                }
                None => {}
            }
        }
        None
    }
}

impl Client {
    fn is_idle(&self) -> bool {
        self.running == 0 && self.waiters.is_empty() && !self.in_ready
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
        let mut state = self.scheduler.lock();
        let Some(tier) = state.tiers.get_mut(&self.seat.0) else {
            return false;
        };
        let Some(client) = tier.clients.get_mut(&self.seat.1) else {
            return false;
        };
        let Some(position) = client
            .waiters
            .iter()
            .position(|waiter| waiter.ticket == self.ticket)
        else {
            return false;
        };
        let bytes = client
            .waiters
            .remove(position)
            .map_or(0, |waiter| waiter.bytes);
        tier.waiting -= 1;
        tier.waiting_bytes -= bytes;
        state.waiting_total -= 1;
        state.waiting_bytes -= bytes;
        state.forget_if_idle(self.seat);
        true
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
mod tests {
    use super::*;

    const SHARE: TenantShare = TenantShare {
        max_running: 2,
        max_waiting: 8,
    };

    /// A keyed tenant: a tier of its own, with one client, limited only by the capacity.
    fn keyed(name: &str, share: TenantShare) -> Turn<'_> {
        Turn {
            tier: name,
            client: name,
            tier_max_running: usize::MAX,
            share,
        }
    }

    /// One client of the anonymous tier, which may hold `tier_max_running` workers in all.
    fn anonymous(client: &str, tier_max_running: usize) -> Turn<'_> {
        Turn {
            tier: "anonymous",
            client,
            tier_max_running,
            share: SHARE,
        }
    }

    async fn reason(scheduler: &Arc<Scheduler>, turn: Turn<'_>) -> Option<&'static str> {
        scheduler
            .acquire(turn, 1)
            .await
            .err()
            .map(|rejection| rejection.reason())
    }

    /// Lets spawned tasks run until each has queued or finished.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grants_up_to_capacity_then_queues() {
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _a = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        let _b = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        assert_eq!(
            reason(&scheduler, keyed("a", SHARE)).await,
            Some("queue_timeout")
        );
        assert_eq!(scheduler.running(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tenant_ceiling_holds_even_with_free_workers() {
        let scheduler = Scheduler::new(4, 16, usize::MAX, Duration::from_millis(50));
        let one = TenantShare {
            max_running: 1,
            max_waiting: 4,
        };
        let _a = scheduler.acquire(keyed("a", one), 1).await.unwrap();
        assert_eq!(
            reason(&scheduler, keyed("a", one)).await,
            Some("queue_timeout")
        );
        assert!(scheduler.acquire(keyed("b", one), 1).await.is_ok());
    }

    /// One waiting request for each of `requests` (a keyed tenant's name, or an anonymous
    /// client's with `anonymous` true), queued in that order behind `held` on a one-worker
    /// scheduler, each holding the worker for 5 ms; the names in the order they ran.
    async fn order_of_turns(
        scheduler: &Arc<Scheduler>,
        held: Permit,
        requests: Vec<(String, bool)>,
    ) -> Vec<String> {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, is_anonymous) in requests {
            let scheduler = scheduler.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let turn = if is_anonymous {
                    anonymous(&name, 1)
                } else {
                    keyed(&name, SHARE)
                };
                let permit = scheduler.acquire(turn, 1).await.unwrap();
                order.lock().unwrap().push(name.clone());
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            settle().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_tenants_take_turns() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let held = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        // Tenant a queues three requests before tenant b queues one.
        let requests = ["a", "a", "a", "b"].map(|name| (name.to_owned(), false));
        let order = order_of_turns(&scheduler, held, requests.into()).await;
        assert_eq!(
            order[..2],
            ["a", "b"],
            "b is served second, not after all of a: {order:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_tenant_uses_every_worker() {
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _first = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        assert!(scheduler.acquire(keyed("a", SHARE), 1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_worker_stays_free_while_another_tenant_is_active() {
        let scheduler = Scheduler::new(2, 16, usize::MAX, Duration::from_millis(50));
        let _a = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        drop(scheduler.acquire(keyed("b", SHARE), 1).await.unwrap());
        // b was active just now: a, already running one script, may not take the last worker...
        assert_eq!(
            reason(&scheduler, keyed("a", SHARE)).await,
            Some("queue_timeout")
        );
        // ...which b gets at once.
        assert!(scheduler.acquire(keyed("b", SHARE), 1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn full_tenant_queue_rejects_at_once_without_affecting_others() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let small = TenantShare {
            max_running: 1,
            max_waiting: 1,
        };
        let held = scheduler.acquire(keyed("a", small), 1).await.unwrap();
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(keyed("a", small), 1).await.map(drop) })
        };
        settle().await;
        assert_eq!(
            reason(&scheduler, keyed("a", small)).await,
            Some("queue_full")
        );
        let other = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(keyed("b", small), 1).await.map(drop) })
        };
        settle().await;
        drop(held);
        assert!(queued.await.unwrap().is_ok());
        assert!(other.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_waiters_leave_no_trace() {
        let scheduler = Scheduler::new(1, 64, usize::MAX, Duration::from_secs(5));
        let held = scheduler.acquire(keyed("a", SHARE), 1).await.unwrap();
        let waiter = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(anonymous("b", 1), 1).await.map(drop) })
        };
        settle().await;
        assert_eq!(scheduler.lock().waiting_total, 1);
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(scheduler.running(), 0);
        {
            let state = scheduler.lock();
            assert!(state.tiers.is_empty());
            assert_eq!((state.waiting_total, state.waiting_bytes), (0, 0));
        }
        assert!(scheduler.acquire(keyed("c", SHARE), 1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_anonymous_tier_as_a_whole_holds_at_most_its_share_of_the_workers() {
        let scheduler = Scheduler::new(3, 64, usize::MAX, Duration::from_millis(50));
        // Two anonymous addresses may hold two of the three workers between them, not three...
        let _one = scheduler
            .acquire(anonymous("192.0.2.1", 2), 1)
            .await
            .unwrap();
        let _two = scheduler
            .acquire(anonymous("192.0.2.2", 2), 1)
            .await
            .unwrap();
        assert_eq!(
            reason(&scheduler, anonymous("192.0.2.3", 2)).await,
            Some("queue_timeout")
        );
        // ...and the third is there for a keyed tenant at once.
        assert!(scheduler.acquire(keyed("acme", SHARE), 1).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tiers_take_turns_before_clients_so_a_crowd_gets_one_tiers_share() {
        let scheduler = Scheduler::new(1, 256, usize::MAX, Duration::from_secs(60));
        let held = scheduler.acquire(keyed("acme", SHARE), 1).await.unwrap();
        // Thirty anonymous addresses queue one request each, then the keyed tenant queues two.
        let requests = (0..30)
            .map(|n| (format!("198.51.100.{n}"), true))
            .chain([("acme".to_owned(), false), ("acme".to_owned(), false)])
            .collect();
        let order = order_of_turns(&scheduler, held, requests).await;
        // The tiers alternate: anonymous, acme, anonymous, acme; the crowd's size does not
        // push the keyed tenant back.
        assert_eq!(
            order[..4],
            ["198.51.100.0", "acme", "198.51.100.1", "acme"],
            "{order:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_in_one_tier_leaves_room_in_the_queue_for_the_others() {
        let scheduler = Scheduler::new(1, 8, usize::MAX, Duration::from_secs(60));
        let held = scheduler.acquire(keyed("acme", SHARE), 1).await.unwrap();
        let mut queued = Vec::new();
        for n in 0..4 {
            let scheduler = scheduler.clone();
            queued.push(tokio::spawn(async move {
                let client = format!("203.0.113.{n}");
                scheduler.acquire(anonymous(&client, 1), 1).await.map(drop)
            }));
        }
        settle().await;
        // Half the queue is the anonymous tier's at most.
        assert_eq!(
            reason(&scheduler, anonymous("203.0.113.99", 1)).await,
            Some("queue_full")
        );
        let keyed_waiter = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(keyed("beta", SHARE), 1).await.map(drop) })
        };
        settle().await;
        drop(held);
        assert!(keyed_waiter.await.unwrap().is_ok());
        for waiter in queued {
            assert!(waiter.await.unwrap().is_ok());
        }
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    const WIDE: TenantShare = TenantShare {
        max_running: 2,
        max_waiting: 1024,
    };

    fn turn(name: &str) -> Turn<'_> {
        Turn {
            tier: name,
            client: name,
            tier_max_running: usize::MAX,
            share: WIDE,
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    // The clock is tokio's paused clock: the executions' durations below are exact, whatever
    // the machine's load.
    #[tokio::test(start_paused = true)]
    async fn a_request_that_would_wait_past_the_timeout_is_refused_at_once_with_its_estimate() {
        let scheduler = Scheduler::new(1, 4096, usize::MAX, Duration::from_millis(100));
        // Teach the scheduler that this tenant's scripts hold a worker for 60 ms.
        for _ in 0..20 {
            let permit = scheduler.acquire(turn("slow"), 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(60)).await;
            drop(permit);
        }
        let running = scheduler.acquire(turn("slow"), 1).await.unwrap();
        // One waiter fits in 100 ms (about 60 ms); a second would start after about 120 ms.
        let queued = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(turn("slow"), 1).await.map(drop) })
        };
        settle().await;
        let started = Instant::now();
        let Err(refused) = scheduler.acquire(turn("slow"), 1).await else {
            panic!("admitted");
        };
        assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
        assert_eq!(refused.reason(), "wait_estimate", "{refused}");
        assert!(refused.retry_after() > Duration::ZERO);
        drop(running);
        queued.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_tenant_is_judged_by_its_own_pace_after_an_idle_moment_beside_a_slow_one() {
        let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_millis(30));
        // The slow tenant's scripts hold a worker for 150 ms, the quick one's for 1 ms, and
        // between its requests the quick tenant has nothing running or waiting.
        for _ in 0..3 {
            let permit = scheduler.acquire(turn("slow"), 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            drop(permit);
        }
        for _ in 0..3 {
            let permit = scheduler.acquire(turn("quick"), 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(permit);
        }
        // Both workers busy: one with the slow tenant, one with a quick request. The next quick
        // request waits about a millisecond, not the slow tenant's 150 ms.
        let slow = scheduler.acquire(turn("slow"), 1).await.unwrap();
        let quick = scheduler.acquire(turn("quick"), 1).await.unwrap();
        let next = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.acquire(turn("quick"), 1).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(quick);
        next.await.unwrap().expect("admitted at its own pace");
        drop(slow);
    }

    #[tokio::test(start_paused = true)]
    async fn many_quick_requests_wait_their_turn_instead_of_being_refused() {
        let scheduler = Scheduler::new(2, 4096, usize::MAX, Duration::from_secs(2));
        // Sixty-four requests at once, each holding a worker for a millisecond: all run.
        let requests: Vec<_> = (0..64)
            .map(|_| {
                let scheduler = scheduler.clone();
                tokio::spawn(async move {
                    let permit = scheduler.acquire(turn("batch"), 1).await?;
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

    #[tokio::test(start_paused = true)]
    async fn the_bytes_of_waiting_scripts_are_bounded() {
        let scheduler = Scheduler::new(1, 4096, 100, Duration::from_secs(2));
        let running = scheduler.acquire(turn("a"), 10).await.unwrap();
        let mut queued = Vec::new();
        for (name, bytes) in [("a", 40), ("c", 40)] {
            let scheduler = scheduler.clone();
            queued.push(tokio::spawn(async move {
                scheduler.acquire(turn(name), bytes).await.map(drop)
            }));
        }
        settle().await;
        // 80 bytes wait; 30 more would pass the 100 allowed.
        let Err(refused) = scheduler.acquire(turn("b"), 30).await else {
            panic!("admitted");
        };
        assert_eq!(refused.reason(), "queue_full");
        // One tier alone may fill at most half.
        let Err(refused) = scheduler.acquire(turn("a"), 11).await else {
            panic!("admitted");
        };
        assert_eq!(refused.reason(), "queue_full");
        drop(running);
        for waiter in queued {
            waiter.await.unwrap().unwrap();
        }
    }
}
