//! The command line: which scenarios, for how long, with how many users, against what.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

use crate::scenario::Scenario;

/// Load-tests the service with named scenarios and writes an HTML report and a JSON summary per
/// scenario. By default it starts the sandbox and the ingress that sit beside its own executable
/// (`target/<profile>/`), one fresh stack per scenario.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
pub struct Cli {
    /// Scenarios to run, comma-separated: steady, mixed, tenants, hostile, slow-clients, ramp,
    /// crowd, stream, typescript, batch, sessions, or all.
    #[arg(long, default_value = "mixed")]
    pub scenario: ScenarioSelection,

    /// How long each scenario sends load (ramp: the whole ramp), e.g. 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Users sending requests at once (ramp: the last step; hostile: split between the hostile
    /// and the polite tenant).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub users: u16,

    /// Where each scenario's report goes, in a folder named after it.
    #[arg(long, default_value = "target/loadtest")]
    pub report_dir: PathBuf,

    /// Base URL of an ingress already running (e.g. http://127.0.0.1:8080) instead of starting
    /// one; the tenants and hostile scenarios need the stack loadtest starts.
    #[arg(long)]
    pub target: Option<String>,

    /// The sandbox's metrics URL (e.g. http://127.0.0.1:8081/metrics) to sample with --target.
    #[arg(long, requires = "target")]
    pub sandbox_metrics: Option<String>,

    /// Raw TCP connections that misbehave beside the users in slow-clients.
    #[arg(long, default_value_t = 200)]
    pub slow_clients: usize,

    /// How long one request may take before the client gives up on it (counted as lost).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
}

/// The scenarios named on the command line, in the order given, each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioSelection(pub Vec<Scenario>);

impl FromStr for ScenarioSelection {
    type Err = String;

    fn from_str(names: &str) -> Result<Self, Self::Err> {
        let mut selected = Vec::new();
        for name in names.split(',').map(str::trim) {
            let scenarios = if name == "all" {
                Scenario::ALL.to_vec()
            } else {
                vec![name.parse::<Scenario>()?]
            };
            for scenario in scenarios {
                if !selected.contains(&scenario) {
                    selected.push(scenario);
                }
            }
        }
        Ok(ScenarioSelection(selected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_expands_all_and_keeps_each_scenario_once() {
        let selection: ScenarioSelection = "mixed,all".parse().unwrap();
        assert_eq!(selection.0.len(), Scenario::ALL.len());
        assert_eq!(selection.0[0], Scenario::Mixed);
        assert!("mixed,nope".parse::<ScenarioSelection>().is_err());
    }
}
