//! Logging set-up, and the trace id taken from incoming requests for log correlation.

use axum::http::HeaderMap;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Installs the global subscriber: JSON for Cloud Logging or human-readable text. `RUST_LOG`
/// overrides the default `info` level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(tracing_stackdriver::layer()).try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    };
}

/// The trace id of a request, from W3C `traceparent` or Google's `X-Cloud-Trace-Context`.
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let traceparent = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    if let Some(trace) = traceparent.and_then(|value| value.split('-').nth(1))
        && trace.len() == 32
        && trace.bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return Some(trace.to_ascii_lowercase());
    }
    let cloud = headers
        .get("x-cloud-trace-context")
        .and_then(|value| value.to_str().ok())?;
    let trace = cloud.split('/').next()?;
    (!trace.is_empty() && trace.len() <= 32 && trace.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| trace.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_comes_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trace_id(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1".parse().unwrap(),
        );
        assert_eq!(
            trace_id(&headers).as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
        headers.insert("x-cloud-trace-context", "not-a-trace".parse().unwrap());
        assert_eq!(trace_id(&headers), None);
    }
}
