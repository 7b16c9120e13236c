//! Every answer carries the request's id: the client's own when sane, a fresh one otherwise.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn a_sane_client_request_id_goes_to_the_sandbox_and_comes_back() {
    let app = spawn_app().await;
    let id = "client-7f3a:42";
    let headers = [("content-type", "application/json"), ("x-request-id", id)];
    let script = serde_json::to_vec(&json!({ "code": "1" })).unwrap();

    // The sandbox returns the id it was given, so seeing the client's id come back through the
    // ingress shows the ingress forwarded it rather than replacing it.
    let direct = app
        .sandbox
        .http
        .call(Method::POST, "/api/execute", &headers, script.clone())
        .await;
    assert_eq!(direct.header("x-request-id"), Some(id));

    let proxied = app
        .http
        .call(Method::POST, "/api/execute", &headers, script)
        .await;

    assert_eq!(proxied.status, StatusCode::OK);
    assert_eq!(proxied.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn requests_without_an_id_get_a_fresh_one_each() {
    let app = spawn_app().await;

    let first = app.http.get("/api/examples").await;
    let second = app.http.get("/").await;

    let first_id = first.header("x-request-id").expect("an id");
    let second_id = second.header("x-request-id").expect("an id");
    assert!(!first_id.is_empty());
    assert_ne!(first_id, second_id);
}

#[tokio::test]
async fn unusable_client_ids_are_replaced() {
    let app = spawn_app().await;
    let too_long = "a".repeat(200);

    for bad in ["has spaces", "quote\"s", too_long.as_str()] {
        let answer = app
            .http
            .get_with("/api/examples", &[("x-request-id", bad)])
            .await;
        let id = answer.header("x-request-id").expect("an id");
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.len() <= 128, "{id}");
    }
}
