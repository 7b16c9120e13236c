//! The public HTTP API's bodies: what clients send to `POST /api/execute` and what they get
//! back from it, `GET /api/examples` and `GET /healthz`. The sandbox parses and writes these
//! types, the ingress answers with [`Health`], and [`crate::openapi`] describes them from the
//! same definitions, so the document cannot drift from what the service does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Schema,
        schema::{ObjectBuilder, OneOfBuilder, Ref, SchemaType, Type},
    },
};
use validator::{Validate, ValidationError};

use crate::outcome::ScriptError;

/// What to run, and under which limits.
///
/// Exactly one of `code`, `file` and `url` gives the script. A `null` field is the same as a
/// missing one. Unknown fields are refused, so a typo such as `timeout` is an error rather than
/// silently ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[validate(schema(function = "one_source"))]
pub struct ExecuteRequest {
    /// JavaScript source, run as a classic script; the value of its last expression is the
    /// result (as with `eval`). At most the server's body limit (`MAX_BODY_BYTES`, 1 MiB by
    /// default) with the rest of the body.
    #[validate(length(min = 1, message = "must not be empty"))]
    #[schema(min_length = 1, example = "console.log('hello'); 1 + 2")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The name of a bundled example script (`GET /api/examples` lists them).
    #[validate(custom(function = "example_name"))]
    #[schema(example = "pi.js")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Where to load the script from: `gs://bucket/path/script.js` (Google Cloud Storage),
    /// `s3://bucket/key.js` (Amazon S3), or `https://host/path.js` (`http://` only where the
    /// tenant's allow-list names it). The ingress loads it, within the tenant's allow-list, and
    /// sends its text as `code`; at most `MAX_SCRIPT_BYTES` (1 MiB by default) of UTF-8 text.
    #[validate(custom(function = "source_url"))]
    #[schema(
        example = "gs://acme-scripts/reports/daily.js",
        max_length = 2048,
        pattern = "^(([gG][sS]|[sS]3)://[a-z0-9][a-z0-9._-]+[a-z0-9]/[A-Za-z0-9!+=,@:()~._/-]+|[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\\s\\\\]*)?)$"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The SHA-256 digest the script at `url` must have, as 64 hex digits; on a mismatch the
    /// answer is 422 `source_hash_mismatch` and nothing runs. Only with `url`.
    #[validate(custom(function = "sha256_hex"))]
    #[schema(
        pattern = "^[0-9a-fA-F]{64}$",
        example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The execution's time limit in milliseconds: evaluation, promise jobs, timers and
    /// serialising the result. Defaults to the server's `DEFAULT_TIMEOUT_MS`; at most the
    /// server's `MAX_TIMEOUT_MS`, or the tenant's ceiling when that is lower (422 above it).
    #[validate(range(min = 1, message = "must be at least 1"))]
    #[schema(minimum = 1, example = 1000)]
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_ms: Option<u64>,
    /// The runtime's memory limit in MiB. Defaults to the server's
    /// `DEFAULT_MEMORY_LIMIT_MB`; at most the server's `MAX_MEMORY_LIMIT_MB`, or the tenant's
    /// ceiling when that is lower (422 above it).
    #[validate(range(min = 1, message = "must be at least 1"))]
    #[schema(minimum = 1, example = 32)]
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_limit_mb: Option<u64>,
    /// Any JSON value, given to the script as its global `input`: a deeply frozen copy, parsed
    /// inside the execution (its time and memory count against the limits), so nothing but
    /// plain data can come through it. At most the server's `MAX_INPUT_BYTES` of JSON (64 KiB
    /// by default; 422 above it). Without it, `input` is `undefined`.
    #[schema(schema_with = any_json)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
}

/// A JSON number with no fractional part: `1000`, and also `1000.0` or `1e3`, which JSON does
/// not tell apart from it (JavaScript clients send either), or `null`.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    use serde::de::{Error, Unexpected};
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    // Below 2^53 every whole f64 is exact.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match number.as_f64() {
        Some(float) if float.fract() == 0.0 && (0.0..EXACT).contains(&float) => {
            Ok(Some(float as u64))
        }
        // The rule the fields' validation then applies (at least 1) is named here too, so a
        // fractional or negative value is not told a rule that 0 would break.
        Some(float) if float.abs() >= EXACT => Err(D::Error::invalid_value(
            Unexpected::Float(float),
            &"a whole number of at least 1 and below 2^53",
        )),
        Some(float) => Err(D::Error::invalid_value(
            Unexpected::Float(float),
            &"a whole number of at least 1",
        )),
        None => Err(D::Error::invalid_value(
            Unexpected::Other(&number.to_string()),
            &"a whole number of at least 1",
        )),
    }
}

fn one_source(request: &ExecuteRequest) -> Result<(), ValidationError> {
    let given = [
        request.code.is_some(),
        request.file.is_some(),
        request.url.is_some(),
    ]
    .into_iter()
    .filter(|given| *given)
    .count();
    if request.sha256.is_some() && request.url.is_none() {
        return Err(ValidationError::new("one_source").with_message(
            "`sha256` pins a script loaded from `url`: give it with `url` only".into(),
        ));
    }
    match given {
        1 => Ok(()),
        0 => Err(ValidationError::new("one_source").with_message(
            "give `code` (JavaScript source), `file` (an example's name) or `url` (where to load \
             the script from)"
                .into(),
        )),
        _ => Err(ValidationError::new("one_source")
            .with_message("give exactly one of `code`, `file` and `url`".into())),
    }
}

/// The schemes a script may be loaded from; the ingress checks the rest of the URL.
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

pub const SOURCE_SCHEMES: [&str; 4] = ["gs://", "s3://", "https://", "http://"];

/// Longest `url` accepted.
pub const MAX_SOURCE_URL_LENGTH: usize = 2048;

/// `url` starts with a supported scheme (any case) and is not too long; its bucket, key or
/// host are checked by the ingress, which parses it.
fn source_url(url: &str) -> Result<(), ValidationError> {
    let supported = SOURCE_SCHEMES.iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    });
    if !supported {
        return Err(ValidationError::new("source_url").with_message(
            "must start with gs://, s3://, https:// or http://, e.g. gs://bucket/script.js".into(),
        ));
    }
    if url.len() > MAX_SOURCE_URL_LENGTH {
        return Err(ValidationError::new("source_url")
            .with_message(format!("must be at most {MAX_SOURCE_URL_LENGTH} characters").into()));
    }
    Ok(())
}

/// 64 hex digits, either case.
fn sha256_hex(digest: &str) -> Result<(), ValidationError> {
    if digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ValidationError::new("sha256")
            .with_message("must be a SHA-256 digest: 64 hex digits".into()))
    }
}

/// Example names are plain file names: no directories, no `..`, no absolute paths.
fn example_name(name: &str) -> Result<(), ValidationError> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && !name.contains("..");
    if plain {
        Ok(())
    } else {
        Err(ValidationError::new("example_name").with_message(
            "must be the plain name of an example script, such as `simple.js`".into(),
        ))
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

/// Any JSON value, `null` included.
fn any_json() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_needs_exactly_one_non_empty_source() {
        let parse = |json: &str| {
            serde_json::from_str::<ExecuteRequest>(json)
                .unwrap()
                .validate()
        };
        assert!(parse(r#"{"code": "1"}"#).is_ok());
        assert!(parse(r#"{"file": "pi.js", "code": null}"#).is_ok());
        assert!(parse(r#"{"code": "1", "file": "pi.js"}"#).is_err());
        assert!(parse(r#"{}"#).is_err());
        assert!(parse(r#"{"code": ""}"#).is_err());
        assert!(parse(r#"{"file": "../etc/passwd"}"#).is_err());
        assert!(parse(r#"{"code": "1", "timeoutMs": 0}"#).is_err());
        assert!(parse(r#"{"url": "gs://b/a.js"}"#).is_ok());
        assert!(
            parse(&format!(
                r#"{{"url": "HTTPS://h/a.js", "sha256": "{}"}}"#,
                "aB".repeat(32)
            ))
            .is_ok()
        );
        assert!(parse(r#"{"url": "gs://b/a.js", "code": "1"}"#).is_err());
        assert!(parse(r#"{"url": "gs://b/a.js", "file": "pi.js"}"#).is_err());
        assert!(parse(r#"{"url": "file:///etc/passwd"}"#).is_err());
        assert!(parse(r#"{"url": "gs://b/a.js", "sha256": "abc"}"#).is_err());
        assert!(
            parse(&format!(
                r#"{{"code": "1", "sha256": "{}"}}"#,
                "a".repeat(64)
            ))
            .is_err()
        );
        assert!(serde_json::from_str::<ExecuteRequest>(r#"{"code": "1", "timeout": 5}"#).is_err());
    }

    #[test]
    fn limits_are_whole_numbers_however_json_writes_them() {
        let timeout = |json: &str| {
            serde_json::from_str::<ExecuteRequest>(&format!(
                r#"{{"code": "1", "timeoutMs": {json}}}"#
            ))
            .map(|request| request.timeout_ms)
        };
        assert_eq!(timeout("1000").unwrap(), Some(1000));
        assert_eq!(timeout("1000.0").unwrap(), Some(1000));
        assert_eq!(timeout("1e3").unwrap(), Some(1000));
        assert_eq!(timeout("null").unwrap(), None);
        assert!(timeout("1000.5").is_err());
        assert!(timeout("-1").is_err());
        assert!(timeout("1e300").is_err());
        assert!(timeout("\"1000\"").is_err());
        let absent: ExecuteRequest = serde_json::from_str(r#"{"code": "1"}"#).unwrap();
        assert_eq!(absent.timeout_ms, None);
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
}
