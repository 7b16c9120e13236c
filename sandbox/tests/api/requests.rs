//! Request validation: every bad request gets the right 4xx in the API's error shape.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn bad_requests_get_the_right_status_and_error_shape() {
    let app = spawn_app().await;
    let cases = [
        (
            "malformed JSON",
            app.post_raw("application/json", "{\"code\":").await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "not JSON at all",
            app.post_raw("application/json", "code=1").await,
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong content type",
            app.post_raw("text/plain", r#"{"code":"1"}"#).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "neither code nor file",
            app.post_execute(json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "both code and file",
            app.post_execute(json!({"code": "1", "file": "simple.js"}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "empty code",
            app.post_execute(json!({"code": ""})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "code of the wrong type",
            app.post_execute(json!({"code": 5})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            app.post_execute(json!({"code": "1", "timeout": 5})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "parent directory",
            app.post_execute(json!({"file": "../Cargo.toml"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "absolute path",
            app.post_execute(json!({"file": "/etc/passwd"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "nested path",
            app.post_execute(json!({"file": "dir/simple.js"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown example",
            app.post_execute(json!({"file": "missing.js"})).await,
            StatusCode::NOT_FOUND,
        ),
        (
            "zero timeout",
            app.post_execute(json!({"code": "1", "timeoutMs": 0})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "timeout over the maximum",
            app.post_execute(json!({"code": "1", "timeoutMs": 30001}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative memory",
            app.post_execute(json!({"code": "1", "memoryLimitMb": -1}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "memory over the maximum",
            app.post_execute(json!({"code": "1", "memoryLimitMb": 257}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, response, status) in cases {
        assert_eq!(response.status, status, "{what}: {}", response.body);
        response.request_error_kind();
    }
}

#[tokio::test]
async fn a_bad_request_is_told_what_is_wrong_with_the_field_named() {
    let app = spawn_app().await;
    let cases = [
        (
            app.post_raw("application/json", "{\"code\": \"1\"} x")
                .await,
            "Failed to parse the request body as JSON: trailing characters at line 1 column 15",
        ),
        (
            app.post_execute(json!({})).await,
            "give `code` (JavaScript source), `file` (an example's name) or `url` (where to load \
             the script from)",
        ),
        (
            app.post_execute(json!({"code": "1", "file": "simple.js"}))
                .await,
            "give exactly one of `code`, `file` and `url`",
        ),
        (
            app.post_execute(json!({"code": "", "timeoutMs": 0})).await,
            "code: must not be empty; timeoutMs: must be at least 1",
        ),
        (
            app.post_execute(json!({"code": 5})).await,
            "Failed to deserialize the JSON body into the target type: code: invalid type: \
             integer `5`, expected a string at line 1 column 9",
        ),
        (
            app.post_execute(json!({"code": "1", "memoryLimitMb": 257}))
                .await,
            "memoryLimitMb: must be at most 256",
        ),
        (
            app.post_execute(json!({"code": "1", "timeoutMs": 30001}))
                .await,
            "timeoutMs: must be at most 30000",
        ),
    ];
    for (response, message) in cases {
        response.request_error_kind();
        assert_eq!(
            response.body["error"]["message"], message,
            "{}",
            response.body
        );
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1000).await;
    let response = app.post_execute(json!({ "code": "x".repeat(2000) })).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.request_error_kind(), "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = spawn_app().await;
    let missing = app.get("/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.request_error_kind(), "not_found");
    let wrong_method = app.get("/api/execute").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    wrong_method.request_error_kind();
}

#[tokio::test]
async fn examples_are_listed_and_runnable_by_name() {
    let app = spawn_app().await;
    let listing = app.get("/api/examples").await;
    assert_eq!(listing.status, StatusCode::OK);
    let names: Vec<&str> = listing.body["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|example| {
            assert!(
                example["source"]
                    .as_str()
                    .is_some_and(|source| !source.is_empty())
            );
            example["name"].as_str().unwrap()
        })
        .collect();
    for required in [
        "simple.js",
        "log.js",
        "pi.js",
        "async.js",
        "error.js",
        "json.js",
    ] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
    assert_eq!(
        app.post_execute(json!({"file": "simple.js"}))
            .await
            .result(),
        &json!(3)
    );
    // pi.js is seconds of CPU in a debug build on a loaded machine: the longest deadline, so
    // this tests that it runs, not how fast.
    let pi = app
        .post_execute(json!({"file": "pi.js", "timeoutMs": 30_000}))
        .await;
    assert!(
        pi.result()
            .as_str()
            .unwrap()
            .starts_with("3.14159265358979"),
        "{}",
        pi.body
    );
    assert_eq!(
        app.post_execute(json!({"file": "error.js"}))
            .await
            .script_error_kind(),
        "exception"
    );
    let json_example = app.post_execute(json!({"file": "json.js"})).await;
    assert_eq!(json_example.result()["count"], 3);
    let stack = app.post_execute(json!({"file": "error.js"})).await;
    assert!(
        stack.body["error"]["stack"]
            .as_str()
            .unwrap()
            .contains("error.js")
    );
}

#[tokio::test]
async fn every_example_but_the_failing_ones_runs_to_success() {
    let app = spawn_app().await;
    let listing = app.get("/api/examples").await;
    let names: Vec<String> = listing.body["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|example| example["name"].as_str().unwrap().to_owned())
        .collect();
    for required in [
        "input.js",
        "encoding.js",
        "url.js",
        "crypto.js",
        "structured-clone.js",
        "abort.js",
        "fetch.js",
        "progress.js",
    ] {
        assert!(
            names.iter().any(|name| name == required),
            "{required} missing"
        );
    }
    for name in names {
        if name == "infinite-loop.js" {
            // A request-level deadline, so the endless example costs 200 ms, not the default 5 s.
            let answer = app
                .post_execute(json!({"file": name, "timeoutMs": 200}))
                .await;
            assert_eq!(answer.script_error_kind(), "timeout", "{}", answer.body);
            let message = answer.body["error"]["message"].as_str().unwrap();
            assert!(message.contains("200 ms"), "{message}");
            continue;
        }
        // The longest deadline: this tests that each example runs, not how fast (pi.js is
        // seconds of CPU in a debug build on a loaded machine).
        let answer = app
            .post_execute(json!({"file": name, "timeoutMs": 30_000}))
            .await;
        match name.as_str() {
            "error.js" => assert_eq!(answer.script_error_kind(), "exception"),
            _ => assert_eq!(answer.body["status"], "success", "{name}: {}", answer.body),
        }
    }
    let order = app
        .post_execute(
            json!({"file": "input.js", "input": {"items": [{"name": "x", "price": 2, "qty": 5}]}}),
        )
        .await;
    assert_eq!(order.result(), &json!({"total": 10, "items": 1}));
    let aborted = app.post_execute(json!({"file": "abort.js"})).await;
    assert_eq!(aborted.result()["stopped"], "took too long");
    let progress = app.post_execute(json!({"file": "progress.js"})).await;
    assert_eq!(progress.result()["steps"], 8);
    assert_eq!(progress.body["log"].as_array().unwrap().len(), 8);
    let fetch = app.post_execute(json!({"file": "fetch.js"})).await;
    assert!(
        fetch
            .result()
            .as_str()
            .unwrap()
            .starts_with("fetch is not enabled for this tenant"),
        "{}",
        fetch.body
    );
}

#[tokio::test]
async fn healthz_answers_when_ready() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
}

#[tokio::test]
async fn a_limit_that_is_not_a_whole_number_of_at_least_1_is_refused_with_that_rule() {
    let app = spawn_app().await;
    for field in ["timeoutMs", "memoryLimitMb"] {
        for value in [json!(1.5), json!(-1), json!(0.5), json!(0)] {
            let response = app
                .post_execute(json!({ "code": "1", field: value.clone() }))
                .await;
            assert_eq!(
                response.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}: {value}"
            );
            assert_eq!(response.request_error_kind(), "invalid_request");
            let message = response.body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(field) && message.contains("at least 1"),
                "{field}: {value}: {message}"
            );
            assert!(
                !message.contains("at least 0"),
                "{field}: {value}: {message}"
            );
        }
    }
}
