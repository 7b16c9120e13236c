//! The ingress started without `SANDBOX_URL`, as `cargo run -p ingress` starts it: it runs the
//! sandbox as a child process, keeps it running, and says on `/healthz` when it is not.

use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, children_of, get_status, post_execute};

const TRIVIAL: &str = r#"{"code": "6 * 7"}"#;

#[test]
fn a_child_sandbox_that_dies_is_restarted_and_health_says_so_meanwhile() {
    let ingress = Service::start("ingress", &[("ADMIN_LISTEN_ADDR", "off")]);
    let (status, body) = post_execute(ingress.addr(), TRIVIAL).unwrap();
    assert_eq!(status, 200, "{body}");
    let sandboxes = children_of(ingress.pid(), "sandbox", None);
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    let first = sandboxes[0];
    let first_workers = children_of(first, "sandbox", Some("worker"));
    assert!(!first_workers.is_empty());

    // SAFETY: kill(2) on the sandbox this test found as the ingress's child.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };

    // Health turns 503 while the child is down, then 200 once it is back.
    let mut saw_down = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = get_status(ingress.addr(), "/healthz").unwrap();
        saw_down |= status == 503;
        if saw_down && status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never went down and back up"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let (status, body) = post_execute(ingress.addr(), TRIVIAL).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"result\":42"), "{body}");
    let now = children_of(ingress.pid(), "sandbox", None);
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first, "a new sandbox process");
    // The dead sandbox's workers died with it.
    for worker in first_workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{worker}")).exists()
                || std::fs::read_to_string(format!("/proc/{worker}/stat"))
                    .is_ok_and(|stat| stat.contains(") Z ")),
            "worker {worker} outlived its sandbox"
        );
    }
}
