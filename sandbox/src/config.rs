//! The sandbox's configuration: every limit, its environment variable and its default.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use contract::worker::Setup;

use crate::supervisor::PoolSettings;

/// Environment variable names, in one place.
pub mod vars {
    pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const MAX_CONCURRENCY: &str = "MAX_CONCURRENCY";
    pub const SANDBOX_MEMORY_MB: &str = "SANDBOX_MEMORY_MB";
    pub const ANONYMOUS_MAX_WORKERS: &str = "ANONYMOUS_MAX_WORKERS";
    pub const QUEUE_CAPACITY: &str = "QUEUE_CAPACITY";
    pub const QUEUE_MAX_BYTES: &str = "QUEUE_MAX_BYTES";
    pub const QUEUE_TIMEOUT_MS: &str = "QUEUE_TIMEOUT_MS";
    pub const DEFAULT_TIMEOUT_MS: &str = "DEFAULT_TIMEOUT_MS";
    pub const MAX_TIMEOUT_MS: &str = "MAX_TIMEOUT_MS";
    pub const DEFAULT_MEMORY_LIMIT_MB: &str = "DEFAULT_MEMORY_LIMIT_MB";
    pub const MAX_MEMORY_LIMIT_MB: &str = "MAX_MEMORY_LIMIT_MB";
    pub const STACK_LIMIT_KB: &str = "STACK_LIMIT_KB";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const MAX_INPUT_BYTES: &str = "MAX_INPUT_BYTES";
    pub const MAX_LOG_ENTRIES: &str = "MAX_LOG_ENTRIES";
    pub const MAX_LOG_BYTES: &str = "MAX_LOG_BYTES";
    pub const MAX_RESULT_BYTES: &str = "MAX_RESULT_BYTES";
    pub const WATCHDOG_GRACE_MS: &str = "WATCHDOG_GRACE_MS";
    pub const WORKER_MAX_EXECUTIONS: &str = "WORKER_MAX_EXECUTIONS";
    pub const WORKER_MAX_RSS_MB: &str = "WORKER_MAX_RSS_MB";
    pub const SHUTDOWN_DRAIN_MS: &str = "SHUTDOWN_DRAIN_MS";
    pub const MAX_HOST_CALLS: &str = "MAX_HOST_CALLS";
    pub const FETCH_MAX_REQUESTS: &str = "FETCH_MAX_REQUESTS";
    pub const FETCH_MAX_RESPONSE_BYTES: &str = "FETCH_MAX_RESPONSE_BYTES";
    pub const FETCH_MAX_TOTAL_BYTES: &str = "FETCH_MAX_TOTAL_BYTES";
    pub const FETCH_ALLOW_LOOPBACK: &str = "FETCH_ALLOW_LOOPBACK";
}

/// Requests of all tenants together that may wait for a worker, as a multiple of
/// `QUEUE_CAPACITY` (the bound of one tenant).
pub const TOTAL_QUEUE_FACTOR: usize = 4;

const MIB: u64 = 1024 * 1024;

/// Address space a worker needs beyond its heap and stack: the program and its libraries
/// (about 30 MiB mapped), the console region, and room for the allocator's slack.
pub const WORKER_OVERHEAD_BYTES: u64 = 64 * MIB;

/// What the supervisor holds whatever its requests: its program, runtime threads and metrics.
pub const SUPERVISOR_BASE_BYTES: u64 = 64 * MIB;

/// Bytes of an answer handed to the connection at a time: once the answer's charge has ended,
/// the connection's write buffer holds at most its limit and one piece.
pub const ANSWER_PIECE_BYTES: usize = 16 * 1024;

/// The supervisor's bytes per open connection, reserved for `MAX_CONNECTIONS` of them: hyper's
/// read buffer (twice [`connections::CONNECTION_BUFFER_BYTES`]) and its write buffer (once,
/// and one more piece of an answer), and 16 KiB for the connection's task and hyper's state:
/// 80 KiB.
pub const PER_CONNECTION_BYTES: u64 =
    (3 * connections::CONNECTION_BUFFER_BYTES + ANSWER_PIECE_BYTES + 16 * 1024) as u64;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for running locally.
    Text,
    /// One JSON object per line in Cloud Logging's format (tracing-stackdriver).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

/// A variable that is set to something unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// Everything the sandbox can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `127.0.0.1:8081`.
    pub listen_addr: SocketAddr,
    /// `LOG_FORMAT` (`text` | `json`), default `text`.
    pub log_format: LogFormat,
    /// `MAX_CONCURRENCY`: executions running at once, one per worker process, default the
    /// number of CPUs.
    pub max_concurrency: usize,
    /// `SANDBOX_MEMORY_MB` (read in MiB, held in bytes): memory the sandbox's processes, the
    /// supervisor and its workers, may use together. Unset: the container's limit (cgroup), or
    /// the machine's memory where there is none; set beside a container limit, the smaller of
    /// the two. See [`MemoryPlan`].
    pub sandbox_memory: Option<u64>,
    /// `ANONYMOUS_MAX_WORKERS`: workers the anonymous tier may hold at once, all its clients
    /// together, default `MAX_CONCURRENCY` − 1 (at least 1): the last worker is only ever taken
    /// by keyed tenants, so a crowd of anonymous clients running endless loops cannot make a
    /// keyed tenant's request wait for one. At most `MAX_CONCURRENCY`; `None` is the
    /// default, read through [`Config::anonymous_workers`].
    pub anonymous_max_workers: Option<usize>,
    /// `QUEUE_CAPACITY`: requests of one tenant (or one anonymous client) that may wait for a
    /// worker, default 1024: a bound against floods, not the admission rule, which is the
    /// estimated wait (see [`crate::scheduler`]). All tenants together may have
    /// [`TOTAL_QUEUE_FACTOR`] times as many waiting.
    pub queue_capacity: usize,
    /// `QUEUE_MAX_BYTES`: bytes of scripts that may wait over all tenants, default 64 MiB, so
    /// the queue's memory stays bounded whatever the scripts' size.
    pub queue_max_bytes: usize,
    /// `QUEUE_TIMEOUT_MS`: longest wait for a worker before a 503, default 2000.
    pub queue_timeout: Duration,
    /// `DEFAULT_TIMEOUT_MS`: time limit when a request names none, default 5000.
    pub default_timeout: Duration,
    /// `MAX_TIMEOUT_MS`: largest `timeoutMs` a request may ask for, default 30000.
    pub max_timeout: Duration,
    /// `DEFAULT_MEMORY_LIMIT_MB`: memory limit when a request names none, default 64.
    pub default_memory_limit_mb: usize,
    /// `MAX_MEMORY_LIMIT_MB`: largest `memoryLimitMb` a request may ask for, default 256.
    pub max_memory_limit_mb: usize,
    /// `STACK_LIMIT_KB`: JavaScript stack limit, default 1024.
    pub stack_limit_kb: usize,
    /// `MAX_BODY_BYTES`: largest request body, default 1048576 (1 MiB).
    pub max_body_bytes: usize,
    /// `MAX_INPUT_BYTES`: largest `input` of a request, as JSON text, default 65536.
    pub max_input_bytes: usize,
    /// `MAX_LOG_ENTRIES`: console entries kept per execution, default 1000.
    pub max_log_entries: usize,
    /// `MAX_LOG_BYTES`: serialised console data kept per execution, default 1048576.
    pub max_log_bytes: usize,
    /// `MAX_RESULT_BYTES`: largest serialised result, default 1048576.
    pub max_result_bytes: usize,
    /// `WATCHDOG_GRACE_MS`: how long past its deadline an execution that does not stop is
    /// waited for before its worker process is killed and the client gets its timeout answer,
    /// default 250.
    pub watchdog_grace: Duration,
    /// `WORKER_MAX_EXECUTIONS`: executions a worker process runs before it is replaced,
    /// default 10000.
    pub worker_max_executions: u64,
    /// `WORKER_MAX_RSS_MB`: resident memory past which a worker process is replaced after
    /// its execution, default 128.
    pub worker_max_rss_mb: u64,
    /// The program started as `<program> worker` for each worker process: this executable
    /// (the `sandbox` binary). Not read from the environment; tests that run the sandbox
    /// inside another executable point it at the `sandbox` binary.
    pub worker_program: PathBuf,
    /// `SHUTDOWN_DRAIN_MS`: after SIGTERM, how long running executions may go on before they
    /// are cancelled, default 8000 (Cloud Run kills 10 s after SIGTERM).
    pub shutdown_drain: Duration,
    /// The connection limits (`HEADER_READ_TIMEOUT_MS`, default 60000, longer than the
    /// ingress keeps an idle connection to the sandbox; `BODY_READ_TIMEOUT_MS`, 10000;
    /// `WRITE_TIMEOUT_MS`, 5000; `MAX_CONNECTIONS`, 1024; `MAX_CONNECTIONS_PER_CLIENT`, 0 =
    /// none, since the ingress is the one client).
    pub connections: connections::Limits,
    /// `MAX_HOST_CALLS`: calls of host functions (`fetch` included) one execution may make,
    /// default 64.
    pub max_host_calls: u32,
    /// The `fetch` capability's caps (`FETCH_*`).
    pub fetch: FetchSettings,
}

/// How `fetch` is bounded, for the tenants granted it.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// `FETCH_MAX_REQUESTS`: requests per execution, default 16.
    pub max_requests: u64,
    /// `FETCH_MAX_RESPONSE_BYTES`: largest response body, default 1048576 (1 MiB).
    pub max_response_bytes: u64,
    /// `FETCH_MAX_TOTAL_BYTES`: bytes sent and received over all of an execution's requests,
    /// default 4194304 (4 MiB).
    pub max_total_bytes: u64,
    /// `FETCH_ALLOW_LOOPBACK`: lets scripts reach loopback addresses. For tests, which serve
    /// on loopback only; never in production. Default false.
    pub allow_loopback: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            max_requests: 16,
            max_response_bytes: 1024 * 1024,
            max_total_bytes: 4 * 1024 * 1024,
            allow_loopback: false,
        }
    }
}

/// The sandbox's connection limits when nothing is set.
pub fn default_connection_limits() -> connections::Limits {
    connections::Limits {
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(5),
        max_connections: 1024,
        max_connections_per_client: None,
        shutdown_notice: Duration::from_secs(1),
    }
}

impl Default for Config {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |cpus| cpus.get());
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            log_format: LogFormat::Text,
            max_concurrency: cpus,
            sandbox_memory: None,
            anonymous_max_workers: None,
            queue_capacity: 1024,
            queue_max_bytes: 64 * 1024 * 1024,
            queue_timeout: Duration::from_millis(2000),
            default_timeout: Duration::from_millis(5000),
            max_timeout: Duration::from_millis(30_000),
            default_memory_limit_mb: 64,
            max_memory_limit_mb: 256,
            stack_limit_kb: 1024,
            max_body_bytes: 1024 * 1024,
            max_input_bytes: 64 * 1024,
            max_log_entries: 1000,
            max_log_bytes: 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            watchdog_grace: Duration::from_millis(250),
            worker_max_executions: 10_000,
            worker_max_rss_mb: 128,
            worker_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sandbox")),
            shutdown_drain: Duration::from_millis(8000),
            connections: default_connection_limits(),
            max_host_calls: 64,
            fetch: FetchSettings::default(),
        }
    }
}

impl Config {
    /// Reads the configuration from the environment; unset variables take their defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use vars::*;
        let defaults = Self::default();
        let env = Env(&lookup);
        let max_concurrency = env.positive(MAX_CONCURRENCY, defaults.max_concurrency)?;
        let config = Self {
            listen_addr: env.parse(LISTEN_ADDR, defaults.listen_addr)?,
            log_format: env.parse(LOG_FORMAT, defaults.log_format)?,
            max_concurrency,
            sandbox_memory: env
                .optional_positive(SANDBOX_MEMORY_MB)?
                .map(|mib| mib as u64 * MIB),
            anonymous_max_workers: env.optional_positive(ANONYMOUS_MAX_WORKERS)?,
            queue_capacity: env.positive(QUEUE_CAPACITY, defaults.queue_capacity)?,
            queue_max_bytes: env.positive(QUEUE_MAX_BYTES, defaults.queue_max_bytes)?,
            queue_timeout: env.millis(QUEUE_TIMEOUT_MS, defaults.queue_timeout)?,
            default_timeout: env.millis(DEFAULT_TIMEOUT_MS, defaults.default_timeout)?,
            max_timeout: env.millis(MAX_TIMEOUT_MS, defaults.max_timeout)?,
            default_memory_limit_mb: env
                .positive(DEFAULT_MEMORY_LIMIT_MB, defaults.default_memory_limit_mb)?,
            max_memory_limit_mb: env.positive(MAX_MEMORY_LIMIT_MB, defaults.max_memory_limit_mb)?,
            stack_limit_kb: env.positive(STACK_LIMIT_KB, defaults.stack_limit_kb)?,
            max_body_bytes: env.positive(MAX_BODY_BYTES, defaults.max_body_bytes)?,
            max_input_bytes: env.positive(MAX_INPUT_BYTES, defaults.max_input_bytes)?,
            max_log_entries: env.parse(MAX_LOG_ENTRIES, defaults.max_log_entries)?,
            max_log_bytes: env.parse(MAX_LOG_BYTES, defaults.max_log_bytes)?,
            max_result_bytes: env.positive(MAX_RESULT_BYTES, defaults.max_result_bytes)?,
            watchdog_grace: env.millis(WATCHDOG_GRACE_MS, defaults.watchdog_grace)?,
            worker_max_executions: env.positive(
                WORKER_MAX_EXECUTIONS,
                defaults.worker_max_executions as usize,
            )? as u64,
            worker_max_rss_mb: env
                .positive(WORKER_MAX_RSS_MB, defaults.worker_max_rss_mb as usize)?
                as u64,
            worker_program: defaults.worker_program,
            shutdown_drain: env.millis(SHUTDOWN_DRAIN_MS, defaults.shutdown_drain)?,
            connections: connections::Limits::from_lookup(&lookup, defaults.connections).map_err(
                |error| ConfigError {
                    variable: error.variable,
                    value: error.value,
                    reason: error.reason.to_owned(),
                },
            )?,
            max_host_calls: env
                .positive(MAX_HOST_CALLS, defaults.max_host_calls as usize)?
                .min(u32::MAX as usize) as u32,
            fetch: FetchSettings {
                max_requests: env
                    .positive(FETCH_MAX_REQUESTS, defaults.fetch.max_requests as usize)?
                    as u64,
                max_response_bytes: env.positive(
                    FETCH_MAX_RESPONSE_BYTES,
                    defaults.fetch.max_response_bytes as usize,
                )? as u64,
                max_total_bytes: env.positive(
                    FETCH_MAX_TOTAL_BYTES,
                    defaults.fetch.max_total_bytes as usize,
                )? as u64,
                allow_loopback: env.parse(FETCH_ALLOW_LOOPBACK, defaults.fetch.allow_loopback)?,
            },
        };
        config.check()
    }

    fn check(self) -> Result<Self, ConfigError> {
        let invalid = |variable: &'static str, value: String, reason: &str| ConfigError {
            variable,
            value,
            reason: reason.to_owned(),
        };
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return Err(invalid(
                vars::DEFAULT_TIMEOUT_MS,
                self.default_timeout.as_millis().to_string(),
                "must be positive and at most MAX_TIMEOUT_MS",
            ));
        }
        if let Some(workers) = self.anonymous_max_workers
            && workers > self.max_concurrency
        {
            return Err(invalid(
                vars::ANONYMOUS_MAX_WORKERS,
                workers.to_string(),
                "must be at most MAX_CONCURRENCY",
            ));
        }
        if self.default_memory_limit_mb > self.max_memory_limit_mb {
            return Err(invalid(
                vars::DEFAULT_MEMORY_LIMIT_MB,
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
            connections::container_memory_limit(),
            machine_memory(),
        )
    }

    /// A worker's address space (`RLIMIT_AS`): the largest heap a script may ask for
    /// (`MAX_MEMORY_LIMIT_MB`), the worker's stack (`RLIMIT_STACK`, from `STACK_LIMIT_KB`),
    /// and [`WORKER_OVERHEAD_BYTES`].
    pub fn worker_address_space(&self) -> u64 {
        self.max_memory_limit_mb as u64 * MIB + self.worker_stack_bytes() + WORKER_OVERHEAD_BYTES
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

    /// Bytes a body of `length` bytes is charged while it is read and parsed: the bytes, and
    /// the request parsed from them.
    pub fn body_charge(length: usize) -> usize {
        length.saturating_mul(2)
    }

    /// Every variable for `--help`: name, default, meaning.
    pub fn help() -> Vec<connections::VariableHelp> {
        use vars::*;
        let defaults = Self::default();
        let millis = |duration: Duration| duration.as_millis().to_string();
        let mut variables = vec![
            (
                LISTEN_ADDR,
                defaults.listen_addr.to_string(),
                "address to listen on",
            ),
            (
                LOG_FORMAT,
                "text".to_owned(),
                "`text`, or `json` for Cloud Logging",
            ),
            (
                "RUST_LOG",
                "info".to_owned(),
                "log filter, e.g. `sandbox=debug`",
            ),
            (
                MAX_CONCURRENCY,
                format!("{} (the CPU count)", defaults.max_concurrency),
                "worker processes, so executions at once",
            ),
            (
                SANDBOX_MEMORY_MB,
                "the container's limit, else the machine's memory".to_owned(),
                "MiB the supervisor and its workers may use together, where the container sets no limit (the smaller of the two where it does)",
            ),
            (
                ANONYMOUS_MAX_WORKERS,
                "MAX_CONCURRENCY - 1 (at least 1)".to_owned(),
                "workers the anonymous tier may hold in all; the rest are for keyed tenants",
            ),
            (
                QUEUE_CAPACITY,
                defaults.queue_capacity.to_string(),
                "requests one tenant may have waiting (4x that in all)",
            ),
            (
                QUEUE_MAX_BYTES,
                defaults.queue_max_bytes.to_string(),
                "bytes of scripts that may wait in all",
            ),
            (
                QUEUE_TIMEOUT_MS,
                millis(defaults.queue_timeout),
                "ms a request may wait to start; refused at once (503) when it could not",
            ),
            (
                DEFAULT_TIMEOUT_MS,
                millis(defaults.default_timeout),
                "an execution's time limit when the request sets none",
            ),
            (
                MAX_TIMEOUT_MS,
                millis(defaults.max_timeout),
                "the largest time limit a request may set",
            ),
            (
                DEFAULT_MEMORY_LIMIT_MB,
                defaults.default_memory_limit_mb.to_string(),
                "an execution's memory limit when the request sets none",
            ),
            (
                MAX_MEMORY_LIMIT_MB,
                defaults.max_memory_limit_mb.to_string(),
                "the largest memory limit a request may set",
            ),
            (
                STACK_LIMIT_KB,
                defaults.stack_limit_kb.to_string(),
                "JavaScript stack limit",
            ),
            (
                MAX_BODY_BYTES,
                defaults.max_body_bytes.to_string(),
                "largest request body (413 above)",
            ),
            (
                MAX_INPUT_BYTES,
                defaults.max_input_bytes.to_string(),
                "largest `input` of a request, as JSON (422 above)",
            ),
            (
                MAX_LOG_ENTRIES,
                defaults.max_log_entries.to_string(),
                "console entries kept per execution",
            ),
            (
                MAX_LOG_BYTES,
                defaults.max_log_bytes.to_string(),
                "bytes of console output kept per execution",
            ),
            (
                MAX_RESULT_BYTES,
                defaults.max_result_bytes.to_string(),
                "largest serialised result",
            ),
            (
                WATCHDOG_GRACE_MS,
                millis(defaults.watchdog_grace),
                "ms past its deadline before an execution's worker is killed",
            ),
            (
                WORKER_MAX_EXECUTIONS,
                defaults.worker_max_executions.to_string(),
                "executions before a worker is replaced",
            ),
            (
                WORKER_MAX_RSS_MB,
                defaults.worker_max_rss_mb.to_string(),
                "a worker's resident memory above which it is replaced",
            ),
            (
                SHUTDOWN_DRAIN_MS,
                millis(defaults.shutdown_drain),
                "ms executions in flight get to finish after SIGTERM",
            ),
            (
                MAX_HOST_CALLS,
                defaults.max_host_calls.to_string(),
                "host function calls (fetch included) per execution",
            ),
            (
                FETCH_MAX_REQUESTS,
                defaults.fetch.max_requests.to_string(),
                "fetch requests per execution, for tenants granted fetch",
            ),
            (
                FETCH_MAX_RESPONSE_BYTES,
                defaults.fetch.max_response_bytes.to_string(),
                "largest fetch response body",
            ),
            (
                FETCH_MAX_TOTAL_BYTES,
                defaults.fetch.max_total_bytes.to_string(),
                "bytes sent and received by fetch per execution",
            ),
            (
                FETCH_ALLOW_LOOPBACK,
                "false".to_owned(),
                "let fetch reach loopback addresses: for tests only",
            ),
        ];
        variables.extend(defaults.connections.help());
        variables
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
    Container(connections::LimitSource),
    /// `SANDBOX_MEMORY_MB`.
    Setting,
    /// Neither: the machine's memory.
    Machine,
}

impl MemorySource {
    /// A short name, for the start-up log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container(connections::LimitSource::CgroupV2) => "cgroup v2 memory.max",
            Self::Container(connections::LimitSource::CgroupV1) => {
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
        container: Option<(u64, connections::LimitSource)>,
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
        let one_request =
            (Config::body_charge(config.max_body_bytes) + config.answer_charge()) as u64;
        let needed = workers
            .saturating_add(supervisor_reserve)
            .saturating_add(one_request);
        if needed > total {
            return Err(ConfigError {
                variable: vars::MAX_CONCURRENCY,
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

struct Env<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn parse<T: FromStr>(&self, variable: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match (self.0)(variable) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|error: T::Err| ConfigError {
                variable,
                reason: error.to_string(),
                value,
            }),
        }
    }

    fn positive(&self, variable: &'static str, default: usize) -> Result<usize, ConfigError> {
        let value = self.parse(variable, default)?;
        if value == 0 {
            return Err(ConfigError {
                variable,
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    fn optional_positive(&self, variable: &'static str) -> Result<Option<usize>, ConfigError> {
        match (self.0)(variable) {
            None => Ok(None),
            Some(_) => self.positive(variable, 1).map(Some),
        }
    }

    fn millis(&self, variable: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let millis = self.parse(variable, default.as_millis() as u64)?;
        Ok(Duration::from_millis(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Config::from_lookup(|name| (name == vars::MAX_TIMEOUT_MS).then(|| "soon".into()))
                .unwrap_err();
        assert_eq!(error.variable, vars::MAX_TIMEOUT_MS);
        assert!(error.to_string().contains("MAX_TIMEOUT_MS"));
    }

    #[test]
    fn default_timeout_above_maximum_is_rejected() {
        let error =
            Config::from_lookup(|name| (name == vars::DEFAULT_TIMEOUT_MS).then(|| "60000".into()))
                .unwrap_err();
        assert_eq!(error.variable, vars::DEFAULT_TIMEOUT_MS);
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
        let cgroup = Some((2048 * MIB, connections::LimitSource::CgroupV2));
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
                MemorySource::Container(connections::LimitSource::CgroupV2)
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
                let cgroup = Some((1024 * MIB, connections::LimitSource::CgroupV1));
                MemoryPlan::new(&config, cgroup, 64 << 30)
            })
            .unwrap_err();
        assert_eq!(error.variable, vars::MAX_CONCURRENCY);
        for variable in [
            "MAX_MEMORY_LIMIT_MB=512",
            "STACK_LIMIT_KB",
            "SANDBOX_MEMORY_MB",
        ] {
            assert!(error.reason.contains(variable), "{error}");
        }
    }
}
