//! Request ids: every request carries an `x-request-id`, the client's own when it is a sane
//! one, a fresh UUID otherwise. It is forwarded to the sandbox, logged by both processes and
//! returned to the client, so one id finds a request's lines on both sides.

use axum::extract::Request;
use axum::http::HeaderName;

/// The header that carries the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen id that is kept.
const MAX_LENGTH: usize = 128;

/// Removes a client `x-request-id` that is too long or has characters that do not belong in an
/// id (or in a log line), so the layer after this one generates a fresh id instead.
pub async fn drop_unusable(mut request: Request) -> Request {
    let usable = {
        let mut values = request.headers().get_all(&X_REQUEST_ID).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => is_usable(value.as_bytes()),
            (None, None) => true,
            _ => false,
        }
    };
    if !usable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

fn is_usable(id: &[u8]) -> bool {
    (1..=MAX_LENGTH).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=@".contains(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_only_when_short_and_plain() {
        assert!(is_usable(b"3f1c9a5e-8d0b-4a57-9a8e-0c5d2f6b7a41"));
        assert!(is_usable(b"client:req/42+x=="));
        assert!(!is_usable(b""));
        assert!(!is_usable(b"has space"));
        assert!(!is_usable(b"line\nbreak"));
        assert!(!is_usable("caf\u{e9}".as_bytes()));
        assert!(!is_usable(&[b'a'; MAX_LENGTH + 1]));
    }
}
