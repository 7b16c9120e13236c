//! The shutdown notice, on the real binaries: from SIGTERM until the listener closes
//! (`SHUTDOWN_NOTICE_MS`), `/healthz` answers 503 while executions are still served, so a load
//! balancer that probes it sees the process leave before its connections are refused.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, Stack, get, post_execute};

/// The notice the binaries are given here. The test waits for events (the 503, then a refused
/// connection), never for this to pass; it only has to be long enough for one execution to be
/// sent and answered after the 503 on a loaded 2-core machine.
const NOTICE_MS: &str = "6000";

/// How long anything here may take before the test gives up: far more than the notice.
const PATIENCE: Duration = Duration::from_secs(60);

fn terminate(service: &Service) {
    let pid = libc::pid_t::try_from(service.pid()).expect("a pid");
    // SAFETY: kill(2) only sends a signal, to our own child, which `service` has not reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// After SIGTERM to `service`: `/healthz` on `addr` turns from 200 to 503 `shutting_down`, an
/// execution sent to `addr` is then still answered, and the listener closes after that.
fn the_notice_is_observable(service: &Service, addr: SocketAddr) {
    terminate(service);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match get(addr, "/healthz") {
            // The signal has not been handled yet.
            Ok((200, _)) => {}
            Ok((503, body)) => {
                assert!(body.contains("\"shutting_down\""), "{body}");
                break;
            }
            other => panic!("/healthz before the notice ended: {other:?}"),
        }
        assert!(Instant::now() < deadline, "/healthz never answered 503");
        thread::sleep(Duration::from_millis(20));
    }

    let (status, body) = post_execute(addr, r#"{"code": "6 * 7"}"#)
        .expect("an execution is still taken during the notice");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"result\":42"), "{body}");

    while get(addr, "/healthz").is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sandbox_answers_503_on_healthz_and_still_serves_until_its_listener_closes() {
    let sandbox = Service::start("sandbox", &[("SHUTDOWN_NOTICE_MS", NOTICE_MS)]);
    the_notice_is_observable(&sandbox, sandbox.addr());
}

#[test]
fn the_ingress_answers_503_on_healthz_and_still_serves_until_its_listener_closes() {
    let stack = Stack::start(&[
        ("SHUTDOWN_NOTICE_MS", NOTICE_MS),
        ("RATE_LIMIT_RPS", "0"),
        ("ADMIN_LISTEN_ADDR", "off"),
    ]);
    the_notice_is_observable(&stack.ingress, stack.ingress.addr());
}
