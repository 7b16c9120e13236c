//! Console output: every method becomes a structured entry with a timestamp.

use serde_json::{Value, json};

use crate::support::spawn_app;

fn types(log: &[Value]) -> Vec<&str> {
    log.iter()
        .map(|entry| entry["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_console_method_is_captured_in_order() {
    let app = spawn_app().await;
    let response = app
        .run(
            "console.log('log', 1); console.info('info'); console.warn('warn'); console.error('error');
             console.debug('debug'); console.dir({ a: 1 }); console.table([{ a: 1 }]);
             console.group('g'); console.groupCollapsed('c'); console.groupEnd();
             console.count(); console.count(); console.count('x'); console.countReset(); console.count();
             console.assert(true, 'not shown'); console.assert(false, 'shown');
             console.time('t'); console.timeLog('t', 'mid'); console.timeEnd('t'); console.trace('here');",
        )
        .await;
    let log = response.log();
    assert_eq!(
        types(log),
        [
            "log",
            "info",
            "warn",
            "error",
            "debug",
            "dir",
            "table",
            "group",
            "groupCollapsed",
            "groupEnd",
            "count",
            "count",
            "count",
            "count",
            "assert",
            "timeLog",
            "timeEnd",
            "trace"
        ]
    );
    assert_eq!(log[0]["data"], json!(["log", 1]));
    assert_eq!(log[5]["data"], json!([{ "a": 1 }]));
    assert_eq!(log[6]["data"], json!([[{ "a": 1 }]]));
    let counts: Vec<&Value> = log[10..14].iter().map(|entry| &entry["data"][0]).collect();
    assert_eq!(
        counts,
        [
            &json!("default: 1"),
            &json!("default: 2"),
            &json!("x: 1"),
            &json!("default: 1")
        ]
    );
    assert_eq!(log[14]["data"], json!(["Assertion failed:", "shown"]));
    assert!(
        log[15]["data"][0].as_str().unwrap().starts_with("t: "),
        "{}",
        log[15]
    );
    assert_eq!(log[15]["data"][1], "mid");
    assert!(
        log[16]["data"][0].as_str().unwrap().ends_with("ms"),
        "{}",
        log[16]
    );
    assert_eq!(log[17]["data"][0], "here");
    assert!(
        log[17]["data"][1].as_str().unwrap().contains("script.js"),
        "{}",
        log[17]
    );
}

#[tokio::test]
async fn entries_carry_rfc3339_millisecond_timestamps() {
    let app = spawn_app().await;
    let response = app.run("console.log('a')").await;
    let timestamp = response.log()[0]["timestamp"].as_str().unwrap();
    assert_eq!(
        timestamp.len(),
        "2026-01-01T09:50:41.362Z".len(),
        "{timestamp}"
    );
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.',
        "{timestamp}"
    );
}

#[tokio::test]
async fn arguments_are_captured_as_they_were_at_call_time() {
    let app = spawn_app().await;
    let response = app
        .run("const o = { n: 1 }; console.log(o); o.n = 2; console.log(o);")
        .await;
    assert_eq!(response.log()[0]["data"], json!([{ "n": 1 }]));
    assert_eq!(response.log()[1]["data"], json!([{ "n": 2 }]));
}

#[tokio::test]
async fn log_is_kept_when_the_script_fails() {
    let app = spawn_app().await;
    let response = app
        .run("console.log('before'); throw new Error('after')")
        .await;
    assert_eq!(response.script_error_kind(), "exception");
    assert_eq!(response.log()[0]["data"], json!(["before"]));
}
