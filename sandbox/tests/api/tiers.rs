//! Admission by tier: a crowd of anonymous addresses, each inside its own limits, running
//! endless loops, shares the anonymous tier's workers and leaves keyed tenants theirs. The
//! sandbox is reached directly here, so it tells the anonymous clients apart by TCP peer.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::support::spawn_app_with;

/// `POST /api/execute` with `body` from the loopback address `127.0.0.<host>`; the status.
async fn post_from(host: u8, server: SocketAddr, body: &str) -> u16 {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)))
        .unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!(
        "POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Floods from `addresses` loopback addresses, each keeping two endless loops going, while a
/// keyed tenant runs trivial scripts one after another: every one of them must be answered
/// 200 with its result.
async fn keyed_tenant_is_served_beside_a_crowd_of(addresses: u8) {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 2;
        config.queue_timeout = Duration::from_secs(2);
    })
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut crowd = Vec::new();
    for host in 0..addresses {
        for _ in 0..2 {
            let (server, stop) = (app.addr, stop.clone());
            crowd.push(tokio::spawn(async move {
                let mut answered = 0;
                while !stop.is_cancelled() {
                    // Each loop holds its worker longer than a request may wait for one.
                    let body = r#"{"code": "for (;;) {}", "timeoutMs": 4000}"#;
                    let status = post_from(10 + host, server, body).await;
                    // An endless loop ends in its timeout (200) or is refused (503) when the
                    // anonymous tier's turns are taken: never anything else.
                    assert!(status == 200 || status == 503, "{status}");
                    answered += 1;
                }
                answered
            }));
        }
    }
    app.wait_for("the crowd holds a worker", 1.0, |app| async move {
        app.metric("sandbox_workers_busy").await
    })
    .await;

    let keyed = [("x-tenant-id", "acme")];
    for n in 0..20 {
        let response = app
            .post_execute_with(&keyed, json!({ "code": format!("{n} * 2") }))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(*response.result(), json!(n * 2));
    }
    // The crowd was really there throughout: the anonymous tier still holds its worker.
    assert!(app.metric("sandbox_workers_busy").await >= 1.0);
    stop.cancel();
    for client in crowd {
        assert!(client.await.unwrap() >= 1);
    }
}

#[tokio::test]
async fn a_keyed_tenant_is_never_refused_because_two_anonymous_addresses_run_endless_loops() {
    keyed_tenant_is_served_beside_a_crowd_of(2).await;
}

#[tokio::test]
async fn a_keyed_tenant_is_never_refused_because_thirty_anonymous_addresses_run_endless_loops() {
    keyed_tenant_is_served_beside_a_crowd_of(30).await;
}
