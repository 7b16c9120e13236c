//! `input`: the request's JSON, given to the script as a deeply frozen global copy.

use serde_json::json;

use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn the_script_reads_its_input_as_a_global() {
    let app = spawn_app().await;
    let response = app
        .post_execute(json!({
            "code": "input.items.reduce((sum, item) => sum + item.price * item.qty, 0)",
            "input": {"items": [{"price": 3, "qty": 2}, {"price": 0.5, "qty": 4}]}
        }))
        .await;
    assert_eq!(response.result(), &json!(8), "{:?}", response.body);

    for value in [json!("text"), json!(42), json!([1, [2, [3]]]), json!(true)] {
        let response = app
            .post_execute(json!({"code": "input", "input": value.clone()}))
            .await;
        assert_eq!(response.result(), &value);
    }
    let absent = app.run("typeof input").await;
    assert_eq!(absent.result(), &json!("undefined"));
}

#[tokio::test]
async fn input_is_frozen_all_the_way_down() {
    let app = spawn_app().await;
    let response = app
        .post_execute(json!({
            "code": "'use strict';
                const attempts = [
                    () => { input.a = 1 },
                    () => { input.list.push(4) },
                    () => { input.list[0].deep = 'changed' },
                    () => { delete input.list },
                ].map((attempt) => { try { attempt(); return 'changed' } catch (e) { return e.name } });
                [attempts, Object.isFrozen(input), Object.isFrozen(input.list[0]), input]",
            "input": {"list": [{"deep": "kept"}, 2, 3]}
        }))
        .await;
    assert_eq!(
        response.result(),
        &json!([
            ["TypeError", "TypeError", "TypeError", "TypeError"],
            true,
            true,
            {"list": [{"deep": "kept"}, 2, 3]}
        ]),
        "{:?}",
        response.body
    );
}

#[tokio::test]
async fn a_proto_key_in_input_is_plain_data_and_pollutes_nothing() {
    let app = spawn_app().await;
    let response = app
        .post_execute(json!({
            "code": "[typeof ({}).polluted, Object.getPrototypeOf(input) === Object.prototype, \
                      Object.keys(input), input.__proto__ === Object.prototype]",
            "input": {"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}
        }))
        .await;
    assert_eq!(
        response.result(),
        &json!(["undefined", true, ["__proto__", "constructor"], false]),
        "{:?}",
        response.body
    );
}

#[tokio::test]
async fn a_script_may_declare_its_own_input() {
    let app = spawn_app().await;
    let response = app
        .post_execute(json!({"code": "const input = 5; input * 2", "input": 1}))
        .await;
    assert_eq!(response.result(), &json!(10), "{:?}", response.body);
}

#[tokio::test]
async fn input_over_the_limit_is_refused_with_a_message_naming_it() {
    let app = spawn_app_with(|config| config.max_input_bytes = 100).await;
    let response = app
        .post_execute(json!({"code": "1", "input": "x".repeat(200)}))
        .await;
    assert_eq!(response.status, 422);
    assert_eq!(response.request_error_kind(), "invalid_request");
    let message = response.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("input") && message.contains("100"),
        "{message}"
    );
}

#[tokio::test]
async fn parsing_input_counts_against_the_memory_limit() {
    let app = spawn_app_with(|config| config.max_input_bytes = 1 << 20).await;
    // 60 000 one-element arrays parse into far more than 2 MiB of objects.
    let input: Vec<serde_json::Value> = (0..60_000).map(|i| json!([i])).collect();
    let response = app
        .post_execute(json!({"code": "input.length", "input": input, "memoryLimitMb": 2}))
        .await;
    assert_eq!(
        response.script_error_kind(),
        "memory",
        "{:?}",
        response.body["error"]
    );
}
