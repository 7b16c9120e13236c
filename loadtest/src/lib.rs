//! A load-test tool for the service: named scenarios ([`scenario`]) sent by goose users
//! ([`attack`]) through the ingress of a stack it starts itself ([`stack`]) or one already
//! running, with the sandbox's resources sampled beside them ([`resources`]) and, for
//! `slow-clients`, misbehaving raw connections ([`slow_clients`]). Every answer is classified
//! ([`answer`], for streamed answers [`stream`], for batches [`batch`], for the steps of a
//! session [`session`]) and recorded ([`recorder`]); [`summary`] turns the records into
//! figures and [`report`] writes them out. A request is lost when it gets no well-formed
//! answer; any lost request makes the run fail. [`batch_vs_loop`] (the `batch-vs-loop` binary) times one batch
//! against the same inputs sent one request at a time.

pub mod answer;
pub mod attack;
pub mod batch;
pub mod batch_vs_loop;
pub mod cli;
pub mod error;
pub mod recorder;
pub mod report;
pub mod resources;
pub mod scenario;
pub mod scripts;
pub mod session;
pub mod slow_clients;
pub mod stack;
pub mod stream;
pub mod summary;
pub mod tenants;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

pub use cli::Cli;
pub use error::Error;

use crate::recorder::{Recorder, RunClock};
use crate::resources::ResourceSampler;
use crate::scenario::Scenario;
use crate::slow_clients::SlowClients;
use crate::stack::Target;
use crate::summary::{RunRecord, ScenarioSummary};

/// What the scenarios of one invocation added up to.
#[derive(Debug, Default)]
pub struct Verdict {
    pub lost: usize,
    /// Scenarios in which a process's resident memory went above its budget.
    pub over_budget: usize,
    /// Scenarios after which the sandbox's open sessions or charged memory did not come back
    /// to their baseline.
    pub not_back_to_baseline: usize,
}

/// Runs every selected scenario in turn, each against a fresh stack unless `--target` names
/// one, printing and writing each one's report.
pub async fn run(cli: &Cli) -> Result<Verdict, Error> {
    attack::keep_goose_console_to_errors();
    let mut verdict = Verdict::default();
    for &scenario in &cli.scenario.0 {
        let summary = run_scenario(scenario, cli).await?;
        verdict.lost += summary.overall.lost;
        verdict.over_budget += usize::from(!summary.resources.over_budget().is_empty());
        let back = summary.sessions.as_ref().and_then(|s| s.back_to_baseline);
        verdict.not_back_to_baseline += usize::from(back.is_some_and(|back| !back.returned));
    }
    Ok(verdict)
}

async fn run_scenario(scenario: Scenario, cli: &Cli) -> Result<ScenarioSummary, Error> {
    let dir = cli.report_dir.join(scenario.name());
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let users = usize::from(cli.users);

    let tenants = tenants::generate(scenario.tenant_ids())?;
    let traffic = scenario.traffic(users, cli.duration, &tenants)?;
    let target = match &cli.target {
        Some(_) if !tenants.is_empty() => {
            return Err(Error::NeedsOwnStack {
                scenario: scenario.name(),
            });
        }
        Some(url) => Target::external(url, cli.sandbox_metrics.as_deref()),
        None => {
            let tenants_file = dir.join("tenants.toml");
            let tenants_file = if tenants.is_empty() {
                None
            } else {
                std::fs::write(
                    &tenants_file,
                    tenants::tenants_toml(
                        &tenants,
                        scenario.serves_anonymous(),
                        scenario.tenant_max_sessions(),
                    ),
                )
                .map_err(Error::io(format!("write {}", tenants_file.display())))?;
                Some(tenants_file.as_path())
            };
            Target::start(tenants_file, &dir).await?
        }
    };
    println!(
        "loadtest: {scenario} with {users} users for {} against {}",
        humantime::format_duration(cli.duration),
        target.base_url
    );

    let outcome = load(scenario, cli, &traffic, &target, &dir).await;
    target.stop().await;
    let summary = outcome?;
    let html = report::write(&dir, &summary)?;
    report::print_summary(&summary, &html);
    Ok(summary)
}

/// Sends the scenario's load at `target` and summarises it.
async fn load(
    scenario: Scenario,
    cli: &Cli,
    traffic: &scenario::Traffic,
    target: &Target,
    dir: &Path,
) -> Result<ScenarioSummary, Error> {
    let clock = RunClock::start();
    let recorder = Recorder::new(clock);
    let sampler = ResourceSampler::spawn(
        target.sandbox_metrics_url.clone(),
        target.ingress_pid,
        clock,
    );
    let attacker = attack::Attacker {
        base_url: &target.base_url,
        request_timeout: cli.request_timeout,
        recorder: &recorder,
        clock: &clock,
        report_dir: dir,
    };

    let outcome = attacks(scenario, cli, traffic, target, &attacker).await;
    let resource_samples = sampler.stop().await;
    let Attacks {
        windows,
        alone,
        paced,
        slow_clients,
        sessions_expired,
    } = outcome?;
    let samples = recorder.samples();
    let scripts = traffic.groups.iter().flat_map(|group| &group.scripts);
    let in_session = scripts.clone().any(|(script, _)| script.in_session);
    let expected: BTreeMap<&'static str, &'static str> = scripts
        .map(|(script, _)| (script.name, script.expected))
        .chain(in_session.then_some(session::STEPS).into_iter().flatten())
        .collect();
    Ok(summary::summarize(RunRecord {
        scenario: scenario.name(),
        target: &target.base_url,
        users: usize::from(cli.users),
        samples: &samples,
        expected,
        focus: traffic.focus,
        windows: &windows,
        is_ramp: matches!(traffic.shape, scenario::LoadShape::Ramp { .. }),
        paced: &paced,
        alone,
        resource_samples,
        ingress_memory_budget: target.ingress_memory_budget,
        slow_clients,
        sessions_expired,
    }))
}

/// The windows of a scenario's attacks.
struct Attacks {
    windows: Vec<summary::StepWindow>,
    alone: Option<(&'static str, summary::StepWindow)>,
    paced: Vec<summary::PacedWindow>,
    slow_clients: Option<BTreeMap<&'static str, slow_clients::MisbehaviourReport>>,
    /// For `sessions`, whether the sandbox came back to its baseline after the load.
    sessions_expired: Option<resources::BaselineReturn>,
}

/// The scenario's attacks in order: its focus group alone, when it has one; then its load,
/// beside the misbehaving connections of `slow-clients`; then, after a ramp, the paced loads
/// below the knee; then, for `sessions`, the wait for the sessions it left to expire and the
/// sandbox's open sessions and charged memory to be back at what they were before the load.
async fn attacks(
    scenario: Scenario,
    cli: &Cli,
    traffic: &scenario::Traffic,
    target: &Target,
    attacker: &attack::Attacker<'_>,
) -> Result<Attacks, Error> {
    let alone = match traffic.alone_first() {
        Some(alone) => {
            let windows = attacker.run(&alone, Some("alone")).await?;
            let name = alone.groups[0].name;
            span(&windows).map(|window| (name, window))
        }
        None => None,
    };
    let slow_clients = if scenario.has_slow_clients() {
        Some(SlowClients::start(
            socket_addr(&target.base_url).await?,
            cli.slow_clients,
        ))
    } else {
        None
    };
    let sessions_url = target
        .sandbox_metrics_url
        .as_deref()
        .filter(|_| scenario.waits_for_sessions_to_expire());
    let sessions_baseline = match sessions_url {
        Some(url) => resources::session_holdings(url).await,
        None => None,
    };
    let windows = attacker.run(traffic, None).await;
    let sessions_expired = match (sessions_url, sessions_baseline) {
        (Some(url), Some(baseline)) if windows.is_ok() => Some(
            resources::wait_for_baseline(url, baseline, session::TTL + session::EXPIRY_GRACE).await,
        ),
        _ => None,
    };
    let slow_clients = match slow_clients {
        Some(slow_clients) => Some(slow_clients.finish().await),
        None => None,
    };
    let windows = windows?;
    let paced = below_knee(traffic, &windows, attacker).await?;
    Ok(Attacks {
        windows,
        alone,
        paced,
        slow_clients,
        sessions_expired,
    })
}

/// One window from the start of the first to the end of the last.
fn span(windows: &[summary::StepWindow]) -> Option<summary::StepWindow> {
    let (first, last) = (windows.first()?, windows.last()?);
    Some(summary::StepWindow {
        users: last.users,
        from: first.from,
        to: last.to,
    })
}

/// After a ramp, the same traffic paced to each of [`summary::KNEE_FRACTIONS`] of the knee's
/// throughput, by as many users as the ramp's last step, each for as long as one step: the
/// latency a deployment sized by the knee would see. Nothing for other load shapes.
async fn below_knee(
    traffic: &scenario::Traffic,
    ramp_windows: &[summary::StepWindow],
    attacker: &attack::Attacker<'_>,
) -> Result<Vec<summary::PacedWindow>, Error> {
    let scenario::LoadShape::Ramp { steps, hold } = &traffic.shape else {
        return Ok(Vec::new());
    };
    let Some(knee) = summary::Ramp::of(&attacker.recorder.samples(), ramp_windows).knee else {
        return Ok(Vec::new());
    };
    let users = steps.last().copied().unwrap_or(1);
    let mut paced = Vec::new();
    for fraction_of_knee in summary::KNEE_FRACTIONS {
        let rate = (knee.successful_executions_per_second * fraction_of_knee).round() as usize;
        if rate == 0 {
            continue;
        }
        let traffic = traffic.paced(rate, users, *hold);
        let tag = format!("{rate}-per-second");
        let windows = attacker.run(&traffic, Some(&tag)).await?;
        if let Some(window) = span(&windows) {
            paced.push(summary::PacedWindow {
                fraction_of_knee,
                requests_per_second: rate,
                window,
            });
        }
    }
    Ok(paced)
}

/// The address of `base_url`'s host and port, for raw connections.
async fn socket_addr(base_url: &str) -> Result<SocketAddr, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(base_url).map_err(|error| invalid(&error.to_string()))?;
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("no port"))?;
    tokio::net::lookup_host((host, port))
        .await
        .map_err(Error::io(format!("resolve {host}")))?
        .next()
        .ok_or_else(|| invalid("the host resolves to no address"))
}
