//! HTTP routes: they parse requests, hand scripts to the worker pool and map outcomes to
//! responses. No JavaScript is touched here.

mod batch;
mod examples;
mod execute;
mod health;
mod json;
mod metrics;
pub(crate) mod openapi;
mod sessions;

use axum::{
    Router,
    routing::{get, post},
};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use service_kit::telemetry::traces;

use crate::{AppState, error::ApiError};

/// The sandbox's routes: `POST /api/execute`, `POST /api/batch`, `/api/sessions` (create, run
/// in, read, end), `GET /api/examples`, `GET /api/openapi.json`,
/// `GET /healthz`, `GET /metrics`.
/// Each request runs in a server span, under the ingress's proxy hop, only when traces are
/// exported: otherwise there is no such layer at all.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/execute", post(execute::execute))
        .route("/api/batch", post(batch::batch))
        .route("/api/sessions", post(sessions::create))
        .route(
            "/api/sessions/{id}",
            get(sessions::state).delete(sessions::end),
        )
        .route("/api/sessions/{id}/execute", post(sessions::execute))
        .route("/api/examples", get(examples::list))
        .route(contract::openapi::DOCUMENT_PATH, get(openapi::serve))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let routes = if traces::enabled() {
        routes.layer(axum::middleware::from_fn(traces::trace_requests))
    } else {
        routes
    };
    routes
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
