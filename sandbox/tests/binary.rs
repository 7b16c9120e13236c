//! The real `sandbox` binary: signals, shutdown and its log lines.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

/// A running sandbox process, killed if the test ends early.
struct SandboxProcess {
    child: Child,
    addr: SocketAddr,
}

impl SandboxProcess {
    fn start(env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox"));
        command
            .env("LISTEN_ADDR", addr.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the sandbox binary starts");
        let process = Self { child, addr };
        process.wait_healthy();
        process
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "the sandbox never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit, returning how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                return started.elapsed();
            }
            assert!(started.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn post_execute(addr: SocketAddr, body: Value) -> Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}/api/execute"))
        .header("content-type", "application/json")
        .header("x-request-id", "test-request-42")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client.request(request).await.expect("the sandbox answered");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// Waits until the sandbox at `addr` runs the execution that `running` asked for, reading its
/// `GET /metrics`: the event the signal tests wait for, instead of a guess at how long a
/// request takes to arrive.
async fn wait_until_an_execution_runs(addr: SocketAddr, running: &tokio::task::JoinHandle<Value>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Only ends a stuck test; the execution starts in milliseconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = Request::get(format!("http://{addr}/metrics"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.expect("GET /metrics");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        if text.lines().any(|line| line == "sandbox_workers_busy 1") {
            return;
        }
        assert!(
            !running.is_finished(),
            "the request was answered before it ran"
        );
        assert!(Instant::now() < deadline, "no execution started:\n{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sigterm_lets_running_executions_finish_then_exits() {
    let mut sandbox = SandboxProcess::start(&[]);
    let addr = sandbox.addr;
    let running = tokio::spawn(post_execute(
        addr,
        json!({ "code": "new Promise((resolve) => setTimeout(() => resolve('finished'), 700))" }),
    ));
    wait_until_an_execution_runs(addr, &running).await;
    sandbox.terminate();

    let answer = running.await.unwrap();
    assert_eq!(answer["status"], "success", "{answer}");
    assert_eq!(answer["result"], "finished");
    let exited_after = sandbox.wait_exit(Duration::from_secs(10));
    assert!(exited_after < Duration::from_secs(10));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn sigterm_cancels_executions_that_outlast_the_drain_time() {
    let mut sandbox = SandboxProcess::start(&[("SHUTDOWN_DRAIN_MS", "300")]);
    let running = tokio::spawn(post_execute(
        sandbox.addr,
        json!({ "code": "while (true) {}", "timeoutMs": 30000 }),
    ));
    wait_until_an_execution_runs(sandbox.addr, &running).await;
    sandbox.terminate();

    let answer = running.await.unwrap();
    assert_eq!(answer["error"]["kind"], "timeout", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{answer}"
    );
    // Within Cloud Run's 10 s between SIGTERM and SIGKILL, long before the 30 s deadline.
    sandbox.wait_exit(Duration::from_secs(10));
}

#[tokio::test]
async fn json_logs_have_one_line_per_execution_without_the_code() {
    let mut sandbox = SandboxProcess::start(&[("LOG_FORMAT", "json")]);
    let secret = "const secretMarker = 'do-not-log-me'; 40 + 2";
    let answer = post_execute(sandbox.addr, json!({ "code": secret })).await;
    assert_eq!(answer["result"], 42);
    sandbox.terminate();
    sandbox.wait_exit(Duration::from_secs(10));

    let stdout = sandbox.child.stdout.take().unwrap();
    let lines: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).expect("every log line is JSON"))
        .collect();
    assert!(
        lines
            .iter()
            .all(|line| line["severity"].is_string() && line["time"].is_string())
    );
    // One line per execution, as the README promises: no other line names the request.
    let about_the_request: Vec<&Value> = lines
        .iter()
        .filter(|line| line["requestId"] == "test-request-42")
        .collect();
    assert_eq!(about_the_request.len(), 1, "{about_the_request:?}");
    let finished = lines
        .iter()
        .filter(|line| line["message"] == "execution finished")
        .count();
    assert_eq!(finished, 1, "{lines:?}");
    let execution = about_the_request[0];
    assert_eq!(execution["message"], "execution finished", "{execution}");
    assert_eq!(execution["outcome"], "success");
    assert_eq!(execution["codeBytes"], secret.len());
    let all = lines.iter().map(Value::to_string).collect::<String>();
    assert!(
        !all.contains("do-not-log-me"),
        "the script leaked into the logs"
    );
}

#[tokio::test]
async fn with_no_log_sample_only_executions_that_did_not_succeed_are_logged() {
    let mut sandbox = SandboxProcess::start(&[("LOG_FORMAT", "json"), ("REQUEST_LOG_SAMPLE", "0")]);
    for _ in 0..3 {
        let answer = post_execute(sandbox.addr, json!({ "code": "40 + 2" })).await;
        assert_eq!(answer["result"], 42);
    }
    let answer = post_execute(sandbox.addr, json!({ "code": "throw new Error('no')" })).await;
    assert_eq!(answer["error"]["kind"], "exception", "{answer}");
    sandbox.terminate();
    sandbox.wait_exit(Duration::from_secs(10));

    let stdout = sandbox.child.stdout.take().unwrap();
    let finished: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).expect("every log line is JSON"))
        .filter(|line: &Value| line["message"] == "execution finished")
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0]["outcome"], "exception", "{finished:?}");
}
