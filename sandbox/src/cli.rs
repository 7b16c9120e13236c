//! The `sandbox` binary's command line, as a function an operator's own binary can call with
//! more host functions ([`main`]). `sandbox` (or `sandbox serve`) reads its configuration
//! from the environment and runs [`crate::run_with`]; `sandbox healthcheck` checks a running
//! sandbox's `/healthz` (for container health checks); `sandbox check-config` validates the
//! environment and exits; `sandbox worker` is the worker role the supervisor starts (see the
//! `worker` crate), which must not start an async runtime or anything else before it hardens
//! itself, so it is recognised before anything else runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::HostFunctions;

use crate::{Config, telemetry};

/// Runs untrusted JavaScript in worker processes under hard limits: the private half of jsbox,
/// reached through the ingress.
#[derive(Parser)]
#[command(name = "sandbox", version, after_help = environment_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The `healthcheck` command, under its older name.
    #[arg(long, hide = true)]
    healthcheck: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on LISTEN_ADDR (the default command).
    Serve,
    /// Ask the sandbox at LISTEN_ADDR for its /healthz: exit 0 when it answers 200 within 3 s.
    Healthcheck,
    /// Check the environment variables and exit: 0 when they are valid, 1 naming the problem.
    CheckConfig,
    /// The worker process the sandbox starts for itself; not for running by hand.
    Worker,
}

fn environment_help() -> String {
    connections::environment_help(&Config::help())
}

/// Runs the command line with the host functions `host` makes of the configuration. The same
/// binary is the worker process, which builds the registry from the default configuration
/// (only its synchronous functions run there) before it hardens itself.
pub fn main(host: impl FnOnce(&Config) -> HostFunctions) -> ExitCode {
    // Exactly how the supervisor starts a worker: nothing else may run before it hardens.
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args == [contract::worker::WORKER_ARGUMENT] {
        return worker::main(host(&Config::default()));
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Worker) => worker::main(host(&Config::default())),
        Some(Command::CheckConfig) => match Config::from_env() {
            Ok(config) => {
                println!(
                    "sandbox: configuration is valid: {} workers, time limit {} ms (at most {} ms), memory {} MiB (at most {} MiB), listening on {}",
                    config.max_concurrency,
                    config.default_timeout.as_millis(),
                    config.max_timeout.as_millis(),
                    config.default_memory_limit_mb,
                    config.max_memory_limit_mb,
                    config.listen_addr
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("sandbox: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Healthcheck) => serve(true, host),
        Some(Command::Serve) | None => serve(cli.healthcheck, host),
    }
}

#[tokio::main]
async fn serve(healthcheck: bool, host: impl FnOnce(&Config) -> HostFunctions) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("sandbox: {error}");
            return ExitCode::FAILURE;
        }
    };
    if healthcheck {
        return crate::healthcheck::check(config.listen_addr).await;
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
    let host = host(&config);
    match crate::run_with(listener, config, host, crate::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
