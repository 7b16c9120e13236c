//! Limits: time, memory, stack, output and capacity, each enforced and each reported.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, spawn_app_with};

/// Scripts that never end on their own, each in a different place the deadline must reach.
const ENDLESS: &[(&str, &str)] = &[
    ("plain loop", "while (true) {}"),
    (
        "loop in try/finally",
        "try { while (true) {} } finally { while (true) {} }",
    ),
    (
        "catching loop",
        "while (true) { try { while (true) {} } catch (e) {} }",
    ),
    (
        "endless microtasks",
        "(async () => { while (true) await null; })()",
    ),
    (
        "endless promise chain",
        "function step() { return Promise.resolve().then(step); } step()",
    ),
    ("endless timers", "setInterval(() => {}, 0); 1"),
    (
        "getter during result serialisation",
        "({ get x() { while (true) {} } })",
    ),
    (
        "getter during console serialisation",
        "console.log({ get x() { while (true) {} } })",
    ),
    ("toJSON loop", "({ toJSON() { while (true) {} } })"),
    (
        "proxy trap loop",
        "new Proxy({}, { ownKeys() { while (true) {} } })",
    ),
    (
        "sleeping past the deadline",
        "new Promise((resolve) => setTimeout(resolve, 60000))",
    ),
];

#[tokio::test]
async fn every_endless_script_ends_in_a_timeout_near_its_deadline() {
    let app = spawn_app().await;
    for (what, code) in ENDLESS {
        let started = Instant::now();
        let response = app.run_with_timeout(code, 300).await;
        let kind = response.script_error_kind();
        assert!(
            kind == "timeout" || (*what == "endless promise chain" && kind == "memory"),
            "{what}: {}",
            response.body
        );
        // The bound is the feature: these scripts never end on their own, and the deadline
        // (300 ms plus the documented 250 ms grace) must end them. It leaves ten times that
        // for a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{what} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn timeout_keeps_the_console_output_before_it() {
    let app = spawn_app().await;
    let response = app
        .run_with_timeout("console.log('started'); while (true) {}", 200)
        .await;
    assert_eq!(response.script_error_kind(), "timeout");
    assert_eq!(response.body["error"]["name"], "TimeoutError");
    assert_eq!(response.log()[0]["data"], json!(["started"]));
}

#[tokio::test]
async fn runaway_recursion_is_a_stack_overflow() {
    let app = spawn_app().await;
    let response = app
        .run("function down(n) { return down(n + 1) + 1; } down(0)")
        .await;
    assert_eq!(response.script_error_kind(), "stack_overflow");
}

#[tokio::test]
async fn memory_bombs_hit_the_memory_limit() {
    let app = spawn_app().await;
    for code in [
        "const keep = []; while (true) keep.push(new Array(10000).fill(1));",
        "const parts = []; while (true) parts.push('x'.repeat(100000) + parts.length);",
    ] {
        let response = app
            .post_execute(json!({ "code": code, "memoryLimitMb": 16, "timeoutMs": 20000 }))
            .await;
        assert_eq!(
            response.script_error_kind(),
            "memory",
            "{code}: {}",
            response.body
        );
    }
}

#[tokio::test]
async fn many_memory_hungry_scripts_leave_the_service_healthy() {
    // Admission is not what this tests: the eight wait their turns however slowly a loaded
    // machine runs them.
    let app = spawn_app_with(|config| config.queue_timeout = Duration::from_secs(60)).await;
    let bomb = json!({ "code": "const keep = []; while (true) keep.push(new Array(10000).fill(1));", "memoryLimitMb": 32 });
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (app, bomb) = (app.clone(), bomb.clone());
            tokio::spawn(async move { app.post_execute(bomb).await })
        })
        .collect();
    for run in runs {
        let response = run.await.unwrap();
        assert_eq!(response.script_error_kind(), "memory", "{}", response.body);
    }
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.run("1").await.result(), &json!(1));
}

#[tokio::test]
async fn a_too_large_result_is_an_output_limit_error() {
    let app = spawn_app_with(|config| config.max_result_bytes = 10_000).await;
    let response = app.run("'x'.repeat(20000)").await;
    assert_eq!(response.script_error_kind(), "output_limit");
    let response = app.run("Array.from({ length: 5000 }, (_, i) => i)").await;
    assert_eq!(response.script_error_kind(), "output_limit");
    assert_eq!(
        app.run("'x'.repeat(100)")
            .await
            .result()
            .as_str()
            .unwrap()
            .len(),
        100
    );
}

#[tokio::test]
async fn console_output_is_capped_with_a_marker() {
    let app = spawn_app_with(|config| config.max_log_entries = 10).await;
    let response = app
        .run("for (let i = 0; i < 1000; i++) console.log(i); 'done'")
        .await;
    assert_eq!(response.result(), &json!("done"));
    let log = response.log();
    assert_eq!(log.len(), 11);
    assert_eq!(log[10]["type"], "truncated");
    assert_eq!(response.body["logTruncated"], true);
}

#[tokio::test]
async fn console_bytes_are_capped_with_a_marker() {
    let app = spawn_app_with(|config| config.max_log_bytes = 1000).await;
    let response = app
        .run("console.log('x'.repeat(100000)); console.log('dropped'); 1")
        .await;
    let log = response.log();
    let text = log[0]["data"][0].as_str().unwrap();
    assert!(
        text.len() < 1100 && text.ends_with("[truncated]"),
        "{}",
        text.len()
    );
    assert_eq!(log.last().unwrap()["type"], "truncated");
    assert!(!response.body.to_string().contains("dropped"));
}

#[tokio::test]
async fn saturation_answers_503_at_once_and_the_service_stays_healthy() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_capacity = 1;
        config.queue_timeout = Duration::from_secs(30);
    })
    .await;
    // Holds the only worker until this test lets go (a client that leaves has its script
    // cancelled), so "at once" below means: while the worker is still held.
    let busy = app.hold_a_worker(30_000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    // Three requests for one waiting place: one waits, two are refused.
    let requests: Vec<_> = (0..3)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { app.run(&format!("'request {n}'")).await })
        })
        .collect();
    let rejected = "sandbox_rejections_total{tenant=\"anonymous\",reason=\"queue_full\"}";
    app.wait_for_metric(rejected, 2.0).await;
    assert!(
        !busy.is_finished(),
        "the worker was freed before the refusals"
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    busy.abort();
    let mut served = 0;
    for request in requests {
        let response = request.await.unwrap();
        if response.status == StatusCode::OK {
            served += 1;
            continue;
        }
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.request_error_kind(), "overloaded");
        assert!(response.headers.contains_key("retry-after"));
    }
    assert_eq!(
        served, 1,
        "the waiting request runs once the worker is free"
    );
    assert_eq!(app.metric(rejected).await, 2.0);
}

#[tokio::test]
async fn a_queued_request_gets_503_when_no_worker_frees_up_in_time() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = Duration::from_millis(200);
    })
    .await;
    let busy = app.hold_a_worker(30_000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    let response = app.run("1").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.request_error_kind(), "overloaded");
    assert_eq!(
        app.metric("sandbox_rejections_total{tenant=\"anonymous\",reason=\"queue_timeout\"}")
            .await,
        1.0
    );
    assert!(!busy.is_finished(), "the worker was freed while it waited");
    busy.abort();
}

/// `JSON.stringify` of a large array runs in C without consulting the interrupt handler, so
/// only the supervisor's kill can end it on time.
const UNINTERRUPTIBLE: &str = "JSON.stringify(new Array(6e6).fill('abcdefghij')).length";

#[tokio::test]
async fn a_script_the_engine_cannot_stop_is_killed_at_its_deadline_and_health_stays_ok() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.watchdog_grace = Duration::from_millis(100);
    })
    .await;
    let started = Instant::now();
    let response = app
        .post_execute(json!({ "code": UNINTERRUPTIBLE, "timeoutMs": 50, "memoryLimitMb": 256 }))
        .await;
    let answered = started.elapsed();
    response.assert_killed();
    // The bound is the feature: the deadline plus the grace (150 ms), with room for a loaded
    // machine; the answer says the kill ended it, and the script alone runs for 3.5 s in a
    // debug build on an idle machine, longer on a busy one.
    assert!(answered < Duration::from_secs(3), "{answered:?}");
    // Nothing of it is left running, so the service is healthy and serves at once.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.run("2 + 2").await.result(), &json!(4));
}

#[tokio::test]
async fn a_client_that_hangs_up_has_its_script_stopped_and_its_worker_freed() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = Duration::from_secs(10);
    })
    .await;
    let hung_up = app.hold_a_worker(30_000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    hung_up.abort();
    let started = Instant::now();
    assert_eq!(app.run("'next'").await.result(), &json!("next"));
    // The endless script was cancelled when its client left, long before its 30 s deadline;
    // the next request waited for that, never ran beside it. The bound is the feature, with
    // room for a loaded machine: a cancellation takes milliseconds.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_answer_the_client_does_not_read_is_dropped_after_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(|config| {
        config.connections.write_timeout = Duration::from_millis(300);
        config.max_log_bytes = 32 << 20;
        config.max_log_entries = 100_000;
    })
    .await;
    // A 16 MiB console log makes an answer far larger than the socket buffers can hold.
    let code = "for (let i = 0; i < 16000; i++) console.log('x'.repeat(1000)); 1";
    // Seconds in a debug build on a loaded machine: the time limit is not what this test is about.
    let body = json!({ "code": code, "memoryLimitMb": 128, "timeoutMs": 30000 }).to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    let request = format!(
        "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Once the execution has finished, its answer is being written: read nothing for well
    // past the write timeout (this client's behaviour, not a wait for the server).
    app.wait_for_metric(
        "sandbox_executions_total{tenant=\"anonymous\",outcome=\"success\"}",
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    // The server gave up on the answer: the connection ended before all of it was sent.
    let total = match read {
        Ok(Ok(_)) | Ok(Err(_)) => received.len(),
        Err(_) => panic!("the connection was still open after the write timeout"),
    };
    assert!(total < 16_000_000, "{total} bytes arrived");
    // Everyone else is served.
    assert_eq!(app.run("1 + 1").await.result(), &json!(2));
}

#[tokio::test]
async fn a_result_of_exactly_max_result_bytes_is_answered_and_one_byte_more_is_an_output_limit_error()
 {
    // The default limit, 1 MiB: a string result's JSON is its characters and two quotes.
    let app = spawn_app().await;
    let limit = sandbox::Config::default().max_result_bytes;
    let at_the_limit = app.run(&format!("'a'.repeat({})", limit - 2)).await;
    assert_eq!(
        at_the_limit.result().as_str().map(str::len),
        Some(limit - 2)
    );
    let over = app.run(&format!("'a'.repeat({})", limit - 1)).await;
    assert_eq!(over.script_error_kind(), "output_limit", "{}", over.body);

    // A structured result is measured the same way: `{"k":[1,"…"]}` is 12 bytes around the text.
    let app = spawn_app_with(|config| config.max_result_bytes = 1000).await;
    let at_the_limit = app.run("({ k: [1, 'b'.repeat(988)] })").await;
    assert_eq!(at_the_limit.result().to_string().len(), 1000);
    let over = app.run("({ k: [1, 'b'.repeat(989)] })").await;
    assert_eq!(over.script_error_kind(), "output_limit", "{}", over.body);
}
