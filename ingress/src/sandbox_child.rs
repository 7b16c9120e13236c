//! The sandbox as a child process, for running everything locally with one command.
//!
//! When `SANDBOX_URL` is unset, the ingress starts the `sandbox` binary that sits beside its
//! own executable (cargo puts both in `target/<profile>/`), on a free loopback port given to it
//! as `LISTEN_ADDR`, waits until its `/healthz` answers, proxies to it, and stops it when the
//! ingress exits. The child inherits the environment, so the sandbox's own variables
//! (`MAX_CONCURRENCY`, `DEFAULT_TIMEOUT_MS`, `LOG_FORMAT`, ...) apply to it. It remains a
//! separate process with its own memory, as in production; where the two share a container
//! with a memory limit, the child is given what the ingress leaves of it as
//! `SANDBOX_MEMORY_MB` (unless that is set), so that they do not both count the whole.
//!
//! The child is supervised: if it ever exits while the ingress runs, it is started again on the
//! same address (after a pause that doubles up to [`MAX_RESTART_PAUSE`] while restarts keep
//! failing), and the ingress's own `/healthz` answers 503 until it is healthy again.
//!
//! `cargo run -p ingress` builds only the ingress binary. So when the ingress was started by
//! cargo (`CARGO` and `CARGO_MANIFEST_DIR` are set, which they never are in a container), it
//! first builds the sandbox binary with the same profile, which is a no-op when it is up to
//! date. It selects both packages (`-p sandbox -p ingress --bin sandbox`) so that dependencies
//! get the features the two need together, as in a workspace build and the tests' builds: the
//! sandbox alone would need its dependencies built a second time with fewer features.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::Uri;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The sandbox's variable for its memory where it shares a container.
const SANDBOX_MEMORY_MB: &str = "SANDBOX_MEMORY_MB";
use tokio_util::sync::CancellationToken;

use crate::health::SandboxStatus;

/// How long the child has to answer its first health check.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the child has to exit after SIGTERM before it is killed. The ingress has drained
/// its own requests by then, so the sandbox has nothing left worth waiting for.
const STOP_GRACE: Duration = Duration::from_millis(1500);
const HEALTH_POLL_EVERY: Duration = Duration::from_millis(100);
/// First pause before restarting a child that exited.
const MIN_RESTART_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between restarts that keep failing.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(5);
/// A child that ran this long before exiting is restarted after the shortest pause again.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Why the child sandbox could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The ingress could not tell where its own executable is.
    #[error("cannot locate the ingress executable")]
    OwnPath(#[source] std::io::Error),
    /// `cargo build -p sandbox` failed.
    #[error(
        "building the sandbox with cargo failed ({0}); set SANDBOX_URL to use a running sandbox"
    )]
    Build(String),
    /// No `sandbox` binary beside the ingress.
    #[error(
        "no sandbox binary at {0}: build it (cargo build --release -p sandbox) or set SANDBOX_URL"
    )]
    Missing(PathBuf),
    /// Spawning failed, or no free port could be found.
    #[error("could not start {path}")]
    Spawn {
        /// The binary that was started.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The child exited before it was healthy.
    #[error("the sandbox exited during startup ({0})")]
    Exited(std::process::ExitStatus),
    /// The child did not become healthy in time.
    #[error("the sandbox did not become healthy within {} s", STARTUP_TIMEOUT.as_secs())]
    Unhealthy,
}

/// A supervised child sandbox; [`SandboxChild::stop`] ends it.
#[derive(Debug)]
pub struct SandboxChild {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    stopping: CancellationToken,
    watcher: JoinHandle<()>,
}

impl SandboxChild {
    /// Starts the sandbox binary beside the current executable, with `memory_mb` as its
    /// `SANDBOX_MEMORY_MB` where given, waits until it is healthy, and keeps it running.
    pub async fn start(memory_mb: Option<u64>) -> Result<Self, ChildError> {
        let own_path = std::env::current_exe().map_err(ChildError::OwnPath)?;
        let binary = own_path.with_file_name(format!("sandbox{}", std::env::consts::EXE_SUFFIX));
        if launched_by_cargo() {
            build_with_cargo(&own_path).await?;
        }
        if !binary.is_file() {
            return Err(ChildError::Missing(binary));
        }
        let addr = free_loopback_addr().map_err(|source| ChildError::Spawn {
            path: binary.clone(),
            source,
        })?;
        let mut process = spawn(&binary, addr, memory_mb)?;
        wait_until_healthy(&mut process, addr).await?;
        tracing::info!(binary = %binary.display(), %addr, "started the sandbox as a child process");
        let up = Arc::new(AtomicBool::new(true));
        let stopping = CancellationToken::new();
        let watcher = tokio::spawn(watch(
            (binary, addr, memory_mb),
            process,
            up.clone(),
            stopping.clone(),
        ));
        Ok(Self {
            addr,
            up,
            stopping,
            watcher,
        })
    }

    /// The URL to proxy to; it stays the same across restarts.
    pub fn url(&self) -> Uri {
        format!("http://{}", self.addr)
            .parse()
            .expect("a socket address makes a valid URL")
    }

    /// The child's state, for `/healthz`.
    pub fn status(&self) -> SandboxStatus {
        SandboxStatus::following(self.up.clone())
    }

    /// Asks the child to stop (SIGTERM), kills it if it has not exited within the grace, and
    /// stops restarting it.
    pub async fn stop(self) {
        self.stopping.cancel();
        let _ = self.watcher.await;
    }
}

/// Keeps the child running until `stopping`, restarting it on `addr` whenever it exits.
async fn watch(
    (binary, addr, memory_mb): (PathBuf, SocketAddr, Option<u64>),
    mut process: Child,
    up: Arc<AtomicBool>,
    stopping: CancellationToken,
) {
    let mut pause = MIN_RESTART_PAUSE;
    let mut started = Instant::now();
    loop {
        tokio::select! {
            status = process.wait() => {
                up.store(false, Ordering::Relaxed);
                match status {
                    Ok(status) => tracing::error!(%status, "the sandbox child exited; restarting it"),
                    Err(error) => tracing::error!(%error, "lost the sandbox child; restarting it"),
                }
                if started.elapsed() >= STABLE_AFTER {
                    pause = MIN_RESTART_PAUSE;
                }
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stopping.cancelled() => return,
                    }
                    pause = (pause * 2).min(MAX_RESTART_PAUSE);
                    let restarted = match spawn(&binary, addr, memory_mb) {
                        Ok(mut child) => match wait_until_healthy(&mut child, addr).await {
                            Ok(()) => Ok(child),
                            Err(error) => {
                                let _ = child.kill().await;
                                Err(error)
                            }
                        },
                        Err(error) => Err(error),
                    };
                    match restarted {
                        Ok(child) => {
                            process = child;
                            started = Instant::now();
                            up.store(true, Ordering::Relaxed);
                            tracing::info!(%addr, "the sandbox child is back");
                            break;
                        }
                        Err(error) => tracing::error!(%error, "could not restart the sandbox child"),
                    }
                }
            }
            () = stopping.cancelled() => {
                terminate(process).await;
                return;
            }
        }
    }
}

/// Starts the sandbox binary listening on `addr`, with `memory_mb` as its `SANDBOX_MEMORY_MB`
/// unless the environment already sets one.
fn spawn(binary: &Path, addr: SocketAddr, memory_mb: Option<u64>) -> Result<Child, ChildError> {
    let mut command = Command::new(binary);
    if let Some(memory_mb) = memory_mb
        && std::env::var_os(SANDBOX_MEMORY_MB).is_none()
    {
        command.env(SANDBOX_MEMORY_MB, memory_mb.to_string());
    }
    command
        .env("LISTEN_ADDR", addr.to_string())
        // The ingress gives the notice: the child is stopped only once the ingress has closed
        // its own listener, when no client can reach it any more.
        .env(crate::config::SHUTDOWN_NOTICE_MS.name, "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    stop_with_parent(&mut command);
    command.spawn().map_err(|source| ChildError::Spawn {
        path: binary.to_owned(),
        source,
    })
}

/// Asks the child to stop (SIGTERM), and kills it if it has not exited within the grace.
async fn terminate(mut process: Child) {
    if let Some(pid) = process.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: kill(2) only sends a signal; `pid` is our own child, not yet reaped
        // (`id()` returns None once it is), so the pid cannot belong to another process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    match tokio::time::timeout(STOP_GRACE, process.wait()).await {
        Ok(Ok(status)) => tracing::info!(%status, "the sandbox child exited"),
        Ok(Err(error)) => tracing::warn!(%error, "could not wait for the sandbox child"),
        Err(_) => {
            tracing::warn!("the sandbox child ignored SIGTERM; killing it");
            if let Err(error) = process.kill().await {
                tracing::warn!(%error, "could not kill the sandbox child");
            }
        }
    }
}

/// Waits until the child answers 200 on `/healthz`.
async fn wait_until_healthy(process: &mut Child, addr: SocketAddr) -> Result<(), ChildError> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            return Err(ChildError::Exited(status));
        }
        if service_kit::health::probe(addr, HEALTH_POLL_EVERY * 5).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ChildError::Unhealthy);
        }
        tokio::time::sleep(HEALTH_POLL_EVERY).await;
    }
}

fn launched_by_cargo() -> bool {
    std::env::var_os("CARGO").is_some() && std::env::var_os("CARGO_MANIFEST_DIR").is_some()
}

/// Builds the sandbox into the directory the ingress runs from: `target/debug` is cargo's
/// `dev` profile, `target/release` is `--release`, `target/<name>` is `--profile <name>`.
async fn build_with_cargo(own_path: &Path) -> Result<(), ChildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_default();
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let profile = own_path
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or("debug");
    let mut command = Command::new(cargo);
    command
        .current_dir(manifest_dir)
        .args([
            "build",
            "--package",
            "sandbox",
            "--package",
            "ingress",
            "--bin",
            "sandbox",
        ])
        .stdin(Stdio::null());
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    tracing::info!(
        profile,
        "started by cargo: building the sandbox binary first"
    );
    let status = command
        .status()
        .await
        .map_err(|error| ChildError::Build(error.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(ChildError::Build(status.to_string()))
    }
}

/// A loopback address with a port that was free a moment ago. Another process could take the
/// port before the child binds it; the child would then exit, and startup fails loudly.
fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    probe.local_addr()
}

/// Has the kernel send the child SIGTERM if the ingress dies without stopping it (a crash or
/// SIGKILL), so no orphaned sandbox keeps the port.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}
