//! The OpenAPI 3.1 document of the public API, built from the types that parse and answer
//! requests ([`crate::request`], [`crate::api`], [`crate::envelope`], [`crate::outcome`]), so a field, a kind or a
//! status added there shows up here.
//!
//! The sandbox builds it once at start-up with its own limits and example names
//! ([`Limits`]), so the document states the maximums this deployment enforces; the ingress
//! serves it at `GET /api/openapi.json` to anyone, without a key. Every status either process
//! can answer a public route with is listed, the ingress's own (401, 403, 429, 502, 504, and the
//! `source_*` kinds of scripts loaded from a `url`) included.

use serde_json::{Value, json};
use utoipa::{
    OpenApi, ToSchema,
    openapi::{
        self, Components, ContentBuilder, HeaderBuilder, PathItem, RefOr, Required,
        ResponseBuilder, Schema,
        example::ExampleBuilder,
        path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::{ObjectBuilder, OneOfBuilder, Ref, SchemaType, Type},
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
        tag::TagBuilder,
    },
};

use crate::{
    api::{
        BatchLine, BatchResponse, ERROR_EVENT, EVENT_STREAM, ExampleList, ExecuteResponse,
        ExecutionStatus, HEARTBEAT_INTERVAL, Health, HealthStatus, LOG_EVENT, LogEntry, LogType,
        NDJSON, RESULT_EVENT, SessionCreated, SessionState,
    },
    envelope::{ErrorEnvelope, RequestErrorKind},
    outcome::{ErrorKind, ScriptError},
    request::{BatchBody, ExecuteBody, Language, SessionBody},
};

/// The path the ingress serves the document at.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

/// What a deployment enforces, stated in the document.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub default_memory_limit_mb: u64,
    pub max_memory_limit_mb: u64,
    pub max_body_bytes: usize,
    /// Most `inputs` of a batch (`MAX_BATCH_ITEMS`).
    pub max_batch_items: usize,
    /// A session's idle timeout when it names none, and the longest it may ask for, in seconds
    /// (`SESSION_IDLE_TIMEOUT_S`, `SESSION_MAX_IDLE_TIMEOUT_S`).
    pub default_session_ttl_s: u64,
    pub max_session_ttl_s: u64,
    /// The bundled examples' names, which are all `file` may name.
    pub examples: Vec<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jsbox",
        description = "Runs untrusted JavaScript: POST a script, get back its result, its console \
            output as structured entries with timestamps, its execution time, and a clear error \
            when it throws, loops forever, runs out of memory or overflows its stack.\n\n\
            Keys: send a tenant's key as `Authorization: Bearer <key>` or `x-api-key: <key>`. \
            Without one a request is anonymous, with the anonymous tier's limits, or 401 where \
            the operator turned that tier off. A key that is sent but unknown is always 401.\n\n\
            Every request error has the same shape: `{\"status\": \"error\", \"error\": \
            {\"kind\", \"message\"}}`; branch on `kind`, show `message` to people.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(
        ExecuteBody,
        Language,
        ExecuteResponse,
        BatchBody,
        BatchResponse,
        BatchLine,
        ExecutionStatus,
        ScriptError,
        ErrorKind,
        LogEntry,
        LogType,
        ExampleList,
        Health,
        HealthStatus,
        ErrorEnvelope,
        RequestErrorKind,
        SessionBody,
        SessionCreated,
        SessionState,
    ))
)]
struct Generated;

/// The document for a deployment with `limits`.
pub fn document(limits: &Limits) -> openapi::OpenApi {
    let mut document = Generated::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = document.components.get_or_insert_with(Components::new);
    // A session's execution takes the execute request without `memoryLimitMb`: the same
    // parser, and the same schema less that field.
    let mut session_execute = components
        .schemas
        .get(ExecuteBody::name().as_ref())
        .cloned()
        .expect("the execute request's schema");
    if let RefOr::T(Schema::Object(object)) = &mut session_execute {
        object.properties.shift_remove("memoryLimitMb");
        object.description = Some(
            "The body of `POST /api/sessions/{id}/execute`: an execute request without \
             `memoryLimitMb`, which is the session's."
                .to_owned(),
        );
    }
    components
        .schemas
        .insert(SESSION_EXECUTE_REQUEST.to_owned(), session_execute);
    state_limits(components, SESSION_EXECUTE_REQUEST, limits);
    state_session_limits(components, limits);
    state_limits(components, ExecuteBody::name().as_ref(), limits);
    state_limits(components, BatchBody::name().as_ref(), limits);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A tenant's API key: `Authorization: Bearer <key>`."))
                .build(),
        ),
    );
    components.add_security_scheme(
        API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "x-api-key",
            "A tenant's API key, as `x-api-key: <key>`.",
        ))),
    );
    document.tags = Some(vec![
        TagBuilder::new()
            .name("execution")
            .description(Some("Running scripts."))
            .build(),
        TagBuilder::new()
            .name("sessions")
            .description(Some(
                "Runtimes that keep their state across executions, on one instance.",
            ))
            .build(),
        TagBuilder::new()
            .name("service")
            .description(Some("Health and this document."))
            .build(),
    ]);
    document.paths.paths.insert(
        "/api/execute".into(),
        PathItem::new(HttpMethod::Post, execute(limits)),
    );
    document.paths.paths.insert(
        "/api/batch".into(),
        PathItem::new(HttpMethod::Post, batch(limits)),
    );
    document.paths.paths.insert(
        "/api/sessions".into(),
        PathItem::new(HttpMethod::Post, create_session(limits)),
    );
    let mut session = PathItem::new(HttpMethod::Get, session_state());
    session.delete = Some(end_session());
    document
        .paths
        .paths
        .insert("/api/sessions/{id}".into(), session);
    document.paths.paths.insert(
        "/api/sessions/{id}/execute".into(),
        PathItem::new(HttpMethod::Post, execute_in_session(limits)),
    );
    document.paths.paths.insert(
        "/api/examples".into(),
        PathItem::new(HttpMethod::Get, list_examples()),
    );
    document.paths.paths.insert(
        DOCUMENT_PATH.into(),
        PathItem::new(HttpMethod::Get, this_document()),
    );
    document
        .paths
        .paths
        .insert("/healthz".into(), PathItem::new(HttpMethod::Get, healthz()));
    document
}

/// The schema of a session's execute request.
const SESSION_EXECUTE_REQUEST: &str = "SessionExecuteRequest";

/// Fills the deployment's maximums into the schema of `POST /api/sessions`'s body.
fn state_session_limits(components: &mut Components, limits: &Limits) {
    let Some(RefOr::T(Schema::Object(request))) =
        components.schemas.get_mut(SessionBody::name().as_ref())
    else {
        unreachable!("SessionRequest is an object schema");
    };
    for (name, default, maximum) in [
        (
            "ttlSeconds",
            limits.default_session_ttl_s,
            limits.max_session_ttl_s,
        ),
        (
            "timeoutMs",
            limits.default_timeout_ms,
            limits.max_timeout_ms,
        ),
        (
            "memoryLimitMb",
            limits.default_memory_limit_mb,
            limits.max_memory_limit_mb,
        ),
    ] {
        if let Some(RefOr::T(Schema::Object(property))) = request.properties.get_mut(name) {
            property.maximum = Some(maximum.into());
            let description = property.description.get_or_insert_with(String::new);
            description.push_str(&format!(
                "\n\nOn this deployment: {default} when not given, at most {maximum}."
            ));
        }
    }
}

const BEARER: &str = "bearer";
const API_KEY: &str = "apiKey";

/// Fills the deployment's maximums and example names into the schema of the request `name`
/// (an execution's or a batch's), and says that exactly one of `code`, `file` and `url` is
/// given.
fn state_limits(components: &mut Components, name: &str, limits: &Limits) {
    let Some(RefOr::T(Schema::Object(request))) = components.schemas.get_mut(name) else {
        unreachable!("{name} is an object schema");
    };
    if let Some(RefOr::T(Schema::Array(inputs))) = request.properties.get_mut("inputs") {
        inputs.max_items = Some(limits.max_batch_items);
        let description = inputs.description.get_or_insert_with(String::new);
        description.push_str(&format!(
            "\n\nOn this deployment: at most {} items.",
            limits.max_batch_items
        ));
    }
    let mut property = |name: &str, change: &dyn Fn(&mut openapi::schema::Object)| {
        if let Some(RefOr::T(Schema::Object(property))) = request.properties.get_mut(name) {
            change(property);
        }
    };
    // The defaults are said in words rather than with `default`, which client generators
    // (openapi-typescript among them) take to mean the field is always sent.
    let here = |schema: &mut openapi::schema::Object, default: u64, maximum: u64| {
        schema.maximum = Some(maximum.into());
        let description = schema.description.get_or_insert_with(String::new);
        description.push_str(&format!(
            "\n\nOn this deployment: {default} when not given, at most {maximum}."
        ));
    };
    property("timeoutMs", &|schema| {
        here(schema, limits.default_timeout_ms, limits.max_timeout_ms);
    });
    property("memoryLimitMb", &|schema| {
        here(
            schema,
            limits.default_memory_limit_mb,
            limits.max_memory_limit_mb,
        );
    });
    property("file", &|schema| {
        schema.enum_values = Some(
            limits
                .examples
                .iter()
                .map(|name| Value::from(name.as_str()))
                .chain([Value::Null])
                .collect(),
        );
    });
    let source_is = |given: &str, absent: &[&str]| {
        absent.iter().fold(
            ObjectBuilder::new()
                .required(given)
                .property(given, ObjectBuilder::new().schema_type(Type::String))
                .schema_type(SchemaType::AnyValue),
            |object, absent| object.property(*absent, ObjectBuilder::new().schema_type(Type::Null)),
        )
    };
    let description = request.description.take();
    let object = Schema::Object(std::mem::take(request));
    let one_source = OneOfBuilder::new()
        .item(source_is("code", &["file", "url", "sha256"]))
        .item(source_is("file", &["code", "url", "sha256"]))
        .item(source_is("url", &["code", "file"]))
        .description(Some(
            "exactly one of `code`, `file` and `url`; `sha256` only with `url`",
        ));
    let schema = openapi::schema::AllOfBuilder::new()
        .item(object)
        .item(one_source)
        .description(description);
    components.schemas.insert(name.to_owned(), schema.into());
}

fn execute(limits: &Limits) -> openapi::path::Operation {
    let request_examples = [
        (
            "code",
            "A script",
            json!({"code": "console.log(\"Hello!\", {a: 1}); 1 + 2"}),
        ),
        (
            "file",
            "A bundled example",
            json!({"file": limits.examples.first().map_or("simple.js", String::as_str)}),
        ),
        (
            "url",
            "A script from a bucket or a web server the tenant may load from",
            json!({"url": "gs://acme-scripts/reports/daily.js"}),
        ),
        (
            "pinned",
            "A script from a URL, pinned to its SHA-256 digest",
            json!({"url": "https://scripts.example.com/report.js", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}),
        ),
        (
            "limits",
            "Tighter limits than the defaults",
            json!({"code": "let s = 0; for (let i = 0; i < 1e6; i++) s += i; s", "timeoutMs": 500, "memoryLimitMb": 16}),
        ),
        (
            "input",
            "A script reading its input",
            json!({"code": "input.items.reduce((sum, item) => sum + item.price * item.qty, 0)", "input": {"items": [{"price": 3, "qty": 2}, {"price": 0.5, "qty": 4}]}}),
        ),
        (
            "promise",
            "A promise is awaited, timers run first",
            json!({"code": "new Promise((resolve) => setTimeout(() => resolve({done: true}), 10))"}),
        ),
        (
            "console",
            "Every kind of console entry",
            json!({"code": "console.info('i'); console.warn('w'); console.error(new Error('e')); console.debug(1n); console.table([{a: 1}]); console.group('g'); console.groupEnd(); console.count(); console.time('t'); console.timeEnd('t'); console.assert(false, 'no'); console.trace('here'); [NaN, undefined, () => 1, new Map([[1, 2]])]"}),
        ),
        (
            "truncated",
            "More console output than the entry cap",
            json!({"code": "for (let i = 0; i < 5000; i++) console.log(i)"}),
        ),
        ("syntax", "A syntax error", json!({"code": "let = ;"})),
        (
            "exception",
            "An exception",
            json!({"code": "function f(o) { return o.x.y } f({})"}),
        ),
        (
            "timeout",
            "An endless loop, stopped at its time limit",
            json!({"code": "while (true) {}", "timeoutMs": 100}),
        ),
        (
            "memory",
            "A memory bomb, stopped at its memory limit",
            json!({"code": "const a = []; while (true) a.push('x'.repeat(1024))", "memoryLimitMb": 8}),
        ),
        (
            "stack_overflow",
            "Endless recursion",
            json!({"code": "function f() { return f() + 1 } f()"}),
        ),
        (
            "output_limit",
            "A result larger than the result cap",
            json!({"code": "'x'.repeat(2 ** 21)"}),
        ),
        (
            "unsettled_promise",
            "A promise nothing can settle",
            json!({"code": "new Promise(() => {})"}),
        ),
    ];
    let body = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "Exactly one of `code`, `file` and `url` (with an optional `sha256` pin), and \
             optional limits, as `application/json`.",
        ))
        .content(
            "application/json",
            examples(
                ContentBuilder::new().schema(Some(Ref::from_schema_name(ExecuteBody::name()))),
                request_examples,
            )
            .build(),
        )
        .build();
    let finished = examples(
        ContentBuilder::new().schema(Some(Ref::from_schema_name(ExecuteResponse::name()))),
        [
            (
                "success",
                "The script succeeded",
                json!({
                    "status": "success",
                    "result": 3,
                    "error": false,
                    "log": [{"type": "log", "timestamp": "2026-01-01T09:50:41.362Z", "data": ["Hello!", {"a": 1}]}],
                    "executionTime": 0.412
                }),
            ),
            (
                "exception",
                "The script threw",
                json!({
                    "status": "error",
                    "result": null,
                    "error": {"kind": "exception", "name": "TypeError", "message": "cannot read property 'x' of undefined", "stack": "    at f (script.js:1:28)\n    at <eval> (script.js:1:34)\n"},
                    "log": [],
                    "executionTime": 0.107
                }),
            ),
            (
                "timeout",
                "The script ran past its time limit",
                json!({
                    "status": "error",
                    "result": null,
                    "error": {"kind": "timeout", "name": "TimeoutError", "message": "execution exceeded the time limit of 100 ms", "stack": null},
                    "log": [],
                    "executionTime": 100.2
                }),
            ),
            (
                "memory",
                "The script ran out of memory",
                json!({
                    "status": "error",
                    "result": null,
                    "error": {"kind": "memory", "name": "InternalError", "message": "out of memory", "stack": null},
                    "log": [],
                    "executionTime": 12.9
                }),
            ),
        ],
    );
    let operation = OperationBuilder::new()
        .operation_id(Some("execute"))
        .tag("execution")
        .summary(Some("Run a script"))
        .description(Some(
            "Runs one script in a fresh runtime under its time and memory limits, and answers \
             200 with its result and console output whether it succeeded or failed: a \
             script's failure is `status: \"error\"` with `error.kind` saying how (`syntax`, \
             `exception`, `timeout`, `memory`, `stack_overflow`, `output_limit`, \
             `unsettled_promise`, `crashed`). Other statuses mean the script did not run.\n\n\
             With `Accept: text/event-stream` the answer streams as Server-Sent Events once \
             the execution has a worker: an event `log` for each console entry within \
             milliseconds of the call (its data is the entry, as in `log`), a comment line as \
             heartbeat after 15 s of silence, and at the end an event `result` whose data is \
             the JSON answer above; then the stream ends. Requests refused before the script \
             runs get the same error statuses as without it. A client that disconnects, \
             streaming or not, cancels its execution.",
        ))
        .request_body(Some(body))
        .parameter(request_id_parameter())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The execution finished: the script succeeded or failed.")
                .header("x-request-id", request_id_header())
                .content("application/json", finished.build())
                .content(EVENT_STREAM, event_stream()),
        );
    secured(with_errors(operation, request_errors(limits, ""))).build()
}

/// The errors of a request that runs a script, `POST /api/execute` or `POST /api/batch`;
/// `invalid` adds to what makes the body invalid (422).
fn request_errors(limits: &Limits, invalid: &str) -> Vec<ErrorAnswer> {
    vec![
        ErrorAnswer::new(400, RequestErrorKind::InvalidRequest, "The body is not valid JSON.", "expected value at line 1 column 1"),
        ErrorAnswer::unauthorized(),
        ErrorAnswer::new(403, RequestErrorKind::SourceForbidden, "The tenant may not load a script from `url`: its bucket, prefix or host is not in the tenant's allow-list (nothing is, unless the operator allows it), it names or resolves to a blocked address (loopback, private, link-local, ...), or a redirect led to one of those. The message names the rule.", "gs://other-bucket/a.js: not in tenant acme's allowed sources"),
        ErrorAnswer::new(404, RequestErrorKind::NotFound, "`file` names no bundled example.", "no example script is named \"nope.js\"; GET /api/examples lists them")
            .also(RequestErrorKind::SourceNotFound, "There is no object or page at `url`.", "gs://acme-scripts/missing.js: not found"),
        ErrorAnswer::new(408, RequestErrorKind::RequestTimeout, "The body did not arrive whole within the server's `BODY_READ_TIMEOUT_MS`.", "the request body did not arrive within 10000 ms"),
        ErrorAnswer::new(413, RequestErrorKind::PayloadTooLarge, &format!("The body is over the server's `MAX_BODY_BYTES` ({} bytes here), or the script at `url` is over the ingress's `MAX_SCRIPT_BYTES` once JSON-escaped (its default leaves room for `input` within the sandbox's default `MAX_BODY_BYTES`).", limits.max_body_bytes), &format!("the request body is larger than the limit of {} bytes", limits.max_body_bytes)),
        ErrorAnswer::new(415, RequestErrorKind::InvalidRequest, "The body is not declared `Content-Type: application/json`.", "expected a body with `Content-Type: application/json`"),
        ErrorAnswer::new(422, RequestErrorKind::InvalidRequest, &format!("The body is JSON but not a valid request: not exactly one of `code`, `file` and `url`, empty `code`, a `url` that is not a gs://, s3://, https:// or http:// location or a script there that is not UTF-8 text, a malformed `sha256`, unknown fields, wrong types, limits out of range or over the tenant's ceiling{invalid}. The message names the field."), &format!("timeoutMs: must be at most {}", limits.max_timeout_ms))
            .also(RequestErrorKind::SourceHashMismatch, "The script at `url` does not have the digest given in `sha256`; nothing ran.", "https://scripts.example.com/report.js: the script's SHA-256 is 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae, not the pinned 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ErrorAnswer::rate_limited(),
        ErrorAnswer::upstream_unavailable()
            .also(RequestErrorKind::SourceUnavailable, "The script at `url` could not be loaded: its server or store failed, refused the service's credentials, or could not be reached.", "s3://acme-scripts/a.js: the store failed: connection refused"),
        ErrorAnswer::new(503, RequestErrorKind::Overloaded, "At the tenant's recent pace the execution could not start within the server's `QUEUE_TIMEOUT_MS`, or it waited that long, or a flood filled the queue, or the service's memory for request bodies and answers is in use (the sandbox's budget, or the ingress's for bodies it must read whole). Through the ingress, a client the sandbox refused this way is refused again by the ingress itself until its `Retry-After` has passed. Come back after `Retry-After` seconds.", "the service is busy (the tenant's queue would not reach this execution within 2000 ms); retry shortly").retry_after(),
        ErrorAnswer::upstream_timeout()
            .also(RequestErrorKind::SourceUnavailable, "The script at `url` did not arrive within the ingress's `SOURCE_TIMEOUT_MS`.", "https://scripts.example.com/report.js: not loaded within 5000 ms"),
    ]
}

fn batch(limits: &Limits) -> openapi::path::Operation {
    let request_examples = [
        (
            "code",
            "A formula over many records",
            json!({"code": "input.price * input.qty", "inputs": [{"price": 3, "qty": 2}, {"price": 0.5, "qty": 4}]}),
        ),
        (
            "file",
            "A bundled example over inputs",
            json!({"file": limits.examples.first().map_or("simple.js", String::as_str), "inputs": [null, null]}),
        ),
        (
            "url",
            "A script from a bucket, each item under a tighter time limit",
            json!({"url": "gs://acme-scripts/rules/score.js", "timeoutMs": 200, "inputs": [{"id": 1}, {"id": 2}]}),
        ),
    ];
    let body = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "Exactly one of `code`, `file` and `url` (with an optional `sha256` pin), optional \
             limits for each item, and `inputs`, as `application/json`.",
        ))
        .content(
            "application/json",
            examples(
                ContentBuilder::new().schema(Some(Ref::from_schema_name(BatchBody::name()))),
                request_examples,
            )
            .build(),
        )
        .build();
    let item = |result: Value| json!({"status": "success", "result": result, "error": false, "log": [], "executionTime": 0.052});
    let failed = json!({
        "status": "error",
        "result": null,
        "error": {"kind": "exception", "name": "TypeError", "message": "cannot read property 'price' of undefined", "stack": "    at <eval> (script.js:1:6)\n"},
        "log": [],
        "executionTime": 0.071
    });
    let answers = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(BatchResponse::name())))
        .example(Some(
            json!({"results": [item(json!(6)), item(json!(2)), failed]}),
        ))
        .build();
    let mut line = item(json!(2));
    line["index"] = json!(1);
    let lines = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(BatchLine::name())))
        .example(Some(line))
        .build();
    let operation = OperationBuilder::new()
        .operation_id(Some("batch"))
        .tag("execution")
        .summary(Some("Run a script over many inputs"))
        .description(Some(format!(
            "Runs the script once for each of `inputs`, each item an execution of its own: a \
             fresh runtime, its own `input`, the request's limits. Answers 200 with one \
             `/api/execute` answer per input, in the inputs' order, whatever each script did; \
             with `Accept: {NDJSON}`, one line per item as it finishes, with its `index`. The \
             script is compiled once per worker the batch uses. Items take turns with other \
             requests: at most the tenant's concurrency run at once. The batch ends within the \
             server's `MAX_TIMEOUT_MS` ({} ms here) of its arrival: an item that has not \
             started by then answers `timeout` without running, and one that runs gets at most \
             what is left. An item whose answer would take the batch's answers past \
             `MAX_BATCH_ANSWER_BYTES` answers `output_limit` instead. Each item costs one \
             request of the rate limit, all charged on arrival. Other statuses mean nothing \
             ran.",
            limits.max_timeout_ms
        )))
        .request_body(Some(body))
        .parameter(request_id_parameter())
        .response(
            "200",
            ResponseBuilder::new()
                .description("Every item answered, as `/api/execute` would have.")
                .header("x-request-id", request_id_header())
                .content("application/json", answers)
                .content(NDJSON, lines),
        );
    let invalid = format!(
        ", an empty `inputs`, more than `MAX_BATCH_ITEMS` ({} here) or the tenant's \
         `max_batch_items`, an item over `MAX_INPUT_BYTES`, or more items than the rate \
         limit's bucket holds",
        limits.max_batch_items
    );
    secured(with_errors(operation, request_errors(limits, &invalid))).build()
}

/// The 200 answer of a request that asked for `text/event-stream`: its events as text, with an
/// example stream.
fn event_stream() -> openapi::Content {
    // Written out, so the fields keep the order the service sends them in.
    let log = r#"{"type":"log","timestamp":"2026-01-01T09:50:41.362Z","data":["step",1]}"#;
    let answer = format!(
        r#"{{"status":"success","result":3,"error":false,"log":[{log}],"executionTime":2003.412}}"#
    );
    let example = format!(
        "event: {LOG_EVENT}\ndata: {log}\n\n:\n\nevent: {RESULT_EVENT}\ndata: {answer}\n\n"
    );
    let schema = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(format!(
            "Server-Sent Events. `event: {LOG_EVENT}`: one console entry (a `LogEntry`), sent \
             as the script makes it. A line `:` alone: a heartbeat after {} s without an \
             event. `event: {RESULT_EVENT}`: the last event, the answer (an `ExecuteResponse`) \
             exactly as a request without the stream gets it, its `log` holding every entry \
             sent before. `event: {ERROR_EVENT}`: instead of the result when the execution \
             could not be finished after it started (the service stopping, no worker \
             process): an `ErrorEnvelope` of kind `overloaded`.",
            HEARTBEAT_INTERVAL.as_secs()
        )));
    ContentBuilder::new()
        .schema(Some(schema))
        .example(Some(Value::String(example)))
        .build()
}

/// The `id` of a session, in its path.
fn session_id_parameter() -> openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "The session's id, as `POST /api/sessions` answered it.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The errors of a request naming a session that is not (or no longer) the caller's here.
fn session_missing() -> ErrorAnswer {
    ErrorAnswer::new(
        404,
        RequestErrorKind::SessionNotFound,
        "No session of the caller has this id on this instance: it never existed, belongs to \
         someone else, was deleted, ended with an execution (`session_lost`), expired long ago, \
         or lives on another instance. Create a new one.",
        "no session with this id: it never existed, belongs to someone else, ended, or lives on \
         another instance of the service; create a new one (POST /api/sessions)",
    )
    .also(
        RequestErrorKind::SessionExpired,
        "The caller's session expired (idle past its `ttlSeconds`, or at the server's maximum \
         age) and its state is gone. Create a new one.",
        "the session expired and its state is gone; create a new one (POST /api/sessions)",
    )
}

fn session_busy() -> ErrorAnswer {
    ErrorAnswer::new(
        409,
        RequestErrorKind::SessionBusy,
        "The session is running an execution; it runs one at a time.",
        "the session is running an execution; it runs one at a time: retry when it ends",
    )
}

fn create_session(limits: &Limits) -> openapi::path::Operation {
    let body = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "Optional `ttlSeconds`, `timeoutMs` and `memoryLimitMb`, as `application/json`; \
             `{}` for the defaults.",
        ))
        .content(
            "application/json",
            examples(
                ContentBuilder::new().schema(Some(Ref::from_schema_name(SessionBody::name()))),
                [
                    ("defaults", "The server's defaults", json!({})),
                    (
                        "limits",
                        "A short idle timeout, a larger memory limit",
                        json!({"ttlSeconds": 60, "timeoutMs": 2000, "memoryLimitMb": 32}),
                    ),
                ],
            )
            .build(),
        )
        .build();
    let operation = OperationBuilder::new()
        .operation_id(Some("createSession"))
        .tag("sessions")
        .summary(Some("Create a session"))
        .description(Some(
            "Starts a runtime of the caller's own, in a worker process of its own, that keeps \
             its globals from one execution (`POST /api/sessions/{id}/execute`) to the next. \
             It ends when idle for `ttlSeconds` (each execution starts the wait again), at the \
             server's maximum age, when deleted, or when an execution's worker must be killed, \
             crashes or runs out of memory. Sessions live on one instance: elsewhere the id is \
             `session_not_found`.",
        ))
        .request_body(Some(body))
        .parameter(request_id_parameter())
        .response(
            "201",
            ResponseBuilder::new()
                .description("The session was created.")
                .header("x-request-id", request_id_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(SessionCreated::name())))
                        .example(Some(json!({"id": "5f0c2a9be1d34c7f8a61b0e2d9c4f317", "expiresAt": "2026-01-01T12:05:00.000Z"})))
                        .build(),
                ),
        );
    let operation = with_errors(
        operation,
        [
            ErrorAnswer::new(400, RequestErrorKind::InvalidRequest, "The body is not valid JSON.", "expected value at line 1 column 1"),
            ErrorAnswer::unauthorized(),
            ErrorAnswer::new(403, RequestErrorKind::SessionLimit, "Sessions are turned off for this caller (its tier's `max_sessions` is 0) or on this service.", "sessions are not available to this caller"),
            ErrorAnswer::new(408, RequestErrorKind::RequestTimeout, "The body did not arrive whole within the server's `BODY_READ_TIMEOUT_MS`.", "the request body did not arrive within 10000 ms"),
            ErrorAnswer::new(413, RequestErrorKind::PayloadTooLarge, &format!("The body is over the server's `MAX_BODY_BYTES` ({} bytes here), or the session's worker could never fit in the service's memory.", limits.max_body_bytes), &format!("the request body is larger than the limit of {} bytes", limits.max_body_bytes)),
            ErrorAnswer::new(415, RequestErrorKind::InvalidRequest, "The body is not declared `Content-Type: application/json`.", "expected a body with `Content-Type: application/json`"),
            ErrorAnswer::new(422, RequestErrorKind::InvalidRequest, "The body is JSON but not a valid request: unknown fields, wrong types, or limits out of range or over the tenant's ceiling. The message names the field.", &format!("timeoutMs: must be at most {}", limits.max_timeout_ms)),
            ErrorAnswer::new(429, RequestErrorKind::SessionLimit, "The caller holds its most sessions, or their memory limits add up to its most; end one or let one expire. Open sessions are never dropped to make room.", "1 sessions are open, the most this caller may hold; end one (DELETE /api/sessions/{id}) or let one expire")
                .also(RequestErrorKind::RateLimited, "The tenant (or, anonymous, the client) is over its rate limit.", "too many requests: retry in 1 s")
                .retry_after(),
            ErrorAnswer::upstream_unavailable(),
            ErrorAnswer::new(503, RequestErrorKind::SessionLimit, "This instance holds its most sessions (`SESSION_MAX_OPEN`).", "this instance holds its most sessions (32); retry later")
                .also(RequestErrorKind::Overloaded, "The service's memory budget has no room for the session's worker now, or no worker process could be started.", "the service is busy (its memory for requests is in use); retry shortly")
                .retry_after(),
            ErrorAnswer::upstream_timeout(),
        ],
    );
    secured(operation).build()
}

fn session_state() -> openapi::path::Operation {
    let operation = OperationBuilder::new()
        .operation_id(Some("getSession"))
        .tag("sessions")
        .summary(Some("A session's state"))
        .parameter(session_id_parameter())
        .parameter(request_id_parameter())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The session's state.")
                .header("x-request-id", request_id_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(SessionState::name())))
                        .build(),
                ),
        );
    let operation = with_errors(
        operation,
        [
            ErrorAnswer::unauthorized(),
            session_missing(),
            ErrorAnswer::rate_limited(),
            ErrorAnswer::upstream_unavailable(),
            ErrorAnswer::upstream_timeout(),
        ],
    );
    secured(operation).build()
}

fn end_session() -> openapi::path::Operation {
    let operation = OperationBuilder::new()
        .operation_id(Some("deleteSession"))
        .tag("sessions")
        .summary(Some("End a session"))
        .description(Some(
            "Ends the session at once: its worker process and its state are gone.",
        ))
        .parameter(session_id_parameter())
        .parameter(request_id_parameter())
        .response(
            "204",
            ResponseBuilder::new()
                .description("The session has ended.")
                .header("x-request-id", request_id_header()),
        );
    let operation = with_errors(
        operation,
        [
            ErrorAnswer::unauthorized(),
            session_missing(),
            session_busy(),
            ErrorAnswer::rate_limited(),
            ErrorAnswer::upstream_unavailable(),
            ErrorAnswer::upstream_timeout(),
        ],
    );
    secured(operation).build()
}

fn execute_in_session(limits: &Limits) -> openapi::path::Operation {
    let body = RequestBodyBuilder::new()
        .required(Some(Required::True))
        .description(Some(
            "An execute request (`POST /api/execute`'s body) without `memoryLimitMb`: the \
             session's memory limit was set when it was created. Without `timeoutMs`, the \
             session's.",
        ))
        .content(
            "application/json",
            examples(
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(SESSION_EXECUTE_REQUEST))),
                [
                    ("define", "Define something", json!({"code": "let total = 0; function add(n) { total += n; return total }"})),
                    ("use", "Use it in a later execution", json!({"code": "add(2); add(3)"})),
                ],
            )
            .build(),
        )
        .build();
    let operation = OperationBuilder::new()
        .operation_id(Some("executeInSession"))
        .tag("sessions")
        .summary(Some("Run a script in a session"))
        .description(Some(
            "Runs the script in the session's runtime, where the globals, functions and values \
             of its earlier executions are, and answers as `POST /api/execute` does. One \
             execution at a time (409 `session_busy`). A script stopped at its time limit \
             leaves the session usable; one whose worker must be killed, crashes or runs out \
             of memory ends the session: its answer's `error.kind` is `session_lost`, its \
             message says why, and the id is `session_not_found` from then on.\n\n\
             With `Accept: text/event-stream` the answer streams as for `POST /api/execute`: an \
             event `log` for each console entry as it is made, a comment line as heartbeat after \
             15 s of silence, and at the end an event `result` whose data is the JSON answer \
             above, `session_lost` included. A request refused before the script runs (404, \
             409, 422, ...) gets the same error status and JSON body as without it. A client \
             that disconnects, streaming or not, cancels its execution; the session lives on.",
        ))
        .request_body(Some(body))
        .parameter(session_id_parameter())
        .parameter(request_id_parameter())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The execution finished: the script succeeded or failed.")
                .header("x-request-id", request_id_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ExecuteResponse::name())))
                        .build(),
                )
                .content(EVENT_STREAM, event_stream()),
        );
    let mut errors = request_errors(limits, ", or `memoryLimitMb`, which is the session's");
    errors.retain(|error| error.status != 404);
    errors.push(
        session_missing()
            .also(
                RequestErrorKind::NotFound,
                "`file` names no bundled example.",
                "no example script is named \"nope.js\"; GET /api/examples lists them",
            )
            .also(
                RequestErrorKind::SourceNotFound,
                "There is no object or page at `url`.",
                "gs://acme-scripts/missing.js: not found",
            ),
    );
    errors.push(session_busy());
    errors.sort_by_key(|error| error.status);
    secured(with_errors(operation, errors)).build()
}

fn list_examples() -> openapi::path::Operation {
    let operation = OperationBuilder::new()
        .operation_id(Some("listExamples"))
        .tag("execution")
        .summary(Some("List the bundled example scripts"))
        .description(Some(
            "The example scripts compiled into the service, with their sources, sorted by name. \
             Run one with `{\"file\": name}`.",
        ))
        .parameter(request_id_parameter())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The examples.")
                .header("x-request-id", request_id_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ExampleList::name())))
                        .example(Some(
                            json!({"examples": [{"name": "simple.js", "source": "1 + 2\n"}]}),
                        ))
                        .build(),
                ),
        );
    let operation = with_errors(
        operation,
        [
            ErrorAnswer::unauthorized(),
            ErrorAnswer::rate_limited(),
            ErrorAnswer::upstream_unavailable(),
            ErrorAnswer::upstream_timeout(),
        ],
    );
    secured(operation).build()
}

fn this_document() -> openapi::path::Operation {
    let operation = OperationBuilder::new()
        .operation_id(Some("openApiDocument"))
        .tag("service")
        .summary(Some("This document"))
        .description(Some(
            "The OpenAPI 3.1 document of this API, with this deployment's limits. No key is \
             needed, and it is not rate-limited.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The document.")
                .header("x-request-id", request_id_header())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Object)
                                .required("openapi")
                                .required("paths"),
                        ))
                        .build(),
                ),
        );
    let operation = with_errors(
        operation,
        [
            ErrorAnswer::upstream_unavailable(),
            ErrorAnswer::upstream_timeout(),
        ],
    );
    operation.build()
}

fn healthz() -> openapi::path::Operation {
    let health = |example: HealthStatus| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(Health::name())))
            .example(Some(json!({ "status": example })))
            .build()
    };
    OperationBuilder::new()
        .operation_id(Some("health"))
        .tag("service")
        .summary(Some("Liveness of the ingress"))
        .description(Some(
            "200 while the ingress serves. It does not ask a separately deployed sandbox (an \
             outage there shows as 502 on `/api/*`); while a sandbox it started beside itself \
             is down and being restarted, 503; from its shutdown signal until its listener \
             closes (`SHUTDOWN_NOTICE_MS`), 503 while requests are still served. Never \
             rate-limited.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("Serving.")
                .content("application/json", health(HealthStatus::Ok)),
        )
        .response(
            "503",
            ResponseBuilder::new()
                .description(
                    "The sandbox beside the ingress is being restarted (`sandbox_restarting`), \
                     or the ingress is shutting down (`shutting_down`).",
                )
                .content("application/json", health(HealthStatus::SandboxRestarting)),
        )
        .build()
}

/// Anonymous (the empty requirement), or a key either way.
/// `operation` with each of `errors` among its answers.
fn with_errors(
    operation: OperationBuilder,
    errors: impl IntoIterator<Item = ErrorAnswer>,
) -> OperationBuilder {
    errors
        .into_iter()
        .fold(operation, |operation, error| error.add_to(operation))
}

fn secured(operation: OperationBuilder) -> OperationBuilder {
    operation
        .security(SecurityRequirement::default())
        .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
        .security(SecurityRequirement::new(API_KEY, Vec::<String>::new()))
}

fn request_id_parameter() -> openapi::path::Parameter {
    ParameterBuilder::new()
        .name("x-request-id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Your id for the request, logged and echoed back. An id of 1 to 128 letters, \
             digits and `-_.:/+=@` is kept; without one, or with another, the service makes \
             one.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

fn request_id_header() -> openapi::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "The request's id, as given or made by the service: quote it when reporting a problem.",
        ))
        .build()
}

/// `examples` (name, summary, value) on `content`.
fn examples<const N: usize>(
    content: ContentBuilder,
    examples: [(&str, &str, Value); N],
) -> ContentBuilder {
    content.examples_from_iter(examples.into_iter().map(|(name, summary, value)| {
        (
            name.to_owned(),
            ExampleBuilder::new()
                .summary(summary)
                .value(Some(value))
                .build(),
        )
    }))
}

/// An error status of an operation, with the envelope as its body and an example of it.
struct ErrorAnswer {
    status: u16,
    /// Each kind this status can carry, with what it means and an example message.
    kinds: Vec<(RequestErrorKind, String, String)>,
    retry_after: bool,
}

impl ErrorAnswer {
    fn new(status: u16, kind: RequestErrorKind, description: &str, example: &str) -> Self {
        Self {
            status,
            kinds: vec![(kind, description.to_owned(), example.to_owned())],
            retry_after: false,
        }
    }

    /// Another kind answered with the same status.
    fn also(mut self, kind: RequestErrorKind, description: &str, example: &str) -> Self {
        self.kinds
            .push((kind, description.to_owned(), example.to_owned()));
        self
    }

    fn retry_after(mut self) -> Self {
        self.retry_after = true;
        self
    }

    fn unauthorized() -> Self {
        Self::new(
            401,
            RequestErrorKind::Unauthorized,
            "A key was sent but is not known, or none was sent where the anonymous tier is off.",
            "the API key is not valid",
        )
    }

    fn rate_limited() -> Self {
        Self::new(
            429,
            RequestErrorKind::RateLimited,
            "The tenant (or, anonymous, the client) is over its rate limit. Come back after \
             `Retry-After` seconds.",
            "too many requests: retry in 1 s",
        )
        .retry_after()
    }

    fn upstream_unavailable() -> Self {
        Self::new(
            502,
            RequestErrorKind::UpstreamUnavailable,
            "The ingress could not reach the sandbox.",
            "the sandbox is unavailable",
        )
    }

    fn upstream_timeout() -> Self {
        Self::new(
            504,
            RequestErrorKind::UpstreamTimeout,
            "The sandbox did not answer within the ingress's `UPSTREAM_TIMEOUT_MS`.",
            "the sandbox did not answer within 35000 ms",
        )
    }

    fn add_to(self, operation: OperationBuilder) -> OperationBuilder {
        let envelope = |kind: RequestErrorKind, example: &str| {
            serde_json::to_value(ErrorEnvelope::new(kind, example)).expect("an envelope is JSON")
        };
        let content =
            ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorEnvelope::name())));
        let content = match self.kinds.as_slice() {
            [(kind, _, example)] => content.example(Some(envelope(*kind, example))),
            kinds => {
                content.examples_from_iter(kinds.iter().map(|(kind, description, example)| {
                    (
                        kind.as_str().to_owned(),
                        ExampleBuilder::new()
                            .summary(description.clone())
                            .value(Some(envelope(*kind, example)))
                            .build(),
                    )
                }))
            }
        }
        .build();
        let description = self
            .kinds
            .iter()
            .map(|(kind, description, _)| format!("`{}`: {description}", kind.as_str()))
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut response = ResponseBuilder::new()
            .description(description)
            .header("x-request-id", request_id_header())
            .content("application/json", content);
        if self.retry_after {
            response = response.header(
                "retry-after",
                HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1)),
                    ))
                    .description(Some("Whole seconds to wait before trying again."))
                    .build(),
            );
        }
        operation.response(self.status.to_string(), response)
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
