//! Traces: OpenTelemetry spans made from the `tracing` spans both binaries already open,
//! exported over OTLP/HTTP (protobuf) to the collector that the standard `OTEL_*` variables
//! name, and the W3C trace context carried from the ingress to the sandbox.
//!
//! - Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//!   (and `OTEL_SDK_DISABLED` is not `true`, `OTEL_TRACES_EXPORTER` not `none`). Off, no layer
//!   is installed and every function here returns at its first check: it costs nothing.
//! - The SDK reads the rest of the standard variables itself: `OTEL_SERVICE_NAME` (else the
//!   binary's name), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and its argument,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`.
//! - A request never waits for the collector: finished spans go to the SDK's batch processor,
//!   on a thread of its own, through a queue of `OTEL_BSP_MAX_QUEUE_SIZE` spans (2048). A span
//!   that finds the queue full, or whose batch the collector did not take, is dropped and
//!   counted ([`dropped_spans`]).
//! - The batches are sent with the workspace's hyper client on the server's runtime.
//! - At shutdown what is queued is sent, waiting at most [`FLUSH_DEADLINE`].
//!
//! Context comes in on W3C `traceparent` (with `tracestate`), else on Google's
//! `X-Cloud-Trace-Context`; a request with neither starts a trace. It goes out only where a
//! binary says so ([`inject`]): the ingress on its request to the sandbox. A script's `fetch`
//! builds its requests from the script's headers alone, so no context leaves for third parties.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::http::HeaderMap;
use contract::ids::{CLOUD_TRACE_HEADER, TRACEPARENT_HEADER};
use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
    },
};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{
        BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData,
        SpanExporter, SpanProcessor,
    },
};
use prometheus_client::metrics::counter::Counter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The longest a stopping binary waits for its last spans to reach the collector.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(3);

/// Spans the batch processor holds at most unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise
/// (the OpenTelemetry specification's default).
const DEFAULT_QUEUE_SIZE: usize = 2048;

/// How long one export may take unless `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise (ms).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether spans are exported (set once by [`start`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Spans dropped: queue full, or the collector did not take their batch.
static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Whether spans are exported: the other functions here do nothing when not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The count of spans dropped since the start, for each binary's metrics
/// (`…_trace_spans_dropped_total`); it stays 0 while export is off.
pub fn dropped_spans() -> Counter {
    DROPPED.clone()
}

/// Exporting traces, until [`Exporting::shutdown`].
#[derive(Debug)]
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// Sends what is queued and stops, waiting at most [`FLUSH_DEADLINE`]; off the runtime's
    /// threads, since the SDK waits by blocking.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let stopped =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_DEADLINE))
                .await;
        match stopped {
            Ok(Ok(())) => tracing::debug!("trace export stopped"),
            Ok(Err(error)) => tracing::warn!(%error, "trace export stopped with spans unsent"),
            Err(error) => tracing::warn!(%error, "trace export did not stop"),
        }
    }
}

/// Whether the environment asks for trace export (see the module's header).
fn requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|value| !value.trim().is_empty());
    let is = |name: &str, value: &str| {
        var(name).is_some_and(|set| set.trim().eq_ignore_ascii_case(value))
    };
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// A positive whole number from the environment, or `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|&value| value > 0)
        .unwrap_or(default)
}

/// Starts exporting when the environment asks for it, naming the service `service_name`
/// unless `OTEL_SERVICE_NAME` does: the tracer for the `tracing` layer, and what stops it.
/// Must run on the Tokio runtime that will send the batches. A collector that cannot be
/// reached is not an error here: its batches are dropped and counted as they fail.
pub(super) fn start(service_name: &'static str) -> Option<(SdkTracer, Exporting)> {
    if !requested(|name| std::env::var(name).ok()) {
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        eprintln!("trace export is off: not started on an async runtime");
        return None;
    };
    let timeout = Duration::from_millis(env_number(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        env_number(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            DEFAULT_EXPORT_TIMEOUT.as_millis() as u64,
        ),
    ));
    let client = OnRuntime {
        client: opentelemetry_http::hyper::HyperClient::with_default_connector(timeout, None),
        runtime,
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("trace export is off: {error}");
            return None;
        }
    };
    let capacity = env_number("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_QUEUE_SIZE as u64) as usize;
    let queued = Arc::new(AtomicUsize::new(0));
    let batches = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        queued: queued.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(capacity)
            .build(),
    )
    .build();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|name| !name.trim().is_empty());
    let resource = if named {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(service_name).build()
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(Bounded {
            inner: batches,
            queued,
            capacity,
        })
        .build();
    let tracer = provider.tracer("jsbox");
    ENABLED.store(true, Ordering::Relaxed);
    Some((tracer, Exporting { provider }))
}

/// The batch processor behind a count of the spans it holds: a span that would go over
/// `capacity` is dropped here, where it is counted, rather than in the SDK, where it is not.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    /// Spans handed to `inner` and not yet taken by its exporter ([`Counted`]).
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            DROPPED.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, telling [`Bounded`] which spans left the queue and counting those of
/// a batch the collector did not take.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        self.queued.fetch_sub(spans, Ordering::Relaxed);
        let sent = self.inner.export(batch);
        async move {
            let sent = sent.await;
            if sent.is_err() {
                DROPPED.inc_by(spans as u64);
            }
            sent
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The hyper client, run on the server's runtime: the batch processor's thread has none.
#[derive(Debug)]
struct OnRuntime {
    client: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

impl HttpClient for OnRuntime {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: axum::http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<axum::http::Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(request).await });
        Box::pin(async move { sent.await? })
    }
}

/// What `--help` says of traces, after the binary's own variables: they are the SDK's
/// standard ones, not declared here.
pub const HELP: &str = "Traces (OpenTelemetry's standard variables, read as its SDK reads them; \
    off unless an endpoint is set):
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
          The collector's base URL (/v1/traces is appended), or the whole traces URL: OTLP over
          HTTP, protobuf. [default: unset: no spans are exported]
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
          The service's name and resource attributes. [default: the binary's name]
  OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
          Which traces are recorded. [default: parentbased_always_on]
  OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT
          Headers sent with each batch, and how long a batch may take. [default: none, 10000]
  OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE
          Batching: ms between exports, spans queued at most (more are dropped and counted),
          spans per batch. [default: 5000, 2048, 512]
  OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none
          Turn export off again.
";

/// The span `make` makes when spans are exported, else none: a span made only for the
/// trace costs nothing when export is off, and changes no log line.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() {
        make()
    } else {
        tracing::Span::none()
    }
}

/// Middleware for a server whose requests have no span of their own (the sandbox), to be
/// installed only when [`enabled`]: each
/// runs in a server span, named for its method and route ([`server_span_name`]), that continues the trace its
/// headers carry (see [`continue_trace`]). Export off, requests pass straight through.
pub async fn trace_requests(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !enabled() {
        return next.run(request).await;
    }
    let span = tracing::info_span!(
        "request",
        otel.name = server_span_name(request.method(), request.uri().path()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %request.method(),
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        tenant.id = request
            .headers()
            .get(contract::tenant::TENANT_ID_HEADER)
            .and_then(|value| value.to_str().ok()),
    );
    continue_trace(&span, request.headers());
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    record_status(&span, response.status().as_u16());
    response
}

/// The routes a server span is named after; any other path (a 404's, say) names no span,
/// which keeps span names few whatever clients ask for.
const ROUTES: [&str; 8] = [
    "/api/execute",
    "/api/batch",
    "/api/examples",
    "/api/sessions",
    contract::openapi::DOCUMENT_PATH,
    "/healthz",
    "/mcp",
    "/metrics",
];

/// A server span's name, as OpenTelemetry's HTTP conventions have it: `METHOD route`, a
/// session's id replaced by `{id}`, or only the method for a path that is no route.
pub fn server_span_name(method: &axum::http::Method, path: &str) -> String {
    if ROUTES.contains(&path) {
        return format!("{method} {path}");
    }
    match session_route(path) {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    }
}

/// The route of a path that names one session, its id left out.
fn session_route(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/sessions/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some("/api/sessions/{id}"),
        Some((id, "execute")) if !id.is_empty() => Some("/api/sessions/{id}/execute"),
        _ => None,
    }
}

/// Records a server span's answer: its status, and the span's failure for a 5xx.
pub fn record_status(span: &tracing::Span, status: u16) {
    if !enabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// Makes `span`, a request's outermost span, continue the trace its headers carry: W3C
/// `traceparent` (and `tracestate`), else `X-Cloud-Trace-Context`. Without either it starts
/// a trace. Call before the span is first entered.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !enabled() {
        return;
    }
    let parent = if headers.contains_key(TRACEPARENT_HEADER) {
        TraceContextPropagator::new().extract(&HeaderExtractor(headers))
    } else {
        headers
            .get(CLOUD_TRACE_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(cloud_trace_context)
            .map_or_else(Context::new, |remote| {
                Context::new().with_remote_span_context(remote)
            })
    };
    // A layer not installed (another subscriber in a test) leaves the span as it is.
    let _ = span.set_parent(parent);
}

/// Sets `traceparent` (and `tracestate`) in `headers` to the current span, so the next hop
/// continues the trace under it.
pub fn inject(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// `TRACE_ID/SPAN_ID;o=OPTIONS` (the span id in decimal, `o=1` when sampled) as a remote
/// parent.
fn cloud_trace_context(value: &str) -> Option<SpanContext> {
    let (trace, rest) = value.trim().split_once('/')?;
    let (span, options) = rest.split_once(';').unwrap_or((rest, ""));
    if trace.len() != 32 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace)
        .ok()
        .filter(|id| *id != TraceId::INVALID)?;
    let span_id = span.parse::<u64>().ok().filter(|&id| id != 0)?;
    let sampled = options.trim() == "o=1";
    Some(SpanContext::new(
        trace_id,
        SpanId::from_bytes(span_id.to_be_bytes()),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    ))
}

/// The trace, span and sampling decision of the current span, for a log line.
pub(super) fn current() -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_is_asked_for_by_an_endpoint_unless_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert!(!requested(env(&[])));
        assert!(!requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
        assert!(!requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn server_spans_are_named_after_routes_and_other_paths_after_their_method_only() {
        use axum::http::Method;
        assert_eq!(
            server_span_name(&Method::POST, "/api/execute"),
            "POST /api/execute"
        );
        assert_eq!(server_span_name(&Method::GET, "/healthz"), "GET /healthz");
        assert_eq!(server_span_name(&Method::GET, "/api/whatever/123"), "GET");
        assert_eq!(
            server_span_name(&Method::POST, "/api/sessions"),
            "POST /api/sessions"
        );
        assert_eq!(
            server_span_name(&Method::DELETE, "/api/sessions/5f0c2a9b"),
            "DELETE /api/sessions/{id}"
        );
        assert_eq!(
            server_span_name(&Method::POST, "/api/sessions/5f0c2a9b/execute"),
            "POST /api/sessions/{id}/execute"
        );
        assert_eq!(server_span_name(&Method::POST, "/api/sessions/a/b"), "POST");
        assert_eq!(
            server_span_name(&Method::DELETE, "/api/sessions/"),
            "DELETE"
        );
        assert_eq!(
            server_span_name(&Method::POST, "/api/sessions//execute"),
            "POST"
        );
        assert_eq!(server_span_name(&Method::GET, "/api/sessionsx"), "GET");
        assert_eq!(server_span_name(&Method::GET, "/index.html"), "GET");
    }

    #[test]
    fn cloud_trace_context_gives_a_remote_parent_with_its_sampling() {
        let parent = cloud_trace_context("105445aa7843bc8bf206b12000100000/1;o=1").unwrap();
        assert_eq!(
            parent.trace_id().to_string(),
            "105445aa7843bc8bf206b12000100000"
        );
        assert_eq!(parent.span_id().to_string(), "0000000000000001");
        assert!(parent.is_sampled() && parent.is_remote());
        let unsampled = cloud_trace_context("105445aa7843bc8bf206b12000100000/42").unwrap();
        assert!(!unsampled.is_sampled());
        for malformed in [
            "",
            "x/1",
            "105445aa7843bc8bf206b12000100000",
            "105445aa7843bc8bf206b12000100000/0;o=1",
            "105445aa7843bc8bf206b12000100000/span;o=1",
            "00000000000000000000000000000000/1;o=1",
            "105445aa7843bc8bf206b1200010/1;o=1",
        ] {
            assert_eq!(cloud_trace_context(malformed), None, "{malformed}");
        }
    }
}
