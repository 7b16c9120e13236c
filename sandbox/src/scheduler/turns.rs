//! The scheduler's bookkeeping, synchronous and always under its one lock: who runs, who waits,
//! whose turn comes next, and how long a new request would wait. Kept apart from the waiting
//! itself (`mod.rs`), so every rule of admission and of turn-taking reads in one place and
//! nothing here awaits.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use hashlink::LruCache;
use tokio::{sync::oneshot, time::Instant};

use super::{REMEMBERED_PACES, RESERVATION_WINDOW, Rejection, TenantShare, Turn};

/// Execution time assumed before any has been measured.
const FIRST_ESTIMATE: Duration = Duration::from_millis(10);
/// Weight of the newest execution in the moving averages.
const AVERAGE_WEIGHT: f64 = 0.2;

/// How long a request may wait, and how many requests and bytes of scripts may wait at once.
pub(super) struct Bounds {
    pub(super) queue_timeout: Duration,
    pub(super) max_waiting_total: usize,
    pub(super) max_waiting_bytes: usize,
}

pub(super) type Seat = (Arc<str>, Arc<str>);

/// Everything the scheduler knows, behind its lock.
pub(super) struct State {
    capacity: usize,
    free: usize,
    /// The two tiers that asked most recently, and when: enough to tell whether a tier other
    /// than a given one is active.
    recent: [Option<(Arc<str>, Instant)>; 2],
    pub(super) waiting_total: usize,
    /// Bytes of the scripts waiting.
    pub(super) waiting_bytes: usize,
    /// Moving average of how long permits were held, over all clients: how fast the queue as a
    /// whole drains.
    average: Duration,
    /// Each recent client's moving average of how long its permits were held, kept while it is
    /// idle: a client whose requests come one at a time is forgotten by `tiers` between them.
    paces: LruCache<Seat, Duration>,
    next_ticket: u64,
    pub(super) tiers: HashMap<Arc<str>, Tier>,
    /// Tiers that have a ready client and room to run, in turn order.
    ready: VecDeque<Arc<str>>,
}

pub(super) struct Tier {
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
/// The average after one more sample.
fn moving_average(average: Option<Duration>, sample: Duration) -> Duration {
    match average {
        None => sample,
        Some(average) => average.mul_f64(1.0 - AVERAGE_WEIGHT) + sample.mul_f64(AVERAGE_WEIGHT),
    }
}

impl State {
    /// Nothing running, nothing waiting, `capacity` workers free.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
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
        }
    }

    /// Queues a request of `turn` whose script is `bytes` long, or refuses it at once: when the
    /// waiting requests already fill `bounds`, or when it could not start in time. Returns its
    /// seat, its ticket in the queue and where its grant will arrive.
    pub(super) fn enqueue(
        &mut self,
        turn: Turn<'_>,
        bytes: usize,
        bounds: &Bounds,
    ) -> Result<(Seat, u64, oneshot::Receiver<()>), Rejection> {
        let seat = self.seat(turn);
        let tier = &self.tiers[&seat.0];
        let flood = self.waiting_total >= bounds.max_waiting_total
            || self.waiting_bytes + bytes > bounds.max_waiting_bytes
            || tier.waiting >= bounds.max_waiting_total.div_ceil(2)
            || tier.waiting_bytes + bytes > bounds.max_waiting_bytes.div_ceil(2);
        let full = tier.clients[&seat.1].waiters.len() >= turn.share.max_waiting;
        if flood {
            let retry_after = self.drain_time();
            self.forget_if_idle(&seat);
            return Err(Rejection::QueueFull { retry_after });
        }
        self.note_activity(&seat.0);
        let estimate = self.wait_estimate(&seat);
        let refusal = if full {
            Some(Rejection::QueueFull {
                retry_after: estimate,
            })
        } else if estimate > bounds.queue_timeout {
            Some(Rejection::WouldWaitTooLong {
                estimate,
                limit: bounds.queue_timeout,
                retry_after: estimate - bounds.queue_timeout,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.forget_if_idle(&seat);
            return Err(refusal);
        }
        let (grant, granted) = oneshot::channel();
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let tier = self.tiers.get_mut(&seat.0).expect("seated above");
        tier.waiting += 1;
        tier.waiting_bytes += bytes;
        let client = tier.clients.get_mut(&seat.1).expect("seated above");
        client.waiters.push_back(Waiter {
            ticket,
            bytes,
            grant,
        });
        self.waiting_total += 1;
        self.waiting_bytes += bytes;
        self.mark_ready(&seat);
        self.dispatch();
        Ok((seat, ticket, granted))
    }

    /// Takes `seat`'s waiter `ticket` out of the queue; true when it was still queued (so no
    /// permit was granted to it).
    pub(super) fn leave_queue(&mut self, seat: &Seat, ticket: u64) -> bool {
        let Some(tier) = self.tiers.get_mut(&seat.0) else {
            return false;
        };
        let Some(client) = tier.clients.get_mut(&seat.1) else {
            return false;
        };
        let Some(position) = client
            .waiters
            .iter()
            .position(|waiter| waiter.ticket == ticket)
        else {
            return false;
        };
        let bytes = client
            .waiters
            .remove(position)
            .map_or(0, |waiter| waiter.bytes);
        tier.waiting -= 1;
        tier.waiting_bytes -= bytes;
        self.waiting_total -= 1;
        self.waiting_bytes -= bytes;
        self.forget_if_idle(seat);
        true
    }

    /// Frees `seat`'s worker; `held` is how long its execution kept it, when it ran.
    pub(super) fn release(&mut self, seat: &Seat, held: Option<Duration>) {
        if let Some(tier) = self.tiers.get_mut(&seat.0) {
            tier.running -= 1;
            if let Some(client) = tier.clients.get_mut(&seat.1) {
                client.running -= 1;
            }
        }
        if let Some(held) = held {
            let pace = moving_average(self.paces.get(seat).copied(), held);
            self.paces.insert(seat.clone(), pace);
            self.average = moving_average(Some(self.average), held);
        }
        self.free += 1;
        self.mark_ready(seat);
        self.forget_if_idle(seat);
        self.dispatch();
    }

    /// Executions running now.
    pub(super) fn running(&self) -> usize {
        self.capacity - self.free
    }
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
    pub(super) fn drain_time(&self) -> Duration {
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
