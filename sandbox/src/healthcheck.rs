//! `sandbox --healthcheck`: asks a running sandbox's `/healthz` and exits 0 on 200, 1 otherwise,
//! so distroless containers need no shell or curl for their health check.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use http_body_util::Empty;
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;

/// Checks `http://<addr>/healthz`, reaching a wildcard address through loopback.
pub async fn check(mut addr: SocketAddr) -> ExitCode {
    if addr.ip().is_unspecified() {
        addr.set_ip([127, 0, 0, 1].into());
    }
    match tokio::time::timeout(Duration::from_secs(3), status(addr)).await {
        Ok(Ok(200)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("healthcheck: {addr} answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            eprintln!("healthcheck: {addr}: {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("healthcheck: {addr} did not answer in time");
            ExitCode::FAILURE
        }
    }
}

async fn status(addr: SocketAddr) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/healthz")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(request).await?.status().as_u16())
}
