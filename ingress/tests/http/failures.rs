//! A sandbox that is down, slow, or sent too much: JSON errors, never a hang, and recovery.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestSandbox, raw_exchange, spawn_app, spawn_app_with};

#[tokio::test]
async fn answers_502_while_the_sandbox_is_down_and_recovers_when_it_is_back() {
    let (ingress, sandbox) = spawn_app().await.into_parts();
    let script = json!({ "code": "1 + 1" });
    assert_eq!(
        ingress.http.post_execute(&script).await.status,
        StatusCode::OK
    );

    let addr = sandbox.addr();
    sandbox.stop().await;
    let down = ingress.http.post_execute(&script).await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);
    assert_eq!(down.error_kind(), "upstream_unavailable");
    assert_eq!(ingress.http.get("/healthz").await.status, StatusCode::OK);

    let _sandbox = TestSandbox::start_on(addr).await;
    let back = ingress.http.post_execute(&script).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.json()["result"], 2);
}

#[tokio::test]
async fn answers_504_when_the_sandbox_takes_longer_than_the_upstream_timeout() {
    let app = spawn_app_with(|config| config.upstream_timeout = Duration::from_millis(300)).await;

    let slow = app
        .http
        .post_execute(&json!({ "code": "while (true) {}", "timeoutMs": 3000 }))
        .await;

    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.error_kind(), "upstream_timeout");
    assert_eq!(
        app.admin
            .metric("ingress_upstream_errors_total{kind=\"timeout\"}")
            .await,
        1.0
    );
    // The ingress itself is unaffected.
    assert_eq!(app.http.get("/api/examples").await.status, StatusCode::OK);
}

/// A valid execute body of exactly `size` bytes.
fn execute_body(size: usize) -> Vec<u8> {
    let frame = r#"{"code":"1/**/"}"#;
    let padding = "x".repeat(size - frame.len());
    format!(r#"{{"code":"1/*{padding}*/"}}"#).into_bytes()
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_before_reaching_the_sandbox() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;
    let too_big = execute_body(1025);
    // The sandbox's own limit is far higher: this body is only refused by the ingress.
    assert_eq!(
        app.sandbox
            .http
            .post_execute_raw(too_big.clone())
            .await
            .status,
        StatusCode::OK
    );

    let refused = app.http.post_execute_raw(too_big).await;

    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.error_kind(), "payload_too_large");
}

#[tokio::test]
async fn bodies_at_the_limit_are_forwarded() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;

    let answer = app.http.post_execute_raw(execute_body(1024)).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["result"], 1);
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_413_too() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;
    let body = execute_body(2000);
    let (first, second) = body.split_at(1000);
    let mut request = format!(
        "POST /api/execute HTTP/1.1\r\nHost: ingress\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        first.len()
    )
    .into_bytes();
    request.extend_from_slice(first);
    request.extend_from_slice(format!("\r\n{:x}\r\n", second.len()).as_bytes());
    request.extend_from_slice(second);
    request.extend_from_slice(b"\r\n0\r\n\r\n");

    let (status, answer) = raw_exchange(app.addr(), &request).await;

    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains(r#""kind":"payload_too_large""#), "{answer}");
}
