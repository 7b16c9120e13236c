//! Sessions: state that lives across executions, with an owner, a lifetime and a budget
//! (`/api/sessions`), their executions answered whole or streamed.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    streaming::{named, result_of},
    support::{EventStream, TestApp, TestResponse, spawn_app, spawn_app_with},
};

const ACME: [(&str, &str); 1] = [("x-tenant-id", "acme")];
const BETA: [(&str, &str); 1] = [("x-tenant-id", "beta")];

/// Creates a session for `tenant` with `body`; its id.
async fn create(app: &TestApp, tenant: &[(&str, &str)], body: Value) -> String {
    let created = app
        .call(Method::POST, "/api/sessions", tenant, Some(body))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("an id").to_owned();
    assert!(
        created.body["expiresAt"].as_str().is_some(),
        "{}",
        created.body
    );
    id
}

async fn run_in(app: &TestApp, tenant: &[(&str, &str)], id: &str, body: Value) -> TestResponse {
    app.call(
        Method::POST,
        &format!("/api/sessions/{id}/execute"),
        tenant,
        Some(body),
    )
    .await
}

async fn state(app: &TestApp, tenant: &[(&str, &str)], id: &str) -> TestResponse {
    app.call(Method::GET, &format!("/api/sessions/{id}"), tenant, None)
        .await
}

/// Polls the session's state until `done` says so, for at most a minute.
async fn wait_for_state(
    app: &TestApp,
    tenant: &[(&str, &str)],
    id: &str,
    done: impl Fn(&TestResponse) -> bool,
) -> TestResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = state(app, tenant, id).await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "still {}", now.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn globals_of_one_execution_are_there_for_the_next_and_nowhere_else() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    assert_eq!(id.len(), 32, "128 bits in hex: {id}");

    let first = run_in(
        &app,
        &ACME,
        &id,
        json!({ "code": "x = 1; function twice(n) { return 2 * n }" }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = run_in(
        &app,
        &ACME,
        &id,
        json!({ "code": "console.log('again'); twice(x + 1)" }),
    )
    .await;
    assert_eq!(second.result(), &json!(4));
    assert_eq!(second.log()[0]["data"][0], "again", "{}", second.body);
    // The same answer shape as /api/execute.
    for field in ["status", "result", "error", "log", "executionTime"] {
        assert!(second.body.get(field).is_some(), "{field}: {}", second.body);
    }

    let now = state(&app, &ACME, &id).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    assert_eq!(now.body["executions"], 2, "{}", now.body);
    assert_eq!(now.body["busy"], false, "{}", now.body);
    assert!(
        now.body["memoryUsedBytes"].as_u64().unwrap() > 0,
        "{}",
        now.body
    );

    // Neither a stateless execution nor another session sees the session's globals.
    assert_eq!(app.run("typeof x").await.result(), &json!("undefined"));
    let other = create(&app, &ACME, json!({})).await;
    let unseen = run_in(&app, &ACME, &other, json!({ "code": "typeof x" })).await;
    assert_eq!(unseen.result(), &json!("undefined"));
    // Each session's Math.random is seeded on its own.
    let draw = "Array.from({ length: 4 }, Math.random)";
    let one = run_in(&app, &ACME, &id, json!({ "code": draw })).await;
    let two = run_in(&app, &ACME, &other, json!({ "code": draw })).await;
    assert_ne!(one.result(), two.result());
}

#[tokio::test]
async fn another_tenants_session_is_as_unknown_as_one_that_never_existed() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    let never = "0123456789abcdef0123456789abcdef";

    let theirs = state(&app, &BETA, &id).await;
    let unknown = state(&app, &BETA, never).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.request_error_kind(), "session_not_found");
    assert_eq!(theirs.body, unknown.body);

    let run = run_in(&app, &BETA, &id, json!({ "code": "1" })).await;
    assert_eq!(run.status, StatusCode::NOT_FOUND);
    assert_eq!(run.request_error_kind(), "session_not_found");
    let deleted = app
        .call(Method::DELETE, &format!("/api/sessions/{id}"), &BETA, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    // Still the owner's.
    let mine = run_in(&app, &ACME, &id, json!({ "code": "'still here'" })).await;
    assert_eq!(mine.result(), &json!("still here"));
}

#[tokio::test]
async fn a_deleted_session_is_gone() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    let deleted = app
        .call(Method::DELETE, &format!("/api/sessions/{id}"), &ACME, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = state(&app, &ACME, &id).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    assert_eq!(after.request_error_kind(), "session_not_found");
    let run = run_in(&app, &ACME, &id, json!({ "code": "1" })).await;
    assert_eq!(run.request_error_kind(), "session_not_found");
}

#[tokio::test]
async fn a_session_runs_one_execution_at_a_time() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    let looping = {
        let (app, id) = (app.clone(), id.clone());
        tokio::spawn(async move {
            run_in(
                &app,
                &ACME,
                &id,
                json!({ "code": "n = 7; while (true) {}", "timeoutMs": 1500 }),
            )
            .await
        })
    };
    wait_for_state(&app, &ACME, &id, |now| now.body["busy"] == true).await;

    let second = run_in(&app, &ACME, &id, json!({ "code": "1" })).await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert_eq!(second.request_error_kind(), "session_busy");
    let deleted = app
        .call(Method::DELETE, &format!("/api/sessions/{id}"), &ACME, None)
        .await;
    assert_eq!(deleted.request_error_kind(), "session_busy");

    // Stopped at the interrupt by its deadline: the session lives on, with what it had set.
    let looped = looping.await.unwrap();
    assert_eq!(looped.script_error_kind(), "timeout", "{}", looped.body);
    let after = run_in(&app, &ACME, &id, json!({ "code": "n * 6" })).await;
    assert_eq!(after.result(), &json!(42));
}

#[tokio::test]
async fn running_out_of_memory_ends_the_session_and_no_other() {
    let app = spawn_app().await;
    let doomed = create(&app, &ACME, json!({ "memoryLimitMb": 16 })).await;
    let other = create(&app, &ACME, json!({})).await;
    run_in(&app, &ACME, &other, json!({ "code": "kept = 'other'" })).await;

    let grown = run_in(&app, &ACME, &doomed, json!({ "code": "big = []; 1" })).await;
    assert_eq!(grown.result(), &json!(1));
    let out = run_in(
        &app,
        &ACME,
        &doomed,
        json!({ "code": "while (true) big.push(new Array(100000).fill(1))" }),
    )
    .await;
    assert_eq!(out.script_error_kind(), "session_lost", "{}", out.body);
    let message = out.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("memory"), "{message}");

    let after = state(&app, &ACME, &doomed).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    assert_eq!(after.request_error_kind(), "session_not_found");
    let lives = run_in(&app, &ACME, &other, json!({ "code": "kept" })).await;
    assert_eq!(lives.result(), &json!("other"));
    assert_eq!(
        app.metric("sandbox_session_events_total{event=\"lost\"}")
            .await,
        1.0
    );
    assert_eq!(app.metric("sandbox_sessions_open").await, 1.0);
}

#[tokio::test]
async fn an_execution_whose_worker_is_killed_ends_its_session_and_no_other() {
    let app = spawn_app_with(|config| config.watchdog_grace = Duration::from_millis(50)).await;
    let doomed = create(&app, &ACME, json!({})).await;
    let other = create(&app, &ACME, json!({})).await;
    run_in(&app, &ACME, &other, json!({ "code": "kept = 'other'" })).await;
    // One C call that never polls the interrupt handler: only the kill stops it.
    let unstoppable = "'a'.repeat(3e5).indexOf('a'.repeat(1e4) + 'b')";
    let killed = run_in(
        &app,
        &ACME,
        &doomed,
        json!({ "code": unstoppable, "timeoutMs": 100 }),
    )
    .await;
    assert_eq!(
        killed.script_error_kind(),
        "session_lost",
        "{}",
        killed.body
    );
    let message = killed.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("killed"), "{message}");
    assert_eq!(
        state(&app, &ACME, &doomed).await.request_error_kind(),
        "session_not_found"
    );
    let lives = run_in(&app, &ACME, &other, json!({ "code": "kept" })).await;
    assert_eq!(lives.result(), &json!("other"));
}

#[tokio::test]
async fn an_idle_session_expires_after_its_ttl() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({ "ttlSeconds": 1 })).await;
    assert_eq!(state(&app, &ACME, &id).await.body["ttlSeconds"], 1);
    let expired = wait_for_state(&app, &ACME, &id, |now| now.status == StatusCode::NOT_FOUND).await;
    assert_eq!(expired.request_error_kind(), "session_expired");
    let run = run_in(&app, &ACME, &id, json!({ "code": "1" })).await;
    assert_eq!(run.request_error_kind(), "session_expired");
    assert_eq!(
        app.metric("sandbox_session_events_total{event=\"expired\"}")
            .await,
        1.0
    );
    assert_eq!(app.metric("sandbox_sessions_open").await, 0.0);
    // To anyone else, still unknown.
    assert_eq!(
        state(&app, &BETA, &id).await.request_error_kind(),
        "session_not_found"
    );
    let longer = app
        .call(
            Method::POST,
            "/api/sessions",
            &ACME,
            Some(json!({ "ttlSeconds": 999_999 })),
        )
        .await;
    assert_eq!(
        longer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        longer.body
    );
}

#[tokio::test]
async fn creation_past_a_cap_is_refused_and_open_sessions_stay() {
    let app = spawn_app_with(|config| config.sessions.max_open = 2).await;
    let capped = [("x-tenant-id", "acme"), ("x-tenant-limits", "sessions=1")];
    let first = create(&app, &capped, json!({})).await;
    let refused = app
        .call(Method::POST, "/api/sessions", &capped, Some(json!({})))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.request_error_kind(), "session_limit");
    assert!(refused.headers.contains_key("retry-after"));

    create(&app, &BETA, json!({})).await;
    let full = app
        .call(
            Method::POST,
            "/api/sessions",
            &[("x-tenant-id", "gamma")],
            Some(json!({})),
        )
        .await;
    assert_eq!(
        full.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        full.body
    );
    assert_eq!(full.request_error_kind(), "session_limit");
    assert!(full.headers.contains_key("retry-after"));

    let off = [
        ("x-tenant-id", "anonymous"),
        ("x-tenant-limits", "sessions=0"),
    ];
    let refused = app
        .call(Method::POST, "/api/sessions", &off, Some(json!({})))
        .await;
    assert_eq!(refused.request_error_kind(), "session_limit");

    // Nothing was dropped to make room.
    let still = run_in(&app, &capped, &first, json!({ "code": "'open'" })).await;
    assert_eq!(still.result(), &json!("open"));
    // Ending one makes room.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/sessions/{first}"),
            &capped,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    create(&app, &capped, json!({})).await;
}

#[tokio::test]
async fn a_session_execution_takes_no_memory_limit_of_its_own() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({ "timeoutMs": 300 })).await;
    let refused = run_in(&app, &ACME, &id, json!({ "code": "1", "memoryLimitMb": 8 })).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("memoryLimitMb:"),
        "{}",
        refused.body
    );
    // The session's timeout is its executions' default.
    let looped = run_in(&app, &ACME, &id, json!({ "code": "while (true) {}" })).await;
    assert_eq!(looped.script_error_kind(), "timeout");
    assert!(
        looped.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300"),
        "{}",
        looped.body
    );
}

/// `POST /api/sessions/{id}/execute` of `body` for `tenant`, asking for a stream: the stream,
/// or the whole answer when it is not one.
async fn stream_in(
    app: &TestApp,
    tenant: &[(&str, &str)],
    id: &str,
    body: Value,
) -> Result<EventStream, TestResponse> {
    let mut headers = tenant.to_vec();
    headers.push(("accept", contract::api::EVENT_STREAM));
    app.post_for_stream(&format!("/api/sessions/{id}/execute"), &headers, body)
        .await
}

#[tokio::test]
async fn a_session_streams_its_console_entries_before_its_result_and_keeps_its_state() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    let code = "console.log('first'); x = 41;
        new Promise((resolve) => setTimeout(() => { console.log('second'); resolve(x); }, 500))";
    let stream = stream_in(&app, &ACME, &id, json!({ "code": code }))
        .await
        .expect("a stream");
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers["content-type"], contract::api::EVENT_STREAM);
    let events = stream.until_end().await;
    let logs = named(&events, "log");
    let data: Vec<Value> = logs
        .iter()
        .map(|event| event.json()["data"].clone())
        .collect();
    assert_eq!(data, [json!(["first"]), json!(["second"])], "{events:?}");
    let result = result_of(&events);
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["result"], 41, "{result}");
    let entries: Vec<Value> = logs.iter().map(|event| event.json()).collect();
    assert_eq!(result["log"], Value::Array(entries), "{result}");
    // The first entry was made 500 ms of timer before the end: sent as it was made, it
    // arrives that much before the result; held back to the end, with it.
    let ahead = events
        .last()
        .unwrap()
        .arrived
        .duration_since(logs[0].arrived);
    assert!(ahead >= Duration::from_millis(400), "{ahead:?}");

    // What the streamed execution set is there for a plain one, and the other way round.
    let plain = run_in(&app, &ACME, &id, json!({ "code": "y = x + 1" })).await;
    assert_eq!(plain.result(), &json!(42));
    let events = stream_in(&app, &ACME, &id, json!({ "code": "console.log(y); y * 2" }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    assert_eq!(named(&events, "log")[0].json()["data"], json!([42]));
    assert_eq!(result_of(&events)["result"], 84);
    assert_eq!(state(&app, &ACME, &id).await.body["executions"], 3);
}

#[tokio::test]
async fn a_streamed_session_execution_refused_before_it_runs_is_a_plain_json_error() {
    let app = spawn_app().await;
    let never = "0123456789abcdef0123456789abcdef";
    let unknown = stream_in(&app, &ACME, never, json!({ "code": "1" }))
        .await
        .err()
        .expect("no stream for an unknown session");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert_eq!(unknown.request_error_kind(), "session_not_found");

    let id = create(&app, &ACME, json!({})).await;
    let looping = {
        let (app, id) = (app.clone(), id.clone());
        tokio::spawn(async move {
            stream_in(
                &app,
                &ACME,
                &id,
                json!({ "code": "n = 7; console.log('looping'); while (true) {}", "timeoutMs": 1500 }),
            )
            .await
            .expect("a stream")
            .until_end()
            .await
        })
    };
    wait_for_state(&app, &ACME, &id, |now| now.body["busy"] == true).await;
    let busy = stream_in(&app, &ACME, &id, json!({ "code": "1" }))
        .await
        .err()
        .expect("no stream while the session is busy");
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.headers["content-type"], "application/json");
    assert_eq!(busy.request_error_kind(), "session_busy");

    // Stopped at the interrupt by its deadline, in the stream's result: the session lives on.
    let events = looping.await.unwrap();
    assert_eq!(named(&events, "log")[0].json()["data"], json!(["looping"]));
    assert_eq!(result_of(&events)["error"]["kind"], "timeout", "{events:?}");
    let after = run_in(&app, &ACME, &id, json!({ "code": "n * 6" })).await;
    assert_eq!(after.result(), &json!(42));
}

#[tokio::test]
async fn a_session_lost_in_a_stream_says_so_in_its_result_event() {
    let app = spawn_app().await;
    let doomed = create(&app, &ACME, json!({ "memoryLimitMb": 16 })).await;
    let code = "console.log('growing'); big = []; while (true) big.push(new Array(100000).fill(1))";
    let events = stream_in(&app, &ACME, &doomed, json!({ "code": code }))
        .await
        .expect("a stream")
        .until_end()
        .await;
    assert_eq!(named(&events, "log")[0].json()["data"], json!(["growing"]));
    let result = result_of(&events);
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["error"]["kind"], "session_lost", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{result}"
    );
    assert_eq!(
        state(&app, &ACME, &doomed).await.request_error_kind(),
        "session_not_found"
    );
    assert_eq!(
        app.metric("sandbox_session_events_total{event=\"lost\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_client_that_leaves_a_sessions_stream_stops_its_execution_and_the_session_lives_on() {
    let app = spawn_app().await;
    let id = create(&app, &ACME, json!({})).await;
    let timeout = Duration::from_secs(20);
    let mut stream = stream_in(
        &app,
        &ACME,
        &id,
        json!({
            "code": "kept = 'yes'; console.log('looping'); while (true) {}",
            "timeoutMs": timeout.as_millis() as u64,
        }),
    )
    .await
    .expect("a stream");
    let first = stream.next().await.expect("an event");
    assert_eq!(first.json()["data"], json!(["looping"]));
    let left = Instant::now();
    drop(stream);

    // Cancelled, the execution stops at its next interrupt check, long before its deadline.
    wait_for_state(&app, &ACME, &id, |now| now.body["busy"] == false).await;
    assert!(left.elapsed() < timeout, "{:?}", left.elapsed());
    let after = run_in(&app, &ACME, &id, json!({ "code": "kept" })).await;
    assert_eq!(after.result(), &json!("yes"));
}
