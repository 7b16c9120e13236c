//! The `ingress` binary's command line, in the frame both binaries share
//! ([`service_kit::cli`]): `serve` (the default) runs [`ingress::run`], `healthcheck` probes a
//! running ingress, `check-config` validates the environment and the tenants file, and
//! `hash-key [KEY]` prints the hash of an API key (read from stdin when not given) for the
//! tenants file.

use std::process::ExitCode;

use clap::Subcommand;
use ingress::Config;
use service_kit::cli::{Action, Program};

const PROGRAM: Program = Program {
    name: "ingress",
    about: "The public front door of jsbox: serves the demo page, authenticates tenants, \
            rate-limits and forwards /api/* to the sandbox (which it starts beside itself \
            unless SANDBOX_URL is set).",
    version: env!("CARGO_PKG_VERSION"),
    variables: ingress::config::VARIABLES,
};

/// The ingress's own commands.
#[derive(Subcommand)]
enum Own {
    /// Print the SHA-256 of an API key, for the tenants file's `keys`.
    HashKey {
        /// The key; read from the first line of stdin when not given, which keeps it out of
        /// the shell's history and the process list.
        key: Option<String>,
    },
}

fn main() -> ExitCode {
    match PROGRAM.parse::<Own>() {
        Action::Own(Own::HashKey { key }) => hash_key(key),
        Action::CheckConfig => PROGRAM.with_config(Config::from_env(), check_config),
        Action::Healthcheck => PROGRAM.with_config(Config::from_env(), |config| {
            PROGRAM.block_on(service_kit::health::healthcheck(config.listen_addr))
        }),
        Action::Serve => PROGRAM.with_config(Config::from_env(), |config| {
            let (logging, limits, addr) = (
                config.logging,
                config.connections.clone(),
                config.listen_addr,
            );
            PROGRAM.block_on(PROGRAM.serve(logging, &limits, addr, |listener| {
                ingress::run(listener, config, service_kit::shutdown::signal())
            }))
        }),
    }
}

/// Summarises what `serve` would read, without binding or starting anything.
fn check_config(config: Config) -> ExitCode {
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
