//! A JSON body extractor whose rejections use the API's error shape (the body is parsed by
//! its contract type's own parser, [`ParseBody`]), and which reads the body
//! within `MAX_BODY_BYTES` and `BODY_READ_TIMEOUT_MS` (see `service_kit::read_body`), after
//! charging it to the sandbox's memory budget; and the answer that holds its charge until it
//! has been handed to the connection.
//!
//! A body is charged before its first byte is read, at twice its declared length (its bytes
//! and the request parsed from them), or twice `MAX_BODY_BYTES` when it declares none. The
//! charge goes with the request ([`ApiJson`]'s second field) and ends in its answer
//! ([`charged_json`]), so nothing a request makes the sandbox hold is uncounted.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{FromRequest, Request},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use contract::request::{BatchRequest, ExecuteRequest, RequestError};
use hyper::body::{Frame, SizeHint};
use serde::Serialize;
use service_kit::{BodyError, Charge};

use crate::{
    AppState,
    config::{ANSWER_PIECE_BYTES, Config},
    error::ApiError,
};

/// Like `axum::Json`, but a bad or slow body becomes an [`ApiError`], and the body's charge
/// to the memory budget comes with the value.
pub struct ApiJson<T>(pub T, pub Charge);

/// A body type that parses itself from the body's bytes, refusing what it cannot hold.
pub trait ParseBody: Sized {
    fn parse_body(bytes: &[u8]) -> Result<Self, ApiError>;
}

impl ParseBody for ExecuteRequest {
    fn parse_body(bytes: &[u8]) -> Result<Self, ApiError> {
        Self::parse(bytes).map_err(refused)
    }
}

impl ParseBody for BatchRequest {
    fn parse_body(bytes: &[u8]) -> Result<Self, ApiError> {
        Self::parse(bytes).map_err(refused)
    }
}

/// A body its contract type refused: 400 when it is not JSON, 422 when it is not a request.
pub(super) fn refused(error: RequestError) -> ApiError {
    match error {
        RequestError::NotJson(_) => ApiError::MalformedBody(error.to_string()),
        RequestError::Invalid(message) => ApiError::Invalid(message),
    }
}

impl<T: ParseBody> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !declares_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let (parts, body) = request.into_parts();
        let config = &state.config;
        // A larger declared length is refused by read_body before anything is read.
        let expected = declared_length(&parts.headers).map_or(config.max_body_bytes, |length| {
            length.min(config.max_body_bytes as u64) as usize
        });
        let charge = state
            .memory
            .charge(Config::body_charge(expected))
            .map_err(|refusal| {
                // Counted, not logged, like every refusal: a flood must not flood the logs.
                let tenant = parts
                    .headers
                    .get(contract::tenant::TENANT_ID_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or(crate::tenant::ANONYMOUS);
                state.metrics.refused_for_memory(tenant);
                ApiError::OverBudget(refusal)
            })?;
        let bytes = service_kit::read_body(
            body,
            &parts.headers,
            config.max_body_bytes,
            config.connections.body_read_timeout,
        )
        .await
        .map_err(|error| match error {
            BodyError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            BodyError::TooSlow(deadline) => ApiError::BodyTimeout(deadline),
            BodyError::Unreadable(error) => ApiError::MalformedBody(error.to_string()),
        })?;
        Ok(Self(T::parse_body(&bytes)?, charge))
    }
}

/// `Content-Type: application/json`, or another JSON media type (`application/*+json`).
fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(contract::api::is_json_content_type)
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// `value` as a JSON answer that holds `charge` until its last byte has been handed to the
/// connection, or the connection is dropped.
pub fn charged_json(value: &impl Serialize, charge: Charge) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => charged_json_bytes(bytes, charge),
        // The answer types always serialise; axum's Json answers the same way if not.
        Err(_) => Json(value).into_response(),
    }
}

/// `bytes`, a JSON document, as an answer that holds `charge` as [`charged_json`]'s does.
pub fn charged_json_bytes(bytes: Vec<u8>, charge: Charge) -> Response {
    let mut response = charged(Body::from(bytes), charge).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `body` holding `charge` until its last byte has been handed to the connection, or the
/// connection is dropped; a frame larger than [`ANSWER_PIECE_BYTES`] is handed on in pieces of
/// that size.
pub fn charged(body: Body, charge: Charge) -> Body {
    Body::new(ChargedBody {
        inner: body,
        pending: Bytes::new(),
        _charge: charge,
    })
}

/// An answer's body with the charge for its bytes.
struct ChargedBody {
    inner: Body,
    /// What is left of a large frame, to hand on piece by piece.
    pending: Bytes,
    _charge: Charge,
}

impl hyper::body::Body for ChargedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(context)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            match frame.into_data() {
                Ok(data) if data.len() > ANSWER_PIECE_BYTES => this.pending = data,
                Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            }
        }
        // Copied, not sliced: a slice would keep the whole frame alive in the connection's
        // buffer after the charge has ended.
        let end = ANSWER_PIECE_BYTES.min(this.pending.len());
        let piece = Bytes::copy_from_slice(&this.pending[..end]);
        this.pending = this.pending.slice(end..);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + pending);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + pending);
        }
        hint
    }
}
