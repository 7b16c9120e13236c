//! `/api/sessions`: create a session, run scripts in it, read its state, end it
//! ([`crate::sessions`] owns their lifetime and caps). A session's execution takes the execute
//! request's body and gives its answer, whole or streamed as `POST /api/execute` streams it
//! (the same plumbing, [`super::execute::streamed`]); it runs on the session's own worker,
//! never waiting for the pool's, and its memory limit is the session's, set when it was created.

use std::{net::SocketAddr, num::NonZeroU64, sync::Arc, time::Instant};

use axum::{
    Extension, Json,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contract::{
    api::{Delivery, ExecuteResponse, SessionCreated, SessionState},
    limits::TimeLimit,
    request::{ExecuteRequest, SessionRequest},
};

use super::{
    execute::{answer_charge, delivery, header_text, limits, prepare, streamed},
    json::{ApiJson, ParseBody, charged_json},
};
use crate::{
    AppState,
    error::ApiError,
    sessions::{Missing, Owner, Refusal, Session, timestamp},
    supervisor::{Caller, SessionAnswer},
    tenant::Tenant,
};

impl ParseBody for SessionRequest {
    fn parse_body(bytes: &[u8]) -> Result<Self, ApiError> {
        Self::parse(bytes).map_err(super::json::refused)
    }
}

impl From<Missing> for ApiError {
    fn from(missing: Missing) -> Self {
        match missing {
            Missing::NotFound => Self::SessionNotFound,
            Missing::Expired => Self::SessionExpired,
        }
    }
}

fn caller_tenant(
    headers: &HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Tenant, ApiError> {
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    Ok(Tenant::from_headers(headers, peer)?)
}

/// `POST /api/sessions`: 201 with the new session's id and expiry.
pub async fn create(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(request, charge): ApiJson<SessionRequest>,
) -> Result<Response, ApiError> {
    drop(charge);
    let tenant = caller_tenant(&headers, peer)?;
    let settings = state.sessions.settings();
    if settings.max_open == 0 {
        return Err(ApiError::SessionsOff(
            "sessions are turned off on this service (SESSION_MAX_OPEN=0)".to_owned(),
        ));
    }
    let idle_timeout = match request.idle_timeout {
        None => settings.default_idle_timeout,
        Some(asked) if asked <= settings.max_idle_timeout => asked,
        Some(_) => {
            return Err(ApiError::Invalid(format!(
                "ttlSeconds: must be at most {}",
                settings.max_idle_timeout.as_secs()
            )));
        }
    };
    let (timeout, memory_limit) = limits(&state, &tenant, request.timeout, request.memory_limit)?;
    let reservation = state
        .sessions
        .reserve(
            Owner::of(&tenant),
            memory_limit,
            state.config.session_charge(memory_limit),
            tenant.ceilings.sessions,
            tenant.ceilings.session_memory.map(|memory| memory.bytes()),
        )
        .map_err(|refusal| match refusal {
            Refusal::OwnerCap(message) => ApiError::SessionCap(message),
            Refusal::InstanceCap(most) => ApiError::SessionsFull(most),
            Refusal::Off(message) => ApiError::SessionsOff(message),
            Refusal::Memory(refusal) => ApiError::OverBudget(refusal),
        })?;
    let worker = state
        .pool
        .start_session_worker(memory_limit)
        .await
        .map_err(ApiError::Unavailable)?;
    let pid = worker.pid();
    let session = state
        .sessions
        .open_session(reservation, worker, idle_timeout, timeout);
    let expires = session.created + idle_timeout.min(settings.max_age);
    tracing::info!(
        request_id = header_text(&headers, "x-request-id"),
        tenant = tenant.id,
        session = session.id,
        pid,
        idle_timeout_s = idle_timeout.as_secs(),
        memory_limit_mb = memory_limit >> 20,
        "session created"
    );
    let location = format!("/api/sessions/{}", session.id);
    let body = SessionCreated {
        id: session.id.clone(),
        expires_at: timestamp(expires),
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /api/sessions/{id}`.
pub async fn state(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SessionState>, ApiError> {
    let tenant = caller_tenant(&headers, peer)?;
    let session = state.sessions.get(&id, &Owner::of(&tenant))?;
    let now = state.sessions.state(&session);
    Ok(Json(SessionState {
        id: session.id.clone(),
        created_at: timestamp(session.created),
        last_used_at: timestamp(now.last_used),
        expires_at: timestamp(now.expires),
        ttl_seconds: session.idle_timeout.as_secs(),
        executions: now.executions,
        busy: now.busy,
        memory_used_bytes: now.memory_used,
        memory_limit_mb: session.memory_limit >> 20,
        timeout_ms: session.timeout.as_millis() as u64,
    }))
}

/// `DELETE /api/sessions/{id}`: 204; 409 while it runs an execution.
pub async fn end(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = caller_tenant(&headers, peer)?;
    match state.sessions.delete(&id, &Owner::of(&tenant)) {
        Ok(()) => {
            tracing::info!(tenant = tenant.id, session = id, "session ended");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(Some(missing)) => Err(missing.into()),
        Err(None) => Err(ApiError::SessionBusy),
    }
}

/// `POST /api/sessions/{id}/execute`: runs the script in the session's runtime and answers as
/// `POST /api/execute` does, as one JSON answer or, for a client that accepts
/// `text/event-stream`, as Server-Sent Events from the moment the session's worker has the job
/// (a `session_lost` answer is the stream's `result`). What is refused before (404, 409, 422)
/// is an ordinary error either way.
pub async fn execute(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request, mut charge): ApiJson<ExecuteRequest>,
) -> Result<Response, ApiError> {
    let delivery = delivery(&headers);
    let tenant = caller_tenant(&headers, peer)?;
    let session = state.sessions.get(&id, &Owner::of(&tenant))?;
    if request.memory_limit.is_some() {
        return Err(ApiError::Invalid(
            "memoryLimitMb: a session's memory limit is set when it is created \
             (POST /api/sessions), not per execution"
                .to_owned(),
        ));
    }
    let session_timeout =
        NonZeroU64::new(session.timeout.as_millis() as u64).map(TimeLimit::from_millis);
    let request = ExecuteRequest {
        timeout: request.timeout.or(session_timeout),
        ..request
    };
    let mut job = prepare(&state, &tenant, request)?;
    job.memory_limit = session.memory_limit;
    let Some(slot) = session.try_begin() else {
        return Err(ApiError::SessionBusy);
    };
    if let Err(refusal) = charge.grow(answer_charge(&state.config, delivery)) {
        state.metrics.refused_for_memory(&tenant.id);
        return Err(ApiError::OverBudget(refusal));
    }
    let caller = Caller {
        tenant: tenant.id.as_str().into(),
        capabilities: tenant.capabilities.clone(),
    };
    let run = SessionRun {
        request_id: header_text(&headers, "x-request-id"),
        tenant: tenant.id,
        session,
        started: Instant::now(),
    };
    match delivery {
        Delivery::Whole => {
            let answer = state
                .pool
                .run_in_session(slot, job, caller)
                .await
                .map_err(ApiError::Unavailable)?;
            Ok(charged_json(&run.finished(&state, answer), charge))
        }
        Delivery::Stream => {
            let (entries, execution) = state
                .pool
                .run_in_session_streaming(slot, job, caller)
                .await
                .map_err(ApiError::Unavailable)?;
            // Dropped unfinished (the client left), this drops `execution`, which cancels it.
            let answer = async move {
                let answer = execution.answer().await.map_err(ApiError::Unavailable)?;
                Ok(run.finished(&state, answer))
            };
            Ok(streamed(entries, answer, charge))
        }
    }
}

/// A session's execution under way, for its count and log line once it has finished.
struct SessionRun {
    request_id: Option<String>,
    tenant: String,
    session: Arc<Session>,
    started: Instant,
}

impl SessionRun {
    /// Counts and logs the finished execution, and starts the session's idle timeout again,
    /// or forgets the session when the execution ended it; the answer to send.
    fn finished(self, state: &AppState, (answer, end): SessionAnswer) -> ExecuteResponse {
        let Self {
            request_id,
            tenant,
            session,
            started,
        } = self;
        let kind = answer.kind();
        state
            .metrics
            .execution_finished(&tenant, kind, answer.duration);
        match end {
            Some(end) => {
                state.sessions.forget(&session.id);
                tracing::warn!(
                    request_id,
                    tenant,
                    session = session.id,
                    reason = end.as_str(),
                    "session lost with its execution"
                );
            }
            None => {
                session.used();
                if kind != "success" || service_kit::telemetry::logs_success(request_id.as_deref())
                {
                    tracing::info!(
                        request_id,
                        tenant,
                        session = session.id,
                        outcome = kind,
                        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "session execution finished"
                    );
                }
            }
        }
        ExecuteResponse::from(answer)
    }
}
