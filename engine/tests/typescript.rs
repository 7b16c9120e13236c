//! TypeScript scripts in the engine: their types are stripped inside the execution, what is
//! left runs as JavaScript with every position where the TypeScript had it, and what cannot
//! be stripped is a `syntax` error that says what and where.

use std::{sync::Arc, time::Duration};

use engine::{EngineSettings, ErrorKind, Language, Limits, Outcome, Script};

fn run(language: Language, code: &str) -> Outcome {
    let name = match language {
        Language::JavaScript => "script.js",
        Language::TypeScript => "script.ts",
    };
    let script = Script {
        name: name.into(),
        source: Arc::from(code),
        language,
        input: None,
    };
    let limits = Limits {
        timeout: Duration::from_secs(10),
        memory_limit: 64 * 1024 * 1024,
    };
    engine::execute(&EngineSettings::default(), script, limits)
        .unwrap()
        .0
}

fn typescript(code: &str) -> Outcome {
    run(Language::TypeScript, code)
}

/// Every construct that strips to nothing, used: the same values as the JavaScript below.
const ERASABLE: &str = r#"
interface Point { x: number; y: number }
type Pair<T> = [T, T];
declare const injected: string;
declare function external(value: unknown): void;
declare namespace Types { type Id = string }
namespace OnlyTypes { export type Name = string }
import type { Missing } from "./nowhere";
abstract class Shape<T extends object = {}> {
    private readonly sides: number;
    protected label?: string;
    constructor(sides: number) { this.sides = sides; }
    abstract area(): number;
    count(this: Shape<T>): number { return this.sides; }
}
class Square extends Shape implements Point {
    x!: number;
    y = 0;
    declare z: number;
    constructor(public_side: number) { super(4); this.x = public_side; }
    override area(): number { return this.x ** 2; }
}
function first<T,>(items: readonly T[]): T | undefined { return items[0]; }
function isText(value: unknown): value is string { return typeof value === "string"; }
function assertDefined(value: unknown): asserts value {}
const pair: Pair<number> = [1, 2];
const point = { x: 3, y: 4 } satisfies Point;
const square = new Square(3) as Shape<{}> as Square;
const length = (pair as unknown as number[]).length!;
const generic = first<number>(pair);
const instantiated = first<string>;
let later!: number;
later = 5;
assertDefined(later);
[square.area(), square.count(), point.x satisfies number, length, generic,
 instantiated(["a"]), isText("b"), later, (1 as const) === 1]
"#;

#[test]
fn every_erasable_construct_strips_to_the_same_values_as_the_javascript() {
    let outcome = typescript(ERASABLE);
    assert_eq!(
        outcome.result.unwrap(),
        r#"[9,4,3,2,1,"a",true,5,true]"#,
        "the TypeScript runs"
    );
    let javascript = run(
        Language::JavaScript,
        r#"
class Shape { constructor(sides) { this.sides = sides; } count() { return this.sides; } }
class Square extends Shape {
    y = 0;
    constructor(public_side) { super(4); this.x = public_side; }
    area() { return this.x ** 2; }
}
function first(items) { return items[0]; }
function isText(value) { return typeof value === "string"; }
const pair = [1, 2];
const point = { x: 3, y: 4 };
const square = new Square(3);
let later;
later = 5;
[square.area(), square.count(), point.x, pair.length, first(pair), first(["a"]),
 isText("b"), later, true]
"#,
    );
    assert_eq!(javascript.result.unwrap(), r#"[9,4,3,2,1,"a",true,5,true]"#);
}

/// `code` with each of `types` (wherever it occurs) replaced by as many spaces: the
/// JavaScript that stripping must give.
fn blank(code: &str, types: &[&str]) -> String {
    types.iter().fold(code.to_owned(), |code, types| {
        code.replace(types, &" ".repeat(types.len()))
    })
}

#[test]
fn an_error_on_line_five_after_types_reports_line_five_and_the_javascripts_column() {
    let code = "interface Order { total: number }\n\
                type Id = string;\n\
                const orders: Array<Order> = [{ total: 1 }];\n\
                function check(order: Order, id: Id): void {\n\
                \x20   if (order.total > 0) throw new RangeError(`order ${id as string}`);\n\
                }\n\
                check(orders[0]!, 'a' satisfies Id);\n";
    let error = typescript(code).result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Exception);
    assert_eq!(error.message, "order a");
    let stack = error.stack.unwrap();
    let javascript = blank(
        code,
        &[
            "interface Order { total: number }",
            "type Id = string;",
            ": Array<Order>",
            ": Order",
            ": Id",
            ": void",
            " as string",
            "!",
            " satisfies Id",
        ],
    );
    let expected = run(Language::JavaScript, &javascript)
        .result
        .unwrap_err()
        .stack
        .unwrap()
        .replace("script.js", "script.ts");
    assert_eq!(stack, expected);
    assert!(stack.starts_with("    at check (script.ts:5:"), "{stack}");
    assert!(
        stack.contains("(script.ts:7:"),
        "the caller's frame: {stack}"
    );
}

#[test]
fn stripped_positions_are_the_typescripts_in_every_frame() {
    let code = "function a(x: number): never {\n  throw new Error('deep ' + x);\n}\n\
                const b = <T,>(y: T): void => { a(y as number); };\n\
                (function c(): void { b<number>(1); })();";
    let javascript = blank(
        code,
        &[
            ": number",
            ": never",
            "<T,>",
            ": T",
            ": void",
            " as number",
            "<number>",
        ],
    );
    let typed = typescript(code).result.unwrap_err();
    let blanked = run(Language::JavaScript, &javascript).result.unwrap_err();
    assert_eq!(
        typed.stack.unwrap().replace("script.ts", "script.js"),
        blanked.stack.unwrap()
    );
}

#[test]
fn an_enum_is_refused_as_syntax_with_its_line() {
    let outcome = typescript("const a = 1;\n\nenum Color { Red, Green }\nColor.Red");
    let error = outcome.result.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Syntax);
    assert_eq!(error.name, "SyntaxError");
    assert!(error.message.contains("enum"), "{}", error.message);
    assert!(
        error.message.contains("line 3, column 1"),
        "{}",
        error.message
    );
    assert_eq!(error.stack.as_deref(), Some("    at script.ts:3:1\n"));
}

#[test]
fn namespaces_with_values_and_parameter_properties_are_refused_with_their_lines() {
    for (code, construct, line) in [
        ("namespace Tools { export const x = 1 }", "namespace", 1),
        (
            "class A {\n  constructor(private x: number) {}\n}",
            "parameter property",
            2,
        ),
        ("let x = <number>1;", "type assertion", 1),
    ] {
        let error = typescript(code)
            .result
            .expect_err(&format!("{code} must be refused"));
        assert_eq!(error.kind, ErrorKind::Syntax, "{code}");
        assert!(
            error.message.contains(construct) && error.message.contains(&format!("line {line},")),
            "{code}: {}",
            error.message
        );
    }
}

#[test]
fn invalid_typescript_is_a_syntax_error_with_its_position() {
    let error = typescript("let a: number = 1;\nlet b: = 2;")
        .result
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Syntax);
    assert!(
        error.message.contains("line 2, column 8"),
        "{}",
        error.message
    );
}

#[test]
fn deep_nesting_is_refused_as_syntax_before_it_reaches_the_parser() {
    let depth = 100_000;
    for code in [
        format!("{}1{}", "(".repeat(depth), ")".repeat(depth)),
        format!(
            "let a: {}number{};",
            "Array<".repeat(depth),
            ">".repeat(depth)
        ),
        format!("1{}", "+1".repeat(depth)),
    ] {
        let error = typescript(&code).result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Syntax);
        assert!(
            error
                .message
                .starts_with("the TypeScript is nested too deeply"),
            "{}",
            error.message
        );
    }
    // Nesting that real code has is not refused.
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(typescript(&nested).result.unwrap(), "1");
}

#[test]
fn javascript_is_not_stripped() {
    let error = run(Language::JavaScript, "let a: number = 1; a")
        .result
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Syntax);
    // A JavaScript enum is a reserved word, not a TypeScript construct.
    let error = run(Language::JavaScript, "enum E { A }")
        .result
        .unwrap_err();
    assert!(!error.message.contains("strip"), "{}", error.message);
    assert_eq!(typescript("let a: number = 1; a").result.unwrap(), "1");
}

#[test]
fn the_readmes_table_of_what_is_removed_and_what_is_refused_holds() {
    for (code, result) in [
        (
            "function f(this: Window, x?: number): x is number { return true } f(1)",
            "true",
        ),
        (
            "let m = new Map<string, number>([['a', 1]]); m.get('a')",
            "1",
        ),
        ("const f = <T,>(x: T) => x; const g = f<number>; g(2)", "2"),
        ("const o = { a: 1 } as const; o.a satisfies 1", "1"),
        ("let x: number | undefined = 3; x!", "3"),
        (
            "import type { A } from 'a';\nexport type { A };\nexport type B = string;\n4",
            "4",
        ),
        (
            "abstract class A { abstract f(): void; protected readonly x = 6 }\n\
             class B extends A implements I { override f() {} public y = this.x }\n\
             interface I {}\nnew B().y",
            "6",
        ),
        (
            "declare class D {}\ndeclare let e: number;\ndeclare function g(): void;\n7",
            "7",
        ),
    ] {
        assert_eq!(typescript(code).result.as_deref(), Ok(result), "{code}");
    }
    for code in [
        "enum E { A }",
        "const enum E { A }",
        "namespace N { export const a = 1 }",
        "module M { export const a = 1 }",
        "class A { constructor(private x: number) {} }",
        "let a = <number>1;",
        "import x = require('x');",
        "export = 1;",
        "const e = <div />;",
        "@sealed class A {}",
        "import x from 'x';",
        "import { type C } from 'c';",
        "export const y = 1;",
    ] {
        let error = typescript(code).result.expect_err(code);
        assert_eq!(error.kind, ErrorKind::Syntax, "{code}: {}", error.message);
    }
}
