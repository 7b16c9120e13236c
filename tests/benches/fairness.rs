//! Fairness benchmark: tenant B's latency for a trivial script while tenant A floods the
//! service with endless loops, next to B's latency alone, through the real ingress (API keys,
//! tenants) and the real sandbox, in one process.
//!
//! `cargo bench -p e2e --bench fairness` (set `BENCH_SECONDS` to change each phase's length,
//! default 3). The sandbox has one worker per core. A's flood keeps more loops in flight than
//! there are workers and waiting places, each running until its 1 s deadline. Two settings of
//! A's `max_concurrency` are measured, each against the target of B's p50 within 3x of alone:
//! below the number of workers, and all the workers, where only the scheduler's reservation of
//! the last free worker for other active tenants keeps B from waiting on A's loops. Then A
//! sends batches instead (`POST /api/batch`, 1000 trivial items each, back to back), against
//! the target of B's p50 within 1.5x of alone: every item is a turn, so B's requests take
//! theirs between A's items.

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use ingress::tenants::{Ceilings, KeyHash, Tenant};
use tokio::net::TcpListener;

const B_KEY: &str = "bench-tenant-b";
const A_BELOW_KEY: &str = "bench-tenant-a-below";
const A_ALL_KEY: &str = "bench-tenant-a-all";
/// Deadline of each of A's endless loops.
const LOOP_TIMEOUT_MS: u64 = 1000;

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let phase = Duration::from_secs_f64(seconds);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let flood_clients = 3 * workers + 2;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let sandbox = start_sandbox(workers).await;
        let ingress = start_ingress(sandbox, workers).await;
        let client = Service::new(ingress);
        println!(
            "fairness benchmark: {workers} workers, {seconds} s per phase; A floods with \
             {flood_clients} clients looping `while (true) {{}}` (timeoutMs {LOOP_TIMEOUT_MS})\n"
        );
        // Warm up connections and workers.
        client.tenant_b_for(Duration::from_millis(300)).await;

        println!(
            "{:<44} {:>9} {:>9} {:>13} {:>10} {:>16}",
            "tenant B, trivial script, one at a time",
            "p50 us",
            "p99 us",
            "ok/sent",
            "A's runs",
            "p50 / alone"
        );
        let alone = client.tenant_b_for(phase).await;
        alone.print("B alone", None, 0, None);
        for (label, a_key, target) in [
            (
                format!(
                    "A floods, A's ceiling {} of {workers} workers",
                    workers.saturating_sub(1).max(1)
                ),
                A_BELOW_KEY,
                Some(3.0),
            ),
            (
                format!("A floods, A's ceiling {workers} of {workers} (worst)"),
                A_ALL_KEY,
                Some(3.0),
            ),
        ] {
            let flood = Flood::start(&client, a_key, flood_clients, Load::Loops);
            // Let the flood take its workers and fill its queue.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let contended = client.tenant_b_for(phase).await;
            let a_runs = flood.stop().await;
            contended.print(&label, Some(alone.p50()), a_runs, target);
        }
        for (label, a_key) in [
            (
                format!(
                    "A's batches, A's ceiling {} of {workers} workers",
                    workers.saturating_sub(1).max(1)
                ),
                A_BELOW_KEY,
            ),
            (
                format!("A's batches, A's ceiling {workers} of {workers}"),
                A_ALL_KEY,
            ),
        ] {
            let batches = Flood::start(&client, a_key, 1, Load::Batches);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let contended = client.tenant_b_for(phase).await;
            let a_items = batches.stop().await;
            contended.print(&label, Some(alone.p50()), a_items, Some(1.5));
        }
    });
}

/// What A sends.
#[derive(Clone, Copy)]
enum Load {
    /// Endless loops, one execution each, until their deadline.
    Loops,
    /// Batches of [`BATCH_ITEMS`] trivial items.
    Batches,
}

/// Items of each of A's batches.
const BATCH_ITEMS: usize = 1000;

/// B's answers in one phase.
struct Phase {
    latencies: Vec<Duration>,
    sent: usize,
}

impl Phase {
    fn percentile(&self, p: f64) -> f64 {
        support::percentile_micros(&self.latencies, p)
    }

    fn p50(&self) -> f64 {
        self.percentile(50.0)
    }

    fn print(&self, label: &str, alone_p50: Option<f64>, a_runs: usize, target: Option<f64>) {
        let ratio = alone_p50.map_or(String::new(), |alone| {
            let ratio = self.p50() / alone;
            match target {
                Some(target) if ratio <= target => format!("{ratio:.2}x (<= {target}x)"),
                Some(target) => format!("{ratio:.2}x (> {target}x!)"),
                None => format!("{ratio:.2}x"),
            }
        });
        println!(
            "{label:<44} {:>9.0} {:>9.0} {:>13} {:>10} {:>16}",
            self.p50(),
            self.percentile(99.0),
            format!("{}/{}", self.latencies.len(), self.sent),
            a_runs,
            ratio
        );
    }
}

/// The ingress as a tenant's client sees it.
#[derive(Clone)]
struct Service {
    addr: SocketAddr,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Service {
    fn new(addr: SocketAddr) -> Self {
        let http = support::http_client();
        Self { addr, http }
    }

    /// Sends `code` as the tenant of `key`; the status and whether the script succeeded.
    async fn execute(&self, key: &str, body: &Bytes) -> (StatusCode, bool) {
        self.post("/api/execute", key, body).await
    }

    /// Posts `body` to `path` as the tenant of `key`; the status and whether the answer
    /// starts as a success.
    async fn post(&self, path: &str, key: &str, body: &Bytes) -> (StatusCode, bool) {
        let request = Request::post(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .header("x-api-key", key)
            .body(Full::new(body.clone()))
            .unwrap();
        let response = self.http.request(request).await.expect("request failed");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.starts_with(b"{\"status\":\"success\""))
    }

    /// B's trivial scripts, one after another, for `phase`.
    async fn tenant_b_for(&self, phase: Duration) -> Phase {
        let body = Bytes::from(r#"{"code":"1 + 2"}"#);
        let started = Instant::now();
        let mut result = Phase {
            latencies: Vec::new(),
            sent: 0,
        };
        while started.elapsed() < phase {
            let sent = Instant::now();
            let (status, success) = self.execute(B_KEY, &body).await;
            result.sent += 1;
            if status == StatusCode::OK && success {
                result.latencies.push(sent.elapsed());
            }
        }
        result
    }
}

/// A's clients, each sending its [`Load`] again and again until stopped.
struct Flood {
    running: Arc<AtomicBool>,
    runs_done: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(client: &Service, key: &'static str, clients: usize, load: Load) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let runs_done = Arc::new(AtomicUsize::new(0));
        let (path, body, runs) = match load {
            Load::Loops => (
                "/api/execute",
                format!(r#"{{"code":"while (true) {{}}","timeoutMs":{LOOP_TIMEOUT_MS}}}"#),
                1,
            ),
            Load::Batches => {
                let inputs: Vec<String> = (0..BATCH_ITEMS).map(|n| n.to_string()).collect();
                (
                    "/api/batch",
                    format!(r#"{{"code":"input * 2","inputs":[{}]}}"#, inputs.join(",")),
                    BATCH_ITEMS,
                )
            }
        };
        let body = Bytes::from(body);
        let tasks = (0..clients)
            .map(|_| {
                let (client, running, runs_done, body) = (
                    client.clone(),
                    running.clone(),
                    runs_done.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    while running.load(Ordering::Relaxed) {
                        let (status, _) = client.post(path, key, &body).await;
                        if status == StatusCode::OK {
                            runs_done.fetch_add(runs, Ordering::Relaxed);
                        } else {
                            // Its own queue is full: back off a little, as a client would.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            running,
            runs_done,
            tasks,
        }
    }

    /// Stops the flood once its runs in flight end; returns how many ran (loops, or items of
    /// whole batches).
    async fn stop(self) -> usize {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.runs_done.load(Ordering::Relaxed)
    }
}

async fn start_sandbox(workers: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = sandbox::Config {
        max_concurrency: workers,
        worker_program: e2e::binary_path("sandbox"),
        ..sandbox::Config::default()
    };
    tokio::spawn(sandbox::run(listener, config, std::future::pending()));
    addr
}

async fn start_ingress(sandbox: SocketAddr, workers: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tenant = |id: &str, key: &str, max_concurrency: usize| Tenant {
        id: id.to_owned(),
        keys: vec![KeyHash::of_key(key)],
        rate_limit: None,
        ceilings: Ceilings {
            concurrency: Some(max_concurrency as u32),
            ..Ceilings::default()
        },
        sources: Default::default(),
        capabilities: Default::default(),
    };
    let mut config = ingress::Config {
        sandbox_url: Some(format!("http://{sandbox}").parse().unwrap()),
        rate_limit: None,
        ..ingress::Config::default()
    };
    config.tenants.tenants = vec![
        tenant("b", B_KEY, 1),
        tenant("a-below", A_BELOW_KEY, workers.saturating_sub(1).max(1)),
        tenant("a-all", A_ALL_KEY, workers),
    ];
    tokio::spawn(ingress::run_with_admin(
        listener,
        None,
        config,
        std::future::pending(),
    ));
    addr
}
