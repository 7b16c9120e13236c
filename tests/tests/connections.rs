//! Slow, idle and greedy clients against the real binaries: hundreds of idle, half-header,
//! half-body and never-reading connections, from several addresses, while a normal client is
//! served promptly; once the server has dropped them, its descriptors and memory come back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, Stack, post_execute};

/// Short timeouts, so that the test sees the server drop what holds it.
const QUICK_TIMEOUTS: [(&str, &str); 3] = [
    ("HEADER_READ_TIMEOUT_MS", "1500"),
    ("BODY_READ_TIMEOUT_MS", "1500"),
    ("WRITE_TIMEOUT_MS", "1500"),
];

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

/// Waits until the server holds no more descriptors than `baseline` plus `slack`.
fn descriptors_come_back(pid: u32, baseline: usize, slack: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
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
    // Warm up, then measure what the server holds at rest.
    slowest_of_normal_requests(server, 5);
    thread::sleep(Duration::from_millis(200));
    let (descriptors, resident) = (open_descriptors(pid), resident_kib(pid));

    let held = open_bad_connections(server, 400);
    assert!(
        held.len() >= 300,
        "only {} bad connections opened",
        held.len()
    );
    let slowest = slowest_of_normal_requests(server, 50);
    // Promptly: trivial scripts answer in milliseconds; a server held by the bad connections
    // would not answer at all.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest answer {slowest:?}"
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
    env.extend_from_slice(&QUICK_TIMEOUTS);
    let stack = Stack::start(&env);
    bad_clients_cannot_hold(stack.ingress.addr(), stack.ingress.pid());
}

#[test]
fn the_sandbox_serves_others_while_hundreds_of_connections_stall_and_recovers_their_resources() {
    let sandbox = Service::start("sandbox", &QUICK_TIMEOUTS);
    bad_clients_cannot_hold(sandbox.addr(), sandbox.pid());
}

#[test]
fn connections_over_the_per_client_cap_are_closed_and_others_still_get_in() {
    let ingress_env = [
        ("RATE_LIMIT_RPS", "0"),
        ("ADMIN_LISTEN_ADDR", "off"),
        ("MAX_CONNECTIONS_PER_CLIENT", "10"),
    ];
    let stack = Stack::start(&ingress_env);
    let server = stack.ingress.addr();
    let held: Vec<TcpStream> = (0..10)
        .filter_map(|_| connect_from(2, server).ok())
        .collect();
    assert_eq!(held.len(), 10);
    thread::sleep(Duration::from_millis(100));
    // The eleventh from the same client is closed at once.
    let mut eleventh = connect_from(2, server).unwrap();
    eleventh
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0; 1];
    let read = eleventh.read(&mut buffer);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Another client is served.
    let (status, body) = post_execute(server, r#"{"code": "2 + 2"}"#).unwrap();
    assert_eq!(status, 200, "{body}");
}
