//! `POST /api/batch`: one script over many inputs, each an execution of its own, answered in
//! input order or streamed as lines; bounded in items, bytes and time, and taking turns with
//! other tenants item by item.

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::support::{TestApp, TestResponse, spawn_app_with};

/// The answer of `/api/execute` without what differs from run to run.
fn comparable(answer: &Value) -> Value {
    let mut answer = answer.clone();
    let object = answer.as_object_mut().expect("an answer is an object");
    object.remove("executionTime");
    for entry in object
        .get_mut("log")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        entry.as_object_mut().unwrap().remove("timestamp");
    }
    answer
}

fn results(response: &TestResponse) -> &Vec<Value> {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", response.body))
}

/// A tenant of its own, with `limits` as the ingress would send them.
fn tenant<'a>(id: &'a str, limits: &'a str) -> [(&'a str, &'a str); 2] {
    [("x-tenant-id", id), ("x-tenant-limits", limits)]
}

#[tokio::test]
async fn a_batch_answers_each_input_in_order_with_what_execute_answers_for_it() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    // The first inputs take longest, so items finish out of order.
    let code = "console.log('item', input.n); \
                new Promise((resolve) => setTimeout(() => resolve(input.n * 2), input.ms))";
    let inputs = [
        json!({"n": 1, "ms": 400}),
        json!({"n": 2, "ms": 200}),
        json!({"n": 3, "ms": 0}),
        json!({"n": 4, "ms": 0}),
    ];
    let batch = app
        .post_batch_with(
            &tenant("acme", "concurrency=2"),
            json!({"code": code, "inputs": inputs}),
        )
        .await;
    let results = results(&batch);
    assert_eq!(results.len(), inputs.len(), "{}", batch.body);
    for (input, result) in inputs.iter().zip(results) {
        assert_eq!(result["result"], json!(input["n"].as_i64().unwrap() * 2));
        let alone = app
            .post_execute(json!({"code": code, "input": input}))
            .await;
        assert_eq!(comparable(result), comparable(&alone.body), "{input}");
    }
}

#[tokio::test]
async fn a_typescript_batch_strips_its_types_and_runs_each_item() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    let code = "interface Order { price: number; qty: number }\n\
                const order = input as Order;\n\
                const total: number = order.price * order.qty;\n\
                total";
    let inputs = [
        json!({"price": 3, "qty": 2}),
        json!({"price": 0.5, "qty": 4}),
    ];
    let batch = app
        .post_batch_with(
            &tenant("acme", "concurrency=2"),
            json!({"code": code, "language": "typescript", "inputs": inputs}),
        )
        .await;
    let totals: Vec<&Value> = results(&batch)
        .iter()
        .map(|answer| &answer["result"])
        .collect();
    assert_eq!(totals, [&json!(6), &json!(2)], "{}", batch.body);
    // The same text as JavaScript does not parse: each item was run as TypeScript.
    let javascript = app
        .post_batch_with(
            &tenant("acme", "concurrency=2"),
            json!({"code": code, "inputs": inputs}),
        )
        .await;
    for answer in results(&javascript) {
        assert_eq!(answer["error"]["kind"], "syntax", "{}", javascript.body);
    }
}

#[tokio::test]
async fn each_item_fails_on_its_own_and_the_others_still_answer() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    let code = "switch (input) { \
                case 'throw': throw new TypeError('bad item'); \
                case 'loop': for (;;) {} \
                case 'memory': { const held = []; for (;;) held.push(new Array(100000).fill(1)); } \
                default: input }";
    let batch = app
        .post_batch_with(
            &tenant("acme", "concurrency=2"),
            json!({"code": code, "timeoutMs": 300, "memoryLimitMb": 16,
                   "inputs": ["first", "throw", "loop", "memory", null, "last"]}),
        )
        .await;
    let results = results(&batch);
    let kinds: Vec<&Value> = results.iter().map(|result| &result["error"]).collect();
    assert_eq!(results[0]["result"], "first");
    assert_eq!(kinds[1]["kind"], "exception", "{}", batch.body);
    assert_eq!(kinds[1]["message"], "bad item");
    assert_eq!(kinds[2]["kind"], "timeout", "{}", batch.body);
    assert_eq!(kinds[3]["kind"], "memory", "{}", batch.body);
    // `null` is no input, as in an execute request: the script's `input` is undefined.
    assert_eq!(results[4]["status"], "success", "{}", batch.body);
    assert_eq!(results[4]["result"], Value::Null);
    assert_eq!(results[5]["result"], "last", "{}", batch.body);
}

#[tokio::test]
async fn a_batch_compiles_its_script_at_most_once_on_each_worker_that_runs_its_items() {
    // Three workers, and a tenant allowed one at a time; another tenant's executions run
    // between the batch's items, on whichever worker is free.
    let app = spawn_app_with(|config| config.max_concurrency = 3).await;
    let misses = "sandbox_bytecode_cache_total{result=\"miss\"}";
    let hits = "sandbox_bytecode_cache_total{result=\"hit\"}";
    let other = {
        let app = app.clone();
        tokio::spawn(async move {
            for n in 0..30 {
                let code = format!("const end = Date.now() + 5; while (Date.now() < end) {{}} {n}");
                let answer = app
                    .post_execute_with(&tenant("other", "concurrency=2"), json!({"code": code}))
                    .await;
                assert_eq!(answer.result(), &json!(n));
            }
        })
    };
    let code = "function square(x) { return x * x; }\nsquare(input)";
    let inputs: Vec<u32> = (0..40).collect();
    let batch = app
        .post_batch_with(
            &tenant("batcher", "concurrency=1"),
            json!({"code": code, "inputs": inputs}),
        )
        .await;
    let results = results(&batch);
    for (n, result) in inputs.iter().zip(results) {
        assert_eq!(result["result"], json!(n * n));
    }
    other.await.unwrap();
    // 30 scripts of the other tenant were compiled, and the batch's once on each of the (at
    // most three) workers its items ran on: its other items were loaded from their caches.
    let batch_misses = app.metric(misses).await - 30.0;
    assert!(
        (1.0..=3.0).contains(&batch_misses),
        "{batch_misses} compiles"
    );
    assert_eq!(app.metric(hits).await, 40.0 - batch_misses);
}

#[tokio::test]
async fn a_batch_over_a_limit_is_refused_naming_the_rule() {
    let app = spawn_app_with(|config| {
        config.max_batch_items = 5;
        config.max_input_bytes = 100;
        config.max_body_bytes = 4096;
    })
    .await;
    let refused = |body: TestResponse, status: StatusCode, message: &str| {
        assert_eq!(body.status, status, "{}", body.body);
        body.request_error_kind();
        let said = body.body["error"]["message"].as_str().unwrap().to_owned();
        assert!(said.contains(message), "{said:?} does not say {message:?}");
    };
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    refused(
        app.post_batch_with(&[], json!({"code": "1", "inputs": [1, 2, 3, 4, 5, 6]}))
            .await,
        unprocessable,
        "inputs: 6 items are more than the limit of 5",
    );
    refused(
        app.post_batch_with(
            &tenant("acme", "batch-items=2"),
            json!({"code": "1", "inputs": [1, 2, 3]}),
        )
        .await,
        unprocessable,
        "inputs: 3 items exceed tenant acme's ceiling of 2",
    );
    refused(
        app.post_batch_with(&[], json!({"code": "1", "inputs": []}))
            .await,
        unprocessable,
        "inputs: give at least one input",
    );
    refused(
        app.post_batch_with(&[], json!({"code": "1", "inputs": [1, "x".repeat(200), 3]}))
            .await,
        unprocessable,
        "inputs[1]: 202 bytes of JSON is more than the limit of 100",
    );
    refused(
        app.post_batch_with(&[], json!({"code": "1", "inputs": {"a": 1}}))
            .await,
        unprocessable,
        "inputs: invalid type",
    );
    refused(
        app.post_batch_with(&[], json!({"code": "1", "input": 1, "inputs": [1]}))
            .await,
        unprocessable,
        "unknown field `input`",
    );
    refused(
        app.post_batch_with(
            &[],
            json!({"code": "1", "timeoutMs": 999_999, "inputs": [1]}),
        )
        .await,
        unprocessable,
        "timeoutMs: must be at most",
    );
    let many: Vec<String> = (0..5).map(|_| "x".repeat(95)).collect();
    let mut big = json!({"code": "1", "inputs": many});
    big["code"] = json!(format!("1 // {}", "y".repeat(4000)));
    refused(
        app.post_batch_with(&[], big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than the limit of 4096 bytes",
    );
    refused(
        app.post_batch_with(&[], json!({"file": "nope.js", "inputs": [1]}))
            .await,
        StatusCode::NOT_FOUND,
        "no example script is named",
    );
    // Nothing ran.
    assert_eq!(app.metric_sum("sandbox_executions_total{").await, 0.0);
}

#[tokio::test]
async fn answers_past_the_batchs_byte_cap_are_replaced_by_an_output_limit_error() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.max_batch_answer_bytes = 2500;
    })
    .await;
    let batch = app
        .post_batch_with(
            &[],
            json!({"code": "'x'.repeat(input)", "inputs": [1000, 1000, 1000, 10]}),
        )
        .await;
    let results = results(&batch);
    // Run one at a time, in order: the first two fit, the third does not, the fourth does.
    assert_eq!(results[0]["result"].as_str().map(str::len), Some(1000));
    assert_eq!(results[1]["result"].as_str().map(str::len), Some(1000));
    assert_eq!(
        results[2]["error"]["kind"], "output_limit",
        "{}",
        batch.body
    );
    let message = results[2]["error"]["message"].as_str().unwrap();
    assert!(message.contains("MAX_BATCH_ANSWER_BYTES"), "{message}");
    assert_eq!(results[3]["result"].as_str().map(str::len), Some(10));
}

#[tokio::test]
async fn a_batch_ends_by_its_deadline_and_items_that_could_not_start_say_so() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.max_timeout = std::time::Duration::from_millis(1000);
        config.default_timeout = std::time::Duration::from_millis(1000);
    })
    .await;
    let batch = app
        .post_batch_with(
            &[],
            json!({"code": "for (;;) {}", "timeoutMs": 700, "inputs": [1, 2, 3]}),
        )
        .await;
    let results = results(&batch);
    // The first runs its 700 ms; the second what is left of the batch's 1000 ms; the third
    // finds none left.
    for result in results {
        assert_eq!(result["error"]["kind"], "timeout", "{}", batch.body);
    }
    let second = results[1]["error"]["message"].as_str().unwrap();
    assert!(!second.contains("700 ms"), "{second}");
    let third = results[2]["error"]["message"].as_str().unwrap();
    assert!(third.starts_with("not run: "), "{third}");
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"timeout\"}")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_batch_holds_no_more_workers_than_its_tenant_may_and_others_are_served_meanwhile() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    let busy = "const end = Date.now() + 100; while (Date.now() < end) {} input";
    let inputs: Vec<u32> = (0..30).collect();
    let batch = {
        let app = app.clone();
        let inputs = inputs.clone();
        tokio::spawn(async move {
            app.post_batch_with(
                &tenant("bulk", "concurrency=1"),
                json!({"code": busy, "inputs": inputs}),
            )
            .await
        })
    };
    app.wait_for_metric(
        "sandbox_executions_total{tenant=\"bulk\",outcome=\"success\"}",
        1.0,
    )
    .await;
    // Alone, the batch runs one item at a time though a second worker is idle.
    for _ in 0..10 {
        assert_eq!(app.metric("sandbox_workers_busy").await, 1.0);
    }
    for n in 0..5 {
        let answer = app
            .post_execute_with(
                &tenant("quick", "concurrency=1"),
                json!({"code": format!("{n}")}),
            )
            .await;
        assert_eq!(answer.result(), &json!(n));
        assert!(
            !batch.is_finished(),
            "the batch of 30 items of 100 ms, one at a time, ended before the other tenant's \
             request {n}"
        );
    }
    let batch = batch.await.unwrap();
    assert_eq!(results(&batch).len(), inputs.len());
}

#[tokio::test]
async fn a_batch_that_takes_every_worker_still_gives_another_tenant_its_turn_between_items() {
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let busy = "const end = Date.now() + 100; while (Date.now() < end) {} input";
    let inputs: Vec<u32> = (0..20).collect();
    let batch = {
        let app = app.clone();
        tokio::spawn(async move {
            app.post_batch_with(
                &tenant("bulk", "concurrency=1"),
                json!({"code": busy, "inputs": inputs}),
            )
            .await
        })
    };
    app.wait_for_metric(
        "sandbox_executions_total{tenant=\"bulk\",outcome=\"success\"}",
        1.0,
    )
    .await;
    // The one worker is the batch's; the other tenant's request waits for the item running
    // now, then has its turn before the batch's next item.
    let answer = app
        .post_execute_with(
            &tenant("quick", "concurrency=1"),
            json!({"code": "'served'"}),
        )
        .await;
    assert_eq!(answer.result(), &json!("served"));
    let done = app
        .metric("sandbox_executions_total{tenant=\"bulk\",outcome=\"success\"}")
        .await;
    assert!(
        done < 20.0,
        "the batch's {done} items all ran before the other tenant's turn"
    );
    assert_eq!(results(&batch.await.unwrap()).len(), 20);
}

/// The next line of a streamed batch, as JSON.
async fn next_line(body: &mut hyper::body::Incoming, pending: &mut Vec<u8>) -> Option<Value> {
    loop {
        if let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            return Some(serde_json::from_slice(&line).expect("a line is JSON"));
        }
        let frame = body.frame().await?.expect("the stream is readable");
        if let Ok(data) = frame.into_data() {
            pending.extend_from_slice(&data);
        }
    }
}

#[tokio::test]
async fn a_streamed_batch_sends_each_item_as_a_line_as_soon_as_it_finishes() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    let code = "if (input === 'slow') { for (;;) {} } input";
    let response = app
        .start_batch(
            &[
                ("accept", "application/x-ndjson"),
                ("x-tenant-id", "acme"),
                ("x-tenant-limits", "concurrency=2"),
            ],
            json!({"code": code, "timeoutMs": 3000, "inputs": ["slow", "quick"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.into_body();
    let mut pending = Vec::new();

    let first = next_line(&mut body, &mut pending)
        .await
        .expect("a first line");
    assert_eq!(first["index"], 1, "{first}");
    assert_eq!(first["status"], "success");
    assert_eq!(first["result"], "quick");
    // It came while the slow item still ran: nothing has timed out yet.
    assert_eq!(app.metric("sandbox_workers_busy").await, 1.0);
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"acme\",outcome=\"timeout\"}")
            .await,
        0.0
    );

    let second = next_line(&mut body, &mut pending)
        .await
        .expect("a second line");
    assert_eq!(second["index"], 0, "{second}");
    assert_eq!(second["error"]["kind"], "timeout");
    assert!(next_line(&mut body, &mut pending).await.is_none());
    assert!(pending.is_empty());
}

#[tokio::test]
async fn a_client_that_leaves_a_batch_stops_its_items() {
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let response = app
        .start_batch(
            &[("accept", "application/x-ndjson")],
            json!({"code": "for (;;) {}", "timeoutMs": 20000, "inputs": [1, 2, 3]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    drop(response);
    // The running item is cancelled long before its 20 s, and the others never start: the
    // one worker runs the next request.
    app.wait_for_metric(
        "sandbox_executions_total{tenant=\"anonymous\",outcome=\"cancelled\"}",
        1.0,
    )
    .await;
    assert_eq!(app.run("'free again'").await.result(), &json!("free again"));
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"cancelled\"}")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"anonymous\",outcome=\"timeout\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn batch_items_are_counted_as_executions_of_their_tenant() {
    let app: TestApp = spawn_app_with(|config| config.max_concurrency = 1).await;
    let batch = app
        .post_batch_with(
            &tenant("acme", "concurrency=1"),
            json!({"code": "input.x", "inputs": [{"x": 1}, {"x": 2}, {"x": 3}]}),
        )
        .await;
    assert_eq!(results(&batch).len(), 3);
    assert_eq!(
        app.metric("sandbox_executions_total{tenant=\"acme\",outcome=\"success\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn an_item_refused_a_worker_after_the_first_waits_for_one_within_the_batchs_time() {
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.queue_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let batch = {
        let app = app.clone();
        let code = "const end = Date.now() + 200; while (Date.now() < end) {} input";
        tokio::spawn(async move {
            app.post_batch_with(
                &tenant("bulk", "concurrency=1"),
                json!({"code": code, "inputs": [1, 2]}),
            )
            .await
        })
    };
    app.wait_for_metric("sandbox_workers_busy", 1.0).await;
    // Another tenant queues behind the first item and then holds the one worker for longer
    // than the second item may wait in the queue.
    let hog = app
        .post_execute_with(
            &tenant("hog", "concurrency=1"),
            json!({"code": "const end = Date.now() + 1500; while (Date.now() < end) {} 'hog'"}),
        )
        .await;
    assert_eq!(hog.result(), &json!("hog"));
    let batch = batch.await.unwrap();
    let results = results(&batch);
    assert_eq!(results[0]["result"], 1, "{}", batch.body);
    assert_eq!(results[1]["result"], 2, "{}", batch.body);
    assert!(
        app.metric("sandbox_rejections_total{tenant=\"bulk\",reason=\"queue_timeout\"}")
            .await
            >= 1.0,
        "the second item was never refused: the test did not test the retry"
    );
}
