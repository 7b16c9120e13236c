//! Why a script was not loaded from its `url`, and the answer that says so: each
//! [`Problem`] has its status and `kind`, and its message names the location without its query
//! (which may be a credential) and never the service's credentials. The causes of 502s are
//! logged, not sent.

use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contract::envelope::{ErrorEnvelope, RequestErrorKind};
use egress::client::EgressError;
use service_kit::OverBudget;

use super::rules::Location;
use crate::error::error_chain;

/// Why a script was not loaded.
#[derive(Debug)]
pub enum Problem {
    /// The `url` is malformed (422 `invalid_request`).
    Invalid(String),
    /// The tier may not load it, or a rule refused an address or redirect (403).
    Forbidden(String),
    /// Nothing there (404).
    NotFound,
    /// Over `MAX_SCRIPT_BYTES` (413).
    TooLarge(usize),
    /// Not UTF-8 text (422 `invalid_request`).
    NotText,
    /// Another digest than the pinned one (422).
    HashMismatch { actual: String, pinned: String },
    /// The server or store failed; the detail is logged, not sent (502).
    Unavailable { reason: String, detail: String },
    /// Not loaded within `SOURCE_TIMEOUT_MS` (504).
    TimedOut(Duration),
    /// The ingress's memory budget cannot hold it: now (503, retry), or ever (413).
    OverBudget(OverBudget),
}

/// A refusal or failure to load the script at a location.
#[derive(Debug)]
pub struct SourceError {
    /// The location as [`Location::name`] writes it; `None` when the `url` did not parse.
    pub name: Option<String>,
    pub problem: Problem,
}

impl SourceError {
    pub(super) fn at(location: &Location, problem: Problem) -> Self {
        Self {
            name: Some(location.name()),
            problem,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self.problem {
            Problem::Invalid(_) | Problem::NotText | Problem::HashMismatch { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Problem::Forbidden(_) => StatusCode::FORBIDDEN,
            Problem::NotFound => StatusCode::NOT_FOUND,
            Problem::TooLarge(_) | Problem::OverBudget(OverBudget::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Problem::OverBudget(OverBudget::Full { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Unavailable { .. } => StatusCode::BAD_GATEWAY,
            Problem::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn kind(&self) -> RequestErrorKind {
        match self.problem {
            Problem::Invalid(_) | Problem::NotText => RequestErrorKind::InvalidRequest,
            Problem::Forbidden(_) => RequestErrorKind::SourceForbidden,
            Problem::NotFound => RequestErrorKind::SourceNotFound,
            Problem::TooLarge(_) | Problem::OverBudget(OverBudget::TooLarge { .. }) => {
                RequestErrorKind::PayloadTooLarge
            }
            Problem::OverBudget(OverBudget::Full { .. }) => RequestErrorKind::Overloaded,
            Problem::HashMismatch { .. } => RequestErrorKind::SourceHashMismatch,
            Problem::Unavailable { .. } | Problem::TimedOut(_) => {
                RequestErrorKind::SourceUnavailable
            }
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(formatter, "url: {name}: ")?,
            None => formatter.write_str("url: ")?,
        }
        match &self.problem {
            Problem::Invalid(reason) | Problem::Forbidden(reason) => formatter.write_str(reason),
            Problem::NotFound => formatter.write_str("not found"),
            Problem::TooLarge(limit) => {
                write!(
                    formatter,
                    "the script is larger than MAX_SCRIPT_BYTES ({limit} bytes of JSON-escaped text)"
                )
            }
            Problem::NotText => formatter.write_str("the script is not UTF-8 text"),
            Problem::HashMismatch { actual, pinned } => write!(
                formatter,
                "the script's SHA-256 is {actual}, not the pinned {pinned}; nothing ran"
            ),
            Problem::Unavailable { reason, .. } => formatter.write_str(reason),
            Problem::TimedOut(timeout) => {
                write!(formatter, "not loaded within {} ms", timeout.as_millis())
            }
            Problem::OverBudget(OverBudget::TooLarge { limit, .. }) => write!(
                formatter,
                "the request with its script is larger than the ingress's {limit} bytes for buffers"
            ),
            Problem::OverBudget(OverBudget::Full { .. }) => formatter.write_str(
                "the service is busy (its memory for request bodies is in use); retry shortly",
            ),
        }
    }
}

impl IntoResponse for SourceError {
    fn into_response(self) -> Response {
        if let Problem::Unavailable { detail, .. } = &self.problem {
            tracing::warn!(source = self.name.as_deref(), error = %detail, "script source unavailable");
        } else {
            tracing::info!(
                source = self.name.as_deref(),
                kind = self.kind().as_str(),
                "script not loaded"
            );
        }
        let body = Json(ErrorEnvelope::new(self.kind(), self.to_string()));
        if let Problem::OverBudget(OverBudget::Full { .. }) = self.problem {
            // As the proxy's own 503: buffers are released within about a second.
            return (self.status_code(), [(header::RETRY_AFTER, "1")], body).into_response();
        }
        (self.status_code(), body).into_response()
    }
}

/// A rule's refusal is 403 (an unresolvable name is a network failure, 502); the rest 502.
pub(super) fn refused(error: &EgressError) -> Problem {
    match error {
        EgressError::Unresolved { .. } => Problem::Unavailable {
            reason: error.to_string(),
            detail: error.to_string(),
        },
        refused => Problem::Forbidden(refused.to_string()),
    }
}

pub(super) fn web_problem(error: reqwest::Error) -> Problem {
    if let Some(refusal) = egress::client::refusal(&error) {
        return refused(refusal);
    }
    if error.is_timeout() {
        return Problem::TimedOut(Duration::ZERO);
    }
    Problem::Unavailable {
        reason: "the server could not be reached or broke the connection".to_owned(),
        detail: error_chain(&error.without_url()),
    }
}

pub(super) fn store_problem(error: object_store::Error) -> Problem {
    if let Some(refusal) = egress::client::refusal(&error) {
        return refused(refusal);
    }
    match &error {
        object_store::Error::NotFound { .. } => Problem::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Problem::Unavailable {
            reason: "the store refused the service's credentials".to_owned(),
            detail: error_chain(&error),
        },
        _ => Problem::Unavailable {
            reason: "the store failed or could not be reached".to_owned(),
            detail: error_chain(&error),
        },
    }
}

pub(super) fn internal(location: &Location) -> SourceError {
    SourceError::at(
        location,
        Problem::Unavailable {
            reason: "the ingress could not rewrite the request".to_owned(),
            detail: "re-serialising the request failed".to_owned(),
        },
    )
}
