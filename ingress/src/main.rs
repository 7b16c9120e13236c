//! The `ingress` binary's command line. `ingress` (or `ingress serve`) reads its configuration
//! from the environment and runs [`ingress::run`]; `ingress healthcheck` probes a running
//! ingress (exit 0 when healthy); `ingress hash-key [KEY]` prints the hash of an API key (read
//! from stdin when not given) for the tenants file; `ingress check-config` validates the
//! environment and the tenants file and exits.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

/// The public front door of jsbox: serves the demo page, authenticates tenants, rate-limits and
/// forwards /api/* to the sandbox (which it starts beside itself unless SANDBOX_URL is set).
#[derive(Parser)]
#[command(name = "ingress", version, after_help = environment_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The `healthcheck` command, under its older name.
    #[arg(long, hide = true)]
    healthcheck: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve on LISTEN_ADDR (the default command).
    Serve,
    /// Ask the ingress at LISTEN_ADDR for its /healthz: exit 0 when it answers 200 within 3 s.
    Healthcheck,
    /// Print the SHA-256 of an API key, for the tenants file's `keys`.
    HashKey {
        /// The key; read from the first line of stdin when not given, which keeps it out of
        /// the shell's history and the process list.
        key: Option<String>,
    },
    /// Check the environment variables and the tenants file and exit: 0 when they are valid,
    /// 1 naming the problem.
    CheckConfig,
}

fn environment_help() -> String {
    connections::environment_help(&ingress::Config::help())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::HashKey { key }) => hash_key(key),
        Some(Command::CheckConfig) => check_config(),
        Some(Command::Healthcheck) => serve(true),
        Some(Command::Serve) | None => serve(cli.healthcheck),
    }
}

#[tokio::main]
async fn serve(healthcheck: bool) -> ExitCode {
    let config = match ingress::Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ingress: {error}");
            return ExitCode::FAILURE;
        }
    };
    if healthcheck {
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

/// Validates what `serve` would read, without binding or starting anything.
fn check_config() -> ExitCode {
    match ingress::Config::from_env() {
        Ok(config) => {
            let tenants = &config.tenants;
            let anonymous = if tenants.anonymous.enabled {
                "on"
            } else {
                "off"
            };
            let sandbox = config.sandbox_url.as_ref().map_or_else(
                || "started beside the ingress".to_owned(),
                ToString::to_string,
            );
            println!(
                "ingress: configuration is valid: {} tenants, anonymous tier {anonymous}, sandbox {sandbox}, listening on {}",
                tenants.tenants.len(),
                config.listen_addr
            );
            for warning in config.warnings() {
                eprintln!("ingress: warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ingress: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the SHA-256 of `key`, or of stdin's first line.
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
