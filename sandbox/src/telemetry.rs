//! The trace id taken from incoming requests for log correlation (logging set-up is
//! [`service_kit::telemetry`], shared with the ingress).

use axum::http::HeaderMap;
use contract::ids;

/// The trace id of a request (see [`contract::ids::trace_id`]).
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    ids::trace_id(
        header(ids::TRACEPARENT_HEADER),
        header(ids::CLOUD_TRACE_HEADER),
    )
}
