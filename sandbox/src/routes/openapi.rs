//! `GET /api/openapi.json`: the public API's OpenAPI document ([`contract::openapi`]), rendered
//! once at start-up with this sandbox's limits and example names. The ingress forwards the path
//! to anyone, without a key.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::IntoResponse,
};
use contract::openapi::{Limits, document};

use crate::{AppState, config::Config, examples::Examples};

/// The document as JSON, for `config` and `examples`.
pub fn render(config: &Config, examples: &Examples) -> Bytes {
    let limits = Limits {
        default_timeout_ms: config.default_timeout.as_millis() as u64,
        max_timeout_ms: config.max_timeout.as_millis() as u64,
        default_memory_limit_mb: config.default_memory_limit_mb as u64,
        max_memory_limit_mb: config.max_memory_limit_mb as u64,
        max_body_bytes: config.max_body_bytes,
        max_batch_items: config.max_batch_items,
        default_session_ttl_s: config.sessions.default_idle_timeout.as_secs(),
        max_session_ttl_s: config.sessions.max_idle_timeout.as_secs(),
        examples: examples.all().map(|example| example.name.clone()).collect(),
    };
    let json = serde_json::to_vec(&document(&limits)).expect("the document is JSON");
    Bytes::from(json)
}

pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi.clone(),
    )
}
