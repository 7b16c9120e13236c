//! The service under test: a sandbox and an ingress in front of it, started from the binaries
//! built beside this one (`target/<profile>/`), or an ingress someone else runs.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::error::Error;

/// The ingress's memory (`INGRESS_MEMORY_MB`) when loadtest starts it and the caller's
/// environment names none: the limit the Compose file gives its container.
const INGRESS_MEMORY_MB: u64 = 256;

/// How long each binary may take from its start to answer 200 on `/healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const HEALTH_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Variables of the caller's environment the started binaries must not inherit: loadtest sets
/// them itself, or leaves them unset on purpose.
const OWN_VARIABLES: [&str; 7] = [
    "LISTEN_ADDR",
    "PORT",
    "SANDBOX_URL",
    "ADMIN_LISTEN_ADDR",
    "RATE_LIMIT_RPS",
    "RATE_LIMIT_BURST",
    "TENANTS_FILE",
];

/// What the load is sent to, and where its resources can be read.
pub struct Target {
    /// The ingress's base URL, without a trailing slash.
    pub base_url: String,
    /// The sandbox's `/metrics`, when known.
    pub sandbox_metrics_url: Option<String>,
    /// The ingress process, when loadtest started it (its memory and descriptors are read from
    /// `/proc`).
    pub ingress_pid: Option<u32>,
    /// The ingress's memory budget in bytes, when loadtest started it.
    pub ingress_memory_budget: Option<u64>,
    own_stack: Option<OwnStack>,
}

struct OwnStack {
    sandbox: Child,
    ingress: Child,
}

impl Target {
    /// An ingress already running at `base_url`.
    pub fn external(base_url: &str, sandbox_metrics_url: Option<&str>) -> Target {
        Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            sandbox_metrics_url: sandbox_metrics_url.map(str::to_owned),
            ingress_pid: None,
            ingress_memory_budget: None,
            own_stack: None,
        }
    }

    /// Starts a sandbox on a free loopback port and an ingress proxying to it, without rate
    /// limits (tenants get theirs from `tenants_file`) or admin listener, their output going to
    /// `sandbox.log` and `ingress.log` in `log_dir`; returns once both are healthy. Without a
    /// tenants file every request is anonymous, as in a deployment without keys, which gives
    /// the anonymous tier every worker (`ANONYMOUS_MAX_WORKERS` = `MAX_CONCURRENCY`) unless
    /// the caller's environment says otherwise.
    pub async fn start(tenants_file: Option<&Path>, log_dir: &Path) -> Result<Target, Error> {
        let sandbox_url = format!("http://{}", free_loopback_port()?);
        let mut sandbox_env = Vec::new();
        if tenants_file.is_none() && std::env::var_os("ANONYMOUS_MAX_WORKERS").is_none() {
            let workers = std::env::var("MAX_CONCURRENCY").unwrap_or_else(|_| {
                std::thread::available_parallelism()
                    .map_or(2, |cpus| cpus.get())
                    .to_string()
            });
            sandbox_env.push(("ANONYMOUS_MAX_WORKERS", workers));
        }
        let sandbox = start_binary("sandbox", &sandbox_url, &sandbox_env, log_dir).await?;

        let ingress_url = format!("http://{}", free_loopback_port()?);
        let mut ingress_env = vec![
            ("SANDBOX_URL", sandbox_url.clone()),
            ("ADMIN_LISTEN_ADDR", "off".to_owned()),
            ("RATE_LIMIT_RPS", "0".to_owned()),
        ];
        if let Some(tenants_file) = tenants_file {
            ingress_env.push(("TENANTS_FILE", tenants_file.display().to_string()));
        }
        let ingress_memory_mb = std::env::var("INGRESS_MEMORY_MB")
            .ok()
            .and_then(|mb| mb.trim().parse().ok())
            .unwrap_or(INGRESS_MEMORY_MB);
        ingress_env.push(("INGRESS_MEMORY_MB", ingress_memory_mb.to_string()));
        let ingress = start_binary("ingress", &ingress_url, &ingress_env, log_dir).await?;

        Ok(Target {
            base_url: ingress_url,
            sandbox_metrics_url: Some(format!("{sandbox_url}/metrics")),
            ingress_pid: ingress.id(),
            ingress_memory_budget: Some(ingress_memory_mb * 1024 * 1024),
            own_stack: Some(OwnStack { sandbox, ingress }),
        })
    }

    /// Stops the binaries loadtest started (the sandbox's workers die with it); nothing for an
    /// external target.
    pub async fn stop(self) {
        if let Some(mut stack) = self.own_stack {
            // Errors mean the process is already gone, which is what stopping wants.
            let _ = stack.ingress.kill().await;
            let _ = stack.sandbox.kill().await;
        }
    }
}

/// Starts the workspace binary `name` listening at `url` with the extra `env`, and waits for
/// its `/healthz` to answer 200.
async fn start_binary(
    name: &'static str,
    url: &str,
    env: &[(&str, String)],
    log_dir: &Path,
) -> Result<Child, Error> {
    let path = binary_path(name)?;
    let log_path = log_dir.join(format!("{name}.log"));
    let log =
        File::create(&log_path).map_err(Error::io(format!("create {}", log_path.display())))?;
    let log_for_stderr = log
        .try_clone()
        .map_err(Error::io(format!("share {}", log_path.display())))?;
    let mut command = Command::new(&path);
    for variable in OWN_VARIABLES {
        command.env_remove(variable);
    }
    let mut child = command
        .env("LISTEN_ADDR", url.trim_start_matches("http://"))
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io(format!("start {}", path.display())))?;

    let unhealthy = |reason: String| Error::Unhealthy {
        name,
        reason,
        log: log_path.clone(),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(unhealthy(format!("it exited ({status})")));
        }
        let health = client
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if health.is_ok_and(|answer| answer.status() == reqwest::StatusCode::OK) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            return Err(unhealthy(format!(
                "no 200 on /healthz within {STARTUP_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(HEALTH_POLL_INTERVAL).await;
    }
}

/// The workspace binary `name` beside the running executable (`target/<profile>/loadtest` →
/// `target/<profile>/<name>`), as the end-to-end tests find theirs.
fn binary_path(name: &'static str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(Error::io("locate the loadtest executable"))?;
    let path = exe
        .with_file_name(name)
        .with_extension(std::env::consts::EXE_EXTENSION);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary { name, path })
    }
}

/// A loopback address whose port was free a moment ago; another process could take it before
/// the binary binds it, which is unlikely enough on one machine.
fn free_loopback_port() -> Result<SocketAddr, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(Error::io("find a free loopback port"))
}
