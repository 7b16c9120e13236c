//! `POST /api/batch` through the ingress: the same keys and tenant ceilings as an execution,
//! one request of the rate limit per item, and a streamed batch passed on line by line.

use std::num::NonZeroU32;

use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app_with, spawn_app_with_sandbox, tenant};
use ingress::rate_limit::RateLimit;
use ingress::tenants::Ceilings;

const ACME_KEY: &str = "acme-5d1f0a9c3e7b2468";

/// acme with `burst` requests at once and one every 100 s after (nothing refills during a
/// test), at most 4 items a batch, two executions at once.
fn acme(burst: u32) -> impl FnOnce(&mut ingress::Config) {
    move |config| {
        config.tenants.anonymous.enabled = false;
        config.tenants.tenants = vec![tenant(
            "acme",
            ACME_KEY,
            Some(RateLimit {
                per_second: 0.01,
                burst: NonZeroU32::new(burst).unwrap(),
            }),
            Ceilings {
                concurrency: Some(2),
                batch_items: Some(4),
                ..Ceilings::default()
            },
        )];
    }
}

async fn batch(app: &TestApp, key: Option<&str>, body: Value) -> crate::support::TestResponse {
    let headers: Vec<(&str, &str)> = key.map(|key| ("x-api-key", key)).into_iter().collect();
    app.http.post_batch_with(&headers, &body).await
}

#[tokio::test]
async fn a_batch_costs_one_request_of_the_rate_limit_per_item() {
    let app = spawn_app_with(acme(5)).await;

    let first = batch(
        &app,
        Some(ACME_KEY),
        json!({"code": "input * 2", "inputs": [1, 2, 3]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let results: Vec<Value> = first.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|answer| answer["result"].clone())
        .collect();
    assert_eq!(results, [json!(2), json!(4), json!(6)]);
    assert_eq!(first.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("2"));

    // Three more items do not fit in the two requests left: refused, and nothing ran.
    let second = batch(
        &app,
        Some(ACME_KEY),
        json!({"code": "input", "inputs": [1, 2, 3]}),
    )
    .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.error_kind(), "rate_limited");
    assert!(second.header("retry-after").is_some());
    assert_eq!(
        app.sandbox
            .http
            .metric("sandbox_executions_total{tenant=\"acme\",outcome=\"success\"}")
            .await,
        3.0
    );
    // The refused batch's request itself was charged, as any refused request is: one left.
    let last = app
        .http
        .post_execute_with(&[("x-api-key", ACME_KEY)], &json!({"code": "'last'"}))
        .await;
    assert_eq!(last.status, StatusCode::OK);
    assert_eq!(last.header("x-ratelimit-remaining"), Some("0"));
    let over = batch(&app, Some(ACME_KEY), json!({"code": "1", "inputs": [1]})).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_batch_larger_than_the_rate_limits_burst_is_refused_naming_the_rule() {
    let app = spawn_app_with(acme(3)).await;
    let answer = batch(
        &app,
        Some(ACME_KEY),
        json!({"code": "1", "inputs": [1, 2, 3, 4]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.error_kind(), "invalid_request");
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("a batch of 4 items costs 4 requests") && message.contains("at most 3"),
        "{message}"
    );
}

#[tokio::test]
async fn a_batch_needs_the_key_and_keeps_to_the_ceilings_an_execution_does() {
    let app = spawn_app_with(acme(100)).await;
    let body = json!({"code": "input", "inputs": [1]});

    for key in [None, Some("not-a-key")] {
        let answer = batch(&app, key, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(answer.error_kind(), "unauthorized");
    }
    // The tenant's ceiling from the tenants file, enforced by the sandbox.
    let many = batch(
        &app,
        Some(ACME_KEY),
        json!({"code": "1", "inputs": [1, 2, 3, 4, 5]}),
    )
    .await;
    assert_eq!(many.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = many.json()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "inputs: 5 items exceed tenant acme's ceiling of 4");
    // A tenant header a client sends is replaced by the ingress's.
    let forged = app
        .http
        .post_batch_with(
            &[
                ("x-api-key", ACME_KEY),
                ("x-tenant-limits", "batch-items=1000"),
            ],
            &json!({"code": "1", "inputs": [1, 2, 3, 4, 5]}),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = batch(&app, Some(ACME_KEY), body).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.json()["results"][0]["result"], 1);
}

#[tokio::test]
async fn a_streamed_batch_comes_through_the_ingress_line_by_line() {
    let sandbox = sandbox::Config {
        max_concurrency: 2,
        ..sandbox::Config::default()
    };
    let app = spawn_app_with_sandbox(sandbox, acme(100)).await;
    let code = "if (input === 'slow') { for (;;) {} } input";
    let request = app
        .http
        .request(Method::POST, "/api/batch")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/x-ndjson")
        .header("x-api-key", ACME_KEY)
        .body(Full::new(Bytes::from(
            json!({"code": code, "timeoutMs": 3000, "inputs": ["slow", "quick"]}).to_string(),
        )))
        .unwrap();
    let response = app.http.start(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut lines = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the stream is readable").into_data() {
            pending.extend_from_slice(&data);
        }
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line: Value = serde_json::from_slice(&line).unwrap();
            if lines.is_empty() {
                // The quick item's line came while the slow one still ran.
                assert_eq!(line["index"], 1, "{line}");
                assert_eq!(app.sandbox.http.metric("sandbox_workers_busy").await, 1.0);
            }
            lines.push(line);
        }
    }
    assert!(pending.is_empty());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["index"], 0);
    assert_eq!(lines[1]["error"]["kind"], "timeout");
}
