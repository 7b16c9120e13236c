//! Traces across the real binaries: an OTLP/HTTP receiver runs here (decoding the protobuf
//! `ExportTraceServiceRequest` with the `opentelemetry-proto` types), the ingress and the
//! sandbox export to it, and the tests read the spans they sent: one trace per request, from
//! both processes, with the parent chain ingress → proxy hop → sandbox → execution; the trace
//! context taken from `traceparent` or `X-Cloud-Trace-Context`; a script's `fetch` traced by its
//! origin and sending no trace context; JSON log lines under their trace; and a collector that is gone or never answers delaying neither requests nor the
//! shutdown beyond its bounded flush.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use e2e::{Service, Stack, free_port, metric_total, post_execute_with, post_json};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// How long anything here may take before the test gives up: spans are exported every
/// [`SCHEDULE_DELAY_MS`], so far less on a quiet machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The batch processor's delay between exports in these tests (`OTEL_BSP_SCHEDULE_DELAY`).
const SCHEDULE_DELAY_MS: &str = "100";

const SCRIPT: &str = r#"{"code":"6 * 7"}"#;

/// A span as the receiver got it: ids in lowercase hex (the parent's empty for a root).
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver on a loopback port of its own, keeping every span it is sent.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the receiver");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("the receiver's address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            spans,
            _runtime: runtime,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of `trace_id` once `complete` says they are all there.
    fn trace(&self, trace_id: &str, complete: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let trace: Vec<Received> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|span| span.trace_id == trace_id)
                .cloned()
                .collect();
            if complete(&trace) {
                return trace;
            }
            assert!(
                Instant::now() < deadline,
                "the spans of trace {trace_id} did not all arrive within {PATIENCE:?}; got {trace:#?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every span received so far.
    fn all(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

/// `POST /v1/traces`: decodes the batch and keeps its spans; 400 for a body that is not one.
async fn receive(
    State(spans): State<Arc<Mutex<Vec<Received>>>>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, protobuf);
    };
    let mut kept = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default().attributes;
        let service = attributes(resource)
            .remove("service.name")
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(span.attributes),
                });
            }
        }
    }
    (StatusCode::OK, protobuf)
}

fn attributes(
    pairs: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|pair| {
            let value = match pair.value.and_then(|value| value.value) {
                Some(Value::StringValue(text)) => text,
                Some(Value::IntValue(number)) => number.to_string(),
                Some(Value::DoubleValue(number)) => number.to_string(),
                Some(Value::BoolValue(flag)) => flag.to_string(),
                other => format!("{other:?}"),
            };
            (pair.key, value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Both binaries exporting to `endpoint`, with `extra` in both environments.
fn stack_exporting_to(endpoint: &str, extra: &[(&str, &str)]) -> Stack {
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS),
    ];
    env.extend_from_slice(extra);
    Stack::start_with(&env, &env)
}

/// The one span of `trace` from `service` named `name`.
fn span<'a>(trace: &'a [Received], service: &str, name: &str) -> &'a Received {
    let found: Vec<&Received> = trace
        .iter()
        .filter(|span| span.service == service && span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {service} span named {name:?} in {trace:#?}"
    );
    found[0]
}

/// Whether `trace` has the spans of one execution from both processes.
fn has_execution(trace: &[Received]) -> bool {
    let named = |service: &str, name: &str| {
        trace
            .iter()
            .any(|span| span.service == service && span.name == name)
    };
    named("ingress", "POST /api/execute")
        && named("ingress", "proxy")
        && named("sandbox", "POST /api/execute")
        && named("sandbox", "execution")
}

/// Checks the parent chain of one execution's trace: the ingress's request under `parent`
/// (empty: a root), its proxy hop under it, the sandbox's request under the hop, and the
/// admission, queue wait and execution under that; the worker hand-off under the execution.
fn assert_chain(trace: &[Received], parent: &str) {
    let request = span(trace, "ingress", "POST /api/execute");
    assert_eq!(request.parent_span_id, parent, "{request:#?}");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    let identification = span(trace, "ingress", "identification");
    assert_eq!(identification.parent_span_id, request.span_id);
    let rate_limit = span(trace, "ingress", "rate_limit");
    assert_eq!(rate_limit.parent_span_id, request.span_id);
    let hop = span(trace, "ingress", "proxy");
    assert_eq!(hop.parent_span_id, request.span_id, "{hop:#?}");
    let served = span(trace, "sandbox", "POST /api/execute");
    assert_eq!(served.parent_span_id, hop.span_id, "{served:#?}");
    for step in ["admission", "queue_wait", "execution"] {
        assert_eq!(span(trace, "sandbox", step).parent_span_id, served.span_id);
    }
    let execution = span(trace, "sandbox", "execution");
    assert_eq!(execution.attributes["outcome"], "success");
    assert_eq!(execution.attributes["tenant.id"], "anonymous");
    for attribute in [
        "executionTime",
        "memory.peak_bytes",
        "worker.pid",
        "worker.executions",
    ] {
        assert!(
            execution.attributes.contains_key(attribute),
            "{attribute} in {execution:#?}"
        );
    }
    let handoff = span(trace, "sandbox", "worker_handoff");
    assert_eq!(handoff.parent_span_id, execution.span_id);
}

#[test]
fn a_request_with_a_traceparent_is_one_trace_across_ingress_sandbox_and_execution() {
    let collector = Collector::start();
    let stack = stack_exporting_to(&collector.endpoint(), &[]);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");

    let (status, body) = post_execute_with(
        stack.ingress.addr(),
        &[("traceparent", &traceparent)],
        SCRIPT,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    let trace = collector.trace(trace_id, has_execution);
    assert_chain(&trace, parent);
}

#[test]
fn a_request_without_trace_headers_starts_one_trace() {
    let collector = Collector::start();
    let stack = stack_exporting_to(&collector.endpoint(), &[]);

    let (status, body) = post_execute_with(stack.ingress.addr(), &[], SCRIPT).unwrap();
    assert_eq!(status, 200, "{body}");

    let deadline = Instant::now() + PATIENCE;
    let root = loop {
        let roots: Vec<Received> = collector
            .all()
            .into_iter()
            .filter(|span| span.service == "ingress" && span.name == "POST /api/execute")
            .collect();
        if let Some(root) = roots.first() {
            assert_eq!(roots.len(), 1, "{roots:#?}");
            break root.clone();
        }
        assert!(Instant::now() < deadline, "no ingress span arrived");
        thread::sleep(Duration::from_millis(50));
    };
    let trace = collector.trace(&root.trace_id, has_execution);
    assert_chain(&trace, "");
}

#[test]
fn x_cloud_trace_context_is_honoured_when_there_is_no_traceparent() {
    let collector = Collector::start();
    let stack = stack_exporting_to(&collector.endpoint(), &[]);
    let trace_id = "105445aa7843bc8bf206b12000100000";

    let (status, body) = post_execute_with(
        stack.ingress.addr(),
        &[("X-Cloud-Trace-Context", &format!("{trace_id}/1234567;o=1"))],
        SCRIPT,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    let trace = collector.trace(trace_id, has_execution);
    assert_chain(&trace, &format!("{:016x}", 1_234_567u64));
}

#[test]
fn a_streamed_batch_traces_its_admission_and_each_items_wait_and_execution_under_its_request() {
    let collector = Collector::start();
    let stack = stack_exporting_to(&collector.endpoint(), &[]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let items = 3;

    let (status, body) = post_json(
        stack.ingress.addr(),
        "/api/batch",
        &[
            ("traceparent", &traceparent),
            ("accept", "application/x-ndjson"),
        ],
        r#"{"code":"input * 2","inputs":[1,2,3]}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().count(), items, "{body}");

    let named = |trace: &[Received], name: &str| {
        trace
            .iter()
            .filter(|span| span.service == "sandbox" && span.name == name)
            .count()
    };
    let trace = collector.trace(trace_id, |trace| {
        named(trace, "execution") == items && named(trace, "POST /api/batch") == 1
    });
    let hop = span(&trace, "ingress", "proxy");
    let served = span(&trace, "sandbox", "POST /api/batch");
    assert_eq!(served.parent_span_id, hop.span_id, "{served:#?}");
    let admission = span(&trace, "sandbox", "admission");
    assert_eq!(admission.parent_span_id, served.span_id);
    assert_eq!(admission.attributes["batch.items"], items.to_string());
    assert_eq!(admission.attributes["tenant.id"], "anonymous");
    let mut indexes: Vec<&str> = Vec::new();
    for step in trace.iter().filter(|span| span.service == "sandbox") {
        match step.name.as_str() {
            "queue_wait" => indexes.push(&step.attributes["batch.index"]),
            "execution" => assert_eq!(step.attributes["outcome"], "success", "{step:#?}"),
            _ => continue,
        }
        assert_eq!(step.parent_span_id, served.span_id, "{step:#?}");
    }
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        ["0", "1", "2"],
        "one queue wait per item: {trace:#?}"
    );
}

#[test]
fn a_sessions_execution_is_traced_under_its_route_without_its_id() {
    let collector = Collector::start();
    let stack = stack_exporting_to(&collector.endpoint(), &[]);
    let (status, created) = post_json(stack.ingress.addr(), "/api/sessions", &[], "{}").unwrap();
    assert_eq!(status, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_str().expect("a session id").to_owned();
    let trace_id = "1af7651916cd43dd8448eb211c80319d";
    let traceparent = format!("00-{trace_id}-c7ad6b7169203332-01");

    let (status, body) = post_json(
        stack.ingress.addr(),
        &format!("/api/sessions/{id}/execute"),
        &[("traceparent", &traceparent)],
        SCRIPT,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");

    let route = "POST /api/sessions/{id}/execute";
    let trace = collector.trace(trace_id, |trace| {
        trace.iter().any(|span| span.name == "execution")
            && trace.iter().any(|span| span.name == route)
    });
    let served = span(&trace, "sandbox", route);
    assert_eq!(
        served.parent_span_id,
        span(&trace, "ingress", "proxy").span_id
    );
    let execution = span(&trace, "sandbox", "execution");
    assert_eq!(execution.parent_span_id, served.span_id);
    assert_eq!(execution.attributes["outcome"], "success");
    assert!(
        execution.attributes.contains_key("worker.pid"),
        "{execution:#?}"
    );
    for span in &trace {
        assert!(
            !span.name.contains(&id),
            "the session id names no span: {span:#?}"
        );
    }
}

/// Answers every connection with `200 hi` and keeps each request's head.
fn serve_hi_keeping_heads() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_lowercase());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
        }
    });
    (addr, heads)
}

#[test]
fn a_scripts_fetch_is_traced_by_its_origin_and_sends_no_trace_context() {
    let collector = Collector::start();
    let (upstream, heads) = serve_hi_keeping_heads();
    // Loopback is allowed for the test's own server only by this test-only setting; the
    // sandbox is asked directly, with the tenant headers the ingress would set.
    let sandbox = Service::start(
        "sandbox",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY", SCHEDULE_DELAY_MS),
            ("FETCH_ALLOW_LOOPBACK", "true"),
        ],
    );
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let code = format!("fetch('http://{upstream}/secret/path?token=1').then(r => r.text())");
    let body = serde_json::json!({ "code": code }).to_string();
    let (status, answer) = post_execute_with(
        sandbox.addr(),
        &[
            ("traceparent", &format!("00-{trace_id}-00f067aa0ba902b7-01")),
            ("tracestate", "vendor=value"),
            ("x-cloud-trace-context", &format!("{trace_id}/1;o=1")),
            ("x-tenant-id", "acme"),
            (
                "x-tenant-capabilities",
                r#"{"fetch":{"hosts":["127.0.0.1"]}}"#,
            ),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"result\":\"hi\""), "{answer}");

    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    for header in ["traceparent", "tracestate", "x-cloud-trace-context"] {
        assert!(
            !heads[0].contains(header),
            "{header} sent to a third party: {}",
            heads[0]
        );
    }

    // The call ends before its execution, and may be exported in an earlier batch.
    let trace = collector.trace(trace_id, |trace| {
        ["host_call", "execution"]
            .iter()
            .all(|name| trace.iter().any(|span| span.name == *name))
    });
    let call = span(&trace, "sandbox", "host_call");
    assert_eq!(
        call.parent_span_id,
        span(&trace, "sandbox", "execution").span_id
    );
    assert_eq!(call.attributes["host.function"], "fetch");
    assert_eq!(call.attributes["url.origin"], format!("http://{upstream}"));
    assert_eq!(call.attributes["http.request.method"], "GET");
    assert!(
        !call
            .attributes
            .values()
            .any(|value| value.contains("secret")),
        "no path or query in {call:#?}"
    );
}

#[test]
fn json_log_lines_carry_their_trace_for_cloud_logging() {
    let collector = Collector::start();
    let stack = stack_exporting_to(
        &collector.endpoint(),
        &[
            ("LOG_FORMAT", "json"),
            ("GOOGLE_CLOUD_PROJECT", "tracing-test"),
        ],
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");

    let (status, body) = post_execute_with(
        stack.ingress.addr(),
        &[("traceparent", &traceparent)],
        SCRIPT,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let trace = collector.trace(trace_id, has_execution);

    for (service, line_of, span_name) in [
        (&stack.ingress, "request finished", "POST /api/execute"),
        (&stack.sandbox, "execution finished", "POST /api/execute"),
    ] {
        let log = service.log();
        let line = log
            .lines()
            .find(|line| line.contains(line_of) && line.contains(trace_id))
            .unwrap_or_else(|| panic!("no {line_of:?} line of trace {trace_id} in\n{log}"));
        let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(
            line["logging.googleapis.com/trace"],
            format!("projects/tracing-test/traces/{trace_id}"),
            "{line}"
        );
        assert_eq!(line["logging.googleapis.com/trace_sampled"], true, "{line}");
        let span_ids: Vec<&str> = trace
            .iter()
            .filter(|span| span.name == span_name)
            .map(|span| span.span_id.as_str())
            .collect();
        let logged = line["logging.googleapis.com/spanId"].as_str().unwrap_or("");
        assert!(
            span_ids.contains(&logged),
            "{logged} in {span_ids:?}: {line}"
        );
    }
}

/// Sends SIGTERM to `service`.
fn terminate(service: &Service) {
    let pid = libc::pid_t::try_from(service.pid()).expect("a pid");
    // SAFETY: kill(2) only sends a signal, to our own child, which `service` has not reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// With the collector at `endpoint` unusable, executions are still answered, the spans that
/// cannot be sent are counted as dropped, and both binaries stop on SIGTERM within a bound
/// far below the export timeout (60 s): the flush at shutdown waits 3 s at most.
fn an_unusable_collector_delays_nothing(endpoint: &str) {
    let mut stack = stack_exporting_to(
        endpoint,
        &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("SHUTDOWN_NOTICE_MS", "0"),
        ],
    );
    for _ in 0..5 {
        let (status, body) = post_execute_with(
            stack.ingress.addr(),
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
            SCRIPT,
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Each execution makes more spans than the queue of 4 holds while the export hangs or
    // fails: some are dropped, and counted.
    let deadline = Instant::now() + PATIENCE;
    while metric_total(stack.sandbox.addr(), "sandbox_trace_spans_dropped_total") < 1.0 {
        assert!(Instant::now() < deadline, "no dropped span was counted");
        thread::sleep(Duration::from_millis(50));
    }

    // Far below the 60 s an export may take, above the 3 s flush, the 10 s drain and a
    // loaded machine's slowness.
    let bound = Duration::from_secs(30);
    for service in [&mut stack.ingress, &mut stack.sandbox] {
        terminate(service);
        let status = service.wait_exit(bound);
        assert!(
            status.is_some(),
            "still running {bound:?} after SIGTERM:\n{}",
            service.log()
        );
    }
}

#[test]
fn a_collector_that_is_gone_delays_neither_requests_nor_shutdown() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    an_unusable_collector_delays_nothing(&closed);
}

#[test]
fn a_collector_that_never_answers_delays_neither_requests_nor_shutdown() {
    // Accepts connections and never reads or answers them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    thread::spawn(move || {
        for connection in silent.incoming().flatten() {
            holder.lock().unwrap().push(connection);
        }
    });
    an_unusable_collector_delays_nothing(&endpoint);
}
