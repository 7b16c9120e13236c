//! `POST /api/batch`: one script run over many inputs, each input an execution of its own (a
//! fresh runtime, its own `input`, the batch's limits), answered together in input order or,
//! with `Accept: application/x-ndjson`, one line per item as each finishes.
//!
//! A batch is bounded like the requests it replaces, and is no way around a limit:
//!
//! - **Turns.** Every item takes its own turn in the scheduler, as a request would, and a batch
//!   has at most its tenant's share of items waiting or running at once: it never holds more
//!   workers than the tenant's `max_concurrency`, and between two of its items the other
//!   tenants get their turns.
//! - **Items and bytes.** At most `MAX_BATCH_ITEMS` inputs (or the tenant's ceiling), each
//!   within `MAX_INPUT_BYTES`, all within the body's `MAX_BODY_BYTES`; the answers together
//!   within `MAX_BATCH_ANSWER_BYTES`: an answer that does not fit is replaced by a short
//!   `output_limit` one. The batch's answers are charged to the memory budget before the first
//!   item runs, and each running item is charged as an execution is.
//! - **Time.** The batch ends within `MAX_TIMEOUT_MS` of its arrival (and the kill grace):
//!   each item runs under its own time limit or what is left of the batch's, whichever is
//!   shorter, and an item that has not started by then answers `timeout` without running.
//! - **Refusals.** The first item is admitted before anything is answered: a batch the service
//!   cannot start gets the 503 an execution would. Later items that are refused a worker or
//!   memory wait for it, within the batch's time.
//!
//! Items of the same batch are handed to a prepared worker that ran one before, where there is
//! one (see [`crate::supervisor::WorkerPool::run_batch_item`]), whose bytecode cache holds the
//! script: it is compiled once per worker the batch uses.

use std::{
    future::Future,
    hash::{Hash, Hasher},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use axum::{
    Extension,
    body::{Body, Bytes},
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use contract::{
    api::{BatchLine, ErrorField, ExecuteResponse, ExecutionStatus, NDJSON, accepts_ndjson},
    outcome::{ErrorKind, ScriptError},
    request::BatchRequest,
    worker::{HostGrant, Job},
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::value::RawValue;
use service_kit::{Charge, telemetry::traces};
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    execute::{admit, checked_input, header_text, limits, script, share},
    json::{ApiJson, charged_json_bytes},
};
use crate::{
    AppState,
    error::ApiError,
    scheduler::{Permit, TenantShare},
    supervisor::{Caller, PoolError, ScriptKey},
    tenant::Tenant,
};

/// The shortest pause before an item that was refused a worker or memory asks again: a
/// refusal's estimate may be a moment, and asking in a loop would only burn the scheduler.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `POST /api/batch`.
pub async fn batch(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(request, mut charge): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let streamed = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|accept| accept.to_str().ok())
        .any(accepts_ndjson);
    let admission = traces::span(|| {
        tracing::info_span!(
            "admission",
            tenant.id = tracing::field::Empty,
            batch.items = request.inputs.len(),
            refusal.reason = tracing::field::Empty,
        )
    });
    let (tenant, (job, inputs)) = admit(admission, &headers, peer, |tenant| {
        let (job, inputs) = prepare(&state, tenant, request)?;
        if let Err(refusal) = charge.grow(state.config.batch_charge(inputs.len())) {
            state.metrics.refused_for_memory(&tenant.id);
            return Err(ApiError::OverBudget(refusal));
        }
        Ok((job, inputs))
    })?;
    let mut script = std::collections::hash_map::DefaultHasher::new();
    (&job.script_name, &job.source, job.language).hash(&mut script);
    let run = Arc::new(BatchRun {
        share: share(&state, &tenant),
        caller: Caller {
            tenant: tenant.id.as_str().into(),
            capabilities: tenant.capabilities.clone(),
        },
        script: script.finish(),
        deadline: arrived + state.config.max_timeout,
        request_id: header_text(&headers, "x-request-id"),
        trace_id: service_kit::telemetry::trace_id(&headers),
        span: tracing::Span::current(),
        state,
        tenant,
        job,
        inputs,
    });
    let mut items = Items::start(run, charge).await?;
    if streamed {
        let lines = futures_util::stream::unfold(items, |mut items| async move {
            let (_, mut line) = items.next(encode_line).await?;
            line.push(b'\n');
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), items))
        });
        let mut response = Body::from_stream(lines).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        return Ok(response);
    }
    let mut results = vec![Vec::new(); items.run.inputs.len()];
    while let Some((index, answer)) = items.next(encode_answer).await {
        results[index] = answer;
    }
    Ok(charged_json_bytes(document(results), items.into_charge()))
}

/// The JSON of a [`contract::api::BatchResponse`] with `results`, each an answer written by
/// [`encode_answer`]: assembled around them rather than parsed and written again.
fn document(results: Vec<Vec<u8>>) -> Vec<u8> {
    let length = results.iter().map(|answer| answer.len() + 1).sum::<usize>() + 16;
    let mut body = Vec::with_capacity(length);
    body.extend_from_slice(b"{\"results\":[");
    for (index, answer) in results.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&answer);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Holds the batch's limits to the tenant's ceilings and the server's maximums, as an
/// execution's, and its items to their count and size: the job every item runs (with no
/// input yet), and each item's input.
fn prepare(
    state: &AppState,
    tenant: &Tenant,
    request: BatchRequest,
) -> Result<(Job, Vec<Option<String>>), ApiError> {
    let config = &state.config;
    let (timeout, memory_limit) = limits(state, tenant, request.timeout, request.memory_limit)?;
    let items = request.inputs.len();
    match tenant.ceilings.batch_items.map(|ceiling| ceiling as usize) {
        Some(ceiling) if ceiling < config.max_batch_items && items > ceiling => {
            return Err(ApiError::Invalid(format!(
                "inputs: {items} items exceed {}'s ceiling of {ceiling}",
                tenant.described()
            )));
        }
        _ if items > config.max_batch_items => {
            return Err(ApiError::Invalid(format!(
                "inputs: {items} items are more than the limit of {}",
                config.max_batch_items
            )));
        }
        _ => {}
    }
    let inputs = request
        .inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| checked_input(config, format_args!("inputs[{index}]"), input))
        .collect::<Result<Vec<_>, _>>()?;
    let (script_name, source) = script(state, request.source, request.language)?;
    let job = Job {
        script_name,
        source,
        language: request.language,
        timeout,
        memory_limit,
        input: None,
        host: HostGrant {
            functions: state.host.offered(&tenant.capabilities),
            max_calls: config.max_host_calls,
        },
    };
    Ok((job, inputs))
}

/// Everything a batch's items share.
struct BatchRun {
    state: AppState,
    tenant: Tenant,
    share: TenantShare,
    caller: Caller,
    /// What every item runs; each gets its own input and what is left of the batch's time.
    job: Job,
    inputs: Vec<Option<String>>,
    /// The script's key, to find the worker that has it compiled.
    script: ScriptKey,
    /// When the batch ends: `MAX_TIMEOUT_MS` after its arrival.
    deadline: Instant,
    request_id: Option<String>,
    trace_id: Option<String>,
    /// The batch request's span: each item's spans go under it, also those of the items a
    /// streamed answer runs after the handler has returned.
    span: tracing::Span,
}

/// A worker's turn and the memory for one item's execution.
type Admission = (Permit, Charge);

/// An item that has finished or will not run: its answer, and the charge for it until the
/// answer is kept.
struct Finished {
    index: usize,
    answer: ExecuteResponse,
    /// The item's execution charge, held until its answer has been encoded.
    _charge: Option<Charge>,
}

impl BatchRun {
    /// Bytes of item `index`'s job: the script and its input.
    fn job_bytes(&self, index: usize) -> usize {
        self.job.source.len() + self.inputs[index].as_ref().map_or(0, String::len)
    }

    /// Waits for a worker in the tenant's turn, then charges the item's execution: as
    /// `POST /api/execute` admits a request, with its refusals.
    async fn admit(&self, index: usize) -> Result<Admission, ApiError> {
        let state = &self.state;
        let queued = Instant::now();
        let bytes = self.job_bytes(index);
        let turn = self
            .tenant
            .turn(state.config.anonymous_workers(), self.share);
        let queue_wait = traces::span(|| {
            tracing::info_span!(
                "queue_wait",
                tenant.id = self.tenant.id.as_str(),
                batch.index = index,
                refusal.reason = tracing::field::Empty,
            )
        });
        let refused = |reason: &str| queue_wait.record("refusal.reason", reason);
        let permit = state
            .scheduler
            .acquire(turn, bytes)
            .instrument(queue_wait.clone())
            .await
            .map_err(|rejection| {
                refused(rejection.reason());
                state.metrics.rejected(&self.tenant.id, rejection);
                ApiError::Overloaded(rejection)
            })?;
        let charge = state
            .memory
            .charge(state.config.batch_item_charge(bytes))
            .map_err(|refusal| {
                refused("memory");
                state.metrics.refused_for_memory(&self.tenant.id);
                ApiError::OverBudget(refusal)
            })?;
        state.metrics.admitted(&self.tenant.id, queued.elapsed());
        Ok((permit, charge))
    }

    /// Admits item `index` as [`BatchRun::admit`] does, trying again after each refusal's
    /// `Retry-After` while the batch has time; `None` once it has none left.
    async fn admit_in_time(&self, index: usize) -> Option<Admission> {
        loop {
            let refusal = match tokio::time::timeout_at(self.deadline, self.admit(index)).await {
                Ok(Ok(admission)) => return Some(admission),
                Ok(Err(refusal)) => refusal,
                Err(_) => return None,
            };
            let pause = match &refusal {
                ApiError::Overloaded(rejection) => rejection.retry_after(),
                _ => Duration::from_secs(1),
            }
            .max(MIN_RETRY_PAUSE);
            if Instant::now() + pause >= self.deadline {
                return None;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Runs item `index`, admitted already or admitted now, within the batch's time.
    async fn run_item(self: Arc<Self>, index: usize, admitted: Option<Admission>) -> Finished {
        let admitted = match admitted {
            Some(admission) => Some(admission),
            None => self.admit_in_time(index).await,
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        let Some((permit, charge)) = admitted.filter(|_| !left.is_zero()) else {
            return Finished {
                index,
                answer: self.not_run(),
                _charge: None,
            };
        };
        let mut job = self.job.clone();
        job.input = self.inputs[index].clone();
        job.timeout = job.timeout.min(left);
        let state = &self.state;
        // Counted as `cancelled` if the batch is dropped while the item runs (its client left),
        // as an execution is.
        let started = Instant::now();
        let departure = scopeguard::guard((), |()| {
            state
                .metrics
                .execution_finished(&self.tenant.id, "cancelled", started.elapsed());
        });
        let answer = state
            .pool
            .run_batch_item(job, self.caller.clone(), permit, self.script)
            .await;
        scopeguard::ScopeGuard::into_inner(departure);
        let answer = match answer {
            Ok(answer) => {
                state
                    .metrics
                    .execution_finished(&self.tenant.id, answer.kind(), answer.duration);
                tracing::debug!(
                    request_id = self.request_id,
                    tenant = self.tenant.id,
                    index,
                    outcome = answer.kind(),
                    duration_ms = answer.duration.as_secs_f64() * 1000.0,
                    "batch item finished"
                );
                ExecuteResponse::from(answer)
            }
            Err(error) => {
                tracing::error!(request_id = self.request_id, tenant = self.tenant.id, index, %error, "no worker ran the batch item");
                no_worker(&error)
            }
        };
        Finished {
            index,
            answer,
            _charge: Some(charge),
        }
    }

    /// The answer of an item that had not started by the batch's deadline.
    fn not_run(&self) -> ExecuteResponse {
        not_run(self.state.config.max_timeout)
    }
}

/// A batch's items under way: at most its tenant's share admitted or waiting at once, the
/// next started as one finishes, and the bytes of their answers added up.
struct Items {
    run: Arc<BatchRun>,
    running: FuturesUnordered<Pin<Box<dyn Future<Output = Finished> + Send>>>,
    /// The next item to start.
    next: usize,
    /// Items under way at most: the tenant's share, or fewer when the batch is smaller.
    slots: usize,
    /// Bytes of the answers kept so far, within `MAX_BATCH_ANSWER_BYTES`.
    answer_bytes: usize,
    finished: usize,
    errors: usize,
    started: Instant,
    /// The batch's answers' charge (and its body's), held until the answer has been written.
    charge: Option<Charge>,
}

impl Items {
    /// Admits the first item, refusing the batch as an execution is refused when it cannot,
    /// and starts it.
    async fn start(run: Arc<BatchRun>, charge: Charge) -> Result<Self, ApiError> {
        let started = Instant::now();
        let first = run.admit(0).await?;
        let slots = run.share.max_running.clamp(1, run.inputs.len());
        let running = FuturesUnordered::new();
        let item = run.clone().run_item(0, Some(first));
        running.push(Box::pin(item.instrument(run.span.clone())) as Pin<Box<_>>);
        Ok(Self {
            run,
            running,
            next: 1,
            slots,
            answer_bytes: 0,
            finished: 0,
            errors: 0,
            started,
            charge: Some(charge),
        })
    }

    /// The next item to finish, its answer written by `encode` (a result, or a line); `None`
    /// once every item has answered. An answer that does not fit in what is left of
    /// `MAX_BATCH_ANSWER_BYTES` is replaced by an `output_limit` one.
    async fn next(
        &mut self,
        encode: fn(usize, &ExecuteResponse) -> Vec<u8>,
    ) -> Option<(usize, Vec<u8>)> {
        while self.running.len() < self.slots && self.next < self.run.inputs.len() {
            let index = self.next;
            self.next += 1;
            let item = self.run.clone().run_item(index, None);
            self.running
                .push(Box::pin(item.instrument(self.run.span.clone())));
        }
        let Some(finished) = self.running.next().await else {
            // As for an execution (REQUEST_LOG_SAMPLE): a batch whose every item succeeded is
            // logged only if its request id is in the sample.
            let request_id = self.run.request_id.as_deref();
            if self.errors > 0 || service_kit::telemetry::logs_success(request_id) {
                self.log_end("batch finished");
            }
            return None;
        };
        self.finished += 1;
        if finished.answer.status == ExecutionStatus::Error {
            self.errors += 1;
        }
        let mut bytes = encode(finished.index, &finished.answer);
        let room = self.run.state.config.max_batch_answer_bytes - self.answer_bytes;
        if bytes.len() > room {
            bytes = encode(finished.index, &over_cap(bytes.len(), room));
        } else {
            self.answer_bytes += bytes.len();
        }
        Some((finished.index, bytes))
    }

    /// The batch's charge, for its answer to hold until it has been written.
    fn into_charge(mut self) -> Charge {
        self.charge.take().expect("taken once, at the end")
    }

    fn log_end(&self, what: &'static str) {
        let run = &self.run;
        tracing::info!(
            request_id = run.request_id,
            trace_id = run.trace_id,
            tenant = run.tenant.id,
            items = run.inputs.len(),
            finished = self.finished,
            errors = self.errors,
            answer_bytes = self.answer_bytes,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "{what}"
        );
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        if self.finished < self.run.inputs.len() {
            // Its client left (or the ingress gave up on it): the items under way are
            // cancelled as they are dropped here, and the rest never start.
            self.log_end("batch cancelled: the request was dropped before its last item");
        }
    }
}

/// An item's answer as an element of `results`.
fn encode_answer(_: usize, answer: &ExecuteResponse) -> Vec<u8> {
    serde_json::to_vec(answer).expect("answers serialise")
}

/// An item's answer as a line of a streamed batch, without the newline.
fn encode_line(index: usize, answer: &ExecuteResponse) -> Vec<u8> {
    serde_json::to_vec(&BatchLine { index, answer }).expect("answers serialise")
}

/// The answer of an item that had not started when the batch's time, `MAX_TIMEOUT_MS`, ran
/// out.
fn not_run(batch_time: Duration) -> ExecuteResponse {
    failure(
        ErrorKind::Timeout,
        "TimeoutError",
        format!(
            "not run: the batch's time of {} ms (MAX_TIMEOUT_MS, from its arrival) ran out \
             before this item got a worker",
            batch_time.as_millis()
        ),
    )
}

/// The answer of an item whose own answer of `bytes` did not fit in the `room` left of the
/// batch's `MAX_BATCH_ANSWER_BYTES`.
fn over_cap(bytes: usize, room: usize) -> ExecuteResponse {
    failure(
        ErrorKind::OutputLimit,
        "OutputLimitError",
        format!(
            "this item's answer of {bytes} bytes is more than the {room} bytes left of the \
             batch's MAX_BATCH_ANSWER_BYTES"
        ),
    )
}

/// The answer of an item no worker could run.
fn no_worker(error: &PoolError) -> ExecuteResponse {
    failure(
        ErrorKind::Crashed,
        "CrashError",
        format!("no worker ran this item: {error}"),
    )
}

/// The answer of an item the service ended without a script's result: `kind` with `message`.
fn failure(kind: ErrorKind, name: &str, message: String) -> ExecuteResponse {
    ExecuteResponse {
        status: ExecutionStatus::Error,
        result: None,
        error: ErrorField::Some(ScriptError::limit(kind, name, message)),
        log: RawValue::from_string("[]".to_owned()).expect("an empty array is JSON"),
        execution_time: 0.0,
        log_truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SKIPPED_ANSWER_BYTES;

    #[test]
    fn the_assembled_answer_is_the_batch_response_the_document_describes() {
        let answers = [
            not_run(Duration::from_secs(30)),
            over_cap(10, 5),
            no_worker(&PoolError::Stopped),
        ];
        let assembled = document(
            answers
                .iter()
                .map(|answer| encode_answer(0, answer))
                .collect(),
        );
        let described = contract::api::BatchResponse {
            results: answers
                .iter()
                .map(|answer| serde_json::value::to_raw_value(answer).unwrap())
                .collect(),
        };
        assert_eq!(assembled, serde_json::to_vec(&described).unwrap());
        assert_eq!(
            document(Vec::new()),
            serde_json::to_vec(&contract::api::BatchResponse {
                results: Vec::new()
            })
            .unwrap()
        );
    }

    #[test]
    fn an_item_that_answers_without_running_fits_in_what_the_batch_reserved_for_it() {
        let answers = [
            not_run(Duration::MAX),
            over_cap(usize::MAX, usize::MAX),
            no_worker(&PoolError::NoWorker),
            no_worker(&PoolError::Stopped),
        ];
        for answer in &answers {
            for encoded in [encode_answer(0, answer), encode_line(usize::MAX, answer)] {
                assert!(
                    encoded.len() <= SKIPPED_ANSWER_BYTES,
                    "{} bytes: {}",
                    encoded.len(),
                    String::from_utf8_lossy(&encoded)
                );
            }
        }
    }
}
