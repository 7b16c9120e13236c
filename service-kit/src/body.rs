//! Reading a request body whole, within a byte limit and a deadline, so that a client trickling
//! its body can hold a request for at most the deadline and never more memory than the limit.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, header},
};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the request body did not arrive within {} ms", .0.as_millis())]
    TooSlow(Duration),
    #[error("the request body could not be read: {0}")]
    Unreadable(axum::Error),
}

/// Reads `body` whole: at most `limit` bytes (a larger declared `Content-Length` is refused
/// before anything is read) within `deadline`.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TooSlow(deadline)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Ok(Err(error)) => Err(BodyError::Unreadable(axum::Error::new(error))),
    }
}
