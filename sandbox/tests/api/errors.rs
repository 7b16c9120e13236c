//! Failed executions: HTTP 200 with `status: "error"` and an error object of a known kind.

use crate::support::spawn_app;

#[tokio::test]
async fn syntax_errors_are_reported_with_position() {
    let app = spawn_app().await;
    let response = app.run("let = ;").await;
    assert_eq!(response.script_error_kind(), "syntax");
    let error = &response.body["error"];
    assert_eq!(error["name"], "SyntaxError");
    assert!(
        error["stack"].as_str().unwrap().contains("script.js:1"),
        "{error}"
    );
}

#[tokio::test]
async fn thrown_errors_are_exceptions_with_name_message_and_stack() {
    let app = spawn_app().await;
    let response = app
        .run("function f() { throw new RangeError('out of range'); }\nf();")
        .await;
    assert_eq!(response.script_error_kind(), "exception");
    let error = &response.body["error"];
    assert_eq!(error["name"], "RangeError");
    assert_eq!(error["message"], "out of range");
    assert!(error["stack"].as_str().unwrap().contains("at f"), "{error}");
}

#[tokio::test]
async fn runtime_syntax_errors_are_exceptions_not_syntax() {
    let app = spawn_app().await;
    let response = app.run("JSON.parse('{')").await;
    assert_eq!(response.script_error_kind(), "exception");
    assert_eq!(response.body["error"]["name"], "SyntaxError");
}

#[tokio::test]
async fn thrown_non_errors_are_described() {
    let app = spawn_app().await;
    let response = app.run("throw { code: 7 }").await;
    assert_eq!(response.script_error_kind(), "exception");
    assert_eq!(response.body["error"]["name"], "Uncaught");
    assert_eq!(response.body["error"]["message"], r#"{"code":7}"#);
}

#[tokio::test]
async fn rejected_promise_results_are_exceptions() {
    let app = spawn_app().await;
    let response = app
        .run("(async () => { await null; throw new TypeError('async failure'); })()")
        .await;
    assert_eq!(response.script_error_kind(), "exception");
    assert_eq!(response.body["error"]["message"], "async failure");
}

#[tokio::test]
async fn uncaught_errors_in_timers_fail_the_execution() {
    let app = spawn_app().await;
    let response = app
        .run("setTimeout(() => { throw new Error('in a timer'); }, 1); 1")
        .await;
    assert_eq!(response.script_error_kind(), "exception");
    assert_eq!(response.body["error"]["message"], "in a timer");
}

#[tokio::test]
async fn a_promise_that_can_never_settle_fails_at_once() {
    let app = spawn_app().await;
    let response = app.run_with_timeout("new Promise(() => {})", 20_000).await;
    assert_eq!(response.script_error_kind(), "unsettled_promise");
    assert!(response.body["executionTime"].as_f64().unwrap() < 10_000.0);
}
