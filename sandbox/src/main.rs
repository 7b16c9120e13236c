//! The `sandbox` binary: configuration from the environment, then [`sandbox::run`].
//! `sandbox --healthcheck` checks a running sandbox's `/healthz` (for container health checks);
//! `sandbox worker` is the worker role the supervisor starts (see the `worker` crate), which
//! must not start an async runtime or anything else before it hardens itself.

use std::process::ExitCode;

use sandbox::{Config, telemetry};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(contract::worker::WORKER_ARGUMENT) {
        return worker::main();
    }
    serve()
}

#[tokio::main]
async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sandbox: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--healthcheck") {
        return sandbox::healthcheck::check(config.listen_addr).await;
    }
    telemetry::init(config.log_format);
    connections::raise_descriptor_limit(&config.connections);
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, addr = %config.listen_addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match sandbox::run(listener, config, sandbox::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
