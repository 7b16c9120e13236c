//! What the sandbox answers reaches the client unchanged.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::spawn_app;

/// An execution answer without the parts that differ from one run to the next.
fn without_timings(mut answer: Value) -> Value {
    answer["executionTime"] = Value::Null;
    if let Some(entries) = answer["log"].as_array_mut() {
        for entry in entries {
            entry["timestamp"] = Value::Null;
        }
    }
    answer
}

#[tokio::test]
async fn examples_are_proxied_byte_for_byte() {
    let app = spawn_app().await;

    let direct = app.sandbox.http.get("/api/examples").await;
    let proxied = app.http.get("/api/examples").await;

    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(proxied.status, direct.status);
    assert_eq!(
        proxied.header("content-type"),
        direct.header("content-type")
    );
    assert_eq!(proxied.body, direct.body);
}

#[tokio::test]
async fn sandbox_request_errors_are_proxied_byte_for_byte() {
    let app = spawn_app().await;

    for body in [
        &b"{not json"[..],
        br#"{"code": 5}"#,
        br#"{"file": "no-such-example.js"}"#,
    ] {
        let direct = app.sandbox.http.post_execute_raw(body).await;
        let proxied = app.http.post_execute_raw(body).await;

        assert!(direct.status.is_client_error(), "{:?}", direct.status);
        assert_eq!(proxied.status, direct.status);
        assert_eq!(
            proxied.header("content-type"),
            direct.header("content-type")
        );
        assert_eq!(
            proxied.body,
            direct.body,
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn successful_executions_are_proxied_unchanged() {
    let app = spawn_app().await;
    let script = json!({ "code": "console.log('hello', { a: 1 }); [1, 2, 3].map((n) => n * 2)" });

    let direct = app.sandbox.http.post_execute(&script).await;
    let proxied = app.http.post_execute(&script).await;

    assert_eq!(proxied.status, StatusCode::OK);
    assert_eq!(proxied.json()["status"], "success");
    assert_eq!(proxied.json()["result"], json!([2, 4, 6]));
    assert_eq!(
        proxied.header("content-type"),
        direct.header("content-type")
    );
    assert_eq!(
        without_timings(proxied.json()),
        without_timings(direct.json())
    );
}

#[tokio::test]
async fn typescript_reaches_the_sandbox_with_its_language() {
    let app = spawn_app().await;
    let script = json!({
        "code": "interface Item { price: number }\nconst items: Item[] = [{ price: 2 }];\n\
                 items.map((item: Item): number => item.price * 21)",
        "language": "typescript",
    });

    let direct = app.sandbox.http.post_execute(&script).await;
    let proxied = app.http.post_execute(&script).await;

    assert_eq!(proxied.status, StatusCode::OK);
    assert_eq!(proxied.json()["result"], json!([42]), "{}", proxied.json());
    assert_eq!(
        without_timings(proxied.json()),
        without_timings(direct.json())
    );
    let unknown = app
        .http
        .post_execute(&json!({ "code": "1", "language": "python" }))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.error_kind(), "invalid_request");
}

#[tokio::test]
async fn failed_executions_are_proxied_unchanged() {
    let app = spawn_app().await;
    let script = json!({ "code": "function f() { throw new TypeError('boom'); }\nf();" });

    let direct = app.sandbox.http.post_execute(&script).await;
    let proxied = app.http.post_execute(&script).await;

    assert_eq!(proxied.status, StatusCode::OK);
    assert_eq!(proxied.json()["status"], "error");
    assert_eq!(proxied.json()["error"]["kind"], "exception");
    assert_eq!(
        without_timings(proxied.json()),
        without_timings(direct.json())
    );
}

#[tokio::test]
async fn the_method_reaches_the_sandbox_as_sent() {
    let app = spawn_app().await;

    let direct = app
        .sandbox
        .http
        .call(Method::DELETE, "/api/execute", &[], "")
        .await;
    let proxied = app.http.call(Method::DELETE, "/api/execute", &[], "").await;

    assert_eq!(direct.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(proxied.status, direct.status);
}

#[tokio::test]
async fn many_requests_share_pooled_connections_to_the_sandbox() {
    let app = spawn_app().await;
    let script = json!({ "code": "6 * 7" });

    for _ in 0..10 {
        let answer = app.http.post_execute(&script).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["result"], 42);
    }
}
