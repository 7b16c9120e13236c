//! `GET /metrics`: the Prometheus exposition, and counts that follow what the sandbox did.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn metrics_are_served_in_the_openmetrics_text_format() {
    let app = spawn_app().await;
    // Labelled families appear with their first sample.
    assert_eq!(app.run("1").await.result(), &json!(1));
    let (content_type, text) = app.metrics().await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    for family in [
        "sandbox_executions",
        "sandbox_execution_duration_seconds",
        "sandbox_queue_wait_seconds",
        "sandbox_workers_busy",
        "sandbox_workers",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test]
async fn executions_are_counted_by_tenant_and_outcome_with_their_durations() {
    let app = spawn_app().await;
    let acme = [("x-tenant-id", "acme")];
    let acme_success = "sandbox_executions_total{tenant=\"acme\",outcome=\"success\"}";
    let acme_exception = "sandbox_executions_total{tenant=\"acme\",outcome=\"exception\"}";
    let anonymous_success = "sandbox_executions_total{tenant=\"anonymous\",outcome=\"success\"}";
    assert_eq!(app.metric(acme_success).await, 0.0);

    for code in ["1", "2", "throw new Error('x')"] {
        app.post_execute_with(&acme, json!({ "code": code })).await;
    }
    app.run("3").await;

    assert_eq!(app.metric(acme_success).await, 2.0);
    assert_eq!(app.metric(acme_exception).await, 1.0);
    assert_eq!(app.metric(anonymous_success).await, 1.0);
    assert_eq!(
        app.metric("sandbox_execution_duration_seconds_count{tenant=\"acme\"}")
            .await,
        3.0
    );
    assert_eq!(
        app.metric("sandbox_queue_wait_seconds_count{tenant=\"acme\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn busy_workers_and_rejections_are_reported() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = Duration::from_millis(200);
    })
    .await;
    // Long enough to outlast the refused request's 200 ms wait on a loaded machine.
    let busy = app.hold_a_worker(3000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    assert_eq!(app.metric("sandbox_workers_busy").await, 1.0);

    let refused = app.run("1").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!busy.is_finished(), "the worker was freed while it waited");
    assert_eq!(
        app.metric("sandbox_rejections_total{tenant=\"anonymous\",reason=\"queue_timeout\"}")
            .await,
        1.0
    );

    assert_eq!(busy.await.unwrap().script_error_kind(), "timeout");
    assert_eq!(app.metric("sandbox_workers_busy").await, 0.0);
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"timeout\"}")
            .await,
        1.0
    );
    assert_eq!(app.metric("sandbox_workers").await, 1.0);
}

#[tokio::test]
async fn a_script_run_again_by_the_same_worker_is_loaded_from_its_bytecode_cache() {
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let hits = "sandbox_bytecode_cache_total{result=\"hit\"}";
    let misses = "sandbox_bytecode_cache_total{result=\"miss\"}";
    let library = "function double(x) { return 2 * x; }\ndouble(21)";
    for _ in 0..3 {
        assert_eq!(app.run(library).await.result(), &json!(42));
    }
    assert_eq!(
        app.run("'another script'").await.result(),
        &json!("another script")
    );
    assert_eq!(app.metric(misses).await, 2.0);
    assert_eq!(app.metric(hits).await, 2.0);

    // A worker retired after an engine fault takes its cache with it: its replacement
    // compiles the script again.
    let bomb = "const held = []; for (;;) held.push(new Array(100000).fill(1));";
    let answer = app
        .post_execute(json!({ "code": bomb, "memoryLimitMb": 16 }))
        .await;
    assert_eq!(answer.script_error_kind(), "memory", "{}", answer.body);
    assert_eq!(app.run(library).await.result(), &json!(42));
    assert_eq!(app.metric(misses).await, 4.0);
    assert_eq!(app.metric(hits).await, 2.0);
}
