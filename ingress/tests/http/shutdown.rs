//! Graceful shutdown: requests in flight finish, then `run` returns.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_then_run_returns() {
    let app = spawn_app().await;
    let http = app.http.clone();
    let in_flight = tokio::spawn(async move {
        let busy_for_a_second =
            "const end = Date.now() + 1000; while (Date.now() < end) {} 'finished'";
        http.post_execute(&json!({ "code": busy_for_a_second }))
            .await
    });
    // Let the request reach the ingress before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopped = app.shut_down().await;
    let answer = in_flight.await.unwrap();

    assert!(stopped.is_ok(), "{stopped:?}");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["result"], "finished");
}
