//! `sandbox healthcheck` and `ingress healthcheck`, the health checks of the distroless
//! images (which have no shell or curl), run against the real binaries. The binaries are started
//! with the environments docker-compose.yml and cloudrun.yaml give them, so these tests also
//! show that the binaries accept those settings and listen where the deploy files look.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use e2e::deploy::{cloud_run, compose};
use e2e::{Service, binary_path, free_port, output_within};

/// Longer than the binaries' own 3 s probe timeout; only a hung health check gets near it.
const HEALTHCHECK_DEADLINE: Duration = Duration::from_secs(20);

/// How long both health checks wait for an answer (README: `ingress healthcheck` exits 0 "on
/// 200 within 3 s"); the deploy files give them as long.
const HEALTHCHECK_LIMIT: Duration = Duration::from_secs(3);

/// Runs `<name> healthcheck` with `env` (and no inherited `LISTEN_ADDR` or `PORT`), as
/// Docker runs a HEALTHCHECK inside the container, and returns its exit code and stderr.
fn healthcheck(name: &str, env: &BTreeMap<String, String>) -> (i32, String) {
    let mut command = Command::new(binary_path(name));
    command
        .arg("healthcheck")
        .env_remove("LISTEN_ADDR")
        .env_remove("PORT")
        .envs(env);
    let output = output_within(command, HEALTHCHECK_DEADLINE);
    (
        output
            .status
            .code()
            .expect("the health check exits with a code"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts that `<name> healthcheck` with `env` exits with `expected`.
fn assert_healthcheck_exits(name: &str, env: &BTreeMap<String, String>, expected: i32) {
    let (code, stderr) = healthcheck(name, env);
    assert_eq!(
        code, expected,
        "{name} healthcheck with {env:?}; stderr: {stderr}"
    );
}

/// `env` as the argument list [`Service::start_with_env`] takes.
fn pairs(env: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    env.iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

/// The `host:port` in `address` with its port replaced, so tests can run side by side.
fn with_port(address: &str, port: u16) -> String {
    let (host, _) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address:?} has no port"));
    format!("{host}:{port}")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[test]
fn sandbox_healthcheck_passes_with_the_compose_env_on_all_interfaces() {
    let compose_file = compose::file();
    let mut env = compose::env(compose::service(&compose_file, "sandbox"));
    let port = free_port();
    let listen_addr = with_port(&env["LISTEN_ADDR"], port);
    assert!(listen_addr.starts_with("0.0.0.0:"), "{listen_addr}");
    env.insert("LISTEN_ADDR".into(), listen_addr);

    let _sandbox = Service::start_with_env("sandbox", loopback(port), &pairs(&env));
    assert_healthcheck_exits("sandbox", &env, 0);
}

#[test]
fn sandbox_healthcheck_passes_with_the_cloud_run_env_on_loopback() {
    let service = cloud_run::service();
    let mut env = cloud_run::env(cloud_run::container(&service, "sandbox"));
    let port = free_port();
    let listen_addr = with_port(&env["LISTEN_ADDR"], port);
    assert!(listen_addr.starts_with("127.0.0.1:"), "{listen_addr}");
    env.insert("LISTEN_ADDR".into(), listen_addr);

    let _sandbox = Service::start_with_env("sandbox", loopback(port), &pairs(&env));
    assert_healthcheck_exits("sandbox", &env, 0);
}

#[test]
fn ingress_healthcheck_passes_on_cloud_run_where_only_port_is_set() {
    let sandbox = Service::start("sandbox", &[]);
    let service = cloud_run::service();
    let mut env = cloud_run::env(cloud_run::container(&service, "ingress"));
    let port = free_port();
    // Cloud Run injects PORT; the ingress then listens on 0.0.0.0:$PORT and its health check
    // reaches it through loopback.
    env.insert("PORT".into(), port.to_string());
    env.insert("SANDBOX_URL".into(), sandbox.url());

    let _ingress = Service::start_with_env("ingress", loopback(port), &pairs(&env));
    assert_healthcheck_exits("ingress", &env, 0);
}

#[test]
fn ingress_healthcheck_passes_with_the_compose_env_on_all_interfaces() {
    let sandbox = Service::start("sandbox", &[]);
    let compose_file = compose::file();
    let mut env = compose::env(compose::service(&compose_file, "ingress"));
    let port = free_port();
    env.insert("LISTEN_ADDR".into(), with_port(&env["LISTEN_ADDR"], port));
    // Compose reaches the sandbox by its service name; here it runs on loopback.
    env.insert("SANDBOX_URL".into(), sandbox.url());

    let _ingress = Service::start_with_env("ingress", loopback(port), &pairs(&env));
    assert_healthcheck_exits("ingress", &env, 0);
}

#[test]
fn healthcheck_exits_1_when_nothing_listens() {
    for name in ["sandbox", "ingress"] {
        let env = BTreeMap::from([("LISTEN_ADDR".to_owned(), loopback(free_port()).to_string())]);
        assert_healthcheck_exits(name, &env, 1);
    }
}

/// A server that answers every request with `503 Service Unavailable`, as a sandbox does while
/// it shuts down, until the test ends.
fn unavailable_server() -> SocketAddr {
    let listener = TcpListener::bind(loopback(0)).expect("bind a loopback port");
    let addr = listener.local_addr().expect("read the bound address");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    addr
}

#[test]
fn healthcheck_exits_1_when_healthz_answers_503() {
    let addr = unavailable_server();
    for name in ["sandbox", "ingress"] {
        let env = BTreeMap::from([("LISTEN_ADDR".to_owned(), addr.to_string())]);
        assert_healthcheck_exits(name, &env, 1);
    }
}

/// A server that accepts every connection and never answers (a hung process), until the test
/// ends.
fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind(loopback(0)).expect("bind a loopback port");
    let addr = listener.local_addr().expect("read the bound address");
    thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    addr
}

#[test]
fn healthcheck_gives_up_after_its_3_s_limit_when_the_server_never_answers() {
    let addr = silent_server();
    for name in ["sandbox", "ingress"] {
        let env = BTreeMap::from([("LISTEN_ADDR".to_owned(), addr.to_string())]);
        // Built before the clock starts (the first call in a test process runs cargo build).
        binary_path(name);
        let started = Instant::now();
        let (code, stderr) = healthcheck(name, &env);
        let took = started.elapsed();
        assert_eq!(code, 1, "{name} healthcheck; stderr: {stderr}");
        // It gave the server the whole limit: an earlier failure would be for another reason.
        assert!(took >= HEALTHCHECK_LIMIT, "{name}: gave up after {took:?}");
        // And not much more: starting the binary, with room for a loaded machine. Without a
        // limit of its own it would wait until HEALTHCHECK_DEADLINE and fail the test there.
        assert!(
            took < HEALTHCHECK_LIMIT + Duration::from_secs(5),
            "{name}: gave up after {took:?}"
        );
    }
}
