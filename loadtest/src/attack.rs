//! Goose's side of a run: one goose scenario per user group, whose users send
//! `POST /api/execute` (or `POST /api/batch`, or a session's requests from its creation to its
//! end) with the group's scripts, read each whole answer (a streamed one event by event, as it
//! comes) and record what it was.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use goose::test_plan::{TestPlanHistory, TestPlanStepAction};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};

use crate::answer::{LostReason, Outcome};
use crate::batch::BatchItems;
use crate::error::Error;
use crate::recorder::{Detail, Recorder, RunClock};
use crate::scenario::{Callers, OnRefusal, Traffic, UserGroup};
use crate::scripts::Script;
use crate::session::{self, SessionEnd, SessionLife};
use crate::stream::{EVENT_STREAM, StreamRead, StreamTimes};
use crate::summary::StepWindow;

const EXECUTE_PATH: &str = "/api/execute";
const BATCH_PATH: &str = "/api/batch";
const SESSIONS_PATH: &str = "/api/sessions";
/// The longest a refused user waits, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// A user's pause after a lost request, so a dead service is not hammered in a tight loop.
const PAUSE_AFTER_LOSS: Duration = Duration::from_millis(100);
/// How long a user keeps an idle connection for its next request: well below the servers' own
/// idle timeout (`HEADER_READ_TIMEOUT_MS`, 10 s by default), so the client is always the one
/// that hangs up and never sends on a connection the server is closing at that moment.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Where goose writes its own reports (it has over-time graphs, but loads its charting script
/// from a CDN, so they stay blank offline; `report.html` beside them is self-contained).
pub const GOOSE_REPORT_HTML: &str = "goose-report.html";
pub const GOOSE_REPORT_JSON: &str = "goose-report.json";

/// Keeps goose's console to its errors: it warns about every failed request, which loadtest
/// counts and reports instead. Goose installs its own console logger only when none is set,
/// so this must run before the first attack.
pub fn keep_goose_console_to_errors() {
    if log::set_logger(&GooseErrorsOnly).is_ok() {
        log::set_max_level(log::LevelFilter::Error);
    }
}

struct GooseErrorsOnly;

impl log::Log for GooseErrorsOnly {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Error
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("goose: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Where and how the attacks of one scenario run: every attack of a scenario sends to the same
/// stack and records into the same recorder, on the same clock.
pub struct Attacker<'a> {
    pub base_url: &'a str,
    pub request_timeout: Duration,
    pub recorder: &'a Recorder,
    pub clock: &'a RunClock,
    pub report_dir: &'a Path,
}

impl Attacker<'_> {
    /// Runs the traffic until its load shape ends, recording every answer, and returns the
    /// windows in which a constant number of users ran. Goose's own reports are named after
    /// `tag`, when given, so that later attacks do not overwrite earlier ones.
    pub async fn run(
        &self,
        traffic: &Traffic,
        tag: Option<&str>,
    ) -> Result<Vec<StepWindow>, Error> {
        let mut configuration = GooseConfiguration::parse_args_default::<&str>(&[])?;
        configuration.report_file = [GOOSE_REPORT_HTML, GOOSE_REPORT_JSON]
            .iter()
            .map(|name| {
                let name = match tag {
                    Some(tag) => name.replacen("report", &format!("report-{tag}"), 1),
                    None => (*name).to_owned(),
                };
                self.report_dir.join(name).display().to_string()
            })
            .collect();
        let mut attack: GooseAttack = *GooseAttack::initialize_with_config(configuration)?
            .set_default(GooseDefault::Host, self.base_url)?
            .set_default(GooseDefault::TestPlan, traffic.shape.test_plan().as_str())?
            .set_default(GooseDefault::NoTelnet, true)?
            .set_default(GooseDefault::Quiet, 1)?
            .set_default(GooseDefault::NoPrintMetrics, true)?;
        for group in &traffic.groups {
            attack = attack.register_scenario(goose_scenario(
                group,
                self.recorder,
                self.request_timeout,
            )?);
        }
        let metrics = attack.execute().await?;
        Ok(maintained_steps(&metrics.history, self.clock))
    }
}

/// Spaces the requests of a group's users evenly at its rate: request `n` starts no earlier than
/// `n / rate` after the first. Unlike goose's throttle, which hands out its tokens in batches
/// every 10 ms and keeps the wait inside the request it times, the wait here comes before the
/// clock starts, so latency is the service's alone.
pub struct Pacer {
    /// When the first request asked for its slot.
    start: std::sync::OnceLock<tokio::time::Instant>,
    interval: Duration,
    next: AtomicU64,
}

impl Pacer {
    fn new(rate: usize) -> Pacer {
        Pacer {
            start: std::sync::OnceLock::new(),
            interval: Duration::from_secs(1) / rate.max(1) as u32,
            next: AtomicU64::new(0),
        }
    }

    /// Waits for the next free slot. A user that falls behind takes its slot at once.
    async fn wait(&self) {
        let start = *self.start.get_or_init(tokio::time::Instant::now);
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        let at = start + self.interval * u32::try_from(slot).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at).await;
    }
}

fn goose_scenario(
    group: &UserGroup,
    recorder: &Recorder,
    request_timeout: Duration,
) -> Result<Scenario, GooseError> {
    // Each user its own HTTP client, as separate clients are, with loadtest's timeouts, and
    // for a group spread over addresses, the next of them.
    let addresses = group.addresses;
    let next_address = Arc::new(AtomicUsize::new(0));
    let own_client: TransactionFunction = Arc::new(move |user| {
        let next_address = next_address.clone();
        Box::pin(async move {
            let mut client = reqwest::Client::builder()
                .timeout(request_timeout)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT);
            if let Some(count) = addresses {
                let host = next_address.fetch_add(1, Ordering::Relaxed) % usize::from(count.max(1));
                client = client.local_address(loopback_address(host));
            }
            user.set_client_builder(client).await.map_err(Box::new)
        })
    });
    let sender = Arc::new(GroupSender {
        group: group.name,
        scripts: group.scripts.clone(),
        total_weight: group.scripts.iter().map(|(_, weight)| weight).sum(),
        callers: group.callers.clone(),
        next_caller: AtomicUsize::new(0),
        on_refusal: group.on_refusal,
        recorder: recorder.clone(),
        pacer: group.pace.map(Pacer::new),
        sessions_started: AtomicUsize::new(0),
    });
    let send: TransactionFunction = Arc::new(move |user| {
        let sender = sender.clone();
        Box::pin(async move { sender.send(user).await })
    });
    Ok(Scenario::new(group.name)
        .set_weight(group.users)?
        .register_transaction(
            Transaction::new(own_client)
                .set_name("http client")
                .set_on_start(),
        )
        .register_transaction(Transaction::new(send).set_name("execute")))
}

/// The `n`-th address users spread over addresses send from: 127.0.0.2, 127.0.0.3, ...
/// (127.0.0.1 is left to everything else), all on the loopback interface.
pub fn loopback_address(n: usize) -> std::net::IpAddr {
    let n = u32::try_from(n).unwrap_or(u32::MAX).min(0x00ff_fffd);
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 2)) + n).into()
}

/// What every user of one group runs: a script picked at random by weight, so users do not
/// march through the scripts in step (goose's weighted transactions run in the same order for
/// every user).
struct GroupSender {
    group: &'static str,
    scripts: Vec<(Script, usize)>,
    total_weight: usize,
    callers: Callers,
    next_caller: AtomicUsize,
    on_refusal: OnRefusal,
    recorder: Recorder,
    pacer: Option<Pacer>,
    /// Sessions the group's users have started, to pick those abandoned.
    sessions_started: AtomicUsize,
}

impl GroupSender {
    fn pick_script(&self) -> Script {
        // Without randomness, every user takes the first script: still a valid load.
        let mut ticket = getrandom::u32().unwrap_or(0) as usize % self.total_weight.max(1);
        for &(script, weight) in &self.scripts {
            if ticket < weight {
                return script;
            }
            ticket -= weight;
        }
        self.scripts[0].0
    }

    /// The key for the next request, if any, and the name its sample is reported under.
    fn next_caller(&self) -> (&'static str, Option<&str>) {
        match &self.callers {
            Callers::Anonymous => (self.group, None),
            // Under the group's name, which is the tenant's id except while the group runs
            // alone first under another name.
            Callers::Tenant(tenant) => (self.group, Some(&tenant.key)),
            Callers::RoundRobin(tenants) => {
                let next = self.next_caller.fetch_add(1, Ordering::Relaxed);
                let tenant = &tenants[next % tenants.len()];
                (tenant.id, Some(&tenant.key))
            }
        }
    }

    async fn send(&self, user: &mut GooseUser) -> TransactionResult {
        let script = self.pick_script();
        if script.in_session {
            return self.run_session(user, script).await;
        }
        let (reported_as, key) = self.next_caller();
        let path = match script.batch_items {
            Some(_) => BATCH_PATH,
            None => EXECUTE_PATH,
        };
        let mut request = user
            .get_request_builder(&GooseMethod::Post, path)?
            .header(CONTENT_TYPE, "application/json")
            .body(script.body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if script.streamed {
            request = request.header(ACCEPT, EVENT_STREAM);
        }
        let request = GooseRequest::builder()
            .method(GooseMethod::Post)
            .path(path)
            .name(script.name)
            .set_request_builder(request)
            .build();

        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        let started = Instant::now();
        let mut goose = user.request(request).await?;
        // A batch not answered (refused, lost) is still a batch, with no items answered.
        let mut batch = script.batch_items.map(|_| BatchItems::default());
        let (outcome, retry_after, stream) = match goose.response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(&response);
                if script.streamed && status == 200 {
                    let (outcome, times) = read_stream(response, script, started).await;
                    (outcome, None, Some(times))
                } else {
                    match response.bytes().await {
                        Ok(body) => {
                            let outcome = match script.batch_items {
                                Some(items) => {
                                    let (outcome, items) =
                                        crate::batch::judge(status, &body, items);
                                    batch = items.or(batch);
                                    outcome
                                }
                                None => Outcome::judge(status, &body, script.result),
                            };
                            (outcome, retry_after, None)
                        }
                        Err(error) => (transport_failure(&error), None, None),
                    }
                }
            }
            Err(error) => (transport_failure(&error), None, None),
        };
        let detail = Detail {
            stream,
            batch,
            session: None,
        };
        self.record(started, reported_as, script.name, &outcome, detail);
        self.settle(user, outcome, retry_after, &mut goose.request)
            .await
    }

    /// Records what a request got, timed from `started`.
    fn record(
        &self,
        started: Instant,
        reported_as: &'static str,
        name: &'static str,
        outcome: &Outcome,
        detail: Detail,
    ) {
        self.recorder.record(
            started.elapsed(),
            reported_as,
            name,
            outcome.clone(),
            detail,
        );
    }

    /// Tells goose what became of a request, and after a refusal waits as the group does.
    async fn settle(
        &self,
        user: &mut GooseUser,
        outcome: Outcome,
        retry_after: Option<Duration>,
        request: &mut GooseRequestMetric,
    ) -> TransactionResult {
        match outcome {
            Outcome::Lost { reason, .. } => {
                tokio::time::sleep(PAUSE_AFTER_LOSS).await;
                user.set_failure(&reason.label(), request, None, None)
            }
            // A refusal is the service working as documented: not a failure in goose's report.
            Outcome::Refused { .. } => {
                user.set_success(request)?;
                if self.on_refusal == OnRefusal::WaitRetryAfter {
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
                }
                Ok(())
            }
            Outcome::Executed { .. } | Outcome::Rejected { .. } => Ok(()),
        }
    }

    /// One session's life: created, [`session::EXECUTIONS`] runs of `script` in it, each
    /// checked against the count the earlier ones leave, then deleted or, one in two,
    /// abandoned to expire. Each request is recorded; the last also carries the session's life.
    /// A session whose creation is refused, or whose request is lost or refused, ends there
    /// (abandoned, when it exists).
    async fn run_session(&self, user: &mut GooseUser, script: Script) -> TransactionResult {
        let (reported_as, key) = self.next_caller();
        let abandon = session::abandons(self.sessions_started.fetch_add(1, Ordering::Relaxed));
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        let started = Instant::now();
        let mut life = SessionLife {
            end: SessionEnd::NotCreated,
            executions_ok: 0,
            wrong_state: 0,
            duration: Duration::ZERO,
        };
        let last = |mut life: SessionLife, end| {
            life.end = end;
            life.duration = started.elapsed();
            Detail {
                session: Some(life),
                ..Detail::default()
            }
        };

        let body = session::create_body();
        let mut created = self
            .exchange(
                user,
                GooseMethod::Post,
                SESSIONS_PATH,
                session::CREATE,
                Some(body),
                key,
            )
            .await?;
        let (outcome, id) = match created.answer() {
            Ok((status, body)) => session::judge_created(status, body),
            Err(lost) => (lost, None),
        };
        let Some(id) = id else {
            let detail = last(life, SessionEnd::NotCreated);
            self.record(
                created.started,
                reported_as,
                session::CREATE,
                &outcome,
                detail,
            );
            return self
                .settle(user, outcome, created.retry_after, &mut created.request)
                .await;
        };
        self.record(
            created.started,
            reported_as,
            session::CREATE,
            &outcome,
            Detail::default(),
        );

        let run_path = format!("{SESSIONS_PATH}/{id}/execute");
        for n in 1..=session::EXECUTIONS {
            let mut run = self
                .exchange(
                    user,
                    GooseMethod::Post,
                    &run_path,
                    script.name,
                    Some(script.body.to_owned()),
                    key,
                )
                .await?;
            let (outcome, wrong_state) = match run.answer() {
                Ok((status, body)) => session::judge_run(status, body, n),
                Err(lost) => (lost, false),
            };
            life.wrong_state += usize::from(wrong_state);
            let end = if !outcome.is_success() {
                Some(SessionEnd::CutShort)
            } else {
                life.executions_ok += 1;
                (n == session::EXECUTIONS && abandon).then_some(SessionEnd::Abandoned)
            };
            let detail = end.map_or_else(Detail::default, |end| last(life, end));
            self.record(run.started, reported_as, script.name, &outcome, detail);
            self.settle(user, outcome, run.retry_after, &mut run.request)
                .await?;
            if end.is_some() {
                return Ok(());
            }
        }

        let session_path = format!("{SESSIONS_PATH}/{id}");
        let mut deleted = self
            .exchange(
                user,
                GooseMethod::Delete,
                &session_path,
                session::DELETE,
                None,
                key,
            )
            .await?;
        let outcome = match deleted.answer() {
            Ok((status, body)) => session::judge_deleted(status, body),
            Err(lost) => lost,
        };
        let end = match outcome {
            Outcome::Executed { .. } => SessionEnd::Deleted,
            _ => SessionEnd::CutShort,
        };
        self.record(
            deleted.started,
            reported_as,
            session::DELETE,
            &outcome,
            last(life, end),
        );
        self.settle(user, outcome, deleted.retry_after, &mut deleted.request)
            .await
    }

    /// Sends one request named `name` and reads its whole answer.
    async fn exchange(
        &self,
        user: &mut GooseUser,
        method: GooseMethod,
        path: &str,
        name: &'static str,
        body: Option<String>,
        key: Option<&str>,
    ) -> Result<Exchange, Box<TransactionError>> {
        let mut request = user.get_request_builder(&method, path)?;
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let request = GooseRequest::builder()
            .method(method)
            .path(path)
            .name(name)
            .set_request_builder(request)
            .build();
        let started = Instant::now();
        let goose = user.request(request).await?;
        let (answer, retry_after) = match goose.response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = retry_after(&response);
                match response.bytes().await {
                    Ok(body) => (Ok((status, body.to_vec())), retry_after),
                    Err(error) => (Err(transport_failure(&error)), None),
                }
            }
            Err(error) => (Err(transport_failure(&error)), None),
        };
        Ok(Exchange {
            request: goose.request,
            started,
            answer,
            retry_after,
        })
    }
}

/// One request and its whole answer, or the transport failure in its place.
struct Exchange {
    request: GooseRequestMetric,
    started: Instant,
    /// The status and body.
    answer: Result<(u16, Vec<u8>), Outcome>,
    retry_after: Option<Duration>,
}

impl Exchange {
    /// The status and body, or the outcome of the transport failure.
    fn answer(&self) -> Result<(u16, &[u8]), Outcome> {
        match &self.answer {
            Ok((status, body)) => Ok((*status, body)),
            Err(lost) => Err(lost.clone()),
        }
    }
}

/// The answer's `Retry-After`, in whole seconds.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .map(Duration::from_secs)
}

/// Reads a 200 to a streamed request event by event until it ends, timing the events from
/// `started`. A 200 that is not an event stream is lost as malformed.
async fn read_stream(
    mut response: reqwest::Response,
    script: Script,
    started: Instant,
) -> (Outcome, StreamTimes) {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !content_type.starts_with(EVENT_STREAM) {
        let body = response.bytes().await.unwrap_or_default();
        let outcome = Outcome::Lost {
            reason: LostReason::Malformed { status: 200 },
            detail: format!(
                "Content-Type {content_type:?}, not a stream: {}",
                crate::answer::example_body(&body)
            ),
        };
        return (outcome, StreamTimes::default());
    }
    let mut stream = StreamRead::default();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => stream.push(&chunk, started.elapsed()),
            Ok(None) => return (stream.judge(script.result), stream.times),
            Err(error) => return (transport_failure(&error), stream.times),
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
