//! The command-line frame both binaries share: `serve` (the default), `healthcheck` (also
//! under its older spelling `--healthcheck`), `check-config`, and each binary's own commands;
//! `--help` lists them and every environment variable the binary declares. The settings
//! themselves come from the environment, never from flags.

use std::{future::Future, io, net::SocketAddr, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::{Limits, env, telemetry};

/// What a binary tells the frame about itself.
pub struct Program {
    /// The binary's name, as `--help` and `--version` show it.
    pub name: &'static str,
    /// One paragraph for the top of `--help`.
    pub about: &'static str,
    /// The binary's version (its `CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// Every variable it reads.
    pub variables: &'static [env::Doc],
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<Own> {
    Serve,
    Healthcheck,
    CheckConfig,
    /// One of the binary's own commands.
    Own(Own),
}

#[derive(Parser)]
struct Cli<Own: Subcommand> {
    #[command(subcommand)]
    command: Option<Command<Own>>,
    /// The `healthcheck` command, under its older name.
    #[arg(long, hide = true)]
    healthcheck: bool,
}

#[derive(Subcommand)]
enum Command<Own: Subcommand> {
    /// Serve on LISTEN_ADDR (the default command).
    Serve,
    /// Ask the server at LISTEN_ADDR for its /healthz: exit 0 when it answers 200 within 3 s.
    Healthcheck,
    /// Check the configuration and exit: 0 when it is valid, 1 naming the problem.
    CheckConfig,
    #[command(flatten)]
    Own(Own),
}

impl Program {
    /// Parses the process's arguments; `--help`, `--version` and mistakes exit here, as clap
    /// does.
    pub fn parse<Own: Subcommand>(&self) -> Action<Own> {
        self.try_parse_from(std::env::args_os())
            .unwrap_or_else(|error| error.exit())
    }

    /// Parses `args` (the program's name first).
    pub fn try_parse_from<Own: Subcommand>(
        &self,
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
    ) -> Result<Action<Own>, clap::Error> {
        let mut command = Cli::<Own>::command()
            .name(self.name)
            .bin_name(self.name)
            .about(self.about)
            .version(self.version)
            .after_help(format!(
                "{}\n{}",
                env::help(self.variables),
                crate::telemetry::traces::HELP
            ));
        let matches = command.try_get_matches_from_mut(args)?;
        let cli = Cli::<Own>::from_arg_matches(&matches)?;
        Ok(match cli.command {
            Some(Command::Serve) => Action::Serve,
            None if !cli.healthcheck => Action::Serve,
            Some(Command::Healthcheck) | None => Action::Healthcheck,
            Some(Command::CheckConfig) => Action::CheckConfig,
            Some(Command::Own(own)) => Action::Own(own),
        })
    }

    /// Runs `then` with the configuration, or exits with 1 and the problem on standard error.
    pub fn with_config<C>(
        &self,
        read: Result<C, env::ConfigError>,
        then: impl FnOnce(C) -> ExitCode,
    ) -> ExitCode {
        match read {
            Ok(config) => then(config),
            Err(error) => {
                eprintln!("{}: {error}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    /// Runs `command` on a multi-threaded async runtime.
    pub fn block_on(&self, command: impl Future<Output = ExitCode>) -> ExitCode {
        match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(command),
            Err(error) => {
                eprintln!("{}: cannot start the async runtime: {error}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    /// Sets up logging (and trace export), raises the descriptor limit for `limits`, binds
    /// `addr` and runs the server `run` makes of the listener until it returns, then sends the
    /// last spans within [`telemetry::traces::FLUSH_DEADLINE`].
    pub async fn serve<Served>(
        &self,
        logging: telemetry::Logging,
        limits: &Limits,
        addr: SocketAddr,
        run: impl FnOnce(TcpListener) -> Served,
    ) -> ExitCode
    where
        Served: Future<Output = io::Result<()>>,
    {
        let exporting = telemetry::init(logging, self.name);
        crate::raise_descriptor_limit(limits);
        let served = match TcpListener::bind(addr).await {
            Ok(listener) => run(listener).await,
            Err(error) => {
                tracing::error!(%error, %addr, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        if let Some(exporting) = exporting {
            exporting.shutdown().await;
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "{} failed", self.name);
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Subcommand)]
    enum Own {
        /// A command of the binary's own.
        Extra,
    }

    const PROGRAM: Program = Program {
        name: "test",
        about: "A program of the tests.",
        version: "1.0",
        variables: &[],
    };

    fn parse(args: &[&str]) -> Action<Own> {
        let args = std::iter::once("test").chain(args.iter().copied());
        PROGRAM.try_parse_from(args).unwrap()
    }

    #[test]
    fn no_command_serves_and_the_older_flag_is_the_healthcheck() {
        assert_eq!(parse(&[]), Action::Serve);
        assert_eq!(parse(&["serve"]), Action::Serve);
        assert_eq!(parse(&["--healthcheck"]), Action::Healthcheck);
        assert_eq!(parse(&["healthcheck"]), Action::Healthcheck);
        assert_eq!(parse(&["check-config"]), Action::CheckConfig);
        assert_eq!(parse(&["extra"]), Action::Own(Own::Extra));
        assert!(
            PROGRAM
                .try_parse_from::<Own>(["test", "frobnicate"])
                .is_err()
        );
    }
}
