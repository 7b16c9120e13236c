//! The public HTTP API's answers: what clients get back from `POST /api/execute`,
//! `POST /api/batch`, `GET /api/examples` and `GET /healthz` (what they send to `POST /api/execute` is
//! [`crate::request`]'s). The sandbox writes these types, the ingress answers with [`Health`],
//! and [`crate::openapi`] describes them from the same definitions, so the document cannot
//! drift from what the service does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{ObjectBuilder, OneOfBuilder, Ref, Type},
    },
};

use crate::{outcome::ScriptError, request::any_json};

/// True for a `Content-Type` the API reads as JSON: `application/json` or another JSON media
/// type (`application/*+json`), parameters and case aside. Other bodies are answered 415.
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The media type that asks `POST /api/execute` (or a session's execute) to stream: console
/// entries as they are made, then the answer, as Server-Sent Events.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The event that carries one console entry, exactly as the answer's `log[]` holds it.
pub const LOG_EVENT: &str = "log";

/// The last event of a stream: exactly the JSON answer of a request that did not stream.
pub const RESULT_EVENT: &str = "result";

/// The last event of a stream whose execution could not be finished after it began (the
/// service stopped, or no worker could be started): the API's error envelope, as the answer
/// to a plain request would have been with its 503.
pub const ERROR_EVENT: &str = "error";

/// How long a stream may be silent before a comment line is sent, so that proxies and clients
/// keep an idle stream open.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// How an execution's answer is delivered, from the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One JSON answer at the end: every request that does not ask for [`EVENT_STREAM`].
    Whole,
    /// Server-Sent Events: an [`LOG_EVENT`] per console entry as it is made, then the
    /// [`RESULT_EVENT`].
    Stream,
}

impl Delivery {
    /// [`Delivery::Stream`] when one of the `Accept` header's values names [`EVENT_STREAM`]
    /// itself (case aside) with a quality above zero; wildcards such as `*/*` keep the answer
    /// whole, so no client gets a stream it did not ask for.
    pub fn from_accept<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let streams = names_media_type(values, EVENT_STREAM);
        if streams { Self::Stream } else { Self::Whole }
    }
}

/// How a finished execution went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// The script ran to the end; `result` holds its value.
    Success,
    /// The script failed; `error` says how.
    Error,
}

/// A finished execution, whether the script succeeded or failed (HTTP 200 either way).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResponse {
    pub status: ExecutionStatus,
    /// The last expression's value as JSON (a Promise is awaited within the time limit;
    /// `undefined` becomes `null`); `null` when the script failed. Values JSON cannot hold are
    /// rendered readably (`"NaN"`, `"10n"`, `"[Function: f]"`, `"[Circular]"`, ...).
    #[schema(schema_with = any_json, required = true)]
    pub result: Option<Box<RawValue>>,
    /// `false` when the script succeeded, otherwise how it failed.
    pub error: ErrorField,
    /// One entry per console call, in call order, captured before the end or the failure.
    #[schema(value_type = Vec<LogEntry>)]
    pub log: Box<RawValue>,
    /// Milliseconds from the start of evaluation to the end of serialising the result
    /// (queueing not included), with microsecond precision.
    #[schema(minimum = 0, example = 4.21)]
    pub execution_time: f64,
    /// Present and `true` when console output hit its entry or byte cap: a last entry of type
    /// `truncated` says why, and later console calls were dropped.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub log_truncated: bool,
}

/// The media type of a streamed batch: one JSON object per line, each a [`BatchLine`].
pub const NDJSON: &str = "application/x-ndjson";

/// A batch's answers (`POST /api/batch`): one execute answer per input, in the inputs' order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// Each input's answer, exactly as `POST /api/execute` would have answered it with that
    /// `input` (a failed script, a timeout or running out of memory is an answer here too).
    #[schema(value_type = Vec<ExecuteResponse>)]
    pub results: Vec<Box<RawValue>>,
}

/// One line of a streamed batch (`Accept: application/x-ndjson`), sent as its item finishes:
/// the item's index in `inputs` and its execute answer's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchLine<'a> {
    /// The item's position in `inputs`, from 0.
    #[schema(minimum = 0, example = 0)]
    pub index: usize,
    #[serde(flatten)]
    pub answer: &'a ExecuteResponse,
}

/// True when an `Accept` header value asks for a streamed batch: it names [`NDJSON`], with a
/// weight above 0 (a client that accepts several types gets the stream only by naming it).
pub fn accepts_ndjson(accept: &str) -> bool {
    names_media_type([accept], NDJSON)
}

/// True when one of an `Accept` header's `values` names `media_type` itself (case aside) with
/// a quality above zero: wildcards such as `*/*` do not count.
fn names_media_type<'a>(values: impl IntoIterator<Item = &'a str>, media_type: &str) -> bool {
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|parameter| {
                parameter.split_once('=').is_some_and(|(name, quality)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && quality.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            essence.eq_ignore_ascii_case(media_type) && !refused
        })
}

/// `false` on success, the error object on failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ErrorField {
    None(bool),
    Some(ScriptError),
}

impl PartialSchema for ErrorField {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([false]))
                    .description(Some("the script succeeded")),
            )
            .item(Ref::from_schema_name(ScriptError::name()))
            .into()
    }
}

impl ToSchema for ErrorField {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ScriptError::name().into_owned(), ScriptError::schema()));
        ScriptError::schemas(schemas);
    }
}

/// One console call, recorded as it was made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    /// The console method, or `truncated` for the entry that ends a cut log.
    #[serde(rename = "type")]
    pub kind: LogType,
    /// When the call was made: RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-01-01T09:50:41.362Z")]
    pub timestamp: String,
    /// The call's arguments as JSON, serialised when the call was made (format strings are
    /// not substituted). `table` gives the table's rows, `trace` appends the stack, `assert`
    /// starts with `"Assertion failed:"`, `count` and `timeLog`/`timeEnd` give `"label: n"`.
    #[schema(value_type = Vec<serde_json::Value>, example = json!(["Hello!", {"a": 1}]))]
    pub data: Vec<serde_json::Value>,
}

/// The console methods that record an entry (`time` and `countReset` record none), and
/// `truncated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum LogType {
    Log,
    Info,
    Warn,
    Error,
    Debug,
    Dir,
    Table,
    Group,
    GroupCollapsed,
    GroupEnd,
    Trace,
    Assert,
    Count,
    TimeLog,
    TimeEnd,
    /// The last entry of a log cut at its entry or byte cap.
    Truncated,
}

impl LogType {
    /// Console methods that record their arguments as they are.
    pub const PLAIN: [Self; 9] = [
        Self::Log,
        Self::Info,
        Self::Warn,
        Self::Error,
        Self::Debug,
        Self::Dir,
        Self::Table,
        Self::Group,
        Self::GroupCollapsed,
    ];

    /// The type as it appears in JSON, which is also the console method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Debug => "debug",
            Self::Dir => "dir",
            Self::Table => "table",
            Self::Group => "group",
            Self::GroupCollapsed => "groupCollapsed",
            Self::GroupEnd => "groupEnd",
            Self::Trace => "trace",
            Self::Assert => "assert",
            Self::Count => "count",
            Self::TimeLog => "timeLog",
            Self::TimeEnd => "timeEnd",
            Self::Truncated => "truncated",
        }
    }
}

/// The bundled example scripts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExampleList {
    /// Sorted by name.
    pub examples: Vec<Example>,
}

/// One bundled example script, to run with `{"file": name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Example {
    #[schema(example = "pi.js")]
    pub name: String,
    /// The script's JavaScript source.
    #[schema(value_type = String)]
    pub source: Arc<str>,
}

/// `POST /api/sessions`'s answer (201): the session's id, and when it expires if left idle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    /// 32 hex digits: 128 bits from the operating system's CSPRNG.
    #[schema(
        example = "5f0c2a9be1d34c7f8a61b0e2d9c4f317",
        pattern = "^[0-9a-f]{32}$"
    )]
    pub id: String,
    /// RFC 3339, UTC.
    #[schema(example = "2026-01-01T12:05:00.000Z")]
    pub expires_at: String,
}

/// `GET /api/sessions/{id}`'s answer: the session's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    #[schema(example = "5f0c2a9be1d34c7f8a61b0e2d9c4f317")]
    pub id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the session last finished an execution (its creation until then), RFC 3339, UTC.
    pub last_used_at: String,
    /// When the session expires if left idle, or at its maximum age if that is sooner.
    pub expires_at: String,
    /// Its idle timeout, in seconds.
    pub ttl_seconds: u64,
    /// Executions it has finished.
    pub executions: u64,
    /// Whether an execution is running in it now.
    pub busy: bool,
    /// Its worker process's resident memory in bytes, as the kernel counts it (the runtime
    /// and what its executions left in it, the program included).
    pub memory_used_bytes: u64,
    /// Its memory limit in MiB: everything the runtime holds counts against it.
    pub memory_limit_mb: u64,
    /// Each execution's time limit when it names none, in milliseconds.
    pub timeout_ms: u64,
}

/// The ingress's `GET /healthz` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

/// Whether the service takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving.
    Ok,
    /// The sandbox the ingress started beside it is down and being restarted (503).
    SandboxRestarting,
    /// The shutdown signal has arrived: requests are still served for the shutdown notice,
    /// then the listener closes (503).
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accept_that_names_the_event_stream_asks_for_one() {
        for accept in [
            &["text/event-stream"][..],
            &["Text/Event-Stream; charset=utf-8"],
            &["application/json;q=0.5, text/event-stream"],
            &["application/json", "text/event-stream;q=0.1"],
        ] {
            assert_eq!(
                Delivery::from_accept(accept.iter().copied()),
                Delivery::Stream,
                "{accept:?}"
            );
        }
        for accept in [
            &[][..],
            &["*/*"],
            &["text/*"],
            &["application/json"],
            &["text/event-stream;q=0"],
            &["text/event-stream; q=0.0, application/json"],
            &["text/event-streams"],
        ] {
            assert_eq!(
                Delivery::from_accept(accept.iter().copied()),
                Delivery::Whole,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn every_log_type_serialises_as_its_method_name() {
        for kind in LogType::PLAIN.into_iter().chain([
            LogType::GroupEnd,
            LogType::Trace,
            LogType::Assert,
            LogType::Count,
            LogType::TimeLog,
            LogType::TimeEnd,
            LogType::Truncated,
        ]) {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn the_error_field_is_false_or_the_error_object() {
        assert_eq!(
            serde_json::to_value(ErrorField::None(false)).unwrap(),
            false
        );
        let error = ScriptError::limit(
            crate::outcome::ErrorKind::Timeout,
            "TimeoutError",
            "too slow",
        );
        assert_eq!(
            serde_json::to_value(ErrorField::Some(error)).unwrap()["kind"],
            "timeout"
        );
    }

    #[test]
    fn only_an_accept_that_names_ndjson_asks_for_a_stream() {
        for accept in [
            "application/x-ndjson",
            "Application/X-NDJSON; q=1",
            "application/json, application/x-ndjson;q=0.5",
        ] {
            assert!(accepts_ndjson(accept), "{accept}");
        }
        for accept in [
            "application/json",
            "*/*",
            "",
            "application/x-ndjsonx",
            "application/x-ndjson;q=0",
            "application/x-ndjson; q=0.0, application/json",
        ] {
            assert!(!accepts_ndjson(accept), "{accept}");
        }
    }

    #[test]
    fn a_batch_line_is_the_index_beside_the_answers_fields() {
        let line = BatchLine {
            index: 3,
            answer: &ExecuteResponse {
                status: ExecutionStatus::Success,
                result: Some(RawValue::from_string("7".into()).unwrap()),
                error: ErrorField::None(false),
                log: RawValue::from_string("[]".into()).unwrap(),
                execution_time: 1.5,
                log_truncated: false,
            },
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            serde_json::json!({"index": 3, "status": "success", "result": 7, "error": false,
                               "log": [], "executionTime": 1.5})
        );
    }
}
