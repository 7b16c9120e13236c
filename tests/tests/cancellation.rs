//! Requests nobody waits for any more, on the real binaries: a client that leaves while its
//! script runs, whether it waited for a whole answer or a stream, and an ingress that gives up on
//! the sandbox at its own deadline. Each stops its execution, frees its worker, and is logged
//! and counted once in each process with its own outcome, not lost from the logs and metrics.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, free_port, get, post_execute, post_stream};

/// How long the processes get to notice a departure and write it down: generous for a loaded
/// machine; a line that never comes fails the test after it.
const NOTICE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds, or fails with `what` after [`NOTICE`].
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + NOTICE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} within {NOTICE:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the series `name` (its whole text, labels included) in `addr`'s `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let (_, text) = get(addr, "/metrics").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// A sandbox with one worker and an ingress in front of it, the ingress's metrics on a port of
/// their own.
fn stack(ingress_env: &[(&str, &str)]) -> (Service, Service, SocketAddr) {
    let sandbox = Service::start("sandbox", &[("MAX_CONCURRENCY", "1")]);
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let (sandbox_url, admin_addr) = (sandbox.url(), admin.to_string());
    let mut env = vec![
        ("SANDBOX_URL", sandbox_url.as_str()),
        ("ADMIN_LISTEN_ADDR", admin_addr.as_str()),
        ("RATE_LIMIT_RPS", "0"),
    ];
    env.extend_from_slice(ingress_env);
    let ingress = Service::start("ingress", &env);
    (ingress, sandbox, admin)
}

#[test]
fn a_client_that_leaves_while_its_script_runs_is_logged_and_counted_as_cancelled_by_both() {
    let (ingress, sandbox, admin) = stack(&[]);
    let body = r#"{"code": "while (true) {}", "timeoutMs": 10000}"#;
    let mut client = TcpStream::connect(ingress.addr()).unwrap();
    write!(
        client,
        "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_for("the loop is running", || {
        metric(sandbox.addr(), "sandbox_workers_busy") == Some(1.0)
    });
    drop(client);

    wait_for("the sandbox logs the cancelled execution", || {
        sandbox.log().contains("execution cancelled")
    });
    wait_for("the ingress logs the request its client left", || {
        ingress.log().contains("request cancelled")
    });
    let sandbox_line = sandbox
        .log()
        .lines()
        .find(|line| line.contains("execution cancelled"))
        .unwrap()
        .to_owned();
    assert!(sandbox_line.contains("running"), "{sandbox_line}");
    assert_eq!(
        metric(
            sandbox.addr(),
            r#"sandbox_executions_total{tenant="anonymous",outcome="cancelled"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(admin, r#"ingress_requests_total{status="499"}"#),
        Some(1.0)
    );
    // Its worker, the only one, is freed for the next request (the loop's deadline is 10 s away).
    the_only_worker_is_free(&ingress);
    assert_eq!(
        ingress.log().matches("request cancelled").count(),
        1,
        "one line for the request that was left, none for the others"
    );
}

#[test]
fn a_client_that_leaves_a_stream_through_the_ingress_frees_the_only_worker_and_is_counted() {
    let (ingress, sandbox, _admin) = stack(&[]);
    let body = r#"{"code": "console.log('started'); while (true) {}", "timeoutMs": 30000}"#;
    let mut stream = post_stream(ingress.addr(), body).unwrap();
    assert_eq!(stream.status, 200, "{}", stream.head);
    let first = stream.next_event().unwrap().expect("an event");
    assert_eq!(first.name.as_deref(), Some("log"), "{first:?}");
    assert_eq!(metric(sandbox.addr(), "sandbox_workers_busy"), Some(1.0));
    drop(stream);

    wait_for("the sandbox logs the cancelled execution", || {
        sandbox.log().contains("execution cancelled")
    });
    assert_eq!(
        metric(
            sandbox.addr(),
            r#"sandbox_executions_total{tenant="anonymous",outcome="cancelled"}"#
        ),
        Some(1.0)
    );
    // The only worker ran the loop until its deadline, 30 s away, unless the departure reached
    // the sandbox through the ingress and stopped it.
    the_only_worker_is_free(&ingress);
}

#[test]
fn an_ingress_timeout_is_visible_in_the_sandboxs_log() {
    let (ingress, sandbox, _admin) = stack(&[("UPSTREAM_TIMEOUT_MS", "1000")]);
    let (status, answer) = post_execute(
        ingress.addr(),
        r#"{"code": "while (true) {}", "timeoutMs": 10000}"#,
    )
    .unwrap();
    assert_eq!(status, 504, "{answer}");
    wait_for(
        "the sandbox logs the execution the ingress gave up on",
        || sandbox.log().contains("execution cancelled"),
    );
    assert_eq!(
        metric(
            sandbox.addr(),
            r#"sandbox_executions_total{tenant="anonymous",outcome="cancelled"}"#
        ),
        Some(1.0)
    );
}

/// The next execution through `ingress` is answered as usual, well before the deadline of the
/// loop its only worker was running: the bound is the feature, with room for a loaded machine.
fn the_only_worker_is_free(ingress: &Service) {
    let next = Instant::now();
    let (status, answer) = post_execute(ingress.addr(), r#"{"code": "6 * 7"}"#).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""result":42"#), "{answer}");
    assert!(
        next.elapsed() < Duration::from_secs(8),
        "{:?}",
        next.elapsed()
    );
}
