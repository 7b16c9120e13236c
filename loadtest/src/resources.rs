//! The service's resources over time: the sandbox's gauges scraped from its `/metrics`
//! (OpenMetrics text) every second, and the ingress's memory and descriptors read from `/proc`
//! when loadtest started it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::recorder::RunClock;

const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often [`wait_for_baseline`] looks again.
const BASELINE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The resources at one moment of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ResourceSample {
    /// Seconds since the run started.
    pub at: f64,
    /// `None` when the sandbox's metrics are unknown or the scrape failed.
    pub sandbox: Option<SandboxGauges>,
    pub ingress: Option<ProcessUsage>,
}

/// What the sandbox's `/metrics` said.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SandboxGauges {
    pub workers: f64,
    pub workers_busy: f64,
    pub supervisor_resident_bytes: f64,
    pub workers_resident_bytes: f64,
    pub open_fds: f64,
    /// `sandbox_memory_budget_bytes{share="total"}`: what the sandbox's processes may use
    /// together (README, "Memory budget"); 0 when the sandbox does not say.
    pub memory_budget_bytes: f64,
    /// `sandbox_sessions_open`: sessions open now, each holding a worker of its own.
    pub sessions_open: f64,
    /// `sandbox_memory_budget_bytes{share="requests_charged"}`: what requests and sessions
    /// hold of the memory budget now.
    pub requests_charged_bytes: f64,
    /// `sandbox_executions_total` summed over tenants, by outcome: a counter, so only its
    /// change over the run is reported.
    #[serde(skip)]
    pub executions_by_outcome: BTreeMap<String, f64>,
    /// `sandbox_session_events_total` by event (`created`, `expired`, `deleted`, `lost`): a
    /// counter, reported as its change over the run.
    #[serde(skip)]
    pub session_events: BTreeMap<String, f64>,
}

/// What sessions hold in the sandbox at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SessionHoldings {
    pub sessions_open: f64,
    /// What requests and sessions hold of the memory budget.
    pub requests_charged_bytes: f64,
}

impl SessionHoldings {
    fn of(gauges: &SandboxGauges) -> SessionHoldings {
        SessionHoldings {
            sessions_open: gauges.sessions_open,
            requests_charged_bytes: gauges.requests_charged_bytes,
        }
    }

    /// Neither more sessions open nor more memory charged than `baseline`.
    fn within(&self, baseline: &SessionHoldings) -> bool {
        self.sessions_open <= baseline.sessions_open
            && self.requests_charged_bytes <= baseline.requests_charged_bytes
    }
}

/// Whether what sessions held came back to what it was before a load, once the load ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BaselineReturn {
    /// Before the load.
    pub baseline: SessionHoldings,
    /// As the load ended.
    pub at_end_of_load: SessionHoldings,
    /// At the last look: back at the baseline, or when the wait gave up.
    pub last: SessionHoldings,
    /// Both back at (or below) the baseline within the wait.
    pub returned: bool,
    /// From the end of the load to the first look that found them back.
    pub seconds_to_return: Option<f64>,
    /// How long the wait was allowed.
    pub allowed_seconds: f64,
}

/// What sessions hold in the sandbox now, `None` when its metrics cannot be read.
pub async fn session_holdings(url: &str) -> Option<SessionHoldings> {
    let gauges = scrape(&reqwest::Client::new(), url).await?;
    Some(SessionHoldings::of(&gauges))
}

/// Looks at the sandbox's metrics every 100 ms until its open sessions and charged memory are
/// back at `baseline`, for at most `allowed`: abandoned sessions free everything when they
/// expire.
pub async fn wait_for_baseline(
    url: &str,
    baseline: SessionHoldings,
    allowed: Duration,
) -> BaselineReturn {
    let client = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    let mut at_end_of_load = None;
    let mut last = None;
    loop {
        if let Some(gauges) = scrape(&client, url).await {
            let now = SessionHoldings::of(&gauges);
            at_end_of_load.get_or_insert(now);
            last = Some(now);
            if now.within(&baseline) {
                break;
            }
        }
        if started.elapsed() >= allowed {
            break;
        }
        tokio::time::sleep(BASELINE_POLL_INTERVAL).await;
    }
    let returned = last.is_some_and(|last| last.within(&baseline));
    BaselineReturn {
        baseline,
        at_end_of_load: at_end_of_load.unwrap_or_default(),
        last: last.unwrap_or_default(),
        returned,
        seconds_to_return: returned.then(|| started.elapsed().as_secs_f64()),
        allowed_seconds: allowed.as_secs_f64(),
    }
}

/// A process's resident memory and open descriptors, from `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProcessUsage {
    pub resident_bytes: u64,
    pub open_fds: u64,
}

/// Samples every second in the background until stopped.
pub struct ResourceSampler {
    stop: oneshot::Sender<()>,
    samples: JoinHandle<Vec<ResourceSample>>,
}

impl ResourceSampler {
    pub fn spawn(
        sandbox_metrics_url: Option<String>,
        ingress_pid: Option<u32>,
        clock: RunClock,
    ) -> ResourceSampler {
        let (stop, mut stopped) = oneshot::channel();
        let samples = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let url = sandbox_metrics_url.as_deref();
            let mut samples = Vec::new();
            let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                tokio::select! {
                    _ = ticks.tick() => samples.push(sample(&client, url, ingress_pid, &clock).await),
                    _ = &mut stopped => break,
                }
            }
            // One last look, so counters include the run's last answers.
            samples.push(sample(&client, url, ingress_pid, &clock).await);
            samples
        });
        ResourceSampler { stop, samples }
    }

    /// Stops sampling and returns every sample, in time order.
    pub async fn stop(self) -> Vec<ResourceSample> {
        // The task ends on a send or a dropped sender alike.
        let _ = self.stop.send(());
        self.samples.await.unwrap_or_default()
    }
}

async fn sample(
    client: &reqwest::Client,
    sandbox_metrics_url: Option<&str>,
    ingress_pid: Option<u32>,
    clock: &RunClock,
) -> ResourceSample {
    let sandbox = match sandbox_metrics_url {
        Some(url) => scrape(client, url).await,
        None => None,
    };
    ResourceSample {
        at: clock.now(),
        sandbox,
        ingress: ingress_pid.and_then(process_usage),
    }
}

/// The sandbox's gauges now, `None` when its metrics cannot be read.
async fn scrape(client: &reqwest::Client, url: &str) -> Option<SandboxGauges> {
    let answer = client.get(url).timeout(SCRAPE_TIMEOUT).send().await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    Some(parse_sandbox_metrics(&answer.text().await.ok()?))
}

/// Reads the few series loadtest reports from the sandbox's OpenMetrics text; the rest is
/// ignored.
pub fn parse_sandbox_metrics(text: &str) -> SandboxGauges {
    let mut gauges = SandboxGauges::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = match line.rfind('}') {
            Some(close) => (&line[..=close], &line[close + 1..]),
            None => line.split_once(' ').unwrap_or((line, "")),
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|value| value.parse::<f64>().ok())
        else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        match name {
            "sandbox_workers" => gauges.workers = value,
            "sandbox_workers_busy" => gauges.workers_busy = value,
            "sandbox_open_fds" => gauges.open_fds = value,
            "sandbox_sessions_open" => gauges.sessions_open = value,
            "sandbox_memory_budget_bytes" => match label(labels, "share") {
                Some("total") => gauges.memory_budget_bytes = value,
                Some("requests_charged") => gauges.requests_charged_bytes = value,
                _ => {}
            },
            "sandbox_resident_memory_bytes" => match label(labels, "process") {
                Some("supervisor") => gauges.supervisor_resident_bytes = value,
                // The pool's workers and the sessions': every worker process.
                Some("workers" | "sessions") => gauges.workers_resident_bytes += value,
                _ => {}
            },
            "sandbox_executions_total" => {
                if let Some(outcome) = label(labels, "outcome") {
                    *gauges
                        .executions_by_outcome
                        .entry(outcome.to_owned())
                        .or_default() += value;
                }
            }
            "sandbox_session_events_total" => {
                if let Some(event) = label(labels, "event") {
                    *gauges.session_events.entry(event.to_owned()).or_default() += value;
                }
            }
            _ => {}
        }
    }
    gauges
}

/// The value of `key` in `a="x",key="y"}` (the sandbox's label values hold no quotes or commas).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .trim_end_matches('}')
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

fn process_usage(pid: u32) -> Option<ProcessUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let resident_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcessUsage {
        resident_bytes: resident_kib * 1024,
        open_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sandbox_gauges_and_sums_executions_over_tenants() {
        let text = "# TYPE sandbox_workers gauge\n\
            sandbox_workers_busy 1\n\
            sandbox_workers 2\n\
            sandbox_resident_memory_bytes{process=\"workers\"} 14614528\n\
            sandbox_resident_memory_bytes{process=\"supervisor\"} 10780672\n\
            sandbox_resident_memory_bytes{process=\"sessions\"} 1000\n\
            sandbox_open_fds 18\n\
            sandbox_memory_budget_bytes{share=\"total\"} 1073741824\n\
            sandbox_memory_budget_bytes{share=\"workers\"} 696254464\n\
            sandbox_memory_budget_bytes{share=\"requests_charged\"} 2048\n\
            sandbox_sessions_open 3\n\
            sandbox_session_events_total{event=\"created\"} 5\n\
            sandbox_session_events_total{event=\"expired\"} 2\n\
            sandbox_executions_total{tenant=\"a\",outcome=\"success\"} 2\n\
            sandbox_executions_total{tenant=\"b\",outcome=\"success\"} 3\n\
            sandbox_executions_total{tenant=\"b\",outcome=\"timeout\"} 1\n\
            sandbox_worker_start_duration_seconds_bucket{le=\"+Inf\"} 2\n\
            # EOF\n";
        let gauges = parse_sandbox_metrics(text);
        assert_eq!(gauges.workers, 2.0);
        assert_eq!(gauges.workers_busy, 1.0);
        // The pool's workers and the sessions'.
        assert_eq!(gauges.workers_resident_bytes, 14615528.0);
        assert_eq!(gauges.supervisor_resident_bytes, 10780672.0);
        assert_eq!(gauges.open_fds, 18.0);
        assert_eq!(gauges.memory_budget_bytes, 1073741824.0);
        assert_eq!(gauges.executions_by_outcome["success"], 5.0);
        assert_eq!(gauges.executions_by_outcome["timeout"], 1.0);
        assert_eq!(gauges.sessions_open, 3.0);
        assert_eq!(gauges.requests_charged_bytes, 2048.0);
        assert_eq!(gauges.session_events["created"], 5.0);
        assert_eq!(gauges.session_events["expired"], 2.0);
    }
}
