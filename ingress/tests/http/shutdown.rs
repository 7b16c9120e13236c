//! Graceful shutdown: requests in flight finish, then `run` returns.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_then_run_returns() {
    let (ingress, sandbox) = spawn_app().await.into_parts();
    let http = ingress.http.clone();
    let in_flight = tokio::spawn(async move {
        // Longer than the shutdown notice, during which the ingress still serves as before,
        // and shorter than its drain deadline (8 s).
        let busy_for_3_s = "const end = Date.now() + 3000; while (Date.now() < end) {} 'finished'";
        http.post_execute(&json!({ "code": busy_for_3_s })).await
    });
    // The signal comes once the request is running in the sandbox, so past the ingress.
    sandbox
        .http
        .wait_for_metric(
            "sandbox_workers_busy",
            |busy| busy >= 1.0,
            "the request to run",
        )
        .await;

    let stopped = ingress.shut_down().await;
    // `run` returned only after the execution in flight had finished.
    let finished = sandbox
        .http
        .metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"success\"}")
        .await;
    let answer = in_flight.await.unwrap();

    assert!(stopped.is_ok(), "{stopped:?}");
    assert_eq!(
        finished, 1.0,
        "run returned before the request in flight finished"
    );
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["result"], "finished");
}
