//! The sandbox's memory budget (README, "Memory budget"): a configuration whose workers cannot
//! fit is refused at start, each worker's address space is what the README's arithmetic says,
//! and a request that would make the sandbox hold more than its budget is refused with 503 and
//! `Retry-After` until the bytes held for others are given back.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::spawn_app_with;

const MIB: u64 = 1024 * 1024;

/// The real `sandbox` binary with `env`, killed when dropped.
struct Sandbox(Child);

impl Sandbox {
    fn command(env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox"));
        command
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    /// Starts the binary and waits for its "sandbox listening" line, by which its workers are
    /// ready.
    fn start(env: &[(&str, &str)]) -> Self {
        let mut child = Self::command(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the sandbox binary starts");
        let stdout = child.stdout.take().unwrap();
        let sandbox = Self(child);
        let listening = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("sandbox listening"));
        assert!(listening, "the sandbox exited without listening");
        sandbox
    }

    /// The pids of the worker processes: the children of the sandbox.
    fn workers(&self) -> Vec<u32> {
        let parent = self.0.id();
        std::fs::read_dir(format!("/proc/{parent}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
            .flat_map(|children| {
                children
                    .split_whitespace()
                    .map(|pid| pid.parse().unwrap())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The soft and hard limit of `name` in `/proc/<pid>/limits`.
fn limits(pid: u32, name: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {limits}"));
    let mut values = line.split_whitespace();
    (
        values.next().unwrap().to_owned(),
        values.next().unwrap().to_owned(),
    )
}

#[test]
fn a_configuration_whose_workers_cannot_fit_in_the_sandboxs_memory_is_refused_at_start() {
    // 4 workers of 512 + 12 + 64 MiB of address space are 2352 MiB: more than 1 GiB.
    let impossible = [
        ("MAX_CONCURRENCY", "4"),
        ("MAX_MEMORY_LIMIT_MB", "512"),
        ("SANDBOX_MEMORY_MB", "1024"),
    ];
    for command in [&["check-config"][..], &[]] {
        let output = Sandbox::command(&impossible)
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command:?}: {stderr}");
        for variable in impossible.map(|(variable, _)| variable) {
            assert!(stderr.contains(variable), "{command:?}: {stderr}");
        }
    }
    // The same sandbox with workers that fit is a valid configuration.
    let output = Sandbox::command(&[
        ("MAX_CONCURRENCY", "4"),
        ("MAX_MEMORY_LIMIT_MB", "64"),
        ("SANDBOX_MEMORY_MB", "1024"),
    ])
    .arg("check-config")
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn each_worker_address_space_is_its_heap_its_stack_and_64_mib() {
    let sandbox = Sandbox::start(&[
        ("MAX_CONCURRENCY", "2"),
        ("MAX_MEMORY_LIMIT_MB", "100"),
        ("STACK_LIMIT_KB", "1024"),
        ("SANDBOX_MEMORY_MB", "1024"),
    ]);
    // README: MAX_MEMORY_LIMIT_MB + (4 × STACK_LIMIT_KB + 8 MiB) + 64 MiB = 100 + 12 + 64 MiB.
    let expected = (176 * MIB).to_string();
    let workers = sandbox.workers();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for pid in workers {
        assert_eq!(
            limits(pid, "Max address space"),
            (expected.clone(), expected.clone()),
            "worker {pid}"
        );
    }
}

#[tokio::test]
async fn a_request_that_does_not_fit_the_memory_budget_gets_503_and_retry_after_until_it_does() {
    const ANSWER_BYTES: usize = 64 * 1024;
    let app = spawn_app_with(|config| {
        config.max_concurrency = 2;
        config.max_memory_limit_mb = 64;
        config.max_result_bytes = ANSWER_BYTES;
        config.max_log_bytes = ANSWER_BYTES;
        config.max_body_bytes = 32 * 1024;
        // Room for one request of the largest body (twice 32 KiB) and the largest answer, a
        // streamed one: no more.
        let room =
            (sandbox::config::Config::body_charge(32 * 1024) + config.stream_charge()) as u64;
        config.sandbox_memory = Some(1 << 40);
        let plan = config.memory_plan().unwrap();
        config.sandbox_memory = Some(plan.total - plan.request_budget + room);
        let plan = config.memory_plan().unwrap();
        assert_eq!(plan.request_budget, room, "{plan:?}");
    })
    .await;

    // An endless script with a 30 000-byte comment, streamed, holds 60 000 bytes for its body
    // and its streamed answer's charge until its deadline.
    let holder = tokio::spawn({
        let app = app.clone();
        let code = format!("while (true) {{}} //{}", "x".repeat(30_000));
        async move {
            let stream = app
                .post_stream(json!({ "code": code, "timeoutMs": 10_000 }))
                .await
                .expect("a stream");
            stream.until_end().await.pop().expect("a result").json()
        }
    });
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    // While it runs it holds its body's charge and its answer's.
    let charged = app
        .metric("sandbox_memory_budget_bytes{share=\"requests_charged\"}")
        .await;
    // Streamed: the log once more, and room per entry (1000 and the one that says why output
    // was cut).
    let streamed = 5 * ANSWER_BYTES + 1001 * sandbox::config::STREAMED_ENTRY_OVERHEAD;
    assert!(charged >= (60_000 + streamed) as f64, "{charged}");
    let budget = app
        .metric("sandbox_memory_budget_bytes{share=\"requests\"}")
        .await;
    assert_eq!(budget, (64 * 1024 + streamed) as f64);

    // Another tenant, so a worker is free for it whatever the scheduler's shares; but the
    // answer of a second execution would not fit.
    let other_tenant = [("x-tenant-id", "other")];
    let second = json!({ "code": "1 + 1" });
    let refused = app.post_execute_with(&other_tenant, second.clone()).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.request_error_kind(), "overloaded");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "1");

    // A body that would not fit (twice 30 000 bytes) is refused before it is read: the head
    // alone gets the answer, where a body that was waited for would only end at the 10 s body
    // deadline with a 408.
    let mut connection = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    connection
        .write_all(
            b"POST /api/execute HTTP/1.1\r\nhost: sandbox\r\ncontent-type: application/json\r\n\
              content-length: 30000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"}}") {
        let mut piece = [0; 1024];
        let read = connection.read(&mut piece).await.unwrap();
        assert!(read > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&piece[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"overloaded\""), "{answer}");
    assert!(answer.contains("memory"), "{answer}");

    let refusals = app
        .metric("sandbox_rejections_total{tenant=\"anonymous\",reason=\"memory\"}")
        .await
        + app
            .metric("sandbox_rejections_total{tenant=\"other\",reason=\"memory\"}")
            .await;
    assert_eq!(refusals, 2.0);

    // Once the first answer has been handed over, its bytes are free again.
    let held = holder.await.unwrap();
    assert_eq!(held["error"]["kind"], "timeout", "{held}");
    let admitted = app.post_execute_with(&other_tenant, second).await;
    assert_eq!(admitted.status, 200, "{}", admitted.body);
}

/// Sends `head_bytes` of request head (a filler header) and returns the answer's status line.
async fn status_for_a_head_of(app: &super::support::TestApp, head_bytes: usize) -> String {
    let body = r#"{"code":"1"}"#;
    let start = format!(
        "POST /api/execute HTTP/1.1\r\nhost: sandbox\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-filler: ",
        body.len()
    );
    let filler = "a".repeat(head_bytes - start.len() - 4);
    let mut connection = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    connection
        .write_all(format!("{start}{filler}\r\n\r\n{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.windows(2).any(|pair| pair == b"\r\n") {
        let mut piece = [0; 1024];
        let read = connection.read(&mut piece).await.unwrap();
        assert!(read > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&piece[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_request_head_of_16_kib_is_read_and_one_above_32_kib_is_refused_with_431() {
    // What a connection's read buffer may hold is part of the supervisor's reserve.
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(
        status_for_a_head_of(&app, 16 * 1024).await,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        status_for_a_head_of(&app, 32 * 1024 + 1).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}
