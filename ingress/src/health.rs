//! Health: the ingress's own `GET /healthz`. The client side, `ingress healthcheck` and the
//! wait for a child sandbox, is [`service_kit::health`], shared with the sandbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use contract::api::{Health, HealthStatus};

/// Whether the sandbox the ingress proxies to is up, as far as the ingress can tell: always,
/// for a sandbox it does not manage (`SANDBOX_URL`); for a child, while it runs and is healthy.
#[derive(Debug, Clone, Default)]
pub struct SandboxStatus(Option<Arc<AtomicBool>>);

impl SandboxStatus {
    /// The status of a child sandbox, up while `up` is true.
    pub fn following(up: Arc<AtomicBool>) -> Self {
        Self(Some(up))
    }

    /// False while a child sandbox is down or restarting.
    pub fn up(&self) -> bool {
        self.0.as_ref().is_none_or(|up| up.load(Ordering::Relaxed))
    }
}

/// Set once the shutdown signal has arrived; `/healthz` answers 503 from then on, while the
/// listener stays open for the shutdown notice (`SHUTDOWN_NOTICE_MS`).
#[derive(Debug, Clone, Default)]
pub struct ShuttingDown(Arc<AtomicBool>);

impl ShuttingDown {
    /// Marks the ingress as shutting down.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `GET /healthz`: the ingress is up. It does not ask a sandbox it does not manage, so an
/// outage of a separately deployed sandbox shows as 502 answers on `/api/*`, not as an ingress
/// restarted by its liveness probe; while a child sandbox it manages is down or restarting, it
/// answers 503, and so it does from the shutdown signal on.
pub async fn healthz(
    State((sandbox, shutting_down)): State<(SandboxStatus, ShuttingDown)>,
) -> (StatusCode, Json<Health>) {
    let (code, status) = if shutting_down.is_set() {
        (StatusCode::SERVICE_UNAVAILABLE, HealthStatus::ShuttingDown)
    } else if sandbox.up() {
        (StatusCode::OK, HealthStatus::Ok)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::SandboxRestarting,
        )
    };
    (code, Json(Health { status }))
}
