//! `GET /metrics`: the Prometheus exposition (see [`crate::metrics`]). It is on the sandbox's
//! own port, which only the ingress reaches; the ingress forwards `/api/*` and nothing else.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};

use crate::{AppState, metrics::CONTENT_TYPE};

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .encode(state.scheduler.running(), state.pool.alive());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
