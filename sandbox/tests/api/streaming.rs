//! `POST /api/execute` with `Accept: text/event-stream`: console entries as events while the
//! script runs, the same answer at the end, the same limits and refusals, and a client that
//! leaves has its execution stopped.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{StreamEvent, spawn_app, spawn_app_with};

/// The events named `name`.
pub(crate) fn named<'a>(events: &'a [StreamEvent], name: &str) -> Vec<&'a StreamEvent> {
    events
        .iter()
        .filter(|event| event.name.as_deref() == Some(name))
        .collect()
}

/// The one `result` event, after checking it is the last event of the stream.
pub(crate) fn result_of(events: &[StreamEvent]) -> Value {
    let last = events.last().expect("the stream has events");
    assert_eq!(last.name.as_deref(), Some("result"), "{events:?}");
    assert_eq!(named(events, "result").len(), 1, "{events:?}");
    last.json()
}

#[tokio::test]
async fn a_stream_sends_each_console_entry_while_the_script_still_runs() {
    let app = spawn_app().await;
    // Logs, keeps the engine busy for 1 s, logs, then waits 500 ms on a timer and logs.
    let code = "console.log('first');
        const until = Date.now() + 1000;
        while (Date.now() < until) {}
        console.log('second');
        new Promise((resolve) => setTimeout(() => { console.log('third'); resolve(42); }, 500))";
    let stream = app
        .post_stream(json!({ "code": code, "timeoutMs": 10000 }))
        .await
        .expect("a stream");
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["cache-control"], "no-cache");
    let events = stream.until_end().await;
    let logs = named(&events, "log");
    let data: Vec<Value> = logs
        .iter()
        .map(|event| event.json()["data"].clone())
        .collect();
    assert_eq!(
        data,
        [json!(["first"]), json!(["second"]), json!(["third"])]
    );
    let result = events.last().unwrap();
    assert_eq!(result_of(&events)["result"], 42);
    // Held back to the end, every entry would arrive with the result; sent as they are made,
    // the first comes 1.5 s of running script before it and the second 500 ms of timer.
    let before_result = |event: &StreamEvent| result.arrived.duration_since(event.arrived);
    assert!(
        before_result(logs[0]) >= Duration::from_millis(1200),
        "{:?}",
        before_result(logs[0])
    );
    assert!(
        before_result(logs[1]) >= Duration::from_millis(400),
        "{:?}",
        before_result(logs[1])
    );
}

#[tokio::test]
async fn the_progress_example_streams_each_step_as_its_timer_fires() {
    let app = spawn_app().await;
    let events = app
        .post_stream(json!({ "file": "progress.js", "timeoutMs": 10000 }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    let logs = named(&events, "log");
    let first: Vec<Value> = logs
        .iter()
        .map(|event| event.json()["data"][0].clone())
        .collect();
    assert_eq!(
        first,
        (1..=8)
            .map(|step| json!(format!("step {step} of 8")))
            .collect::<Vec<_>>()
    );
    assert_eq!(result_of(&events)["result"]["steps"], 8);
    // Its timers fire every 250 ms: the first step is shown 1.75 s of timers before the end.
    let result = events.last().unwrap();
    let first_ahead = result.arrived.duration_since(logs[0].arrived);
    assert!(
        first_ahead >= Duration::from_millis(1000),
        "{first_ahead:?}"
    );
}

#[tokio::test]
async fn a_stream_ends_with_the_answer_a_plain_request_gets_and_its_entries_are_the_log() {
    let app = spawn_app().await;
    let code = "console.info('i', {a: [1, 'x']}); console.warn(undefined, NaN, 10n);
        console.table([{a: 1}]); console.count(); console.error(new Error('e'));
        ({ sum: 1 + 2, text: 'caf\\u00e9 \"quoted\"\\nline' })";
    let plain = app.run(code).await;
    let events = app
        .post_stream(json!({ "code": code }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    let streamed = result_of(&events);
    let entries: Vec<Value> = named(&events, "log")
        .iter()
        .map(|event| event.json())
        .collect();
    assert_eq!(
        Value::Array(entries.clone()),
        streamed["log"],
        "the events are the log"
    );

    // The same answer but for when it ran: timestamps and the execution time.
    let without_times = |answer: &Value| {
        let mut answer = answer.clone();
        answer["executionTime"] = Value::Null;
        for entry in answer["log"].as_array_mut().unwrap() {
            entry["timestamp"] = Value::Null;
        }
        answer
    };
    assert_eq!(without_times(&streamed), without_times(&plain.body));
    assert_eq!(
        streamed["result"],
        json!({"sum": 3, "text": "caf\u{e9} \"quoted\"\nline"})
    );
    assert_eq!(entries.len(), 5);
}

#[tokio::test]
async fn a_stream_of_a_script_that_runs_out_of_time_ends_with_its_timeout_and_the_logs_before() {
    let app = spawn_app().await;
    let events = app
        .post_stream(json!({ "code": "console.log('looping'); while (true) {}", "timeoutMs": 200 }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    let result = result_of(&events);
    assert_eq!(result["status"], "error");
    assert_eq!(result["error"]["kind"], "timeout");
    let logs = named(&events, "log");
    assert_eq!(logs.len(), 1, "{events:?}");
    assert_eq!(logs[0].json()["data"], json!(["looping"]));
    assert_eq!(result["log"][0], logs[0].json());
}

#[tokio::test]
async fn the_console_caps_hold_for_streams_and_the_truncation_entry_is_streamed_too() {
    let app = spawn_app_with(|config| config.max_log_entries = 5).await;
    let events = app
        .post_stream(json!({ "code": "for (let i = 0; i < 50; i++) console.log(i); 'done'" }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    let result = result_of(&events);
    assert_eq!(result["result"], "done");
    assert_eq!(result["logTruncated"], true);
    let logs: Vec<Value> = named(&events, "log")
        .iter()
        .map(|event| event.json())
        .collect();
    assert_eq!(
        logs.len(),
        6,
        "five entries and the one that says why: {logs:?}"
    );
    assert_eq!(logs[5]["type"], "truncated");
    assert_eq!(Value::Array(logs), result["log"]);
}

#[tokio::test]
async fn requests_refused_before_they_run_are_plain_http_errors_when_streaming() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = Duration::from_millis(200);
    })
    .await;
    let refused = app
        .post_stream(json!({ "code": "" }))
        .await
        .err()
        .expect("not a stream");
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.request_error_kind(), "invalid_request");
    let refused = app
        .post_stream(json!({ "code": "1", "timeout": 5 }))
        .await
        .err()
        .expect("not a stream");
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    let busy = app.hold_a_worker(30_000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    let refused = app
        .post_stream(json!({ "code": "1" }))
        .await
        .err()
        .expect("not a stream");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.request_error_kind(), "overloaded");
    assert!(refused.headers.contains_key("retry-after"));
    busy.abort();
}

#[tokio::test]
async fn only_a_client_that_names_the_event_stream_gets_one() {
    let app = spawn_app().await;
    for accept in ["*/*", "application/json", "text/event-stream;q=0"] {
        let answer = app
            .post_accepting(accept, json!({ "code": "console.log(1); 2" }))
            .await
            .err()
            .expect("a whole answer");
        assert_eq!(answer.result(), &json!(2), "{accept}");
        assert_eq!(answer.headers["content-type"], "application/json");
    }
    let stream = app
        .post_accepting(
            "application/json;q=0.5, text/event-stream",
            json!({ "code": "2" }),
        )
        .await
        .expect("a stream");
    assert_eq!(result_of(&stream.until_end().await)["result"], 2);
}

#[tokio::test]
async fn a_streaming_client_that_leaves_has_its_script_stopped_and_counted_as_cancelled() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = Duration::from_secs(30);
    })
    .await;
    let mut stream = app
        .post_stream(
            json!({ "code": "console.log('started'); while (true) {}", "timeoutMs": 30000 }),
        )
        .await
        .expect("a stream");
    let first = stream.next().await.expect("an event");
    assert_eq!(first.name.as_deref(), Some("log"), "{first:?}");
    drop(stream);

    let started = Instant::now();
    assert_eq!(app.run("'next'").await.result(), &json!("next"));
    // The only worker ran the endless script until its 30 s deadline unless the departure
    // stopped it; the bound is the feature, with room for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"cancelled\"}")
            .await,
        1.0
    );
}

/// `JSON.stringify` of a large array runs in C without consulting the interrupt handler, for
/// seconds in a debug build.
const UNINTERRUPTIBLE: &str = "JSON.stringify(new Array(6e6).fill('abcdefghij')).length";

#[tokio::test]
async fn a_left_execution_that_does_not_stop_has_its_worker_killed_after_the_grace() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.watchdog_grace = Duration::from_millis(100);
        config.queue_timeout = Duration::from_secs(30);
    })
    .await;
    let left = {
        let app = app.clone();
        tokio::spawn(async move {
            app.post_execute(
                json!({ "code": UNINTERRUPTIBLE, "timeoutMs": 30000, "memoryLimitMb": 256 }),
            )
            .await
        })
    };
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    left.abort();
    let started = Instant::now();
    assert_eq!(app.run("'next'").await.result(), &json!("next"));
    // The script alone runs for 3.5 s in a debug build on an idle machine; killed 100 ms after
    // its client left, the next request is served long before that.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        app.metric_sum("sandbox_worker_exits_total{reason=\"timeout\",")
            .await,
        1.0,
        "its worker was killed"
    );
}

#[tokio::test]
async fn a_silent_stream_gets_a_heartbeat_comment() {
    let app = spawn_app().await;
    let silence = contract::api::HEARTBEAT_INTERVAL + Duration::from_secs(1);
    let code = format!(
        "new Promise((resolve) => setTimeout(() => resolve('woke'), {}))",
        silence.as_millis()
    );
    let events = app
        .post_stream(json!({ "code": code, "timeoutMs": 30000 }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    assert_eq!(events.len(), 2, "a heartbeat, then the result: {events:?}");
    assert_eq!(events[0].name, None, "a comment line: {events:?}");
    assert_eq!(result_of(&events)["result"], "woke");
}

#[tokio::test]
async fn a_streaming_client_that_reads_nothing_holds_neither_the_worker_nor_memory_for_long() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.connections.write_timeout = Duration::from_millis(300);
        config.max_log_bytes = 32 << 20;
        config.max_log_entries = 100_000;
    })
    .await;
    // 16 MiB of console entries, far more than the socket buffers hold; seconds in a debug
    // build on a loaded machine, so the time limit is not what this test is about.
    let code = "for (let i = 0; i < 16000; i++) console.log('x'.repeat(1000)); 1";
    let body = json!({ "code": code, "memoryLimitMb": 128, "timeoutMs": 30000 }).to_string();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    let request = format!(
        "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Accept: text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();

    // The execution ends, by its own end or cancelled once the connection that made no
    // progress for the write timeout was dropped, never waiting for the client; the only
    // worker is free for the next request at once.
    app.wait_for("the execution's end", 1.0, |app| async move {
        app.metric_sum("sandbox_executions_total{tenant=\"anonymous\",")
            .await
    })
    .await;
    assert_eq!(app.run("1 + 1").await.result(), &json!(2));
    // What waits for the client is charged to the memory budget, and given back once the
    // connection that made no progress for the write timeout is dropped.
    let charged = "sandbox_memory_budget_bytes{share=\"requests_charged\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric(charged).await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the stream's charge was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    let total = match read {
        Ok(Ok(_)) | Ok(Err(_)) => received.len(),
        Err(_) => panic!("the connection was still open after the write timeout"),
    };
    assert!(total < 16_000_000, "{total} bytes arrived");
}
