//! The sandbox's listener: accepted connections get `TCP_NODELAY` (small request/answer
//! exchanges, where Nagle's algorithm would only add latency) and a write timeout, so an answer
//! a client does not read within [`crate::Config::write_timeout`] is dropped with its
//! connection instead of being kept in memory.

use std::{io, net::SocketAddr, pin::Pin, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// A connection whose writes must make progress within the write timeout.
pub type Connection = Pin<Box<TimeoutStream<TcpStream>>>;

/// Accepts connections for `axum::serve`.
pub struct GuardedListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, write_timeout: Duration) -> Self {
        Self {
            inner,
            write_timeout,
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let mut stream = TimeoutStream::new(stream);
                    stream.set_write_timeout(Some(self.write_timeout));
                    return (Box::pin(stream), addr);
                }
                Err(error) => {
                    // Out of descriptors or memory: wait a moment rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
