//! Streams on the real binaries: `Accept: text/event-stream` through the ingress, as deployed,
//! arrives event by event while the script runs, nothing on the way holding it back, and what
//! is refused before the script starts stays an ordinary HTTP error; a session's executions
//! stream the same way.

use std::time::Duration;

use e2e::{Stack, StreamEvent, post_execute, post_json, post_stream, post_stream_to};
use serde_json::{Value, json};

fn data(event: &StreamEvent) -> Value {
    serde_json::from_str(&event.data).unwrap_or_else(|error| panic!("{error}: {event:?}"))
}

#[test]
fn a_stream_through_the_ingress_arrives_event_by_event_while_the_script_runs() {
    let stack = Stack::start(&[("RATE_LIMIT_RPS", "0")]);
    let code = "console.log('first'); \
        new Promise((resolve) => setTimeout(() => { console.log('second'); resolve(42); }, 500))";
    let body = json!({ "code": code }).to_string();
    let stream = post_stream(stack.ingress.addr(), &body).unwrap();
    assert_eq!(stream.status, 200, "{}", stream.head);
    let head = stream.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("x-request-id:"), "{head}");
    let events = stream.until_end().unwrap();

    let names: Vec<Option<&str>> = events.iter().map(|event| event.name.as_deref()).collect();
    assert_eq!(
        names,
        [Some("log"), Some("log"), Some("result")],
        "{events:?}"
    );
    assert_eq!(data(&events[0])["data"], json!(["first"]));
    let result = data(&events[2]);
    assert_eq!(result["result"], 42);
    assert_eq!(result["log"], json!([data(&events[0]), data(&events[1])]));
    // The first entry was made 500 ms before the end: passed on as it came, it arrives that
    // much before the result; held back anywhere on the way, with it.
    let ahead = events[2].arrived.duration_since(events[0].arrived);
    assert!(ahead >= Duration::from_millis(400), "{ahead:?}");

    // Without the Accept, the same script is answered whole, as before.
    let (status, answer) = post_execute(stack.ingress.addr(), &body).unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"], 42);
}

#[test]
fn requests_the_ingress_or_the_sandbox_refuse_before_a_stream_begins_are_plain_errors() {
    // One request a client may make at once, and one more in 1000 s.
    let stack = Stack::start(&[("RATE_LIMIT_RPS", "0.001"), ("RATE_LIMIT_BURST", "2")]);
    let refused = post_stream(stack.ingress.addr(), r#"{"code": ""}"#).unwrap();
    assert_eq!(refused.status, 422, "{}", refused.head);
    let body: Value = serde_json::from_str(&refused.whole_body().unwrap()).unwrap();
    assert_eq!(body["error"]["kind"], "invalid_request", "{body}");

    let streamed = post_stream(stack.ingress.addr(), r#"{"code": "1"}"#).unwrap();
    assert_eq!(streamed.status, 200, "{}", streamed.head);
    assert_eq!(streamed.until_end().unwrap().len(), 1);

    let refused = post_stream(stack.ingress.addr(), r#"{"code": "1"}"#).unwrap();
    assert_eq!(refused.status, 429, "{}", refused.head);
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        refused.head
    );
    let body: Value = serde_json::from_str(&refused.whole_body().unwrap()).unwrap();
    assert_eq!(body["error"]["kind"], "rate_limited", "{body}");
}

#[test]
fn a_sessions_stream_through_the_ingress_arrives_event_by_event_and_keeps_its_state() {
    let stack = Stack::start(&[("RATE_LIMIT_RPS", "0")]);
    let (status, created) = post_json(stack.ingress.addr(), "/api/sessions", &[], "{}").unwrap();
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let execute = format!("/api/sessions/{}/execute", created["id"].as_str().unwrap());

    let code = "console.log('first'); x = 41; \
        new Promise((resolve) => setTimeout(() => { console.log('second'); resolve(x); }, 500))";
    let body = json!({ "code": code }).to_string();
    let stream = post_stream_to(stack.ingress.addr(), &execute, &body).unwrap();
    assert_eq!(stream.status, 200, "{}", stream.head);
    let head = stream.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let events = stream.until_end().unwrap();
    let names: Vec<Option<&str>> = events.iter().map(|event| event.name.as_deref()).collect();
    assert_eq!(
        names,
        [Some("log"), Some("log"), Some("result")],
        "{events:?}"
    );
    let result = data(&events[2]);
    assert_eq!(result["result"], 41, "{result}");
    assert_eq!(result["log"], json!([data(&events[0]), data(&events[1])]));
    let ahead = events[2].arrived.duration_since(events[0].arrived);
    assert!(ahead >= Duration::from_millis(400), "{ahead:?}");

    // A plain execution in the same session sees what the streamed one set.
    let (status, answer) =
        post_json(stack.ingress.addr(), &execute, &[], r#"{"code": "x + 1"}"#).unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["result"], 42, "{answer}");
}
