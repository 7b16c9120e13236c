//! Results: the value of the last expression, as JSON, with documented renderings.

use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn execute_returns_the_last_expression_as_json() {
    let app = spawn_app().await;
    assert_eq!(app.run("1 + 2").await.result(), &json!(3));
    assert_eq!(app.run("'a' + 'b'").await.result(), &json!("ab"));
    assert_eq!(app.run("0.5 * 3").await.result(), &json!(1.5));
    assert_eq!(
        app.run("[1, 'two', null, true]").await.result(),
        &json!([1, "two", null, true])
    );
    assert_eq!(
        app.run("({ a: { b: [1] } })").await.result(),
        &json!({ "a": { "b": [1] } })
    );
    assert_eq!(app.run("let x = 1; x++;").await.result(), &json!(1));
}

#[tokio::test]
async fn undefined_result_is_null_and_response_has_the_original_shape() {
    let app = spawn_app().await;
    let response = app.run("undefined").await;
    assert_eq!(response.result(), &json!(null));
    let body = response.body.as_object().unwrap();
    for field in ["status", "result", "error", "log", "executionTime"] {
        assert!(body.contains_key(field), "missing {field}: {body:?}");
    }
    assert!(body["executionTime"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn values_json_cannot_hold_are_rendered_readably() {
    let app = spawn_app().await;
    let response = app
        .run(
            "const o = { self: null }; o.self = o;
             [undefined, NaN, Infinity, -Infinity, 10n, Symbol('s'), function named() {}, () => 1,
              new Map([['k', 1]]), new Set([2]), new Date(0), o, new Uint8Array([1, 2]),
              Promise.resolve(1), new ArrayBuffer(4), -0]",
        )
        .await;
    assert_eq!(
        response.result(),
        &json!([
            "undefined", "NaN", "Infinity", "-Infinity", "10n", "Symbol(s)", "[Function: named]",
            "[Function (anonymous)]", { "[Map]": [["k", 1]] }, { "[Set]": [2] },
            "1970-01-01T00:00:00.000Z", { "self": "[Circular]" }, [1, 2], "[Promise]",
            "[ArrayBuffer(4)]", 0
        ])
    );
}

#[tokio::test]
async fn errors_as_values_keep_name_message_and_stack() {
    let app = spawn_app().await;
    let response = app.run("new TypeError('bad thing')").await;
    let error = response.result();
    assert_eq!(error["name"], "TypeError");
    assert_eq!(error["message"], "bad thing");
    assert!(
        error["stack"].as_str().unwrap().contains("script.js"),
        "{error}"
    );
}

#[tokio::test]
async fn to_json_and_getters_are_honoured() {
    let app = spawn_app().await;
    let response = app
        .run("({ get computed() { return 6 * 7; }, nested: { toJSON() { return 'custom'; } } })")
        .await;
    assert_eq!(
        response.result(),
        &json!({ "computed": 42, "nested": "custom" })
    );
}

#[tokio::test]
async fn a_throwing_getter_becomes_a_marker_not_a_failure() {
    let app = spawn_app().await;
    let response = app
        .run("({ ok: 1, get bad() { throw new Error('nope'); } })")
        .await;
    assert_eq!(
        response.result(),
        &json!({ "ok": 1, "bad": "[Thrown: nope]" })
    );
}

#[tokio::test]
async fn deep_nesting_is_summarised() {
    let app = spawn_app().await;
    let response = app
        .run("let v = []; for (let i = 0; i < 200; i++) v = [v]; v")
        .await;
    let mut value = response.result();
    let mut depth = 0;
    while let Some(inner) = value.as_array() {
        value = &inner[0];
        depth += 1;
    }
    assert_eq!(value, "[Array]");
    assert!(depth < 200, "nesting was cut at depth {depth}");
}

#[tokio::test]
async fn promise_results_are_awaited() {
    let app = spawn_app().await;
    assert_eq!(
        app.run("Promise.resolve(41).then((x) => x + 1)")
            .await
            .result(),
        &json!(42)
    );
    assert_eq!(
        app.run("(async () => { await null; return 'done'; })()")
            .await
            .result(),
        &json!("done")
    );
}

#[tokio::test]
async fn timers_run_inside_the_execution() {
    let app = spawn_app().await;
    let response = app
        .run(
            "new Promise((resolve) => {
               const seen = [];
               const id = setInterval(() => seen.push('tick'), 5);
               const cancelled = setTimeout(() => seen.push('never'), 1);
               clearTimeout(cancelled);
               setTimeout((a, b) => { clearInterval(id); resolve([seen.length >= 2, a + b]); }, 40, 1, 2);
             })",
        )
        .await;
    assert_eq!(response.result(), &json!([true, 3]));
}

#[tokio::test]
async fn pending_timers_finish_before_the_answer() {
    let app = spawn_app().await;
    let response = app
        .run("setTimeout(() => console.log('later'), 20); 'now'")
        .await;
    assert_eq!(response.result(), &json!("now"));
    assert_eq!(response.log()[0]["data"], json!(["later"]));
}

#[tokio::test]
async fn an_object_whose_own_keys_trap_throws_is_rendered_as_the_thrown_marker() {
    let app = spawn_app().await;
    let trap = "new Proxy({}, { ownKeys() { throw new Error('no keys'); } })";
    let response = app
        .run(&format!(
            "const p = {trap}; console.log(p, {{ inner: p }}); ({{ ok: 1, inner: p }})"
        ))
        .await;
    assert_eq!(
        response.result(),
        &json!({ "ok": 1, "inner": "[Thrown: no keys]" })
    );
    assert_eq!(
        response.log()[0]["data"],
        json!(["[Thrown: no keys]", { "inner": "[Thrown: no keys]" }])
    );
    assert_eq!(app.run(trap).await.result(), &json!("[Thrown: no keys]"));
}
