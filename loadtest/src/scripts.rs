//! The request bodies the users send, each with the answer the service should give it.

/// One `POST /api/execute` body and the outcome a healthy service answers it with.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    /// Names the script in the reports and in goose's request names.
    pub name: &'static str,
    /// The JSON request body.
    pub body: &'static str,
    /// The `status` of a success, or the error `kind` it should end with.
    pub expected: &'static str,
}

pub const TRIVIAL: Script = Script {
    name: "trivial",
    body: r#"{"code": "1 + 2"}"#,
    expected: "success",
};

pub const CONSOLE_HEAVY: Script = Script {
    name: "console-heavy",
    body: r#"{"code": "for (let i = 0; i < 100; i++) console.log('line', i, {i}); 'done'"}"#,
    expected: "success",
};

/// The bundled example: 1000 digits of pi, the slowest of the well-behaved scripts.
pub const PI: Script = Script {
    name: "pi.js",
    body: r#"{"file": "pi.js"}"#,
    expected: "success",
};

pub const ENDLESS_LOOP_SHORT_TIMEOUT: Script = Script {
    name: "endless-loop-100ms",
    body: r#"{"code": "while (true) {}", "timeoutMs": 100}"#,
    expected: "timeout",
};

/// An endless loop under the default time limit: what the hostile tenant floods with.
pub const ENDLESS_LOOP: Script = Script {
    name: "endless-loop",
    body: r#"{"code": "while (true) {}"}"#,
    expected: "timeout",
};

pub const MEMORY_BOMB: Script = Script {
    name: "memory-bomb",
    body: r#"{"code": "const parts = []; while (true) parts.push('x'.repeat(1 << 20) + parts.length)", "memoryLimitMb": 8}"#,
    expected: "memory",
};

pub const STACK_OVERFLOW: Script = Script {
    name: "stack-overflow",
    body: r#"{"code": "function down(n) { return down(n + 1) + 1 } down(0)"}"#,
    expected: "stack_overflow",
};

pub const SYNTAX_ERROR: Script = Script {
    name: "syntax-error",
    body: r#"{"code": "let = ;"}"#,
    expected: "syntax",
};

/// A script whose answer is about 1.8 MB (900 KB of console output and a 900 KB result), for
/// the clients that never read it.
pub const LARGE_ANSWER: Script = Script {
    name: "large-answer",
    body: r#"{"code": "for (let i = 0; i < 1000; i++) console.log('y'.repeat(900)); 'x'.repeat(900000)"}"#,
    expected: "success",
};
