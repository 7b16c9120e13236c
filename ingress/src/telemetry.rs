//! Logging: the one log line per request, for every request with an error status and for the
//! `REQUEST_LOG_SAMPLE` share of the others (the subscriber, `LOG_FORMAT`, and the sample are
//! set up by [`service_kit::telemetry`], shared with the sandbox).
//!
//! The request line is written by a small middleware rather than tower-http's `TraceLayer`
//! because Cloud Logging's `httpRequest` object wants the request's method and path together
//! with the response's status and latency in a single event. Each request also runs in a span
//! with its request id, client key, trace id and tenant id, so every line logged while
//! handling it (a refused sandbox connection, say) can be found by those. API keys are never
//! logged. When traces are exported that span is the request's server span, continuing the
//! trace of the client's `traceparent` or `X-Cloud-Trace-Context`
//! ([`service_kit::telemetry::traces`]).

use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use service_kit::telemetry::{trace_id, traces};
use tracing::Instrument;

use crate::metrics::CLIENT_CLOSED_REQUEST;
use crate::rate_limit::ClientKey;
use crate::request_id::X_REQUEST_ID;

/// Middleware: runs the request inside its span and logs one line when the answer is ready.
/// The client key comes from identification ([`ClientKey`]), which keeps it for the steps
/// after. The query string is left out of the log: it is the client's data, not ours.
pub async fn log_request(ClientKey(client): ClientKey, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = client.map(|ip| ip.to_string());
    let request_id = request
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let trace_id = trace_id(request.headers());
    // `tenant` is filled in by identification (`auth`) once the caller is known; the `otel.*`,
    // `http.*` and `url.*` fields only when traces are exported.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_deref(),
        client_key = client.as_deref(),
        trace_id = trace_id.as_deref(),
        tenant = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        url.path = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if traces::enabled() {
        span.record("otel.name", traces::server_span_name(&method, &path));
        span.record("otel.kind", "server");
        span.record("http.request.method", method.as_str());
        span.record("url.path", path.as_str());
        traces::continue_trace(&span, request.headers());
    }

    let sampled = service_kit::telemetry::logs_success(request_id.as_deref());
    let line = RequestLine {
        method,
        path,
        started,
        span: span.clone(),
        sampled,
    };
    // A request dropped before its answer (the client left) still gets its line, with the
    // status counted for it (see `metrics::CLIENT_CLOSED_REQUEST`).
    let unanswered = scopeguard::guard(line, |line| line.write(CLIENT_CLOSED_REQUEST));
    let response = next.run(request).instrument(span).await;
    scopeguard::ScopeGuard::into_inner(unanswered).write(response.status().as_u16());
    response
}

/// What the request line says about the request, until its status is known.
struct RequestLine {
    method: Method,
    path: String,
    started: Instant,
    span: tracing::Span,
    /// Whether its line is written if it succeeds (`REQUEST_LOG_SAMPLE`).
    sampled: bool,
}

impl RequestLine {
    fn write(self, status: u16) {
        traces::record_status(&self.span, status);
        if status < 400 && !self.sampled {
            return;
        }
        let latency = format!("{:.6}s", self.started.elapsed().as_secs_f64());
        let _entered = self.span.enter();
        macro_rules! request_line {
            ($level:expr, $message:literal) => {
                tracing::event!(
                    $level,
                    http_request.request_method = %self.method,
                    http_request.request_url = self.path,
                    http_request.status = status,
                    http_request.latency = latency,
                    $message
                )
            };
        }
        if status == CLIENT_CLOSED_REQUEST {
            request_line!(
                tracing::Level::INFO,
                "request cancelled: the client left before its answer"
            );
        } else if status >= 500 {
            request_line!(tracing::Level::WARN, "request finished");
        } else {
            request_line!(tracing::Level::INFO, "request finished");
        }
    }
}
