//! Sessions on the real sandbox binary: everything a session holds (its worker process, its
//! share of the memory budget) is given back when it expires, however many were abandoned.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, children_of, metric_sample, post_execute, post_json};
use serde_json::{Value, json};

const SESSIONS: usize = 100;
/// What requests hold of the memory budget now, sessions included.
const CHARGED: &str = "sandbox_memory_budget_bytes{share=\"requests_charged\"}";
/// The sessions' workers' resident memory together.
const SESSIONS_RESIDENT: &str = "sandbox_resident_memory_bytes{process=\"sessions\"}";

/// The sandbox's worker processes now: the pool's and the sessions'.
fn workers(sandbox: &Service) -> usize {
    children_of(sandbox.pid(), "sandbox", Some("worker")).len()
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (status, answer) = post_json(addr, path, &[], &body.to_string()).unwrap();
    let answer = serde_json::from_str(&answer).unwrap_or_else(|error| panic!("{error}: {answer}"));
    (status, answer)
}

#[test]
fn a_hundred_abandoned_sessions_give_back_every_worker_and_their_memory_once_they_expire() {
    // Room for a hundred sessions at once: each is charged its worker's whole address space
    // (its 4 MiB heap, a 12 MiB stack, 64 MiB of program) and its console region and reports,
    // 89 MiB by default, so 10 GiB holds them all beside one pool worker (332 MiB) and the
    // supervisor's reserve. Charged, not resident: an idle session's worker holds a few MiB.
    let sandbox = Service::start(
        "sandbox",
        &[
            ("MAX_CONCURRENCY", "1"),
            ("SESSION_MAX_OPEN", "100"),
            ("SESSION_MAX_PER_TENANT", "100"),
            ("SANDBOX_MEMORY_MB", "10240"),
        ],
    );
    let addr = sandbox.addr();
    let workers_before = workers(&sandbox);
    let charged_before = metric_sample(addr, CHARGED);
    assert!(workers_before >= 1, "the pool's worker is a child");

    let (mut most_workers, mut most_charged) = (workers_before, charged_before);
    let mut most_resident: f64 = 0.0;
    for index in 0..SESSIONS {
        let (status, created) = post(
            addr,
            "/api/sessions",
            &json!({ "ttlSeconds": 2, "memoryLimitMb": 4 }),
        );
        assert_eq!(status, 201, "session {index}: {created}");
        // One execution in a few of them, at once, before they could expire.
        if index % 20 == 0 {
            let id = created["id"].as_str().unwrap();
            let (status, answer) = post(
                addr,
                &format!("/api/sessions/{id}/execute"),
                &json!({ "code": format!("kept = {index}; new Array(1000).fill(kept).length") }),
            );
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["result"], 1000, "{answer}");
        }
        most_workers = most_workers.max(workers(&sandbox));
        most_charged = most_charged.max(metric_sample(addr, CHARGED));
        most_resident = most_resident.max(metric_sample(addr, SESSIONS_RESIDENT));
    }
    assert_eq!(
        metric_sample(addr, "sandbox_session_events_total{event=\"created\"}"),
        SESSIONS as f64
    );
    // The sessions' workers are the sandbox's children, and their memory is charged: what the
    // wait below sees go is what they held.
    assert!(most_workers > workers_before, "{most_workers}");
    assert!(most_charged > charged_before, "{most_charged}");
    // And their resident memory is counted: each worker holds several MiB.
    assert!(most_resident > 1048576.0, "{most_resident}");

    // Abandoned: each expires 2 s after its last use. Everything goes back, however loaded the
    // machine; the deadline only ends a stuck test.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let open = metric_sample(addr, "sandbox_sessions_open");
        let (workers_now, charged_now) = (workers(&sandbox), metric_sample(addr, CHARGED));
        if open == 0.0 && workers_now == workers_before && charged_now == charged_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 3 minutes: {open} sessions open, {workers_now} workers (before: \
             {workers_before}), {charged_now} bytes charged (before: {charged_before})"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric_sample(addr, "sandbox_session_events_total{event=\"expired\"}"),
        SESSIONS as f64
    );
    assert_eq!(metric_sample(addr, SESSIONS_RESIDENT), 0.0);

    // Stateless executions go on as before.
    let (status, answer) = post_execute(addr, r#"{"code": "6 * 7"}"#).unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"], 42, "{answer}");
}
