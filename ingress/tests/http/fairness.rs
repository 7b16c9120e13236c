//! Fair sharing: a tenant flooding the service with endless loops cannot push another
//! tenant's trivial requests into 503s or timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{spawn_app_with_sandbox, tenant};
use ingress::tenants::Ceilings;

const FLOOD_KEY: &str = "flood-5c0e1b9a7f3d2468";
const CALM_KEY: &str = "calm-0a4b8c2d6e1f3579";

/// The worst case: the flooding tenant may hold every worker. Its loops end at their 500 ms
/// deadline, and then the calm tenant's waiting request is served before the flood's own
/// queue (which has eight requests in it, four rounds of both workers: a first-come,
/// first-served queue would make the calm request wait past the 2 s queue timeout).
#[tokio::test]
async fn a_tenant_flooding_every_worker_with_endless_loops_cannot_starve_another_tenant() {
    let workers = 2;
    let sandbox_config = sandbox::Config {
        max_concurrency: workers,
        queue_capacity: 4 * workers,
        queue_timeout: Duration::from_secs(2),
        ..sandbox::Config::default()
    };
    let app = spawn_app_with_sandbox(sandbox_config, |config| {
        config.tenants.tenants = vec![
            tenant(
                "flood",
                FLOOD_KEY,
                None,
                Ceilings {
                    concurrency: Some(workers as u32),
                    ..Ceilings::default()
                },
            ),
            tenant("calm", CALM_KEY, None, Ceilings::default()),
        ];
    })
    .await;

    let flooding = Arc::new(AtomicBool::new(true));
    let flood_timeouts = Arc::new(AtomicUsize::new(0));
    // More loops in flight than workers and waiting places together.
    let flooders: Vec<_> = (0..12)
        .map(|_| {
            let (http, flooding, timeouts) =
                (app.http.clone(), flooding.clone(), flood_timeouts.clone());
            tokio::spawn(async move {
                let endless = json!({ "code": "while (true) {}", "timeoutMs": 500 });
                while flooding.load(Ordering::Relaxed) {
                    let answer = http
                        .post_execute_with(&[("x-api-key", FLOOD_KEY)], &endless)
                        .await;
                    if answer.status == StatusCode::OK {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Refused (its own queue is full): back off a little, as a client would.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    // Let the flood fill both workers and its queue.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bearer = format!("Bearer {CALM_KEY}");
    let calm = [("authorization", bearer.as_str())];
    for n in 0..10 {
        let answer = app
            .http
            .post_execute_with(&calm, &json!({ "code": format!("{n} + 1") }))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {n}: {:?}",
            answer.body
        );
        assert_eq!(answer.json()["status"], "success", "request {n}");
        assert_eq!(answer.json()["result"], n + 1);
    }

    flooding.store(false, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    assert!(
        flood_timeouts.load(Ordering::Relaxed) >= 2 * workers,
        "the flood really held the workers"
    );
    assert_eq!(
        app.sandbox
            .http
            .metric("sandbox_rejections_total{tenant=\"calm\",reason=\"queue_timeout\"}")
            .await,
        0.0
    );
}

/// The anonymous tier is shared by everyone without a key, but each client (by the ingress's
/// client key) takes its own turns: one anonymous client flooding every worker with endless
/// loops cannot starve another.
#[tokio::test]
async fn an_anonymous_client_flooding_every_worker_cannot_starve_another_anonymous_client() {
    let workers = 2;
    let sandbox_config = sandbox::Config {
        max_concurrency: workers,
        queue_timeout: Duration::from_secs(2),
        ..sandbox::Config::default()
    };
    let app = spawn_app_with_sandbox(sandbox_config, |config| {
        // Behind one proxy: the client is the right-most X-Forwarded-For entry.
        config.trusted_proxy_hops = 1;
        config.rate_limit = None;
    })
    .await;

    let flooding = Arc::new(AtomicBool::new(true));
    let flood_timeouts = Arc::new(AtomicUsize::new(0));
    let flooders: Vec<_> = (0..12)
        .map(|_| {
            let (http, flooding, timeouts) =
                (app.http.clone(), flooding.clone(), flood_timeouts.clone());
            tokio::spawn(async move {
                let endless = json!({ "code": "while (true) {}", "timeoutMs": 500 });
                while flooding.load(Ordering::Relaxed) {
                    let answer = http
                        .post_execute_with(&[("x-forwarded-for", "198.51.100.1")], &endless)
                        .await;
                    if answer.status == StatusCode::OK {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let calm = [("x-forwarded-for", "198.51.100.2")];
    for n in 0..10 {
        let answer = app
            .http
            .post_execute_with(&calm, &json!({ "code": format!("{n} + 1") }))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {n}: {:?}",
            answer.body
        );
        assert_eq!(answer.json()["status"], "success", "request {n}");
        assert_eq!(answer.json()["result"], n + 1);
    }

    flooding.store(false, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    assert!(
        flood_timeouts.load(Ordering::Relaxed) >= 2 * workers,
        "the flood really held the workers"
    );
}
