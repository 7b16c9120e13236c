//! The ingress's metrics: on the admin listener only, and counting what the ingress did.

use std::num::NonZeroU32;

use axum::http::StatusCode;

use crate::support::{spawn_app, spawn_app_with, tenant};
use ingress::rate_limit::RateLimit;
use ingress::tenants::Ceilings;

#[tokio::test]
async fn metrics_are_served_on_the_admin_listener_and_not_on_the_public_port() {
    let app = spawn_app().await;

    let public = app.http.get("/metrics").await;
    assert_eq!(public.status, StatusCode::NOT_FOUND);

    let admin = app.admin.get("/metrics").await;
    assert_eq!(admin.status, StatusCode::OK);
    assert!(
        admin
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        admin.headers
    );
    let text = String::from_utf8(admin.body.to_vec()).unwrap();
    for family in [
        "ingress_requests",
        "ingress_rate_limited",
        "ingress_upstream_errors",
        "ingress_auth_failures",
    ] {
        assert!(text.contains(&format!("# TYPE {family} counter")), "{text}");
    }
    // The admin listener serves nothing else, in particular not the API.
    assert_eq!(
        app.admin.get("/api/examples").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn answers_rate_limits_and_auth_failures_are_counted() {
    let app = spawn_app_with(|config| {
        config.tenants.anonymous.enabled = false;
        config.tenants.tenants = vec![tenant(
            "acme",
            "acme-key",
            Some(RateLimit {
                per_second: 0.01,
                burst: NonZeroU32::new(1).unwrap(),
            }),
            Ceilings::default(),
        )];
    })
    .await;
    let admin = &app.admin;
    let ok = "ingress_requests_total{status=\"200\"}";
    let unauthorized = "ingress_requests_total{status=\"401\"}";
    let acme_limited = "ingress_rate_limited_total{tenant=\"acme\"}";
    let missing = "ingress_auth_failures_total{reason=\"missing\"}";
    let unknown = "ingress_auth_failures_total{reason=\"unknown\"}";
    assert_eq!(admin.metric(acme_limited).await, 0.0);
    assert_eq!(admin.metric(missing).await, 0.0);

    let acme = [("x-api-key", "acme-key")];
    assert_eq!(
        app.http.get_with("/api/examples", &acme).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.http.get_with("/api/examples", &acme).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.http.get("/api/examples").await;
    app.http
        .get_with("/api/examples", &[("x-api-key", "wrong")])
        .await;

    assert_eq!(admin.metric(ok).await, 1.0);
    assert_eq!(admin.metric(unauthorized).await, 2.0);
    assert_eq!(admin.metric(acme_limited).await, 1.0);
    assert_eq!(admin.metric(missing).await, 1.0);
    assert_eq!(admin.metric(unknown).await, 1.0);
}

#[tokio::test]
async fn upstream_errors_are_counted() {
    let app = spawn_app().await;
    let (ingress, sandbox) = app.into_parts();
    sandbox.stop().await;

    let answer = ingress.http.get("/api/examples").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        ingress
            .admin
            .metric("ingress_upstream_errors_total{kind=\"unavailable\"}")
            .await,
        1.0
    );
    assert_eq!(
        ingress
            .admin
            .metric("ingress_upstream_errors_total{kind=\"timeout\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn a_fresh_ingress_shows_its_request_series_at_zero_before_any_request() {
    let app = spawn_app().await;
    let admin = app.admin.get("/metrics").await;
    let text = String::from_utf8(admin.body.to_vec()).unwrap();
    for status in [200, 400, 401, 404, 413, 429, 502, 503, 504] {
        let line = format!("ingress_requests_total{{status=\"{status}\"}} 0");
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}
