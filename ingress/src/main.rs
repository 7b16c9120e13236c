//! The `ingress` binary: configuration from the environment, then [`ingress::run`].
//! `ingress --healthcheck` probes a running ingress instead (exit 0 when healthy).

use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match ingress::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ingress: {error}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().any(|arg| arg == "--healthcheck") {
        let healthy = ingress::health::probe(config.listen_addr, Duration::from_secs(3)).await;
        return if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    ingress::telemetry::init(config.log_format);
    let listener = match TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, addr = %config.listen_addr, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match ingress::run(listener, config, ingress::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ingress failed");
            ExitCode::FAILURE
        }
    }
}
