//! The client side of `/healthz`: `<binary> healthcheck` (distroless images have no curl) and
//! the ingress waiting for the sandbox it starts. A server listening on a wildcard address is
//! probed on the loopback address of the same family (`0.0.0.0` on 127.0.0.1, `::` on ::1).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use http_body_util::Empty;
use hyper::{Request, StatusCode, body::Bytes, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long `healthcheck` waits for an answer.
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to reach a server listening on `addr`: itself, or for a wildcard address the
/// loopback address of its family.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Whether `GET http://<addr>/healthz` answers 200 within `timeout`.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(answer(reachable(addr), timeout).await, Ok(StatusCode::OK))
}

/// The `healthcheck` command: exit 0 when the server on `addr` answers 200 within
/// [`HEALTHCHECK_TIMEOUT`], otherwise 1 with the reason on standard error.
pub async fn healthcheck(addr: SocketAddr) -> ExitCode {
    let addr = reachable(addr);
    match answer(addr, HEALTHCHECK_TIMEOUT).await {
        Ok(StatusCode::OK) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("healthcheck: {addr} answered {status}");
            ExitCode::FAILURE
        }
        Err(reason) => {
            eprintln!("healthcheck: {addr}: {reason}");
            ExitCode::FAILURE
        }
    }
}

async fn answer(addr: SocketAddr, timeout: Duration) -> Result<StatusCode, String> {
    match tokio::time::timeout(timeout, get_healthz(addr)).await {
        Ok(answer) => answer.map_err(|error| error.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}

async fn get_healthz(
    addr: SocketAddr,
) -> Result<StatusCode, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/healthz")
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_address_is_reached_on_the_loopback_address_of_its_family() {
        let reach = |addr: &str| reachable(addr.parse().unwrap()).to_string();
        assert_eq!(reach("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(reach("[::]:8080"), "[::1]:8080");
        assert_eq!(reach("10.0.0.1:8080"), "10.0.0.1:8080");
    }
}
