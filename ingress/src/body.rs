//! Request bodies on their way to the sandbox, read only as far as the ingress must.
//!
//! A body the ingress has no reason to look at is streamed ([`Streamed`]): the bytes go to the
//! sandbox as they arrive, and the ingress holds none of them beyond hyper's read buffer. Only a
//! body the ingress must rewrite (an execute request that may name a `url`) is buffered
//! ([`read_buffered`]), once the caller has been identified and charged to its rate limit, and
//! every byte of it is charged to the process's [`MemoryBudget`] before it is kept. Both ways
//! keep the same two limits: `MAX_BODY_BYTES` (413; refused up front when `Content-Length`
//! already says so) and `BODY_READ_TIMEOUT_MS` from the first poll to the last byte (408).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use service_kit::{Charge, MemoryBudget, OverBudget};
use tokio::time::Sleep;

use crate::error::ApiError;

/// How much of a body the ingress takes, and how long it waits for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// `MAX_BODY_BYTES`.
    pub max_bytes: usize,
    /// `BODY_READ_TIMEOUT_MS`.
    pub deadline: Duration,
}

/// Why a body stopped before its end: the client's fault, answered as such.
#[derive(Debug, Clone)]
pub enum Cut {
    TooLarge(usize),
    TooSlow(Duration),
    Unreadable(String),
}

impl Cut {
    pub fn into_error(self) -> ApiError {
        match self {
            Self::TooLarge(limit) => ApiError::PayloadTooLarge { limit },
            Self::TooSlow(deadline) => ApiError::BodyTimeout(deadline),
            Self::Unreadable(reason) => ApiError::UnreadableBody(axum::Error::new(reason)),
        }
    }
}

/// Where a [`Streamed`] body records why it was cut, for the handler whose upstream request
/// then fails because of it.
#[derive(Debug, Clone, Default)]
pub struct CutRecord(Arc<Mutex<Option<Cut>>>);

impl CutRecord {
    /// Why the body was cut, if it was.
    pub fn take(&self) -> Option<Cut> {
        self.0.lock().expect("never poisoned").take()
    }

    fn record(&self, cut: Cut) -> BoxError {
        let message = format!("{cut:?}");
        *self.0.lock().expect("never poisoned") = Some(cut);
        message.into()
    }
}

/// `MAX_BODY_BYTES` checked against `Content-Length` before anything is read.
pub fn check_declared_length(headers: &HeaderMap, limits: BodyLimits) -> Result<(), ApiError> {
    match declared_length(headers) {
        Some(length) if length > limits.max_bytes as u64 => Err(ApiError::PayloadTooLarge {
            limit: limits.max_bytes,
        }),
        _ => Ok(()),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A client's body passed through frame by frame, ended with an error (recorded in its
/// [`CutRecord`]) past `MAX_BODY_BYTES` or the deadline.
pub struct Streamed {
    inner: Body,
    limits: BodyLimits,
    read: usize,
    /// Started on the first poll: the body is read from when it is forwarded.
    deadline: Option<Pin<Box<Sleep>>>,
    cut: CutRecord,
}

impl Streamed {
    pub fn new(inner: Body, limits: BodyLimits, cut: CutRecord) -> Self {
        Self {
            inner,
            limits,
            read: 0,
            deadline: None,
            cut,
        }
    }
}

impl HttpBody for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.limits.deadline)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(this
                .cut
                .record(Cut::TooSlow(this.limits.deadline)))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(error)) => {
                return Poll::Ready(Some(Err(this
                    .cut
                    .record(Cut::Unreadable(error.to_string())))));
            }
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            this.read += data.len();
            if this.read > this.limits.max_bytes {
                return Poll::Ready(Some(Err(this
                    .cut
                    .record(Cut::TooLarge(this.limits.max_bytes)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads `body` whole within `limits`, charging every byte to `budget` before keeping it
/// (the declared `Content-Length` up front, so a body that cannot fit is refused before it is
/// read). The charge is the caller's to hold for as long as it holds the bytes.
pub async fn read_buffered(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
    budget: &Arc<MemoryBudget>,
) -> Result<(Buffered, Charge), ApiError> {
    check_declared_length(headers, limits)?;
    let declared = declared_length(headers).map_or(0, |length| length as usize);
    let mut charge = budget.charge(declared).map_err(over_budget)?;
    // The chunks as hyper hands them over, not copied: a copy would hold each byte twice
    // (hyper's read buffer keeps its allocation for the next read).
    let mut buffered = Buffered::default();
    let reading = async {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| Cut::Unreadable(error.to_string()).into_error())?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let total = buffered.len + data.len();
            if total > limits.max_bytes {
                return Err(Cut::TooLarge(limits.max_bytes).into_error());
            }
            if total > charge.bytes() {
                charge.grow(total - charge.bytes()).map_err(over_budget)?;
            }
            buffered.len = total;
            buffered.chunks.push(data);
        }
        Ok(())
    };
    match tokio::time::timeout(limits.deadline, reading).await {
        Err(_) => Err(ApiError::BodyTimeout(limits.deadline)),
        Ok(Err(error)) => Err(error),
        Ok(Ok(())) => Ok((buffered, charge)),
    }
}

/// A body read whole, kept in the pieces it arrived in.
#[derive(Debug, Default)]
pub struct Buffered {
    chunks: Vec<Bytes>,
    len: usize,
}

impl From<Bytes> for Buffered {
    fn from(bytes: Bytes) -> Self {
        Self {
            len: bytes.len(),
            chunks: vec![bytes],
        }
    }
}

impl Buffered {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `needle` occurs in it, also across the pieces' boundaries.
    pub fn contains(&self, needle: &[u8]) -> bool {
        let keep = needle.len().saturating_sub(1);
        // The last `keep` bytes before the current piece, however small the pieces.
        let mut tail: Vec<u8> = Vec::new();
        for chunk in &self.chunks {
            let mut seam = tail.clone();
            seam.extend_from_slice(&chunk[..chunk.len().min(keep)]);
            if contains(&seam, needle) || contains(chunk, needle) {
                return true;
            }
            tail.extend_from_slice(chunk);
            let excess = tail.len().saturating_sub(keep);
            tail.drain(..excess);
        }
        false
    }

    /// The body in one piece, for a parser; a copy (charged to `charge` first) when it came in
    /// several.
    pub fn contiguous(&self, charge: &mut Charge) -> Result<Bytes, OverBudget> {
        if let [only] = self.chunks.as_slice() {
            return Ok(only.clone());
        }
        charge.grow(self.len)?;
        let mut whole = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            whole.extend_from_slice(chunk);
        }
        Ok(Bytes::from(whole))
    }

    /// A body that sends the pieces as they are.
    pub fn into_body(self) -> Body {
        let chunks = self
            .chunks
            .into_iter()
            .map(Ok::<_, std::convert::Infallible>);
        Body::from_stream(futures_util::stream::iter(chunks))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The answer to a charge that does not fit: 413 when the request alone is more than the whole
/// budget, 503 with `Retry-After` when it would fit once others' bytes are released.
pub fn over_budget(refused: OverBudget) -> ApiError {
    match refused {
        OverBudget::TooLarge { limit, .. } => ApiError::PayloadTooLarge { limit },
        OverBudget::Full { .. } => ApiError::MemoryBusy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: Vec<usize>, limits: BodyLimits) -> (Streamed, CutRecord) {
        let chunks = chunks
            .into_iter()
            .map(|length| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; length])));
        let cut = CutRecord::default();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        (Streamed::new(body, limits, cut.clone()), cut)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_needle_is_found_across_the_pieces_of_a_buffered_body() {
        let chunks: Vec<Bytes> = ["{\"u", "r", "l\": 1, \"\\", "u0075\"}"]
            .map(|piece| Bytes::from(piece.as_bytes()))
            .to_vec();
        let body = Buffered {
            len: chunks.iter().map(Bytes::len).sum(),
            chunks,
        };
        assert!(body.contains(b"\"url\""));
        assert!(body.contains(b"\\u"));
        assert!(!body.contains(b"code"));
    }

    #[tokio::test]
    async fn a_streamed_body_within_its_limit_passes_whole() {
        let limits = BodyLimits {
            max_bytes: 1000,
            deadline: MINUTE,
        };
        let (body, cut) = streamed(vec![600, 400], limits);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
        assert!(cut.take().is_none());
    }

    #[tokio::test]
    async fn a_streamed_body_past_its_limit_is_cut_as_too_large() {
        let limits = BodyLimits {
            max_bytes: 1000,
            deadline: MINUTE,
        };
        let (body, cut) = streamed(vec![600, 401], limits);
        assert!(body.collect().await.is_err());
        assert!(matches!(cut.take(), Some(Cut::TooLarge(1000))));
    }

    #[tokio::test]
    async fn a_streamed_body_that_stops_arriving_is_cut_at_its_deadline() {
        let limits = BodyLimits {
            max_bytes: 1000,
            deadline: Duration::from_millis(50),
        };
        let cut = CutRecord::default();
        let never = futures_util::stream::pending::<Result<Bytes, std::io::Error>>();
        let body = Streamed::new(Body::from_stream(never), limits, cut.clone());
        // Far beyond the 50 ms deadline: without it, the body would wait forever.
        let collected = tokio::time::timeout(MINUTE, body.collect())
            .await
            .expect("cut by its own deadline");
        assert!(collected.is_err());
        assert!(matches!(cut.take(), Some(Cut::TooSlow(_))));
    }
}
