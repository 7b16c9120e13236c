//! `loadtest`: runs the named scenarios against the service and exits non-zero when any request
//! was lost (1) or a scenario could not run (2).

use std::process::ExitCode;

use clap::Parser;
use loadtest::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match loadtest::run(&cli).await {
        Ok(verdict) if verdict.lost == 0 => ExitCode::SUCCESS,
        Ok(verdict) => {
            eprintln!("loadtest: {} request(s) lost", verdict.lost);
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::from(2)
        }
    }
}
