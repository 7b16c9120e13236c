//! `"language": "typescript"`: types are stripped inside the worker, under its filter and
//! within the execution's limits, and what is left runs as JavaScript whose errors point at
//! the TypeScript as written. What cannot be stripped, or is nested too deeply to parse, is an
//! ordinary `syntax` error of that execution, and the service goes on serving: with the same
//! worker when the nesting estimate refuses it, with a replacement when nesting disguised from
//! the estimate runs the stripper into its stack's guard.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{TestApp, spawn_app, spawn_app_with};

async fn run_typescript(app: &TestApp, code: &str) -> crate::support::TestResponse {
    app.post_execute(json!({ "code": code, "language": "typescript" }))
        .await
}

#[tokio::test]
async fn typescript_with_types_runs_and_logs_as_its_javascript_would() {
    let app = spawn_app().await;
    let response = run_typescript(
        &app,
        r#"
interface User { name: string; roles: readonly string[] }
type Greeting<T extends User = User> = (user: T) => string;
declare const configured: boolean;
declare namespace Types { type Id = number }
import type { Unused } from "./nowhere";
const greet: Greeting = (user) => `hello ${user.name as string}`;
function pick<T, K extends keyof T>(item: T, key: K): T[K] { return item[key]; }
const admin = { name: "ada", roles: ["admin"] } satisfies User;
console.log(greet(admin));
[pick<User, "name">(admin, "name"), admin.roles.length!, typeof configured]
"#,
    )
    .await;
    assert_eq!(
        response.result(),
        &json!(["ada", 1, "undefined"]),
        "{}",
        response.body
    );
    assert_eq!(response.log()[0]["data"], json!(["hello ada"]));
}

#[tokio::test]
async fn an_error_thrown_on_line_five_of_typescript_reports_line_five_and_its_column() {
    let app = spawn_app().await;
    let typed = "interface Order { total: number }\n\
                 type Id = string;\n\
                 const orders: Order[] = [{ total: 1 }];\n\
                 function check(order: Order, id: Id): void {\n\
                 \x20 if (order.total > 0) throw new RangeError(`order ${id}`);\n\
                 }\n\
                 check(orders[0], 'a');\n";
    // The JavaScript that stripping must give: each type replaced by as many spaces.
    let blanked = [
        "interface Order { total: number }",
        "type Id = string;",
        ": Order[]",
        ": Order",
        ": Id",
        ": void",
    ]
    .iter()
    .fold(typed.to_owned(), |code, types| {
        code.replace(types, &" ".repeat(types.len()))
    });
    let typescript = run_typescript(&app, typed).await;
    let javascript = app.run(&blanked).await;
    assert_eq!(typescript.script_error_kind(), "exception");
    assert_eq!(typescript.body["error"]["message"], "order a");
    let stack = typescript.body["error"]["stack"].as_str().unwrap();
    assert!(stack.starts_with("    at check (script.ts:5:"), "{stack}");
    let expected = javascript.body["error"]["stack"].as_str().unwrap();
    assert_eq!(
        stack,
        expected.replace("script.js", "script.ts"),
        "the TypeScript's line and column are the JavaScript's"
    );
}

#[tokio::test]
async fn an_enum_is_refused_as_syntax_naming_it_and_its_line() {
    let app = spawn_app().await;
    let response = run_typescript(&app, "const a = 1;\nenum Color { Red, Green }\nColor.Red").await;
    assert_eq!(response.script_error_kind(), "syntax");
    let error = &response.body["error"];
    assert_eq!(error["name"], "SyntaxError");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("enum"), "{message}");
    assert!(message.contains("line 2, column 1"), "{message}");
    assert_eq!(error["stack"], "    at script.ts:2:1\n");
}

#[tokio::test]
async fn invalid_typescript_and_parameter_properties_are_syntax_errors_at_their_positions() {
    let app = spawn_app().await;
    for (code, expected) in [
        ("let a: number = 1;\nlet b: = 2;", "line 2, column 8"),
        (
            "class Point {\n  constructor(private x: number) {}\n}",
            "parameter property",
        ),
        ("namespace Tools {\n  export const x = 1;\n}", "namespace"),
    ] {
        let response = run_typescript(&app, code).await;
        assert_eq!(response.script_error_kind(), "syntax", "{code}");
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{code}: {message}");
    }
}

#[tokio::test]
async fn deeply_nested_typescript_is_an_ordinary_error_and_the_worker_goes_on() {
    // One worker, so the request after each is served by the same process.
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let depth = 100_000;
    for code in [
        format!("{}1{}", "(".repeat(depth), ")".repeat(depth)),
        format!(
            "let a: {}number{};",
            "Array<".repeat(depth),
            ">".repeat(depth)
        ),
        format!("{}1", "!".repeat(depth)),
    ] {
        let response = run_typescript(&app, &code).await;
        assert_eq!(response.script_error_kind(), "syntax", "{}", response.body);
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the TypeScript is nested too deeply"),
            "{message}"
        );
        let next = run_typescript(&app, "const n: number = 2; n * 21").await;
        assert_eq!(next.result(), &json!(42));
    }
    assert_eq!(
        app.metric_sum("sandbox_worker_exits_total{").await,
        0.0,
        "no worker ended"
    );
}

/// TypeScript nested 100 000 deep (30 000 where a level is long) in ways made to look shallow
/// to a scan that reads brackets in context: brackets that the scan takes for the inside of a
/// regular expression, a string or a comment, and nesting that commas seem to end. Each is
/// named for its disguise; commas also break up the closing brackets, which would otherwise
/// add up as one long run.
fn disguised_nesting() -> Vec<(&'static str, String)> {
    let groups = 20_000;
    // `1),0),0)...`: closes `levels` parentheses.
    let closing = |levels: usize| format!("1){}", ",0)".repeat(levels - 1));
    let closers = closing(5 * groups);
    let divided = |operand: &str| {
        format!(
            "x = {operand} / {}{closers};",
            format!("(((((a / {operand}, {operand} / ").repeat(groups)
        )
    };
    let type_closers = |levels: usize| format!(">{}", ", C>".repeat(levels - 1));
    vec![
        ("a division after an object", divided("{}")),
        ("a division after a non-null assertion", divided("a!")),
        (
            "a division after a keyword named property",
            divided("a.return"),
        ),
        (
            "strings continued over a CRLF line break",
            format!("x = {}{closers};", "((((('\\\r\n,)))))' + ".repeat(groups)),
        ),
        (
            "line comments ended by a carriage return",
            format!("x = {}{closers};", "//\r(((((\n".repeat(groups)),
        ),
        (
            "line comments ended by a line separator",
            format!("x = {}{closers};", "//\u{2028}(((((\n".repeat(groups)),
        ),
        (
            "type arguments after commas",
            format!(
                "let a: {}number{};",
                "A<B, ".repeat(100_000),
                type_closers(100_000)
            ),
        ),
        (
            "conditional types in type arguments",
            format!(
                "type T = {}D{};",
                // 30 000 deep: the request body's limit is 1 MiB.
                "F<X, A extends B ? C : ".repeat(30_000),
                type_closers(30_000)
            ),
        ),
    ]
}

#[tokio::test]
async fn disguised_deep_nesting_is_an_ordinary_error_and_the_service_goes_on() {
    // One worker, so each next request is served by the worker that replaced it, if any.
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    for (disguise, code) in disguised_nesting() {
        let response = run_typescript(&app, &code).await;
        assert_eq!(
            response.script_error_kind(),
            "syntax",
            "{disguise}: {}",
            response.body
        );
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("the TypeScript is nested too deeply"),
            "{disguise}: {message}"
        );
        let next = run_typescript(&app, "const n: number = 2; n * 21").await;
        assert_eq!(next.result(), &json!(42), "after {disguise}");
    }
    assert_eq!(
        app.metric_sum("sandbox_worker_exits_total{reason=\"crashed\",")
            .await,
        0.0,
        "no worker crashed"
    );
    assert!(
        app.metric_sum("sandbox_worker_exits_total{reason=\"nested_too_deeply\",")
            .await
            > 0.0,
        "the stripper's stack guard stopped at least one of them"
    );
}

#[tokio::test]
async fn stripping_counts_against_the_execution_memory_limit() {
    let app = spawn_app().await;
    // Tiny source per element, large syntax tree: about 100 bytes of swc's memory per byte.
    let code = format!(
        "const all: object[] = [{}{{}}]; all.length",
        "{},".repeat(100_000)
    );
    let small = app
        .post_execute(json!({ "code": code, "language": "typescript", "memoryLimitMb": 4 }))
        .await;
    assert_eq!(small.script_error_kind(), "memory", "{}", small.body);
    let large = app
        .post_execute(json!({ "code": code, "language": "typescript", "memoryLimitMb": 128 }))
        .await;
    assert_eq!(large.result(), &json!(100_001), "{}", large.body);
    assert_eq!(
        app.metric_sum("sandbox_worker_exits_total{reason=\"crashed\",")
            .await,
        0.0,
        "the worker that ran out reported it rather than crashing"
    );
}

#[tokio::test]
async fn stripping_counts_in_the_execution_time() {
    let app = spawn_app().await;
    // Types only: stripped to whitespace that compiles at once, but stripping them is not.
    let code = "type Row = { id: string; cells: Array<{ value: number }> };\n".repeat(15_000) + "1";
    let response = app
        .post_execute(json!({ "code": code, "language": "typescript", "timeoutMs": 1 }))
        .await;
    assert_eq!(response.script_error_kind(), "timeout", "{}", response.body);
    let response = app
        .post_execute(json!({ "code": code, "language": "typescript", "timeoutMs": 30_000 }))
        .await;
    assert_eq!(response.result(), &json!(1));
    let stripping = response.body["executionTime"].as_f64().unwrap();
    let javascript = app.run(&" ".repeat(code.len() - 1)).await;
    assert!(
        stripping > javascript.body["executionTime"].as_f64().unwrap(),
        "the execution time includes stripping: {stripping} ms"
    );
}

#[tokio::test]
async fn typescript_that_differs_only_in_its_types_loads_the_bytecode_compiled_first() {
    let app = spawn_app_with(|config| config.max_concurrency = 1).await;
    let hits = "sandbox_bytecode_cache_total{result=\"hit\"}";
    let misses = "sandbox_bytecode_cache_total{result=\"miss\"}";
    // Both strip to the same JavaScript: the types are blanked to whitespace of their length.
    let numbered = "function double(x: number): number { return 2 * x; }\ndouble(21)";
    let stringly = "function double(x: string): string { return 2 * x; }\ndouble(21)";
    for code in [numbered, stringly, stringly] {
        assert_eq!(run_typescript(&app, code).await.result(), &json!(42));
    }
    assert_eq!(app.metric(misses).await, 1.0);
    assert_eq!(app.metric(hits).await, 2.0);
}

#[tokio::test]
async fn javascript_stays_the_default_and_is_never_stripped() {
    let app = spawn_app().await;
    let typed = "let a: number = 1; a";
    assert_eq!(app.run(typed).await.script_error_kind(), "syntax");
    let explicit = app
        .post_execute(json!({ "code": typed, "language": "javascript" }))
        .await;
    assert_eq!(explicit.script_error_kind(), "syntax");
    let stack = explicit.body["error"]["stack"].as_str().unwrap_or_default();
    assert!(stack.contains("script.js"), "{}", explicit.body);
    assert_eq!(run_typescript(&app, typed).await.result(), &json!(1));
}

#[tokio::test]
async fn an_unknown_language_is_refused_in_the_api_error_shape() {
    let app = spawn_app().await;
    for language in [json!("python"), json!("TypeScript"), json!(1)] {
        let response = app
            .post_execute(json!({ "code": "1", "language": language }))
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{language}"
        );
        assert_eq!(
            response.request_error_kind(),
            "invalid_request",
            "{language}"
        );
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("language"), "{message}");
    }
}
