//! The execute and batch requests, parsed once: [`ExecuteRequest::parse`] and
//! [`BatchRequest::parse`] turn the bytes of a `POST /api/execute` or `POST /api/batch` body
//! into a value that cannot hold a bad request. The ingress parses with them to find a script
//! to load from a `url` (which it forwards as `code`) and, for a batch, to charge its items to
//! the rate limit; the sandbox to run one; neither checks the request again.
//!
//! Both bodies share their script and limit fields, declared once ([`script_body!`]): a batch
//! is an execute request whose one `input` became a non-empty list of `inputs`.
//!
//! Parsing goes in three steps, each with its own messages:
//!
//! 1. JSON into [`ExecuteBody`], the fields as clients write them (unknown fields, wrong types
//!    and limits that are not whole numbers are refused here, as axum's `Json` words it);
//! 2. each field's rule, with `validator`, each rule's message declared on its field;
//! 3. the one rule across fields, that exactly one of `code`, `file` and `url` gives the
//!    script, by making the [`ScriptSource`].
//!
//! The script's [`Language`] is one of these shared fields, not of any one route, so every
//! route that takes a script (an execute request, a batch) gets it.
//!
//! [`ExecuteBody`] and [`BatchBody`] are also what the OpenAPI document describes (as
//! `ExecuteRequest` and `BatchRequest`), so the document and the parser cannot drift apart.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use utoipa::{
    ToSchema,
    openapi::{
        Schema,
        schema::{ObjectBuilder, SchemaType},
    },
};
use validator::{Validate, ValidationError, ValidationErrors};

use crate::limits::{MemoryLimit, TimeLimit};

/// What to run, and under which limits.
#[derive(Debug)]
pub struct ExecuteRequest {
    pub source: ScriptSource,
    /// `language`: how `source`'s text is read; JavaScript when not given.
    pub language: Language,
    /// `timeoutMs`; `None` for the server's (or the tenant's) default.
    pub timeout: Option<TimeLimit>,
    /// `memoryLimitMb`; `None` for the server's (or the tenant's) default.
    pub memory_limit: Option<MemoryLimit>,
    /// `input` as the client wrote it; `None` when absent or `null`.
    pub input: Option<Box<RawValue>>,
}

/// Where the script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// JavaScript source, not empty.
    Code(String),
    /// The plain name of a bundled example (no directories, no `..`).
    File(String),
    /// A `gs://`, `s3://`, `https://` or `http://` location, at most
    /// [`MAX_SOURCE_URL_LENGTH`] long, which only the ingress loads; optionally pinned.
    Url {
        url: String,
        sha256: Option<Sha256Digest>,
    },
}

/// The language a script is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Run as written.
    #[default]
    JavaScript,
    /// Its types are stripped (replaced by whitespace, so every position stays where it was)
    /// and the rest runs as JavaScript; syntax that would need code generated for it (`enum`,
    /// namespaces with values, parameter properties) is a syntax error.
    TypeScript,
}

impl Language {
    /// Every language, in the order the API lists them.
    pub const ALL: [Self; 2] = [Self::JavaScript, Self::TypeScript];

    /// The name clients write.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::JavaScript => "javascript",
            Self::TypeScript => "typescript",
        }
    }
}

/// The SHA-256 digest a script loaded from `url` must have: 64 hex digits, kept in lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Digest(String);

impl Sha256Digest {
    /// Lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a body is not an execute request. The messages are the ones clients have always seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not JSON (400).
    #[error("Failed to parse the request body as JSON: {0}")]
    NotJson(String),
    /// JSON, but not a request this service runs (422); the message names the field.
    #[error("{0}")]
    Invalid(String),
}

impl ExecuteRequest {
    /// Parses and checks a whole body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        parse_fields(body, ExecuteBody::into_request)
    }
}

/// One script run over many inputs (`POST /api/batch`): each input is an execution of its
/// own, with the same script and limits.
#[derive(Debug)]
pub struct BatchRequest {
    pub source: ScriptSource,
    /// `language`: how `source`'s text is read, for every item; JavaScript when not given.
    pub language: Language,
    /// `timeoutMs`, each item's; `None` for the server's (or the tenant's) default.
    pub timeout: Option<TimeLimit>,
    /// `memoryLimitMb`, each item's; `None` for the server's (or the tenant's) default.
    pub memory_limit: Option<MemoryLimit>,
    /// `inputs` as the client wrote them, at least one; an item is `None` when it is `null`
    /// (the script's `input` is then `undefined`, as in an execute request without one).
    pub inputs: Vec<Option<Box<RawValue>>>,
}

impl BatchRequest {
    /// Parses and checks a whole body. How many items and how large each may be are the
    /// sandbox's settings, which it holds the request to.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        parse_fields(body, BatchBody::into_request)
    }
}

/// What the ingress needs of a request that may name a `url`: its script's source, to load it
/// and put the text in its place, then the request to forward.
pub trait ScriptRequest: Serialize + Sized {
    /// Parses a whole body.
    fn parse(body: &[u8]) -> Result<Self, RequestError>;
    /// Where the script comes from, to be replaced by the loaded text.
    fn source_mut(&mut self) -> &mut ScriptSource;
}

impl ScriptRequest for ExecuteRequest {
    fn parse(body: &[u8]) -> Result<Self, RequestError> {
        Self::parse(body)
    }

    fn source_mut(&mut self) -> &mut ScriptSource {
        &mut self.source
    }
}

impl ScriptRequest for BatchRequest {
    fn parse(body: &[u8]) -> Result<Self, RequestError> {
        Self::parse(body)
    }

    fn source_mut(&mut self) -> &mut ScriptSource {
        &mut self.source
    }
}

/// The fields' messages, `; `-separated, in the order of the fields' names.
fn messages(errors: &ValidationErrors) -> String {
    let mut fields: Vec<_> = errors.field_errors().into_iter().collect();
    fields.sort_unstable_by(|(one, _), (other, _)| one.cmp(other));
    fields
        .into_iter()
        .flat_map(|(_, errors)| errors)
        .map(|error| error.message.as_deref().unwrap_or("is invalid"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Declares a request body: the fields every request that runs a script has (exactly one of
/// `code`, `file` and `url` gives the script; a `null` field is the same as a missing one), each
/// with its rule, message and documentation written once, then the body's own fields. Unknown
/// fields are refused, so a typo such as `timeout` is an error rather than silently ignored.
macro_rules! script_body {
    ($(#[$outer:meta])* struct $name:ident { $($own:tt)* }) => {
        #[derive(Debug, Deserialize, Validate, ToSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        $(#[$outer])*
        pub struct $name {
    /// The script's source, run as a classic script; the value of its last expression is the
    /// result (as with `eval`). JavaScript, or TypeScript with `language: "typescript"`. At
    /// most the server's body limit (`MAX_BODY_BYTES`, 1 MiB by default) with the rest of the
    /// body.
    #[validate(length(min = 1, message = "code: must not be empty"))]
    #[schema(min_length = 1, example = "console.log('hello'); 1 + 2")]
    code: Option<String>,
    /// The name of a bundled example script (`GET /api/examples` lists them).
    #[validate(custom(
        function = "example_name",
        message = "file: must be the plain name of an example script, such as `simple.js`"
    ))]
    #[schema(example = "pi.js")]
    file: Option<String>,
    /// Where to load the script from: `gs://bucket/path/script.js` (Google Cloud Storage),
    /// `s3://bucket/key.js` (Amazon S3), or `https://host/path.js` (`http://` only where the
    /// tenant's allow-list names it). The ingress loads it, within the tenant's allow-list, and
    /// sends its text as `code`; at most `MAX_SCRIPT_BYTES` (1 MiB by default) of UTF-8 text.
    #[validate(
        custom(
            function = "source_scheme",
            message = "url: must start with gs://, s3://, https:// or http://, e.g. gs://bucket/script.js"
        ),
        custom(
            function = "source_url_length",
            message = "url: must be at most 2048 characters"
        )
    )]
    #[schema(
        example = "gs://acme-scripts/reports/daily.js",
        max_length = 2048,
        pattern = "^(([gG][sS]|[sS]3)://[a-z0-9][a-z0-9._-]+[a-z0-9]/[A-Za-z0-9!+=,@:()~._/-]+|[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\\s\\\\]*)?)$"
    )]
    url: Option<String>,
    /// The language of the script, wherever it comes from: `javascript` (the default) or
    /// `typescript`, whose types are stripped (replaced by whitespace, so error positions are
    /// the TypeScript's) before it runs as JavaScript. Constructs that would need code
    /// generated for them (`enum`, namespaces with values, parameter properties) are `syntax`
    /// errors. Stripping happens inside the execution: its time and memory count against the
    /// limits.
    #[schema(example = "typescript")]
    #[serde(default, deserialize_with = "language_name")]
    language: Option<Language>,
    /// The SHA-256 digest the script at `url` must have, as 64 hex digits; on a mismatch the
    /// answer is 422 `source_hash_mismatch` and nothing runs. Only with `url`.
    #[validate(custom(
        function = "sha256_hex",
        message = "sha256: must be a SHA-256 digest: 64 hex digits"
    ))]
    #[schema(
        pattern = "^[0-9a-fA-F]{64}$",
        example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )]
    sha256: Option<String>,
    /// The execution's time limit in milliseconds: evaluation, promise jobs, timers and
    /// serialising the result. Defaults to the server's `DEFAULT_TIMEOUT_MS`; at most the
    /// server's `MAX_TIMEOUT_MS`, or the tenant's ceiling when that is lower (422 above it).
    #[validate(range(min = 1, message = "timeoutMs: must be at least 1"))]
    #[schema(minimum = 1, example = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    timeout_ms: Option<u64>,
    /// The runtime's memory limit in MiB. Defaults to the server's
    /// `DEFAULT_MEMORY_LIMIT_MB`; at most the server's `MAX_MEMORY_LIMIT_MB`, or the tenant's
    /// ceiling when that is lower (422 above it).
    #[validate(range(min = 1, message = "memoryLimitMb: must be at least 1"))]
    #[schema(minimum = 1, example = 32)]
    #[serde(default, deserialize_with = "whole_number")]
    memory_limit_mb: Option<u64>,
            $($own)*
        }
    };
}

script_body! {
    /// The body of `POST /api/execute` as clients write it.
    #[schema(as = ExecuteRequest)]
    struct ExecuteBody {
    /// Any JSON value, given to the script as its global `input`: a deeply frozen copy, parsed
    /// inside the execution (its time and memory count against the limits), so nothing but
    /// plain data can come through it. At most the server's `MAX_INPUT_BYTES` of JSON (64 KiB
    /// by default; 422 above it). Without it, `input` is `undefined`.
    #[schema(schema_with = any_json)]
    input: Option<Box<RawValue>>,
    }
}

script_body! {
    /// The body of `POST /api/batch` as clients write it: the script runs once for each of
    /// `inputs`, each run an execution of its own.
    #[schema(as = BatchRequest)]
    struct BatchBody {
        /// The script's `input` for each item, in order ([`INPUTS_DESCRIPTION`]).
        #[validate(length(min = 1, message = "inputs: give at least one input"))]
        #[schema(schema_with = any_json_list)]
        inputs: Vec<Option<Box<RawValue>>>,
    }
}

/// The body of `POST /api/sessions` as clients write it: every field optional, an empty body
/// the same as `{}`.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = SessionRequest)]
pub struct SessionBody {
    /// How long the session may sit idle, in seconds: each execution starts the wait again.
    /// Defaults to the server's `SESSION_IDLE_TIMEOUT_S`; at most its
    /// `SESSION_MAX_IDLE_TIMEOUT_S` (422 above it). Whatever it says, a session ends at the
    /// server's `SESSION_MAX_AGE_S` after its creation.
    #[validate(range(min = 1, message = "ttlSeconds: must be at least 1"))]
    #[schema(minimum = 1, example = 300)]
    #[serde(default, deserialize_with = "whole_number")]
    ttl_seconds: Option<u64>,
    /// The time limit of each of the session's executions when it names none, in
    /// milliseconds; within the same bounds as an execute request's `timeoutMs`.
    #[validate(range(min = 1, message = "timeoutMs: must be at least 1"))]
    #[schema(minimum = 1, example = 1000)]
    #[serde(default, deserialize_with = "whole_number")]
    timeout_ms: Option<u64>,
    /// The session's memory limit in MiB, within the same bounds as an execute request's
    /// `memoryLimitMb`: it covers everything the session's runtime holds, what earlier
    /// executions left included.
    #[validate(range(min = 1, message = "memoryLimitMb: must be at least 1"))]
    #[schema(minimum = 1, example = 32)]
    #[serde(default, deserialize_with = "whole_number")]
    memory_limit_mb: Option<u64>,
}

/// A session to create (`POST /api/sessions`): its idle timeout and its executions' limits,
/// each `None` for the server's (or the tenant's) default.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SessionRequest {
    /// `ttlSeconds`.
    pub idle_timeout: Option<std::time::Duration>,
    /// `timeoutMs`.
    pub timeout: Option<TimeLimit>,
    /// `memoryLimitMb`.
    pub memory_limit: Option<MemoryLimit>,
}

impl SessionRequest {
    /// Parses and checks a whole body; an empty one asks for every default.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        // serde reads a struct from an array too: only an object is a session request.
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| RequestError::NotJson(error.to_string()))?;
        if !value.is_object() {
            return Err(RequestError::Invalid(
                "Failed to deserialize the JSON body into the target type: expected an object"
                    .to_owned(),
            ));
        }
        parse_fields(body, |fields: SessionBody| {
            // Zero was refused by the fields' `range` rules.
            Ok(Self {
                idle_timeout: fields.ttl_seconds.map(std::time::Duration::from_secs),
                timeout: fields
                    .timeout_ms
                    .and_then(NonZeroU64::new)
                    .map(TimeLimit::from_millis),
                memory_limit: fields
                    .memory_limit_mb
                    .and_then(NonZeroU64::new)
                    .map(MemoryLimit::from_mebibytes),
            })
        })
    }
}

/// Where a script may be loaded from; the ingress checks the rest of the URL.
pub const SOURCE_SCHEMES: [&str; 4] = ["gs://", "s3://", "https://", "http://"];

/// Longest `url` accepted, in bytes (its rule's message on [`ExecuteBody`] says it too).
pub const MAX_SOURCE_URL_LENGTH: usize = 2048;

/// A body's fields read ([`from_json`]), each checked against its rule, then made into the
/// request by `into_request`, which checks the rules across fields.
fn parse_fields<Fields: DeserializeOwned + Validate, Request>(
    body: &[u8],
    into_request: fn(Fields) -> Result<Request, String>,
) -> Result<Request, RequestError> {
    let fields: Fields = from_json(body)?;
    fields
        .validate()
        .map_err(|errors| RequestError::Invalid(messages(&errors)))?;
    into_request(fields).map_err(RequestError::Invalid)
}

/// JSON into fields, with axum's `Json` words for what fails: clients have always had them.
fn from_json<Fields: DeserializeOwned>(body: &[u8]) -> Result<Fields, RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let fields =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            match error.inner().classify() {
                serde_json::error::Category::Data => RequestError::Invalid(format!(
                    "Failed to deserialize the JSON body into the target type: {error}"
                )),
                _ => RequestError::NotJson(error.to_string()),
            }
        })?;
    deserializer
        .end()
        .map_err(|error| RequestError::NotJson(error.to_string()))?;
    Ok(fields)
}

/// A script, its language and its limits, each field already within its rule.
type Script = (
    ScriptSource,
    Language,
    Option<TimeLimit>,
    Option<MemoryLimit>,
);

/// The script, language and limits these fields give, or the message of the rule across them
/// (exactly one source; `sha256` only with `url`). JavaScript when no language is given.
fn script(
    code: Option<String>,
    file: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
    language: Option<Language>,
    timeout_ms: Option<u64>,
    memory_limit_mb: Option<u64>,
) -> Result<Script, String> {
    let source = match (code, file, url, sha256) {
        (_, _, None, Some(_)) => {
            return Err(
                "`sha256` pins a script loaded from `url`: give it with `url` only".to_owned(),
            );
        }
        (Some(code), None, None, None) => ScriptSource::Code(code),
        (None, Some(file), None, None) => ScriptSource::File(file),
        (None, None, Some(url), sha256) => ScriptSource::Url {
            url,
            sha256: sha256.map(|digest| Sha256Digest(digest.to_ascii_lowercase())),
        },
        (None, None, None, None) => {
            return Err(
                "give `code` (JavaScript source), `file` (an example's name) or \
                        `url` (where to load the script from)"
                    .to_owned(),
            );
        }
        _ => return Err("give exactly one of `code`, `file` and `url`".to_owned()),
    };
    // Zero was refused by the fields' `range` rules.
    Ok((
        source,
        language.unwrap_or_default(),
        timeout_ms
            .and_then(NonZeroU64::new)
            .map(TimeLimit::from_millis),
        memory_limit_mb
            .and_then(NonZeroU64::new)
            .map(MemoryLimit::from_mebibytes),
    ))
}

impl ExecuteBody {
    /// The request these fields, each already within its rule, make; or the message of the
    /// rule across them.
    fn into_request(self) -> Result<ExecuteRequest, String> {
        let (source, language, timeout, memory_limit) = script(
            self.code,
            self.file,
            self.url,
            self.sha256,
            self.language,
            self.timeout_ms,
            self.memory_limit_mb,
        )?;
        Ok(ExecuteRequest {
            source,
            language,
            timeout,
            memory_limit,
            input: self.input,
        })
    }
}

impl BatchBody {
    /// The batch these fields, each already within its rule, make; or the message of the
    /// rule across them.
    fn into_request(self) -> Result<BatchRequest, String> {
        let (source, language, timeout, memory_limit) = script(
            self.code,
            self.file,
            self.url,
            self.sha256,
            self.language,
            self.timeout_ms,
            self.memory_limit_mb,
        )?;
        Ok(BatchRequest {
            source,
            language,
            timeout,
            memory_limit,
            inputs: self.inputs,
        })
    }
}

/// The request as the ingress forwards it, in the fields clients write.
impl Serialize for ExecuteRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Forwarded::new(
            &self.source,
            self.language,
            self.timeout,
            self.memory_limit,
            ForwardedInput {
                input: self.input.as_deref(),
            },
        )
        .serialize(serializer)
    }
}

/// The batch as the ingress forwards it, in the fields clients write.
impl Serialize for BatchRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Forwarded::new(
            &self.source,
            self.language,
            self.timeout,
            self.memory_limit,
            ForwardedInputs {
                inputs: &self.inputs,
            },
        )
        .serialize(serializer)
    }
}

/// The script fields of a body, borrowed from a request, and the body's `own` fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Forwarded<'a, Own> {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<Language>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_limit_mb: Option<u64>,
    #[serde(flatten)]
    own: Own,
}

impl<'a, Own> Forwarded<'a, Own> {
    /// `language` is left out when it is JavaScript, the default, so a JavaScript request
    /// forwards as clients have always written it.
    fn new(
        source: &'a ScriptSource,
        language: Language,
        timeout: Option<TimeLimit>,
        memory_limit: Option<MemoryLimit>,
        own: Own,
    ) -> Self {
        let (code, file, url, sha256) = match source {
            ScriptSource::Code(code) => (Some(code), None, None, None),
            ScriptSource::File(file) => (None, Some(file), None, None),
            ScriptSource::Url { url, sha256 } => (None, None, Some(url), sha256.as_ref()),
        };
        Self {
            code,
            file,
            url,
            sha256: sha256.map(Sha256Digest::as_str),
            language: (language != Language::JavaScript).then_some(language),
            timeout_ms: timeout.map(TimeLimit::millis),
            memory_limit_mb: memory_limit.map(MemoryLimit::mebibytes),
            own,
        }
    }
}

/// [`ExecuteBody`]'s own field.
#[derive(Serialize)]
struct ForwardedInput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a RawValue>,
}

/// [`BatchBody`]'s own field.
#[derive(Serialize)]
struct ForwardedInputs<'a> {
    inputs: &'a [Option<Box<RawValue>>],
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

/// A language by its name, or `null`. Read as a string first, so that a value of another type
/// is a field's type error (422) as with the other fields, not a malformed body.
fn language_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Language>, D::Error> {
    const NAMES: &[&str] = &[Language::JavaScript.as_str(), Language::TypeScript.as_str()];
    let Some(name) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    Language::ALL
        .into_iter()
        .find(|language| language.as_str() == name)
        .map(Some)
        .ok_or_else(|| serde::de::Error::unknown_variant(&name, NAMES))
}

/// `url` starts with a supported scheme, in any case; its bucket, key or host are checked by
/// the ingress, which parses it.
fn source_scheme(url: &str) -> Result<(), ValidationError> {
    let supported = SOURCE_SCHEMES.iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    });
    supported
        .then_some(())
        .ok_or_else(|| ValidationError::new("source_scheme"))
}

/// At most [`MAX_SOURCE_URL_LENGTH`] bytes.
fn source_url_length(url: &str) -> Result<(), ValidationError> {
    (url.len() <= MAX_SOURCE_URL_LENGTH)
        .then_some(())
        .ok_or_else(|| ValidationError::new("source_url_length"))
}

/// 64 hex digits, either case.
fn sha256_hex(digest: &str) -> Result<(), ValidationError> {
    (digest.len() == 64 && digest.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then_some(())
        .ok_or_else(|| ValidationError::new("sha256"))
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
    plain
        .then_some(())
        .ok_or_else(|| ValidationError::new("example_name"))
}

/// What a batch's `inputs` are, for the document.
pub const INPUTS_DESCRIPTION: &str = "The script's `input` for each item, in order: any JSON \
    values, each given to its own execution exactly as `input` is to `POST /api/execute` \
    (`null` for none), each at most `MAX_INPUT_BYTES` of JSON (64 KiB by default). At least \
    one; at most `MAX_BATCH_ITEMS` (1000 by default), or the tenant's `max_batch_items` when \
    lower (422 above it).";

/// A batch's `inputs`: a list of any JSON values, at least one.
fn any_json_list() -> Schema {
    Schema::Array(
        utoipa::openapi::schema::ArrayBuilder::new()
            .description(Some(INPUTS_DESCRIPTION))
            .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue))
            .min_items(Some(1))
            .examples([serde_json::json!([{"x": 1}, {"x": 2}])])
            .build(),
    )
}

/// Any JSON value, `null` included.
pub(crate) fn any_json() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ExecuteRequest, RequestError> {
        ExecuteRequest::parse(json.as_bytes())
    }

    fn refusal(json: &str) -> String {
        match parse(json) {
            Err(RequestError::Invalid(message)) => message,
            other => panic!("{json}: expected a 422 refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_source_parses_into_its_own_variant() {
        assert_eq!(
            parse(r#"{"code": "1"}"#).unwrap().source,
            ScriptSource::Code("1".into())
        );
        assert_eq!(
            parse(r#"{"file": "pi.js", "code": null}"#).unwrap().source,
            ScriptSource::File("pi.js".into())
        );
        assert_eq!(
            parse(r#"{"url": "gs://b/a.js"}"#).unwrap().source,
            ScriptSource::Url {
                url: "gs://b/a.js".into(),
                sha256: None
            }
        );
        let pinned = parse(&format!(
            r#"{{"url": "HTTPS://h/a.js", "sha256": "{}"}}"#,
            "aB".repeat(32)
        ))
        .unwrap();
        let ScriptSource::Url {
            sha256: Some(digest),
            ..
        } = pinned.source
        else {
            panic!("{pinned:?}");
        };
        assert_eq!(digest.as_str(), "ab".repeat(32));
    }

    #[test]
    fn a_request_without_exactly_one_source_is_refused_with_the_rule() {
        let none = "give `code` (JavaScript source), `file` (an example's name) or `url` (where \
                    to load the script from)";
        let several = "give exactly one of `code`, `file` and `url`";
        let stray_pin = "`sha256` pins a script loaded from `url`: give it with `url` only";
        assert_eq!(refusal("{}"), none);
        assert_eq!(refusal(r#"{"code": null, "timeoutMs": 5}"#), none);
        assert_eq!(refusal(r#"{"code": "1", "file": "pi.js"}"#), several);
        assert_eq!(refusal(r#"{"url": "gs://b/a.js", "code": "1"}"#), several);
        assert_eq!(
            refusal(r#"{"url": "gs://b/a.js", "file": "pi.js"}"#),
            several
        );
        let pin = "a".repeat(64);
        assert_eq!(
            refusal(&format!(r#"{{"code": "1", "sha256": "{pin}"}}"#)),
            stray_pin
        );
    }

    #[test]
    fn each_field_is_refused_with_the_message_declared_on_its_rule() {
        for (json, message) in [
            (r#"{"code": ""}"#, "code: must not be empty"),
            (
                r#"{"file": "../etc/passwd"}"#,
                "file: must be the plain name of an example script, such as `simple.js`",
            ),
            (
                r#"{"url": "file:///etc/passwd"}"#,
                "url: must start with gs://, s3://, https:// or http://, e.g. gs://bucket/script.js",
            ),
            (
                r#"{"url": "gs://b/a.js", "sha256": "abc"}"#,
                "sha256: must be a SHA-256 digest: 64 hex digits",
            ),
            (
                r#"{"code": "1", "timeoutMs": 0}"#,
                "timeoutMs: must be at least 1",
            ),
            (
                r#"{"code": "1", "memoryLimitMb": 0}"#,
                "memoryLimitMb: must be at least 1",
            ),
        ] {
            assert_eq!(refusal(json), message, "{json}");
        }
        let long = format!(r#"{{"url": "gs://b/{}"}}"#, "a".repeat(2048));
        assert_eq!(refusal(&long), "url: must be at most 2048 characters");
        let long_in_bytes = format!(r#"{{"url": "gs://b/{}"}}"#, "\u{e9}".repeat(1100));
        assert_eq!(
            refusal(&long_in_bytes),
            "url: must be at most 2048 characters"
        );
    }

    #[test]
    fn field_rules_come_before_the_rule_across_fields_and_are_listed_by_field() {
        assert_eq!(
            refusal(r#"{"code": "", "file": "a/b", "timeoutMs": 0}"#),
            "code: must not be empty; file: must be the plain name of an example script, such \
             as `simple.js`; timeoutMs: must be at least 1"
        );
    }

    #[test]
    fn type_errors_and_unknown_fields_name_the_field_as_axum_did() {
        assert_eq!(
            refusal(r#"{"code": "1", "timeout": 5}"#),
            "Failed to deserialize the JSON body into the target type: timeout: unknown field \
             `timeout`, \
             expected one of `code`, `file`, `url`, `language`, `sha256`, `timeoutMs`, \
             `memoryLimitMb`, `input` at line 1 column 23"
        );
        assert_eq!(
            refusal(r#"{"code": 7}"#),
            "Failed to deserialize the JSON body into the target type: code: invalid type: \
             integer `7`, expected a string at line 1 column 10"
        );
        assert_eq!(
            refusal(r#"{"code": "1", "timeoutMs": 1.5}"#),
            "Failed to deserialize the JSON body into the target type: timeoutMs: invalid value: \
             floating point `1.5`, expected a whole number of at least 1 at line 1 column 31"
        );
    }

    #[test]
    fn the_language_is_javascript_unless_typescript_is_asked_for() {
        assert_eq!(
            parse(r#"{"code": "1"}"#).unwrap().language,
            Language::JavaScript
        );
        assert_eq!(
            parse(r#"{"code": "1", "language": null}"#)
                .unwrap()
                .language,
            Language::JavaScript
        );
        assert_eq!(
            parse(r#"{"code": "1", "language": "javascript"}"#)
                .unwrap()
                .language,
            Language::JavaScript
        );
        assert_eq!(
            parse(r#"{"file": "pi.js", "language": "typescript"}"#)
                .unwrap()
                .language,
            Language::TypeScript
        );
    }

    #[test]
    fn an_unknown_language_is_refused_with_the_ones_there_are() {
        for unknown in [r#""python""#, r#""TypeScript""#, r#""ts""#, "1", "{}"] {
            let message = refusal(&format!(r#"{{"code": "1", "language": {unknown}}}"#));
            assert!(
                message.starts_with(
                    "Failed to deserialize the JSON body into the target type: language: "
                ),
                "{unknown}: {message}"
            );
        }
        assert_eq!(
            refusal(r#"{"code": "1", "language": "python"}"#),
            "Failed to deserialize the JSON body into the target type: language: unknown \
             variant `python`, expected `javascript` or `typescript` at line 1 column 35"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_told_apart_from_an_invalid_request() {
        for body in ["", "{", "not json", r#"{"code": "1"} trailing"#] {
            let error = parse(body).unwrap_err();
            assert!(
                matches!(error, RequestError::NotJson(_)),
                "{body:?}: {error:?}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with("Failed to parse the request body as JSON: "),
                "{error}"
            );
        }
    }

    #[test]
    fn limits_are_whole_numbers_however_json_writes_them() {
        let timeout = |json: &str| {
            parse(&format!(r#"{{"code": "1", "timeoutMs": {json}}}"#))
                .map(|request| request.timeout.map(TimeLimit::millis))
        };
        assert_eq!(timeout("1000").unwrap(), Some(1000));
        assert_eq!(timeout("1000.0").unwrap(), Some(1000));
        assert_eq!(timeout("1e3").unwrap(), Some(1000));
        assert_eq!(timeout("null").unwrap(), None);
        for refused in ["1000.5", "-1", "1e300", "\"1000\"", "0"] {
            assert!(
                matches!(timeout(refused), Err(RequestError::Invalid(_))),
                "{refused}"
            );
        }
        let memory = parse(r#"{"code": "1", "memoryLimitMb": 32}"#).unwrap();
        assert_eq!(memory.memory_limit.map(MemoryLimit::bytes), Some(32 << 20));
        let absent = parse(r#"{"code": "1"}"#).unwrap();
        assert_eq!((absent.timeout, absent.memory_limit), (None, None));
    }

    #[test]
    fn a_parsed_request_forwards_as_the_same_request() {
        let sent = parse(
            r#"{"url": "gs://b/a.js", "language": "typescript", "timeoutMs": 1e3,
                "memoryLimitMb": 8,
                "input": {"a": [1, "\u00e9"]}}"#,
        )
        .unwrap();
        let mut loaded = sent;
        loaded.source = ScriptSource::Code("input.a".into());
        let forwarded = serde_json::to_vec(&loaded).unwrap();
        let received = ExecuteRequest::parse(&forwarded).unwrap();
        assert_eq!(received.source, ScriptSource::Code("input.a".into()));
        assert_eq!(received.language, Language::TypeScript);
        assert_eq!(received.timeout.map(TimeLimit::millis), Some(1000));
        assert_eq!(received.memory_limit.map(MemoryLimit::mebibytes), Some(8));
        assert_eq!(
            received.input.as_deref().map(RawValue::get),
            Some(r#"{"a": [1, "\u00e9"]}"#)
        );
    }

    #[test]
    fn a_batch_parses_its_inputs_in_order_with_the_script_fields_of_an_execute_request() {
        let batch = BatchRequest::parse(
            br#"{"file": "pi.js", "timeoutMs": 100, "inputs": [1, null, {"a": [2]}]}"#,
        )
        .unwrap();
        assert_eq!(batch.source, ScriptSource::File("pi.js".into()));
        assert_eq!(batch.language, Language::JavaScript);
        assert_eq!(batch.timeout.map(TimeLimit::millis), Some(100));
        let inputs: Vec<_> = batch
            .inputs
            .iter()
            .map(|input| input.as_deref().map(RawValue::get))
            .collect();
        assert_eq!(inputs, [Some("1"), None, Some(r#"{"a": [2]}"#)]);
    }

    #[test]
    fn a_batch_is_refused_with_the_rule_it_breaks() {
        let batch = |json: &str| match BatchRequest::parse(json.as_bytes()) {
            Err(RequestError::Invalid(message)) => message,
            other => panic!("{json}: expected a 422 refusal, got {other:?}"),
        };
        assert_eq!(
            batch(r#"{"code": "1", "inputs": []}"#),
            "inputs: give at least one input"
        );
        assert_eq!(
            batch(r#"{"inputs": [1]}"#),
            "give `code` (JavaScript source), `file` (an example's name) or `url` (where to \
             load the script from)"
        );
        assert!(
            batch(r#"{"code": "1"}"#).contains("missing field `inputs`"),
            "{}",
            batch(r#"{"code": "1"}"#)
        );
        assert!(
            batch(r#"{"code": "1", "inputs": {"a": 1}}"#).contains("inputs: invalid type"),
            "{}",
            batch(r#"{"code": "1", "inputs": {"a": 1}}"#)
        );
        // `input` belongs to an execute request: a batch has `inputs`.
        assert!(
            batch(r#"{"code": "1", "input": 1, "inputs": [1]}"#).contains("unknown field `input`"),
            "{}",
            batch(r#"{"code": "1", "input": 1, "inputs": [1]}"#)
        );
        assert!(matches!(
            BatchRequest::parse(br#"{"code": "1", "inputs": [1"#),
            Err(RequestError::NotJson(_))
        ));
        assert!(
            parse(r#"{"code": "1", "inputs": [1]}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field `inputs`")
        );
    }

    #[test]
    fn a_parsed_batch_forwards_as_the_same_batch() {
        let mut sent = BatchRequest::parse(
            br#"{"url": "gs://b/a.js", "language": "typescript", "memoryLimitMb": 8,
                 "inputs": [{"n": 1}, null]}"#,
        )
        .unwrap();
        sent.source = ScriptSource::Code("input".into());
        let received = BatchRequest::parse(&serde_json::to_vec(&sent).unwrap()).unwrap();
        assert_eq!(received.source, ScriptSource::Code("input".into()));
        assert_eq!(received.language, Language::TypeScript);
        assert_eq!(received.memory_limit.map(MemoryLimit::mebibytes), Some(8));
        assert_eq!(received.timeout, None);
        let inputs: Vec<_> = received
            .inputs
            .iter()
            .map(|input| input.as_deref().map(RawValue::get))
            .collect();
        assert_eq!(inputs, [Some(r#"{"n": 1}"#), None]);
    }

    #[test]
    fn a_javascript_request_forwards_without_a_language_field() {
        let sent = parse(r#"{"code": "1", "language": "javascript"}"#).unwrap();
        let forwarded = serde_json::to_string(&sent).unwrap();
        assert_eq!(forwarded, r#"{"code":"1"}"#);
    }

    #[test]
    fn a_session_request_is_an_object_of_optional_limits_or_nothing() {
        assert_eq!(
            SessionRequest::parse(b"").unwrap(),
            SessionRequest::default()
        );
        assert_eq!(
            SessionRequest::parse(b"{}").unwrap(),
            SessionRequest::default()
        );
        let asked =
            SessionRequest::parse(br#"{"ttlSeconds": 60, "timeoutMs": 500, "memoryLimitMb": 8}"#)
                .unwrap();
        assert_eq!(asked.idle_timeout, Some(std::time::Duration::from_secs(60)));
        assert_eq!(asked.timeout.map(TimeLimit::millis), Some(500));
        assert_eq!(asked.memory_limit.map(MemoryLimit::mebibytes), Some(8));
        for (body, message) in [
            ("[null, null]", "expected an object"),
            (r#"{"ttlSeconds": 0}"#, "ttlSeconds: must be at least 1"),
            (r#"{"ttl": 5}"#, "unknown field `ttl`"),
        ] {
            let Err(RequestError::Invalid(refused)) = SessionRequest::parse(body.as_bytes()) else {
                panic!("{body} was not refused as invalid");
            };
            assert!(refused.contains(message), "{body}: {refused}");
        }
        assert!(matches!(
            SessionRequest::parse(b"{"),
            Err(RequestError::NotJson(_))
        ));
    }
}
