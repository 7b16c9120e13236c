//! Goose's side of a run: one goose scenario per user group, one weighted transaction per
//! script, each sending `POST /api/execute`, reading the whole answer and recording what it was.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use goose::test_plan::{TestPlanHistory, TestPlanStepAction};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};

use crate::answer::Outcome;
use crate::error::Error;
use crate::recorder::{Recorder, RunClock};
use crate::scenario::{Callers, OnRefusal, Traffic, UserGroup};
use crate::scripts::Script;
use crate::summary::StepWindow;

const EXECUTE_PATH: &str = "/api/execute";
/// The longest a refused user waits, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// Where goose writes its own reports (it has over-time graphs, but loads its charting script
/// from a CDN, so they stay blank offline; `report.html` beside them is self-contained).
pub const GOOSE_REPORT_HTML: &str = "goose-report.html";
pub const GOOSE_REPORT_JSON: &str = "goose-report.json";

/// Runs the traffic against `base_url` until its load shape ends, recording every answer, and
/// returns the windows in which a constant number of users ran.
pub async fn run(
    traffic: &Traffic,
    base_url: &str,
    request_timeout: Duration,
    recorder: &Recorder,
    clock: &RunClock,
    report_dir: &Path,
) -> Result<Vec<StepWindow>, Error> {
    let mut configuration = GooseConfiguration::parse_args_default::<&str>(&[])?;
    configuration.report_file = [GOOSE_REPORT_HTML, GOOSE_REPORT_JSON]
        .iter()
        .map(|name| report_dir.join(name).display().to_string())
        .collect();
    let client = GooseClientBuilder::new()
        .without_cookies()
        .timeout(request_timeout)
        .gzip(false);
    let mut attack: GooseAttack = *GooseAttack::initialize_with_config(configuration)?
        .set_client_builder_without_cookies(client)?
        .set_default(GooseDefault::Host, base_url)?
        .set_default(GooseDefault::TestPlan, traffic.shape.test_plan().as_str())?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::Quiet, 1)?
        .set_default(GooseDefault::NoPrintMetrics, true)?;
    for group in &traffic.groups {
        attack = attack.register_scenario(goose_scenario(group, recorder)?);
    }
    let metrics = attack.execute().await?;
    Ok(maintained_steps(&metrics.history, clock))
}

fn goose_scenario(group: &UserGroup, recorder: &Recorder) -> Result<Scenario, GooseError> {
    let callers = Arc::new(CallerRotation {
        callers: group.callers.clone(),
        next: AtomicUsize::new(0),
    });
    let mut scenario = Scenario::new(group.name).set_weight(group.users)?;
    for &(script, weight) in &group.scripts {
        let sender = Arc::new(ScriptSender {
            script,
            group: group.name,
            callers: callers.clone(),
            on_refusal: group.on_refusal,
            recorder: recorder.clone(),
        });
        let send: TransactionFunction = Arc::new(move |user| {
            let sender = sender.clone();
            Box::pin(async move { sender.send(user).await })
        });
        scenario = scenario.register_transaction(
            Transaction::new(send)
                .set_name(script.name)
                .set_weight(weight)?,
        );
    }
    Ok(scenario)
}

/// Hands out the group's credentials, one request at a time.
struct CallerRotation {
    callers: Callers,
    next: AtomicUsize,
}

impl CallerRotation {
    /// The key for the next request, if any, and the name its sample is reported under.
    fn next(&self, group: &'static str) -> (&'static str, Option<&str>) {
        match &self.callers {
            Callers::Anonymous => (group, None),
            Callers::Tenant(tenant) => (tenant.id, Some(&tenant.key)),
            Callers::RoundRobin(tenants) => {
                let tenant = &tenants[self.next.fetch_add(1, Ordering::Relaxed) % tenants.len()];
                (tenant.id, Some(&tenant.key))
            }
        }
    }
}

/// One script of one group: what a goose transaction runs.
struct ScriptSender {
    script: Script,
    group: &'static str,
    callers: Arc<CallerRotation>,
    on_refusal: OnRefusal,
    recorder: Recorder,
}

impl ScriptSender {
    async fn send(&self, user: &mut GooseUser) -> TransactionResult {
        let (reported_as, key) = self.callers.next(self.group);
        let mut request = user
            .get_request_builder(&GooseMethod::Post, EXECUTE_PATH)?
            .header(CONTENT_TYPE, "application/json")
            .body(self.script.body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let request = GooseRequest::builder()
            .method(GooseMethod::Post)
            .path(EXECUTE_PATH)
            .name(self.script.name)
            .set_request_builder(request)
            .build();

        let started = Instant::now();
        let mut goose = user.request(request).await?;
        let (outcome, retry_after) = match goose.response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()?.parse().ok())
                    .map(Duration::from_secs);
                match response.bytes().await {
                    Ok(body) => (Outcome::classify(status, &body), retry_after),
                    Err(error) => (transport_failure(&error), None),
                }
            }
            Err(error) => (transport_failure(&error), None),
        };
        self.recorder.record(
            started.elapsed(),
            reported_as,
            self.script.name,
            outcome.clone(),
        );

        match outcome {
            Outcome::Lost { reason, .. } => {
                user.set_failure(&reason.label(), &mut goose.request, None, None)
            }
            // A refusal is the service working as documented: not a failure in goose's report.
            Outcome::Refused { .. } => {
                user.set_success(&mut goose.request)?;
                if self.on_refusal == OnRefusal::WaitRetryAfter {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
                }
                Ok(())
            }
            Outcome::Executed { .. } | Outcome::Rejected { .. } => Ok(()),
        }
    }
}

fn transport_failure(error: &reqwest::Error) -> Outcome {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    Outcome::transport_failure(error.is_timeout(), &detail)
}

/// The test plan's steps that held a constant number of users, in run seconds.
fn maintained_steps(history: &[TestPlanHistory], clock: &RunClock) -> Vec<StepWindow> {
    history
        .windows(2)
        .filter(|pair| matches!(pair[0].action, TestPlanStepAction::Maintaining))
        .map(|pair| StepWindow {
            users: pair[0].users,
            from: clock.seconds_at_unix_ms(pair[0].timestamp.timestamp_millis()),
            to: clock.seconds_at_unix_ms(pair[1].timestamp.timestamp_millis()),
        })
        .collect()
}
