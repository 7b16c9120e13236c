//! Sessions: state that lives across executions, with an owner, a lifetime and a budget.
//!
//! - **Owner.** A session belongs to the tenant, or for the anonymous tier the client, that
//!   created it ([`Owner`]). To anyone else its id is unknown: the same `session_not_found` as
//!   an id that never existed, whether it is open or expired.
//! - **Lifetime.** An idle timeout, started again as each execution ends ([`Slot`]), and a
//!   maximum age from creation ([`SessionSettings`]). Expiry removes the session and frees
//!   everything at once: its worker is killed and its memory charge released. Expiry is checked
//!   on every lookup and by a reaper every [`REAP_EVERY`]; a session that reaches its maximum
//!   age while running an execution expires once it ends.
//!   Expired ids are remembered ([`REMEMBERED`] of them, the oldest forgotten first) so that
//!   their owner gets `session_expired` rather than `session_not_found`.
//! - **Budget.** Creation is refused past the owner's cap of sessions or of their memory, past
//!   the instance's cap of open sessions, or when the session's worker does not fit in the
//!   memory budget; an open session is never dropped to make room. Each session holds its
//!   charge to the memory budget (its worker's whole address space) for its life.
//! - **One execution at a time.** The session's worker sits in a mutex that an execution holds
//!   from start to end ([`Session::try_begin`]); a second one meanwhile is refused (409).

use std::{
    collections::{HashMap, VecDeque},
    ops::{Deref, DerefMut},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use service_kit::{Charge, MemoryBudget};
use tokio::sync::OwnedMutexGuard;

use crate::{metrics::Metrics, supervisor::SessionWorker, tenant::Tenant};

/// How often the reaper looks for expired sessions (requests check on their own).
pub const REAP_EVERY: Duration = Duration::from_millis(250);
/// Expired ids remembered, for `session_expired`.
pub const REMEMBERED: usize = 10_000;

/// How sessions are bounded on this instance.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The idle timeout when a session names none.
    pub default_idle_timeout: Duration,
    /// The longest idle timeout a session may ask for.
    pub max_idle_timeout: Duration,
    /// How long a session may live from its creation, however busy.
    pub max_age: Duration,
    /// Sessions open on this instance at once.
    pub max_open: usize,
    /// Sessions one owner may hold when its tenant's ceiling says nothing.
    pub max_per_owner: u32,
}

/// Who a session belongs to: the tenant, and for the anonymous tier the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    tenant: String,
    client: Option<String>,
}

impl Owner {
    pub fn of(tenant: &Tenant) -> Self {
        Self {
            tenant: tenant.id.clone(),
            client: tenant.client.clone(),
        }
    }
}

/// An open session.
pub struct Session {
    pub id: String,
    owner: Owner,
    pub created: SystemTime,
    created_at: Instant,
    pub idle_timeout: Duration,
    /// Each execution's time limit when it names none.
    pub timeout: Duration,
    /// Bytes of memory everything in its runtime may take.
    pub memory_limit: u64,
    used: Arc<Mutex<Used>>,
    /// Its worker: `None` once an execution ended the session.
    worker: Arc<tokio::sync::Mutex<Option<SessionWorker>>>,
    /// Its worker's process id, readable while an execution holds the worker.
    pid: Option<u32>,
    /// Its share of the memory budget, released with it.
    _charge: Charge,
}

#[derive(Debug, Clone, Copy)]
struct Used {
    last: Instant,
    last_wall: SystemTime,
    executions: u64,
}

impl Used {
    /// Starts the idle timeout again from now.
    fn renew(&mut self) {
        self.last = Instant::now();
        self.last_wall = SystemTime::now();
    }
}

/// What [`Session::state`] reports.
#[derive(Debug, Clone)]
pub struct State {
    pub last_used: SystemTime,
    pub expires: SystemTime,
    pub executions: u64,
    pub busy: bool,
    pub memory_used: u64,
}

/// The session's worker, held for one execution. Released, it starts the session's idle
/// timeout again first, so that an execution longer than the timeout, or whose answer is still
/// being streamed, does not leave the session expired the moment it ends.
pub struct Slot {
    worker: OwnedMutexGuard<Option<SessionWorker>>,
    used: Arc<Mutex<Used>>,
}

impl Deref for Slot {
    type Target = Option<SessionWorker>;

    fn deref(&self) -> &Self::Target {
        &self.worker
    }
}

impl DerefMut for Slot {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.worker
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Before the worker's lock is released (fields are dropped after this).
        self.used.lock().expect("session use").renew();
    }
}

impl Session {
    /// When it expires if left idle from now on: its idle timeout after its last use, or its
    /// maximum age, whichever is sooner.
    fn deadline(&self, max_age: Duration) -> Instant {
        let used = *self.used.lock().expect("session use");
        (used.last + self.idle_timeout).min(self.created_at + max_age)
    }

    /// Its worker for one execution; `None` while another execution holds it.
    pub fn try_begin(&self) -> Option<Slot> {
        let worker = self.worker.clone().try_lock_owned().ok()?;
        Some(Slot {
            worker,
            used: self.used.clone(),
        })
    }

    /// Whether no execution holds its worker now.
    fn idle(&self) -> bool {
        self.worker.try_lock().is_ok()
    }

    /// Counts a finished execution and starts the idle timeout again.
    pub fn used(&self) {
        let mut used = self.used.lock().expect("session use");
        used.renew();
        used.executions += 1;
    }

    /// Whether an execution ended it.
    fn lost(&self) -> bool {
        self.worker.try_lock().is_ok_and(|worker| worker.is_none())
    }

    fn state(&self, max_age: Duration) -> State {
        let used = *self.used.lock().expect("session use");
        let (busy, memory_used) = match self.worker.try_lock() {
            Ok(worker) => (
                false,
                worker
                    .as_ref()
                    .and_then(SessionWorker::resident_bytes)
                    .unwrap_or(0),
            ),
            Err(_) => (true, 0),
        };
        let remaining = self
            .deadline(max_age)
            .saturating_duration_since(Instant::now());
        State {
            last_used: used.last_wall,
            expires: SystemTime::now() + remaining,
            executions: used.executions,
            busy,
            memory_used,
        }
    }
}

/// Why a session id names no session the caller may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Unknown to this caller here.
    NotFound,
    /// The caller's, expired.
    Expired,
}

/// Why a session could not be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The owner holds its most sessions, or their memory (429).
    OwnerCap(String),
    /// The instance holds its most sessions (503).
    InstanceCap(usize),
    /// Sessions are off for this caller.
    Off(String),
    /// The session's worker does not fit in the memory budget now (503) or ever (413).
    Memory(service_kit::OverBudget),
}

/// A place among the open sessions, held while the session's worker starts; given back when
/// dropped unless the session was opened with it.
pub struct Reservation {
    sessions: Arc<Sessions>,
    owner: Owner,
    memory_limit: u64,
    charge: Option<Charge>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.charge.is_some() {
            self.sessions
                .registry
                .lock()
                .expect("sessions")
                .release(&self.owner, self.memory_limit);
        }
    }
}

#[derive(Default)]
struct Registry {
    open: HashMap<String, Arc<Session>>,
    /// Sessions and memory limits per owner, reservations included.
    by_owner: HashMap<Owner, (u32, u64)>,
    /// Open sessions and reservations.
    held: usize,
    /// Expired ids, oldest first, with their owners.
    expired: VecDeque<String>,
    expired_owners: HashMap<String, Owner>,
}

impl Registry {
    fn release(&mut self, owner: &Owner, memory_limit: u64) {
        self.held = self.held.saturating_sub(1);
        if let Some((count, memory)) = self.by_owner.get_mut(owner) {
            *count = count.saturating_sub(1);
            *memory = memory.saturating_sub(memory_limit);
            if *count == 0 {
                self.by_owner.remove(owner);
            }
        }
    }

    /// Removes an open session; `remember` keeps its id for `session_expired`.
    fn remove(&mut self, id: &str, remember: bool) -> Option<Arc<Session>> {
        let session = self.open.remove(id)?;
        self.release(&session.owner, session.memory_limit);
        if remember {
            if self.expired.len() >= REMEMBERED
                && let Some(oldest) = self.expired.pop_front()
            {
                self.expired_owners.remove(&oldest);
            }
            self.expired.push_back(session.id.clone());
            self.expired_owners
                .insert(session.id.clone(), session.owner.clone());
        }
        Some(session)
    }
}

/// The open sessions of this instance.
pub struct Sessions {
    settings: SessionSettings,
    memory: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
    registry: Mutex<Registry>,
}

impl Sessions {
    /// No sessions yet; starts the reaper, which ends with the last handle.
    pub fn new(
        settings: SessionSettings,
        memory: Arc<MemoryBudget>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let sessions = Arc::new(Self {
            settings,
            memory,
            metrics,
            registry: Mutex::new(Registry::default()),
        });
        let weak = Arc::downgrade(&sessions);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sessions) = weak.upgrade() else {
                    return;
                };
                sessions.reap();
            }
        });
        sessions
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.registry.lock().expect("sessions").open.len()
    }

    /// The process ids of the open sessions' workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        let registry = self.registry.lock().expect("sessions");
        registry
            .open
            .values()
            .filter_map(|session| session.pid)
            .collect()
    }

    /// Takes a place for a session of `owner` with `memory_limit` bytes of heap, whose worker
    /// is charged `charge_bytes` of the memory budget; `max_sessions` and `max_memory` are the
    /// owner's caps (`None`: the server's count, no memory cap).
    pub fn reserve(
        self: &Arc<Self>,
        owner: Owner,
        memory_limit: u64,
        charge_bytes: usize,
        max_sessions: Option<u32>,
        max_memory: Option<u64>,
    ) -> Result<Reservation, Refusal> {
        let mut registry = self.registry.lock().expect("sessions");
        let most = max_sessions.unwrap_or(self.settings.max_per_owner);
        if most == 0 {
            return Err(Refusal::Off(
                "sessions are not available to this caller".to_owned(),
            ));
        }
        let (count, memory) = registry.by_owner.get(&owner).copied().unwrap_or((0, 0));
        if count >= most {
            return Err(Refusal::OwnerCap(format!(
                "{count} sessions are open, the most this caller may hold; end one \
                 (DELETE /api/sessions/{{id}}) or let one expire"
            )));
        }
        if let Some(max_memory) = max_memory
            && memory + memory_limit > max_memory
        {
            return Err(Refusal::OwnerCap(format!(
                "the open sessions' memory limits ({} MiB) and this one's ({} MiB) are more \
                 than this caller's {} MiB for sessions",
                memory >> 20,
                memory_limit >> 20,
                max_memory >> 20
            )));
        }
        if registry.held >= self.settings.max_open {
            return Err(Refusal::InstanceCap(self.settings.max_open));
        }
        let charge = self.memory.charge(charge_bytes).map_err(Refusal::Memory)?;
        registry.held += 1;
        let entry = registry.by_owner.entry(owner.clone()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += memory_limit;
        Ok(Reservation {
            sessions: self.clone(),
            owner,
            memory_limit,
            charge: Some(charge),
        })
    }

    /// Opens a session in `reservation`'s place, with its worker; its id.
    pub fn open_session(
        &self,
        mut reservation: Reservation,
        worker: SessionWorker,
        idle_timeout: Duration,
        timeout: Duration,
    ) -> Arc<Session> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let session = Arc::new(Session {
            id: new_id(),
            owner: reservation.owner.clone(),
            created: wall,
            created_at: now,
            idle_timeout,
            timeout,
            memory_limit: reservation.memory_limit,
            used: Arc::new(Mutex::new(Used {
                last: now,
                last_wall: wall,
                executions: 0,
            })),
            pid: worker.pid(),
            worker: Arc::new(tokio::sync::Mutex::new(Some(worker))),
            _charge: reservation
                .charge
                .take()
                .expect("a reservation holds its charge"),
        });
        self.registry
            .lock()
            .expect("sessions")
            .open
            .insert(session.id.clone(), session.clone());
        self.metrics.session("created");
        session
    }

    /// The caller's open session `id`: one that expired or was lost meanwhile is removed.
    pub fn get(&self, id: &str, owner: &Owner) -> Result<Arc<Session>, Missing> {
        let mut registry = self.registry.lock().expect("sessions");
        let Some(session) = registry.open.get(id).cloned() else {
            return match registry.expired_owners.get(id) {
                Some(expired_owner) if expired_owner == owner => Err(Missing::Expired),
                _ => Err(Missing::NotFound),
            };
        };
        if session.owner != *owner {
            return Err(Missing::NotFound);
        }
        if session.lost() {
            registry.remove(id, false);
            return Err(Missing::NotFound);
        }
        if Instant::now() >= session.deadline(self.settings.max_age) && session.idle() {
            registry.remove(id, true);
            self.metrics.session("expired");
            tracing::info!(session = id, "session expired");
            return Err(Missing::Expired);
        }
        Ok(session)
    }

    /// The state of a session, for `GET /api/sessions/{id}`.
    pub fn state(&self, session: &Session) -> State {
        session.state(self.settings.max_age)
    }

    /// Ends the caller's session `id` (its worker is killed once nothing uses it). `Err` with
    /// `None` while it runs an execution.
    pub fn delete(&self, id: &str, owner: &Owner) -> Result<(), Option<Missing>> {
        let session = self.get(id, owner).map_err(Some)?;
        // Held while removing, so no execution starts in between.
        let Ok(_idle) = session.worker.try_lock() else {
            return Err(None);
        };
        self.registry.lock().expect("sessions").remove(id, false);
        self.metrics.session("deleted");
        Ok(())
    }

    /// Removes the session an execution ended (lost): its id is unknown from now on.
    pub fn forget(&self, id: &str) {
        if self
            .registry
            .lock()
            .expect("sessions")
            .remove(id, false)
            .is_some()
        {
            self.metrics.session("lost");
        }
    }

    /// Expires every idle session past its deadline, and removes lost ones.
    fn reap(&self) {
        let now = Instant::now();
        let mut registry = self.registry.lock().expect("sessions");
        let due: Vec<(String, bool)> = registry
            .open
            .values()
            .filter_map(|session| {
                if session.lost() {
                    return Some((session.id.clone(), false));
                }
                (session.idle() && now >= session.deadline(self.settings.max_age))
                    .then(|| (session.id.clone(), true))
            })
            .collect();
        for (id, expired) in due {
            if registry.remove(&id, expired).is_some() && expired {
                self.metrics.session("expired");
                tracing::info!(session = id, "session expired");
            }
        }
    }
}

/// 128 bits from the operating system's CSPRNG, as 32 lower-case hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's CSPRNG answers");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `time` as RFC 3339 in UTC, to the millisecond.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_random_bits_in_hex() {
        let one = new_id();
        assert_eq!(one.len(), 32);
        assert!(one.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(one, new_id());
    }
}
