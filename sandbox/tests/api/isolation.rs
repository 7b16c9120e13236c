//! Isolation: nothing survives between executions, and no host API is reachable.

use serde_json::json;

use crate::support::spawn_app_with;

#[tokio::test]
async fn nothing_survives_from_one_execution_to_the_next() {
    // One worker, so both executions run on the same thread one after the other.
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let first = app
        .run(
            "globalThis.leaked = 'global'; Object.prototype.polluted = 'prototype';
             Array.prototype.push = () => 'hijacked'; console.log = () => {};
             setTimeout(() => {}, 1); 'set'",
        )
        .await;
    assert_eq!(first.result(), &json!("set"));
    let second = app
        .run("console.log('visible'); [typeof leaked, ({}).polluted, [].push(1)]")
        .await;
    assert_eq!(second.result(), &json!(["undefined", "undefined", 1]));
    assert_eq!(second.log()[0]["data"], json!(["visible"]));
}

#[tokio::test]
async fn the_host_is_out_of_reach() {
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .run(
            "[typeof require, typeof process, typeof std, typeof os, typeof fetch,
              typeof XMLHttpRequest, typeof Deno, typeof scriptArgs, typeof Buffer]",
        )
        .await;
    assert_eq!(response.result(), &json!(vec!["undefined"; 9]));
    let import = app.run("import('fs')").await;
    assert_eq!(import.script_error_kind(), "exception");
}

#[tokio::test]
async fn replaced_builtins_do_not_break_serialisation() {
    let app = spawn_app_with(|_| {}).await;
    let response = app
        .run(
            "Map.prototype.forEach = () => { throw new Error('no'); };
             String.prototype.slice = () => 'hijacked'; Reflect.apply = null;
             new Map([['k', 'v']])",
        )
        .await;
    assert_eq!(response.result(), &json!({ "[Map]": [["k", "v"]] }));
}
