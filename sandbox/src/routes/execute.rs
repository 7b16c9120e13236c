//! `POST /api/execute`: hold the parsed request to the tenant's ceilings, wait for a worker in
//! the tenant's turn, run, count, answer. The request is parsed once, by its contract type
//! ([`contract::request`]); the answers are the public API's ([`contract::api`]): one JSON
//! answer, or, for a client that accepts `text/event-stream` ([`Delivery`]), Server-Sent Events
//! from the moment a worker has the job: its console entries as they are made, then that same
//! answer. Whatever is refused before the job starts is an ordinary error either way, and a
//! client that leaves, streaming or not, has its execution cancelled. How limits, inputs,
//! scripts and a tenant's share are resolved is shared with `POST /api/batch`
//! ([`super::batch`]).

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use contract::{
    api::{
        Delivery, ERROR_EVENT, ErrorField, ExecuteResponse, ExecutionStatus, HEARTBEAT_INTERVAL,
        LOG_EVENT, RESULT_EVENT,
    },
    limits::{MemoryLimit, TimeLimit},
    request::{ExecuteRequest, Language, ScriptSource},
    worker::{HostGrant, Job},
};

use futures_util::Stream;
use service_kit::{Charge, telemetry::traces};
use tracing::Instrument;

use super::json::{ApiJson, charged, charged_json};
use crate::{
    AppState,
    error::ApiError,
    metrics::Metrics,
    scheduler::TenantShare,
    supervisor::{Answer, Caller, LogEntries, PoolError},
    tenant::Tenant,
};

impl From<Answer> for ExecuteResponse {
    fn from(answer: Answer) -> Self {
        let (status, result, error) = match answer.result {
            Ok(result) => (
                ExecutionStatus::Success,
                Some(result),
                ErrorField::None(false),
            ),
            Err(error) => (ExecutionStatus::Error, None, ErrorField::Some(error)),
        };
        let millis = answer.duration.as_secs_f64() * 1000.0;
        Self {
            status,
            result,
            error,
            log: answer.log,
            execution_time: (millis * 1000.0).round() / 1000.0,
            log_truncated: answer.log_truncated,
        }
    }
}

/// Identifies the request's tenant and runs `prepare` for it in `admission`, the request's
/// span for it, which gets the tenant's id and, when the request is refused, the error's kind:
/// how `POST /api/execute` and `POST /api/batch` both begin.
pub(super) fn admit<T>(
    admission: tracing::Span,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    prepare: impl FnOnce(&Tenant) -> Result<T, ApiError>,
) -> Result<(Tenant, T), ApiError> {
    admission
        .in_scope(|| {
            let tenant = Tenant::from_headers(headers, peer)?;
            admission.record("tenant.id", tenant.id.as_str());
            let prepared = prepare(&tenant)?;
            Ok((tenant, prepared))
        })
        .inspect_err(|error: &ApiError| {
            admission.record("refusal.reason", error.kind().as_str());
        })
}

/// `POST /api/execute`.
pub async fn execute(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(request, mut charge): ApiJson<ExecuteRequest>,
) -> Result<Response, ApiError> {
    let delivery = delivery(&headers);
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let admission = traces::span(|| {
        tracing::info_span!(
            "admission",
            tenant.id = tracing::field::Empty,
            refusal.reason = tracing::field::Empty,
        )
    });
    let (tenant, job) = admit(admission, &headers, peer, |tenant| {
        prepare(&state, tenant, request)
    })?;
    let code_bytes = job.source.len() + job.input.as_ref().map_or(0, String::len);
    let record = Record {
        metrics: state.metrics.clone(),
        tenant: tenant.id.clone(),
        request_id: header_text(&headers, "x-request-id"),
        trace_id: service_kit::telemetry::trace_id(&headers),
        queued: Instant::now(),
        code_bytes,
    };

    let share = share(&state, &tenant);
    // Logged and counted if the request is dropped before it is answered: its client left, or
    // the ingress gave up on it (its own timeout). Disarmed once the execution has finished.
    let mut left: Left = scopeguard::guard(
        Departure {
            record,
            admitted: None,
        },
        Departure::record,
    );
    let turn = tenant.turn(state.config.anonymous_workers(), share);
    let queue_wait = traces::span(|| {
        tracing::info_span!(
            "queue_wait",
            tenant.id = tenant.id.as_str(),
            refusal.reason = tracing::field::Empty,
        )
    });
    let permit = match state
        .scheduler
        .acquire(turn, code_bytes)
        .instrument(queue_wait.clone())
        .await
    {
        Ok(permit) => permit,
        Err(rejection) => {
            queue_wait.record("refusal.reason", rejection.reason());
            let Departure { record, .. } = scopeguard::ScopeGuard::into_inner(left);
            state.metrics.rejected(&tenant.id, rejection);
            // Counted in the metrics and logged by the ingress's line for the request: a flood
            // of refusals must not also flood the logs.
            let (request_id, trace_id) = (record.request_id, record.trace_id);
            tracing::debug!(request_id, trace_id, tenant = tenant.id, %rejection, "execution rejected");
            return Err(ApiError::Overloaded(rejection));
        }
    };
    // The answer's bytes, charged before the worker runs so that a finished answer always has
    // room; the body's charge covers the queued script until then.
    if let Err(refusal) = charge.grow(answer_charge(&state.config, delivery)) {
        queue_wait.record("refusal.reason", "memory");
        state.metrics.refused_for_memory(&tenant.id);
        let Departure { record, .. } = scopeguard::ScopeGuard::into_inner(left);
        let (request_id, trace_id) = (record.request_id, record.trace_id);
        tracing::debug!(request_id, trace_id, tenant = tenant.id, %refusal, "execution refused: memory budget");
        return Err(ApiError::OverBudget(refusal));
    }
    drop(queue_wait);
    let queue_wait = left.record.queued.elapsed();
    state.metrics.admitted(&tenant.id, queue_wait);
    left.admitted = Some(Instant::now());

    let caller = Caller {
        tenant: tenant.id.as_str().into(),
        capabilities: tenant.capabilities.clone(),
    };
    match delivery {
        Delivery::Whole => {
            let answer = state.pool.run(job, caller, permit).await;
            let Departure { record, .. } = scopeguard::ScopeGuard::into_inner(left);
            let answer = record.finished(answer, queue_wait)?;
            Ok(charged_json(&ExecuteResponse::from(answer), charge))
        }
        Delivery::Stream => match state.pool.run_streaming(job, caller, permit).await {
            Ok((entries, execution)) => {
                // Dropped unfinished (the client left), this drops `left`, which logs and
                // counts the departure, and `execution`, which cancels it.
                let answer = async move {
                    let answer = execution.answer().await;
                    let Departure { record, .. } = scopeguard::ScopeGuard::into_inner(left);
                    record
                        .finished(answer, queue_wait)
                        .map(ExecuteResponse::from)
                };
                Ok(streamed(entries, answer, charge))
            }
            Err(error) => {
                let Departure { record, .. } = scopeguard::ScopeGuard::into_inner(left);
                Err(record.unavailable(error))
            }
        },
    }
}

/// How the request asks for its answer, from its `Accept`.
pub(super) fn delivery(headers: &HeaderMap) -> Delivery {
    Delivery::from_accept(
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    )
}

/// What an execution's answer is charged to the memory budget, delivered as `delivery`.
pub(super) fn answer_charge(config: &crate::Config, delivery: Delivery) -> usize {
    match delivery {
        Delivery::Whole => config.answer_charge(),
        Delivery::Stream => config.stream_charge(),
    }
}

/// The answer of an execution whose client streams, once a worker has its job: `200
/// text/event-stream` holding `charge` to its end, with a [`LOG_EVENT`] per console entry as
/// the worker publishes it, then the [`RESULT_EVENT`] with what `answer` resolves to, the
/// answer a plain request gets (or, if no worker could finish it, an [`ERROR_EVENT`] with the
/// API's error envelope), then the end. A client that leaves drops `answer` unfinished, which
/// must cancel the execution. `POST /api/execute` and a session's execute share it.
pub(super) fn streamed(
    entries: LogEntries,
    answer: impl Future<Output = Result<ExecuteResponse, ApiError>> + Send + 'static,
    charge: Charge,
) -> Response {
    let response = Sse::new(events(entries, answer))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT_INTERVAL))
        .into_response();
    let (mut parts, body) = response.into_parts();
    // Proxies that buffer answers (nginx, and those that follow its header) pass this one on
    // as it comes.
    parts
        .headers
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Response::from_parts(parts, charged(body, charge))
}

/// The events of [`streamed`].
fn events(
    entries: LogEntries,
    answer: impl Future<Output = Result<ExecuteResponse, ApiError>> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((entries, answer)), |streaming| async move {
        let (mut entries, answer) = streaming?;
        if let Some(entry) = entries.recv().await {
            let event = Event::default().event(LOG_EVENT).data(entry.get());
            return Some((Ok(event), Some((entries, answer))));
        }
        let event = match answer.await {
            Ok(answer) => Event::default()
                .event(RESULT_EVENT)
                .data(serde_json::to_string(&answer).expect("answers serialise")),
            Err(error) => Event::default()
                .event(ERROR_EVENT)
                .data(serde_json::to_string(&error.envelope()).expect("error envelopes serialise")),
        };
        Some((Ok(event), None))
    })
}

/// What is known of an admitted request, for its log line and its count however it ends.
struct Record {
    metrics: Arc<Metrics>,
    tenant: String,
    request_id: Option<String>,
    trace_id: Option<String>,
    queued: Instant,
    code_bytes: usize,
}

impl Record {
    /// Logs that no worker ran the execution; the error to answer.
    fn unavailable(&self, error: PoolError) -> ApiError {
        let (request_id, trace_id) = (self.request_id.as_deref(), self.trace_id.as_deref());
        tracing::error!(request_id, trace_id, tenant = self.tenant, %error, "no worker ran the execution");
        ApiError::Unavailable(error)
    }

    /// Logs and counts a finished execution; the answer, or the error when no worker ran it.
    fn finished(
        &self,
        answer: Result<Answer, PoolError>,
        queue_wait: Duration,
    ) -> Result<Answer, ApiError> {
        let answer = answer.map_err(|error| self.unavailable(error))?;
        let (request_id, trace_id) = (self.request_id.as_deref(), self.trace_id.as_deref());
        let kind = answer.kind();
        self.metrics
            .execution_finished(&self.tenant, kind, answer.duration);
        if kind != "success" || service_kit::telemetry::logs_success(request_id) {
            tracing::info!(
                request_id,
                trace_id,
                tenant = self.tenant,
                outcome = kind,
                duration_ms = answer.duration.as_secs_f64() * 1000.0,
                queue_ms = queue_wait.as_secs_f64() * 1000.0,
                code_bytes = self.code_bytes,
                log_entries = answer.log_entries,
                "execution finished"
            );
        }
        Ok(answer)
    }
}

/// Records a [`Departure`] when dropped, unless disarmed once the answer is ready.
type Left = scopeguard::ScopeGuard<Departure, fn(Departure)>;

/// A request whose answer nobody may read, for its log line and count.
struct Departure {
    record: Record,
    /// When it got a worker, if it did.
    admitted: Option<Instant>,
}

impl Departure {
    /// One line and, for an execution that had started, its count with the outcome
    /// `cancelled` (a request that left while it waited was never an execution).
    fn record(self) {
        let Self { record, admitted } = self;
        let queue_ms = admitted
            .unwrap_or_else(Instant::now)
            .duration_since(record.queued);
        let duration = admitted.map(|admitted| admitted.elapsed());
        if let Some(duration) = duration {
            record
                .metrics
                .execution_finished(&record.tenant, "cancelled", duration);
        }
        tracing::info!(
            request_id = record.request_id,
            trace_id = record.trace_id,
            tenant = record.tenant,
            outcome = "cancelled",
            stage = if admitted.is_some() {
                "running"
            } else {
                "queued"
            },
            duration_ms = duration.map(|duration| duration.as_secs_f64() * 1000.0),
            queue_ms = queue_ms.as_secs_f64() * 1000.0,
            "execution cancelled: the request was dropped before its answer (client gone or \
             the ingress's deadline passed)"
        );
    }
}

/// How much of the workers `tenant` may hold: its ceiling, capped by the server's.
pub(super) fn share(state: &AppState, tenant: &Tenant) -> TenantShare {
    let max_concurrency = state.config.max_concurrency;
    TenantShare {
        max_running: tenant
            .ceilings
            .concurrency
            .map_or(max_concurrency, |ceiling| {
                (ceiling as usize).min(max_concurrency)
            }),
        max_waiting: state.config.queue_capacity,
    }
}

/// Resolves the script and holds the limits to the tenant's ceilings and the server's
/// maximums, whichever is lower.
pub(super) fn prepare(
    state: &AppState,
    tenant: &Tenant,
    request: ExecuteRequest,
) -> Result<Job, ApiError> {
    let (timeout, memory_limit) = limits(state, tenant, request.timeout, request.memory_limit)?;
    let input = checked_input(&state.config, "input", request.input)?;
    let (script_name, source) = script(state, request.source, request.language)?;
    Ok(Job {
        script_name,
        source,
        language: request.language,
        timeout,
        memory_limit,
        input,
        host: HostGrant {
            functions: state.host.offered(&tenant.capabilities),
            max_calls: state.config.max_host_calls,
        },
    })
}

/// The time and memory limits to run with: the requested ones, or the defaults, held to the
/// tenant's ceilings and the server's maximums.
pub(super) fn limits(
    state: &AppState,
    tenant: &Tenant,
    timeout: Option<TimeLimit>,
    memory_limit: Option<MemoryLimit>,
) -> Result<(std::time::Duration, u64), ApiError> {
    let config = &state.config;
    let timeout = Ceiling {
        field: "timeoutMs",
        server: config.max_timeout,
        tenant: tenant.ceilings.timeout.map(TimeLimit::duration),
        shown: |duration| duration.as_millis() as u64,
    }
    .check(
        timeout.map(TimeLimit::duration),
        config.default_timeout,
        tenant,
    )?;
    let memory_limit = Ceiling {
        field: "memoryLimitMb",
        server: mebibytes(config.max_memory_limit_mb),
        tenant: tenant.ceilings.memory.map(MemoryLimit::bytes),
        shown: |bytes| bytes >> 20,
    }
    .check(
        memory_limit.map(MemoryLimit::bytes),
        mebibytes(config.default_memory_limit_mb),
        tenant,
    )?;
    Ok((timeout, memory_limit))
}

/// An input as the job carries it, once it is known to be within `MAX_INPUT_BYTES`; `field`
/// names it in the refusal (`input`, `inputs[3]`).
pub(super) fn checked_input(
    config: &crate::Config,
    field: impl std::fmt::Display,
    input: Option<Box<serde_json::value::RawValue>>,
) -> Result<Option<String>, ApiError> {
    match input {
        Some(input) if input.get().len() > config.max_input_bytes => {
            Err(ApiError::Invalid(format!(
                "{field}: {} bytes of JSON is more than the limit of {}",
                input.get().len(),
                config.max_input_bytes
            )))
        }
        input => Ok(input.map(|input| String::from(Box::<str>::from(input)))),
    }
}

/// The script's name and source: the code, or the bundled example `file` names.
pub(super) fn script(
    state: &AppState,
    source: ScriptSource,
    language: Language,
) -> Result<(String, String), ApiError> {
    match source {
        // Stack traces name the file in the language the client wrote it in.
        ScriptSource::Code(code) => match language {
            Language::JavaScript => Ok(("script.js".to_owned(), code)),
            Language::TypeScript => Ok(("script.ts".to_owned(), code)),
        },
        ScriptSource::File(file) => {
            let example = state
                .examples
                .get(&file)
                .ok_or(ApiError::UnknownExample(file))?;
            Ok((example.name.clone(), example.source.to_string()))
        }
        // The ingress loads `url` sources and sends their text as `code`, so a `url` here means
        // the sandbox was called directly; it never loads one itself.
        ScriptSource::Url { .. } => Err(ApiError::Invalid(
            "url: scripts from URLs are loaded by the ingress, which sends their text as \
             `code`; this sandbox was called directly: send `code` or `file`"
                .to_owned(),
        )),
    }
}

/// A limit of the configuration, in MiB, in bytes.
fn mebibytes(mebibytes: usize) -> u64 {
    (mebibytes as u64).saturating_mul(1024 * 1024)
}

/// The bounds of one limit a request may set: the server's maximum, or the tenant's ceiling
/// when that is lower, compared in the limit's own unit (a duration, bytes).
struct Ceiling<T> {
    /// The request's field, for messages.
    field: &'static str,
    server: T,
    tenant: Option<T>,
    /// A value as the field writes it (milliseconds, MiB), for messages.
    shown: fn(T) -> u64,
}

impl<T: Copy + Ord> Ceiling<T> {
    /// The value to run with: `requested`, or `default` (lowered to the ceiling) when the
    /// request names none; a request over the ceiling is refused with a message naming it.
    fn check(&self, requested: Option<T>, default: T, tenant: &Tenant) -> Result<T, ApiError> {
        let (ceiling, set_by_tenant) = match self.tenant {
            Some(ceiling) if ceiling < self.server => (ceiling, true),
            _ => (self.server, false),
        };
        let (field, shown) = (self.field, self.shown);
        match requested {
            None => Ok(default.min(ceiling)),
            Some(value) if value <= ceiling => Ok(value),
            Some(value) if set_by_tenant => Err(ApiError::Invalid(format!(
                "{field}: {} exceeds {}'s ceiling of {}",
                shown(value),
                tenant.described(),
                shown(ceiling)
            ))),
            Some(_) => Err(ApiError::Invalid(format!(
                "{field}: must be at most {}",
                shown(ceiling)
            ))),
        }
    }
}

pub(super) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
