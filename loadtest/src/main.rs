//! `loadtest`: runs the named scenarios against the service and exits non-zero when any request
//! was lost, a process went over its memory budget or the sandbox did not come back to its
//! baseline after `sessions` (1), or a scenario could not run (2).

use std::process::ExitCode;

use clap::Parser;
use loadtest::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match loadtest::run(&cli).await {
        Ok(verdict)
            if verdict.lost == 0
                && verdict.over_budget == 0
                && verdict.not_back_to_baseline == 0 =>
        {
            ExitCode::SUCCESS
        }
        Ok(verdict) => {
            eprintln!(
                "loadtest: {} request(s) lost; {} scenario(s) over a memory budget; {} scenario(s) \
                 whose sessions did not leave the sandbox as they found it",
                verdict.lost, verdict.over_budget, verdict.not_back_to_baseline
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("loadtest: {error}");
            ExitCode::from(2)
        }
    }
}
