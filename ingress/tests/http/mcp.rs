//! `/mcp` driven by the MCP SDK's own client (and, for what a client would not send, by plain
//! HTTP): both protocol revisions, the tools and their schemas, results, script errors,
//! timeouts and refusals as tool results, sessions (state kept between runs, their owner, their
//! end), keys, rate limits, concurrency, Host and Origin.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, JsonObject, ProtocolVersion, Tool,
};
use rmcp::service::{ClientInitializeError, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse, spawn_app, spawn_app_with, tenant};
use contract::limits::TimeLimit;
use ingress::mcp::origin::AllowedHosts;
use ingress::rate_limit::RateLimit;
use ingress::tenants::Ceilings;

const ACME_KEY: &str = "acme-5b1f0c9e2d7a4e63";
const GLOBEX_KEY: &str = "globex-8e2d4b6a0c1f3957";

type Client = RunningService<RoleClient, ClientConfig>;

/// The 2025-11-25 revision's lifecycle: `initialize`, then requests.
fn handshake() -> ClientLifecycleMode {
    ClientLifecycleMode::Initialize
}

/// The 2026-07-28 revision's: `server/discover`, then requests that each carry their version.
fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

async fn try_connect(
    app: &TestApp,
    key: Option<&str>,
    lifecycle: ClientLifecycleMode,
) -> Result<Client, ClientInitializeError> {
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", app.addr()));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    ClientConfig::default()
        .serve_with_lifecycle(transport, lifecycle)
        .await
}

async fn connect(app: &TestApp, key: Option<&str>) -> Client {
    try_connect(app, key, handshake())
        .await
        .expect("the client connects")
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("arguments must be an object: {other}"),
    }
}

async fn run(client: &Client, args: Value) -> Result<CallToolResult, ServiceError> {
    client
        .call_tool(CallToolRequestParams::new("run_javascript").with_arguments(arguments(args)))
        .await
}

async fn run_ok(client: &Client, args: Value) -> CallToolResult {
    run(client, args).await.expect("a tool result")
}

/// A call of the tool `name` that must get a tool result (an error or not).
async fn call(client: &Client, name: &'static str, args: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(arguments(args)))
        .await
        .expect("a tool result")
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text())
        .map(|text| text.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON-RPC `tools/call` of `run_javascript` with `code`, as one plain HTTP request with
/// `headers`, as a client of the stateless transport may send it.
async fn post_call(app: &TestApp, headers: &[(&str, &str)], code: &str) -> TestResponse {
    let mut all = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    all.extend_from_slice(headers);
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "run_javascript", "arguments": {"code": code}}
    });
    app.http
        .call(
            Method::POST,
            "/mcp",
            &all,
            serde_json::to_vec(&body).unwrap(),
        )
        .await
}

/// acme, with `rate_limit`; the anonymous tier off.
fn acme_only(rate_limit: Option<RateLimit>) -> impl FnOnce(&mut ingress::Config) {
    move |config| {
        config.tenants.anonymous.enabled = false;
        config.tenants.tenants = vec![tenant(
            "acme",
            ACME_KEY,
            rate_limit,
            Ceilings {
                timeout: NonZeroU64::new(1000).map(TimeLimit::from_millis),
                ..Ceilings::default()
            },
        )];
    }
}

/// acme and globex, without rate limits; the anonymous tier off.
fn acme_and_globex(config: &mut ingress::Config) {
    config.tenants.anonymous.enabled = false;
    config.tenants.tenants = vec![
        tenant("acme", ACME_KEY, None, Ceilings::default()),
        tenant("globex", GLOBEX_KEY, None, Ceilings::default()),
    ];
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools
        .iter()
        .find(|tool| tool.name == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test]
async fn a_client_initializes_with_2025_11_25_and_lists_the_tools_with_their_schemas() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;

    let server = client.peer_info().expect("the server answered initialize");
    assert_eq!(server.protocol_version, ProtocolVersion::V_2025_11_25);
    assert_eq!(server.server_info.as_ref().unwrap().name, "jsbox");
    assert!(server.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "create_session",
            "end_session",
            "list_examples",
            "run_javascript"
        ]
    );

    let run = tool(&tools, "run_javascript");
    let input = Value::Object((*run.input_schema).clone());
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["code"]));
    assert_eq!(input["additionalProperties"], false);
    let properties = &input["properties"];
    assert_eq!(properties["code"]["type"], "string");
    assert!(properties.get("input").is_some(), "{input}");
    let language = properties["language"].to_string();
    assert!(
        language.contains("javascript") && language.contains("typescript"),
        "{language}"
    );
    for limit in ["timeoutMs", "memoryLimitMb"] {
        assert_eq!(properties[limit]["minimum"], 1, "{limit}: {input}");
    }
    assert!(
        properties["session"].to_string().contains("string"),
        "{input}"
    );
    let output = Value::Object((*run.output_schema.clone().expect("an output schema")).clone());
    assert_eq!(output["type"], "object");
    for field in ["status", "result", "error", "log", "executionTime"] {
        assert!(
            output["properties"].get(field).is_some(),
            "{field}: {output}"
        );
    }
    let description = run.description.as_deref().unwrap();
    assert!(
        !description.to_lowercase().contains("secret"),
        "{description}"
    );

    let examples = tool(&tools, "list_examples");
    let output = Value::Object((*examples.output_schema.clone().unwrap()).clone());
    assert!(output["properties"]["examples"].is_object(), "{output}");

    let create = tool(&tools, "create_session");
    let input = Value::Object((*create.input_schema).clone());
    assert_eq!(input["additionalProperties"], false, "{input}");
    for field in ["ttlSeconds", "timeoutMs", "memoryLimitMb"] {
        assert_eq!(input["properties"][field]["minimum"], 1, "{field}: {input}");
    }
    let output = Value::Object((*create.output_schema.clone().expect("an output schema")).clone());
    assert_eq!(output["required"], json!(["id", "expiresAt"]), "{output}");
    let end = tool(&tools, "end_session");
    let input = Value::Object((*end.input_schema).clone());
    assert_eq!(input["required"], json!(["id"]), "{input}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_keeps_state_between_runs_is_its_owners_alone_and_ends_with_end_session() {
    let app = spawn_app_with(acme_and_globex).await;
    let acme = connect(&app, Some(ACME_KEY)).await;

    let created = call(&acme, "create_session", json!({"ttlSeconds": 120})).await;
    assert_eq!(created.is_error, Some(false), "{}", text_of(&created));
    let session = created.structured_content.clone().unwrap();
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{session}");
    assert!(
        session["expiresAt"].as_str().unwrap().ends_with('Z'),
        "{session}"
    );
    assert!(text_of(&created).contains(&id), "{}", text_of(&created));

    let first = run_ok(&acme, json!({"code": "x = 1", "session": id})).await;
    assert_eq!(first.structured_content.unwrap()["result"], 1);
    let second = run_ok(&acme, json!({"code": "x + 1", "session": id})).await;
    assert_eq!(second.is_error, Some(false));
    assert_eq!(second.structured_content.as_ref().unwrap()["result"], 2);
    assert!(
        text_of(&second).contains("result: 2"),
        "{}",
        text_of(&second)
    );
    // Without it, a run starts from nothing.
    let fresh = run_ok(&acme, json!({"code": "typeof x"})).await;
    assert_eq!(fresh.structured_content.unwrap()["result"], "undefined");
    // The API knows the session as acme's, with the two runs made through /mcp.
    let bearer = format!("Bearer {ACME_KEY}");
    let state = app
        .http
        .get_with(
            &format!("/api/sessions/{id}"),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(state.status, StatusCode::OK, "{}", state.json());
    assert_eq!(state.json()["executions"], 2);

    // A session's memory limit is its own, as the API says.
    let sized = run_ok(
        &acme,
        json!({"code": "1", "session": id, "memoryLimitMb": 8}),
    )
    .await;
    assert_eq!(sized.is_error, Some(true));
    let text = text_of(&sized);
    assert!(
        text.contains("HTTP 422 invalid_request") && text.contains("memoryLimitMb"),
        "{text}"
    );

    // To another tenant the id is unknown, to run in or to end.
    let globex = connect(&app, Some(GLOBEX_KEY)).await;
    let foreign = run_ok(&globex, json!({"code": "x", "session": id})).await;
    assert_eq!(foreign.is_error, Some(true));
    assert!(foreign.structured_content.is_none());
    let text = text_of(&foreign);
    assert!(text.contains("HTTP 404 session_not_found"), "{text}");
    let foreign_end = call(&globex, "end_session", json!({"id": id})).await;
    assert_eq!(foreign_end.is_error, Some(true));
    assert!(
        text_of(&foreign_end).contains("HTTP 404 session_not_found"),
        "{}",
        text_of(&foreign_end)
    );
    let still = run_ok(&acme, json!({"code": "x", "session": id})).await;
    assert_eq!(still.structured_content.unwrap()["result"], 1);

    let ended = call(&acme, "end_session", json!({"id": id})).await;
    assert_eq!(ended.is_error, Some(false), "{}", text_of(&ended));
    assert!(text_of(&ended).contains(&id), "{}", text_of(&ended));
    let gone = run_ok(&acme, json!({"code": "x", "session": id})).await;
    assert_eq!(gone.is_error, Some(true));
    assert!(
        text_of(&gone).contains("HTTP 404 session_not_found"),
        "{}",
        text_of(&gone)
    );
    let state = app
        .http
        .get_with(
            &format!("/api/sessions/{id}"),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(state.status, StatusCode::NOT_FOUND);

    // An id that could not be one is refused before anything is sent.
    for bad in ["../../execute", "", "a/b"] {
        let refused = run_ok(&acme, json!({"code": "1", "session": bad})).await;
        assert_eq!(refused.is_error, Some(true), "{bad}");
        assert!(
            text_of(&refused).contains("not a session id"),
            "{bad}: {}",
            text_of(&refused)
        );
    }
    acme.cancel().await.unwrap();
    globex.cancel().await.unwrap();
}

#[tokio::test]
async fn a_client_of_2026_07_28_discovers_the_server_and_calls_without_a_handshake() {
    let app = spawn_app().await;
    let client = try_connect(&app, None, discover())
        .await
        .expect("the client discovers the server");

    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let result = run_ok(&client, json!({"code": "6 * 7"})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content.unwrap()["result"], 42);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn run_javascript_answers_what_execute_answers_as_structured_content_and_text() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;
    let code = "console.log('doubling', input.n); console.warn({ok: true}); input.n * 2";

    let result = run_ok(&client, json!({"code": code, "input": {"n": 21}})).await;

    assert_eq!(result.is_error, Some(false));
    let answer = result
        .structured_content
        .clone()
        .expect("structured content");
    let direct = app
        .http
        .post_execute(&json!({"code": code, "input": {"n": 21}}))
        .await
        .json();
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(keys(&answer), keys(&direct));
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["result"], 42);
    assert_eq!(answer["error"], false);
    assert_eq!(answer["log"][0]["data"], json!(["doubling", 21]));
    assert_eq!(answer["log"][1]["type"], "warn");
    let text = text_of(&result);
    assert!(text.contains("result: 42"), "{text}");
    assert!(text.contains("[log] doubling 21"), "{text}");
    assert!(text.contains("[warn] {\"ok\":true}"), "{text}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_script_that_throws_is_a_tool_result_marked_as_an_error_not_a_protocol_error() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;

    let result = run_ok(
        &client,
        json!({"code": "console.log('before');\nthrow new TypeError('no such thing')"}),
    )
    .await;

    assert_eq!(result.is_error, Some(true));
    let answer = result.structured_content.clone().unwrap();
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["error"]["kind"], "exception");
    assert_eq!(answer["error"]["name"], "TypeError");
    assert_eq!(answer["log"][0]["data"], json!(["before"]));
    let text = text_of(&result);
    assert!(
        text.contains("error (exception): TypeError: no such thing"),
        "{text}"
    );
    assert!(text.contains("[log] before"), "{text}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_script_past_its_time_limit_ends_as_a_timeout_error_result() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;

    let started = Instant::now();
    let result = run_ok(
        &client,
        json!({"code": "while (true) {}", "timeoutMs": 200}),
    )
    .await;

    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        result.structured_content.unwrap()["error"]["kind"],
        "timeout"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_request_the_service_refuses_is_a_tool_error_that_says_why() {
    let app = spawn_app_with(acme_only(None)).await;
    let client = connect(&app, Some(ACME_KEY)).await;

    // acme may run for at most 1 s: the sandbox refuses more, as it would on /api/execute.
    let over = run_ok(&client, json!({"code": "1", "timeoutMs": 5000})).await;
    assert_eq!(over.is_error, Some(true));
    assert!(over.structured_content.is_none());
    let text = text_of(&over);
    assert!(text.contains("HTTP 422 invalid_request"), "{text}");
    assert!(text.contains("ceiling of 1000"), "{text}");

    let zero = run_ok(&client, json!({"code": "1", "memoryLimitMb": 0})).await;
    assert_eq!(zero.is_error, Some(true));
    assert!(
        text_of(&zero).contains("memoryLimitMb: must be at least 1"),
        "{}",
        text_of(&zero)
    );

    // Fields the tool does not have are refused before anything is sent.
    let unknown = run_ok(
        &client,
        json!({"code": "1", "url": "https://example.com/x.js"}),
    )
    .await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text_of(&unknown).contains("url"), "{}", text_of(&unknown));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn list_examples_gives_each_bundled_example_with_its_source() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;

    let result = client
        .call_tool(CallToolRequestParams::new("list_examples"))
        .await
        .unwrap();

    assert_eq!(result.is_error, Some(false));
    let listed = result.structured_content.clone().unwrap();
    let direct = app.http.get("/api/examples").await.json();
    assert_eq!(listed, direct);
    let examples = listed["examples"].as_array().unwrap();
    assert!(!examples.is_empty());
    let text = text_of(&result);
    for example in examples {
        let name = example["name"].as_str().unwrap();
        assert!(
            text.contains(&format!("// {name}\n")),
            "{name} not in {text}"
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn without_a_key_where_the_anonymous_tier_is_off_mcp_answers_401() {
    let app = spawn_app_with(acme_only(None)).await;

    let refused = try_connect(&app, None, handshake()).await;
    assert!(refused.is_err(), "connected without a key");
    let wrong = try_connect(&app, Some("not-a-key"), handshake()).await;
    assert!(wrong.is_err(), "connected with a wrong key");

    let answer = post_call(&app, &[], "1").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_kind(), "unauthorized");
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));

    let client = connect(&app, Some(ACME_KEY)).await;
    let result = run_ok(&client, json!({"code": "'in'"})).await;
    assert_eq!(result.structured_content.unwrap()["result"], "in");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn over_its_rate_limit_a_caller_gets_429_from_mcp_and_from_the_api_alike() {
    // Six requests, then one every 100 s: nothing refills during the test.
    let app = spawn_app_with(acme_only(Some(RateLimit {
        per_second: 0.01,
        burst: NonZeroU32::new(6).unwrap(),
    })))
    .await;
    let client = connect(&app, Some(ACME_KEY)).await;

    // Each HTTP request to /mcp is charged, the client's handshake included.
    let mut succeeded = 0;
    let refusal = loop {
        match run(&client, json!({"code": "1"})).await {
            Ok(result) => {
                assert_eq!(result.is_error, Some(false));
                succeeded += 1;
                assert!(succeeded < 6, "never limited");
            }
            Err(error) => break error,
        }
    };
    assert!(succeeded >= 1, "the first call was refused: {refusal}");
    let mut chain = refusal.to_string();
    let mut source = std::error::Error::source(&refusal);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("HTTP 429"), "{chain}");

    let bearer = format!("Bearer {ACME_KEY}");
    let answer = post_call(&app, &[("authorization", &bearer)], "1").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error_kind(), "rate_limited");
    assert!(answer.header("retry-after").is_some());
    // The tenant's one bucket: the API is refused too.
    let api = app
        .http
        .get_with("/api/examples", &[("authorization", &bearer)])
        .await;
    assert_eq!(api.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn concurrent_calls_on_one_client_each_get_their_own_result() {
    let app = spawn_app().await;
    let client = connect(&app, None).await;

    let calls = (0..8).map(|n| {
        let client = &client;
        async move {
            let result = run_ok(
                client,
                json!({
                    "code": "new Promise(done => setTimeout(() => done(input * input), 50))",
                    "input": n
                }),
            )
            .await;
            (n, result)
        }
    });
    let results = futures_util::future::join_all(calls).await;

    for (n, result) in results {
        assert_eq!(result.is_error, Some(false), "{n}");
        assert_eq!(result.structured_content.unwrap()["result"], n * n, "{n}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_during_a_call_cancels_its_execution() {
    let app = spawn_app().await;
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "run_javascript",
                   "arguments": {"code": "while (true) {}", "timeoutMs": 20000}}
    })
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        app.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let sandbox = &app.sandbox.http;
    sandbox
        .wait_for_metric(
            "sandbox_workers_busy",
            |busy| busy >= 1.0,
            "the loop to run",
        )
        .await;

    let left = Instant::now();
    drop(stream);

    sandbox
        .wait_for_metric(
            r#"sandbox_executions_total{tenant="anonymous",outcome="cancelled"}"#,
            |cancelled| cancelled >= 1.0,
            "the execution to be cancelled",
        )
        .await;
    assert!(
        left.elapsed() < Duration::from_secs(15),
        "{:?}",
        left.elapsed()
    );
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_refused_413_before_the_sdk_reads_it() {
    let app = spawn_app_with(|config| config.max_body_bytes = 2000).await;

    let answer = post_call(&app, &[], &format!("'{}'", "x".repeat(4000))).await;

    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.error_kind(), "payload_too_large");
    assert_eq!(post_call(&app, &[], "1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_page_of_another_site_is_refused_403_and_a_page_of_the_same_site_is_served() {
    let app = spawn_app().await;
    let own_origin = format!("http://{}", app.addr());

    let foreign = post_call(&app, &[("origin", "https://evil.example")], "1").await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert_eq!(foreign.error_kind(), "forbidden");
    let opaque = post_call(&app, &[("origin", "null")], "1").await;
    assert_eq!(opaque.status, StatusCode::FORBIDDEN);

    let same_site = post_call(&app, &[("origin", &own_origin)], "6 * 7").await;
    assert_eq!(same_site.status, StatusCode::OK);
    let reply = same_site.json();
    assert_eq!(
        reply["result"]["structuredContent"]["result"], 42,
        "{reply}"
    );
    // Clients that are not browsers send no Origin.
    assert_eq!(post_call(&app, &[], "1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn with_mcp_allowed_hosts_only_those_hosts_are_served() {
    let app = spawn_app_with(|config| {
        config.mcp_allowed_hosts = AllowedHosts::parse("jsbox.example.com").unwrap();
    })
    .await;

    // The test's client names the loopback address it connects to.
    let loopback = post_call(&app, &[], "1").await;
    assert_eq!(loopback.status, StatusCode::FORBIDDEN);
    assert_eq!(loopback.error_kind(), "forbidden");

    let listed = post_call(&app, &[("host", "jsbox.example.com")], "1").await;
    assert_eq!(listed.status, StatusCode::OK);
    let origin = post_call(
        &app,
        &[
            ("host", "jsbox.example.com"),
            ("origin", "https://jsbox.example.com"),
        ],
        "1",
    )
    .await;
    assert_eq!(origin.status, StatusCode::OK);
    let foreign = post_call(
        &app,
        &[
            ("host", "jsbox.example.com"),
            ("origin", "https://evil.example"),
        ],
        "1",
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
}
