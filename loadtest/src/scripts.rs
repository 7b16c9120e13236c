//! The request bodies the users send, each with the answer the service should give it.

/// One `POST /api/execute` (or `POST /api/batch`) body and the outcome a healthy service answers it with.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    /// Names the script in the reports and in goose's request names.
    pub name: &'static str,
    /// The JSON request body.
    pub body: &'static str,
    /// The `status` of a success, or the error `kind` it should end with.
    pub expected: &'static str,
    /// The JSON `result` of the success the script must end with, when its answer is checked:
    /// any other answer to it is lost (see [`crate::answer::Outcome::judge`]).
    pub result: Option<&'static str>,
    /// Whether the answer is asked for as a stream of events (`Accept: text/event-stream`).
    pub streamed: bool,
    /// For a `POST /api/batch` body, its number of `inputs`, `0, 1, ...`: each item's answer
    /// must be a success whose result is its input doubled, in the inputs' order
    /// ([`crate::batch`]); `None` for a `POST /api/execute` body.
    pub batch_items: Option<usize>,
    /// Whether the body is sent as the executions of a session of its own
    /// (`POST /api/sessions/{id}/execute`, [`crate::session`]) rather than to `/api/execute`.
    pub in_session: bool,
}

pub const TRIVIAL: Script = Script {
    name: "trivial",
    body: r#"{"code": "1 + 2"}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

pub const CONSOLE_HEAVY: Script = Script {
    name: "console-heavy",
    body: r#"{"code": "for (let i = 0; i < 100; i++) console.log('line', i, {i}); 'done'"}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// The bundled example: 1000 digits of pi, the slowest of the well-behaved scripts.
pub const PI: Script = Script {
    name: "pi.js",
    body: r#"{"file": "pi.js"}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

pub const ENDLESS_LOOP_SHORT_TIMEOUT: Script = Script {
    name: "endless-loop-100ms",
    body: r#"{"code": "while (true) {}", "timeoutMs": 100}"#,
    expected: "timeout",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// An endless loop under the default time limit: what the hostile tenant floods with.
pub const ENDLESS_LOOP: Script = Script {
    name: "endless-loop",
    body: r#"{"code": "while (true) {}"}"#,
    expected: "timeout",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

pub const MEMORY_BOMB: Script = Script {
    name: "memory-bomb",
    body: r#"{"code": "const parts = []; while (true) parts.push('x'.repeat(1 << 20) + parts.length)", "memoryLimitMb": 8}"#,
    expected: "memory",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

pub const STACK_OVERFLOW: Script = Script {
    name: "stack-overflow",
    body: r#"{"code": "function down(n) { return down(n + 1) + 1 } down(0)"}"#,
    expected: "stack_overflow",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

pub const SYNTAX_ERROR: Script = Script {
    name: "syntax-error",
    body: r#"{"code": "let = ;"}"#,
    expected: "syntax",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// A script whose answer is about 1.8 MB (900 KB of console output and a 900 KB result), for
/// the clients that never read it.
pub const LARGE_ANSWER: Script = Script {
    name: "large-answer",
    body: r#"{"code": "for (let i = 0; i < 1000; i++) console.log('y'.repeat(900)); 'x'.repeat(900000)"}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// A script that logs now and then every 25 ms on a timer, five entries over 100 ms, asked for
/// as a stream: each entry should arrive as a `log` event while it runs, then its answer as
/// the `result` event.
pub const STREAMED_TICKS: Script = Script {
    name: "streamed-ticks",
    body: r#"{"code": "console.log('tick', 0); let n = 0; new Promise((resolve) => { const timer = setInterval(() => { console.log('tick', ++n); if (n === 4) { clearInterval(timer); resolve(n * 10) } }, 25) })"}"#,
    expected: "success",
    result: Some("40"),
    streamed: true,
    batch_items: None,
    in_session: false,
};

/// TypeScript with most of what stripping erases: an interface, a generic type alias, a
/// generic function, annotations, class member modifiers, `implements`, `as const`,
/// `satisfies` and a non-null assertion. Run as JavaScript it would be a syntax error.
pub const TYPESCRIPT_TYPED: Script = Script {
    name: "typescript-typed",
    body: r#"{"language": "typescript", "code": "interface Shape { area(): number }\ntype Pair<T> = readonly [T, T];\nclass Rect implements Shape {\n  private readonly w: number;\n  public h: number;\n  constructor(w: number, h: number) { this.w = w; this.h = h }\n  area(): number { return this.w * this.h }\n}\nfunction total<T extends Shape>(shapes: T[]): number { return shapes.reduce((sum: number, s: T) => sum + s.area(), 0) }\nconst sides: Pair<number> = [3, 4] as const;\nconst limits = { max: 100 } satisfies Record<string, number>;\nconst found: Rect | undefined = [new Rect(...sides)].find((r) => r.area() > 0);\n({ total: total<Shape>([found!, new Rect(2, 5)]), under: total([found!]) < limits.max })"}"#,
    expected: "success",
    result: Some(r#"{"total":22,"under":true}"#),
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// An `enum` needs code generation, which strip-only TypeScript refuses as a syntax error.
pub const TYPESCRIPT_ENUM: Script = Script {
    name: "typescript-enum",
    body: r#"{"language": "typescript", "code": "enum Color { Red, Green }\nColor.Green"}"#,
    expected: "syntax",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: false,
};

/// Inputs of each batch of [`BATCH_OF_TRIVIAL`].
pub const BATCH_ITEMS: usize = 50;

/// A batch of [`BATCH_ITEMS`] trivial items, `input * 2` over the inputs `0` to `49`.
pub const BATCH_OF_TRIVIAL: Script = Script {
    name: "batch-of-50",
    body: r#"{"code": "input * 2", "inputs": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49]}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: Some(BATCH_ITEMS),
    in_session: false,
};

/// Counts its runs in a global: run again and again in one session, the `n`-th run answers
/// `n` ([`crate::session`] checks it).
pub const SESSION_COUNTER: Script = Script {
    name: "session-counter",
    body: r#"{"code": "globalThis.n = (globalThis.n ?? 0) + 1; n"}"#,
    expected: "success",
    result: None,
    streamed: false,
    batch_items: None,
    in_session: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_and_checked_result_is_json() {
        let scripts = [
            TRIVIAL,
            CONSOLE_HEAVY,
            PI,
            ENDLESS_LOOP_SHORT_TIMEOUT,
            ENDLESS_LOOP,
            MEMORY_BOMB,
            STACK_OVERFLOW,
            SYNTAX_ERROR,
            LARGE_ANSWER,
            STREAMED_TICKS,
            TYPESCRIPT_TYPED,
            TYPESCRIPT_ENUM,
            BATCH_OF_TRIVIAL,
            SESSION_COUNTER,
        ];
        for script in scripts {
            let body: serde_json::Value = serde_json::from_str(script.body)
                .unwrap_or_else(|error| panic!("{}: {error}", script.name));
            assert!(body.is_object(), "{}", script.name);
            if let Some(result) = script.result {
                assert_eq!(script.expected, "success", "{}", script.name);
                serde_json::from_str::<serde_json::Value>(result)
                    .unwrap_or_else(|error| panic!("{}: {error}", script.name));
            }
            if let Some(items) = script.batch_items {
                let inputs: Vec<usize> = serde_json::from_value(body["inputs"].clone()).unwrap();
                assert_eq!(inputs, (0..items).collect::<Vec<_>>(), "{}", script.name);
            }
        }
    }
}
