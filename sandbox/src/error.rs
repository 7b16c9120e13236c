//! The API's one error shape: `{"status": "error", "error": {"kind": ..., "message": ...}}`,
//! with the HTTP status that fits each kind. Details of 5xx errors are logged, not sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contract::envelope::{ErrorEnvelope, RequestErrorKind};

use crate::{scheduler::Rejection, supervisor::PoolError, tenant::TenantHeaderError};

/// A request the service will not run.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not JSON of the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// The body is not declared as `application/json`.
    #[error("expected a body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// A tenant header from the ingress is malformed.
    #[error("{0}")]
    BadTenantHeader(#[from] TenantHeaderError),
    /// The body parses but asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// `file` names no bundled example.
    #[error("no example script is named {0:?}; GET /api/examples lists them")]
    UnknownExample(String),
    /// The body is over the size limit.
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive whole within `BODY_READ_TIMEOUT_MS`.
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    BodyTimeout(std::time::Duration),
    /// No worker is free and the queue is full or the wait ran out.
    #[error("the service is busy ({0}); retry shortly")]
    Overloaded(Rejection),
    /// What the request would make the sandbox hold does not fit in its memory budget now
    /// (503), or ever (413).
    #[error("{}", memory_message(.0))]
    OverBudget(service_kit::OverBudget),
    /// No worker process could be started in time.
    #[error("the service cannot run scripts right now ({0}); retry shortly")]
    Unavailable(PoolError),
    /// No session of the caller has this id here.
    #[error(
        "no session with this id: it never existed, belongs to someone else, ended, or lives on \
         another instance of the service; create a new one (POST /api/sessions)"
    )]
    SessionNotFound,
    /// The caller's session expired.
    #[error("the session expired and its state is gone; create a new one (POST /api/sessions)")]
    SessionExpired,
    /// The session is running an execution.
    #[error("the session is running an execution; it runs one at a time: retry when it ends")]
    SessionBusy,
    /// The caller holds its most sessions, or their memory.
    #[error("{0}")]
    SessionCap(String),
    /// The instance holds its most sessions.
    #[error("this instance holds its most sessions ({0}); retry later")]
    SessionsFull(usize),
    /// Sessions are off for this caller.
    #[error("{0}")]
    SessionsOff(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedBody(_) | Self::BadTenantHeader(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownExample(_) | Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::OverBudget(service_kit::OverBudget::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::OverBudget(service_kit::OverBudget::Full { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::SessionNotFound | Self::SessionExpired => StatusCode::NOT_FOUND,
            Self::SessionBusy => StatusCode::CONFLICT,
            Self::SessionCap(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::SessionsFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::SessionsOff(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The stable `kind` clients branch on.
    pub fn kind(&self) -> RequestErrorKind {
        match self {
            Self::MalformedBody(_)
            | Self::BadTenantHeader(_)
            | Self::UnsupportedMediaType
            | Self::Invalid(_) => RequestErrorKind::InvalidRequest,
            Self::UnknownExample(_) | Self::NotFound => RequestErrorKind::NotFound,
            Self::PayloadTooLarge(_)
            | Self::OverBudget(service_kit::OverBudget::TooLarge { .. }) => {
                RequestErrorKind::PayloadTooLarge
            }
            Self::OverBudget(service_kit::OverBudget::Full { .. }) => RequestErrorKind::Overloaded,
            Self::BodyTimeout(_) => RequestErrorKind::RequestTimeout,
            Self::Overloaded(_) | Self::Unavailable(_) => RequestErrorKind::Overloaded,
            Self::MethodNotAllowed => RequestErrorKind::MethodNotAllowed,
            Self::SessionNotFound => RequestErrorKind::SessionNotFound,
            Self::SessionExpired => RequestErrorKind::SessionExpired,
            Self::SessionBusy => RequestErrorKind::SessionBusy,
            Self::SessionCap(_) | Self::SessionsFull(_) | Self::SessionsOff(_) => {
                RequestErrorKind::SessionLimit
            }
        }
    }
}

impl ApiError {
    /// The body of its answer, also sent as the last event of a stream that fails after it
    /// began.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope::new(self.kind(), self.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.envelope();
        let mut response = (self.status_code(), Json(body)).into_response();
        let retry_after = match &self {
            Self::Overloaded(rejection) => Some(rejection.retry_after()),
            Self::Unavailable(_) | Self::OverBudget(service_kit::OverBudget::Full { .. }) => {
                Some(std::time::Duration::from_secs(1))
            }
            // A session ends by its idle timeout at the latest; a minute is a fair first wait.
            Self::SessionCap(_) | Self::SessionsFull(_) => Some(std::time::Duration::from_secs(60)),
            _ => None,
        };
        if let Some(retry_after) = retry_after {
            // Whole seconds, rounded up: never 0, which would invite an immediate retry.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// The message of a refused memory charge: no figures of the sandbox's memory.
fn memory_message(refusal: &service_kit::OverBudget) -> &'static str {
    match refusal {
        service_kit::OverBudget::TooLarge { .. } => {
            "the request is larger than the service could ever hold in memory"
        }
        service_kit::OverBudget::Full { .. } => {
            "the service is busy (its memory for requests is in use); retry shortly"
        }
    }
}
