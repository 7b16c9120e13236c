//! Test harness: the real sandbox server (`sandbox::run`) on a free loopback port, and a small
//! HTTP client with typed helpers.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, Request, StatusCode},
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};

/// A sandbox running in the test's runtime; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct TestApp {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _stop: std::sync::Arc<oneshot::Sender<()>>,
}

/// A whole answer.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The `error.kind` of a request error, after checking the API's error shape.
    pub fn request_error_kind(&self) -> &str {
        assert_eq!(self.body["status"], "error", "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        self.body["error"]["kind"].as_str().expect("error.kind")
    }

    /// The `error.kind` of a finished execution that failed (HTTP 200).
    pub fn script_error_kind(&self) -> &str {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.body["status"], "error", "{}", self.body);
        assert_eq!(self.body["result"], Value::Null, "{}", self.body);
        self.body["error"]["kind"].as_str().expect("error.kind")
    }

    /// Checks that the execution ended in a `timeout` enforced by killing its worker.
    pub fn assert_killed(&self) {
        assert_eq!(self.script_error_kind(), "timeout", "{}", self.body);
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("killed"), "{}", self.body);
    }

    /// The result of a successful execution (HTTP 200).
    pub fn result(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.body["status"], "success", "{}", self.body);
        assert_eq!(self.body["error"], false, "{}", self.body);
        &self.body["result"]
    }

    /// The console entries.
    pub fn log(&self) -> &Vec<Value> {
        self.body["log"].as_array().expect("log is an array")
    }
}

/// Starts a sandbox with the default configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a sandbox with `customize` applied to the default configuration.
pub async fn spawn_app_with(customize: impl FnOnce(&mut sandbox::Config)) -> TestApp {
    let mut config = sandbox::Config {
        worker_program: env!("CARGO_BIN_EXE_sandbox").into(),
        ..sandbox::Config::default()
    };
    customize(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sandbox::run(listener, config, async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _stop: std::sync::Arc::new(stop),
    }
}

impl TestApp {
    /// Runs `code` with no explicit limits.
    pub async fn run(&self, code: &str) -> TestResponse {
        self.post_execute(json!({ "code": code })).await
    }

    /// Runs `code` with a time limit in milliseconds.
    pub async fn run_with_timeout(&self, code: &str, timeout_ms: u64) -> TestResponse {
        self.post_execute(json!({ "code": code, "timeoutMs": timeout_ms }))
            .await
    }

    /// Starts an endless script that holds a worker until its `timeout_ms` deadline; the task
    /// answers with its response.
    pub fn hold_a_worker(&self, timeout_ms: u64) -> tokio::task::JoinHandle<TestResponse> {
        let app = self.clone();
        tokio::spawn(async move { app.run_with_timeout("while (true) {}", timeout_ms).await })
    }

    pub async fn post_execute(&self, body: Value) -> TestResponse {
        self.post_raw("application/json", body.to_string()).await
    }

    pub async fn post_raw(&self, content_type: &str, body: impl Into<Bytes>) -> TestResponse {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/api/execute", self.addr))
            .header("content-type", content_type)
            .body(Full::new(body.into()))
            .unwrap();
        self.send(request).await
    }

    /// `POST /api/execute` with extra `headers`, such as the ingress's tenant headers.
    pub async fn post_execute_with(&self, headers: &[(&str, &str)], body: Value) -> TestResponse {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/api/execute", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(body.to_string().into())).unwrap())
            .await
    }

    /// `POST /api/batch` with extra `headers`, such as the ingress's tenant headers.
    pub async fn post_batch_with(&self, headers: &[(&str, &str)], body: Value) -> TestResponse {
        self.send(self.batch_request(headers, body)).await
    }

    /// `POST /api/batch` with extra `headers`: the answer as it starts, its body still to be
    /// read (a stream of lines, with `accept: application/x-ndjson`).
    pub async fn start_batch(
        &self,
        headers: &[(&str, &str)],
        body: Value,
    ) -> hyper::Response<hyper::body::Incoming> {
        let request = self.batch_request(headers, body);
        tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .expect("the sandbox answered within a minute")
            .expect("the request reached the sandbox")
    }

    fn batch_request(&self, headers: &[(&str, &str)], body: Value) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}/api/batch", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Full::new(body.to_string().into())).unwrap()
    }

    /// `POST /api/execute` of `body` with `Accept: text/event-stream`: the stream, or the
    /// whole answer when it is not one (a request refused before it ran).
    pub async fn post_stream(&self, body: Value) -> Result<EventStream, TestResponse> {
        self.post_accepting(contract::api::EVENT_STREAM, body).await
    }

    /// `POST /api/execute` of `body` with `Accept: accept`: the stream, or the whole answer
    /// when it is not one.
    pub async fn post_accepting(
        &self,
        accept: &str,
        body: Value,
    ) -> Result<EventStream, TestResponse> {
        self.post_for_stream("/api/execute", &[("accept", accept)], body)
            .await
    }

    /// `POST path` of `body` with extra `headers` (among them an `accept`): the stream, or the
    /// whole answer when it is not one.
    pub async fn post_for_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Result<EventStream, TestResponse> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.to_string().into())).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .expect("the sandbox answered within a minute")
            .expect("the request reached the sandbox");
        let is_stream = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value == contract::api::EVENT_STREAM);
        if !is_stream {
            return Err(whole(response).await);
        }
        let status = response.status();
        let headers = response.headers().clone();
        Ok(EventStream {
            status,
            headers,
            body: response.into_body(),
            buffer: String::new(),
        })
    }

    /// `GET /metrics`: the `Content-Type` and the exposition text.
    pub async fn metrics(&self) -> (String, String) {
        let request = Request::builder()
            .uri(format!("http://{}/metrics", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.client.request(request).await.expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (content_type, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// The value of the sample `name{labels}` in `GET /metrics`, 0 when it is absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.parse().unwrap())
    }

    /// The sum of every sample whose name and labels begin with `prefix`, such as
    /// `sandbox_worker_exits_total{` (every exit, whatever its reason and signal) or
    /// `sandbox_worker_exits_total{reason="recycled",` (every signal of one reason).
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let (_, text) = self.metrics().await;
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `read` (a metric sample, or a sum of samples) reaches `at_least`, and returns
    /// what it read: how a test waits for a state of the sandbox (an execution running, a
    /// worker reaped) instead of sleeping. The minute it allows only ends a stuck test; the
    /// state comes in milliseconds on an idle machine and well within it on a loaded one.
    pub async fn wait_for<F: Future<Output = f64>>(
        &self,
        what: &str,
        at_least: f64,
        mut read: impl FnMut(TestApp) -> F,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let value = read(self.clone()).await;
            if value >= at_least {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} stayed at {value}, below {at_least}, for a minute"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the sample `name{labels}` reaches `at_least` (see [`TestApp::wait_for`]).
    pub async fn wait_for_metric(&self, sample: &str, at_least: f64) -> f64 {
        let sample = sample.to_owned();
        self.wait_for(&sample.clone(), at_least, move |app| {
            let sample = sample.clone();
            async move { app.metric(&sample).await }
        })
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        let request = Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(request).await
    }

    /// `method` on `path` with extra `headers` and, when given, a JSON `body`; an empty answer's
    /// body reads as `null`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.send(request.body(body).unwrap()).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> TestResponse {
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .expect("the sandbox answered within a minute")
            .expect("the request reached the sandbox");
        whole(response).await
    }
}

/// A whole JSON answer.
async fn whole(response: hyper::Response<Incoming>) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if bytes.is_empty() {
        return TestResponse {
            status,
            headers,
            body: Value::Null,
        };
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&bytes)));
    TestResponse {
        status,
        headers,
        body,
    }
}

/// A stream of Server-Sent Events, read as it arrives; dropping it closes the connection.
pub struct EventStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    /// Text received and not yet made into events.
    buffer: String,
}

/// One event as the client saw it, with when it arrived.
#[derive(Debug)]
pub struct StreamEvent {
    /// The `event:` field, `None` for a comment line alone (a heartbeat).
    pub name: Option<String>,
    /// The `data:` lines, joined.
    pub data: String,
    pub arrived: Instant,
}

impl StreamEvent {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.data))
    }
}

impl EventStream {
    /// The next event or comment, `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_event(&block));
            }
            let frame = tokio::time::timeout(Duration::from_secs(60), self.body.frame())
                .await
                .expect("an event or the end within a minute")?
                .expect("the stream is readable");
            if let Ok(data) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("the stream is UTF-8"));
            }
        }
    }

    /// Every event to the end of the stream, comments included.
    pub async fn until_end(mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        assert!(self.buffer.is_empty(), "left over: {:?}", self.buffer);
        events
    }
}

fn parse_event(block: &str) -> StreamEvent {
    let arrived = Instant::now();
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines().filter(|line| !line.is_empty()) {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        } else {
            assert!(line.starts_with(':'), "not an SSE line: {line:?}");
        }
    }
    StreamEvent {
        name,
        data: data.join("\n"),
        arrived,
    }
}
