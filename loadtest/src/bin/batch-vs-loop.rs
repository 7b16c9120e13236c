//! `batch-vs-loop`: times `--items` inputs sent as one batch against the same inputs sent one
//! request at a time over one keep-alive connection, for a trivial script and a heavier one,
//! against a stack it starts from the binaries beside it (or `--target`), and prints each
//! round's times, ratio and items per second (see [`loadtest::batch_vs_loop`]).

use std::process::ExitCode;

use clap::Parser;
use loadtest::Error;
use loadtest::batch_vs_loop::{Comparison, HEAVY, TRIVIAL};
use loadtest::stack::Target;

#[derive(Debug, Parser)]
#[command(name = "batch-vs-loop")]
struct Args {
    /// Inputs per round, each sent both ways.
    #[arg(long, default_value_t = 1000)]
    items: usize,
    /// Rounds of each script.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Base URL of an ingress (or sandbox) already running, instead of starting one.
    #[arg(long)]
    target: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("batch-vs-loop: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let log_dir = std::env::temp_dir().join(format!("batch-vs-loop-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).map_err(Error::io("create the log folder"))?;
    let target = match &args.target {
        Some(url) => Target::external(url, None),
        None => Target::start(None, &log_dir).await?,
    };
    let compared = compare(&args, &target.base_url).await;
    target.stop().await;
    compared
}

async fn compare(args: &Args, base_url: &str) -> Result<(), Error> {
    let comparison = Comparison::new(base_url)?;
    for workload in [TRIVIAL, HEAVY] {
        for round in 1..=args.rounds {
            let timed = comparison.round(workload, args.items).await?;
            let (sequential_rate, batch_rate) = timed.items_per_second();
            println!(
                "{:<8} round {round}: {} requests {:.2} s ({:.0} items/s), one batch {:.2} s ({:.0} items/s): batch {:.2}x faster",
                workload.name,
                timed.items,
                timed.sequential.as_secs_f64(),
                sequential_rate,
                timed.batch.as_secs_f64(),
                batch_rate,
                timed.ratio()
            );
        }
    }
    Ok(())
}
