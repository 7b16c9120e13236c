//! Public front door of the JavaScript execution service.
//!
//! The ingress is the only process users reach. It serves the demo page, answers its own
//! `/healthz`, and forwards `/api/*` (and nothing else) to the private sandbox, with a body
//! limit, per-client rate limiting, request ids and request logs in front.
//!
//! - [`config`]: every environment variable and its default.
//! - [`proxy`]: forwarding to the sandbox; 502/504 when it is down or slow.
//! - [`rate_limit`]: per-client limits and the client key behind Cloud Run's proxies.
//! - [`assets`]: the embedded demo page, its caching and security headers.
//! - [`request_id`], [`telemetry`]: correlation ids and logs.
//! - [`sandbox_child`]: the sandbox as a child process when `SANDBOX_URL` is unset.
//! - [`health`], [`error`]: `/healthz` and the JSON error answers.

pub mod assets;
pub mod config;
pub mod error;
pub mod health;
pub mod proxy;
pub mod rate_limit;
pub mod request_id;
pub mod sandbox_child;
pub mod telemetry;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::handler::Handler;
use axum::http::Uri;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::Config;
use error::ApiError;
use proxy::Proxy;
use sandbox_child::SandboxChild;
use telemetry::TrustedProxyHops;

/// After a shutdown signal, requests still in flight get this long to finish. Cloud Run kills
/// the instance 10 s after SIGTERM; the rest is for stopping a child sandbox.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(8);

/// The ingress's routes and middleware, proxying to the sandbox at `sandbox_url`.
///
/// # Panics
/// Outside a Tokio runtime when rate limiting is on: the sweeper of idle clients' buckets is
/// spawned here, and ends by itself once the router is dropped.
pub fn router(config: &Config, sandbox_url: &Uri) -> Router {
    let proxy = Arc::new(Proxy::new(
        sandbox_url,
        config.upstream_timeout,
        config.max_body_bytes,
    ));
    let mut public = Router::new()
        .route("/api/{*path}", any(proxy::forward).with_state(proxy))
        .fallback(assets::serve.layer(CompressionLayer::new()));
    if let Some(limit) = &config.rate_limit {
        let (layer, limiter) = rate_limit::layer(limit, config.trusted_proxy_hops);
        tokio::spawn(rate_limit::forget_idle_clients(Arc::downgrade(&limiter)));
        public = public.layer(layer);
    }

    let [csp, nosniff, referrer, frame] = assets::security_headers();
    let hops = TrustedProxyHops(config.trusted_proxy_hops);
    public
        // Probes must never be rate-limited, so the health route is added after that layer.
        .route("/healthz", get(health::healthz))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_request(request_id::drop_unusable))
                .layer(SetRequestIdLayer::new(
                    request_id::X_REQUEST_ID,
                    MakeRequestUuid,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    hops,
                    telemetry::log_request,
                ))
                .layer(PropagateRequestIdLayer::new(request_id::X_REQUEST_ID))
                .layer(SetResponseHeaderLayer::overriding(csp.0, csp.1))
                .layer(SetResponseHeaderLayer::overriding(nosniff.0, nosniff.1))
                .layer(SetResponseHeaderLayer::overriding(referrer.0, referrer.1))
                .layer(SetResponseHeaderLayer::overriding(frame.0, frame.1)),
        )
}

/// Serves on `listener` until `shutdown` completes, then drains for at most
/// [`DRAIN_DEADLINE`]. When `config.sandbox_url` is `None`, starts the sandbox binary as a
/// child first (see [`sandbox_child`]) and stops it on the way out.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (sandbox_url, child) = match &config.sandbox_url {
        Some(url) => (url.clone(), None),
        None => {
            let child = SandboxChild::start().await.map_err(std::io::Error::other)?;
            (child.url(), Some(child))
        }
    };
    let app = router(&config, &sandbox_url);
    tracing::info!(addr = %listener.local_addr()?, sandbox = %sandbox_url, "ingress listening");

    let stopping = CancellationToken::new();
    let listener = listener.tap_io(|tcp| {
        // Small request/answer exchanges: Nagle's algorithm would only add latency.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests in flight");
            stopping.cancel();
        }
    });
    let drain_deadline = async {
        stopping.cancelled().await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    let served = tokio::select! {
        served = server.into_future() => served,
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
