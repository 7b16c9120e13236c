//! Per-client rate limiting, and a client key that clients cannot choose.

use std::num::NonZeroU32;

use axum::http::StatusCode;

use crate::support::{TestApp, TestResponse, spawn_app_with};
use ingress::rate_limit::RateLimit;

/// Two requests at once, then one every 100 s: nothing refills during a test.
fn burst_of_two(config: &mut ingress::Config) {
    config.rate_limit = Some(RateLimit {
        per_second: 0.01,
        burst: NonZeroU32::new(2).unwrap(),
    });
}

async fn get_examples_from(app: &TestApp, forwarded_for: &str) -> TestResponse {
    app.http
        .get_with("/api/examples", &[("x-forwarded-for", forwarded_for)])
        .await
}

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_retry_after_and_rate_limit_headers() {
    let app = spawn_app_with(burst_of_two).await;

    let first = app.http.get("/api/examples").await;
    let second = app.http.get("/api/examples").await;
    let third = app.http.get("/api/examples").await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));

    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error_kind(), "rate_limited");
    let retry_after: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=100).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert_eq!(
        third.header("x-ratelimit-after"),
        Some(retry_after.to_string().as_str())
    );
    assert_eq!(third.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(third.header("x-ratelimit-remaining"), Some("0"));

    // Health probes are never limited.
    assert_eq!(app.http.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn spoofed_forwarded_for_entries_do_not_escape_the_limit() {
    let app = spawn_app_with(|config| {
        burst_of_two(config);
        config.trusted_proxy_hops = 1;
    })
    .await;

    // The right-most entry is the one Cloud Run's front end appends; whatever the client put
    // before it must not give it a new bucket.
    for spoofed in ["1.1.1.1", "2.2.2.2, 3.3.3.3"] {
        let answer = get_examples_from(&app, &format!("{spoofed}, 203.0.113.7")).await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let refused = get_examples_from(&app, "4.4.4.4, 203.0.113.7").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);

    // A different client, as the trusted proxy reports it, has its own bucket.
    let other = get_examples_from(&app, "1.1.1.1, 198.51.100.9").await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_for_is_ignored() {
    let app = spawn_app_with(|config| {
        burst_of_two(config);
        config.trusted_proxy_hops = 0;
    })
    .await;

    for client in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(get_examples_from(&app, client).await.status, StatusCode::OK);
    }
    let refused = get_examples_from(&app, "203.0.113.3").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn rate_limit_rps_zero_never_limits() {
    let app = spawn_app_with(|config| config.rate_limit = None).await;

    for _ in 0..30 {
        let answer = app.http.get("/api/examples").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit"), None);
    }
}

#[tokio::test]
async fn the_page_is_charged_to_the_clients_anonymous_bucket_but_the_probe_and_the_api_description_are_not()
 {
    let app = spawn_app_with(burst_of_two).await;

    let page = app.http.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("x-ratelimit-remaining"), Some("1"));
    // The page and the API share the client's one anonymous bucket.
    let examples = app.http.get("/api/examples").await;
    assert_eq!(examples.header("x-ratelimit-remaining"), Some("0"));
    let refused = app.http.get("/").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_kind(), "rate_limited");

    for open in ["/healthz", "/api/openapi.json"] {
        let answer = app.http.get(open).await;
        assert_eq!(answer.status, StatusCode::OK, "{open}");
        assert_eq!(answer.header("x-ratelimit-limit"), None, "{open}");
    }
}
