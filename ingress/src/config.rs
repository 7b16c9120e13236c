//! Typed configuration of the ingress, read once from the environment at startup. Every
//! variable is declared once below (name, default, parser and help, from which `--help`,
//! `check-config` and README's table follow); a bad value is a startup error that names it.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::Uri;
pub use service_kit::ConfigError;
use service_kit::env::{Env, Var, default, parse::*, unset};
use service_kit::telemetry::Sample;
use service_kit::{LogFormat, Logging};

use crate::mcp::origin::AllowedHosts;
use crate::rate_limit::RateLimit;
use crate::sources;
use crate::tenants::{self, Tenants};

service_kit::variables! {
    /// Every variable the ingress reads, in the order of `--help` and of README's table.
    pub const VARIABLES;

    /// address to listen on
    LISTEN_ADDR: SocketAddr = default("127.0.0.1:8080"), socket_addr;
    /// when `LISTEN_ADDR` is unset, listen on `0.0.0.0:$PORT` (Cloud Run sets it)
    PORT: u16 = unset("unset"), port;
    /// `http://host:port` of the sandbox. Unset: the ingress starts the `sandbox` binary that sits
    /// beside its own executable as a child process on a free loopback port, waits for its
    /// `/healthz`, restarts it on the same port if it ever exits (the ingress's `/healthz` answers
    /// 503 `{"status": "sandbox_restarting"}` meanwhile), and stops it on exit (the child inherits
    /// the environment, so the sandbox's variables apply to it). Started by `cargo run`, it first
    /// runs `cargo build -p sandbox` with the same profile
    SANDBOX_URL: Uri = unset("unset"), sandbox_url;
    /// how long the sandbox may take to answer before the client gets 504; keep it above
    /// `MAX_TIMEOUT_MS` plus the sandbox's queue wait. Once the answer's head has come, the
    /// longest the body may pause before the connection is dropped: a stream's heartbeat (every
    /// 15 s) keeps a quiet stream below it
    UPSTREAM_TIMEOUT_MS: Duration = default("35000"), positive_millis;
    /// larger request bodies get 413: at once when `Content-Length` says so, otherwise when the
    /// bytes pass it. The ingress reads a body only when it must: `GET`, `HEAD` and
    /// `/api/openapi.json` forward none and read none; a JSON `POST /api/execute` (which may name a
    /// `url`) or `POST /api/batch` (whose items are counted) is read whole, after the key check
    /// and the rate limit, within the memory budget below; every other body streams to the
    /// sandbox as it arrives
    MAX_BODY_BYTES: usize = default("1048576"), at_least_one;
    /// anonymous tier: requests per second each client earns back (fractions allowed: `0.5` is one
    /// every 2 s); `0` turns rate limiting off. The tenants file's `[anonymous]` section may
    /// override it
    RATE_LIMIT_RPS: f64 = default("5"), rate;
    /// anonymous tier: requests a client may make at once
    RATE_LIMIT_BURST: NonZeroU32 = default("20"), burst;
    /// path of the tenants file (TOML, or JSON when it ends in `.json`), see [Tenants](#tenants).
    /// Unset: every request is anonymous, with the limits above and the sandbox's own
    TENANTS_FILE: PathBuf = unset("unset"), path;
    /// the admin listener, which serves only `GET /metrics` (see [Metrics](#metrics)); `off` for
    /// none. If it cannot be bound the ingress logs an error and serves the public port anyway
    ADMIN_LISTEN_ADDR: Option<SocketAddr> = default("127.0.0.1:9090"), socket_addr_or_off;
    /// how clients are told apart: `0` by the TCP peer address (local use, Docker Compose); `N` by
    /// the N-th `X-Forwarded-For` entry from the right, the one the outermost trusted proxy wrote
    /// (`1` on Cloud Run). Entries further left are written by the client and never used. Above
    /// `0`, a client that reaches the ingress without the proxy chooses its own identity (its rate
    /// limit, its turn): `check-config` and start-up warn when it is above `0` and the ingress
    /// listens on a non-loopback address outside Cloud Run (`K_SERVICE` unset), where only Google's
    /// front end reaches the port
    TRUSTED_PROXY_HOPS: usize = default("0"), whole;
    /// a request's head must arrive whole within this of the connection being ready for it
    /// (accepted, or done with its previous answer): closes idle kept-alive connections and
    /// half-sent heads
    HEADER_READ_TIMEOUT_MS: Duration = default("10000"), positive_millis;
    /// a request's body must arrive whole within this (408 `request_timeout`), whether it is read
    /// whole or streamed to the sandbox
    BODY_READ_TIMEOUT_MS: Duration = default("10000"), positive_millis;
    /// an answer's write may make no progress for this long before the connection is dropped
    WRITE_TIMEOUT_MS: Duration = default("10000"), positive_millis;
    /// connections open at once on the public port; more are closed at once
    MAX_CONNECTIONS: usize = default("1024"), at_least_one;
    /// connections open at once from one address (IPv6: one /64), counted by TCP peer: applied only
    /// when `TRUSTED_PROXY_HOPS` is `0`, since behind a proxy every client has the proxy's address
    /// (on Cloud Run, Google's front end limits connections itself)
    MAX_CONNECTIONS_PER_CLIENT: usize = default("128"), whole;
    /// after SIGTERM, how long the public listener stays open, serving, while `/healthz` answers
    /// 503 `{"status": "shutting_down"}`; `0` closes it at once. A child sandbox gets `0`: the
    /// ingress gives the notice
    SHUTDOWN_NOTICE_MS: Duration = default("1000"), millis;
    /// `text` for terminals, `json` for Cloud Logging
    LOG_FORMAT: LogFormat = default("text"), log_format;
    /// the share of successful requests whose line is logged, from 0 to 1: each line costs a few
    /// microseconds of CPU in each process. Answers with an error status and executions that did
    /// not succeed are always logged; both processes keep the same requests' lines (chosen by
    /// request id)
    REQUEST_LOG_SAMPLE: Sample = default("1"), sample;
    /// log filter, e.g. `ingress=debug`
    RUST_LOG: String = default("info"), text;
    /// the ingress's memory when its container sets none; a cgroup's limit (v2 `memory.max`, v1
    /// `memory.limit_in_bytes`) wins, except when `SANDBOX_URL` is unset: then the ingress takes
    /// this much of the container and gives the sandbox it starts the rest (its
    /// `SANDBOX_MEMORY_MB`, unless set). Logged at start-up with where it came from
    INGRESS_MEMORY_MB: u64 = default("256"), mebibytes;
    /// the share of that memory that bodies read whole, loaded scripts being downloaded and the
    /// requests rewritten with them may hold at once, across all connections (64 MiB of the deploy
    /// files' 256 MiB, beside the 64 MiB `SOURCE_CACHE_BYTES`). Each byte is charged before it is
    /// kept; a request that does not fit gets 503 `overloaded` with `Retry-After: 1`, or 413 when
    /// it alone is larger than the share
    BUFFER_SHARE_PERCENT: u8 = default("25"), percent;
    /// the largest script a `url` may load, counted as the JSON-escaped text the sandbox receives
    /// (413 above); the default leaves 128 KiB of the sandbox's `MAX_BODY_BYTES` for `input` and
    /// the other fields
    MAX_SCRIPT_BYTES: usize = default("917504"), at_least_one;
    /// how long loading a script from a `url` may take, connection to last byte (504
    /// `source_unavailable` after); see [Scripts from URLs and
    /// buckets](#scripts-from-urls-and-buckets)
    SOURCE_TIMEOUT_MS: Duration = default("5000"), positive_millis;
    /// bytes of loaded scripts kept in memory (least recently used out first); `0` for no cache
    SOURCE_CACHE_BYTES: usize = default("67108864"), whole;
    /// how long a cached script is used as is; after it, a conditional request revalidates it
    SOURCE_CACHE_TTL_MS: Duration = default("60000"), millis;
    /// the hosts `/mcp` answers for (see [MCP](#mcp)), comma-separated `host` or `host:port` (no
    /// port: any); a page's `Origin` must name one of them too. Unset: any `Host`, and an `Origin`
    /// must name the request's own `Host`. Anything else is refused 403 `forbidden`
    MCP_ALLOWED_HOSTS: AllowedHosts = unset("unset"), AllowedHosts::parse;
    /// **tests only**: `true` lets script sources and the endpoints below be on loopback addresses
    SOURCES_ALLOW_LOOPBACK: bool = default("false"), boolean;
    /// **emulators only**: base URL of a GCS XML-API server, sent no credentials; unset: Google's,
    /// with the standard credentials
    SOURCES_GCS_ENDPOINT: String = unset("unset"), endpoint;
    /// emulators and S3-compatible stores: the endpoint, with path-style requests; unset: AWS
    SOURCES_S3_ENDPOINT: String = unset("unset"), endpoint;
}

/// Set by Cloud Run in every container: there, only Google's front end reaches the port.
pub const K_SERVICE: &str = "K_SERVICE";

/// Everything the ingress can be told from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to listen: [`LISTEN_ADDR`], else `0.0.0.0:$PORT` ([`PORT`]), else the default.
    pub listen_addr: SocketAddr,
    /// [`SANDBOX_URL`]. `None` (unset): the ingress starts the `sandbox` binary that sits
    /// beside its own executable and proxies to it.
    pub sandbox_url: Option<Uri>,
    /// [`UPSTREAM_TIMEOUT_MS`]: kept a little above the largest script deadline so a
    /// script's own timeout is reported first.
    pub upstream_timeout: Duration,
    /// [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// The anonymous tier's limit, per client address: [`RATE_LIMIT_RPS`] and
    /// [`RATE_LIMIT_BURST`], or the tenants file's `[anonymous]` rate limit when it sets one;
    /// `None` when the rate is 0. Requests that fail authentication are counted here too, so
    /// keys cannot be guessed at full speed.
    pub rate_limit: Option<RateLimit>,
    /// [`TRUSTED_PROXY_HOPS`].
    pub trusted_proxy_hops: usize,
    /// [`LOG_FORMAT`] and [`REQUEST_LOG_SAMPLE`].
    pub logging: Logging,
    /// [`TENANTS_FILE`]: the tenants, their keys and limits, and the anonymous tier.
    pub tenants: Tenants,
    /// [`ADMIN_LISTEN_ADDR`]: metrics must not take the service down, so a failure to bind it
    /// is logged, not fatal.
    pub admin_listen_addr: Option<SocketAddr>,
    /// The public port's connection limits: [`HEADER_READ_TIMEOUT_MS`],
    /// [`BODY_READ_TIMEOUT_MS`], [`WRITE_TIMEOUT_MS`], [`MAX_CONNECTIONS`],
    /// [`MAX_CONNECTIONS_PER_CLIENT`] (only when `TRUSTED_PROXY_HOPS` is 0: behind a proxy
    /// every client shares the proxy's address) and [`SHUTDOWN_NOTICE_MS`].
    pub connections: service_kit::Limits,
    /// Scripts loaded from a `url`: [`SOURCE_TIMEOUT_MS`], [`SOURCE_CACHE_BYTES`],
    /// [`SOURCE_CACHE_TTL_MS`], [`MAX_SCRIPT_BYTES`], and for tests and emulators
    /// [`SOURCES_ALLOW_LOOPBACK`], [`SOURCES_GCS_ENDPOINT`], [`SOURCES_S3_ENDPOINT`].
    pub sources: sources::Settings,
    /// The ingress's memory and the share of it for buffers (see [`Memory`]).
    pub memory: Memory,
    /// [`MCP_ALLOWED_HOSTS`]: the `Host` and `Origin` `/mcp` serves.
    pub mcp_allowed_hosts: AllowedHosts,
    /// [`K_SERVICE`] is set: the ingress runs on Cloud Run, where its port is reached only
    /// through Google's front end.
    pub on_cloud_run: bool,
}

/// How much memory the ingress may use, and how much of it request bodies and loaded scripts
/// may hold at once across all connections (the process's [`service_kit::MemoryBudget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The container's cgroup limit where there is one, else [`INGRESS_MEMORY_MB`].
    pub limit_bytes: u64,
    /// Where `limit_bytes` came from.
    pub source: MemorySource,
    /// [`BUFFER_SHARE_PERCENT`]: the share of `limit_bytes` for buffers.
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
            limit_bytes: INGRESS_MEMORY_MB.default_value(),
            source: MemorySource::Setting,
            buffer_percent: BUFFER_SHARE_PERCENT.default_value(),
            child_sandbox_bytes: None,
        }
    }
}

impl Default for Config {
    /// The declared defaults, with an unset `SANDBOX_URL` and no tenants file.
    fn default() -> Self {
        Self {
            listen_addr: LISTEN_ADDR.default_value(),
            sandbox_url: None,
            upstream_timeout: UPSTREAM_TIMEOUT_MS.default_value(),
            max_body_bytes: MAX_BODY_BYTES.default_value(),
            rate_limit: Some(RateLimit {
                per_second: RATE_LIMIT_RPS.default_value(),
                burst: RATE_LIMIT_BURST.default_value(),
            }),
            trusted_proxy_hops: TRUSTED_PROXY_HOPS.default_value(),
            logging: Logging {
                format: LOG_FORMAT.default_value(),
                sample: REQUEST_LOG_SAMPLE.default_value(),
            },
            tenants: Tenants::default(),
            admin_listen_addr: ADMIN_LISTEN_ADDR.default_value(),
            connections: connection_limits(&Env::new(&|_| None), 0)
                .expect("the declared defaults parse"),
            sources: sources::Settings::default(),
            memory: Memory::default(),
            mcp_allowed_hosts: AllowedHosts::Any,
            on_cloud_run: false,
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let listen_addr = match (env.optional(&LISTEN_ADDR)?, env.optional(&PORT)?) {
            (Some(addr), _) => addr,
            (None, Some(port)) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            (None, None) => LISTEN_ADDR.default_value(),
        };
        let sandbox_url = env.optional(&SANDBOX_URL)?;
        let rate_limit = match env.get(&RATE_LIMIT_RPS)? {
            0.0 => None,
            per_second => Some(RateLimit {
                per_second,
                burst: env.get(&RATE_LIMIT_BURST)?,
            }),
        };
        let (tenants, rate_limit) = match env.optional(&TENANTS_FILE)? {
            Some(path) => tenants::load(&path, rate_limit).map_err(|reason| ConfigError {
                variable: TENANTS_FILE.name,
                value: path.display().to_string(),
                reason,
            })?,
            None => (Tenants::default(), rate_limit),
        };
        let trusted_proxy_hops = env.get(&TRUSTED_PROXY_HOPS)?;
        Ok(Self {
            listen_addr,
            upstream_timeout: env.get(&UPSTREAM_TIMEOUT_MS)?,
            max_body_bytes: env.get(&MAX_BODY_BYTES)?,
            rate_limit,
            trusted_proxy_hops,
            logging: Logging {
                format: env.get(&LOG_FORMAT)?,
                sample: env.get(&REQUEST_LOG_SAMPLE)?,
            },
            tenants,
            admin_listen_addr: env.get(&ADMIN_LISTEN_ADDR)?,
            connections: connection_limits(&env, trusted_proxy_hops)?,
            sources: read_sources(&env)?,
            memory: read_memory(&env, sandbox_url.is_none())?,
            mcp_allowed_hosts: env.optional(&MCP_ALLOWED_HOSTS)?.unwrap_or_default(),
            sandbox_url,
            on_cloud_run: env.raw(K_SERVICE).is_some(),
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
                "{hops}={} while listening on {}, which clients may reach without the proxy: a \
                 client that does can choose its identity (its rate limit and its turn) with \
                 X-Forwarded-For. Use {hops}=0 where clients connect directly (Docker Compose), \
                 or listen only where the proxy alone can connect",
                self.trusted_proxy_hops,
                self.listen_addr,
                hops = TRUSTED_PROXY_HOPS.name,
            ));
        }
        warnings
    }
}

/// The public port's connection limits. Behind `hops` proxies every client has the proxy's
/// address, so the per-client cap applies only without them.
fn connection_limits(env: &Env, hops: usize) -> Result<service_kit::Limits, ConfigError> {
    let per_client = env.get(&MAX_CONNECTIONS_PER_CLIENT)?;
    Ok(service_kit::Limits {
        header_read_timeout: env.get(&HEADER_READ_TIMEOUT_MS)?,
        body_read_timeout: env.get(&BODY_READ_TIMEOUT_MS)?,
        write_timeout: env.get(&WRITE_TIMEOUT_MS)?,
        max_connections: env.get(&MAX_CONNECTIONS)?,
        max_connections_per_client: (per_client > 0 && hops == 0).then_some(per_client),
        shutdown_notice: env.get(&SHUTDOWN_NOTICE_MS)?,
    })
}

/// The ingress's memory: the container's limit where a cgroup sets one, otherwise
/// `INGRESS_MEMORY_MB`; and `BUFFER_SHARE_PERCENT` of it for buffers. With a `child` sandbox
/// in a container with a limit, the ingress takes `INGRESS_MEMORY_MB` of it and leaves the
/// rest to the child.
fn read_memory(env: &Env, child: bool) -> Result<Memory, ConfigError> {
    let setting = env.get(&INGRESS_MEMORY_MB)?;
    let (limit_bytes, source, child_sandbox_bytes) = match service_kit::container_memory_limit() {
        Some((container, _)) if child => {
            let Some(rest) = container.checked_sub(setting).filter(|rest| *rest > 0) else {
                return Err(ConfigError {
                    variable: INGRESS_MEMORY_MB.name,
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
    Ok(Memory {
        limit_bytes,
        source,
        buffer_percent: env.get(&BUFFER_SHARE_PERCENT)?,
        child_sandbox_bytes,
    })
}

fn read_sources(env: &Env) -> Result<sources::Settings, ConfigError> {
    let allow_loopback = env.get(&SOURCES_ALLOW_LOOPBACK)?;
    let policy = egress::AddressPolicy { allow_loopback };
    // The endpoint is the operator's, but the same address rules apply: a loopback emulator
    // needs the test-only loopback setting.
    let endpoint = |var: &Var<String>| -> Result<Option<String>, ConfigError> {
        let Some(text) = env.optional(var)? else {
            return Ok(None);
        };
        let url = url::Url::parse(&text).expect("checked by the variable's parser");
        egress::client::check_url(&url, policy).map_err(|refused| ConfigError {
            variable: var.name,
            value: text.clone(),
            reason: format!("{refused} (SOURCES_ALLOW_LOOPBACK=true allows loopback, for tests)"),
        })?;
        Ok(Some(text))
    };
    Ok(sources::Settings {
        timeout: env.get(&SOURCE_TIMEOUT_MS)?,
        cache_bytes: env.get(&SOURCE_CACHE_BYTES)?,
        cache_ttl: env.get(&SOURCE_CACHE_TTL_MS)?,
        allow_loopback,
        gcs_endpoint: endpoint(&SOURCES_GCS_ENDPOINT)?,
        s3_endpoint: endpoint(&SOURCES_S3_ENDPOINT)?,
        max_script_bytes: env.get(&MAX_SCRIPT_BYTES)?,
    })
}

/// `RATE_LIMIT_RPS`: from 0 to 1e9; beyond 1e9 the refill period would round to zero.
fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=RateLimit::MAX_PER_SECOND).contains(&rate) => Ok(rate),
        _ => Err("expected requests per second from 0 to 1e9".into()),
    }
}

/// `RATE_LIMIT_BURST`: at least 1.
fn burst(value: &str) -> Result<NonZeroU32, String> {
    value
        .parse()
        .map_err(|_| "expected a whole number of at least 1".into())
}

/// `SOURCES_*_ENDPOINT`: a URL, kept as written.
fn endpoint(value: &str) -> Result<String, String> {
    url::Url::parse(value)
        .map(|_| value.to_owned())
        .map_err(|_| "expected a URL such as http://127.0.0.1:4443".into())
}

/// `SANDBOX_URL`: `http://host:port` (a trailing `/` is fine); the proxy appends the
/// request's own path, so a base path would be silently ignored and is refused instead.
fn sandbox_url(value: &str) -> Result<Uri, String> {
    let uri: Uri = value
        .parse()
        .map_err(|_| "expected a URL such as http://127.0.0.1:8081")?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported".into());
    }
    if uri.authority().is_none() {
        return Err("the URL needs a host".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("the URL must not have a path or query".into());
    }
    Ok(uri)
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

    /// README's "Ingress configuration" section.
    fn readme_section() -> &'static str {
        include_str!("../../README.md")
            .split("\n## ")
            .find(|section| section.starts_with("Ingress configuration\n"))
            .expect("README has an \"Ingress configuration\" section")
    }

    /// The `Default` column of README's "Ingress configuration" table: `variable`'s row, its
    /// backticks removed.
    fn documented_default(variable: &str) -> String {
        let row = readme_section()
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
            (LISTEN_ADDR.name, config.listen_addr.to_string()),
            (UPSTREAM_TIMEOUT_MS.name, millis(config.upstream_timeout)),
            (MAX_BODY_BYTES.name, config.max_body_bytes.to_string()),
            (RATE_LIMIT_RPS.name, rate_limit.per_second.to_string()),
            (RATE_LIMIT_BURST.name, rate_limit.burst.to_string()),
            (
                ADMIN_LISTEN_ADDR.name,
                config.admin_listen_addr.unwrap().to_string(),
            ),
            (
                TRUSTED_PROXY_HOPS.name,
                config.trusted_proxy_hops.to_string(),
            ),
            (
                HEADER_READ_TIMEOUT_MS.name,
                millis(limits.header_read_timeout),
            ),
            (BODY_READ_TIMEOUT_MS.name, millis(limits.body_read_timeout)),
            (WRITE_TIMEOUT_MS.name, millis(limits.write_timeout)),
            (MAX_CONNECTIONS.name, limits.max_connections.to_string()),
            (
                MAX_CONNECTIONS_PER_CLIENT.name,
                limits.max_connections_per_client.unwrap().to_string(),
            ),
            (
                LOG_FORMAT.name,
                format!("{:?}", config.logging.format).to_lowercase(),
            ),
            (
                REQUEST_LOG_SAMPLE.name,
                config.logging.sample.share().to_string(),
            ),
            (
                MAX_SCRIPT_BYTES.name,
                config.sources.max_script_bytes.to_string(),
            ),
            (SOURCE_TIMEOUT_MS.name, millis(config.sources.timeout)),
            (
                SOURCE_CACHE_BYTES.name,
                config.sources.cache_bytes.to_string(),
            ),
            (SOURCE_CACHE_TTL_MS.name, millis(config.sources.cache_ttl)),
            (
                SOURCES_ALLOW_LOOPBACK.name,
                config.sources.allow_loopback.to_string(),
            ),
        ];
        for (variable, value) in defaults {
            assert_eq!(value, documented_default(variable), "{variable}");
        }
        for (variable, is_unset) in [
            (PORT.name, true),
            (SANDBOX_URL.name, config.sandbox_url.is_none()),
            (
                TENANTS_FILE.name,
                config.tenants.tenants.is_empty() && config.tenants.anonymous.enabled,
            ),
            (
                SOURCES_GCS_ENDPOINT.name,
                config.sources.gcs_endpoint.is_none(),
            ),
            (
                SOURCES_S3_ENDPOINT.name,
                config.sources.s3_endpoint.is_none(),
            ),
            (
                MCP_ALLOWED_HOSTS.name,
                config.mcp_allowed_hosts == AllowedHosts::Any,
            ),
        ] {
            assert_eq!(documented_default(variable), "unset", "{variable}");
            assert!(is_unset, "{variable} has a value by default");
        }
    }

    #[test]
    fn readme_table_is_generated_from_the_declarations() {
        let documented: Vec<_> = readme_section()
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
    fn script_sources_are_configured_and_loopback_endpoints_need_the_test_setting() {
        let config = config_from(&[
            (SOURCE_TIMEOUT_MS.name, "1500"),
            (SOURCE_CACHE_BYTES.name, "0"),
            (SOURCE_CACHE_TTL_MS.name, "10"),
            (MAX_SCRIPT_BYTES.name, "2048"),
        ])
        .unwrap();
        assert_eq!(config.sources.timeout, Duration::from_millis(1500));
        assert_eq!(config.sources.cache_bytes, 0);
        assert_eq!(config.sources.max_script_bytes, 2048);
        assert!(config_from(&[(MAX_SCRIPT_BYTES.name, "0")]).is_err());
        assert!(!config.sources.allow_loopback);
        let refused =
            config_from(&[(SOURCES_S3_ENDPOINT.name, "http://127.0.0.1:9000")]).unwrap_err();
        assert!(
            refused.to_string().contains("SOURCES_S3_ENDPOINT"),
            "{refused}"
        );
        let config = config_from(&[
            (SOURCES_S3_ENDPOINT.name, "http://127.0.0.1:9000"),
            (SOURCES_ALLOW_LOOPBACK.name, "true"),
        ])
        .unwrap();
        assert_eq!(
            config.sources.s3_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(
            config_from(&[
                (SOURCES_GCS_ENDPOINT.name, "http://169.254.169.254"),
                (SOURCES_ALLOW_LOOPBACK.name, "true")
            ])
            .is_err()
        );
        assert!(config_from(&[(SOURCE_TIMEOUT_MS.name, "0")]).is_err());
        assert!(config_from(&[(SOURCES_ALLOW_LOOPBACK.name, "yes")]).is_err());
    }

    #[test]
    fn mcp_allowed_hosts_lists_the_hosts_of_mcp() {
        let config =
            config_from(&[(MCP_ALLOWED_HOSTS.name, "jsbox.example.com,localhost:8080")]).unwrap();
        assert_eq!(
            config.mcp_allowed_hosts,
            AllowedHosts::parse("jsbox.example.com, localhost:8080").unwrap()
        );
        assert_ne!(config.mcp_allowed_hosts, AllowedHosts::Any);
    }

    #[test]
    fn port_alone_listens_on_all_interfaces() {
        let config = config_from(&[(PORT.name, "9000")]).unwrap();
        assert_eq!(config.listen_addr, "0.0.0.0:9000".parse().unwrap());
    }

    #[test]
    fn listen_addr_wins_over_port() {
        let config =
            config_from(&[(LISTEN_ADDR.name, "127.0.0.1:7000"), (PORT.name, "9000")]).unwrap();
        assert_eq!(config.listen_addr, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn rate_limit_rps_zero_turns_limiting_off() {
        let config =
            config_from(&[(RATE_LIMIT_RPS.name, "0"), (RATE_LIMIT_BURST.name, "0")]).unwrap();
        assert_eq!(config.rate_limit, None);
    }

    #[test]
    fn fractional_rate_refills_slower_than_once_a_second() {
        let config =
            config_from(&[(RATE_LIMIT_RPS.name, "0.5"), (RATE_LIMIT_BURST.name, "3")]).unwrap();
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
            config_from(&[(ADMIN_LISTEN_ADDR.name, "0.0.0.0:9100")])
                .unwrap()
                .admin_listen_addr,
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(
            config_from(&[(ADMIN_LISTEN_ADDR.name, "off")])
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
        let config = config_from(&[(TENANTS_FILE.name, good.to_str().unwrap())]).unwrap();
        assert!(!config.tenants.anonymous.enabled);
        assert_eq!(config.tenants.tenants[0].keys, [hash]);
        // The anonymous tier keeps the environment's rate limit.
        assert_eq!(config.rate_limit, Config::default().rate_limit);

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[anonymous]\nenabled = maybe\n").unwrap();
        let error = config_from(&[(TENANTS_FILE.name, bad.to_str().unwrap())])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(TENANTS_FILE.name) && error.contains("line 2"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sandbox_url_must_be_plain_http_without_a_path() {
        let config = config_from(&[(SANDBOX_URL.name, "http://sandbox:8081/")]).unwrap();
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
            let error = config_from(&[(SANDBOX_URL.name, bad)]).unwrap_err();
            assert!(error.to_string().contains(SANDBOX_URL.name), "{error}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            (UPSTREAM_TIMEOUT_MS.name, "soon"),
            (UPSTREAM_TIMEOUT_MS.name, "0"),
            (MAX_BODY_BYTES.name, "-1"),
            (RATE_LIMIT_RPS.name, "-2"),
            (RATE_LIMIT_RPS.name, "NaN"),
            (RATE_LIMIT_BURST.name, "0"),
            (TRUSTED_PROXY_HOPS.name, "one"),
            (LOG_FORMAT.name, "xml"),
            (PORT.name, "70000"),
            (LISTEN_ADDR.name, "localhost"),
            (ADMIN_LISTEN_ADDR.name, "9090"),
            (TENANTS_FILE.name, "/no/such/tenants.toml"),
            (MCP_ALLOWED_HOSTS.name, "https://jsbox.example.com"),
        ] {
            let error = config_from(&[(variable, value)]).unwrap_err();
            assert!(error.to_string().contains(variable), "{error}");
        }
    }
}
