//! Request ids: every request carries an `x-request-id`, the client's own when it is a sane
//! one, a fresh UUID otherwise. It is forwarded to the sandbox, logged by both processes and
//! returned to the client, so one id finds a request's lines on both sides.

use axum::extract::Request;
use axum::http::HeaderName;
use contract::ids::{REQUEST_ID_HEADER, is_usable_request_id};

/// The header that carries the id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Removes a client `x-request-id` that is too long or has characters that do not belong in an
/// id (or in a log line), so the layer after this one generates a fresh id instead.
pub async fn drop_unusable(mut request: Request) -> Request {
    let usable = {
        let mut values = request.headers().get_all(&X_REQUEST_ID).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => is_usable_request_id(value.as_bytes()),
            (None, None) => true,
            _ => false,
        }
    };
    if !usable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}
