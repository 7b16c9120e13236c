//! Typed configuration of the ingress, read once from the environment at startup.
//!
//! Every variable is named by a constant below; a bad value is a startup error that names it.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use axum::http::Uri;

use crate::rate_limit::RateLimit;
use crate::sources;
use crate::tenants::{self, Tenants};

/// Address to listen on; wins over `PORT`.
pub const LISTEN_ADDR: &str = "LISTEN_ADDR";
/// Port to listen on, on all interfaces, when `LISTEN_ADDR` is unset (Cloud Run injects it).
pub const PORT: &str = "PORT";
/// Base URL of the sandbox; unset means "start the sandbox binary as a child process".
pub const SANDBOX_URL: &str = "SANDBOX_URL";
/// Milliseconds the sandbox has to answer a proxied request before the client gets 504.
pub const UPSTREAM_TIMEOUT_MS: &str = "UPSTREAM_TIMEOUT_MS";
/// Largest request body, in bytes, that is forwarded; larger ones get 413.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// Sustained requests per second allowed per client; `0` turns rate limiting off.
pub const RATE_LIMIT_RPS: &str = "RATE_LIMIT_RPS";
/// Requests a client may make at once before the sustained rate applies.
pub const RATE_LIMIT_BURST: &str = "RATE_LIMIT_BURST";
/// How many proxies in front of the ingress append to `X-Forwarded-For`.
pub const TRUSTED_PROXY_HOPS: &str = "TRUSTED_PROXY_HOPS";
/// `text` (default) or `json` (one Cloud Logging JSON object per line).
pub const LOG_FORMAT: &str = "LOG_FORMAT";
/// Path of the tenants file (TOML, or JSON when it ends in `.json`); unset: anonymous only.
pub const TENANTS_FILE: &str = "TENANTS_FILE";
/// Address of the admin listener that serves `GET /metrics`; `off` turns it off.
pub const ADMIN_LISTEN_ADDR: &str = "ADMIN_LISTEN_ADDR";
/// Milliseconds a script from a `url` may take to load, connection to last byte (504 after).
pub const SOURCE_TIMEOUT_MS: &str = "SOURCE_TIMEOUT_MS";
pub const MAX_SCRIPT_BYTES: &str = "MAX_SCRIPT_BYTES";
/// Bytes of loaded scripts kept in memory; `0` turns the cache off.
pub const SOURCE_CACHE_BYTES: &str = "SOURCE_CACHE_BYTES";
/// Milliseconds a cached script is used before it is revalidated with a conditional request.
pub const SOURCE_CACHE_TTL_MS: &str = "SOURCE_CACHE_TTL_MS";
/// Tests only: lets `url` sources and store endpoints be on loopback addresses.
pub const SOURCES_ALLOW_LOOPBACK: &str = "SOURCES_ALLOW_LOOPBACK";
/// For emulators: the base URL of a GCS emulator (no credentials are sent to it).
pub const SOURCES_GCS_ENDPOINT: &str = "SOURCES_GCS_ENDPOINT";
/// For emulators and S3-compatible stores: the S3 endpoint, with path-style requests.
pub const SOURCES_S3_ENDPOINT: &str = "SOURCES_S3_ENDPOINT";
/// MiB of memory the ingress may use when its container sets no limit (a cgroup's wins).
pub const INGRESS_MEMORY_MB: &str = "INGRESS_MEMORY_MB";
/// Percent of the ingress's memory that buffered request bodies and loaded scripts may hold.
pub const BUFFER_SHARE_PERCENT: &str = "BUFFER_SHARE_PERCENT";
/// Set by Cloud Run in every container: there, only Google's front end reaches the port.
pub const K_SERVICE: &str = "K_SERVICE";

const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_millis(35_000);
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_RATE_LIMIT_RPS: f64 = 5.0;
const DEFAULT_RATE_LIMIT_BURST: u32 = 20;
const DEFAULT_ADMIN_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// The deploy files' limit for the ingress container (Compose `mem_limit: 256m`, Cloud Run
/// `memory: 256Mi`), for when no cgroup says.
const DEFAULT_INGRESS_MEMORY_MB: u64 = 256;
/// A quarter: 64 MiB of 256, beside the 64 MiB source cache and the process itself.
const DEFAULT_BUFFER_SHARE_PERCENT: u8 = 25;

/// Everything the ingress can be told from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to listen: `LISTEN_ADDR`, else `0.0.0.0:$PORT`, else `127.0.0.1:8080`.
    pub listen_addr: SocketAddr,
    /// `SANDBOX_URL`, e.g. `http://127.0.0.1:8081`. `None` (unset): the ingress starts the
    /// `sandbox` binary that sits beside its own executable and proxies to it.
    pub sandbox_url: Option<Uri>,
    /// `UPSTREAM_TIMEOUT_MS` (default 35000): how long the sandbox may take to answer, kept a
    /// little above the largest script deadline so a script's own timeout is reported first.
    pub upstream_timeout: Duration,
    /// `MAX_BODY_BYTES` (default 1 MiB): larger request bodies are refused with 413 before
    /// anything reaches the sandbox.
    pub max_body_bytes: usize,
    /// The anonymous tier's limit, per client address: `RATE_LIMIT_RPS` (default 5) and
    /// `RATE_LIMIT_BURST` (default 20), or the tenants file's `[anonymous]` rate limit when it
    /// sets one; `None` when the rate is 0. Requests that fail authentication are counted
    /// here too, so keys cannot be guessed at full speed.
    pub rate_limit: Option<RateLimit>,
    /// `TRUSTED_PROXY_HOPS` (default 0): 0 keys clients by the TCP peer address; N keys them by
    /// the N-th `X-Forwarded-For` entry from the right, the one the outermost trusted proxy
    /// wrote. 1 is right for Cloud Run.
    pub trusted_proxy_hops: usize,
    /// `LOG_FORMAT` (default `text`).
    pub log_format: LogFormat,
    /// `TENANTS_FILE`: the tenants, their keys and limits, and the anonymous tier. Unset: no
    /// tenants, anonymous requests allowed with the sandbox's own limits.
    pub tenants: Tenants,
    /// `ADMIN_LISTEN_ADDR` (default `127.0.0.1:9090`; `off` for none): where `GET /metrics`
    /// is served, apart from the public port. If it cannot be bound the ingress logs an error
    /// and serves the public port anyway: metrics must not take the service down.
    pub admin_listen_addr: Option<SocketAddr>,
    /// The public port's connection limits (`HEADER_READ_TIMEOUT_MS`, default 10000;
    /// `BODY_READ_TIMEOUT_MS`, 10000; `WRITE_TIMEOUT_MS`, 10000; `MAX_CONNECTIONS`, 1024;
    /// `MAX_CONNECTIONS_PER_CLIENT`, 128, counted by TCP peer and so only applied when
    /// `TRUSTED_PROXY_HOPS` is 0: behind a proxy every client shares the proxy's address).
    pub connections: connections::Limits,
    /// Scripts loaded from a `url`: `SOURCE_TIMEOUT_MS` (default 5000), `SOURCE_CACHE_BYTES`
    /// (64 MiB), `SOURCE_CACHE_TTL_MS` (60000), and for tests `SOURCES_ALLOW_LOOPBACK`,
    /// `SOURCES_GCS_ENDPOINT`, `SOURCES_S3_ENDPOINT`; `MAX_SCRIPT_BYTES` (1 MiB) caps a loaded
    /// script.
    pub sources: sources::Settings,
    /// The ingress's memory and the share of it for buffers (see [`Memory`]).
    pub memory: Memory,
    /// `K_SERVICE` is set: the ingress runs on Cloud Run, where its port is reached only
    /// through Google's front end.
    pub on_cloud_run: bool,
}

/// How much memory the ingress may use, and how much of it request bodies and loaded scripts
/// may hold at once across all connections (the process's [`connections::MemoryBudget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The container's cgroup limit where there is one, else `INGRESS_MEMORY_MB` (256).
    pub limit_bytes: u64,
    /// Where `limit_bytes` came from.
    pub source: MemorySource,
    /// `BUFFER_SHARE_PERCENT` (25): the share of `limit_bytes` for buffers.
    pub buffer_percent: u8,
    /// What the container leaves for the sandbox the ingress starts as its child, when the two
    /// share a container with a limit (the child's `SANDBOX_MEMORY_MB`).
    pub child_sandbox_bytes: Option<u64>,
}

/// Where the ingress's memory limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySource {
    /// The cgroup's limit (`memory.max`, or v1's `memory.limit_in_bytes`).
    Container,
    /// `INGRESS_MEMORY_MB` of a container limit it shares with the sandbox it starts.
    SharedContainer,
    /// `INGRESS_MEMORY_MB` or its default: no cgroup sets a limit.
    Setting,
}

impl Memory {
    /// Bytes that buffered bodies and loaded scripts may hold at once.
    pub fn buffer_bytes(&self) -> usize {
        let bytes = u128::from(self.limit_bytes) * u128::from(self.buffer_percent) / 100;
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            limit_bytes: DEFAULT_INGRESS_MEMORY_MB * 1024 * 1024,
            source: MemorySource::Setting,
            buffer_percent: DEFAULT_BUFFER_SHARE_PERCENT,
            child_sandbox_bytes: None,
        }
    }
}

/// The public port's connection limits when nothing is set.
pub fn default_connection_limits() -> connections::Limits {
    connections::Limits {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        max_connections: 1024,
        max_connections_per_client: Some(128),
        shutdown_notice: Duration::from_secs(1),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    #[default]
    Text,
    /// Cloud Logging structured JSON (tracing-stackdriver).
    Json,
}

/// A configuration value that could not be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    reason: String,
}

impl Default for Config {
    /// The documented defaults, with an unset `SANDBOX_URL`.
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_LISTEN_ADDR,
            sandbox_url: None,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            rate_limit: Some(RateLimit {
                per_second: DEFAULT_RATE_LIMIT_RPS,
                burst: NonZeroU32::new(DEFAULT_RATE_LIMIT_BURST)
                    .expect("default burst is not zero"),
            }),
            trusted_proxy_hops: 0,
            log_format: LogFormat::Text,
            tenants: Tenants::default(),
            admin_listen_addr: Some(DEFAULT_ADMIN_LISTEN_ADDR),
            connections: default_connection_limits(),
            sources: sources::Settings::default(),
            memory: Memory::default(),
            on_cloud_run: false,
        }
    }
}

impl Config {
    /// Every variable for `--help`: name, default, meaning.
    pub fn help() -> Vec<connections::VariableHelp> {
        let millis = |duration: Duration| duration.as_millis().to_string();
        let mut variables = vec![
            (
                LISTEN_ADDR,
                DEFAULT_LISTEN_ADDR.to_string(),
                "address to listen on",
            ),
            (
                PORT,
                "unset".to_owned(),
                "when LISTEN_ADDR is unset, listen on 0.0.0.0:$PORT (Cloud Run sets it)",
            ),
            (
                SANDBOX_URL,
                "unset".to_owned(),
                "http://host:port of the sandbox; unset: start the sandbox binary beside this one",
            ),
            (
                UPSTREAM_TIMEOUT_MS,
                millis(DEFAULT_UPSTREAM_TIMEOUT),
                "ms the sandbox may take to answer (504 after)",
            ),
            (
                MAX_BODY_BYTES,
                DEFAULT_MAX_BODY_BYTES.to_string(),
                "largest request body forwarded (413 above)",
            ),
            (
                RATE_LIMIT_RPS,
                DEFAULT_RATE_LIMIT_RPS.to_string(),
                "anonymous tier: requests per second each client earns back; 0 for no limit",
            ),
            (
                RATE_LIMIT_BURST,
                DEFAULT_RATE_LIMIT_BURST.to_string(),
                "anonymous tier: requests a client may make at once",
            ),
            (
                TENANTS_FILE,
                "unset".to_owned(),
                "the tenants file (TOML, or JSON ending in .json); unset: anonymous only",
            ),
            (
                ADMIN_LISTEN_ADDR,
                DEFAULT_ADMIN_LISTEN_ADDR.to_string(),
                "the admin listener serving GET /metrics; `off` for none",
            ),
            (
                TRUSTED_PROXY_HOPS,
                "0".to_owned(),
                "0: clients told apart by TCP peer; N: by the N-th X-Forwarded-For entry from the right",
            ),
            (
                LOG_FORMAT,
                "text".to_owned(),
                "`text`, or `json` for Cloud Logging",
            ),
            (
                MAX_SCRIPT_BYTES,
                sources::Settings::default().max_script_bytes.to_string(),
                "largest script a `url` may load (413 above)",
            ),
            (
                SOURCE_TIMEOUT_MS,
                millis(sources::Settings::default().timeout),
                "ms a script from a `url` may take to load (504 after)",
            ),
            (
                SOURCE_CACHE_BYTES,
                sources::Settings::default().cache_bytes.to_string(),
                "bytes of scripts from URLs kept in memory; 0 for no cache",
            ),
            (
                SOURCE_CACHE_TTL_MS,
                millis(sources::Settings::default().cache_ttl),
                "ms a cached script is used before a conditional request revalidates it",
            ),
            (
                SOURCES_ALLOW_LOOPBACK,
                "false".to_owned(),
                "tests only: `true` lets script sources and store endpoints be on loopback",
            ),
            (
                SOURCES_GCS_ENDPOINT,
                "unset".to_owned(),
                "emulators only: a GCS base URL, sent no credentials; unset: Google's",
            ),
            (
                SOURCES_S3_ENDPOINT,
                "unset".to_owned(),
                "emulators and S3-compatible stores: the endpoint, path-style; unset: AWS",
            ),
            (
                INGRESS_MEMORY_MB,
                DEFAULT_INGRESS_MEMORY_MB.to_string(),
                "MiB the ingress may use when its container (cgroup) sets no memory limit",
            ),
            (
                BUFFER_SHARE_PERCENT,
                DEFAULT_BUFFER_SHARE_PERCENT.to_string(),
                "percent of that memory that buffered request bodies and loaded scripts may hold (503 past it)",
            ),
            (
                "RUST_LOG",
                "info".to_owned(),
                "log filter, e.g. `ingress=debug`",
            ),
        ];
        variables.extend(default_connection_limits().help());
        variables
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name| lookup(name).filter(|value| !value.trim().is_empty());
        let defaults = Self::default();

        let listen_addr = match (var(LISTEN_ADDR), var(PORT)) {
            (Some(addr), _) => parse(
                LISTEN_ADDR,
                &addr,
                "expected host:port, e.g. 127.0.0.1:8080",
            )?,
            (None, Some(port)) => {
                let port: u16 = parse(PORT, &port, "expected a port number")?;
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
            }
            (None, None) => defaults.listen_addr,
        };

        let sandbox_url = var(SANDBOX_URL)
            .map(|url| parse_sandbox_url(&url))
            .transpose()?;

        let upstream_timeout = match var(UPSTREAM_TIMEOUT_MS) {
            Some(ms) => {
                let ms: u64 = parse(UPSTREAM_TIMEOUT_MS, &ms, "expected milliseconds")?;
                if ms == 0 {
                    return Err(error(UPSTREAM_TIMEOUT_MS, "0", "must be above zero"));
                }
                Duration::from_millis(ms)
            }
            None => defaults.upstream_timeout,
        };

        let max_body_bytes = match var(MAX_BODY_BYTES) {
            Some(bytes) => {
                let bytes: usize = parse(MAX_BODY_BYTES, &bytes, "expected a number of bytes")?;
                if bytes == 0 {
                    return Err(error(MAX_BODY_BYTES, "0", "must be above zero"));
                }
                bytes
            }
            None => defaults.max_body_bytes,
        };

        let rate_limit = parse_rate_limit(var(RATE_LIMIT_RPS), var(RATE_LIMIT_BURST))?;
        let (tenants, rate_limit) = match var(TENANTS_FILE) {
            Some(path) => {
                tenants::load(Path::new(path.trim()), rate_limit).map_err(|reason| ConfigError {
                    variable: TENANTS_FILE,
                    value: path,
                    reason,
                })?
            }
            None => (defaults.tenants, rate_limit),
        };

        let admin_listen_addr = match var(ADMIN_LISTEN_ADDR).as_deref().map(str::trim) {
            None => defaults.admin_listen_addr,
            Some("off") => None,
            Some(addr) => Some(parse(
                ADMIN_LISTEN_ADDR,
                addr,
                "expected host:port, e.g. 127.0.0.1:9090, or `off`",
            )?),
        };

        let trusted_proxy_hops = match var(TRUSTED_PROXY_HOPS) {
            Some(hops) => parse(TRUSTED_PROXY_HOPS, &hops, "expected 0, 1, 2, ...")?,
            None => defaults.trusted_proxy_hops,
        };

        let mut connections = connections::Limits::from_lookup(
            |name: &str| lookup(name).filter(|value| !value.trim().is_empty()),
            default_connection_limits(),
        )
        .map_err(|error| ConfigError {
            variable: error.variable,
            value: error.value,
            reason: error.reason.to_owned(),
        })?;
        if trusted_proxy_hops > 0 {
            connections.max_connections_per_client = None;
        }

        let log_format = match var(LOG_FORMAT).as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(error(LOG_FORMAT, other, "expected `text` or `json`")),
        };

        let sources =
            parse_sources(&|name: &str| lookup(name).filter(|value| !value.trim().is_empty()))?;
        let memory = parse_memory(
            var(INGRESS_MEMORY_MB),
            var(BUFFER_SHARE_PERCENT),
            sandbox_url.is_none(),
        )?;

        Ok(Self {
            listen_addr,
            sandbox_url,
            upstream_timeout,
            max_body_bytes,
            rate_limit,
            trusted_proxy_hops,
            log_format,
            tenants,
            admin_listen_addr,
            connections,
            sources,
            memory,
            on_cloud_run: var(K_SERVICE).is_some(),
        })
    }

    /// Settings that are valid but probably wrong, for `check-config` and the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // X-Forwarded-For is the client's own to write: only a proxy in front may be believed,
        // and only if clients cannot go around it. On Cloud Run the port is reachable only
        // through Google's front end; elsewhere, a non-loopback address is reachable directly.
        if self.trusted_proxy_hops > 0 && !self.listen_addr.ip().is_loopback() && !self.on_cloud_run
        {
            warnings.push(format!(
                "{TRUSTED_PROXY_HOPS}={} while listening on {}, which clients may reach without \
                 the proxy: a client that does can choose its identity (its rate limit and its \
                 turn) with X-Forwarded-For. Use {TRUSTED_PROXY_HOPS}=0 where clients connect \
                 directly (Docker Compose), or listen only where the proxy alone can connect",
                self.trusted_proxy_hops, self.listen_addr
            ));
        }
        warnings
    }
}

/// The ingress's memory: the container's limit where a cgroup sets one, otherwise
/// `INGRESS_MEMORY_MB`; and `BUFFER_SHARE_PERCENT` of it for buffers. With a `child` sandbox
/// in a container with a limit, the ingress takes `INGRESS_MEMORY_MB` of it and leaves the
/// rest to the child.
fn parse_memory(
    megabytes: Option<String>,
    percent: Option<String>,
    child: bool,
) -> Result<Memory, ConfigError> {
    let defaults = Memory::default();
    let setting = match megabytes {
        Some(text) => match parse::<u64>(INGRESS_MEMORY_MB, &text, "expected MiB")? {
            0 => return Err(error(INGRESS_MEMORY_MB, &text, "must be above zero")),
            mb => mb
                .checked_mul(1024 * 1024)
                .ok_or_else(|| error(INGRESS_MEMORY_MB, &text, "too large"))?,
        },
        None => defaults.limit_bytes,
    };
    let (limit_bytes, source, child_sandbox_bytes) = match connections::container_memory_limit() {
        Some((container, _)) if child => {
            let Some(rest) = container.checked_sub(setting).filter(|rest| *rest > 0) else {
                return Err(ConfigError {
                    variable: INGRESS_MEMORY_MB,
                    value: (setting >> 20).to_string(),
                    reason: format!(
                        "leaves nothing of the container's {} MiB for the sandbox started beside the ingress",
                        container >> 20
                    ),
                });
            };
            (setting, MemorySource::SharedContainer, Some(rest))
        }
        Some((container, _)) => (container, MemorySource::Container, None),
        None => (setting, MemorySource::Setting, None),
    };
    let buffer_percent = match percent {
        Some(text) => match parse::<u8>(BUFFER_SHARE_PERCENT, &text, "expected a percentage")? {
            percent @ 1..=100 => percent,
            _ => return Err(error(BUFFER_SHARE_PERCENT, &text, "must be 1 to 100")),
        },
        None => defaults.buffer_percent,
    };
    Ok(Memory {
        limit_bytes,
        source,
        buffer_percent,
        child_sandbox_bytes,
    })
}

fn parse_sources(var: &dyn Fn(&str) -> Option<String>) -> Result<sources::Settings, ConfigError> {
    let defaults = sources::Settings::default();
    let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        match var(name) {
            None => Ok(default),
            Some(ms) => {
                let ms: u64 = parse(name, &ms, "expected milliseconds")?;
                Ok(Duration::from_millis(ms))
            }
        }
    };
    let timeout = millis(SOURCE_TIMEOUT_MS, defaults.timeout)?;
    if timeout.is_zero() {
        return Err(error(SOURCE_TIMEOUT_MS, "0", "must be above zero"));
    }
    let cache_ttl = millis(SOURCE_CACHE_TTL_MS, defaults.cache_ttl)?;
    let max_script_bytes = match var(MAX_SCRIPT_BYTES) {
        Some(bytes) => match parse(MAX_SCRIPT_BYTES, &bytes, "expected a number of bytes")? {
            0 => return Err(error(MAX_SCRIPT_BYTES, "0", "must be above zero")),
            bytes => bytes,
        },
        None => defaults.max_script_bytes,
    };
    let cache_bytes = match var(SOURCE_CACHE_BYTES) {
        Some(bytes) => parse(SOURCE_CACHE_BYTES, &bytes, "expected a number of bytes")?,
        None => defaults.cache_bytes,
    };
    let allow_loopback = match var(SOURCES_ALLOW_LOOPBACK).as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(error(
                SOURCES_ALLOW_LOOPBACK,
                other,
                "expected `true` or `false`",
            ));
        }
    };
    let policy = egress::AddressPolicy { allow_loopback };
    let endpoint = |name: &'static str| -> Result<Option<String>, ConfigError> {
        let Some(text) = var(name) else {
            return Ok(None);
        };
        let text = text.trim().to_owned();
        let url = url::Url::parse(&text)
            .map_err(|_| error(name, &text, "expected a URL such as http://127.0.0.1:4443"))?;
        // The endpoint is the operator's, but the same address rules apply: a loopback
        // emulator needs the test-only loopback setting.
        egress::client::check_url(&url, policy).map_err(|refused| ConfigError {
            variable: name,
            value: text.clone(),
            reason: format!("{refused} (SOURCES_ALLOW_LOOPBACK=true allows loopback, for tests)"),
        })?;
        Ok(Some(text))
    };
    Ok(sources::Settings {
        timeout,
        cache_bytes,
        cache_ttl,
        allow_loopback,
        gcs_endpoint: endpoint(SOURCES_GCS_ENDPOINT)?,
        s3_endpoint: endpoint(SOURCES_S3_ENDPOINT)?,
        max_script_bytes,
    })
}

fn parse_rate_limit(
    rps: Option<String>,
    burst: Option<String>,
) -> Result<Option<RateLimit>, ConfigError> {
    let per_second = match rps {
        Some(rps) => {
            let value: f64 = parse(RATE_LIMIT_RPS, &rps, "expected requests per second")?;
            // Beyond 1e9 the refill period would round to zero nanoseconds.
            if !value.is_finite() || !(0.0..=RateLimit::MAX_PER_SECOND).contains(&value) {
                return Err(error(RATE_LIMIT_RPS, &rps, "must be between 0 and 1e9"));
            }
            value
        }
        None => DEFAULT_RATE_LIMIT_RPS,
    };
    if per_second == 0.0 {
        return Ok(None);
    }
    let burst = match burst {
        Some(burst) => {
            let value: u32 = parse(RATE_LIMIT_BURST, &burst, "expected a whole number")?;
            NonZeroU32::new(value)
                .ok_or_else(|| error(RATE_LIMIT_BURST, &burst, "must be above zero"))?
        }
        None => NonZeroU32::new(DEFAULT_RATE_LIMIT_BURST).expect("default burst is not zero"),
    };
    Ok(Some(RateLimit { per_second, burst }))
}

/// Accepts `http://host:port` (a trailing `/` is fine); the proxy appends the request's own
/// path, so a base path would be silently ignored and is refused instead.
fn parse_sandbox_url(url: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = parse(
        SANDBOX_URL,
        url,
        "expected a URL such as http://127.0.0.1:8081",
    )?;
    if uri.scheme_str() != Some("http") {
        return Err(error(SANDBOX_URL, url, "only http:// URLs are supported"));
    }
    if uri.authority().is_none() {
        return Err(error(SANDBOX_URL, url, "the URL needs a host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(error(
            SANDBOX_URL,
            url,
            "the URL must not have a path or query",
        ));
    }
    Ok(uri)
}

fn parse<T: std::str::FromStr>(
    variable: &'static str,
    value: &str,
    reason: &'static str,
) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| error(variable, value, reason))
}

fn error(variable: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError {
        variable,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    /// The `Default` column of README's "Ingress configuration" table: `variable`'s row, its
    /// backticks removed.
    fn documented_default(variable: &str) -> String {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## ")
            .find(|section| section.starts_with("Ingress configuration\n"))
            .expect("README has an \"Ingress configuration\" section");
        let row = section
            .lines()
            .find(|line| line.starts_with(&format!("| `{variable}` |")))
            .unwrap_or_else(|| panic!("README's ingress table has no row for {variable}"));
        row.split('|').nth(2).unwrap().trim().replace('`', "")
    }

    #[test]
    fn empty_environment_gives_the_defaults_readme_documents() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config, Config::default());
        let rate_limit = config.rate_limit.expect("rate limiting is on by default");
        let limits = &config.connections;
        let millis = |duration: Duration| duration.as_millis().to_string();
        let defaults = [
            (LISTEN_ADDR, config.listen_addr.to_string()),
            (UPSTREAM_TIMEOUT_MS, millis(config.upstream_timeout)),
            (MAX_BODY_BYTES, config.max_body_bytes.to_string()),
            (RATE_LIMIT_RPS, rate_limit.per_second.to_string()),
            (RATE_LIMIT_BURST, rate_limit.burst.to_string()),
            (
                ADMIN_LISTEN_ADDR,
                config.admin_listen_addr.unwrap().to_string(),
            ),
            (TRUSTED_PROXY_HOPS, config.trusted_proxy_hops.to_string()),
            (
                connections::vars::HEADER_READ_TIMEOUT_MS,
                millis(limits.header_read_timeout),
            ),
            (
                connections::vars::BODY_READ_TIMEOUT_MS,
                millis(limits.body_read_timeout),
            ),
            (
                connections::vars::WRITE_TIMEOUT_MS,
                millis(limits.write_timeout),
            ),
            (
                connections::vars::MAX_CONNECTIONS,
                limits.max_connections.to_string(),
            ),
            (
                connections::vars::MAX_CONNECTIONS_PER_CLIENT,
                limits.max_connections_per_client.unwrap().to_string(),
            ),
            (
                LOG_FORMAT,
                format!("{:?}", config.log_format).to_lowercase(),
            ),
            (
                MAX_SCRIPT_BYTES,
                config.sources.max_script_bytes.to_string(),
            ),
            (SOURCE_TIMEOUT_MS, millis(config.sources.timeout)),
            (SOURCE_CACHE_BYTES, config.sources.cache_bytes.to_string()),
            (SOURCE_CACHE_TTL_MS, millis(config.sources.cache_ttl)),
            (
                SOURCES_ALLOW_LOOPBACK,
                config.sources.allow_loopback.to_string(),
            ),
        ];
        for (variable, value) in defaults {
            assert_eq!(value, documented_default(variable), "{variable}");
        }
        for (variable, is_unset) in [
            (PORT, true),
            (SANDBOX_URL, config.sandbox_url.is_none()),
            (
                TENANTS_FILE,
                config.tenants.tenants.is_empty() && config.tenants.anonymous.enabled,
            ),
            (SOURCES_GCS_ENDPOINT, config.sources.gcs_endpoint.is_none()),
            (SOURCES_S3_ENDPOINT, config.sources.s3_endpoint.is_none()),
        ] {
            assert_eq!(documented_default(variable), "unset", "{variable}");
            assert!(is_unset, "{variable} has a value by default");
        }
    }

    #[test]
    fn help_lists_the_defaults_readme_documents() {
        for (variable, default, _) in Config::help() {
            assert_eq!(default, documented_default(variable), "{variable}");
        }
    }

    #[test]
    fn script_sources_are_configured_and_loopback_endpoints_need_the_test_setting() {
        let config = config_from(&[
            (SOURCE_TIMEOUT_MS, "1500"),
            (SOURCE_CACHE_BYTES, "0"),
            (SOURCE_CACHE_TTL_MS, "10"),
            (MAX_SCRIPT_BYTES, "2048"),
        ])
        .unwrap();
        assert_eq!(config.sources.timeout, Duration::from_millis(1500));
        assert_eq!(config.sources.cache_bytes, 0);
        assert_eq!(config.sources.max_script_bytes, 2048);
        assert!(config_from(&[(MAX_SCRIPT_BYTES, "0")]).is_err());
        assert!(!config.sources.allow_loopback);
        let refused = config_from(&[(SOURCES_S3_ENDPOINT, "http://127.0.0.1:9000")]).unwrap_err();
        assert!(
            refused.to_string().contains("SOURCES_S3_ENDPOINT"),
            "{refused}"
        );
        let config = config_from(&[
            (SOURCES_S3_ENDPOINT, "http://127.0.0.1:9000"),
            (SOURCES_ALLOW_LOOPBACK, "true"),
        ])
        .unwrap();
        assert_eq!(
            config.sources.s3_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(
            config_from(&[
                (SOURCES_GCS_ENDPOINT, "http://169.254.169.254"),
                (SOURCES_ALLOW_LOOPBACK, "true")
            ])
            .is_err()
        );
        assert!(config_from(&[(SOURCE_TIMEOUT_MS, "0")]).is_err());
        assert!(config_from(&[(SOURCES_ALLOW_LOOPBACK, "yes")]).is_err());
    }

    #[test]
    fn port_alone_listens_on_all_interfaces() {
        let config = config_from(&[(PORT, "9000")]).unwrap();
        assert_eq!(config.listen_addr, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn listen_addr_wins_over_port() {
        let config = config_from(&[(LISTEN_ADDR, "127.0.0.1:7000"), (PORT, "9000")]).unwrap();
        assert_eq!(config.listen_addr, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn rate_limit_rps_zero_turns_limiting_off() {
        let config = config_from(&[(RATE_LIMIT_RPS, "0"), (RATE_LIMIT_BURST, "0")]).unwrap();
        assert_eq!(config.rate_limit, None);
    }

    #[test]
    fn fractional_rate_refills_slower_than_once_a_second() {
        let config = config_from(&[(RATE_LIMIT_RPS, "0.5"), (RATE_LIMIT_BURST, "3")]).unwrap();
        let limit = config.rate_limit.unwrap();
        assert_eq!(limit.burst.get(), 3);
        assert_eq!(limit.replenish_period(), Duration::from_secs(2));
    }

    #[test]
    fn admin_listener_defaults_to_loopback_9090_and_can_be_turned_off() {
        assert_eq!(
            config_from(&[]).unwrap().admin_listen_addr,
            Some("127.0.0.1:9090".parse().unwrap())
        );
        assert_eq!(
            config_from(&[(ADMIN_LISTEN_ADDR, "0.0.0.0:9100")])
                .unwrap()
                .admin_listen_addr,
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(
            config_from(&[(ADMIN_LISTEN_ADDR, "off")])
                .unwrap()
                .admin_listen_addr,
            None
        );
    }

    #[test]
    fn a_tenants_file_is_read_and_a_bad_one_is_named() {
        let dir = std::env::temp_dir().join(format!("ingress-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("tenants.toml");
        let hash = tenants::KeyHash::of_key("k");
        std::fs::write(
            &good,
            format!(
                "[anonymous]\nenabled = false\n[[tenants]]\nid = \"acme\"\nkeys = [\"{hash}\"]\nrate_limit_rps = 0\n"
            ),
        )
        .unwrap();
        let config = config_from(&[(TENANTS_FILE, good.to_str().unwrap())]).unwrap();
        assert!(!config.tenants.anonymous.enabled);
        assert_eq!(config.tenants.tenants[0].keys, [hash]);
        // The anonymous tier keeps the environment's rate limit.
        assert_eq!(config.rate_limit, Config::default().rate_limit);

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[anonymous]\nenabled = maybe\n").unwrap();
        let error = config_from(&[(TENANTS_FILE, bad.to_str().unwrap())])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(TENANTS_FILE) && error.contains("line 2"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sandbox_url_must_be_plain_http_without_a_path() {
        let config = config_from(&[(SANDBOX_URL, "http://sandbox:8081/")]).unwrap();
        assert_eq!(
            config.sandbox_url.unwrap().authority().unwrap(),
            "sandbox:8081"
        );

        for bad in [
            "https://sandbox:8081",
            "http://sandbox:8081/api",
            "sandbox:8081",
            "nope",
        ] {
            let error = config_from(&[(SANDBOX_URL, bad)]).unwrap_err();
            assert!(error.to_string().contains(SANDBOX_URL), "{error}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            (UPSTREAM_TIMEOUT_MS, "soon"),
            (UPSTREAM_TIMEOUT_MS, "0"),
            (MAX_BODY_BYTES, "-1"),
            (RATE_LIMIT_RPS, "-2"),
            (RATE_LIMIT_RPS, "NaN"),
            (RATE_LIMIT_BURST, "0"),
            (TRUSTED_PROXY_HOPS, "one"),
            (LOG_FORMAT, "xml"),
            (PORT, "70000"),
            (LISTEN_ADDR, "localhost"),
            (ADMIN_LISTEN_ADDR, "9090"),
            (TENANTS_FILE, "/no/such/tenants.toml"),
        ] {
            let error = config_from(&[(variable, value)]).unwrap_err();
            assert!(error.to_string().contains(variable), "{error}");
        }
    }
}
