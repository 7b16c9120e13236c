//! Every error the ingress itself answers with, written in the API's one JSON error shape:
//! `{"status":"error","error":{"kind":"...","message":"..."}}`.
//!
//! Responses that come from the sandbox are passed through untouched; these are only the
//! answers the ingress gives on its own (routing, limits, an unreachable sandbox).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contract::envelope::{ErrorEnvelope, RequestErrorKind};

/// An error answered by the ingress.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route or asset at this path.
    #[error("nothing here: only /api/*, /mcp, /healthz and the demo page are served")]
    NotFound,
    /// The path exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is over `MAX_BODY_BYTES`; nothing was forwarded.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client's request body could not be read (e.g. the connection broke mid-body).
    #[error("could not read the request body")]
    UnreadableBody(#[source] axum::Error),
    /// The client's request body did not arrive whole within `BODY_READ_TIMEOUT_MS`.
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    BodyTimeout(Duration),
    /// An `/api/*` request without a usable key where one is required (see [`crate::auth`]).
    #[error("{0}")]
    Unauthorized(AuthFailure),
    /// `/mcp` from a host or a page's origin it does not serve (see [`crate::mcp::origin`]).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The client is over its rate limit.
    #[error("too many requests: retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request is allowed, rounded up.
        retry_after_secs: u64,
        /// `retry-after` and `x-ratelimit-*` headers for the answer.
        headers: HeaderMap,
    },
    /// A batch costs more requests of the rate limit (one per item) than the client's bucket
    /// holds even when full: it can never pass, whenever it is sent.
    #[error(
        "inputs: a batch of {wanted} items costs {wanted} requests of the rate limit, more than \
         the {burst} its bucket holds: send at most {burst} inputs in one batch"
    )]
    OverBurst {
        /// Requests the batch costs.
        wanted: u32,
        /// The bucket's size.
        burst: u32,
    },
    /// The sandbox refused the connection, is down, or broke the connection.
    #[error("the sandbox is unavailable")]
    UpstreamUnavailable(#[source] hyper_util::client::legacy::Error),
    /// The sandbox did not answer within `UPSTREAM_TIMEOUT_MS`.
    #[error("the sandbox did not answer within {} ms", .0.as_millis())]
    UpstreamTimeout(Duration),
    /// Bodies held across all connections fill the ingress's buffer budget
    /// (`BUFFER_SHARE_PERCENT` of its memory); this one would not fit beside them now.
    #[error("the service is busy (its memory for request bodies is in use); retry shortly")]
    MemoryBusy,
    /// The sandbox refused this client's execution a moment ago with a `Retry-After` that has
    /// not passed (see [`crate::refusals`]); nothing was forwarded.
    #[error(
        "the sandbox refused this client's last execution as overloaded; retry in \
         {retry_after_secs} s"
    )]
    RefusedRecently {
        /// Seconds left of the sandbox's `Retry-After`, rounded up.
        retry_after_secs: u64,
    },
    /// A fault of the ingress itself.
    #[error("internal error")]
    Internal(&'static str),
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("the API key is not valid")]
    Unknown,
    #[error(
        "malformed credentials: send one `Authorization: Bearer <key>` or one `x-api-key: <key>` \
         header with a key of visible ASCII characters"
    )]
    Malformed,
}

impl AuthFailure {
    /// The `reason` label of the auth failure metric.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unknown => "unknown",
            Self::Malformed => "malformed",
        }
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::OverBurst { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::MemoryBusy | Self::RefusedRecently { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error.kind`.
    pub fn kind(&self) -> RequestErrorKind {
        match self {
            Self::NotFound => RequestErrorKind::NotFound,
            Self::MethodNotAllowed => RequestErrorKind::MethodNotAllowed,
            Self::PayloadTooLarge { .. } => RequestErrorKind::PayloadTooLarge,
            Self::UnreadableBody(_) => RequestErrorKind::InvalidRequest,
            Self::BodyTimeout(_) => RequestErrorKind::RequestTimeout,
            Self::Unauthorized(_) => RequestErrorKind::Unauthorized,
            Self::Forbidden(_) => RequestErrorKind::Forbidden,
            Self::RateLimited { .. } => RequestErrorKind::RateLimited,
            Self::OverBurst { .. } => RequestErrorKind::InvalidRequest,
            Self::UpstreamUnavailable(_) => RequestErrorKind::UpstreamUnavailable,
            Self::UpstreamTimeout(_) => RequestErrorKind::UpstreamTimeout,
            Self::MemoryBusy | Self::RefusedRecently { .. } => RequestErrorKind::Overloaded,
            Self::Internal(_) => RequestErrorKind::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = self.to_string();
        // The cause of a 5xx stays in the logs; the client gets the one-line message.
        match &self {
            Self::UpstreamUnavailable(source) => {
                tracing::warn!(error = %error_chain(source), "sandbox unavailable");
            }
            Self::Internal(detail) => tracing::error!(detail, "internal error"),
            Self::UnreadableBody(source) => {
                tracing::debug!(error = %error_chain(source), "unreadable request body");
            }
            _ => {}
        }
        let body = Json(ErrorEnvelope::new(self.kind(), message));
        match self {
            Self::RateLimited { headers, .. } => (status, headers, body).into_response(),
            Self::Unauthorized(_) => {
                (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
            }
            // Bytes are held at most for a body's read and the sandbox's answer: most are
            // released within a second.
            Self::MemoryBusy => (status, [(header::RETRY_AFTER, "1")], body).into_response(),
            Self::RefusedRecently { retry_after_secs } => {
                (status, [(header::RETRY_AFTER, retry_after_secs)], body).into_response()
            }
            _ => (status, body).into_response(),
        }
    }
}

/// `error: cause: cause's cause`, for log lines.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
