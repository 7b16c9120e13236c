//! The `sandbox` binary's command line, as a function an operator's own binary can call with
//! more host functions ([`main`]). The frame is the one both binaries share
//! ([`service_kit::cli`]): `serve` runs [`crate::run_with`], `healthcheck` checks a running
//! sandbox's `/healthz`, `check-config` validates the environment. `sandbox worker` is the
//! worker role the supervisor starts (see the `worker` crate), which must not start an async
//! runtime or anything else before it hardens itself, so it is recognised before anything
//! else runs.

use std::process::ExitCode;

use clap::Subcommand;
use engine::HostFunctions;
use service_kit::cli::{Action, Program};

use crate::{Config, config::VARIABLES};

const PROGRAM: Program = Program {
    name: "sandbox",
    about: "Runs untrusted JavaScript in worker processes under hard limits: the private half \
            of jsbox, reached through the ingress.",
    version: env!("CARGO_PKG_VERSION"),
    variables: VARIABLES,
};

/// The sandbox's own commands.
#[derive(Subcommand)]
enum Own {
    /// The worker process the sandbox starts for itself; not for running by hand.
    Worker,
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
    match PROGRAM.parse::<Own>() {
        Action::Own(Own::Worker) => worker::main(host(&Config::default())),
        Action::CheckConfig => PROGRAM.with_config(Config::from_env(), |config| {
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
        }),
        Action::Healthcheck => PROGRAM.with_config(Config::from_env(), |config| {
            PROGRAM.block_on(service_kit::health::healthcheck(config.listen_addr))
        }),
        Action::Serve => PROGRAM.with_config(Config::from_env(), |config| {
            let (logging, limits, addr) =
                (config.logging, config.connections.clone(), config.listen_addr);
            PROGRAM.block_on(PROGRAM.serve(logging, &limits, addr, |listener| {
                let host = host(&config);
                crate::run_with(listener, config, host, service_kit::shutdown::signal())
            }))
        }),
    }
}
