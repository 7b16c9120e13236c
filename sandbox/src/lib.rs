//! The sandbox: a private HTTP service that runs untrusted JavaScript, each execution in a
//! fresh QuickJS runtime inside a supervised worker process, under time, memory, stack and
//! output limits.
//!
//! `run` serves the API on a listener until `shutdown` resolves; `router` builds the routes for
//! an [`AppState`]. Requests belong to tenants ([`tenant`]), which take turns for the workers
//! ([`scheduler`]); the [`supervisor`] runs each on a worker process and enforces every limit
//! of it, and runs the asynchronous [`host`] functions its scripts call; [`sessions`] keep a
//! runtime, on a worker of their own, across executions; [`metrics`] counts
//! what happens. The same binary is the worker (`sandbox worker`, the `worker` crate); [`main`]
//! is its command line, which an operator's own binary calls with more host functions.

mod cli;
pub mod config;
mod error;
mod examples;
pub mod host;
pub mod metrics;
mod resources;
mod routes;
pub mod scheduler;
pub mod sessions;
pub mod supervisor;
pub mod tenant;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

pub use engine::HostFunctions;
use tokio::net::TcpListener;

pub use crate::{cli::main, config::Config, routes::router};
use crate::{examples::Examples, metrics::Metrics, scheduler::Scheduler, supervisor::WorkerPool};

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    config: Arc<Config>,
    pool: WorkerPool,
    scheduler: Arc<Scheduler>,
    examples: Arc<Examples>,
    /// The host functions scripts may be offered.
    host: HostFunctions,
    /// The OpenAPI document, rendered once.
    openapi: axum::body::Bytes,
    metrics: Arc<Metrics>,
    /// What requests' bodies, queued scripts and answers are charged to ([`config::MemoryPlan`]).
    memory: Arc<service_kit::MemoryBudget>,
    /// How the sandbox's memory is shared out, for the metrics.
    memory_plan: Arc<config::MemoryPlan>,
    /// The open sessions.
    sessions: Arc<sessions::Sessions>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    /// Starts the worker processes for `config` and waits until they are ready.
    /// Fails, naming the variables, when the workers, the supervisor and one request cannot
    /// fit in the sandbox's memory.
    pub async fn new(config: Config, host: HostFunctions) -> std::io::Result<Self> {
        let plan = config
            .memory_plan()
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        const MIB: u64 = 1024 * 1024;
        tracing::info!(
            total_mib = plan.total / MIB,
            source = plan.source.as_str(),
            workers = config.max_concurrency,
            worker_address_space_mib = plan.worker_address_space / MIB,
            supervisor_reserve_mib = plan.supervisor_reserve / MIB,
            request_budget_mib = plan.request_budget / MIB,
            "memory plan"
        );
        let memory = service_kit::MemoryBudget::new(plan.request_budget as usize);
        let metrics = Arc::new(Metrics::new());
        let pool = WorkerPool::start(config.pool_settings(), host.clone(), metrics.clone()).await?;
        let scheduler = Scheduler::new(
            config.max_concurrency,
            config.total_queue_capacity(),
            config.queue_max_bytes,
            config.queue_timeout,
        );
        let sessions =
            sessions::Sessions::new(config.sessions.clone(), memory.clone(), metrics.clone());
        let examples = Examples::load();
        let openapi = routes::openapi::render(&config, &examples);
        Ok(Self {
            config: Arc::new(config),
            pool,
            scheduler,
            examples: Arc::new(examples),
            host,
            openapi,
            metrics,
            memory,
            memory_plan: Arc::new(plan),
            sessions,
            shutting_down: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// Serves the sandbox with the standard host functions ([`host::standard`]) on `listener`
/// until `shutdown` resolves; see [`run_with`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let host = host::standard(&config);
    run_with(listener, config, host, shutdown).await
}

/// Serves the sandbox on `listener` with the host functions `host` until `shutdown` resolves,
/// then stops taking requests, lets running executions finish (cancelling them after
/// `SHUTDOWN_DRAIN_MS`) and returns. The workers must be started from a binary whose
/// registry is the same (see [`main`]).
pub async fn run_with(
    listener: TcpListener,
    config: Config,
    host: HostFunctions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let drain = config.shutdown_drain;
    let state = AppState::new(config, host).await?;
    let app = router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, "sandbox listening");
    let limits = state.config.connections.clone();
    service_kit::serve(listener, app, limits, async move {
        shutdown.await;
        tracing::info!("shutting down: draining running executions");
        state.shutting_down.store(true, Ordering::Relaxed);
        let pool = state.pool.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            pool.cancel_all();
        });
    })
    .await
}
