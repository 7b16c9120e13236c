//! Service benchmark: executions per second and latency through HTTP, next to the raw engine's
//! own cost measured in the same run, and the ratios between them.
//!
//! `cargo bench -p e2e --bench service` (set `BENCH_SECONDS` to change each phase's length,
//! default 3, and `BENCH_SCRIPTS=trivial,pi.js` to run only some scripts). Figures on shared machines are noisy; compare the ratios printed in one run.

mod support;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use rquickjs::{Context, Function, Runtime, function::Rest};
use tokio::net::TcpListener;

const TRIVIAL: &str = "1 + 2";
const CONSOLE_HEAVY: &str =
    "for (let i = 0; i < 100; i++) console.log('line', i, { i, even: i % 2 === 0 }); 'done'";
const PI: &str = include_str!("../../example-scripts/pi.js");

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let phase = Duration::from_secs_f64(seconds);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("service benchmark: {seconds} s per phase, {cores} cores\n");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let sandbox = start_sandbox().await;
        let ingress = start_ingress(sandbox).await;
        let direct = Load::new(sandbox);
        let proxied = Load::new(ingress);
        let floor = direct.floor(phase).await;
        println!(
            "HTTP floor (GET /healthz, one connection): p50 {:.1} us, p99 {:.1} us\n",
            floor.percentile(50.0),
            floor.percentile(99.0)
        );
        // Warm up connections, workers and caches.
        direct.sequential(TRIVIAL, Duration::from_millis(300)).await;
        proxied
            .sequential(TRIVIAL, Duration::from_millis(300))
            .await;

        println!(
            "{:<14} {:>12} {:>11} {:>11} {:>11} {:>14}",
            "script", "raw exec/s", "raw us", "http p50 us", "http p99 us", "p50 / raw"
        );
        for (name, code) in scripts(&[("trivial", TRIVIAL), ("console-heavy", CONSOLE_HEAVY), ("pi.js", PI)]) {
            let raw = raw_engine_single(code, phase);
            let http = direct.sequential(code, phase).await;
            println!(
                "{name:<14} {:>12.0} {:>11.1} {:>11.1} {:>11.1} {:>13.2}x",
                raw.per_second(),
                raw.mean_micros(),
                http.percentile(50.0),
                http.percentile(99.0),
                http.percentile(50.0) / raw.mean_micros(),
            );
        }

        println!("\nthroughput, 16 concurrent connections (raw engine: one loop per core)");
        println!(
            "{:<14} {:>12} {:>13} {:>11} {:>11} {:>12}",
            "script", "raw exec/s", "http exec/s", "http p50 us", "http p99 us", "http / raw"
        );
        for (name, code) in scripts(&[("trivial", TRIVIAL), ("console-heavy", CONSOLE_HEAVY), ("pi.js", PI)]) {
            let raw = raw_engine_parallel(code, phase, cores);
            let http = direct.concurrent(code, 16, phase).await;
            println!(
                "{name:<14} {:>12.0} {:>13.0} {:>11.1} {:>11.1} {:>11.0}%",
                raw,
                http.per_second(),
                http.percentile(50.0),
                http.percentile(99.0),
                100.0 * http.per_second() / raw,
            );
        }

        println!("\nthe service's own engine in-process, runtime created per execution (no warm pool, no HTTP)");
        for (name, code) in scripts(&[("trivial", TRIVIAL), ("console-heavy", CONSOLE_HEAVY)]) {
            let cold = engine_cold(code, phase);
            println!("{name:<14} {:>9.1} us per execution", cold.mean_micros());
        }

        println!("\nproxy hop, trivial script: through the ingress vs straight to the sandbox");
        let direct_one = direct.sequential(TRIVIAL, phase).await;
        let proxied_one = proxied.sequential(TRIVIAL, phase).await;
        let direct_many = direct.concurrent(TRIVIAL, 16, phase).await;
        let proxied_many = proxied.concurrent(TRIVIAL, 16, phase).await;
        println!(
            "1 connection:   p50 direct {:.1} us, via ingress {:.1} us: {:.2}x",
            direct_one.percentile(50.0),
            proxied_one.percentile(50.0),
            proxied_one.percentile(50.0) / direct_one.percentile(50.0)
        );
        println!(
            "16 connections: direct {:.0} exec/s, via ingress {:.0} exec/s: {:.0}%",
            direct_many.per_second(),
            proxied_many.per_second(),
            100.0 * proxied_many.per_second() / direct_many.per_second()
        );
    });
}

/// The scripts named in `BENCH_SCRIPTS` (comma-separated), or all of them.
fn scripts(all: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let wanted = std::env::var("BENCH_SCRIPTS").unwrap_or_default();
    all.iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.split(',').any(|w| w == *name))
        .copied()
        .collect()
}

/// Fresh runtime + full context + eval, in a loop on one thread: the raw engine's cost.
struct RawRun {
    runs: u32,
    elapsed: Duration,
}

impl RawRun {
    fn per_second(&self) -> f64 {
        f64::from(self.runs) / self.elapsed.as_secs_f64()
    }

    fn mean_micros(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / f64::from(self.runs)
    }
}

fn raw_engine_single(code: &str, phase: Duration) -> RawRun {
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < phase {
        raw_execute(code);
        runs += 1;
    }
    RawRun {
        runs,
        elapsed: started.elapsed(),
    }
}

fn raw_engine_parallel(code: &str, phase: Duration, threads: usize) -> f64 {
    let code: Arc<str> = Arc::from(code);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let code = code.clone();
            std::thread::spawn(move || raw_engine_single(&code, phase).per_second())
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .sum()
}

/// `engine::execute`: what a request would cost without a prepared runtime.
fn engine_cold(code: &str, phase: Duration) -> RawRun {
    let settings = engine::EngineSettings::default();
    let limits = engine::Limits {
        timeout: Duration::from_secs(5),
        memory_limit: 64 << 20,
    };
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < phase {
        let script = engine::Script {
            name: "bench.js".into(),
            source: Arc::from(code),
            language: engine::Language::JavaScript,
            input: None,
        };
        let (outcome, _log) = engine::execute(&settings, script, limits).unwrap();
        assert!(outcome.result.is_ok());
        runs += 1;
    }
    RawRun {
        runs,
        elapsed: started.elapsed(),
    }
}

/// The raw engine with the least a console needs: arguments turned into JSON text.
fn raw_execute(code: &str) {
    let runtime = Runtime::new().unwrap();
    let context = Context::full(&runtime).unwrap();
    context.with(|ctx| {
        let console = rquickjs::Object::new(ctx.clone()).unwrap();
        let log = Function::new(ctx.clone(), stringify_all).unwrap();
        console.set("log", log).unwrap();
        ctx.globals().set("console", console).unwrap();
        let _: rquickjs::Value = ctx.eval(code).unwrap();
    });
}

fn stringify_all<'js>(ctx: rquickjs::Ctx<'js>, args: Rest<rquickjs::Value<'js>>) {
    for arg in args.0 {
        let _ = ctx.json_stringify(arg);
    }
}

/// Latencies of one load phase.
struct HttpRun {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl HttpRun {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        support::percentile_micros(&self.latencies, p)
    }
}

#[derive(Clone)]
struct Load {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Load {
    fn new(addr: SocketAddr) -> Self {
        let client = support::http_client();
        Self { addr, client }
    }

    async fn execute(&self, body: &Bytes) -> Duration {
        let request = Request::post(format!("http://{}/api/execute", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let started = Instant::now();
        let response = self.client.request(request).await.expect("request failed");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(
            bytes.starts_with(b"{\"status\":\"success\""),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        elapsed
    }

    /// Round trips to `/healthz`: the cost of HTTP alone, no script.
    async fn floor(&self, phase: Duration) -> HttpRun {
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < phase {
            let request = Request::get(format!("http://{}/healthz", self.addr))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let sent = Instant::now();
            let response = self.client.request(request).await.expect("request failed");
            response.into_body().collect().await.unwrap();
            latencies.push(sent.elapsed());
        }
        HttpRun {
            latencies,
            elapsed: started.elapsed(),
        }
    }

    async fn sequential(&self, code: &str, phase: Duration) -> HttpRun {
        let body = body(code);
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < phase {
            latencies.push(self.execute(&body).await);
        }
        HttpRun {
            latencies,
            elapsed: started.elapsed(),
        }
    }

    async fn concurrent(&self, code: &str, connections: usize, phase: Duration) -> HttpRun {
        let body = body(code);
        let started = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (load, body) = (self.clone(), body.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while started.elapsed() < phase {
                        latencies.push(load.execute(&body).await);
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        HttpRun {
            latencies,
            elapsed: started.elapsed(),
        }
    }
}

fn body(code: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "code": code }).to_string())
}

async fn start_sandbox() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = sandbox::Config {
        // Sixteen connections all get a worker or a queue place: the benchmark measures
        // throughput, not rejection.
        queue_capacity: 64,
        queue_timeout: Duration::from_secs(120),
        worker_program: e2e::binary_path("sandbox"),
        ..sandbox::Config::default()
    };
    // Every request here is anonymous, as in a deployment without keys, which gives the
    // anonymous tier every worker (by default it leaves one to keyed tenants).
    let config = sandbox::Config {
        anonymous_max_workers: Some(config.max_concurrency),
        ..config
    };
    tokio::spawn(sandbox::run(listener, config, forever()));
    addr
}

async fn start_ingress(sandbox: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ingress::Config {
        sandbox_url: Some(format!("http://{sandbox}").parse().unwrap()),
        rate_limit: None,
        ..ingress::Config::default()
    };
    tokio::spawn(ingress::run(listener, config, forever()));
    addr
}

fn forever() -> std::future::Pending<()> {
    std::future::pending()
}
