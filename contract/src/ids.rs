//! Correlation ids, read the same way by the ingress and the sandbox so that one request is
//! logged under one id on both sides.
//!
//! - The request id (`x-request-id`): the client's own when it is a sane one, otherwise the
//!   ingress makes a UUID; forwarded to the sandbox and returned to the client.
//! - The trace id, for Cloud Logging's trace correlation: from W3C `traceparent`, else from
//!   Google's `X-Cloud-Trace-Context`.

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Google's trace header.
pub const CLOUD_TRACE_HEADER: &str = "x-cloud-trace-context";

/// Longest request id that is kept.
pub const MAX_REQUEST_ID_LENGTH: usize = 128;

/// True when `id` may be kept as a request id: 1 to [`MAX_REQUEST_ID_LENGTH`] bytes of
/// `A-Z a-z 0-9 - _ . : / + = @`, nothing that could break a log line.
pub fn is_usable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LENGTH).contains(&id.len())
        && id
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=@".contains(byte))
}

/// The trace id of a request, in lowercase hex: the trace-id field of a well-formed
/// `traceparent`, otherwise the TRACE_ID of a well-formed `X-Cloud-Trace-Context`
/// (`TRACE_ID/SPAN_ID;o=OPTIONS`). Either id must be 32 hex digits and not all zeros.
pub fn trace_id(traceparent: Option<&str>, cloud_trace: Option<&str>) -> Option<String> {
    let from_traceparent = traceparent.and_then(|value| {
        let mut fields = value.trim().split('-');
        let (Some(version), Some(trace), Some(parent), Some(_flags)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        (version.len() == 2 && parent.len() == 16).then_some(trace)
    });
    let from_cloud_trace = || cloud_trace.and_then(|value| value.trim().split('/').next());
    from_traceparent
        .filter(|id| is_trace_id(id))
        .or_else(|| from_cloud_trace().filter(|id| is_trace_id(id)))
        .map(str::to_ascii_lowercase)
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id.bytes().all(|byte| byte.is_ascii_hexdigit())
        && id.bytes().any(|byte| byte != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_short_and_plain() {
        assert!(is_usable_request_id(
            b"3f1c9a5e-8d0b-4a57-9a8e-0c5d2f6b7a41"
        ));
        assert!(is_usable_request_id(b"client:req/42+x=="));
        assert!(!is_usable_request_id(b""));
        assert!(!is_usable_request_id(b"has space"));
        assert!(!is_usable_request_id(b"line\nbreak"));
        assert!(!is_usable_request_id("caf\u{e9}".as_bytes()));
        assert!(!is_usable_request_id(&[b'a'; MAX_REQUEST_ID_LENGTH + 1]));
    }

    #[test]
    fn the_trace_id_comes_from_traceparent_first() {
        let traceparent = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        let cloud = "105445aa7843bc8bf206b12000100000/1;o=1";
        assert_eq!(
            trace_id(Some(traceparent), Some(cloud)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id(None, Some(cloud)).as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
        assert_eq!(
            trace_id(Some("00-not-a-trace"), Some(cloud)).as_deref(),
            Some("105445aa7843bc8bf206b12000100000")
        );
    }

    #[test]
    fn malformed_trace_headers_give_no_trace_id() {
        for (traceparent, cloud) in [
            (None, None),
            (Some("00-not-a-trace"), None),
            (
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                None,
            ),
            (None, Some("x/1")),
            // A short id is not a trace id, whichever header carries it.
            (None, Some("105445aa7843bc8bf206b1200010/1;o=1")),
            (None, Some("105445aa7843bc8bf206b12000100000ff/1")),
        ] {
            assert_eq!(
                trace_id(traceparent, cloud),
                None,
                "{traceparent:?} {cloud:?}"
            );
        }
    }
}
