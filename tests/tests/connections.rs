//! Slow, idle and greedy clients against the real binaries: hundreds of idle, half-header,
//! half-body and never-reading connections, from several addresses, while a normal client is
//! served promptly; once the server has dropped them, its descriptors and memory come back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, Stack, metric_total, post_execute};

/// How long the server gives a bad connection before it drops it: short enough that the test
/// sees the server drop what holds it, long enough that a server which had to wait for the bad
/// connections to go before answering anyone else is told apart from one that serves others
/// while they stall (see [`SERVED_WHILE_STALLED`]).
const BAD_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The servers' read and write timeouts, each [`BAD_CONNECTION_TIMEOUT`].
const BAD_CONNECTION_TIMEOUTS: [(&str, &str); 3] = [
    ("HEADER_READ_TIMEOUT_MS", "10000"),
    ("BODY_READ_TIMEOUT_MS", "10000"),
    ("WRITE_TIMEOUT_MS", "10000"),
];

/// The slowest a normal client's trivial script may be answered while the bad connections are
/// open. It protects against a server held by them: such a server answers nobody until its
/// timeouts have dropped them ([`BAD_CONNECTION_TIMEOUT`]), or at all. Trivial scripts answer in
/// milliseconds when the machine is quiet; the margin is for a loaded 2-core machine, where the
/// normal client takes turns with the bad clients' executions.
const SERVED_WHILE_STALLED: Duration = Duration::from_secs(6);

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A connection to `server` from the loopback address `127.0.0.<host>`.
fn connect_from(host: u8, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, host], 0)).into())?;
    socket.connect(&server.into())?;
    Ok(socket.into())
}

/// Opens `count` bad connections of every kind, spread over loopback addresses 2..; returns
/// them so they stay open until dropped.
fn open_bad_connections(server: SocketAddr, count: usize) -> Vec<TcpStream> {
    let large_answer = r#"{"code": "'x'.repeat(200000)"}"#;
    let mut held = Vec::new();
    for index in 0..count {
        let host = 2 + (index % 8) as u8;
        let Ok(mut stream) = connect_from(host, server) else {
            continue;
        };
        let _ = match index % 4 {
            // Idle: connects and says nothing.
            0 => Ok(()),
            // Half a header.
            1 => stream.write_all(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Ty"),
            // Headers, then half the body.
            2 => stream.write_all(
                b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 100\r\n\r\n{\"code\": \"1",
            ),
            // A whole request for a large answer, never read.
            _ => {
                let _ = socket2::SockRef::from(&stream).set_recv_buffer_size(1024);
                write!(
                    stream,
                    "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{large_answer}",
                    large_answer.len()
                )
            }
        };
        held.push(stream);
    }
    held
}

/// Sends trivial scripts from 127.0.0.1 while the bad connections are open; returns the
/// slowest answer.
fn slowest_of_normal_requests(server: SocketAddr, count: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for n in 0..count {
        let started = Instant::now();
        let (status, body) = post_execute(server, &format!(r#"{{"code": "{n} + 1"}}"#)).unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("\"result\":{}", n + 1)), "{body}");
    }
    slowest
}

/// Waits until the server holds no more descriptors than `baseline` plus `slack`: the bad
/// connections' timeouts, plus a margin for a loaded machine.
fn descriptors_come_back(pid: u32, baseline: usize, slack: usize) {
    let deadline = Instant::now() + BAD_CONNECTION_TIMEOUT + Duration::from_secs(20);
    while open_descriptors(pid) > baseline + slack {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {baseline} before the bad connections",
            open_descriptors(pid)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn bad_clients_cannot_hold(server: SocketAddr, pid: u32) {
    // Warm up, then measure what the server holds at rest (a connection it has not finished
    // closing yet only raises the baseline by one).
    slowest_of_normal_requests(server, 5);
    let (descriptors, resident) = (open_descriptors(pid), resident_kib(pid));

    let held = open_bad_connections(server, 400);
    assert!(
        held.len() >= 300,
        "only {} bad connections opened",
        held.len()
    );
    let slowest = slowest_of_normal_requests(server, 50);
    assert!(
        slowest < SERVED_WHILE_STALLED,
        "slowest answer {slowest:?}, the bad connections are dropped after {BAD_CONNECTION_TIMEOUT:?}"
    );

    // The server drops them by its own timeouts, without the clients closing anything. (The
    // ingress may keep up to 32 idle connections to the sandbox from the burst.)
    descriptors_come_back(pid, descriptors, 40);
    drop(held);
    let grown = resident_kib(pid).saturating_sub(resident);
    assert!(grown < 64 * 1024, "resident memory grew by {grown} KiB");
    slowest_of_normal_requests(server, 5);
}

#[test]
fn the_ingress_serves_others_while_hundreds_of_connections_stall_and_recovers_their_resources() {
    let mut env = vec![("RATE_LIMIT_RPS", "0"), ("ADMIN_LISTEN_ADDR", "off")];
    env.extend_from_slice(&BAD_CONNECTION_TIMEOUTS);
    let stack = Stack::start(&env);
    bad_clients_cannot_hold(stack.ingress.addr(), stack.ingress.pid());
}

#[test]
fn the_sandbox_serves_others_while_hundreds_of_connections_stall_and_recovers_their_resources() {
    let sandbox = Service::start("sandbox", &BAD_CONNECTION_TIMEOUTS);
    bad_clients_cannot_hold(sandbox.addr(), sandbox.pid());
}

#[test]
fn connections_over_the_per_client_cap_are_closed_at_once_and_others_still_get_in() {
    let ingress_env = [
        ("RATE_LIMIT_RPS", "0"),
        ("ADMIN_LISTEN_ADDR", "off"),
        ("MAX_CONNECTIONS_PER_CLIENT", "10"),
        // An admitted idle connection is kept this long: far longer than the closing of one
        // over the cap may take, so the two cannot be mistaken for each other.
        ("HEADER_READ_TIMEOUT_MS", "60000"),
    ];
    let stack = Stack::start(&ingress_env);
    let server = stack.ingress.addr();
    let mut held: Vec<TcpStream> = (0..10)
        .filter_map(|_| connect_from(2, server).ok())
        .collect();
    assert_eq!(held.len(), 10);
    // The server accepts connections in the order their handshakes completed, so these ten
    // are admitted before the eleventh is looked at.
    let mut eleventh = connect_from(2, server).unwrap();
    eleventh
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0; 1];
    let read = eleventh.read(&mut buffer);
    let waited = started.elapsed();
    // Closed by the server: end of stream, or a reset. A timeout would mean it was held open.
    let closed = match &read {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    };
    assert!(closed, "the eleventh connection was not closed: {read:?}");
    // At once: the closing is the answer to being over the cap, not the header timeout (60 s);
    // 10 s leaves room for a loaded machine.
    assert!(
        waited < Duration::from_secs(10),
        "closed only after {waited:?}"
    );
    // The ten admitted ones are still open and served.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    let first = &mut held[0];
    first.write_all(request.as_bytes()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Another client is served.
    let (status, body) = post_execute(server, r#"{"code": "2 + 2"}"#).unwrap();
    assert_eq!(status, 200, "{body}");
}

/// Sends a request's headers and the first bytes of its 100-byte body to `server`, then stalls;
/// returns the whole answer and how long it took to come.
fn stall_in_the_body(server: SocketAddr) -> (String, Duration) {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"code\": \"1",
        )
        .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("an answer before the client's own 30 s");
    (answer, started.elapsed())
}

#[test]
fn a_body_that_stalls_gets_408_in_the_apis_error_shape_after_the_body_read_timeout() {
    let timeout = ("BODY_READ_TIMEOUT_MS", "1000");
    let stack = Stack::start(&[("RATE_LIMIT_RPS", "0"), timeout]);
    let sandbox = Service::start("sandbox", &[timeout]);
    for server in [stack.ingress.addr(), sandbox.addr()] {
        let (answer, waited) = stall_in_the_body(server);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{server}: {answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["status"], "error", "{body}");
        assert_eq!(body["error"]["kind"], "request_timeout", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        // After the body's 1 s, not before; and well before the 10 s header timeout would
        // close the connection (the margin is for a loaded machine).
        assert!(
            waited >= Duration::from_secs(1),
            "{server}: after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(8),
            "{server}: after {waited:?}"
        );
    }
    // Nothing was forwarded or run.
    assert_eq!(
        metric_total(stack.sandbox.addr(), "sandbox_executions_total"),
        0.0
    );
    assert_eq!(
        metric_total(sandbox.addr(), "sandbox_executions_total"),
        0.0
    );
}
