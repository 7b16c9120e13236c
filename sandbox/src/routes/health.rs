//! `GET /healthz`: 200 while the service can take work; 503 while it shuts down, or while no
//! worker process exists and none can be started (so the platform restarts it). Scripts cannot
//! make it fail: a worker a script crashes or runs past its deadline is replaced.

use std::sync::atomic::Ordering;

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::AppState;

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutting_down.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    if !state.pool.healthy() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "workers": state.pool.alive() })),
        );
    }
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}
