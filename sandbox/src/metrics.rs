//! The sandbox's Prometheus metrics, served at `GET /metrics` on its own (private) port.
//!
//! - `sandbox_executions_total{tenant, outcome}`: finished executions; `outcome` is `success`
//!   or the error kind (`syntax`, `exception`, `timeout`, `crashed`, ...), or `internal`.
//! - `sandbox_execution_duration_seconds{tenant}`: how long executions ran (histogram).
//! - `sandbox_queue_wait_seconds{tenant}`: how long admitted requests waited for a worker.
//! - `sandbox_rejections_total{tenant, reason}`: requests answered 503 (`wait_estimate`: it
//!   would not have started in time; `queue_timeout`: it waited and did not; `queue_full`: a
//!   flood filled the queue; `memory`: its body or its answer did not fit the memory budget).
//! - `sandbox_workers_busy`: executions running now.
//! - `sandbox_workers`: worker processes that exist or are being started.
//! - `sandbox_worker_exits_total{reason, signal}`: worker processes that ended: `reason` is
//!   `timeout` (killed at the deadline plus the grace), `crashed`, `died_idle`, `recycled`,
//!   `engine_fault` (its execution ran out of memory or had an allocation refused),
//!   `nested_too_deeply` (its TypeScript ran the stripper into its stack's guard), `long_run`
//!   (its execution ran long enough to be moved to background priority), `failed_to_start` or
//!   `stopped`; `signal` is the signal that ended it (`SIGKILL`,
//!   `SIGSEGV`, `SIGABRT`, `SIGSYS`, ... or `none`).
//! - `sandbox_worker_start_duration_seconds`: from starting a worker process to its first
//!   prepared runtime (histogram).
//! - `sandbox_resident_memory_bytes{process}`: resident memory of the `supervisor`, of all the
//!   pool's `workers` together and of all the `sessions`' workers together, read at scrape time.
//! - `sandbox_open_fds`: descriptors the supervisor has open, read at scrape time.
//! - `sandbox_memory_budget_bytes{share}`: the memory plan (README, "Memory budget"): `total`,
//!   `workers` (their `RLIMIT_AS` together), `supervisor_reserve`, `requests` (the budget
//!   requests are charged to) and `requests_charged` (charged now), so that resident memory can
//!   be compared with what it may be.
//! - `sandbox_host_calls_total{function, outcome}`: calls of asynchronous host functions
//!   (`fetch`, ...) run by the supervisor; `outcome` is `ok` or `error`.
//! - `sandbox_host_call_duration_seconds{function}`: how long they took (histogram).
//! - `sandbox_bytecode_cache_total{result}`: executions whose script's bytecode came from
//!   their worker's cache (`hit`) or was compiled (`miss`).
//! - `sandbox_trace_spans_dropped_total`: trace spans dropped unsent
//!   ([`service_kit::telemetry::traces`]).
//! - `sandbox_sessions_open`: sessions open now; `sandbox_session_events_total{event}`: sessions
//!   `created`, `expired`, `deleted` and `lost`.
//!
//! Label values come from small sets: outcome kinds and rejection reasons are fixed, tenant
//! ids come from the operator's tenants file through the ingress. [`MAX_TENANT_LABELS`] still
//! bounds the tenant label, so nothing that reaches the private port can grow the metrics
//! without end.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::scheduler::Rejection;

/// Distinct tenant label values kept; later tenants are counted as `other`.
pub const MAX_TENANT_LABELS: usize = 1000;

/// The `Content-Type` of the exposition (the OpenMetrics text format Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExecutionLabels {
    tenant: Arc<str>,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TenantLabels {
    tenant: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProcessLabels {
    process: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShareLabels {
    share: &'static str,
}

/// The memory plan's shares and what requests hold now, in bytes, for [`Metrics::encode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryShares {
    pub total: u64,
    pub workers: u64,
    pub supervisor_reserve: u64,
    pub requests: u64,
    pub requests_charged: u64,
}

/// What the sandbox's processes hold now, for [`Metrics::encode`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Holdings {
    pub workers_busy: usize,
    pub workers: usize,
    pub supervisor_resident_bytes: u64,
    pub workers_resident_bytes: u64,
    /// Of the open sessions' workers together.
    pub sessions_resident_bytes: u64,
    pub open_fds: usize,
    pub memory: MemoryShares,
    /// Sessions open now.
    pub sessions_open: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SessionLabels {
    event: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExitLabels {
    reason: &'static str,
    signal: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostCallLabels {
    function: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectionLabels {
    tenant: Arc<str>,
    reason: &'static str,
}

type HistogramFamily = Family<TenantLabels, Histogram, fn() -> Histogram>;

/// Every metric of one sandbox, and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    executions: Family<ExecutionLabels, Counter>,
    execution_duration: HistogramFamily,
    queue_wait: HistogramFamily,
    rejections: Family<RejectionLabels, Counter>,
    workers_busy: Gauge,
    workers: Gauge,
    resident_memory: Family<ProcessLabels, Gauge>,
    open_fds: Gauge,
    memory_budget: Family<ShareLabels, Gauge>,
    worker_exits: Family<ExitLabels, Counter>,
    worker_start: Histogram,
    host_calls: Family<HostCallLabels, Counter>,
    host_call_duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    bytecode_cache: Family<CacheLabels, Counter>,
    sessions_open: Gauge,
    session_events: Family<SessionLabels, Counter>,
    tenants: Mutex<HashSet<Arc<str>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sandbox");
        registry.register(
            "trace_spans_dropped",
            "Trace spans dropped unsent: the export queue was full or the collector did not take their batch (0 while trace export is off)",
            service_kit::telemetry::traces::dropped_spans(),
        );
        let executions = Family::<ExecutionLabels, Counter>::default();
        registry.register(
            "executions",
            "Finished executions by tenant and outcome kind",
            executions.clone(),
        );
        // 1 ms to about 33 s: from a trivial script to the largest timeout.
        let execution_duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register_with_unit(
            "execution_duration",
            "Time executions ran, from the start of evaluation",
            Unit::Seconds,
            execution_duration.clone(),
        );
        // 0.1 ms to about 3.3 s: a free worker to a wait that ends in a 503.
        let queue_wait: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 16)));
        registry.register_with_unit(
            "queue_wait",
            "Time admitted requests waited for a worker",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let host_calls = Family::<HostCallLabels, Counter>::default();
        registry.register(
            "host_calls",
            "Calls of asynchronous host functions by function and outcome",
            host_calls.clone(),
        );
        // 1 ms to about 33 s.
        let host_call_duration: Family<FunctionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register_with_unit(
            "host_call_duration",
            "Time asynchronous host functions took",
            Unit::Seconds,
            host_call_duration.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "rejections",
            "Requests answered 503 because no worker was free in time or the queue was full",
            rejections.clone(),
        );
        let workers_busy = Gauge::default();
        registry.register(
            "workers_busy",
            "Executions running now",
            workers_busy.clone(),
        );
        let workers = Gauge::default();
        registry.register(
            "workers",
            "Worker processes that exist or are being started",
            workers.clone(),
        );
        let resident_memory = Family::<ProcessLabels, Gauge>::default();
        registry.register_with_unit(
            "resident_memory",
            "Resident memory of the supervisor and of all workers together",
            Unit::Bytes,
            resident_memory.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "open_fds",
            "Descriptors the supervisor has open",
            open_fds.clone(),
        );
        let memory_budget = Family::<ShareLabels, Gauge>::default();
        registry.register_with_unit(
            "memory_budget",
            "The memory plan's shares, and the bytes requests hold now",
            Unit::Bytes,
            memory_budget.clone(),
        );
        let worker_exits = Family::<ExitLabels, Counter>::default();
        registry.register(
            "worker_exits",
            "Worker processes that ended, by why and by the signal that ended them",
            worker_exits.clone(),
        );
        // 0.5 ms to about 16 s.
        let worker_start = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register_with_unit(
            "worker_start_duration",
            "Time from starting a worker process to its first prepared runtime",
            Unit::Seconds,
            worker_start.clone(),
        );
        let bytecode_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "bytecode_cache",
            "Executions whose script's bytecode came from the worker's cache or was compiled",
            bytecode_cache.clone(),
        );
        let sessions_open = Gauge::default();
        registry.register(
            "sessions_open",
            "Sessions open now, each holding a worker process of its own",
            sessions_open.clone(),
        );
        let session_events = Family::<SessionLabels, Counter>::default();
        registry.register(
            "session_events",
            "Sessions created, and ended: expired, deleted, or lost with an execution",
            session_events.clone(),
        );
        Self {
            registry,
            executions,
            execution_duration,
            queue_wait,
            rejections,
            workers_busy,
            workers,
            resident_memory,
            open_fds,
            memory_budget,
            worker_exits,
            worker_start,
            host_calls,
            host_call_duration,
            bytecode_cache,
            sessions_open,
            session_events,
            tenants: Mutex::new(HashSet::new()),
        }
    }

    /// An execution of `tenant` finished with `outcome` (an outcome kind) after `duration`.
    pub fn execution_finished(&self, tenant: &str, outcome: &'static str, duration: Duration) {
        let tenant = self.tenant_label(tenant);
        self.execution_duration
            .get_or_create(&TenantLabels {
                tenant: tenant.clone(),
            })
            .observe(duration.as_secs_f64());
        self.executions
            .get_or_create(&ExecutionLabels { tenant, outcome })
            .inc();
    }

    /// A request of `tenant` got a worker after waiting `wait`.
    pub fn admitted(&self, tenant: &str, wait: Duration) {
        self.queue_wait
            .get_or_create(&TenantLabels {
                tenant: self.tenant_label(tenant),
            })
            .observe(wait.as_secs_f64());
    }

    /// A request of `tenant` was answered 503.
    pub fn rejected(&self, tenant: &str, rejection: Rejection) {
        let reason = rejection.reason();
        self.rejections
            .get_or_create(&RejectionLabels {
                tenant: self.tenant_label(tenant),
                reason,
            })
            .inc();
    }

    /// A request was refused because its body or its answer did not fit the memory budget.
    pub fn refused_for_memory(&self, tenant: &str) {
        self.rejections
            .get_or_create(&RejectionLabels {
                tenant: self.tenant_label(tenant),
                reason: "memory",
            })
            .inc();
    }

    /// An asynchronous host function answered (`ok`) or failed, after `took`. `function` is a
    /// registered name, so the label's values are the operator's few.
    pub fn host_call(&self, function: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.host_calls
            .get_or_create(&HostCallLabels {
                function: function.to_owned(),
                outcome,
            })
            .inc();
        self.host_call_duration
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A worker loaded a script's bytecode from its cache (`hit`) or compiled it.
    pub fn bytecode_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.bytecode_cache
            .get_or_create(&CacheLabels { result })
            .inc();
    }

    /// A worker process ended: `reason` is why it was retired, `signal` what ended it.
    pub fn worker_exited(&self, reason: &'static str, signal: &'static str) {
        self.worker_exits
            .get_or_create(&ExitLabels { reason, signal })
            .inc();
    }

    /// A session was `created`, `expired`, `deleted` or `lost`.
    pub fn session(&self, event: &'static str) {
        self.session_events
            .get_or_create(&SessionLabels { event })
            .inc();
    }

    /// A worker process became ready `duration` after it was started.
    pub fn worker_started(&self, duration: Duration) {
        self.worker_start.observe(duration.as_secs_f64());
    }

    /// The exposition, with the gauges set to what is held now (read at scrape time).
    pub fn encode(&self, now: Holdings) -> String {
        self.workers_busy.set(gauge_value(now.workers_busy));
        self.workers.set(gauge_value(now.workers));
        for (process, bytes) in [
            ("supervisor", now.supervisor_resident_bytes),
            ("workers", now.workers_resident_bytes),
            ("sessions", now.sessions_resident_bytes),
        ] {
            self.resident_memory
                .get_or_create(&ProcessLabels { process })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.open_fds.set(gauge_value(now.open_fds));
        self.sessions_open.set(gauge_value(now.sessions_open));
        let memory = now.memory;
        for (share, bytes) in [
            ("total", memory.total),
            ("workers", memory.workers),
            ("supervisor_reserve", memory.supervisor_reserve),
            ("requests", memory.requests),
            ("requests_charged", memory.requests_charged),
        ] {
            self.memory_budget
                .get_or_create(&ShareLabels { share })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    fn tenant_label(&self, tenant: &str) -> Arc<str> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = tenants.get(tenant) {
            return known.clone();
        }
        if tenants.len() >= MAX_TENANT_LABELS {
            return Arc::from("other");
        }
        let label: Arc<str> = Arc::from(tenant);
        tenants.insert(label.clone());
        label
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_exposition_with_their_labels() {
        let metrics = Metrics::new();
        metrics.execution_finished("acme", "success", Duration::from_millis(3));
        metrics.execution_finished("acme", "success", Duration::from_millis(3));
        metrics.admitted("acme", Duration::from_micros(50));
        metrics.rejected(
            "beta",
            Rejection::WaitTimedOut {
                retry_after: Duration::from_secs(1),
            },
        );
        metrics.worker_exited("crashed", "SIGSEGV");
        metrics.worker_started(Duration::from_millis(4));
        metrics.session("created");
        let text = metrics.encode(Holdings {
            sessions_open: 1,
            workers_busy: 1,
            workers: 2,
            supervisor_resident_bytes: 4096,
            sessions_resident_bytes: 8192,
            memory: MemoryShares {
                requests_charged: 2048,
                ..MemoryShares::default()
            },
            ..Holdings::default()
        });
        for line in [
            "sandbox_executions_total{tenant=\"acme\",outcome=\"success\"} 2",
            "sandbox_execution_duration_seconds_count{tenant=\"acme\"} 2",
            "sandbox_queue_wait_seconds_count{tenant=\"acme\"} 1",
            "sandbox_rejections_total{tenant=\"beta\",reason=\"queue_timeout\"} 1",
            "sandbox_workers_busy 1",
            "sandbox_workers 2",
            "sandbox_worker_exits_total{reason=\"crashed\",signal=\"SIGSEGV\"} 1",
            "sandbox_worker_start_duration_seconds_count 1",
            "sandbox_resident_memory_bytes{process=\"supervisor\"} 4096",
            "sandbox_resident_memory_bytes{process=\"sessions\"} 8192",
            "sandbox_open_fds 0",
            "sandbox_sessions_open 1",
            "sandbox_session_events_total{event=\"created\"} 1",
            "sandbox_memory_budget_bytes{share=\"requests_charged\"} 2048",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn tenant_labels_are_bounded() {
        let metrics = Metrics::new();
        for n in 0..MAX_TENANT_LABELS + 5 {
            metrics.execution_finished(&format!("t{n}"), "success", Duration::ZERO);
        }
        let text = metrics.encode(Holdings::default());
        assert!(text.contains("sandbox_executions_total{tenant=\"other\",outcome=\"success\"} 5"));
    }
}
