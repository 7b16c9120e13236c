//! The figures of one scenario, computed from its samples: throughput, latency percentiles,
//! answers by kind, refusals, lost requests, resources over time, and the ramp's knee. Pure
//! functions of the recorded data, so they are tested on canned samples.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::answer::Outcome;
use crate::recorder::Sample;
use crate::resources::{BaselineReturn, ResourceSample, SandboxGauges};
use crate::session::{self, SessionEnd};
use crate::slow_clients::MisbehaviourReport;

/// Lost requests kept as examples in the summary.
const LOST_EXAMPLES: usize = 10;
/// A ramp step within this fraction of the best step's throughput has reached the knee.
const KNEE_SHORTFALL: f64 = 0.10;
/// The loads, as fractions of the knee's throughput, at which a ramp then measures latency:
/// the figures to size a deployment by (run at half the knee, plan for bursts to 80%).
pub const KNEE_FRACTIONS: [f64; 2] = [0.5, 0.8];

/// A time during which a constant number of users ran, in seconds since the run's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepWindow {
    pub users: usize,
    pub from: f64,
    pub to: f64,
}

impl StepWindow {
    fn contains(&self, at: f64) -> bool {
        (self.from..self.to).contains(&at)
    }

    fn seconds(&self) -> f64 {
        self.to - self.from
    }
}

/// The smallest, the middle and the largest of some values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub p50: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values; sorts them.
    pub fn of(values: &mut [f64]) -> Option<Spread> {
        values.sort_by(f64::total_cmp);
        Some(Spread {
            min: *values.first()?,
            p50: percentile(values, 50.0)?,
            max: *values.last()?,
        })
    }
}

/// Latency percentiles in milliseconds, over the requests the service answered with an
/// execution (200): refusals are immediate and lost requests have no latency worth averaging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(samples: &[&Sample]) -> Latency {
        Latency::of_durations(
            samples
                .iter()
                .filter(|sample| matches!(sample.outcome, Outcome::Executed { .. }))
                .map(|sample| sample.latency),
        )
    }

    fn of_durations(durations: impl Iterator<Item = Duration>) -> Latency {
        let mut millis: Vec<f64> = durations
            .map(|duration| duration.as_secs_f64() * 1000.0)
            .collect();
        millis.sort_by(f64::total_cmp);
        let at = |percent| percentile(&millis, percent).unwrap_or(0.0);
        Latency {
            count: millis.len(),
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            max_ms: millis.last().copied().unwrap_or(0.0),
        }
    }
}

/// When the events of the streamed answers came, over the streams that were answered
/// (lost ones are counted in `lost` with the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StreamFigures {
    /// Streamed requests answered 200, whatever became of them.
    pub streams: usize,
    /// `log` events of the answered streams.
    pub log_events: usize,
    /// From the request's start to its first `log` event.
    pub time_to_first_log: Latency,
    /// From the request's start to its `result` event.
    pub time_to_result: Latency,
}

impl StreamFigures {
    /// `None` when no answer was streamed.
    fn of(samples: &[Sample]) -> Option<StreamFigures> {
        let streams: Vec<_> = samples
            .iter()
            .filter_map(|sample| Some((sample.detail.stream?, &sample.outcome)))
            .collect();
        if streams.is_empty() {
            return None;
        }
        let answered: Vec<_> = streams
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Executed { .. }))
            .map(|(times, _)| times)
            .collect();
        Some(StreamFigures {
            streams: streams.len(),
            log_events: answered.iter().map(|times| times.log_events).sum(),
            time_to_first_log: Latency::of_durations(
                answered.iter().filter_map(|times| times.first_log),
            ),
            time_to_result: Latency::of_durations(answered.iter().filter_map(|times| times.result)),
        })
    }
}

/// What the batches did (`POST /api/batch`): their items, how many succeeded per second of the
/// measuring window, and how long a whole batch took (lost batches are counted in `lost` with
/// the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct BatchFigures {
    /// Batches sent, whatever became of them.
    pub batches: usize,
    /// Batches refused whole (503, 429).
    pub refused: usize,
    /// Items of the answered batches.
    pub items: usize,
    /// Items that succeeded with their expected result.
    pub succeeded_items: usize,
    /// Items answered with an error (not lost: a correct answer of its own).
    pub failed_items: usize,
    /// Succeeded items per second of the measuring window.
    pub successful_items_per_second: f64,
    /// From a batch's request to the end of its answer, over the answered batches.
    pub latency: Latency,
}

impl BatchFigures {
    /// `None` when no batch was sent.
    fn of(samples: &[Sample], window: Option<StepWindow>) -> Option<BatchFigures> {
        let batches: Vec<&Sample> = samples
            .iter()
            .filter(|sample| sample.detail.batch.is_some())
            .collect();
        if batches.is_empty() {
            return None;
        }
        let mut figures = BatchFigures {
            batches: batches.len(),
            latency: Latency::of(&batches),
            ..BatchFigures::default()
        };
        let mut succeeded_in_window = 0;
        for sample in &batches {
            if matches!(sample.outcome, Outcome::Refused { .. }) {
                figures.refused += 1;
            }
            let items = sample.detail.batch.unwrap_or_default();
            figures.items += items.items;
            figures.succeeded_items += items.succeeded;
            figures.failed_items += items.failed;
            if window.is_some_and(|window| window.contains(sample.finished_at)) {
                succeeded_in_window += items.succeeded;
            }
        }
        if let Some(window) = window.filter(|window| window.seconds() > 0.0) {
            figures.successful_items_per_second = succeeded_in_window as f64 / window.seconds();
        }
        Some(figures)
    }
}

/// What the sessions did (`/api/sessions`): how each ended, what their executions answered,
/// how long they took, and whether the sandbox was back at its baseline once the abandoned
/// ones expired.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SessionFigures {
    /// Sessions whose creation was sent, whatever became of them.
    pub sessions: usize,
    pub created: usize,
    /// Creations refused (429, 503) or otherwise not answered with a session.
    pub not_created: usize,
    /// Deleted after all their executions.
    pub deleted: usize,
    /// Left to expire after all their executions.
    pub abandoned: usize,
    /// Created sessions that failed: an answer lost (a wrong count among them) or refused
    /// before their end; each was then abandoned.
    pub failed: usize,
    /// Executions answered with the count the earlier ones' state must give.
    pub executions_ok: usize,
    /// Executions that succeeded with another count: state lost or mixed up (each also lost).
    pub wrong_state: usize,
    /// The sessions' requests refused, by status and kind.
    pub refusals: BTreeMap<String, usize>,
    /// From a session's creation to its last answer, over the sessions that were not cut short.
    pub session_latency: Latency,
    /// Of the answered creations (`201`).
    pub create_latency: Latency,
    /// Of the answered executions.
    pub execute_latency: Latency,
    /// Whether the sandbox's open sessions and charged memory came back to their baseline
    /// after the load, and how soon; `None` when its metrics were not read.
    pub back_to_baseline: Option<BaselineReturn>,
}

impl SessionFigures {
    /// `None` when no session was started.
    fn of(samples: &[Sample], back_to_baseline: Option<BaselineReturn>) -> Option<SessionFigures> {
        let lives: Vec<_> = samples
            .iter()
            .filter_map(|sample| sample.detail.session)
            .collect();
        if lives.is_empty() {
            return None;
        }
        let mut figures = SessionFigures {
            sessions: lives.len(),
            back_to_baseline,
            ..SessionFigures::default()
        };
        for life in &lives {
            match life.end {
                SessionEnd::NotCreated => figures.not_created += 1,
                SessionEnd::Deleted => figures.deleted += 1,
                SessionEnd::Abandoned => figures.abandoned += 1,
                SessionEnd::CutShort => figures.failed += 1,
            }
            figures.executions_ok += life.executions_ok;
            figures.wrong_state += life.wrong_state;
        }
        figures.created = figures.sessions - figures.not_created;
        figures.session_latency = Latency::of_durations(
            lives
                .iter()
                .filter(|life| matches!(life.end, SessionEnd::Deleted | SessionEnd::Abandoned))
                .map(|life| life.duration),
        );
        let of_step = |step: &dyn Fn(&str) -> bool| {
            let samples: Vec<&Sample> = samples.iter().filter(|s| step(s.script)).collect();
            Latency::of(&samples)
        };
        figures.create_latency = of_step(&|script| script == session::CREATE);
        figures.execute_latency =
            of_step(&|script| script != session::CREATE && script != session::DELETE);
        for sample in samples {
            if let Outcome::Refused { .. } = sample.outcome {
                *figures.refusals.entry(sample.outcome.label()).or_default() += 1;
            }
        }
        Some(figures)
    }
}

/// The figures of a set of requests: a whole scenario, or one tenant or user group of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub requests: usize,
    /// 200 with `"status": "success"`, per second of the measuring window.
    pub successful_executions_per_second: f64,
    pub latency: Latency,
    /// Executions answered, by `success` or error kind: correct answers, not losses.
    pub answered_by_kind: BTreeMap<String, usize>,
    /// 503 and 429, by status and kind.
    pub refusals: BTreeMap<String, usize>,
    pub refused: usize,
    /// Other 4xx, by status and kind.
    pub rejections: BTreeMap<String, usize>,
    pub lost: usize,
    pub lost_by_reason: BTreeMap<String, usize>,
}

impl Figures {
    /// The figures of `samples`, throughput counted over `window` (requests outside it still
    /// count in every other figure).
    fn of(samples: &[&Sample], window: Option<StepWindow>) -> Figures {
        let mut figures = Figures {
            requests: samples.len(),
            latency: Latency::of(samples),
            ..Figures::default()
        };
        for sample in samples {
            let count = match &sample.outcome {
                Outcome::Executed { kind } => figures.answered_by_kind.entry(kind.clone()),
                Outcome::Refused { .. } => {
                    figures.refused += 1;
                    figures.refusals.entry(sample.outcome.label())
                }
                Outcome::Rejected { .. } => figures.rejections.entry(sample.outcome.label()),
                Outcome::Lost { reason, .. } => {
                    figures.lost += 1;
                    figures.lost_by_reason.entry(reason.label())
                }
            };
            *count.or_default() += 1;
        }
        if let Some(window) = window.filter(|window| window.seconds() > 0.0) {
            let successes = samples
                .iter()
                .filter(|sample| sample.outcome.is_success() && window.contains(sample.finished_at))
                .count();
            figures.successful_executions_per_second = successes as f64 / window.seconds();
        }
        figures
    }
}

/// Answers to one script: what it should get, and what it got.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScriptAnswers {
    pub expected: String,
    pub answers: BTreeMap<String, usize>,
}

/// One lost request, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LostExample {
    pub at_seconds: f64,
    pub group: String,
    pub script: String,
    pub reason: String,
    /// The answer's body (cut short) or the client's error.
    pub detail: String,
}

/// The focus group alone and beside the rest of the scenario's load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FocusAlone {
    pub alone: Figures,
    pub beside: Figures,
    /// The median beside the load over the median alone.
    pub p50_ratio: Option<f64>,
}

impl FocusAlone {
    fn of(alone: Figures, beside: Figures) -> FocusAlone {
        let p50_ratio = (alone.latency.count > 0 && beside.latency.count > 0)
            .then(|| beside.latency.p50_ms / alone.latency.p50_ms);
        FocusAlone {
            alone,
            beside,
            p50_ratio,
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    pub second: usize,
    pub successes: usize,
    /// Executions answered with an error kind.
    pub failed_scripts: usize,
    pub refused: usize,
    pub rejected: usize,
    pub lost: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The focus group's latency (the polite tenant, the normal users), when there is one.
    pub focus_p50_ms: Option<f64>,
    pub focus_p99_ms: Option<f64>,
}

/// The service's resources over the run: ranges of what was sampled every second.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResourceRanges {
    pub samples: usize,
    /// Scrapes of the sandbox's metrics that failed.
    pub failed_scrapes: usize,
    pub sandbox_resident_bytes: Option<Spread>,
    pub supervisor_resident_bytes: Option<Spread>,
    pub workers_resident_bytes: Option<Spread>,
    pub workers: Option<Spread>,
    pub workers_busy: Option<Spread>,
    pub sandbox_open_fds: Option<Spread>,
    pub ingress_resident_bytes: Option<Spread>,
    pub ingress_open_fds: Option<Spread>,
    /// What the sandbox's processes may use together, as its metrics said (the largest seen).
    pub sandbox_memory_budget_bytes: Option<f64>,
    /// What the ingress may use, when loadtest started it (`INGRESS_MEMORY_MB`).
    pub ingress_memory_budget_bytes: Option<f64>,
    /// Executions the sandbox counted during the run, by outcome (`sandbox_executions_total`).
    pub sandbox_executions_by_outcome: BTreeMap<String, f64>,
    /// Sessions open, as the sandbox said (`sandbox_sessions_open`).
    pub sessions_open: Option<Spread>,
    /// What requests and sessions held of the memory budget
    /// (`sandbox_memory_budget_bytes{share="requests_charged"}`).
    pub requests_charged_bytes: Option<Spread>,
    /// Session events the sandbox counted during the run (`sandbox_session_events_total`).
    pub sandbox_session_events: BTreeMap<String, f64>,
}

impl ResourceRanges {
    fn of(samples: &[ResourceSample], ingress_memory_budget: Option<u64>) -> ResourceRanges {
        let sandbox: Vec<_> = samples.iter().filter_map(|s| s.sandbox.as_ref()).collect();
        let ingress: Vec<_> = samples.iter().filter_map(|s| s.ingress).collect();
        let spread = |values: Vec<f64>| Spread::of(&mut { values });
        // A counter's change from the first sample to the last, by label.
        let counted =
            |counter: fn(&SandboxGauges) -> &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
                let (Some(first), Some(last)) = (sandbox.first(), sandbox.last()) else {
                    return BTreeMap::new();
                };
                let first = counter(first);
                counter(last)
                    .iter()
                    .map(|(label, count)| {
                        let before = first.get(label).copied().unwrap_or(0.0);
                        (label.clone(), count - before)
                    })
                    .filter(|(_, count)| *count > 0.0)
                    .collect()
            };
        ResourceRanges {
            samples: samples.len(),
            failed_scrapes: samples.len() - sandbox.len(),
            sandbox_resident_bytes: spread(
                sandbox
                    .iter()
                    .map(|g| g.supervisor_resident_bytes + g.workers_resident_bytes)
                    .collect(),
            ),
            supervisor_resident_bytes: spread(
                sandbox
                    .iter()
                    .map(|g| g.supervisor_resident_bytes)
                    .collect(),
            ),
            workers_resident_bytes: spread(
                sandbox.iter().map(|g| g.workers_resident_bytes).collect(),
            ),
            workers: spread(sandbox.iter().map(|g| g.workers).collect()),
            workers_busy: spread(sandbox.iter().map(|g| g.workers_busy).collect()),
            sandbox_open_fds: spread(sandbox.iter().map(|g| g.open_fds).collect()),
            ingress_resident_bytes: spread(
                ingress.iter().map(|p| p.resident_bytes as f64).collect(),
            ),
            ingress_open_fds: spread(ingress.iter().map(|p| p.open_fds as f64).collect()),
            sandbox_memory_budget_bytes: sandbox
                .iter()
                .map(|g| g.memory_budget_bytes)
                .filter(|budget| *budget > 0.0)
                .reduce(f64::max),
            ingress_memory_budget_bytes: ingress_memory_budget.map(|bytes| bytes as f64),
            sandbox_executions_by_outcome: counted(|gauges| &gauges.executions_by_outcome),
            sessions_open: spread(sandbox.iter().map(|g| g.sessions_open).collect()),
            requests_charged_bytes: spread(
                sandbox.iter().map(|g| g.requests_charged_bytes).collect(),
            ),
            sandbox_session_events: counted(|gauges| &gauges.session_events),
        }
    }

    /// The processes whose resident memory went above their budget at some sample.
    pub fn over_budget(&self) -> Vec<&'static str> {
        let over = |memory: &Option<Spread>, budget: Option<f64>| matches!((memory, budget), (Some(memory), Some(budget)) if memory.max > budget);
        let mut over_budget = Vec::new();
        if over(
            &self.sandbox_resident_bytes,
            self.sandbox_memory_budget_bytes,
        ) {
            over_budget.push("sandbox");
        }
        if over(
            &self.ingress_resident_bytes,
            self.ingress_memory_budget_bytes,
        ) {
            over_budget.push("ingress");
        }
        over_budget
    }
}

/// One step of a ramp.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RampStep {
    pub users: usize,
    pub seconds: f64,
    pub successful_executions_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub refused_per_second: f64,
    pub lost: usize,
}

/// Where adding users stops adding throughput.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Knee {
    pub users: usize,
    pub successful_executions_per_second: f64,
    pub p50_ms: f64,
    /// False when throughput still grew at the last step: the knee lies beyond the ramp.
    pub reached: bool,
    /// The step after the knee, which adds latency rather than throughput.
    pub next_users: Option<usize>,
    pub next_successful_executions_per_second: Option<f64>,
    pub next_p50_ms: Option<f64>,
}

/// The first step within [`KNEE_SHORTFALL`] of the highest throughput of any step: past it,
/// users add latency rather than throughput. Not `reached` when that is the last step, where
/// throughput may still grow. Measured against the best step rather than the step before, so
/// that one noisy step does not end the ramp early.
pub fn find_knee(steps: &[RampStep]) -> Option<Knee> {
    let best = steps
        .iter()
        .map(|step| step.successful_executions_per_second)
        .fold(0.0, f64::max);
    let index = steps
        .iter()
        .position(|step| step.successful_executions_per_second >= best * (1.0 - KNEE_SHORTFALL))?;
    let (step, next) = (&steps[index], steps.get(index + 1));
    Some(Knee {
        users: step.users,
        successful_executions_per_second: step.successful_executions_per_second,
        p50_ms: step.p50_ms,
        reached: next.is_some(),
        next_users: next.map(|next| next.users),
        next_successful_executions_per_second: next
            .map(|next| next.successful_executions_per_second),
        next_p50_ms: next.map(|next| next.p50_ms),
    })
}

/// A time during which the users' requests were paced to a fraction of the knee's throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PacedWindow {
    pub fraction_of_knee: f64,
    pub requests_per_second: usize,
    pub window: StepWindow,
}

/// Latency under a paced load below the knee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadPoint {
    pub fraction_of_knee: f64,
    /// What the users were held to (goose's throttle).
    pub offered_per_second: usize,
    pub successful_executions_per_second: f64,
    pub latency: Latency,
    pub refused: usize,
    pub lost: usize,
}

impl LoadPoint {
    fn of(samples: &[Sample], paced: &PacedWindow) -> LoadPoint {
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|sample| paced.window.contains(sample.finished_at))
            .collect();
        let figures = Figures::of(&inside, Some(paced.window));
        LoadPoint {
            fraction_of_knee: paced.fraction_of_knee,
            offered_per_second: paced.requests_per_second,
            successful_executions_per_second: figures.successful_executions_per_second,
            latency: figures.latency,
            refused: figures.refused,
            lost: figures.lost,
        }
    }
}

/// The ramp's steps, its knee, and the latency at fractions of the knee.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ramp {
    pub steps: Vec<RampStep>,
    pub knee: Option<Knee>,
    pub below_knee: Vec<LoadPoint>,
}

impl Ramp {
    /// The steps and knee of the ramp whose constant-user `windows` are given; the paced
    /// loads that follow a ramp are added with [`Ramp::with_paced`].
    pub fn of(samples: &[Sample], windows: &[StepWindow]) -> Ramp {
        let steps: Vec<RampStep> = windows
            .iter()
            .filter(|window| window.seconds() > 0.0)
            .map(|window| {
                let inside: Vec<&Sample> = samples
                    .iter()
                    .filter(|sample| window.contains(sample.finished_at))
                    .collect();
                let figures = Figures::of(&inside, Some(*window));
                RampStep {
                    users: window.users,
                    seconds: window.seconds(),
                    successful_executions_per_second: figures.successful_executions_per_second,
                    p50_ms: figures.latency.p50_ms,
                    p99_ms: figures.latency.p99_ms,
                    refused_per_second: figures.refused as f64 / window.seconds(),
                    lost: figures.lost,
                }
            })
            .collect();
        let knee = find_knee(&steps);
        Ramp {
            steps,
            knee,
            below_knee: Vec::new(),
        }
    }

    fn with_paced(mut self, samples: &[Sample], paced: &[PacedWindow]) -> Ramp {
        self.below_knee = paced
            .iter()
            .map(|paced| LoadPoint::of(samples, paced))
            .collect();
        self
    }
}

/// Everything reported about one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub target: String,
    pub users: usize,
    /// Seconds from the run's start to its last answer.
    pub run_seconds: f64,
    /// Seconds during which every user ran: the throughput's denominator.
    pub measured_seconds: f64,
    #[serde(flatten)]
    pub overall: Figures,
    /// Per tenant or user group, when there are several.
    pub groups: BTreeMap<String, Figures>,
    /// The group the scenario is about, reported apart (e.g. `polite`).
    pub focus: Option<String>,
    /// The focus group's figures alone, before the rest of the load, and beside it.
    pub focus_alone: Option<FocusAlone>,
    pub by_script: BTreeMap<String, ScriptAnswers>,
    pub lost_examples: Vec<LostExample>,
    pub resources: ResourceRanges,
    pub slow_clients: Option<BTreeMap<&'static str, MisbehaviourReport>>,
    /// When the streamed answers' events came, when answers were streamed.
    pub stream: Option<StreamFigures>,
    /// What the batches' items did, when batches were sent.
    pub batch: Option<BatchFigures>,
    /// What the sessions did, when sessions were started.
    pub sessions: Option<SessionFigures>,
    pub ramp: Option<Ramp>,
    pub per_second: Vec<Second>,
    pub resource_samples: Vec<ResourceSample>,
}

/// What a scenario's run produced, to be summarised.
pub struct RunRecord<'a> {
    pub scenario: &'static str,
    pub target: &'a str,
    pub users: usize,
    pub samples: &'a [Sample],
    pub expected: BTreeMap<&'static str, &'static str>,
    pub focus: Option<&'static str>,
    pub windows: &'a [StepWindow],
    pub is_ramp: bool,
    /// A ramp's paced loads below its knee, after its steps.
    pub paced: &'a [PacedWindow],
    /// The name the focus group's requests had while it ran alone first, and when.
    pub alone: Option<(&'static str, StepWindow)>,
    pub resource_samples: Vec<ResourceSample>,
    /// The ingress's memory budget, when loadtest started it.
    pub ingress_memory_budget: Option<u64>,
    pub slow_clients: Option<BTreeMap<&'static str, MisbehaviourReport>>,
    /// After `sessions`, whether the sandbox came back to its baseline.
    pub sessions_expired: Option<BaselineReturn>,
}

pub fn summarize(run: RunRecord<'_>) -> ScenarioSummary {
    let all: Vec<&Sample> = run.samples.iter().collect();
    // The throughput window spans every step of constant users, paced ones included.
    let last = run
        .paced
        .last()
        .map(|paced| &paced.window)
        .or(run.windows.last());
    let measured = match (run.windows.first(), last) {
        (Some(first), Some(last)) => Some(StepWindow {
            users: run.users,
            from: first.from,
            to: last.to,
        }),
        _ => None,
    };

    let alone_name = run.alone.map(|(name, _)| name);
    let mut by_group: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    let mut alone_samples: Vec<&Sample> = Vec::new();
    let mut by_script: BTreeMap<String, ScriptAnswers> = BTreeMap::new();
    for sample in &all {
        if Some(sample.group) == alone_name {
            alone_samples.push(sample);
        } else {
            by_group.entry(sample.group).or_default().push(sample);
        }
        let script = by_script
            .entry(sample.script.to_owned())
            .or_insert_with(|| ScriptAnswers {
                expected: run
                    .expected
                    .get(sample.script)
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                answers: BTreeMap::new(),
            });
        *script.answers.entry(sample.outcome.label()).or_default() += 1;
    }
    let focus_alone = match (run.alone, run.focus) {
        (Some((_, window)), Some(focus)) => {
            let beside = Figures::of(by_group.get(focus).map_or(&[][..], Vec::as_slice), measured);
            Some(FocusAlone::of(
                Figures::of(&alone_samples, Some(window)),
                beside,
            ))
        }
        _ => None,
    };
    let groups = if by_group.len() > 1 {
        by_group
            .iter()
            .map(|(group, samples)| (group.to_string(), Figures::of(samples, measured)))
            .collect()
    } else {
        BTreeMap::new()
    };

    let lost_examples = run
        .samples
        .iter()
        .filter_map(|sample| match &sample.outcome {
            Outcome::Lost { reason, detail } => Some(LostExample {
                at_seconds: sample.finished_at,
                group: sample.group.to_owned(),
                script: sample.script.to_owned(),
                reason: reason.label(),
                detail: detail.clone(),
            }),
            _ => None,
        })
        .take(LOST_EXAMPLES)
        .collect();

    ScenarioSummary {
        scenario: run.scenario.to_owned(),
        target: run.target.to_owned(),
        users: run.users,
        run_seconds: run.samples.last().map_or(0.0, |sample| sample.finished_at),
        measured_seconds: measured.map_or(0.0, |window| window.seconds()),
        overall: Figures::of(&all, measured),
        groups,
        focus: run.focus.map(str::to_owned),
        focus_alone,
        by_script,
        lost_examples,
        resources: ResourceRanges::of(&run.resource_samples, run.ingress_memory_budget),
        slow_clients: run.slow_clients,
        stream: StreamFigures::of(run.samples),
        batch: BatchFigures::of(run.samples, measured),
        sessions: SessionFigures::of(run.samples, run.sessions_expired),
        ramp: run
            .is_ramp
            .then(|| Ramp::of(run.samples, run.windows).with_paced(run.samples, run.paced)),
        per_second: per_second(run.samples, run.focus),
        resource_samples: run.resource_samples,
    }
}

fn per_second(samples: &[Sample], focus: Option<&str>) -> Vec<Second> {
    let last_second = samples
        .iter()
        .map(|sample| sample.finished_at as usize)
        .max();
    let Some(last_second) = last_second else {
        return Vec::new();
    };
    let mut seconds: Vec<Second> = (0..=last_second)
        .map(|second| Second {
            second,
            ..Second::default()
        })
        .collect();
    let mut latencies = vec![Vec::new(); seconds.len()];
    let mut focus_latencies = vec![Vec::new(); seconds.len()];
    for sample in samples {
        let index = sample.finished_at as usize;
        let second = &mut seconds[index];
        match &sample.outcome {
            Outcome::Executed { .. } => {
                if sample.outcome.is_success() {
                    second.successes += 1;
                } else {
                    second.failed_scripts += 1;
                }
                let millis = sample.latency.as_secs_f64() * 1000.0;
                latencies[index].push(millis);
                if focus == Some(sample.group) {
                    focus_latencies[index].push(millis);
                }
            }
            Outcome::Refused { .. } => second.refused += 1,
            Outcome::Rejected { .. } => second.rejected += 1,
            Outcome::Lost { .. } => second.lost += 1,
        }
    }
    for ((second, latencies), focus_latencies) in seconds
        .iter_mut()
        .zip(&mut latencies)
        .zip(&mut focus_latencies)
    {
        latencies.sort_by(f64::total_cmp);
        focus_latencies.sort_by(f64::total_cmp);
        second.p50_ms = percentile(latencies, 50.0);
        second.p99_ms = percentile(latencies, 99.0);
        second.focus_p50_ms = percentile(focus_latencies, 50.0);
        second.focus_p99_ms = percentile(focus_latencies, 99.0);
    }
    seconds
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
