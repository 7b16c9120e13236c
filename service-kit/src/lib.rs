//! What both HTTP servers share. First, how they take connections, so that slow, idle and
//! greedy clients cannot hold either of them:
//!
//! - **Caps.** At most [`Limits::max_connections`] connections at once, and at most
//!   [`Limits::max_connections_per_client`] from one client (one IPv4 address, or one IPv6
//!   /64). A connection over a cap is closed as soon as it is accepted.
//! - **Header read and idle timeout.** hyper's `header_read_timeout`: a request's head must
//!   arrive whole within [`Limits::header_read_timeout`] of the moment the connection is ready
//!   for it, which is its acceptance, or the answer before on a kept-alive connection. Idle and
//!   half-sent connections are closed by it.
//! - **Body read deadline.** [`read_body`] reads a request body whole within
//!   [`Limits::body_read_timeout`] and a byte limit, however slowly it trickles.
//! - **Write timeout.** A write that makes no progress for [`Limits::write_timeout`] (a client
//!   that does not read its answer) ends the connection, and the answer is dropped.
//! - **Buffers.** hyper's buffers of a connection are bounded by [`CONNECTION_BUFFER_BYTES`]:
//!   its input by twice that (hyper checks the limit between reads, and a read may add as much
//!   again), its output by that plus one piece of a body, so that what connections hold adds up
//!   to a bound each binary's memory budget can reserve. A request head above it may be
//!   refused, one above twice it always is (431).
//!
//! - **Shutdown notice.** After the shutdown signal the listener stays open for
//!   [`Limits::shutdown_notice`], serving as before, so that a load balancer probing
//!   `/healthz` (which each binary answers 503 from the signal on) stops sending work before
//!   connections are refused.
//!
//! [`serve`] runs an axum router under these limits with graceful shutdown.
//!
//! Beside the connections, the rest of what both servers share, written once so that the two
//! cannot drift apart: environment variables declared once ([`env`], [`variables!`]), the
//! command-line frame ([`cli`]), the shutdown signal ([`shutdown`]), the `/healthz` probe
//! ([`health`]), logging set-up ([`telemetry`]), and the memory budget.

mod body;
mod budget;
pub mod cli;
pub mod env;
pub mod health;
mod limits;
pub mod shutdown;
pub mod telemetry;

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;
use tower::ServiceExt;

pub use self::{
    body::{BodyError, read_body},
    budget::{
        Charge, LimitSource, MemoryBudget, OverBudget, container_memory_limit,
        container_memory_limit_in,
    },
    env::ConfigError,
    limits::Limits,
    telemetry::{LogFormat, Logging},
};

/// hyper's `max_buf_size` for every connection: a request head of up to this is always read
/// (Node.js's default limit too), one above twice this never is (431).
pub const CONNECTION_BUFFER_BYTES: usize = 16 * 1024;

/// A connection whose writes must make progress within the write timeout.
type Connection = Pin<Box<TimeoutStream<TcpStream>>>;

/// Serves `app` on `listener` under `limits` until `shutdown` completes and
/// [`Limits::shutdown_notice`] has passed after it; then stops accepting, lets every
/// connection finish the request it is serving, and returns once all are closed. Handlers can
/// extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
    let notice = limits.shutdown_notice;
    let shutdown = async move {
        shutdown.await;
        if !notice.is_zero() {
            tracing::info!(
                notice_ms = notice.as_millis() as u64,
                "shutting down: still accepting connections during the notice"
            );
            tokio::time::sleep(notice).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or memory: wait a moment rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = open.admit(peer.ip(), &limits) else {
            // Over a cap: closing at once is the cheapest answer, and the client sees why.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let connection: Connection = Box::pin(stream);
        let app = app.clone();
        let service = tower::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(CONNECTION_BUFFER_BYTES);
        let serving =
            builder.serve_connection(TokioIo::new(connection), TowerToHyperService::new(service));
        let serving = graceful.watch(serving);
        tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The connections open now, in all and by client.
#[derive(Default)]
struct OpenConnections {
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    open: Arc<OpenConnections>,
    client: IpAddr,
}

impl OpenConnections {
    fn admit(self: &Arc<Self>, address: IpAddr, limits: &Limits) -> Option<Slot> {
        let client = client_of(address);
        let mut counts = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.total >= limits.max_connections {
            tracing::debug!(%client, "connection refused: the server holds its maximum");
            return None;
        }
        let mine = counts.by_client.get(&client).copied().unwrap_or(0);
        if limits
            .max_connections_per_client
            .is_some_and(|cap| mine >= cap)
        {
            tracing::debug!(%client, "connection refused: the client holds its maximum");
            return None;
        }
        counts.total += 1;
        counts.by_client.insert(client, mine + 1);
        Some(Slot {
            open: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.total -= 1;
        if let Some(mine) = counts.by_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                counts.by_client.remove(&self.client);
            }
        }
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit, so that
/// `max_connections` clients (and as many upstream connections) fit; warns when even the hard
/// limit is lower than that.
pub fn raise_descriptor_limit(limits: &Limits) {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) != 0 {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: current.rlim_max,
            rlim_max: current.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            current = raised;
        }
    }
    let needed = 2 * limits.max_connections as u64 + 64;
    if current.rlim_cur < needed {
        tracing::warn!(
            limit = current.rlim_cur,
            needed,
            "the descriptor limit is below what MAX_CONNECTIONS needs; raise `ulimit -n`"
        );
    }
}

/// The client an address stands for: itself for IPv4, its /64 for IPv6 (one site's hosts).
pub fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(std::net::Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: Option<usize>) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_client: per_client,
            ..Limits::default()
        }
    }

    #[test]
    fn connections_are_capped_in_all_and_per_client() {
        let open = Arc::new(OpenConnections::default());
        let caps = limits(3, Some(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = open.admit(a, &caps).unwrap();
        let _second = open.admit(a, &caps).unwrap();
        assert!(open.admit(a, &caps).is_none(), "a third from one client");
        let _third = open.admit(b, &caps).unwrap();
        assert!(open.admit(b, &caps).is_none(), "a fourth in all");
        drop(first);
        assert!(open.admit(a, &caps).is_some(), "a place freed up");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let open = Arc::new(OpenConnections::default());
        let caps = limits(10, Some(1));
        let _one = open
            .admit("2001:db8:1:2::1".parse().unwrap(), &caps)
            .unwrap();
        assert!(
            open.admit("2001:db8:1:2::ffff".parse().unwrap(), &caps)
                .is_none()
        );
        assert!(
            open.admit("2001:db8:1:3::1".parse().unwrap(), &caps)
                .is_some()
        );
    }
}
