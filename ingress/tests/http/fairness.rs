//! Fair sharing: a tenant flooding the service with endless loops cannot push another
//! tenant's trivial requests into 503s or timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, spawn_app_with_sandbox, tenant};
use ingress::tenants::Ceilings;

const FLOOD_KEY: &str = "flood-5c0e1b9a7f3d2468";
const CALM_KEY: &str = "calm-0a4b8c2d6e1f3579";

/// How long each of the flood's endless loops runs before its deadline ends it.
const FLOOD_LOOP_MS: u64 = 250;

/// How long a request may wait for a worker. A calm request waits for at most one of the
/// flood's loops to end and its worker to be replaced: about [`FLOOD_LOOP_MS`], which leaves
/// the calm request eight times that on a loaded 2-core machine. A first-come, first-served
/// queue would put it behind every flood request admitted before it, which is as much of the
/// flood's work as fits in this timeout, so it would time out.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// The worst case: the flooding tenant may hold every worker. Its loops end at their deadline,
/// and then the calm tenant's waiting request is served before the flood's own queue.
#[tokio::test]
async fn a_tenant_flooding_every_worker_with_endless_loops_cannot_starve_another_tenant() {
    let workers = 2;
    let sandbox_config = sandbox::Config {
        max_concurrency: workers,
        queue_capacity: 4 * workers,
        queue_timeout: QUEUE_TIMEOUT,
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

    let flood = Flood::start(&app, &[("x-api-key", FLOOD_KEY)]);
    app.sandbox
        .http
        .wait_for_metric(
            "sandbox_workers_busy",
            |busy| busy >= workers as f64,
            "the flood to hold every worker",
        )
        .await;

    let bearer = format!("Bearer {CALM_KEY}");
    trivial_requests_are_served(&app, &[("authorization", bearer.as_str())]).await;
    flood.stop(workers).await;
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
        queue_timeout: QUEUE_TIMEOUT,
        ..sandbox::Config::default()
    };
    let app = spawn_app_with_sandbox(sandbox_config, |config| {
        // Behind one proxy: the client is the right-most X-Forwarded-For entry.
        config.trusted_proxy_hops = 1;
        config.rate_limit = None;
    })
    .await;

    let flood = Flood::start(&app, &[("x-forwarded-for", "198.51.100.1")]);
    // The anonymous tier may be kept from the last worker (which waits for keyed tenants), so
    // the flood holds at least one; its other requests wait or are refused.
    app.sandbox
        .http
        .wait_for_metric(
            "sandbox_workers_busy",
            |busy| busy >= 1.0,
            "the flood to hold a worker",
        )
        .await;

    trivial_requests_are_served(&app, &[("x-forwarded-for", "198.51.100.2")]).await;
    flood.stop(workers).await;
}

/// Twelve clients with the same `headers` looping `while (true) {}` to their deadline, more
/// loops in flight than workers and waiting places together; a refused one backs off a little,
/// as a client would.
struct Flood {
    flooding: Arc<AtomicBool>,
    timeouts: Arc<AtomicUsize>,
    flooders: Vec<JoinHandle<()>>,
}

impl Flood {
    fn start(app: &TestApp, headers: &[(&'static str, &'static str)]) -> Flood {
        let flooding = Arc::new(AtomicBool::new(true));
        let timeouts = Arc::new(AtomicUsize::new(0));
        let flooders = (0..12)
            .map(|_| {
                let (http, flooding, timeouts) =
                    (app.http.clone(), flooding.clone(), timeouts.clone());
                let headers = headers.to_vec();
                tokio::spawn(async move {
                    let endless = json!({ "code": "while (true) {}", "timeoutMs": FLOOD_LOOP_MS });
                    while flooding.load(Ordering::Relaxed) {
                        let answer = http.post_execute_with(&headers, &endless).await;
                        if answer.status == StatusCode::OK {
                            timeouts.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Flood {
            flooding,
            timeouts,
            flooders,
        }
    }

    /// Stops the flood, and checks that it really held the `workers`: at least two loops each
    /// ran to their deadline.
    async fn stop(self, workers: usize) {
        self.flooding.store(false, Ordering::Relaxed);
        for flooder in self.flooders {
            flooder.await.unwrap();
        }
        assert!(
            self.timeouts.load(Ordering::Relaxed) >= 2 * workers,
            "the flood really held the workers"
        );
    }
}

/// Ten trivial requests with `headers`, each answered 200 with its result.
async fn trivial_requests_are_served(app: &TestApp, headers: &[(&str, &str)]) {
    for n in 0..10 {
        let answer = app
            .http
            .post_execute_with(headers, &json!({ "code": format!("{n} + 1") }))
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
}
