//! The sandbox's configuration: every variable declared once (name, default, parser and
//! help, from which `--help`, `check-config` and README's tables follow), read into [`Config`],
//! and the checks across variables, the memory budget's among them ([`MemoryPlan`]).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use contract::worker::Setup;
pub use service_kit::ConfigError;
use service_kit::{
    LogFormat, Logging,
    env::{Env, default, parse::*, unset},
    telemetry::Sample,
};

use crate::supervisor::PoolSettings;

service_kit::variables! {
    /// Every variable the sandbox reads, in the order of `--help` and of README's tables.
    pub const VARIABLES;

    /// address to listen on
    LISTEN_ADDR: SocketAddr = default("127.0.0.1:8081"), socket_addr;
    /// `text` for terminals, `json` for Cloud Logging
    LOG_FORMAT: LogFormat = default("text"), log_format;
    /// the share of successful requests whose line is logged, from 0 to 1: each line costs a few
    /// microseconds of CPU in each process. Answers with an error status and executions that did
    /// not succeed are always logged; both processes keep the same requests' lines (chosen by
    /// request id)
    REQUEST_LOG_SAMPLE: Sample = default("1"), sample;
    /// log filter, e.g. `sandbox=debug`
    RUST_LOG: String = default("info"), text;
    /// executions running at once: one worker process each
    MAX_CONCURRENCY: usize = unset("CPU count"), at_least_one;
    /// memory the supervisor and its workers may use together where the container sets no
    /// limit; beside a container limit, only if smaller ([Memory budget](#memory-budget))
    SANDBOX_MEMORY_MB: u64 = unset("the container's limit, else the machine's memory"), mebibytes;
    /// workers the anonymous tier may hold at once, all its clients together; the others are
    /// only ever taken by keyed tenants (see [Fair sharing](#tenants)). Set it to
    /// `MAX_CONCURRENCY` where no tenant has a key
    ANONYMOUS_MAX_WORKERS: usize = unset("`MAX_CONCURRENCY` − 1 (at least 1)"), at_least_one;
    /// longest wait for a worker: a request that would wait longer is refused at once (see
    /// Capacity), one that waits this long gets 503
    QUEUE_TIMEOUT_MS: Duration = default("2000"), millis;
    /// requests of one tenant (or anonymous client) that may wait, a bound against floods
    /// rather than the admission rule; all together may have 4 × this waiting
    QUEUE_CAPACITY: usize = default("1024"), at_least_one;
    /// bytes of scripts that may wait over all tenants (64 MiB), so the queue's memory stays
    /// bounded whatever the scripts' size
    QUEUE_MAX_BYTES: usize = default("67108864"), at_least_one;
    /// time limit when a request names none
    DEFAULT_TIMEOUT_MS: Duration = default("5000"), millis;
    /// largest `timeoutMs` a request may ask for
    MAX_TIMEOUT_MS: Duration = default("30000"), millis;
    /// memory limit when a request names none
    DEFAULT_MEMORY_LIMIT_MB: usize = default("64"), at_least_one;
    /// largest `memoryLimitMb` a request may ask for
    MAX_MEMORY_LIMIT_MB: usize = default("256"), at_least_one;
    /// JavaScript stack limit; the worker's own stack (`RLIMIT_STACK`) is 4× this plus 8 MiB,
    /// so QuickJS's check always fires first
    STACK_LIMIT_KB: usize = default("1024"), at_least_one;
    /// largest request body
    MAX_BODY_BYTES: usize = default("1048576"), at_least_one;
    /// largest `input` of a request, in bytes of JSON (422 above it); in a batch, of each of
    /// its `inputs`
    MAX_INPUT_BYTES: usize = default("65536"), at_least_one;
    /// most `inputs` of one batch (`POST /api/batch`; 422 above it); a tenant's
    /// `max_batch_items` may lower it
    MAX_BATCH_ITEMS: usize = default("1000"), at_least_one;
    /// most bytes of one batch's answers together, as JSON; an item whose answer does not fit
    /// in what is left answers `output_limit` instead. Charged to the [memory
    /// budget](#memory-budget) for the whole batch, twice
    MAX_BATCH_ANSWER_BYTES: usize = default("8388608"), at_least_one;
    /// console entries kept per execution
    MAX_LOG_ENTRIES: usize = default("1000"), whole;
    /// largest `log` array, in bytes of the JSON answer (escapes included)
    MAX_LOG_BYTES: usize = default("1048576"), whole;
    /// largest `result` in bytes of the JSON answer (larger: `output_limit`); an error's name,
    /// message and stack share this budget
    MAX_RESULT_BYTES: usize = default("1048576"), at_least_one;
    /// how long past its deadline an execution may take to answer before its worker is killed
    WATCHDOG_GRACE_MS: Duration = default("250"), millis;
    /// executions a worker process runs before it is replaced
    WORKER_MAX_EXECUTIONS: u64 = default("10000"), at_least_one;
    /// resident memory (as the kernel counts it) past which a worker is replaced after its
    /// execution
    WORKER_MAX_RSS_MB: u64 = default("128"), at_least_one;
    /// after SIGTERM, how long running executions may continue before they are stopped
    SHUTDOWN_DRAIN_MS: Duration = default("8000"), millis;
    /// after SIGTERM, how long the listener stays open, serving, while `/healthz` answers 503;
    /// `0` closes it at once. Keep it below `SHUTDOWN_DRAIN_MS`
    SHUTDOWN_NOTICE_MS: Duration = default("1000"), millis;
    /// calls of host functions, `fetch` included, per execution ([Host
    /// functions](#exposing-host-functions))
    MAX_HOST_CALLS: u32 = default("64"), at_least_one;
    /// `fetch` requests per execution, for tenants granted `fetch`
    FETCH_MAX_REQUESTS: u64 = default("16"), at_least_one;
    /// largest `fetch` response body
    FETCH_MAX_RESPONSE_BYTES: u64 = default("1048576"), at_least_one;
    /// bytes sent and received by `fetch` per execution
    FETCH_MAX_TOTAL_BYTES: u64 = default("4194304"), at_least_one;
    /// let `fetch` reach loopback addresses: for tests only
    FETCH_ALLOW_LOOPBACK: bool = default("false"), boolean;
    /// a request's head must arrive whole within this of the connection being ready for it
    /// (accepted, or done with its previous answer): it closes idle kept-alive connections and
    /// half-sent heads. Longer than the 30 s the ingress keeps an idle connection to the sandbox
    HEADER_READ_TIMEOUT_MS: Duration = default("60000"), positive_millis;
    /// a request's body must arrive whole within this (408 `request_timeout`), however it
    /// trickles
    BODY_READ_TIMEOUT_MS: Duration = default("10000"), positive_millis;
    /// an answer's write may make no progress for this long (a client that does not read)
    /// before the connection and the answer are dropped
    WRITE_TIMEOUT_MS: Duration = default("5000"), positive_millis;
    /// connections open at once; more are closed as soon as they are accepted
    MAX_CONNECTIONS: usize = default("1024"), at_least_one;
    /// connections open at once from one address (IPv6: one /64); `0` for no limit, the
    /// default: the sandbox's one client is the ingress
    MAX_CONNECTIONS_PER_CLIENT: usize = default("0"), whole;
    /// how long a session may sit idle when it names no `ttlSeconds`; each execution starts
    /// the wait again ([Sessions](#sessions))
    SESSION_IDLE_TIMEOUT_S: Duration = default("300"), positive_seconds;
    /// largest `ttlSeconds` a session may ask for
    SESSION_MAX_IDLE_TIMEOUT_S: Duration = default("3600"), positive_seconds;
    /// how long a session may live from its creation, however busy
    SESSION_MAX_AGE_S: Duration = default("86400"), positive_seconds;
    /// sessions open at once on this instance, each holding a worker process of its own
    /// beside the `MAX_CONCURRENCY` ones; `0` turns sessions off
    SESSION_MAX_OPEN: usize = default("32"), whole;
    /// sessions one tenant (or anonymous client) may hold when its `max_sessions` says nothing
    SESSION_MAX_PER_TENANT: u32 = default("4"), whole;
}

/// Requests of all tenants together that may wait for a worker, as a multiple of
/// `QUEUE_CAPACITY` (the bound of one tenant).
pub const TOTAL_QUEUE_FACTOR: usize = 4;

const MIB: u64 = 1024 * 1024;

/// Address space a worker needs beyond its heap and stack: the program and its libraries
/// (about 30 MiB mapped), the stack stripping TypeScript runs on (16 MiB and its guard, mapped
/// for the worker's life), the console region, and room for the allocator's slack.
pub const WORKER_OVERHEAD_BYTES: u64 = 64 * MIB;

/// What the supervisor holds whatever its requests: its program, runtime threads and metrics.
pub const SUPERVISOR_BASE_BYTES: u64 = 64 * MIB;

/// Most bytes of the answer of a batch's item that did not run, or whose own answer did not
/// fit in `MAX_BATCH_ANSWER_BYTES`: its error's fixed message and the answer's other fields.
pub const SKIPPED_ANSWER_BYTES: usize = 512;

/// Bytes of an answer handed to the connection at a time: once the answer's charge has ended,
/// the connection's write buffer holds at most its limit and one piece.
pub const ANSWER_PIECE_BYTES: usize = 16 * 1024;

/// Bytes a streamed console entry takes beyond its text while it waits for its client: its
/// allocation and its place in the channel.
pub const STREAMED_ENTRY_OVERHEAD: usize = 64;

/// The supervisor's bytes per open connection, reserved for `MAX_CONNECTIONS` of them: hyper's
/// read buffer (twice [`service_kit::CONNECTION_BUFFER_BYTES`]) and its write buffer (once,
/// and one more piece of an answer), and 16 KiB for the connection's task and hyper's state:
/// 80 KiB.
pub const PER_CONNECTION_BYTES: u64 =
    (3 * service_kit::CONNECTION_BUFFER_BYTES + ANSWER_PIECE_BYTES + 16 * 1024) as u64;

/// Everything the sandbox can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`LISTEN_ADDR`].
    pub listen_addr: SocketAddr,
    /// [`LOG_FORMAT`] and [`REQUEST_LOG_SAMPLE`].
    pub logging: Logging,
    /// [`MAX_CONCURRENCY`]: worker processes, so executions at once.
    pub max_concurrency: usize,
    /// [`SANDBOX_MEMORY_MB`], held in bytes; see [`MemoryPlan`].
    pub sandbox_memory: Option<u64>,
    /// [`ANONYMOUS_MAX_WORKERS`]: so that a crowd of anonymous clients running endless loops
    /// cannot make a keyed tenant's request wait for a worker. At most `MAX_CONCURRENCY`;
    /// `None` is the default, read through [`Config::anonymous_workers`].
    pub anonymous_max_workers: Option<usize>,
    /// [`QUEUE_CAPACITY`]: a bound against floods, not the admission rule, which is the
    /// estimated wait (see [`crate::scheduler`]); all tenants together may have
    /// [`TOTAL_QUEUE_FACTOR`] times as many waiting.
    pub queue_capacity: usize,
    /// [`QUEUE_MAX_BYTES`].
    pub queue_max_bytes: usize,
    /// [`QUEUE_TIMEOUT_MS`].
    pub queue_timeout: Duration,
    /// [`DEFAULT_TIMEOUT_MS`]: positive, at most `max_timeout`.
    pub default_timeout: Duration,
    /// [`MAX_TIMEOUT_MS`].
    pub max_timeout: Duration,
    /// [`DEFAULT_MEMORY_LIMIT_MB`]: at most `max_memory_limit_mb`.
    pub default_memory_limit_mb: usize,
    /// [`MAX_MEMORY_LIMIT_MB`].
    pub max_memory_limit_mb: usize,
    /// [`STACK_LIMIT_KB`].
    pub stack_limit_kb: usize,
    /// [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// [`MAX_INPUT_BYTES`].
    pub max_input_bytes: usize,
    /// [`MAX_BATCH_ITEMS`].
    pub max_batch_items: usize,
    /// [`MAX_BATCH_ANSWER_BYTES`].
    pub max_batch_answer_bytes: usize,
    /// [`MAX_LOG_ENTRIES`].
    pub max_log_entries: usize,
    /// [`MAX_LOG_BYTES`].
    pub max_log_bytes: usize,
    /// [`MAX_RESULT_BYTES`].
    pub max_result_bytes: usize,
    /// [`WATCHDOG_GRACE_MS`]: how long past its deadline an execution that does not stop is
    /// waited for before its worker process is killed and the client gets its timeout answer.
    pub watchdog_grace: Duration,
    /// [`WORKER_MAX_EXECUTIONS`].
    pub worker_max_executions: u64,
    /// [`WORKER_MAX_RSS_MB`].
    pub worker_max_rss_mb: u64,
    /// The program started as `<program> worker` for each worker process: this executable
    /// (the `sandbox` binary). Not read from the environment; tests that run the sandbox
    /// inside another executable point it at the `sandbox` binary.
    pub worker_program: PathBuf,
    /// [`SHUTDOWN_DRAIN_MS`] (Cloud Run kills 10 s after SIGTERM).
    pub shutdown_drain: Duration,
    /// The connection limits: [`HEADER_READ_TIMEOUT_MS`], [`BODY_READ_TIMEOUT_MS`],
    /// [`WRITE_TIMEOUT_MS`], [`MAX_CONNECTIONS`], [`MAX_CONNECTIONS_PER_CLIENT`] and
    /// [`SHUTDOWN_NOTICE_MS`].
    pub connections: service_kit::Limits,
    /// [`MAX_HOST_CALLS`].
    pub max_host_calls: u32,
    /// The `fetch` capability's caps (`FETCH_*`).
    pub fetch: FetchSettings,
    /// How sessions are bounded (`SESSION_*`).
    pub sessions: crate::sessions::SessionSettings,
}

/// How `fetch` is bounded, for the tenants granted it.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// [`FETCH_MAX_REQUESTS`].
    pub max_requests: u64,
    /// [`FETCH_MAX_RESPONSE_BYTES`].
    pub max_response_bytes: u64,
    /// [`FETCH_MAX_TOTAL_BYTES`].
    pub max_total_bytes: u64,
    /// [`FETCH_ALLOW_LOOPBACK`]: for tests, which serve on loopback only; never in production.
    pub allow_loopback: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            max_requests: FETCH_MAX_REQUESTS.default_value(),
            max_response_bytes: FETCH_MAX_RESPONSE_BYTES.default_value(),
            max_total_bytes: FETCH_MAX_TOTAL_BYTES.default_value(),
            allow_loopback: FETCH_ALLOW_LOOPBACK.default_value(),
        }
    }
}

impl Default for Config {
    /// The declared defaults, with a worker per CPU.
    fn default() -> Self {
        Self::from_lookup_unchecked(&|_| None).expect("the declared defaults parse")
    }
}

impl Config {
    /// Reads the configuration from the environment; unset variables take their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests), and
    /// checks it across variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_unchecked(&lookup)?.check()
    }

    fn from_lookup_unchecked(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let cpus = std::thread::available_parallelism().map_or(2, |cpus| cpus.get());
        Ok(Self {
            listen_addr: env.get(&LISTEN_ADDR)?,
            logging: Logging {
                format: env.get(&LOG_FORMAT)?,
                sample: env.get(&REQUEST_LOG_SAMPLE)?,
            },
            max_concurrency: env.optional(&MAX_CONCURRENCY)?.unwrap_or(cpus),
            sandbox_memory: env.optional(&SANDBOX_MEMORY_MB)?,
            anonymous_max_workers: env.optional(&ANONYMOUS_MAX_WORKERS)?,
            queue_capacity: env.get(&QUEUE_CAPACITY)?,
            queue_max_bytes: env.get(&QUEUE_MAX_BYTES)?,
            queue_timeout: env.get(&QUEUE_TIMEOUT_MS)?,
            default_timeout: env.get(&DEFAULT_TIMEOUT_MS)?,
            max_timeout: env.get(&MAX_TIMEOUT_MS)?,
            default_memory_limit_mb: env.get(&DEFAULT_MEMORY_LIMIT_MB)?,
            max_memory_limit_mb: env.get(&MAX_MEMORY_LIMIT_MB)?,
            stack_limit_kb: env.get(&STACK_LIMIT_KB)?,
            max_body_bytes: env.get(&MAX_BODY_BYTES)?,
            max_input_bytes: env.get(&MAX_INPUT_BYTES)?,
            max_batch_items: env.get(&MAX_BATCH_ITEMS)?,
            max_batch_answer_bytes: env.get(&MAX_BATCH_ANSWER_BYTES)?,
            max_log_entries: env.get(&MAX_LOG_ENTRIES)?,
            max_log_bytes: env.get(&MAX_LOG_BYTES)?,
            max_result_bytes: env.get(&MAX_RESULT_BYTES)?,
            watchdog_grace: env.get(&WATCHDOG_GRACE_MS)?,
            worker_max_executions: env.get(&WORKER_MAX_EXECUTIONS)?,
            worker_max_rss_mb: env.get(&WORKER_MAX_RSS_MB)?,
            worker_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sandbox")),
            shutdown_drain: env.get(&SHUTDOWN_DRAIN_MS)?,
            connections: service_kit::Limits {
                header_read_timeout: env.get(&HEADER_READ_TIMEOUT_MS)?,
                body_read_timeout: env.get(&BODY_READ_TIMEOUT_MS)?,
                write_timeout: env.get(&WRITE_TIMEOUT_MS)?,
                max_connections: env.get(&MAX_CONNECTIONS)?,
                max_connections_per_client: Some(env.get(&MAX_CONNECTIONS_PER_CLIENT)?)
                    .filter(|cap| *cap > 0),
                shutdown_notice: env.get(&SHUTDOWN_NOTICE_MS)?,
            },
            max_host_calls: env.get(&MAX_HOST_CALLS)?,
            fetch: FetchSettings {
                max_requests: env.get(&FETCH_MAX_REQUESTS)?,
                max_response_bytes: env.get(&FETCH_MAX_RESPONSE_BYTES)?,
                max_total_bytes: env.get(&FETCH_MAX_TOTAL_BYTES)?,
                allow_loopback: env.get(&FETCH_ALLOW_LOOPBACK)?,
            },
            sessions: crate::sessions::SessionSettings {
                default_idle_timeout: env.get(&SESSION_IDLE_TIMEOUT_S)?,
                max_idle_timeout: env.get(&SESSION_MAX_IDLE_TIMEOUT_S)?,
                max_age: env.get(&SESSION_MAX_AGE_S)?,
                max_open: env.get(&SESSION_MAX_OPEN)?,
                max_per_owner: env.get(&SESSION_MAX_PER_TENANT)?,
            },
        })
    }

    fn check(self) -> Result<Self, ConfigError> {
        let invalid = |variable: &'static str, value: String, reason: &str| ConfigError {
            variable,
            value,
            reason: reason.to_owned(),
        };
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return Err(invalid(
                DEFAULT_TIMEOUT_MS.name,
                self.default_timeout.as_millis().to_string(),
                "must be positive and at most MAX_TIMEOUT_MS",
            ));
        }
        if let Some(workers) = self.anonymous_max_workers
            && workers > self.max_concurrency
        {
            return Err(invalid(
                ANONYMOUS_MAX_WORKERS.name,
                workers.to_string(),
                "must be at most MAX_CONCURRENCY",
            ));
        }
        if self.sessions.default_idle_timeout > self.sessions.max_idle_timeout {
            return Err(invalid(
                SESSION_IDLE_TIMEOUT_S.name,
                self.sessions.default_idle_timeout.as_secs().to_string(),
                "must be at most SESSION_MAX_IDLE_TIMEOUT_S",
            ));
        }
        if self.default_memory_limit_mb > self.max_memory_limit_mb {
            return Err(invalid(
                DEFAULT_MEMORY_LIMIT_MB.name,
                self.default_memory_limit_mb.to_string(),
                "must be at most MAX_MEMORY_LIMIT_MB",
            ));
        }
        self.memory_plan()?;
        Ok(self)
    }

    /// How the sandbox's memory is shared out here: its container's limit, or the setting, or
    /// the machine's memory. An error names the variables when the workers, the supervisor and
    /// one request cannot fit.
    pub fn memory_plan(&self) -> Result<MemoryPlan, ConfigError> {
        MemoryPlan::new(
            self,
            service_kit::container_memory_limit(),
            machine_memory(),
        )
    }

    /// A worker's address space (`RLIMIT_AS`): the largest heap a script may ask for
    /// (`MAX_MEMORY_LIMIT_MB`), the worker's stack (`RLIMIT_STACK`, from `STACK_LIMIT_KB`),
    /// and [`WORKER_OVERHEAD_BYTES`].
    pub fn worker_address_space(&self) -> u64 {
        self.max_memory_limit_mb as u64 * MIB + self.worker_stack_bytes() + WORKER_OVERHEAD_BYTES
    }

    /// What a session with `memory_limit` bytes of heap is charged to the memory budget for
    /// its life: its worker's whole address space, and what the supervisor holds for any
    /// worker (its console region, the largest report being read and its copy).
    pub fn session_charge(&self, memory_limit: u64) -> usize {
        let largest_report = self.max_result_bytes.max(engine::host::MAX_HOST_JSON_BYTES)
            + crate::supervisor::REPORT_OVERHEAD;
        (self.pool_settings().session_address_space(memory_limit) as usize)
            .saturating_add(self.max_log_bytes + 2 * largest_report)
    }

    /// The worker's stack (`RLIMIT_STACK`): far larger than the JavaScript stack limit, so
    /// QuickJS's check always fires before the process could overflow it.
    fn worker_stack_bytes(&self) -> u64 {
        self.stack_limit_kb as u64 * 1024 * 4 + 8 * MIB
    }

    /// Bytes an answer may make the supervisor hold while it is built and written: the result
    /// and the console output as they come from the worker, and again as the JSON answer.
    pub fn answer_charge(&self) -> usize {
        2 * (self.max_result_bytes + self.max_log_bytes)
    }

    /// Bytes a batch of `items` is charged for its answers, beside its body's charge and
    /// while it runs: the answers kept until the last item has finished (as many full answers
    /// as it has items, at most `MAX_BATCH_ANSWER_BYTES`, and [`SKIPPED_ANSWER_BYTES`] for
    /// each item that answers without running or past the cap), and again as the one JSON
    /// answer made of them. A batch this does not fit in the budget even when it is empty is
    /// refused (413), as any such request is.
    pub fn batch_charge(&self, items: usize) -> usize {
        let full_answer = self.max_result_bytes + self.max_log_bytes + SKIPPED_ANSWER_BYTES;
        let kept = items
            .saturating_mul(full_answer)
            .min(self.max_batch_answer_bytes)
            .saturating_add(items.saturating_mul(SKIPPED_ANSWER_BYTES));
        kept.saturating_mul(2)
    }

    /// Bytes one running item of a batch is charged, from its admission until its answer is
    /// kept: its answer (as [`Config::answer_charge`]), and its job, whose script and input
    /// are copied for it and again into the frame sent to the worker.
    pub fn batch_item_charge(&self, job_bytes: usize) -> usize {
        self.answer_charge()
            .saturating_add(job_bytes.saturating_mul(2))
    }

    /// Bytes a streamed answer may make the supervisor hold: an answer's
    /// ([`Config::answer_charge`]), and the console output once more, as entries waiting for
    /// a slow client (`MAX_LOG_BYTES`, and per entry [`STREAMED_ENTRY_OVERHEAD`]). While the
    /// script runs, the answer's own share is not in use yet and covers the copy new entries
    /// are read from.
    pub fn stream_charge(&self) -> usize {
        self.answer_charge()
            + self.max_log_bytes
            + (self.max_log_entries + 1) * STREAMED_ENTRY_OVERHEAD
    }

    /// Bytes a body of `length` bytes is charged while it is read and parsed: the bytes, and
    /// the request parsed from them.
    pub fn body_charge(length: usize) -> usize {
        length.saturating_mul(2)
    }

    /// Workers the anonymous tier may hold in all: `ANONYMOUS_MAX_WORKERS`, by default all but
    /// one (which only keyed tenants take), and at least one.
    pub fn anonymous_workers(&self) -> usize {
        self.anonymous_max_workers
            .unwrap_or_else(|| self.max_concurrency.saturating_sub(1).max(1))
    }

    /// Requests of all tenants together that may wait for a worker:
    /// [`TOTAL_QUEUE_FACTOR`] × `QUEUE_CAPACITY`.
    pub fn total_queue_capacity(&self) -> usize {
        self.queue_capacity.saturating_mul(TOTAL_QUEUE_FACTOR)
    }

    /// How the worker processes run.
    pub fn pool_settings(&self) -> PoolSettings {
        let stack_limit = self.stack_limit_kb as u64 * 1024;
        let stack_bytes = self.worker_stack_bytes();
        PoolSettings {
            workers: self.max_concurrency,
            program: self.worker_program.clone(),
            kill_grace: self.watchdog_grace,
            setup: Setup {
                stack_limit,
                max_result_bytes: self.max_result_bytes as u64,
                max_log_bytes: self.max_log_bytes as u64,
                max_log_entries: self.max_log_entries as u64,
                address_space_limit: self.worker_address_space(),
                keep_runtime: false,
            },
            stack_bytes,
            max_executions: self.worker_max_executions,
            max_resident_bytes: self.worker_max_rss_mb * MIB,
        }
    }
}

/// Where the sandbox's memory limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySource {
    /// The container's cgroup (v2 `memory.max` or v1 `memory.limit_in_bytes`).
    Container(service_kit::LimitSource),
    /// `SANDBOX_MEMORY_MB`.
    Setting,
    /// Neither: the machine's memory.
    Machine,
}

impl MemorySource {
    /// A short name, for the start-up log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container(service_kit::LimitSource::CgroupV2) => "cgroup v2 memory.max",
            Self::Container(service_kit::LimitSource::CgroupV1) => {
                "cgroup v1 memory.limit_in_bytes"
            }
            Self::Setting => "SANDBOX_MEMORY_MB",
            Self::Machine => "machine memory",
        }
    }
}

/// How the sandbox's memory is shared between its processes (README, "Memory budget"): every
/// worker's whole address space, the supervisor's fixed reserve, and what is left is the
/// budget that requests' bodies, queued scripts and answers are charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// All the sandbox's processes may use together.
    pub total: u64,
    /// Where `total` came from.
    pub source: MemorySource,
    /// One worker's `RLIMIT_AS` ([`Config::worker_address_space`]).
    pub worker_address_space: u64,
    /// `MAX_CONCURRENCY` workers' address spaces.
    pub workers: u64,
    /// What the supervisor holds whatever its requests: [`SUPERVISOR_BASE_BYTES`],
    /// [`PER_CONNECTION_BYTES`] per connection, and per worker its console region, the largest
    /// report being read and decoded, and a `fetch` response and its copy.
    pub supervisor_reserve: u64,
    /// The rest: the budget requests are charged to.
    pub request_budget: u64,
}

impl MemoryPlan {
    /// The plan for `config` in a container limited to `container` (if it is) on a machine with
    /// `machine` bytes of memory.
    pub fn new(
        config: &Config,
        container: Option<(u64, service_kit::LimitSource)>,
        machine: u64,
    ) -> Result<Self, ConfigError> {
        let (total, source) = match (container, config.sandbox_memory) {
            (Some((limit, _)), Some(setting)) if setting < limit => {
                (setting, MemorySource::Setting)
            }
            (Some((limit, source)), _) => (limit, MemorySource::Container(source)),
            (None, Some(setting)) => (setting, MemorySource::Setting),
            (None, None) => (machine, MemorySource::Machine),
        };
        let workers_count = config.max_concurrency as u64;
        let worker_address_space = config.worker_address_space();
        let workers = workers_count.saturating_mul(worker_address_space);
        let largest_report = (config
            .max_result_bytes
            .max(engine::host::MAX_HOST_JSON_BYTES)
            + crate::supervisor::REPORT_OVERHEAD) as u64;
        let per_worker =
            config.max_log_bytes as u64 + 2 * largest_report + 2 * config.fetch.max_response_bytes;
        let supervisor_reserve = SUPERVISOR_BASE_BYTES
            + config.connections.max_connections as u64 * PER_CONNECTION_BYTES
            + workers_count.saturating_mul(per_worker);
        // A streamed answer is the largest.
        let one_request =
            (Config::body_charge(config.max_body_bytes) + config.stream_charge()) as u64;
        let needed = workers
            .saturating_add(supervisor_reserve)
            .saturating_add(one_request);
        if needed > total {
            return Err(ConfigError {
                variable: MAX_CONCURRENCY.name,
                value: config.max_concurrency.to_string(),
                reason: format!(
                    "{} workers of {} MiB of address space each (MAX_MEMORY_LIMIT_MB={} + the \
                     stack from STACK_LIMIT_KB={} + {} MiB), the supervisor's {} MiB and one \
                     request's {} MiB (MAX_BODY_BYTES, MAX_RESULT_BYTES, MAX_LOG_BYTES) need {} \
                     MiB, more than the sandbox's {} MiB ({}): lower MAX_CONCURRENCY or \
                     MAX_MEMORY_LIMIT_MB, or give the sandbox more memory (SANDBOX_MEMORY_MB \
                     where its container sets no limit)",
                    config.max_concurrency,
                    mib(worker_address_space),
                    config.max_memory_limit_mb,
                    config.stack_limit_kb,
                    WORKER_OVERHEAD_BYTES / MIB,
                    mib(supervisor_reserve),
                    mib(one_request),
                    mib(needed),
                    total / MIB,
                    source.as_str(),
                ),
            });
        }
        Ok(Self {
            total,
            source,
            worker_address_space,
            workers,
            supervisor_reserve,
            request_budget: total - workers - supervisor_reserve,
        })
    }
}

/// Bytes in whole MiB, rounded up, for messages.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// The machine's memory, for a sandbox with neither a container limit nor a setting.
fn machine_memory() -> u64 {
    // SAFETY: sysinfo fills the struct we pass; a zeroed one is a valid value of it.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return 0;
    }
    (info.totalram as u64).saturating_mul(info.mem_unit.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_tables_are_generated_from_the_declarations() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## ")
            .find(|section| section.starts_with("Limits and sandbox configuration\n"))
            .and_then(|section| section.split("\n### ").next())
            .expect("README has a \"Limits and sandbox configuration\" section");
        let documented: Vec<_> = section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .collect();
        let declared = service_kit::env::readme_rows(VARIABLES);
        assert_eq!(
            documented.join("\n"),
            declared.join("\n"),
            "README's rows, left; the declarations', right"
        );
    }

    #[test]
    fn a_batchs_answer_charge_grows_with_its_items_up_to_the_cap() {
        let config = Config::default();
        let full = config.max_result_bytes + config.max_log_bytes + SKIPPED_ANSWER_BYTES;
        assert_eq!(config.batch_charge(1), 2 * (full + SKIPPED_ANSWER_BYTES));
        // 1000 items: the 8 MiB cap, and a short answer's room for each item.
        assert_eq!(
            config.batch_charge(1000),
            2 * (8 * 1024 * 1024 + 1000 * SKIPPED_ANSWER_BYTES)
        );
        assert!(config.batch_charge(2) < config.batch_charge(1000));
    }

    #[test]
    fn every_declared_default_parses() {
        let config = Config::default();
        assert_eq!(config.connections.max_connections_per_client, None);
        for doc in VARIABLES {
            assert!(!doc.help.is_empty(), "{} has help", doc.name);
        }
    }

    #[test]
    fn unset_variables_take_defaults() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(config.default_timeout, Duration::from_secs(5));
        assert_eq!(config.max_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_value_names_the_variable() {
        let error =
            Config::from_lookup(|name| (name == MAX_TIMEOUT_MS.name).then(|| "soon".into()))
                .unwrap_err();
        assert_eq!(error.variable, MAX_TIMEOUT_MS.name);
        assert!(error.to_string().contains("MAX_TIMEOUT_MS"));
    }

    #[test]
    fn default_timeout_above_maximum_is_rejected() {
        let error =
            Config::from_lookup(|name| (name == DEFAULT_TIMEOUT_MS.name).then(|| "60000".into()))
                .unwrap_err();
        assert_eq!(error.variable, DEFAULT_TIMEOUT_MS.name);
    }

    fn deployed() -> Config {
        // cloudrun.yaml's sandbox: 2 workers, 256 MiB scripts, 1 GiB, the rest by default.
        Config {
            max_concurrency: 2,
            max_memory_limit_mb: 256,
            sandbox_memory: Some(1024 * MIB),
            ..Config::default()
        }
    }

    #[test]
    fn the_deployed_sandbox_shares_its_gib_as_the_readme_says() {
        let plan = MemoryPlan::new(&deployed(), None, 64 << 30).unwrap();
        // README, "Memory budget": 2 × 332 MiB of workers, 166.25 MiB for the supervisor,
        // 193.75 MiB for requests, 1024 MiB in all.
        assert_eq!(plan.worker_address_space, 332 * MIB);
        assert_eq!(plan.workers, 664 * MIB);
        assert_eq!(plan.supervisor_reserve, 166 * MIB + MIB / 4);
        assert_eq!(plan.request_budget, 193 * MIB + 3 * MIB / 4);
        assert_eq!(plan.source, MemorySource::Setting);
    }

    #[test]
    fn the_container_limit_counts_unless_the_setting_is_smaller() {
        let mut config = deployed();
        let cgroup = Some((2048 * MIB, service_kit::LimitSource::CgroupV2));
        let plan = MemoryPlan::new(&config, cgroup, 64 << 30).unwrap();
        assert_eq!(
            (plan.total, plan.source),
            (1024 * MIB, MemorySource::Setting)
        );
        config.sandbox_memory = Some(4096 * MIB);
        let plan = MemoryPlan::new(&config, cgroup, 64 << 30).unwrap();
        assert_eq!(
            (plan.total, plan.source),
            (
                2048 * MIB,
                MemorySource::Container(service_kit::LimitSource::CgroupV2)
            )
        );
        config.sandbox_memory = None;
        let plan = MemoryPlan::new(&config, None, 3000 * MIB).unwrap();
        assert_eq!(
            (plan.total, plan.source),
            (3000 * MIB, MemorySource::Machine)
        );
    }

    #[test]
    fn workers_that_cannot_fit_are_a_configuration_error_naming_the_variables() {
        let mut config = deployed();
        config.max_memory_limit_mb = 512;
        let error = MemoryPlan::new(&config, None, 64 << 30)
            .and_then(|_| {
                let cgroup = Some((1024 * MIB, service_kit::LimitSource::CgroupV1));
                MemoryPlan::new(&config, cgroup, 64 << 30)
            })
            .unwrap_err();
        assert_eq!(error.variable, MAX_CONCURRENCY.name);
        for variable in [
            "MAX_MEMORY_LIMIT_MB=512",
            "STACK_LIMIT_KB",
            "SANDBOX_MEMORY_MB",
        ] {
            assert!(error.reason.contains(variable), "{error}");
        }
    }
}
