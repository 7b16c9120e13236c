use super::*;

fn limits() -> Limits {
    Limits {
        default_timeout_ms: 5000,
        max_timeout_ms: 30000,
        default_memory_limit_mb: 64,
        max_memory_limit_mb: 256,
        max_body_bytes: 1 << 20,
        max_batch_items: 1000,
        default_session_ttl_s: 300,
        max_session_ttl_s: 3600,
        examples: vec!["pi.js".into(), "simple.js".into()],
    }
}

#[test]
fn the_document_is_openapi_3_1_with_every_public_route() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut routes: Vec<_> = paths.keys().map(String::as_str).collect();
    routes.sort_unstable();
    assert_eq!(
        routes,
        [
            "/api/batch",
            "/api/examples",
            "/api/execute",
            "/api/openapi.json",
            "/api/sessions",
            "/api/sessions/{id}",
            "/api/sessions/{id}/execute",
            "/healthz"
        ]
    );
    assert!(paths["/api/execute"]["post"]["requestBody"].is_object());
}

#[test]
fn the_request_schema_states_the_deployments_limits_and_examples() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    let request = &document["components"]["schemas"]["ExecuteRequest"];
    let object = &request["allOf"][0];
    assert_eq!(object["properties"]["timeoutMs"]["maximum"], 30000);
    assert_eq!(object["properties"]["timeoutMs"]["minimum"], 1);
    assert_eq!(object["properties"]["memoryLimitMb"]["maximum"], 256);
    let timeout = object["properties"]["timeoutMs"]["description"]
        .as_str()
        .unwrap();
    assert!(timeout.ends_with("On this deployment: 5000 when not given, at most 30000."));
    assert_eq!(
        object["properties"]["file"]["enum"],
        json!(["pi.js", "simple.js", null])
    );
    assert_eq!(object["additionalProperties"], false);
    assert_eq!(request["allOf"][1]["oneOf"].as_array().unwrap().len(), 3);
    assert_eq!(
        object["properties"]["sha256"]["pattern"],
        "^[0-9a-fA-F]{64}$"
    );
}

#[test]
fn the_request_schema_describes_the_language_and_names_every_one() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    let schemas = &document["components"]["schemas"];
    let language = &schemas["ExecuteRequest"]["allOf"][0]["properties"]["language"];
    let description = serde_json::to_string(language).unwrap();
    assert!(description.contains("typescript"), "{language}");
    let names = schemas["Language"]["enum"].as_array().unwrap();
    let expected: Vec<_> = Language::ALL
        .iter()
        .map(|language| json!(language.as_str()))
        .collect();
    assert_eq!(names, &expected);
    assert!(
        description.contains("#/components/schemas/Language"),
        "{language}"
    );
}

#[test]
fn every_error_kind_and_log_type_is_in_the_document() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    let schemas = &document["components"]["schemas"];
    let kinds = schemas["RequestErrorKind"]["enum"].as_array().unwrap();
    for kind in [
        RequestErrorKind::InvalidRequest,
        RequestErrorKind::Unauthorized,
        RequestErrorKind::RateLimited,
        RequestErrorKind::Overloaded,
        RequestErrorKind::UpstreamTimeout,
        RequestErrorKind::SourceForbidden,
        RequestErrorKind::SourceNotFound,
        RequestErrorKind::SourceUnavailable,
        RequestErrorKind::SourceHashMismatch,
    ] {
        assert!(kinds.contains(&json!(kind.as_str())), "{kind:?}");
    }
    let script_kinds = schemas["ErrorKind"]["enum"].as_array().unwrap();
    for kind in ErrorKind::ALL {
        assert!(script_kinds.contains(&json!(kind.as_str())), "{kind:?}");
    }
    let log_types = schemas["LogType"]["enum"].as_array().unwrap();
    assert!(log_types.contains(&json!("groupCollapsed")));
    assert!(log_types.contains(&json!("truncated")));
}

#[test]
fn execute_lists_every_status_it_can_answer_with_and_keys_are_optional() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    let execute = &document["paths"]["/api/execute"]["post"];
    let mut statuses: Vec<_> = execute["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "408", "413", "415", "422", "429", "502", "503",
            "504"
        ]
    );
    assert_eq!(execute["security"][0], json!({}));
    assert!(execute["responses"]["503"]["headers"]["retry-after"].is_object());
    let examples = &execute["responses"]["502"]["content"]["application/json"]["examples"];
    assert_eq!(
        examples["source_unavailable"]["value"]["error"]["kind"],
        "source_unavailable"
    );
    assert_eq!(
        execute["responses"]["403"]["content"]["application/json"]["example"]["error"]["kind"],
        "source_forbidden"
    );
    let stream = &execute["responses"]["200"]["content"]["text/event-stream"];
    assert_eq!(stream["schema"]["type"], "string");
    let example = stream["example"].as_str().unwrap();
    assert!(example.starts_with("event: log\ndata: {"), "{example}");
    assert!(example.contains("\n\nevent: result\ndata: {"), "{example}");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "x-api-key");
    assert_eq!(schemes["apiKey"]["in"], "header");
}

#[test]
fn the_batch_is_described_with_its_limits_both_answers_and_the_statuses_of_an_execution() {
    let document = serde_json::to_value(document(&limits())).unwrap();
    let batch = &document["paths"]["/api/batch"]["post"];
    let execute = &document["paths"]["/api/execute"]["post"];
    let statuses = |operation: &Value| {
        let mut statuses: Vec<String> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        statuses.sort_unstable();
        statuses
    };
    assert_eq!(statuses(batch), statuses(execute));
    let answers = &batch["responses"]["200"]["content"];
    assert_eq!(
        answers["application/json"]["schema"]["$ref"],
        "#/components/schemas/BatchResponse"
    );
    assert_eq!(
        answers["application/x-ndjson"]["schema"]["$ref"],
        "#/components/schemas/BatchLine"
    );
    let invalid = batch["responses"]["422"]["description"].as_str().unwrap();
    assert!(
        invalid.contains("more than `MAX_BATCH_ITEMS` (1000 here)"),
        "{invalid}"
    );

    let request = &document["components"]["schemas"]["BatchRequest"];
    let object = &request["allOf"][0];
    assert_eq!(object["properties"]["inputs"]["maxItems"], 1000);
    assert_eq!(object["properties"]["inputs"]["minItems"], 1);
    assert_eq!(object["properties"]["timeoutMs"]["maximum"], 30000);
    assert_eq!(object["additionalProperties"], false);
    assert_eq!(
        object["required"],
        json!(["inputs"]),
        "the source is required by the oneOf beside it"
    );
    assert_eq!(request["allOf"][1]["oneOf"].as_array().unwrap().len(), 3);
    let line = &document["components"]["schemas"]["BatchLine"];
    assert!(line.to_string().contains("ExecuteResponse"), "{line}");
}
