//! Request bodies: read only when the ingress must, streamed otherwise, and buffered bodies
//! held within the ingress's memory budget.
//!
//! The body deadline is raised to a minute here, so an ingress that waited for a body it need
//! not read would answer none of these within the client's 30 s.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::spawn_app_with;

/// Longer than a test waits for an answer (30 s).
const BODY_DEADLINE: Duration = Duration::from_secs(60);

/// Sends `head` and the start of a body, `partial`, on a new connection; returns the
/// connection and the answer head [`read_head`] returns.
async fn send_partial(
    addr: SocketAddr,
    head: &str,
    partial: &[u8],
    until_continue: bool,
) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(partial).await.unwrap();
    let head = read_head(&mut stream, until_continue).await;
    (stream, head)
}

/// The next answer head that is not `100 Continue`, or that one when `until_continue`.
async fn read_head(stream: &mut TcpStream, until_continue: bool) -> String {
    let mut seen = Vec::new();
    loop {
        let mut byte = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte))
            .await
            .expect("no answer within 30 s")
            .unwrap();
        assert_eq!(
            read,
            1,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
        if seen.ends_with(b"\r\n\r\n") {
            let text = String::from_utf8(std::mem::take(&mut seen)).unwrap();
            if !text.starts_with("HTTP/1.1 100") || until_continue {
                return text;
            }
        }
    }
}

/// The answer's body after its head: `content-length` bytes.
async fn read_body(stream: &mut TcpStream, head: &str) -> String {
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a content-length")
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut body))
        .await
        .expect("no body within 30 s")
        .unwrap();
    String::from_utf8(body).unwrap()
}

fn status(head: &str) -> u16 {
    head[9..12].parse().unwrap()
}

#[tokio::test]
async fn the_openapi_document_is_answered_without_reading_the_body_a_client_sends_with_it() {
    let app = spawn_app_with(|config| config.connections.body_read_timeout = BODY_DEADLINE).await;

    let head = "GET /api/openapi.json HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    let (mut stream, head) = send_partial(app.addr(), head, b"{\"a\":", false).await;

    assert_eq!(status(&head), 200, "{head}");
    assert!(read_body(&mut stream, &head).await.contains("\"openapi\""));
}

#[tokio::test]
async fn a_body_the_ingress_need_not_read_streams_to_the_sandbox_which_answers_before_it_ends() {
    let app = spawn_app_with(|config| config.connections.body_read_timeout = BODY_DEADLINE).await;

    // Not JSON: nothing the ingress could rewrite, and the sandbox refuses it on its head.
    let head = "POST /api/execute HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\n\
                content-length: 1000000\r\n\r\n";
    let (mut stream, head) = send_partial(app.addr(), head, b"1 + 1", false).await;

    assert_eq!(status(&head), 415, "{head}");
    let body = read_body(&mut stream, &head).await;
    assert!(body.contains("Content-Type: application/json"), "{body}");
}

#[tokio::test]
async fn buffered_bodies_share_the_memory_budget_refused_with_503_when_full_and_413_when_alone_too_large()
 {
    // 1 MiB for buffers; a body may be up to 2 MiB, so the budget is what refuses.
    let app = spawn_app_with(|config| {
        config.connections.body_read_timeout = BODY_DEADLINE;
        config.max_body_bytes = 2 * 1024 * 1024;
        config.memory = ingress::config::Memory {
            limit_bytes: 2 * 1024 * 1024,
            source: ingress::config::MemorySource::Setting,
            buffer_percent: 50,
            child_sandbox_bytes: None,
        };
    })
    .await;
    let execute = |length: usize, expect: &str| {
        format!(
            "POST /api/execute HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             {expect}content-length: {length}\r\n\r\n"
        )
    };
    let body = |length: usize| {
        let mut body = br#"{"code":"6 * 7 //"#.to_vec();
        body.resize(length - 2, b'x');
        body.extend_from_slice(b"\"}");
        body
    };
    let held = body(700_000);

    // `100 Continue` comes when the ingress starts reading, after the body's charge.
    let (mut first, head) = send_partial(
        app.addr(),
        &execute(held.len(), "expect: 100-continue\r\n"),
        b"",
        true,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");

    let (mut second, head) = send_partial(app.addr(), &execute(700_000, ""), b"", false).await;
    assert_eq!(status(&head), 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(
        read_body(&mut second, &head)
            .await
            .contains("\"overloaded\"")
    );

    let (mut third, head) = send_partial(app.addr(), &execute(1_100_000, ""), b"", false).await;
    assert_eq!(status(&head), 413, "{head}");
    let answer = read_body(&mut third, &head).await;
    assert!(answer.contains("1048576 bytes"), "{answer}");

    // The held body completes, runs, and gives its bytes back.
    first.write_all(&held).await.unwrap();
    let head = read_head(&mut first, false).await;
    assert_eq!(status(&head), 200, "{head}");
    assert!(read_body(&mut first, &head).await.contains("\"result\":42"));
    let again = app.http.post_execute_raw(body(700_000)).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
}

#[tokio::test]
async fn a_body_declared_over_max_body_bytes_gets_413_before_anything_is_forwarded() {
    let app = spawn_app_with(|config| config.connections.body_read_timeout = BODY_DEADLINE).await;

    // Streamed or buffered, the declared length is refused before a byte is read.
    for content_type in ["text/plain", "application/json"] {
        let head = format!(
            "POST /api/execute HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\n\
             content-length: 2000000\r\n\r\n"
        );
        let (mut stream, head) = send_partial(app.addr(), &head, b"", false).await;
        assert_eq!(status(&head), 413, "{content_type}: {head}");
        let body = read_body(&mut stream, &head).await;
        assert!(body.contains("payload_too_large"), "{body}");
    }
}

#[tokio::test]
async fn an_execute_body_is_read_only_from_a_caller_with_a_key_and_within_its_rate_limit() {
    const KEY: &str = "bodies-key-6e2a91";
    let app = spawn_app_with(|config| {
        config.connections.body_read_timeout = BODY_DEADLINE;
        config.tenants.anonymous.enabled = false;
        config.tenants.tenants = vec![crate::support::tenant(
            "acme",
            KEY,
            Some(ingress::rate_limit::RateLimit {
                per_second: 0.01,
                burst: std::num::NonZeroU32::new(1).unwrap(),
            }),
            ingress::tenants::Ceilings::default(),
        )];
    })
    .await;
    let execute = |key: &str| {
        format!(
            "POST /api/execute HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             {key}content-length: 1000000\r\n\r\n"
        )
    };

    // No key: 401 on the head, the body never waited for.
    let (_, head) = send_partial(app.addr(), &execute(""), b"{\"code\":", false).await;
    assert_eq!(status(&head), 401, "{head}");

    // The key's one request, then one over its rate limit: 429 on the head.
    let with_key = format!("x-api-key: {KEY}\r\n");
    let first = app
        .http
        .post_execute_with(&[("x-api-key", KEY)], &serde_json::json!({"code": "1"}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let (_, head) = send_partial(app.addr(), &execute(&with_key), b"{\"code\":", false).await;
    assert_eq!(status(&head), 429, "{head}");
}
