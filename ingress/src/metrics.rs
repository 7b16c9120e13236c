//! The ingress's Prometheus metrics, served at `GET /metrics` on the admin listener
//! (`ADMIN_LISTEN_ADDR`, default `127.0.0.1:9090`), never on the public port.
//!
//! - `ingress_requests_total{status}`: answers on the public port by HTTP status, and
//!   requests whose client left before their answer as `499` ([`CLIENT_CLOSED_REQUEST`]).
//! - `ingress_rate_limited_total{tenant}`: 429 answers by tenant (`anonymous` included).
//! - `ingress_refused_recently_total{tenant}`: executions answered 503 by the ingress because
//!   the sandbox had refused their client and its `Retry-After` had not passed
//!   ([`crate::refusals`]).
//! - `ingress_upstream_errors_total{kind}`: proxied requests that failed: `unavailable` (502)
//!   or `timeout` (504).
//! - `ingress_auth_failures_total{reason}`: 401 answers: `missing`, `unknown` or `malformed`.
//! - `ingress_trace_spans_dropped_total`: trace spans dropped unsent
//!   ([`service_kit::telemetry::traces`]).
//!
//! Every label comes from a small set: status codes, the operator's tenant ids, and fixed
//! kinds. The series of every tenant and kind exist from the start, at 0.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::{ApiError, AuthFailure};

/// The `Content-Type` of the exposition (the OpenMetrics text format Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The status a request is counted and logged with when its client leaves before its answer
/// is ready (the convention nginx made common): the proxied request to the sandbox is dropped
/// with it, and the sandbox logs the execution as `cancelled`.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Why a proxied request got no answer from the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// 502: refused or broken connection.
    Unavailable,
    /// 504: no answer within `UPSTREAM_TIMEOUT_MS`.
    Timeout,
}

impl UpstreamError {
    const ALL: [Self; 2] = [Self::Unavailable, Self::Timeout];

    fn label(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
        }
    }
}

/// The statuses the public port answers with (its own, the sandbox's and the sources', and
/// [`CLIENT_CLOSED_REQUEST`] for requests whose client left), whose
/// `ingress_requests_total` series exist from the start at 0, so a rate over them is defined
/// before the first such answer; a status outside this list gets its series when first sent.
const ANSWERED_STATUSES: [u16; 17] = [
    200,
    304,
    400,
    401,
    403,
    404,
    405,
    408,
    413,
    415,
    422,
    429,
    CLIENT_CLOSED_REQUEST,
    500,
    502,
    503,
    504,
];

const AUTH_FAILURES: [AuthFailure; 3] = [
    AuthFailure::Missing,
    AuthFailure::Unknown,
    AuthFailure::Malformed,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TenantLabels {
    tenant: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Every metric of the ingress, and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    rate_limited: Family<TenantLabels, Counter>,
    refused_recently: Family<TenantLabels, Counter>,
    upstream_errors: Family<KindLabels, Counter>,
    auth_failures: Family<ReasonLabels, Counter>,
}

impl Metrics {
    /// The metrics, with a zero series for each of `tenants` (the anonymous tier included).
    pub fn new<'a>(tenants: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::with_prefix("ingress");
        registry.register(
            "trace_spans_dropped",
            "Trace spans dropped unsent: the export queue was full or the collector did not take their batch (0 while trace export is off)",
            service_kit::telemetry::traces::dropped_spans(),
        );
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "requests",
            "Answers on the public port by HTTP status",
            requests.clone(),
        );
        let rate_limited = Family::<TenantLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by tenant",
            rate_limited.clone(),
        );
        let refused_recently = Family::<TenantLabels, Counter>::default();
        registry.register(
            "refused_recently",
            "Executions refused with 503 by the ingress while the sandbox's Retry-After for their client runs",
            refused_recently.clone(),
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Proxied requests the sandbox did not answer: unavailable (502) or timeout (504)",
            upstream_errors.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Requests refused with 401: key missing, unknown or malformed",
            auth_failures.clone(),
        );
        // Creating a series is enough to have it written out at 0.
        for status in ANSWERED_STATUSES {
            requests.get_or_create_owned(&StatusLabels { status });
        }
        for tenant in tenants {
            let labels = TenantLabels {
                tenant: Arc::from(tenant),
            };
            rate_limited.get_or_create_owned(&labels);
            refused_recently.get_or_create_owned(&labels);
        }
        for error in UpstreamError::ALL {
            upstream_errors.get_or_create_owned(&KindLabels {
                kind: error.label(),
            });
        }
        for failure in AUTH_FAILURES {
            auth_failures.get_or_create_owned(&ReasonLabels {
                reason: failure.reason(),
            });
        }
        Self {
            registry,
            requests,
            rate_limited,
            refused_recently,
            upstream_errors,
            auth_failures,
        }
    }

    /// The public port answered with `status`, or [`CLIENT_CLOSED_REQUEST`].
    pub fn answered(&self, status: u16) {
        self.requests.get_or_create(&StatusLabels { status }).inc();
    }

    /// A request of `tenant` was refused with 429.
    pub fn rate_limited(&self, tenant: &Arc<str>) {
        self.rate_limited
            .get_or_create(&TenantLabels {
                tenant: tenant.clone(),
            })
            .inc();
    }

    /// An execution of `tenant` was refused by the ingress, its client refused by the sandbox
    /// a moment ago.
    pub fn refused_recently(&self, tenant: &Arc<str>) {
        self.refused_recently
            .get_or_create(&TenantLabels {
                tenant: tenant.clone(),
            })
            .inc();
    }

    /// A proxied request failed with `error`.
    pub fn upstream_failed(&self, error: UpstreamError) {
        self.upstream_errors
            .get_or_create(&KindLabels {
                kind: error.label(),
            })
            .inc();
    }

    /// A request was refused with 401 for `failure`.
    pub fn auth_failed(&self, failure: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: failure.reason(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Middleware on the public port: counts every answer by status.
pub async fn count_answers(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let unanswered = scopeguard::guard(metrics, |metrics| {
        metrics.answered(CLIENT_CLOSED_REQUEST);
    });
    let response = next.run(request).await;
    scopeguard::ScopeGuard::into_inner(unanswered).answered(response.status().as_u16());
    response
}

/// The admin listener's routes: `GET /metrics`, and 404 for everything else.
pub fn admin_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(exposition))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(metrics)
}

async fn exposition(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn every_series_starts_at_zero_and_counts() {
        let metrics = Metrics::new(["anonymous", "acme"]);
        let text = metrics.encode();
        for line in [
            "ingress_rate_limited_total{tenant=\"acme\"} 0",
            "ingress_rate_limited_total{tenant=\"anonymous\"} 0",
            "ingress_upstream_errors_total{kind=\"timeout\"} 0",
            "ingress_auth_failures_total{reason=\"malformed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }

        metrics.answered(StatusCode::OK.as_u16());
        metrics.answered(StatusCode::OK.as_u16());
        metrics.rate_limited(&Arc::from("acme"));
        metrics.upstream_failed(UpstreamError::Unavailable);
        metrics.auth_failed(AuthFailure::Unknown);
        let text = metrics.encode();
        for line in [
            "ingress_requests_total{status=\"200\"} 2",
            "ingress_rate_limited_total{tenant=\"acme\"} 1",
            "ingress_upstream_errors_total{kind=\"unavailable\"} 1",
            "ingress_auth_failures_total{reason=\"unknown\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
