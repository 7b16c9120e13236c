//! Public front door of the JavaScript execution service.
//!
//! The ingress is the only process users reach. It serves the demo page, answers its own
//! `/healthz`, forwards `/api/*` (and nothing else) to the private sandbox, and serves AI agents
//! the same executions as MCP tools at `/mcp`, with API keys, per-tenant rate limiting, a body
//! limit, request ids and request logs in front; the API's
//! OpenAPI document (`/api/openapi.json`) is forwarded to anyone, without a key. Its metrics
//! are served on a separate admin listener.
//!
//! [`router`] reads top-down: a router per area (the API, the page, the routes open to anyone)
//! says what its requests pass through, and the layers every answer passes through close it.
//!
//! - [`config`]: every environment variable and its default.
//! - [`tenants`]: the tenants file: tenants, key hashes, limits, the anonymous tier.
//! - [`auth`]: identification: which tenant or anonymous client a request is from, 401 when
//!   it must present a key and does not, and the charge to its tier's rate limit.
//! - [`rate_limit`]: per-tenant (per-client for the anonymous tier) token buckets, and the
//!   client key behind Cloud Run's proxies.
//! - [`sources`]: scripts loaded from a `url` (GCS, S3, HTTPS) within each tier's allow-list,
//!   sent to the sandbox as `code`.
//! - [`mcp`]: the MCP server at `/mcp` (tools that run scripts as `/api/execute` does), with
//!   the same keys and rate limits, and its `Host` and `Origin` checks.
//! - [`proxy`]: forwarding to the sandbox with the caller's headers; 502/504 when it is down
//!   or slow.
//! - [`refusals`]: clients the sandbox just refused, answered 503 here until their
//!   `Retry-After`, so a client retrying at once costs little.
//! - [`body`]: request bodies streamed to the sandbox, or buffered (within the process's
//!   memory budget) only where the ingress must rewrite them.
//! - [`metrics`]: the Prometheus metrics and the admin listener's routes.
//! - [`assets`]: the embedded demo page, its caching and security headers.
//! - [`request_id`], [`telemetry`]: correlation ids and logs.
//! - [`sandbox_child`]: the sandbox as a child process when `SANDBOX_URL` is unset.
//! - [`health`], [`error`]: `/healthz` and the JSON error answers.
//!
//! Modules depend one way: `error`, `health` and `request_id` on nothing here, the others on
//! them and on each other without a cycle, up to `proxy`, on which only the router depends.

pub mod assets;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod proxy;
pub mod rate_limit;
pub mod refusals;
pub mod request_id;
pub mod sandbox_child;
pub mod sources;
pub mod telemetry;
pub mod tenants;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::handler::Handler;
use axum::http::Uri;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use auth::Identification;
pub use config::Config;
use error::ApiError;
use health::{SandboxStatus, ShuttingDown};
use metrics::Metrics;
use proxy::Proxy;
use sandbox_child::SandboxChild;

/// After a shutdown signal, requests still in flight get this long to finish. Cloud Run kills
/// the instance 10 s after SIGTERM; the rest is for stopping a child sandbox.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(8);

/// The metrics of an ingress serving `config`'s tenants, for [`router`] and
/// [`metrics::admin_router`].
pub fn metrics_for(config: &Config) -> Arc<Metrics> {
    let tenant_ids = config
        .tenants
        .tenants
        .iter()
        .map(|tenant| tenant.id.as_str());
    Arc::new(Metrics::new(
        std::iter::once(tenants::ANONYMOUS).chain(tenant_ids),
    ))
}

/// The ingress's public routes and middleware, proxying to the sandbox at `sandbox_url` (whose
/// state `/healthz` reports when the ingress manages it, as it reports `shutting_down`) and
/// counting in `metrics`.
///
/// Every answer passes through the layers at the bottom, outermost first; each area's router
/// says what its routes pass through before that.
///
/// # Panics
/// Outside a Tokio runtime when the anonymous tier is rate-limited (see
/// [`Identification::new`]).
pub fn router(
    config: &Config,
    sandbox_url: &Uri,
    sandbox: SandboxStatus,
    shutting_down: ShuttingDown,
    metrics: Arc<Metrics>,
) -> Router {
    let budget = service_kit::MemoryBudget::new(config.memory.buffer_bytes());
    let proxy = Arc::new(Proxy::new(
        config,
        sandbox_url,
        metrics.clone(),
        budget.clone(),
    ));
    let identification = Identification::new(config, metrics.clone());
    let [csp, nosniff, referrer, frame] = assets::security_headers();

    Router::new()
        .merge(api(proxy.clone(), identification.clone()))
        .merge(mcp::router(
            config,
            proxy.clone(),
            identification.clone(),
            budget,
        ))
        .merge(page(identification.clone()))
        .merge(open(proxy, &identification, sandbox, shutting_down))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_request(request_id::drop_unusable))
                .layer(SetRequestIdLayer::new(
                    request_id::X_REQUEST_ID,
                    MakeRequestUuid,
                ))
                // The request's client key is identification's, kept for the steps after.
                .layer(axum::middleware::from_fn_with_state(
                    identification.clone(),
                    telemetry::log_request,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    metrics,
                    metrics::count_answers,
                ))
                .layer(PropagateRequestIdLayer::new(request_id::X_REQUEST_ID))
                .layer(SetResponseHeaderLayer::overriding(csp.0, csp.1))
                .layer(SetResponseHeaderLayer::overriding(nosniff.0, nosniff.1))
                .layer(SetResponseHeaderLayer::overriding(referrer.0, referrer.1))
                .layer(SetResponseHeaderLayer::overriding(frame.0, frame.1)),
        )
}

/// `/api/*`: the caller's key (or the anonymous tier), then its rate limit, then the sandbox.
/// (`/mcp`, [`mcp::router`], takes the same steps after its Host and Origin check.)
/// [`proxy::forward`] takes the caller as [`auth::Admitted`], which only those two steps, in
/// that order, produce. Every path under `/api/` asks for the key, `/api/` itself included.
fn api(proxy: Arc<Proxy>, identification: Identification) -> Router {
    Router::new()
        .route("/api/", any(proxy::forward))
        .route("/api/{*path}", any(proxy::forward))
        .with_state(proxy::Api {
            proxy,
            identification,
        })
}

/// The demo page, and the 404 of every path no route claims: the anonymous tier, charged per
/// client, then the embedded files, compressed.
fn page(identification: Identification) -> Router {
    Router::new()
        .fallback(assets::serve.layer(CompressionLayer::new()))
        .layer(axum::middleware::from_fn_with_state(
            identification,
            auth::admit_visitor,
        ))
}

/// Open to anyone, with no key and no rate limit: the health probe, which must always get
/// through, and the API's description, which is public.
fn open(
    proxy: Arc<Proxy>,
    identification: &Identification,
    sandbox: SandboxStatus,
    shutting_down: ShuttingDown,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(health::healthz).with_state((sandbox, shutting_down)),
        )
        .route(
            contract::openapi::DOCUMENT_PATH,
            get(proxy::forward_document).with_state((proxy, identification.nobody())),
        )
}

/// Serves on `listener` until `shutdown` completes, then drains for at most
/// [`DRAIN_DEADLINE`]; serves the metrics on `config.admin_listen_addr` meanwhile. When
/// `config.sandbox_url` is `None`, starts the sandbox binary as a child first (see
/// [`sandbox_child`]) and stops it on the way out.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admin_listener = match config.admin_listen_addr {
        None => None,
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                // Metrics are for the operator; losing them must not take the service down.
                tracing::error!(%error, %addr, "cannot listen for the admin listener: metrics are not served");
                None
            }
        },
    };
    run_with_admin(listener, admin_listener, config, shutdown).await
}

/// [`run`] with the admin listener already bound (tests bind port 0), or none.
pub async fn run_with_admin(
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (sandbox_url, status, child) = match &config.sandbox_url {
        Some(url) => (url.clone(), SandboxStatus::default(), None),
        None => {
            let memory_mb = config.memory.child_sandbox_bytes.map(|bytes| bytes >> 20);
            let child = SandboxChild::start(memory_mb)
                .await
                .map_err(std::io::Error::other)?;
            (child.url(), child.status(), Some(child))
        }
    };
    let metrics = metrics_for(&config);
    let shutting_down = ShuttingDown::default();
    let app = router(
        &config,
        &sandbox_url,
        status,
        shutting_down.clone(),
        metrics.clone(),
    );
    tracing::info!(addr = %listener.local_addr()?, sandbox = %sandbox_url, "ingress listening");
    tracing::info!(
        memory_bytes = config.memory.limit_bytes,
        from = ?config.memory.source,
        buffer_bytes = config.memory.buffer_bytes(),
        "memory budget for request bodies and loaded scripts"
    );
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }

    let stopping = CancellationToken::new();
    if let Some(admin_listener) = admin_listener {
        tracing::info!(addr = %admin_listener.local_addr()?, "metrics served on the admin listener");
        let admin = axum::serve(admin_listener, metrics::admin_router(metrics))
            .with_graceful_shutdown(stopping.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(error) = admin.await {
                tracing::error!(%error, "the admin listener failed");
            }
        });
    }
    let server = service_kit::serve(listener, app, config.connections.clone(), {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests in flight");
            shutting_down.begin();
            stopping.cancel();
        }
    });
    let drain_deadline = async {
        stopping.cancelled().await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    let served = tokio::select! {
        served = server => served,
        () = drain_deadline => {
            tracing::warn!("drain deadline passed: dropping the requests still in flight");
            Ok(())
        }
    };

    if let Some(child) = child {
        child.stop().await;
    }
    served
}
