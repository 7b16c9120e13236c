//! The `ingress` binary: configuration from the environment, then [`ingress::run`].
//! `ingress --healthcheck` probes a running ingress instead (exit 0 when healthy);
//! `ingress hash-key [KEY]` prints the hash of an API key (read from stdin when not given) for
//! the tenants file.

use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("hash-key") {
        return hash_key(std::env::args().nth(2));
    }
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
    connections::raise_descriptor_limit(&config.connections);
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

/// Prints the SHA-256 of `key`, or of stdin's first line (which keeps the key out of the shell
/// history and the process list).
fn hash_key(key: Option<String>) -> ExitCode {
    let key = match key {
        Some(key) => key,
        None => {
            let mut line = String::new();
            if let Err(error) = std::io::stdin().read_line(&mut line) {
                eprintln!("ingress hash-key: cannot read the key: {error}");
                return ExitCode::FAILURE;
            }
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if key.is_empty() {
        eprintln!("usage: ingress hash-key KEY, or the key on stdin");
        return ExitCode::FAILURE;
    }
    println!("{}", ingress::tenants::KeyHash::of_key(&key));
    ExitCode::SUCCESS
}
