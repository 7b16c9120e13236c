//! The shutdown signal both servers wait for: Ctrl-C or SIGTERM. The handlers are installed
//! when [`signal`] is called, before the server answers its first request: a SIGTERM that comes
//! as soon as `/healthz` has answered 200 starts the shutdown notice rather than killing the
//! process. A signal whose handler cannot be installed is logged and never fires, so the server
//! waits on the other one alone rather than shutting down at once.

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal as install};

/// Installs the handlers for Ctrl-C (SIGINT) and SIGTERM now, and returns a future that
/// completes when either arrives. Must be called inside the Tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let handler = |kind: SignalKind, name: &'static str| match install(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!(%error, "cannot listen for {name}");
            None
        }
    };
    let interrupt = handler(SignalKind::interrupt(), "Ctrl-C");
    let terminate = handler(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(interrupt) => {}
            () = received(terminate) => {}
        }
    }
}

/// Completes when `signal` arrives; never, without a handler.
async fn received(signal: Option<Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
