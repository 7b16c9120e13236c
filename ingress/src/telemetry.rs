//! Logging: the subscriber (`LOG_FORMAT=text` for terminals, `json` for Cloud Logging via
//! tracing-stackdriver) and the one log line per request.
//!
//! The request line is written by a small middleware rather than tower-http's `TraceLayer`
//! because Cloud Logging's `httpRequest` object wants the request's method and path together
//! with the response's status and latency in a single event. Each request also runs in a span
//! with its request id, client key, trace id and tenant id, so every line logged while
//! handling it (a refused sandbox connection, say) can be found by those. API keys are never
//! logged.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;
use crate::rate_limit::client_key;
use crate::request_id::X_REQUEST_ID;

/// Installs the global subscriber. `RUST_LOG` refines the level (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).init(),
        LogFormat::Json => registry.with(tracing_stackdriver::layer()).init(),
    }
}

/// State of [`log_request`]: how to find the client key (see [`crate::Config::trusted_proxy_hops`]).
#[derive(Debug, Clone, Copy)]
pub struct TrustedProxyHops(pub usize);

/// Middleware: runs the request inside its span and logs one line when the answer is ready.
/// The query string is left out of the log: it is the client's data, not ours.
pub async fn log_request(
    State(TrustedProxyHops(hops)): State<TrustedProxyHops>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = client_key(&request, hops).map(|ip: IpAddr| ip.to_string());
    let request_id = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let trace_id = trace_id(request.headers()).map(str::to_owned);
    // `tenant` is filled in by `auth::identify` once the caller is known.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_deref(),
        client_key = client.as_deref(),
        trace_id = trace_id.as_deref(),
        tenant = tracing::field::Empty,
    );

    let response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    let latency = format!("{:.6}s", started.elapsed().as_secs_f64());
    let _entered = span.enter();
    macro_rules! request_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                http_request.request_method = %method,
                http_request.request_url = path,
                http_request.status = status.as_u16(),
                http_request.latency = latency,
                "request finished"
            )
        };
    }
    if status.is_server_error() {
        request_line!(tracing::Level::WARN);
    } else {
        request_line!(tracing::Level::INFO);
    }
    response
}

/// The trace id from `traceparent` (W3C) or `X-Cloud-Trace-Context` (Google), if well formed.
fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let from_traceparent = || {
        let value = headers.get("traceparent")?.to_str().ok()?;
        value.split('-').nth(1)
    };
    let from_cloud_trace = || {
        let value = headers.get("x-cloud-trace-context")?.to_str().ok()?;
        value.split('/').next()
    };
    from_traceparent()
        .filter(|id| is_trace_id(id))
        .or_else(|| from_cloud_trace().filter(|id| is_trace_id(id)))
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn trace_id_comes_from_traceparent_or_cloud_trace_context() {
        let w3c = headers(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )]);
        assert_eq!(trace_id(&w3c), Some("0af7651916cd43dd8448eb211c80319c"));

        let google = headers(&[(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/1;o=1",
        )]);
        assert_eq!(trace_id(&google), Some("105445aa7843bc8bf206b12000100000"));
    }

    #[test]
    fn malformed_trace_headers_are_ignored() {
        let bad = headers(&[
            ("traceparent", "00-not-a-trace"),
            ("x-cloud-trace-context", "x/1"),
        ]);
        assert_eq!(trace_id(&bad), None);
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }
}
