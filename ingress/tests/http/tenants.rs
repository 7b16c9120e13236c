//! Tenants through the ingress: API keys and each way of failing them, a key's ceilings, the
//! tenant headers clients cannot forge, and rate limits that are each tenant's own.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, TestResponse, spawn_app_with, spawn_app_with_sandbox, tenant};
use contract::limits::{MemoryLimit, TimeLimit};
use ingress::rate_limit::RateLimit;
use ingress::tenants::Ceilings;

const ACME_KEY: &str = "acme-3f9c1e0b7d2a4c58";
const BETA_KEY: &str = "beta-81d6a0c4e2f94b17";

/// A ceiling of `millis` ms.
fn millis(millis: u64) -> Option<TimeLimit> {
    NonZeroU64::new(millis).map(TimeLimit::from_millis)
}

/// `burst` requests at once, then one every 100 s: nothing refills during a test.
fn burst_of(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        per_second: 0.01,
        burst: NonZeroU32::new(burst).unwrap(),
    })
}

/// acme: one execution at once, at most 1 s and 32 MiB. beta: no ceilings. Neither is
/// rate-limited; the anonymous tier may run at most 3 s.
fn acme_and_beta(config: &mut ingress::Config) {
    config.tenants.anonymous.ceilings.timeout = millis(3000);
    config.tenants.tenants = vec![
        tenant(
            "acme",
            ACME_KEY,
            None,
            Ceilings {
                concurrency: Some(1),
                timeout: millis(1000),
                memory: NonZeroU64::new(32).map(MemoryLimit::from_mebibytes),
                batch_items: None,
                ..Ceilings::default()
            },
        ),
        tenant("beta", BETA_KEY, None, Ceilings::default()),
    ];
}

fn anonymous_off(config: &mut ingress::Config) {
    acme_and_beta(config);
    config.tenants.anonymous.enabled = false;
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

async fn run_as(app: &TestApp, headers: &[(&str, &str)], code: &str) -> TestResponse {
    app.http
        .post_execute_with(headers, &json!({ "code": code }))
        .await
}

fn assert_unauthorized(answer: &TestResponse, what: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(answer.error_kind(), "unauthorized", "{what}");
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{what}");
}

#[tokio::test]
async fn without_the_anonymous_tier_a_request_with_no_key_gets_401() {
    let app = spawn_app_with(anonymous_off).await;

    let answer = run_as(&app, &[], "1").await;
    assert_unauthorized(&answer, "no key");
    assert!(
        answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{}",
        answer.json()
    );
    // Another scheme is not a key of ours.
    let answer = run_as(&app, &[("authorization", "Basic dXNlcjpwYXNz")], "1").await;
    assert_unauthorized(&answer, "basic credentials");
    assert_unauthorized(&app.http.get("/api/examples").await, "examples");

    // The page and the health check stay open.
    assert_eq!(app.http.get("/").await.status, StatusCode::OK);
    assert_eq!(app.http.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_key_gets_401_in_either_header() {
    let app = spawn_app_with(acme_and_beta).await;
    let wrong = bearer("acme-3f9c1e0b7d2a4c59");
    for headers in [
        [("authorization", wrong.as_str())],
        [("x-api-key", "not-a-key")],
    ] {
        assert_unauthorized(&run_as(&app, &headers, "1").await, &format!("{headers:?}"));
    }
}

#[tokio::test]
async fn a_malformed_credential_header_gets_401() {
    let app = spawn_app_with(acme_and_beta).await;
    let malformed: [&[(&str, &str)]; 4] = [
        &[("authorization", "Bearer")],
        &[("authorization", "Bearer two words")],
        &[("x-api-key", "")],
        &[("x-api-key", ACME_KEY), ("x-api-key", ACME_KEY)],
    ];
    for headers in malformed {
        assert_unauthorized(&run_as(&app, headers, "1").await, &format!("{headers:?}"));
    }
}

#[tokio::test]
async fn a_valid_key_runs_in_either_header() {
    let app = spawn_app_with(anonymous_off).await;
    let acme = bearer(ACME_KEY);
    let answer = run_as(&app, &[("authorization", &acme)], "6 * 7").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["result"], 42);
    let answer = run_as(&app, &[("x-api-key", BETA_KEY)], "'beta'").await;
    assert_eq!(answer.json()["result"], "beta");
}

#[tokio::test]
async fn a_keys_ceilings_are_enforced_with_a_message_naming_them() {
    let app = spawn_app_with(acme_and_beta).await;
    let acme = [("x-api-key", ACME_KEY)];

    let answer = app
        .http
        .post_execute_with(&acme, &json!({ "code": "1", "timeoutMs": 2000 }))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.error_kind(), "invalid_request");
    assert_eq!(
        answer.json()["error"]["message"],
        "timeoutMs: 2000 exceeds tenant acme's ceiling of 1000"
    );
    let answer = app
        .http
        .post_execute_with(&acme, &json!({ "code": "1", "memoryLimitMb": 33 }))
        .await;
    assert_eq!(
        answer.json()["error"]["message"],
        "memoryLimitMb: 33 exceeds tenant acme's ceiling of 32"
    );

    // beta has no ceilings of its own: the sandbox's maximums apply.
    let beta = [("x-api-key", BETA_KEY)];
    let answer = app
        .http
        .post_execute_with(&beta, &json!({ "code": "1", "timeoutMs": 2000 }))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn tenant_headers_sent_by_clients_are_replaced_by_the_ingress() {
    let app = spawn_app_with(acme_and_beta).await;
    let forged_limits = ("x-tenant-limits", "concurrency=999,timeout-ms=999999");

    // acme claiming to be beta, with huge limits, is still acme.
    let answer = app
        .http
        .post_execute_with(
            &[
                ("x-api-key", ACME_KEY),
                ("x-tenant-id", "beta"),
                forged_limits,
            ],
            &json!({ "code": "1", "timeoutMs": 2000 }),
        )
        .await;
    assert_eq!(
        answer.json()["error"]["message"],
        "timeoutMs: 2000 exceeds tenant acme's ceiling of 1000"
    );

    // An anonymous client claiming to be beta is anonymous.
    let answer = app
        .http
        .post_execute_with(
            &[("x-tenant-id", "beta"), forged_limits],
            &json!({ "code": "1", "timeoutMs": 5000 }),
        )
        .await;
    assert_eq!(
        answer.json()["error"]["message"],
        "timeoutMs: 5000 exceeds the anonymous tier's ceiling of 3000"
    );
    let answer = run_as(&app, &[("x-tenant-id", "beta"), forged_limits], "'ran'").await;
    assert_eq!(answer.json()["result"], "ran");
    let sandbox = &app.sandbox.http;
    assert_eq!(
        sandbox
            .metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"success\"}")
            .await,
        1.0
    );
    assert_eq!(
        sandbox
            .metric("sandbox_executions_total{tenant=\"beta\",outcome=\"success\"}")
            .await,
        0.0
    );
}

/// acme and beta behind a sandbox of two workers whose queue gives up after 300 ms, acme at
/// most one worker with up to 3 s per script: an endless loop of acme's runs long enough to
/// still hold its one worker while its next request waits out the queue timeout and beta runs,
/// however loaded the machine.
async fn two_workers_and_acme_at_one() -> TestApp {
    let sandbox_config = sandbox::Config {
        max_concurrency: 2,
        queue_timeout: Duration::from_millis(300),
        ..sandbox::Config::default()
    };
    spawn_app_with_sandbox(sandbox_config, |config| {
        acme_and_beta(config);
        config.tenants.tenants[0].ceilings.timeout = millis(3000);
    })
    .await
}

#[tokio::test]
async fn a_tenants_concurrency_ceiling_holds_whatever_the_client_claims() {
    let app = two_workers_and_acme_at_one().await;
    let endless = json!({ "code": "while (true) {}", "timeoutMs": 3000 });
    let acme_loop = || {
        let (http, endless) = (app.http.clone(), endless.clone());
        tokio::spawn(async move {
            let headers = [
                ("x-api-key", ACME_KEY),
                ("x-tenant-limits", "concurrency=999"),
            ];
            http.post_execute_with(&headers, &endless).await
        })
    };

    let first = acme_loop();
    app.sandbox
        .http
        .wait_for_metric(
            "sandbox_workers_busy",
            |busy| busy >= 1.0,
            "acme's first loop",
        )
        .await;
    let second = acme_loop();
    // beta takes the second worker at once; acme's second loop may not.
    let beta = run_as(&app, &[("x-api-key", BETA_KEY)], "'beta ran'").await;
    assert_eq!(beta.json()["result"], "beta ran");

    let second = second.await.unwrap();
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.error_kind(), "overloaded");
    let first = first.await.unwrap();
    assert_eq!(first.json()["error"]["kind"], "timeout");
}

#[tokio::test]
async fn a_tenant_the_sandbox_just_refused_is_answered_by_the_ingress_until_its_retry_after() {
    let app = two_workers_and_acme_at_one().await;
    let acme = [("x-api-key", ACME_KEY)];
    let endless = json!({ "code": "while (true) {}", "timeoutMs": 3000 });
    let http = app.http.clone();
    let first = tokio::spawn(async move {
        http.post_execute_with(&[("x-api-key", ACME_KEY)], &endless)
            .await
    });
    let sandbox = &app.sandbox.http;
    sandbox
        .wait_for_metric("sandbox_workers_busy", |busy| busy >= 1.0, "acme's loop")
        .await;
    let rejections = "sandbox_rejections_total{tenant=\"acme\",reason=\"queue_timeout\"}";

    // acme's one worker is held: the sandbox refuses its next execution, with a Retry-After.
    let refused = run_as(&app, &acme, "'waits'").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.error_kind(), "overloaded");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let retry_at = tokio::time::Instant::now() + Duration::from_secs(retry_after);
    assert_eq!(sandbox.metric(rejections).await, 1.0);

    // Asking again at once is answered by the ingress: the sandbox never sees it.
    let again = run_as(&app, &acme, "'at once'").await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(again.error_kind(), "overloaded");
    assert!(
        again.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the sandbox refused this client's last execution"),
        "{}",
        again.json()
    );
    let left: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=retry_after).contains(&left), "{left} of {retry_after}");
    assert_eq!(sandbox.metric(rejections).await, 1.0);
    let refused_here = "ingress_refused_recently_total{tenant=\"acme\"}";
    assert_eq!(app.admin.metric(refused_here).await, 1.0);

    // Nobody else is held back.
    let beta = run_as(&app, &[("x-api-key", BETA_KEY)], "'beta ran'").await;
    assert_eq!(beta.json()["result"], "beta ran");

    // A client that honours Retry-After is served as before.
    tokio::time::sleep_until(retry_at).await;
    assert_eq!(first.await.unwrap().json()["error"]["kind"], "timeout");
    let after = run_as(&app, &acme, "'acme ran'").await;
    assert_eq!(after.json()["result"], "acme ran", "{}", after.json());
    assert_eq!(app.admin.metric(refused_here).await, 1.0);
}

#[tokio::test]
async fn each_tenant_has_its_own_rate_limit() {
    let app = spawn_app_with(|config| {
        acme_and_beta(config);
        config.tenants.tenants[0].rate_limit = burst_of(2);
        config.tenants.tenants[1].rate_limit = burst_of(3);
        config.rate_limit = burst_of(1);
    })
    .await;
    let examples =
        async |headers: &[(&str, &str)]| app.http.get_with("/api/examples", headers).await;
    let acme = [("x-api-key", ACME_KEY)];
    let beta = [("x-api-key", BETA_KEY)];

    for _ in 0..2 {
        assert_eq!(examples(&acme).await.status, StatusCode::OK);
    }
    let refused = examples(&acme).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_kind(), "rate_limited");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("2"));

    // acme's empty bucket leaves beta's and the anonymous tier's full.
    for remaining in ["2", "1", "0"] {
        let answer = examples(&beta).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_eq!(examples(&beta).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(examples(&[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenants_clients_share_one_bucket_whatever_their_address() {
    let app = spawn_app_with(|config| {
        acme_and_beta(config);
        config.tenants.tenants[0].rate_limit = burst_of(2);
        config.trusted_proxy_hops = 1;
    })
    .await;
    for (client, expected) in [
        ("203.0.113.1", StatusCode::OK),
        ("203.0.113.2", StatusCode::OK),
        ("203.0.113.3", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let answer = app
            .http
            .get_with(
                "/api/examples",
                &[("x-api-key", ACME_KEY), ("x-forwarded-for", client)],
            )
            .await;
        assert_eq!(answer.status, expected, "{client}");
    }
}

#[tokio::test]
async fn failed_attempts_count_against_the_clients_anonymous_bucket() {
    let app = spawn_app_with(|config| {
        anonymous_off(config);
        config.rate_limit = burst_of(2);
    })
    .await;
    let wrong = [("x-api-key", "guess")];
    for _ in 0..2 {
        assert_unauthorized(&run_as(&app, &wrong, "1").await, "guess");
    }
    let answer = run_as(&app, &wrong, "1").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // A tenant's own bucket is untouched by the guesses from the same address.
    let answer = run_as(&app, &[("x-api-key", ACME_KEY)], "1").await;
    assert_eq!(answer.status, StatusCode::OK);
}
