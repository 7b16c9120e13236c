//! Tenants, as the ingress names them in `x-tenant-id` and `x-tenant-limits`: their ceilings,
//! their concurrency, and queues that one tenant cannot fill for another.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, spawn_app, spawn_app_with};

const ACME: [(&str, &str); 2] = [
    ("x-tenant-id", "acme"),
    (
        "x-tenant-limits",
        "concurrency=1,timeout-ms=1000,memory-mb=32",
    ),
];

const BETA: [(&str, &str); 2] = [
    ("x-tenant-id", "beta"),
    ("x-tenant-limits", "concurrency=1"),
];

/// Starts an endless loop for `tenant` in the background.
fn start_loop(
    app: &TestApp,
    tenant: &'static [(&'static str, &'static str)],
    timeout_ms: u64,
) -> tokio::task::JoinHandle<crate::support::TestResponse> {
    let app = app.clone();
    tokio::spawn(async move {
        app.post_execute_with(
            tenant,
            json!({ "code": "while (true) {}", "timeoutMs": timeout_ms }),
        )
        .await
    })
}

#[tokio::test]
async fn limits_over_a_tenant_ceiling_are_refused_with_a_message_naming_it() {
    let app = spawn_app().await;

    let response = app
        .post_execute_with(&ACME, json!({ "code": "1", "timeoutMs": 2000 }))
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.request_error_kind(), "invalid_request");
    assert_eq!(
        response.body["error"]["message"],
        "timeoutMs: 2000 exceeds tenant acme's ceiling of 1000"
    );

    let response = app
        .post_execute_with(&ACME, json!({ "code": "1", "memoryLimitMb": 64 }))
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["error"]["message"],
        "memoryLimitMb: 64 exceeds tenant acme's ceiling of 32"
    );

    // At the ceiling is allowed.
    let response = app
        .post_execute_with(
            &ACME,
            json!({ "code": "2", "timeoutMs": 1000, "memoryLimitMb": 32 }),
        )
        .await;
    assert_eq!(response.result(), &json!(2));
}

#[tokio::test]
async fn a_request_naming_no_timeout_gets_the_default_lowered_to_the_tenant_ceiling() {
    let app = spawn_app().await;
    let started = Instant::now();
    let response = app
        .post_execute_with(&ACME, json!({ "code": "while (true) {}" }))
        .await;
    assert_eq!(response.script_error_kind(), "timeout");
    assert!(
        response.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 ms"),
        "{}",
        response.body
    );
    // The bound is the feature: the 1 s ceiling, not the 5 s default.
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn the_server_maximum_still_caps_a_tenant_with_a_higher_ceiling() {
    let app = spawn_app_with(|config| config.max_timeout = Duration::from_millis(3000)).await;
    let generous = [
        ("x-tenant-id", "acme"),
        ("x-tenant-limits", "timeout-ms=60000"),
    ];
    let response = app
        .post_execute_with(&generous, json!({ "code": "1", "timeoutMs": 4000 }))
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.body["error"]["message"],
        "timeoutMs: must be at most 3000"
    );
}

#[tokio::test]
async fn requests_without_tenant_headers_are_anonymous_with_the_server_limits() {
    let app = spawn_app().await;
    let response = app
        .post_execute(json!({ "code": "1", "timeoutMs": 30000, "memoryLimitMb": 256 }))
        .await;
    assert_eq!(response.result(), &json!(1));
    let anonymous_ceiling = [
        ("x-tenant-id", "anonymous"),
        ("x-tenant-limits", "timeout-ms=500"),
    ];
    let response = app
        .post_execute_with(&anonymous_ceiling, json!({ "code": "1", "timeoutMs": 600 }))
        .await;
    assert_eq!(
        response.body["error"]["message"],
        "timeoutMs: 600 exceeds the anonymous tier's ceiling of 500"
    );
}

#[tokio::test]
async fn malformed_tenant_headers_are_refused() {
    let app = spawn_app().await;
    for headers in [
        [("x-tenant-id", "not valid"), ("x-tenant-limits", "")],
        [
            ("x-tenant-id", "acme"),
            ("x-tenant-limits", "concurrency=0"),
        ],
        [("x-tenant-id", "acme"), ("x-tenant-limits", "threads=4")],
    ] {
        let response = app
            .post_execute_with(&headers, json!({ "code": "1" }))
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(response.request_error_kind(), "invalid_request");
    }
}

#[tokio::test]
async fn a_tenant_never_runs_more_than_its_concurrency_ceiling_while_others_still_run() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 2;
        config.queue_timeout = Duration::from_millis(300);
    })
    .await;
    const ONE_AT_A_TIME: [(&str, &str); 2] = [
        ("x-tenant-id", "acme"),
        ("x-tenant-limits", "concurrency=1"),
    ];
    // acme's first loop outlasts the test: it ends when its client leaves, below.
    let first = start_loop(&app, &ONE_AT_A_TIME, 30_000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    // A worker is free, and no other tenant is active to have it kept for them, but acme's
    // ceiling is one: its second loop waits, past the queue timeout, and is refused. (Were it
    // let run, it would answer its own timeout.)
    let second = start_loop(&app, &ONE_AT_A_TIME, 1000).await.unwrap();
    assert_eq!(
        second.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        second.body
    );
    assert_eq!(second.request_error_kind(), "overloaded");
    // Another tenant takes the free worker at once.
    let other = app
        .post_execute_with(&BETA, json!({ "code": "'beta ran'" }))
        .await;
    assert_eq!(other.result(), &json!("beta ran"));
    assert!(!first.is_finished(), "acme's first loop ended early");
    first.abort();
}

#[tokio::test]
async fn one_tenants_full_queue_does_not_refuse_another_tenant() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_capacity = 1;
        config.queue_timeout = Duration::from_secs(30);
    })
    .await;
    // Long enough, for a loaded machine, to be still running when beta's request comes.
    const ACME_SLOWER: [(&str, &str); 2] = [
        ("x-tenant-id", "acme"),
        ("x-tenant-limits", "concurrency=1,timeout-ms=3000"),
    ];
    let running = start_loop(&app, &ACME_SLOWER, 3000);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    // Two more of acme's loops for its one waiting place: whichever comes second is refused at
    // once, and the refusal (queue_full) shows that the other one waits.
    let mut queued = start_loop(&app, &ACME, 1000);
    let mut refused = start_loop(&app, &ACME, 1000);
    let refused = tokio::select! {
        first = &mut queued => {
            std::mem::swap(&mut queued, &mut refused);
            first
        }
        first = &mut refused => first,
    }
    .unwrap();
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(
        app.metric("sandbox_rejections_total{tenant=\"acme\",reason=\"queue_full\"}")
            .await,
        1.0
    );
    assert!(!running.is_finished(), "acme's running loop ended early");
    // ...but beta has a queue of its own, and its turn comes before acme's waiting loop.
    let started = Instant::now();
    let other = app
        .post_execute_with(&BETA, json!({ "code": "'beta ran'" }))
        .await;
    assert_eq!(other.result(), &json!("beta ran"));
    assert!(
        !queued.is_finished(),
        "beta waited for acme's running loop only, not its queued one ({:?})",
        started.elapsed()
    );

    assert_eq!(running.await.unwrap().script_error_kind(), "timeout");
    assert_eq!(queued.await.unwrap().script_error_kind(), "timeout");
}

#[tokio::test]
async fn a_tenant_allowed_every_worker_still_cannot_starve_another() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 2;
        config.queue_timeout = Duration::from_secs(2);
    })
    .await;
    let b_runs = || app.post_execute_with(&[("x-tenant-id", "b")], json!({ "code": "'b'" }));
    // b is active; then tenant a, with no concurrency ceiling, floods with loops that outlast
    // the queue timeout.
    assert_eq!(b_runs().await.result(), &json!("b"));
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_execute_with(
                    &[("x-tenant-id", "a")],
                    json!({ "code": "while (true) {}", "timeoutMs": 4000 }),
                )
                .await
            })
        })
        .collect();
    // Once the flood holds a worker; the rest of it is queued or refused by then, or soon.
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    for _ in 0..5 {
        assert_eq!(b_runs().await.result(), &json!("b"));
    }
    for request in flood {
        request.abort();
    }
}
