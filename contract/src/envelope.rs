//! The API's one error shape, used by both the ingress and the sandbox for every request they
//! will not run: `{"status": "error", "error": {"kind": "...", "message": "..."}}`.
//!
//! The HTTP status that goes with a kind is each binary's choice (`invalid_request` is 400, 415
//! or 422 depending on what was wrong); the kinds and the shape are shared.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a request was not run; stable for clients to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestErrorKind {
    /// The body is not JSON, not declared as JSON, or asks for something invalid.
    InvalidRequest,
    /// No such route, asset or example.
    NotFound,
    /// The route exists, not for this method.
    MethodNotAllowed,
    /// The body is over the size limit.
    PayloadTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// The sandbox cannot take the execution now; `Retry-After` says when to come back.
    Overloaded,
    /// A fault of the service itself; details are logged, not sent.
    Internal,
    /// An `/api/*` request without a usable key where one is needed.
    Unauthorized,
    /// The request's `Host` or page `Origin` is not one the endpoint serves (`/mcp`).
    Forbidden,
    /// The caller is over its rate limit.
    RateLimited,
    /// The ingress could not reach the sandbox.
    UpstreamUnavailable,
    /// The sandbox did not answer in time.
    UpstreamTimeout,
    /// The tenant may not load a script from this `url` (not in its allow-list, a blocked
    /// address, or a redirect to either).
    SourceForbidden,
    /// There is no script at this `url`.
    SourceNotFound,
    /// The script at this `url` could not be loaded: its server failed or was too slow.
    SourceUnavailable,
    /// The script at this `url` does not have the SHA-256 digest given in `sha256`.
    SourceHashMismatch,
    /// No session of the caller has this id here: it never existed, belongs to someone else,
    /// ended long ago, or lives on another instance.
    SessionNotFound,
    /// The session expired (idle too long, or at its maximum age) and its state is gone.
    SessionExpired,
    /// The session is running an execution; it runs one at a time.
    SessionBusy,
    /// No session can be created now: the caller's cap, or the instance's, is reached.
    SessionLimit,
}

impl RequestErrorKind {
    /// The kind as it appears in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::SourceForbidden => "source_forbidden",
            Self::SourceNotFound => "source_not_found",
            Self::SourceUnavailable => "source_unavailable",
            Self::SourceHashMismatch => "source_hash_mismatch",
            Self::SessionNotFound => "session_not_found",
            Self::SessionExpired => "session_expired",
            Self::SessionBusy => "session_busy",
            Self::SessionLimit => "session_limit",
        }
    }
}

/// `"error"`, the `status` of every error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    Error,
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub status: ErrorStatus,
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub kind: RequestErrorKind,
    /// For people: what was wrong and, where it helps, what to do instead.
    pub message: String,
}

impl ErrorEnvelope {
    pub fn new(kind: RequestErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: ErrorStatus::Error,
            error: ErrorDetail {
                kind,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_the_documented_shape_and_round_trips() {
        let envelope = ErrorEnvelope::new(RequestErrorKind::PayloadTooLarge, "too big");
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "error", "error": {"kind": "payload_too_large", "message": "too big"}})
        );
        let back: ErrorEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn every_kind_serialises_as_its_name() {
        for kind in [
            RequestErrorKind::InvalidRequest,
            RequestErrorKind::NotFound,
            RequestErrorKind::MethodNotAllowed,
            RequestErrorKind::PayloadTooLarge,
            RequestErrorKind::RequestTimeout,
            RequestErrorKind::Overloaded,
            RequestErrorKind::Internal,
            RequestErrorKind::Unauthorized,
            RequestErrorKind::Forbidden,
            RequestErrorKind::RateLimited,
            RequestErrorKind::UpstreamUnavailable,
            RequestErrorKind::UpstreamTimeout,
            RequestErrorKind::SourceForbidden,
            RequestErrorKind::SourceNotFound,
            RequestErrorKind::SourceUnavailable,
            RequestErrorKind::SourceHashMismatch,
            RequestErrorKind::SessionNotFound,
            RequestErrorKind::SessionExpired,
            RequestErrorKind::SessionBusy,
            RequestErrorKind::SessionLimit,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
