//! The connection limits of one server; each binary declares the variables they are read
//! from, with its own defaults.

use std::time::Duration;

/// What one server allows its clients' connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `HEADER_READ_TIMEOUT_MS`: a request's head must arrive whole within this of the
    /// connection being ready for it (accepted, or answered before); it also closes idle
    /// kept-alive connections.
    pub header_read_timeout: Duration,
    /// `BODY_READ_TIMEOUT_MS`: a request's body must arrive whole within this.
    pub body_read_timeout: Duration,
    /// `WRITE_TIMEOUT_MS`: an answer's write may make no progress for this long before the
    /// connection and the answer are dropped.
    pub write_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections open at once.
    pub max_connections: usize,
    /// `MAX_CONNECTIONS_PER_CLIENT`: connections open at once from one client (IPv4 address or
    /// IPv6 /64); `None` (`0`) when clients cannot be told apart by their address.
    pub max_connections_per_client: Option<usize>,
    /// `SHUTDOWN_NOTICE_MS`: after the shutdown signal, how long the listener stays open,
    /// serving as before while `/healthz` answers 503, so that a load balancer probing it sees
    /// the server leave before its connections are refused; 0 closes the listener at once.
    pub shutdown_notice: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_connections: 1024,
            max_connections_per_client: Some(128),
            shutdown_notice: Duration::from_secs(1),
        }
    }
}
