//! The worker processes themselves: how they are hardened, what killing and crashing them
//! leaves behind, how they are recycled, and the memory of the whole process tree. A test
//! binary of its own, whose tests run one at a time: the sandbox runs inside this process, so
//! its workers are this process's children, and the tests count them.

#[path = "api/support.rs"]
#[allow(dead_code)] // shared with the api tests, which use all of it
mod support;

use std::{
    collections::BTreeSet,
    fs,
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};

use support::{TestApp, spawn_app_with};

/// A script that spends seconds in one C call that never polls the interrupt handler.
const UNSTOPPABLE: &str = "'a'.repeat(3e5).indexOf('a'.repeat(1e4) + 'b')";

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Takes this binary's turn, once the sandbox of the test before (torn down after its test
/// returned) has no process left.
async fn one_at_a_time() -> MutexGuard<'static, ()> {
    let turn = ONE_AT_A_TIME.lock().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !children().is_empty() {
        let left: Vec<_> = children()
            .into_iter()
            .map(|(pid, state)| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                (
                    pid,
                    state,
                    String::from_utf8_lossy(&cmdline).replace('\0', " "),
                )
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "an earlier test's processes remain: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    turn
}

/// A process's state letter and parent, from `/proc/<pid>/stat`.
fn state_and_parent(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// This process's children, with their state letters.
fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (state, parent) = state_and_parent(pid)?;
            (parent == me).then_some((pid, state))
        })
        .collect()
}

/// Live worker processes of the sandbox in this process.
fn workers() -> BTreeSet<u32> {
    children()
        .into_iter()
        .filter(|(_, state)| *state != 'Z')
        .map(|(pid, _)| pid)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|byte| *byte == 0).nth(1) == Some(b"worker"))
        })
        .collect()
}

fn zombies() -> usize {
    children().iter().filter(|(_, state)| *state == 'Z').count()
}

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until `done` holds, for at most `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the metric sample reaches `at_least` (exits are counted when the launcher reaps
/// a worker, a moment after the answer), returning its value; after 30 s (far past a loaded
/// machine's delay), returns what it reads for the caller's assertion to report.
async fn metric_reaches(app: &TestApp, sample: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = app.metric(sample).await;
        if value >= at_least || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_field(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_owned()
}

fn limit(pid: u32, name: &str) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {limits}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn app(workers: usize, customize: impl FnOnce(&mut sandbox::Config)) -> TestApp {
    spawn_app_with(|config| {
        config.max_concurrency = workers;
        // These tests are about the worker processes: their anonymous requests may use them all.
        config.anonymous_max_workers = Some(workers);
        config.watchdog_grace = Duration::from_millis(10);
        customize(config);
    })
    .await
}

#[tokio::test]
async fn a_sessions_worker_is_hardened_as_the_pools_and_dies_with_the_session() {
    let _serial = one_at_a_time().await;
    let app = app(1, |config| config.stack_limit_kb = 512).await;
    assert_eq!(app.run("1").await.result(), &json!(1));
    let pool = workers();
    let created = app
        .call(
            axum::http::Method::POST,
            "/api/sessions",
            &[],
            Some(json!({ "memoryLimitMb": 24 })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let session: Vec<u32> = workers().difference(&pool).copied().collect();
    assert_eq!(session.len(), 1, "one worker of its own: {session:?}");
    let pid = session[0];

    // As the pool's workers: seccomp, one descriptor, the same rlimits, no environment, one
    // thread; its address space sized for the session's memory limit.
    const MIB: u64 = 1 << 20;
    let stack = 4 * 512 * 1024 + 8 * MIB;
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    let descriptors: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(descriptors, ["3"]);
    assert_eq!(limit(pid, "Max open files"), "4");
    assert_eq!(limit(pid, "Max processes"), "0");
    assert_eq!(limit(pid, "Max file size"), "0");
    assert_eq!(
        limit(pid, "Max address space"),
        (24 * MIB + stack + 64 * MIB).to_string()
    );
    assert!(fs::read(format!("/proc/{pid}/environ")).unwrap().is_empty());
    assert_eq!(status_field(pid, "Threads"), "1");

    let deleted = app
        .call(
            axum::http::Method::DELETE,
            &format!("/api/sessions/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(30),
        "the session's worker is gone",
        || !workers().contains(&pid),
    )
    .await;
    assert_eq!(workers(), pool, "the pool's workers are untouched");
}

#[tokio::test]
async fn workers_run_under_seccomp_with_one_descriptor_and_tight_limits() {
    let _serial = one_at_a_time().await;
    let app = app(2, |config| {
        config.max_memory_limit_mb = 128;
        config.default_memory_limit_mb = 64;
        config.stack_limit_kb = 512;
    })
    .await;
    // The documented rules: the worker's stack (RLIMIT_STACK) is 4 × STACK_LIMIT_KB plus
    // 8 MiB, and its address space (RLIMIT_AS) MAX_MEMORY_LIMIT_MB plus that stack plus the
    // worker's fixed overhead of 64 MiB (program, libraries, region, allocator slack).
    const MIB: u64 = 1 << 20;
    let stack = 4 * 512 * 1024 + 8 * MIB;
    let address_space = 128 * MIB + stack + 64 * MIB;
    assert_eq!(app.run("1").await.result(), &json!(1));
    let pids = workers();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        // 2: a seccomp filter is installed; no_new_privs is set with it.
        assert_eq!(status_field(pid, "Seccomp"), "2", "{pid}");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1", "{pid}");
        // Only the channel to the supervisor is open.
        let descriptors: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(descriptors, ["3"], "{pid}");
        assert_eq!(limit(pid, "Max open files"), "4");
        assert_eq!(limit(pid, "Max core file size"), "0");
        assert_eq!(limit(pid, "Max file size"), "0");
        assert_eq!(limit(pid, "Max processes"), "0");
        assert_eq!(limit(pid, "Max stack size"), stack.to_string());
        assert_eq!(limit(pid, "Max address space"), address_space.to_string());
        // No environment was passed on.
        assert!(fs::read(format!("/proc/{pid}/environ")).unwrap().is_empty());
        // One thread: the engine runs on the main thread.
        assert_eq!(status_field(pid, "Threads"), "1");
    }
}

#[tokio::test]
async fn thousands_of_kills_leave_no_zombie_no_descriptor_and_a_full_pool() {
    let _serial = one_at_a_time().await;
    let app = app(2, |_| {}).await;
    let kill = |count: usize| {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    for _ in 0..count / 2 {
                        let response = app
                            .post_execute(json!({ "code": UNSTOPPABLE, "timeoutMs": 20 }))
                            .await;
                        assert_eq!(response.script_error_kind(), "timeout", "{}", response.body);
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            for run in runs {
                run.await.unwrap();
            }
        }
    };
    let started = Instant::now();
    // A first round settles the HTTP connections of this process (client and server sides);
    // then a leak of even one descriptor per killed worker would show as hundreds.
    kill(200).await;
    eventually(Duration::from_secs(30), "zombies left", || zombies() == 0).await;
    let descriptors_between = open_descriptors();
    kill(800).await;
    println!("1000 executions in {:?}", started.elapsed());
    let sample = "sandbox_worker_exits_total{reason=\"timeout\",signal=\"SIGKILL\"}";
    // Most are killed. Some are stopped by the interrupt just before the unstoppable call
    // begins, more on a loaded machine, where a worker may wait for the CPU past its 20 ms
    // deadline; hundreds of kills still make a leak of one descriptor per kill plain.
    let killed = metric_reaches(&app, sample, 500.0).await;
    assert!(killed >= 500.0, "{killed} workers killed");
    // Every killed worker is reaped, and the pool is back to its size.
    eventually(Duration::from_secs(30), "zombies left", || zombies() == 0).await;
    eventually(Duration::from_secs(30), "pool not refilled", || {
        workers().len() == 2
    })
    .await;
    assert_eq!(app.metric("sandbox_workers").await, 2.0);
    let descriptors_after = open_descriptors();
    assert!(
        descriptors_after <= descriptors_between + 4,
        "descriptors grew from {descriptors_between} to {descriptors_after} over 800 kills"
    );
    assert_eq!(app.run("'still here'").await.result(), &json!("still here"));
}

/// CPU time a process has used, in clock ticks (`utime + stime` of `/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

/// The idle workers with the CPU time each has used so far, for [`the_worker_that_spins`].
fn idle_workers() -> Vec<(u32, u64)> {
    let idle: Vec<(u32, u64)> = workers()
        .into_iter()
        .map(|pid| (pid, cpu_ticks(pid)))
        .collect();
    assert_eq!(idle.len(), 2, "{idle:?}");
    idle
}

/// Of the `idle` workers, the one running an endless loop: the first to use a fifth of a second
/// of CPU (20 ticks at the usual 100 Hz), which an idle worker never does.
async fn the_worker_that_spins(idle: &[(u32, u64)]) -> u32 {
    let spinning = || {
        idle.iter()
            .find(|(pid, before)| cpu_ticks(*pid) >= before + 20)
            .map(|(pid, _)| *pid)
    };
    eventually(
        Duration::from_secs(60),
        "no worker spun the endless loop",
        || spinning().is_some(),
    )
    .await;
    spinning().expect("a spinning worker")
}

#[tokio::test]
async fn a_crashing_worker_costs_only_its_own_execution() {
    let _serial = one_at_a_time().await;
    let app = app(2, |_| {}).await;
    assert_eq!(app.run("1").await.result(), &json!(1));
    let idle = idle_workers();
    let doomed = {
        let app = app.clone();
        tokio::spawn(async move {
            let code = "console.log('about to crash'); while (true) {}";
            app.post_execute(json!({ "code": code, "timeoutMs": 20000 }))
                .await
        })
    };
    let doomed_pid = the_worker_that_spins(&idle).await;
    // The survivor is a tenant of its own, so that the anonymous tier's share of the workers
    // does not keep it waiting for the doomed one.
    let survivor = {
        let app = app.clone();
        tokio::spawn(async move {
            let code = "const end = Date.now() + 600; while (Date.now() < end) {} 'done'";
            app.post_execute_with(&[("x-tenant-id", "survivor")], json!({ "code": code }))
                .await
        })
    };
    // Both run: the crash comes while the survivor's execution is under way.
    app.wait_for_metric("sandbox_workers_busy", 2.0).await;
    // SAFETY: kill(2) with a pid of our own child.
    unsafe { libc::kill(doomed_pid as i32, libc::SIGSEGV) };

    let doomed = doomed.await.unwrap();
    assert_eq!(doomed.script_error_kind(), "crashed", "{}", doomed.body);
    // What it logged before the crash is kept.
    assert_eq!(doomed.log()[0]["data"], json!(["about to crash"]));
    let survivor = survivor.await.unwrap();
    assert_eq!(survivor.result(), &json!("done"));
    let sample = "sandbox_worker_exits_total{reason=\"crashed\",signal=\"SIGSEGV\"}";
    assert_eq!(metric_reaches(&app, sample, 1.0).await, 1.0);
    eventually(
        Duration::from_secs(30),
        "crashed worker not replaced",
        || {
            let now = workers();
            now.len() == 2 && !now.contains(&doomed_pid)
        },
    )
    .await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.run("2 * 21").await.result(), &json!(42));
}

#[tokio::test]
async fn a_batch_item_whose_worker_crashes_costs_only_that_item() {
    let _serial = one_at_a_time().await;
    let app = app(2, |_| {}).await;
    assert_eq!(app.run("1").await.result(), &json!(1));
    let idle = idle_workers();
    let tenant = [
        ("x-tenant-id", "acme"),
        ("x-tenant-limits", "concurrency=2"),
    ];
    let batch = {
        let app = app.clone();
        tokio::spawn(async move {
            let code =
                "if (input === 'doomed') { console.log('about to crash'); for (;;) {} } input";
            let inputs = json!(["doomed", 1, 2, 3, 4, 5, 6]);
            app.post_batch_with(
                &tenant,
                json!({"code": code, "timeoutMs": 20000, "inputs": inputs}),
            )
            .await
        })
    };
    // The other items ran on the other worker meanwhile.
    app.wait_for_metric(
        "sandbox_executions_total{tenant=\"acme\",outcome=\"success\"}",
        6.0,
    )
    .await;
    let doomed_pid = the_worker_that_spins(&idle).await;
    // SAFETY: kill(2) with a pid of our own child.
    unsafe { libc::kill(doomed_pid as i32, libc::SIGSEGV) };

    let batch = batch.await.unwrap();
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    let results = batch.body["results"].as_array().expect("results");
    assert_eq!(results[0]["error"]["kind"], "crashed", "{}", batch.body);
    assert_eq!(results[0]["log"][0]["data"], json!(["about to crash"]));
    for (n, result) in results.iter().enumerate().skip(1) {
        assert_eq!(result["status"], "success", "{}", batch.body);
        assert_eq!(result["result"], json!(n));
    }
    let sample = "sandbox_worker_exits_total{reason=\"crashed\",signal=\"SIGSEGV\"}";
    assert_eq!(metric_reaches(&app, sample, 1.0).await, 1.0);
}

#[tokio::test]
async fn scripts_ending_right_at_the_kill_boundary_leave_the_pool_consistent() {
    let _serial = one_at_a_time().await;
    // 40 ms deadline, 10 ms grace: unstoppable calls sized to end around 50 ms race the kill.
    let app = app(2, |_| {}).await;
    // How long the search takes per needle unit on this machine and build.
    let search = |needle: usize| format!("'a'.repeat(3e5).indexOf('a'.repeat({needle}) + 'b')");
    let measured = app
        .post_execute(json!({ "code": search(20), "timeoutMs": 10000 }))
        .await;
    let per_unit = measured.body["executionTime"].as_f64().unwrap() / 20.0;
    let at_boundary = (50.0 / per_unit).max(2.0);
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0..30 {
                    // From 60% to 140% of the work that ends right at the kill (40 + 10 ms).
                    let share = 0.6 + 0.8 * (((n + client) % 15) as f64 / 14.0);
                    let code = search((at_boundary * share).round() as usize);
                    let response = app
                        .post_execute(json!({ "code": code, "timeoutMs": 40 }))
                        .await;
                    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
                    outcomes.push(if response.body["status"] == "success" {
                        "success".to_owned()
                    } else {
                        response.script_error_kind().to_owned()
                    });
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for client in clients {
        for kind in client.await.unwrap() {
            assert!(kind == "success" || kind == "timeout", "{kind}");
            *outcomes.entry(kind).or_default() += 1;
        }
    }
    println!("outcomes at the boundary: {outcomes:?}");
    eventually(Duration::from_secs(30), "zombies left", || zombies() == 0).await;
    eventually(Duration::from_secs(30), "pool not refilled", || {
        workers().len() == 2
    })
    .await;
    assert_eq!(app.metric("sandbox_workers").await, 2.0);
    assert_eq!(app.metric("sandbox_workers_busy").await, 0.0);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn workers_are_replaced_after_their_share_of_executions() {
    let _serial = one_at_a_time().await;
    let app = app(1, |config| config.worker_max_executions = 3).await;
    assert_eq!(app.run("1").await.result(), &json!(1));
    let first = workers();
    for n in 0..2 {
        assert_eq!(app.run(&format!("{n}")).await.result(), &json!(n));
    }
    eventually(Duration::from_secs(30), "worker not recycled", || {
        let now = workers();
        now.len() == 1 && now != first
    })
    .await;
    // A recycled worker is killed, unless it saw its channel close and exited first, cleanly
    // (never by its filter: SIGSYS).
    let (_, metrics) = app.metrics().await;
    let recycled = metrics
        .lines()
        .filter(|line| line.starts_with("sandbox_worker_exits_total{reason=\"recycled\""))
        .count();
    let sample = "sandbox_worker_exits_total{reason=\"recycled\",signal=\"SIGKILL\"}";
    let killed = metric_reaches(&app, sample, 1.0).await;
    let exited = app
        .metric("sandbox_worker_exits_total{reason=\"recycled\",signal=\"none\"}")
        .await;
    assert_eq!(
        killed + exited,
        1.0,
        "{recycled} series: {}",
        metrics
            .lines()
            .filter(|line| line.contains("worker_exits_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn a_worker_whose_resident_memory_passes_the_bound_is_replaced() {
    let _serial = one_at_a_time().await;
    // Every worker holds more than 1 MiB; a script whose heap passes half of that makes the
    // supervisor look, and replace the worker.
    let app = app(1, |config| config.worker_max_rss_mb = 1).await;
    assert_eq!(app.run("0").await.result(), &json!(0));
    for n in 0..3 {
        let before = workers();
        let code = format!("'x'.repeat(2e6).length + {n}");
        assert_eq!(app.run(&code).await.result(), &json!(2_000_000 + n));
        // The worker that ran it is gone, and another has taken its place.
        eventually(Duration::from_secs(30), "worker not replaced", || {
            let now = workers();
            now.len() == 1 && now.is_disjoint(&before)
        })
        .await;
    }
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`) in MiB, rounded up; 0 once the
/// process is gone.
fn status_mib(pid: u32, field: &str) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib.div_ceil(1024))
}

/// What a thread sampling the workers' memory saw.
#[derive(Debug, Default)]
struct MemorySamples {
    /// Each worker's peak resident memory (`VmHWM`: the kernel keeps it for the process's
    /// life, so no peak between two samples is missed while the worker lives), in MiB.
    peaks: std::collections::BTreeMap<u32, u64>,
    /// The most all workers held at once (the sum of their `VmRSS` in one sample), in MiB.
    together: u64,
    samples: usize,
}

/// Samples the workers' memory every few milliseconds until `stop` is set.
fn sample_workers_memory(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<MemorySamples> {
    std::thread::spawn(move || {
        let mut seen = MemorySamples::default();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut together = 0;
            for pid in workers() {
                let peak = seen.peaks.entry(pid).or_default();
                *peak = (*peak).max(status_mib(pid, "VmHWM"));
                together += status_mib(pid, "VmRSS");
            }
            seen.together = seen.together.max(together);
            seen.samples += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

#[tokio::test]
async fn the_workers_stay_within_their_memory_bound_while_memory_bombs_run() {
    let _serial = one_at_a_time().await;
    // The bombs ask for the most a script may have, so the README's bound applies as written:
    // each worker holds at most MAX_MEMORY_LIMIT_MB + 32 MiB, all of them at most
    // MAX_CONCURRENCY times that.
    const MAX_MEMORY_LIMIT_MB: u64 = 48;
    const WORKERS: u64 = 2;
    let app = app(WORKERS as usize, |config| {
        config.max_memory_limit_mb = MAX_MEMORY_LIMIT_MB as usize;
        config.default_memory_limit_mb = MAX_MEMORY_LIMIT_MB as usize;
        // Each bomb's worker is replaced after it; on a loaded machine a bomb may wait for that
        // longer than the default queue timeout, which is not what this tests.
        config.queue_timeout = Duration::from_secs(60);
    })
    .await;
    let per_worker = MAX_MEMORY_LIMIT_MB + 32;
    let bomb = json!({
        "code": "const keep = []; while (true) keep.push('x'.repeat(65536) + keep.length);",
        "memoryLimitMb": MAX_MEMORY_LIMIT_MB,
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_workers_memory(stop.clone());
    for _ in 0..10 {
        let runs: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (app, bomb) = (app.clone(), bomb.clone());
                tokio::spawn(async move { app.post_execute(bomb).await })
            })
            .collect();
        for run in runs {
            assert_eq!(run.await.unwrap().script_error_kind(), "memory");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    println!("{seen:?}");
    // The samples saw the bombs at work: a worker's peak reached at least half its limit.
    let highest = seen.peaks.values().copied().max().unwrap_or(0);
    assert!(highest >= MAX_MEMORY_LIMIT_MB / 2, "{seen:?}");
    for (pid, peak) in &seen.peaks {
        assert!(
            *peak <= per_worker,
            "worker {pid} held {peak} MiB: {seen:?}"
        );
    }
    assert!(
        seen.together <= WORKERS * per_worker,
        "the workers held {} MiB at once: {seen:?}",
        seen.together
    );
}

#[tokio::test]
async fn a_worker_whose_channel_closes_exits_cleanly_under_its_filter() {
    use std::{
        io::Write,
        os::{fd::AsRawFd, unix::net::UnixStream, unix::process::CommandExt},
        process::{Command, Stdio},
    };

    use contract::worker::{
        MAX_SUPERVISOR_FRAME, Order, Region, Report, Setup, encode, read_frame,
    };

    let _serial = one_at_a_time().await;
    let (mut channel, worker_end) = UnixStream::pair().unwrap();
    let (_region, region_fd) = Region::create(64 * 1024).unwrap();
    let (channel_fd, region_raw) = (worker_end.as_raw_fd(), region_fd.as_raw_fd());
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox"));
    command.arg("worker").env_clear().stdin(Stdio::null());
    // SAFETY: only dup2 between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let channel = libc::fcntl(channel_fd, libc::F_DUPFD_CLOEXEC, 10);
            let region = libc::fcntl(region_raw, libc::F_DUPFD_CLOEXEC, 10);
            libc::dup2(channel, 3);
            libc::dup2(region, 4);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop((worker_end, region_fd));
    let setup = Setup {
        stack_limit: 1 << 20,
        max_result_bytes: 1 << 20,
        max_log_bytes: 64 * 1024,
        max_log_entries: 100,
        address_space_limit: 1 << 30,
        keep_runtime: false,
    };
    channel.write_all(&encode(&Order::Setup(setup))).unwrap();
    let ready: Report = read_frame(&mut channel, MAX_SUPERVISOR_FRAME).unwrap();
    assert!(matches!(ready, Report::Ready(_)), "{ready:?}");
    let pid = child.id();
    assert_eq!(status_field(pid, "Seccomp"), "2");
    drop(channel);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A process's nice value: field 19 of `/proc/<pid>/stat`.
fn nice(pid: u32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_long_execution_gives_way_to_short_ones_beside_it_and_its_worker_is_then_replaced() {
    let _serial = one_at_a_time().await;
    let app = app(2, |_| {}).await;
    const LONG_RUN_EXITS: &str = "sandbox_worker_exits_total{reason=\"long_run\"";
    let at_normal_priority = || workers().iter().all(|pid| nice(*pid) == Some(0));

    // Short executions never leave normal priority.
    for n in 0..20 {
        assert_eq!(app.run(&format!("{n}")).await.result(), &json!(n));
    }
    assert_eq!(workers().len(), 2);
    assert!(at_normal_priority(), "{:?}", workers());

    // Alone, a long execution keeps normal priority and its worker.
    let alone = app.hold_a_worker(1_500);
    while !alone.is_finished() {
        assert!(
            at_normal_priority(),
            "a lone execution was moved to the background"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alone.await.unwrap().script_error_kind(), "timeout");
    assert_eq!(app.metric_sum(LONG_RUN_EXITS).await, 0.0);

    // Beside short executions, an endless loop is moved to background priority within two
    // checks (500 ms each), while the other worker serves them at normal priority.
    let long = app.hold_a_worker(3_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !workers().iter().any(|pid| nice(*pid) == Some(10)) {
        assert!(
            Instant::now() < deadline,
            "no worker moved to the background"
        );
        assert!(
            !long.is_finished(),
            "the loop ended before it was moved to the background"
        );
        assert_eq!(app.run("7").await.result(), &json!(7));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.run("8").await.result(), &json!(8));
    let priorities: Vec<_> = workers().iter().map(|pid| nice(*pid)).collect();
    assert_eq!(
        priorities.iter().filter(|nice| **nice == Some(0)).count(),
        1,
        "{priorities:?}"
    );
    assert_eq!(long.await.unwrap().script_error_kind(), "timeout");

    // Its worker runs nothing else: it is retired, and the pool is back to two workers at
    // normal priority.
    eventually(
        Duration::from_secs(30),
        "the worker in the background was not replaced",
        || workers().len() == 2 && at_normal_priority(),
    )
    .await;
    let mut retired = 0.0;
    for _ in 0..1_500 {
        retired = app.metric_sum(LONG_RUN_EXITS).await;
        if retired >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(retired, 1.0);
}
