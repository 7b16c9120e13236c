//! What one answer to `POST /api/execute` was. This is the one place that decides what counts
//! as lost: no well-formed answer (not JSON, or missing fields), a reset or closed connection,
//! the client's own timeout, a 5xx other than 503, an answer other than the one a checked script
//! must get, or a stream that ends without its `result` event ([`crate::stream`]).

use serde_json::Value;

/// How much of a lost answer's body is kept as an example.
const EXAMPLE_BODY_CHARS: usize = 300;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with a well-formed execution: `kind` is `success` or the error kind (`timeout`,
    /// `memory`, ...). Failed scripts are answered correctly, not lost.
    Executed { kind: String },
    /// 503 or 429 in the API's error shape: the service declined, as it may under load.
    Refused { status: u16, kind: String },
    /// Another 4xx in the API's error shape: the service would not run what was sent.
    Rejected { status: u16, kind: String },
    /// No well-formed answer.
    Lost { reason: LostReason, detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The HTTP client gave up waiting.
    ClientTimeout,
    /// The connection could not be made, or was reset or closed before a whole answer.
    Connection,
    /// A 5xx other than 503.
    ServerError { status: u16 },
    /// Not the API's answer shape for its status.
    Malformed { status: u16 },
    /// A well-formed answer, but not the one the script must end with.
    WrongAnswer,
    /// A stream that ended without a `result` event.
    StreamWithoutResult,
    /// A stream whose `log` events are not the entries its result's `log` holds.
    StreamLogMismatch,
}

impl LostReason {
    pub fn label(self) -> String {
        match self {
            LostReason::ClientTimeout => "client timeout".to_owned(),
            LostReason::Connection => "connection failed, reset or closed".to_owned(),
            LostReason::ServerError { status } => format!("status {status}"),
            LostReason::Malformed { status } => format!("malformed answer (status {status})"),
            LostReason::WrongAnswer => "wrong answer".to_owned(),
            LostReason::StreamWithoutResult => "stream ended without a result".to_owned(),
            LostReason::StreamLogMismatch => "log events differ from the result's log".to_owned(),
        }
    }
}

impl Outcome {
    /// One short label per distinct outcome: `success`, `timeout`, `503 overloaded`,
    /// `lost: client timeout`, ...
    pub fn label(&self) -> String {
        match self {
            Outcome::Executed { kind } => kind.clone(),
            Outcome::Refused { status, kind } | Outcome::Rejected { status, kind } => {
                format!("{status} {kind}")
            }
            Outcome::Lost { reason, .. } => format!("lost: {}", reason.label()),
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Executed { kind } if kind == "success")
    }

    /// The outcome of a request that got no HTTP answer, or whose body could not be read.
    pub fn transport_failure(timed_out: bool, error: &str) -> Outcome {
        Outcome::Lost {
            reason: if timed_out {
                LostReason::ClientTimeout
            } else {
                LostReason::Connection
            },
            detail: error.to_owned(),
        }
    }

    /// Classifies an HTTP answer by its status and body.
    pub fn classify(status: u16, body: &[u8]) -> Outcome {
        let json = serde_json::from_slice::<Value>(body).ok();
        let lost = |reason| Outcome::Lost {
            reason,
            detail: example_body(body),
        };
        match status {
            200 => match json.as_ref().and_then(execution_kind) {
                Some(kind) => Outcome::Executed { kind },
                None => lost(LostReason::Malformed { status }),
            },
            503 | 429 => match json.as_ref().and_then(request_error_kind) {
                Some(kind) => Outcome::Refused { status, kind },
                None => lost(LostReason::Malformed { status }),
            },
            500..=599 => lost(LostReason::ServerError { status }),
            400..=499 => match json.as_ref().and_then(request_error_kind) {
                Some(kind) => Outcome::Rejected { status, kind },
                None => lost(LostReason::Malformed { status }),
            },
            _ => lost(LostReason::Malformed { status }),
        }
    }

    /// Classifies an HTTP answer as [`Outcome::classify`] does, then, for a script whose answer
    /// is checked, holds a well-formed execution to it: anything but a success whose `result`
    /// is the JSON `expected_result` is lost as a wrong answer.
    pub fn judge(status: u16, body: &[u8], expected_result: Option<&str>) -> Outcome {
        let outcome = Outcome::classify(status, body);
        let Some(expected) = expected_result else {
            return outcome;
        };
        if !matches!(outcome, Outcome::Executed { .. }) {
            return outcome;
        }
        let expected: Option<Value> = serde_json::from_str(expected).ok();
        let answer: Option<Value> = serde_json::from_slice(body).ok();
        let result = answer.as_ref().and_then(|answer| answer.get("result"));
        if outcome.is_success() && expected.is_some() && result == expected.as_ref() {
            outcome
        } else {
            Outcome::Lost {
                reason: LostReason::WrongAnswer,
                detail: example_body(body),
            }
        }
    }
}

/// `success` or the error kind of a well-formed execution answer: `status`, `result`, `error`
/// (`false`, or `kind`, `name`, `message` and `stack`), `log` and `executionTime` all present.
pub(crate) fn execution_kind(answer: &Value) -> Option<String> {
    let has_common_fields = answer.get("result").is_some()
        && answer.get("log").is_some_and(Value::is_array)
        && answer.get("executionTime").is_some_and(Value::is_number);
    if !has_common_fields {
        return None;
    }
    let error = answer.get("error")?;
    match answer.get("status")?.as_str()? {
        "success" if error == &Value::Bool(false) => Some("success".to_owned()),
        "error" => {
            let is_text = |field| error.get(field).is_some_and(Value::is_string);
            let stack = error.get("stack")?;
            (is_text("name") && is_text("message") && (stack.is_string() || stack.is_null()))
                .then(|| error.get("kind")?.as_str().map(str::to_owned))
                .flatten()
        }
        _ => None,
    }
}

/// The `kind` of a request error: `{"status": "error", "error": {"kind", "message"}}`.
fn request_error_kind(answer: &Value) -> Option<String> {
    let error = answer.get("error")?;
    (answer.get("status")?.as_str()? == "error" && error.get("message")?.is_string())
        .then(|| error.get("kind")?.as_str().map(str::to_owned))
        .flatten()
}

/// The start of a body, as an example of what a lost request got.
pub fn example_body(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXAMPLE_BODY_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executed(kind: &str) -> Outcome {
        Outcome::Executed { kind: kind.into() }
    }

    #[test]
    fn a_success_and_a_failed_script_are_both_answers() {
        let success =
            br#"{"status":"success","result":3,"error":false,"log":[],"executionTime":0.1}"#;
        assert_eq!(Outcome::classify(200, success), executed("success"));
        let timeout = br#"{"status":"error","result":null,"error":{"kind":"timeout","name":"TimeoutError","message":"m","stack":null},"log":[],"executionTime":100.0}"#;
        assert_eq!(Outcome::classify(200, timeout), executed("timeout"));
    }

    #[test]
    fn a_200_missing_a_field_or_not_json_is_lost() {
        let no_log = br#"{"status":"success","result":3,"error":false,"executionTime":0.1}"#;
        assert!(matches!(
            Outcome::classify(200, no_log),
            Outcome::Lost {
                reason: LostReason::Malformed { status: 200 },
                ..
            }
        ));
        assert!(matches!(
            Outcome::classify(200, b"<html>oops</html>"),
            Outcome::Lost { detail, .. } if detail == "<html>oops</html>"
        ));
    }

    #[test]
    fn a_checked_script_is_lost_unless_its_result_is_the_expected_one() {
        let success =
            br#"{"status":"success","result":{"total":22},"error":false,"log":[],"executionTime":0.1}"#;
        let expected = Some(r#"{"total": 22}"#);
        assert_eq!(Outcome::judge(200, success, expected), executed("success"));
        assert_eq!(Outcome::judge(200, success, None), executed("success"));
        let wrong = Outcome::judge(200, success, Some(r#"{"total": 23}"#));
        assert!(matches!(
            wrong,
            Outcome::Lost { reason: LostReason::WrongAnswer, ref detail } if detail.contains("22")
        ));
        let syntax = br#"{"status":"error","result":null,"error":{"kind":"syntax","name":"SyntaxError","message":"m","stack":null},"log":[],"executionTime":0.1}"#;
        assert_eq!(
            Outcome::judge(200, syntax, expected).label(),
            "lost: wrong answer"
        );
        let overloaded = br#"{"status":"error","error":{"kind":"overloaded","message":"busy"}}"#;
        assert_eq!(
            Outcome::judge(503, overloaded, expected).label(),
            "503 overloaded"
        );
    }

    #[test]
    fn overloaded_and_rate_limited_are_refusals_other_5xx_are_lost() {
        let overloaded = br#"{"status":"error","error":{"kind":"overloaded","message":"busy"}}"#;
        assert_eq!(
            Outcome::classify(503, overloaded),
            Outcome::Refused {
                status: 503,
                kind: "overloaded".into()
            }
        );
        let upstream =
            br#"{"status":"error","error":{"kind":"upstream_unavailable","message":"x"}}"#;
        assert!(matches!(
            Outcome::classify(502, upstream),
            Outcome::Lost {
                reason: LostReason::ServerError { status: 502 },
                ..
            }
        ));
        let invalid = br#"{"status":"error","error":{"kind":"invalid_request","message":"x"}}"#;
        assert_eq!(
            Outcome::classify(422, invalid).label(),
            "422 invalid_request"
        );
    }
}
