//! The MCP tools, and what the SDK asks of a server (its description, the tool list).
//!
//! A tool does what the HTTP API does and nothing of its own: `run_javascript` sends the
//! sandbox the `POST /api/execute` request the API would get (with a `session`, `POST
//! /api/sessions/{id}/execute`), through the same [`Proxy`] and for the same caller, so the
//! execution has the same admission, limits, ceilings, fair turn, refusal memory and timeouts,
//! and every field is checked once, by the sandbox's parser. `create_session` is `POST
//! /api/sessions`, `end_session` is `DELETE /api/sessions/{id}` and `list_examples` is `GET
//! /api/examples`, so a session made here belongs to the caller exactly as one made through
//! the API does. The sandbox's answer becomes the tool's result: its JSON as structured content
//! (described by the same schema the OpenAPI document gives it) and a short text rendering for
//! clients that read only text. A script that fails is a result with `isError: true`; so is a
//! request the service refuses (422, 404 `session_not_found`, 503, ...), with its kind and
//! message as the text. Protocol errors are left for what is not a call of these tools.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::IntoResponse;
use contract::envelope::ErrorEnvelope;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::schemars::JsonSchema;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ServerHandler, handler::server::common::schema_for_type};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Caller;
use crate::proxy::Proxy;
use crate::request_id::X_REQUEST_ID;

const RUN_JAVASCRIPT: &str = "run_javascript";
const LIST_EXAMPLES: &str = "list_examples";
const CREATE_SESSION: &str = "create_session";
const END_SESSION: &str = "end_session";

/// The largest answer of the sandbox a tool reads: far above its largest (`MAX_RESULT_BYTES`
/// plus `MAX_LOG_BYTES`, 2 MiB by default).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// What the server tells agents about itself.
const INSTRUCTIONS: &str = "jsbox runs JavaScript in an isolated sandbox. Call `run_javascript` \
    with a script: the value of its last expression comes back as `result`, with its console \
    output in `log`. Each run starts from nothing and keeps nothing, unless it is given a \
    `session`: `create_session` makes one, runs that name it share one runtime (what one run \
    defines, the next can use), and `end_session` ends it (left idle, it expires by itself). \
    `list_examples` shows example scripts.";

const RUN_JAVASCRIPT_DESCRIPTION: &str = "Runs a JavaScript program in an isolated sandbox and \
    returns the value of its last expression (a Promise is awaited) as JSON in `result`, every \
    console call in `log`, and, when the script throws, times out, runs out of memory or \
    overflows its stack, the error in `error` (the result is then marked as an error). Each \
    run gets a fresh runtime with standard JavaScript built-ins, no files, no environment and \
    nothing kept from earlier runs, unless `session` names a session from `create_session`: \
    then it runs in that session's runtime, where the globals of its earlier runs are. Give \
    it data through `input`, which the script reads as the global `input`. Time and memory \
    are limited: `timeoutMs` and `memoryLimitMb` choose lower or higher limits within the \
    ceilings of this API key (in a session, the memory limit is the session's, so \
    `memoryLimitMb` is refused).";

const CREATE_SESSION_DESCRIPTION: &str = "Creates a session: a JavaScript runtime that keeps its \
    state from one `run_javascript` call to the next (pass its `id` as their `session`). It \
    ends when left idle for `ttlSeconds` (each run starts the wait again), at the service's \
    maximum age, when `end_session` ends it, or when a run in it must be killed or runs out of \
    memory. `timeoutMs` is the default time limit of its runs, `memoryLimitMb` the memory \
    limit of the whole session, everything its runs leave behind included. Returns its `id` \
    and `expiresAt`. Sessions held at once, and their memory, are capped per API key.";

const END_SESSION_DESCRIPTION: &str = "Ends a session from `create_session`: its runtime and \
    everything in it are gone, and its id is no longer known.";

const LIST_EXAMPLES_DESCRIPTION: &str = "Lists the service's bundled example scripts, each \
    with its name and JavaScript source, to read or to run with `run_javascript`.";

// The fields of an execute request that a script given as `code` may have, named as the API
// names them, so they are sent to the sandbox as they came. Only the shape is checked here (a
// `code` string, no other field); every value is checked by the sandbox's parser, as an API
// request's is, which is why the fields other than `code` are JSON values that the schema
// describes as the API defines them. (Doc comments here are the schema's descriptions, which
// agents read.)
/// A script to run, and how.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
struct RunJavascript {
    /// The program: JavaScript run as a classic script (TypeScript with `language`). The value
    /// of its last expression is the result, as with `eval`.
    #[schemars(length(min = 1))]
    code: String,
    /// Any JSON value, given to the script as its global `input` (a deeply frozen copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    /// The language of `code`: `javascript` (the default), or `typescript`, whose types are
    /// removed before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Language>")]
    language: Option<Value>,
    /// The time limit in milliseconds; the service's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>", range(min = 1))]
    timeout_ms: Option<Value>,
    /// The memory limit in MiB; the service's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>", range(min = 1))]
    memory_limit_mb: Option<Value>,
    /// The `id` of a session from `create_session` to run in, where the globals of its earlier
    /// runs are; left out, the run starts from nothing. (A jsbox session, not the MCP
    /// transport's.)
    #[serde(default, skip_serializing)]
    #[schemars(with = "Option<String>", length(min = 1))]
    session: Option<SessionId>,
}

/// A session to create, its fields named as the API names them and checked by the sandbox.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
struct CreateSession {
    /// How long the session may sit idle, in seconds, each run starting the wait again; the
    /// service's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>", range(min = 1))]
    ttl_seconds: Option<Value>,
    /// The time limit of each run in the session that names none, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>", range(min = 1))]
    timeout_ms: Option<Value>,
    /// The session's memory limit in MiB, for everything its runtime holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u64>", range(min = 1))]
    memory_limit_mb: Option<Value>,
}

/// The session to end.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
struct EndSession {
    /// The `id` `create_session` returned.
    #[schemars(with = "String", length(min = 1))]
    id: SessionId,
}

/// A session id as a client gave it, fit to be one segment of the sandbox's path: letters and
/// digits only, and short (the sandbox's ids are 32 hex digits; 64 leaves room, not more).
/// Whether such a session exists, and is the caller's, is the sandbox's to say.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
struct SessionId(String);

impl TryFrom<String> for SessionId {
    type Error = &'static str;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            Ok(Self(id))
        } else {
            Err("not a session id: give the `id` that create_session returned")
        }
    }
}

// Only the schema uses it: `language` goes to the sandbox as given.
/// The language a script is written in.
#[derive(JsonSchema)]
#[schemars(crate = "rmcp::schemars", rename_all = "lowercase")]
#[allow(dead_code, reason = "a schema, never a value")]
enum Language {
    Javascript,
    Typescript,
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
struct ListExamples {}

/// The MCP server: the tools, over the proxy to the sandbox. Cloned for each request.
#[derive(Clone)]
pub struct Tools {
    proxy: Arc<Proxy>,
    list: Arc<[Tool]>,
}

impl Tools {
    pub fn new(proxy: Arc<Proxy>) -> Self {
        let schemas = &document_schemas();
        let run = Tool::new(
            RUN_JAVASCRIPT,
            RUN_JAVASCRIPT_DESCRIPTION,
            schema_for_type::<RunJavascript>(),
        )
        .with_title("Run JavaScript")
        .with_raw_output_schema(output_schema(schemas, "ExecuteResponse"))
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false));
        let list = Tool::new(
            LIST_EXAMPLES,
            LIST_EXAMPLES_DESCRIPTION,
            schema_for_type::<ListExamples>(),
        )
        .with_title("List example scripts")
        .with_raw_output_schema(output_schema(schemas, "ExampleList"))
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false));
        let create = Tool::new(
            CREATE_SESSION,
            CREATE_SESSION_DESCRIPTION,
            schema_for_type::<CreateSession>(),
        )
        .with_title("Create a session")
        .with_raw_output_schema(output_schema(schemas, "SessionCreated"))
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .open_world(false),
        );
        let end = Tool::new(
            END_SESSION,
            END_SESSION_DESCRIPTION,
            schema_for_type::<EndSession>(),
        )
        .with_title("End a session")
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        );
        Self {
            proxy,
            list: Arc::from([run, list, create, end]),
        }
    }
}

/// The OpenAPI document's component schemas, from which the tools' output schemas are taken.
fn document_schemas() -> Value {
    // Limits shape only the request's schema, which no output schema refers to.
    let limits = contract::openapi::Limits {
        default_timeout_ms: 1,
        max_timeout_ms: 1,
        default_memory_limit_mb: 1,
        max_memory_limit_mb: 1,
        max_body_bytes: 1,
        max_batch_items: 1,
        default_session_ttl_s: 1,
        max_session_ttl_s: 1,
        examples: Vec::new(),
    };
    let document = serde_json::to_value(contract::openapi::document(&limits))
        .expect("the OpenAPI document is JSON");
    document["components"]["schemas"].clone()
}

/// The OpenAPI document's schema `name` as a JSON Schema of its own: the schemas it refers
/// to, directly or not, become its `$defs`.
fn output_schema(schemas: &Value, name: &str) -> Arc<JsonObject> {
    const PREFIX: &str = "#/components/schemas/";
    /// Points `value`'s references into `$defs` and collects the names they refer to.
    fn relink(value: &mut Value, referred: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(target)) = object.get_mut("$ref")
                    && let Some(name) = target.strip_prefix(PREFIX)
                {
                    referred.push(name.to_owned());
                    *target = format!("#/$defs/{name}");
                }
                object
                    .values_mut()
                    .for_each(|value| relink(value, referred));
            }
            Value::Array(items) => items.iter_mut().for_each(|value| relink(value, referred)),
            _ => {}
        }
    }
    let mut referred = Vec::new();
    let Value::Object(mut schema) = schemas[name].clone() else {
        panic!("the OpenAPI document has no object schema {name}");
    };
    schema
        .values_mut()
        .for_each(|value| relink(value, &mut referred));
    let mut defs = JsonObject::new();
    while let Some(next) = referred.pop() {
        if defs.contains_key(&next) {
            continue;
        }
        let mut def = schemas[&next].clone();
        relink(&mut def, &mut referred);
        defs.insert(next, def);
    }
    if !defs.is_empty() {
        schema.insert("$defs".into(), Value::Object(defs));
    }
    Arc::new(schema)
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("jsbox", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.list.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.list.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let parts = context
            .extensions
            .get::<Parts>()
            .ok_or_else(|| ErrorData::internal_error("no HTTP request", None))?;
        let caller = parts
            .extensions
            .get::<Caller>()
            .ok_or_else(|| ErrorData::internal_error("no identified caller", None))?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let call = async {
            match request.name.as_ref() {
                RUN_JAVASCRIPT => Ok(self.run_javascript(caller, parts, arguments).await),
                LIST_EXAMPLES => Ok(self.list_examples(caller, parts, arguments).await),
                CREATE_SESSION => Ok(self.create_session(caller, parts, arguments).await),
                END_SESSION => Ok(self.end_session(caller, parts, arguments).await),
                other => Err(ErrorData::invalid_params(
                    format!(
                        "no tool named {other:?}: the tools are {RUN_JAVASCRIPT}, \
                         {LIST_EXAMPLES}, {CREATE_SESSION} and {END_SESSION}"
                    ),
                    None,
                )),
            }
        };
        // A client that goes away cancels the call, and with it the sandbox's execution.
        tokio::select! {
            result = call => result.map(Into::into),
            () = context.ct.cancelled() => Err(ErrorData::internal_error("cancelled", None)),
        }
    }
}

impl Tools {
    async fn run_javascript(
        &self,
        caller: &Caller,
        parts: &Parts,
        arguments: Value,
    ) -> CallToolResult {
        let fields: RunJavascript = match parsed(arguments) {
            Ok(fields) => fields,
            Err(refusal) => return refusal,
        };
        let path = match &fields.session {
            Some(SessionId(id)) => format!("/api/sessions/{id}/execute"),
            None => "/api/execute".to_owned(),
        };
        match self.ask(caller, post(parts, &path, &fields)).await {
            Err(refusal) => refused(refusal),
            Ok(answer) => {
                let text = render_execution(&answer);
                let failed = answer["status"] != "success";
                structured(answer, text, failed)
            }
        }
    }

    async fn list_examples(
        &self,
        caller: &Caller,
        parts: &Parts,
        arguments: Value,
    ) -> CallToolResult {
        if let Err(refusal) = parsed::<ListExamples>(arguments) {
            return refusal;
        }
        let request = sandbox_request(parts, Method::GET, "/api/examples")
            .body(Body::empty())
            .expect("a valid request");
        match self.ask(caller, request).await {
            Err(refusal) => refused(refusal),
            Ok(answer) => {
                let text = render_examples(&answer);
                structured(answer, text, false)
            }
        }
    }

    async fn create_session(
        &self,
        caller: &Caller,
        parts: &Parts,
        arguments: Value,
    ) -> CallToolResult {
        let fields: CreateSession = match parsed(arguments) {
            Ok(fields) => fields,
            Err(refusal) => return refusal,
        };
        match self
            .ask(caller, post(parts, "/api/sessions", &fields))
            .await
        {
            Err(refusal) => refused(refusal),
            Ok(answer) => {
                let text = format!(
                    "session {} created; it expires at {} if left idle. Pass its id as \
                     `session` to run_javascript.",
                    answer["id"].as_str().unwrap_or_default(),
                    answer["expiresAt"].as_str().unwrap_or_default(),
                );
                structured(answer, text, false)
            }
        }
    }

    async fn end_session(
        &self,
        caller: &Caller,
        parts: &Parts,
        arguments: Value,
    ) -> CallToolResult {
        let EndSession { id: SessionId(id) } = match parsed(arguments) {
            Ok(fields) => fields,
            Err(refusal) => return refusal,
        };
        let request = sandbox_request(parts, Method::DELETE, &format!("/api/sessions/{id}"))
            .body(Body::empty())
            .expect("a valid request");
        match self.ask(caller, request).await {
            Err(refusal) => refused(refusal),
            Ok(_) => CallToolResult::success(vec![ContentBlock::text(format!(
                "session {id} ended; its state is gone"
            ))]),
        }
    }

    /// Sends `request` to the sandbox for `caller`: its successful answer's JSON (`null` for
    /// one without a body, such as a 204), or what to tell the caller about a refusal (the
    /// service's error kind and message).
    async fn ask(&self, caller: &Caller, request: Request) -> Result<Value, String> {
        let response = match self.proxy.send(caller, request, &mut None).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
            .await
            .map_err(|_| {
                format!("the service's answer was cut off or larger than {MAX_ANSWER_BYTES} bytes")
            })?;
        if parts.status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if parts.status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|_| "the service's answer is not JSON".to_owned());
        }
        let retry = parts
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(|seconds| format!(" (retry in {seconds} s)"))
            .unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(envelope) => format!(
                "refused with HTTP {} {}: {}{retry}",
                parts.status.as_u16(),
                envelope.error.kind.as_str(),
                envelope.error.message
            ),
            Err(_) => format!("refused with HTTP {}{retry}", parts.status.as_u16()),
        })
    }
}

/// A request to the sandbox's `path`, carrying the MCP request's correlation ids (the proxy
/// adds the caller's tenant headers).
fn sandbox_request(parts: &Parts, method: Method, path: &str) -> axum::http::request::Builder {
    let mut builder = Request::builder().method(method).uri(path);
    let correlation = [
        X_REQUEST_ID,
        HeaderName::from_static(contract::ids::TRACEPARENT_HEADER),
        HeaderName::from_static(contract::ids::CLOUD_TRACE_HEADER),
    ];
    for name in correlation {
        if let Some(value) = parts.headers.get(&name) {
            builder = builder.header(name, value);
        }
    }
    builder
}

/// A tool error whose text says what happened.
fn refused(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

/// A tool's arguments as its type, or the result that refuses them.
fn parsed<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, CallToolResult> {
    serde_json::from_value(arguments)
        .map_err(|error| refused(format!("invalid arguments: {error}")))
}

/// `POST path` to the sandbox with `fields` as its JSON body.
fn post(parts: &Parts, path: &str, fields: &impl Serialize) -> Request {
    let body = serde_json::to_vec(fields).expect("arguments are JSON");
    sandbox_request(parts, Method::POST, path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid request")
}

/// The sandbox's answer as structured content, with `text` for clients that read only text;
/// marked as an error when `failed`.
fn structured(answer: Value, text: String, failed: bool) -> CallToolResult {
    let mut result = if failed {
        CallToolResult::structured_error(answer)
    } else {
        CallToolResult::structured(answer)
    };
    result.content = vec![ContentBlock::text(text)];
    result
}

/// An execute answer for people: the result or the error, then the console, one line per call.
fn render_execution(answer: &Value) -> String {
    let mut text = String::new();
    if answer["status"] == "success" {
        text.push_str(&format!("result: {}\n", answer["result"]));
    } else {
        let error = &answer["error"];
        text.push_str(&format!(
            "error ({}): {}: {}\n",
            error["kind"].as_str().unwrap_or("unknown"),
            error["name"].as_str().unwrap_or("Error"),
            error["message"].as_str().unwrap_or_default(),
        ));
        if let Some(stack) = error["stack"].as_str() {
            for line in stack.lines() {
                text.push_str(&format!("    {}\n", line.trim()));
            }
        }
    }
    let entries = answer["log"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !entries.is_empty() {
        text.push_str("console:\n");
    }
    for entry in entries {
        let data: Vec<Cow<'_, str>> = entry["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|item| match item {
                Value::String(text) => Cow::Borrowed(text.as_str()),
                other => Cow::Owned(other.to_string()),
            })
            .collect();
        text.push_str(&format!(
            "  [{}] {}\n",
            entry["type"].as_str().unwrap_or("log"),
            data.join(" ")
        ));
    }
    text
}

/// The example list for people: each name, then its source.
fn render_examples(answer: &Value) -> String {
    let examples = answer["examples"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    examples
        .iter()
        .map(|example| {
            format!(
                "// {}\n{}\n",
                example["name"].as_str().unwrap_or_default(),
                example["source"].as_str().unwrap_or_default().trim_end()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_success_renders_its_result_and_console_lines() {
        let text = render_execution(&json!({
            "status": "success",
            "result": {"sum": 3},
            "error": false,
            "log": [
                {"type": "log", "timestamp": "2026-01-01T00:00:00.000Z", "data": ["hello", 1]},
                {"type": "warn", "timestamp": "2026-01-01T00:00:00.000Z", "data": [{"a": [1]}]}
            ],
            "executionTime": 1.5
        }));
        assert_eq!(
            text,
            "result: {\"sum\":3}\nconsole:\n  [log] hello 1\n  [warn] {\"a\":[1]}\n"
        );
    }

    #[test]
    fn a_failure_renders_its_kind_name_message_and_stack() {
        let text = render_execution(&json!({
            "status": "error",
            "result": null,
            "error": {"kind": "exception", "name": "TypeError", "message": "x is not a function",
                      "stack": "    at f (script.js:2:3)\n    at script.js:4:1"},
            "log": [],
            "executionTime": 0.5
        }));
        assert_eq!(
            text,
            "error (exception): TypeError: x is not a function\n    at f (script.js:2:3)\n    at script.js:4:1\n"
        );
    }

    #[test]
    fn arguments_go_to_the_sandbox_as_the_api_names_them_and_unknown_ones_are_refused() {
        let fields: RunJavascript = serde_json::from_value(json!({
            "code": "1", "input": {"n": 1}, "language": "typescript", "timeoutMs": 50,
            "memoryLimitMb": 8
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&fields).unwrap(),
            json!({"code": "1", "input": {"n": 1}, "language": "typescript", "timeoutMs": 50,
                   "memoryLimitMb": 8})
        );
        let bare: RunJavascript = serde_json::from_value(json!({"code": "1"})).unwrap();
        assert_eq!(serde_json::to_value(&bare).unwrap(), json!({"code": "1"}));
        // The session goes into the path, not the body.
        let in_session: RunJavascript =
            serde_json::from_value(json!({"code": "1", "session": "5f0c2a9b"})).unwrap();
        assert_eq!(
            serde_json::to_value(&in_session).unwrap(),
            json!({"code": "1"})
        );
        for bad in [
            json!({"code": "1", "url": "https://x"}),
            json!({"input": 1}),
            json!({"code": "1", "session": "../execute"}),
            json!({"code": "1", "session": ""}),
            json!({"code": "1", "session": 7}),
        ] {
            assert!(serde_json::from_value::<RunJavascript>(bad).is_err());
        }
    }

    #[test]
    fn the_output_schemas_are_the_documents_with_their_references_inside() {
        let schema =
            Value::Object((*output_schema(&document_schemas(), "ExecuteResponse")).clone());
        assert_eq!(schema["type"], "object");
        let text = schema.to_string();
        assert!(!text.contains("#/components/"), "{text}");
        // Referred to through `error`, `log` and, from there, the entries' `type`.
        let defs: Vec<&String> = schema["$defs"].as_object().unwrap().keys().collect();
        for name in [
            "ScriptError",
            "ErrorKind",
            "LogEntry",
            "LogType",
            "ExecutionStatus",
        ] {
            assert!(defs.contains(&&name.to_owned()), "{name} not in {defs:?}");
        }
        assert!(!defs.contains(&&"ExecuteRequest".to_owned()), "{defs:?}");
    }
}
