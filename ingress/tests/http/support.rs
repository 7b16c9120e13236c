//! Test harness: the real sandbox (`sandbox::run`) and the real ingress (`ingress::run`), each
//! on a free loopback port inside the test's runtime, and a small HTTP client for both.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ingress::tenants::{Ceilings, KeyHash, Tenant};

/// A running server started in-process, stopped by [`Server::stop`] or when the test ends.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("the server task panicked")
    }
}

fn stop_signal() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (sender, receiver) = oneshot::channel::<()>();
    (sender, async move {
        let _ = receiver.await;
    })
}

/// The real sandbox.
pub struct TestSandbox {
    server: Server,
    /// Client speaking to the sandbox directly, to compare with answers through the ingress.
    pub http: HttpClient,
}

impl TestSandbox {
    /// Starts a sandbox on `addr`, e.g. the address of one that was just stopped.
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::start_with(addr, sandbox::Config::default()).await
    }

    /// Starts a sandbox with `config` on `addr`; its workers are the real `sandbox` binary.
    pub async fn start_with(addr: SocketAddr, mut config: sandbox::Config) -> Self {
        config.worker_program = e2e::binary_path("sandbox");
        let listener = bind_retrying(addr).await;
        let addr = listener.local_addr().unwrap();
        let (stop, signal) = stop_signal();
        let task = tokio::spawn(sandbox::run(listener, config, signal));
        Self {
            server: Server {
                addr,
                stop: Some(stop),
                task,
            },
            http: HttpClient::new(addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    pub fn url(&self) -> Uri {
        format!("http://{}", self.server.addr).parse().unwrap()
    }

    /// Shuts the sandbox down and waits until it has stopped listening.
    pub async fn stop(self) {
        self.server.stop().await.expect("the sandbox failed");
    }
}

/// The real ingress in front of a real sandbox.
pub struct TestApp {
    server: Server,
    /// The sandbox behind this ingress.
    pub sandbox: TestSandbox,
    /// Client speaking to the ingress.
    pub http: HttpClient,
    /// Client speaking to the ingress's admin listener (metrics).
    pub admin: HttpClient,
}

/// An ingress with its default configuration in front of a fresh sandbox.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An ingress in front of a fresh sandbox, with `customize` applied to the default config.
pub async fn spawn_app_with(customize: impl FnOnce(&mut ingress::Config)) -> TestApp {
    spawn_app_with_sandbox(sandbox::Config::default(), customize).await
}

/// An ingress in front of a fresh sandbox with `sandbox_config`, with `customize` applied to
/// the ingress's default config.
pub async fn spawn_app_with_sandbox(
    sandbox_config: sandbox::Config,
    customize: impl FnOnce(&mut ingress::Config),
) -> TestApp {
    let sandbox = TestSandbox::start_with("127.0.0.1:0".parse().unwrap(), sandbox_config).await;
    let mut config = ingress::Config {
        sandbox_url: Some(sandbox.url()),
        ..ingress::Config::default()
    };
    customize(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin_listener.local_addr().unwrap();
    let (stop, signal) = stop_signal();
    let task = tokio::spawn(ingress::run_with_admin(
        listener,
        Some(admin_listener),
        config,
        signal,
    ));
    TestApp {
        server: Server {
            addr,
            stop: Some(stop),
            task,
        },
        sandbox,
        http: HttpClient::new(addr),
        admin: HttpClient::new(admin_addr),
    }
}

impl TestApp {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Splits the app so the test can stop and restart its sandbox.
    pub fn into_parts(self) -> (TestIngress, TestSandbox) {
        (
            TestIngress {
                server: self.server,
                http: self.http,
                admin: self.admin,
            },
            self.sandbox,
        )
    }
}

/// An ingress whose sandbox the test manages itself.
pub struct TestIngress {
    server: Server,
    pub http: HttpClient,
    pub admin: HttpClient,
}

impl TestIngress {
    /// Sends the shutdown signal and waits for `ingress::run` to return; the sandbox stays up.
    pub async fn shut_down(self) -> std::io::Result<()> {
        self.server.stop().await
    }
}

/// A plain HTTP/1.1 client for one server, with pooled connections like a browser's.
#[derive(Clone)]
pub struct HttpClient {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A whole answer: status, headers and body.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error.kind` of an answer in the API's error shape, after checking that shape.
    pub fn error_kind(&self) -> String {
        let json = self.json();
        assert_eq!(json["status"], "error", "{json}");
        assert!(json["error"]["message"].is_string(), "{json}");
        json["error"]["kind"]
            .as_str()
            .expect("error.kind")
            .to_owned()
    }
}

impl HttpClient {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A request builder for `path`, sent as-is (no normalisation of `..` or `%2e`).
    pub fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> TestResponse {
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("no answer within 30 s")
            .expect("request failed");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body failed").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends `method path` with `headers` and `body`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut request = self.request(method, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(body.into())).unwrap())
            .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_with(path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.call(Method::GET, path, headers, Bytes::new()).await
    }

    /// `POST /api/execute` with `body` as JSON.
    pub async fn post_execute(&self, body: &Value) -> TestResponse {
        self.post_execute_raw(serde_json::to_vec(body).unwrap())
            .await
    }

    /// `POST /api/execute` with `body` as JSON and extra `headers` (e.g. an API key).
    pub async fn post_execute_with(&self, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        let mut all = vec![(header::CONTENT_TYPE.as_str(), "application/json")];
        all.extend_from_slice(headers);
        let body = serde_json::to_vec(body).unwrap();
        self.call(Method::POST, "/api/execute", &all, body).await
    }

    /// `POST /api/batch` with `body` as JSON and extra `headers` (e.g. an API key).
    pub async fn post_batch_with(&self, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        let mut all = vec![(header::CONTENT_TYPE.as_str(), "application/json")];
        all.extend_from_slice(headers);
        let body = serde_json::to_vec(body).unwrap();
        self.call(Method::POST, "/api/batch", &all, body).await
    }

    /// Sends `request` and returns the answer as soon as its head has arrived, its body still
    /// to be read (a stream).
    pub async fn start(
        &self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Response<hyper::body::Incoming> {
        tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("no answer within 30 s")
            .expect("request failed")
    }

    /// The value of the sample `name{labels}` in this server's `GET /metrics`; 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.parse().unwrap())
    }

    /// Waits until the sample `name{labels}` in this server's `GET /metrics` satisfies
    /// `reached`, which is how tests wait for a state (a worker busy, a request counted) rather
    /// than sleeping; panics, naming `what` was awaited, after 30 s, which is far beyond any
    /// state these tests wait for even on a loaded machine.
    pub async fn wait_for_metric(&self, sample: &str, reached: impl Fn(f64) -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(sample).await;
            if reached(value) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 30 s for {what}: {sample} is {value}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `POST /api/execute` with `body` as it is.
    pub async fn post_execute_raw(&self, body: impl Into<Bytes>) -> TestResponse {
        let headers = [(header::CONTENT_TYPE.as_str(), "application/json")];
        self.call(Method::POST, "/api/execute", &headers, body)
            .await
    }
}

/// A tenant `id` with one key, `key`, no rate limit unless `rate_limit` says so, and
/// `ceilings`.
pub fn tenant(
    id: &str,
    key: &str,
    rate_limit: Option<ingress::rate_limit::RateLimit>,
    ceilings: Ceilings,
) -> Tenant {
    Tenant {
        id: id.to_owned(),
        keys: vec![KeyHash::of_key(key)],
        rate_limit,
        ceilings,
        sources: Default::default(),
        capabilities: Default::default(),
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it; returns the
/// status code and the whole answer as text. For requests a normal client would not send.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 30 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    (status, answer)
}

/// Binds `addr`, retrying briefly: a port just released may still be held for a moment.
async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if attempts < 50 => {
                attempts += 1;
                eprintln!("bind {addr}: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("cannot bind {addr}: {error}"),
        }
    }
}
