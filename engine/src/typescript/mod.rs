//! TypeScript scripts: their types are stripped, not compiled. swc's strip-only mode (the one
//! Node's type stripping uses) replaces every annotation, interface, type alias, type
//! argument, `as`/`satisfies` clause, `declare` and type-only import or export with
//! whitespace, so the JavaScript left has each character on the line and column where the
//! user wrote it: QuickJS's errors and stack frames then point at the user's TypeScript with
//! no source map. Syntax that only compiles to JavaScript by generating code (`enum`,
//! namespaces with values, parameter properties) is refused, as Node refuses it, with the
//! construct and its position.
//!
//! This runs inside the execution, on the worker's thread, under its filter: its time counts
//! in the execution's, the memory swc allocates counts against the execution's limit as it is
//! allocated (the execution limits the host heap around it: `memory::host_heap_limited`), it
//! runs on a stack of its own, mapped once per thread and guarded ([`stack`]), and nesting too
//! deep for swc's recursive parser within that stack is refused before swc sees it by an
//! estimate ([`nesting`]). Input crafted to fool the estimate meets the stack's guard instead,
//! which the worker answers as the same error (see its `stack_guard`).

mod nesting;
mod stack;

use std::{cell::RefCell, rc::Rc};

use swc_common::{
    BytePos, SourceMap,
    errors::{DiagnosticBuilder, Emitter, Handler},
    sync::Lrc,
};
use swc_ts_fast_strip::{Mode, Options};

use crate::{ErrorKind, ScriptError};

/// A TypeScript error: what is wrong, and where (1-based line, 1-based column in characters,
/// as QuickJS counts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripError {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

impl StripError {
    /// The execution's error: a `syntax` error named `SyntaxError`, with the position in the
    /// message and as a stack frame of `script_name`, as QuickJS reports JavaScript's.
    pub fn into_script_error(self, script_name: &str) -> ScriptError {
        let (message, stack) = match self.position {
            Some((line, column)) => (
                format!("{} (line {line}, column {column})", self.message),
                Some(format!("    at {script_name}:{line}:{column}\n")),
            ),
            None => (self.message, None),
        };
        ScriptError {
            kind: ErrorKind::Syntax,
            name: "SyntaxError".to_owned(),
            message,
            stack,
        }
    }
}

/// How much of the stack swc runs on ([`stack::STRIP_STACK`]) the nesting estimate may use;
/// the rest is for the frames around the recursion.
const NESTING_BUDGET: u64 = 12 * 1024 * 1024;

/// The message of a script refused because it nests too deeply to strip, whichever guard
/// stopped it: the estimate, or the stack's guard region.
pub use contract::worker::NESTED_TOO_DEEPLY;

/// Readies the calling thread to strip TypeScript later without a new mapping: maps the stack
/// swc runs on. Returns the stack's guard region, whose fault means that a strip ran out of
/// stack ([`stack`]): an embedding that catches the fault can answer it as an error of the
/// execution. Call it before the thread is sandboxed.
pub fn prepare_thread() -> std::ops::Range<usize> {
    stack::prepare_thread()
}

/// `source`'s JavaScript: the same text with its types replaced by whitespace, or the first
/// error (by position) that stopped it. Sources nested too deeply for swc are refused first.
pub fn strip(source: &str) -> Result<String, StripError> {
    nesting::check(source, NESTING_BUDGET).map_err(|too_deep| StripError {
        message: NESTED_TOO_DEEPLY.to_owned(),
        position: Some((too_deep.line, too_deep.column)),
    })?;
    stack::run_on_stack(|| strip_unchecked(source))
}

/// [`strip`] without the nesting check, on the current stack.
fn strip_unchecked(source: &str) -> Result<String, StripError> {
    let map: Lrc<SourceMap> = Lrc::default();
    let diagnostics = Diagnostics::default();
    let handler = Handler::with_emitter(false, false, Box::new(diagnostics.clone()));
    let options = Options {
        mode: Mode::StripOnly,
        // Parsed as a module only when it has `import` or `export`: type-only ones are stripped,
        // and any other is then a syntax error of the script that QuickJS compiles.
        module: None,
        // As Node: `module Foo {}` is the old spelling of a namespace.
        deprecated_ts_module_as_error: Some(true),
        ..Options::default()
    };
    swc_ts_fast_strip::operate(&map, &handler, source.to_owned(), options)
        .map(|output| output.code)
        .map_err(|failed| {
            diagnostics.first(&map).unwrap_or(StripError {
                message: failed.message,
                position: None,
            })
        })
}

/// One error swc reported, and where it starts if it says.
struct Reported {
    message: String,
    start: Option<BytePos>,
}

/// The errors swc reports while stripping.
#[derive(Clone, Default)]
struct Diagnostics(Rc<RefCell<Vec<Reported>>>);

impl Emitter for Diagnostics {
    fn emit(&mut self, diagnostic: &mut DiagnosticBuilder<'_>) {
        let start = diagnostic
            .span
            .primary_span()
            .map(|span| span.lo)
            .filter(|start| !start.is_dummy());
        self.0.borrow_mut().push(Reported {
            message: diagnostic.message(),
            start,
        });
    }
}

impl Diagnostics {
    /// The error that starts first (one without a position last), its position in lines and
    /// characters.
    fn first(&self, map: &SourceMap) -> Option<StripError> {
        let errors = self.0.borrow();
        let first = errors
            .iter()
            .min_by_key(|error| (error.start.is_none(), error.start))?;
        let position = first.start.map(|start| {
            let location = map.lookup_char_pos(start);
            (location.line, location.col.0 + 1)
        });
        Some(StripError {
            message: first.message.clone(),
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources nested `depth` deep in each way that makes swc recurse.
    fn shapes(depth: usize) -> Vec<(&'static str, String)> {
        let repeat = |text: &str| text.repeat(depth);
        vec![
            ("parentheses", format!("{}1{}", repeat("("), repeat(")"))),
            ("arrays", format!("{}1{}", repeat("["), repeat("]"))),
            ("objects", format!("x = {}1{}", repeat("{a:"), repeat("}"))),
            ("blocks", format!("{}{}", repeat("{"), repeat("}"))),
            (
                "type arguments",
                format!("let a: {}number{};", repeat("Array<"), repeat(">")),
            ),
            (
                "generic calls",
                format!("{}1{}", repeat("f<T>("), repeat(")")),
            ),
            ("sums", format!("1{}", repeat("+1"))),
            ("members", format!("a{}", repeat(".b"))),
            ("optional members", format!("a{}", repeat("?.b"))),
            ("calls", format!("f{}", repeat("()"))),
            ("negations", format!("{}1", repeat("!"))),
            ("signs", format!("{}1", repeat("- "))),
            ("typeof", format!("{}1", repeat("typeof "))),
            ("new", format!("{}f", repeat("new "))),
            ("non-null assertions", format!("a{}", repeat("!"))),
            ("arrows", format!("{}1", repeat("x=>"))),
            ("conditionals", format!("{}1", repeat("a?1:"))),
            ("assignments", format!("{}1", repeat("a="))),
            ("powers", format!("1{}", repeat("**1"))),
            ("as", format!("1{}", repeat(" as any"))),
            ("satisfies", format!("1{}", repeat(" satisfies any"))),
            ("else if", format!("if(a){{}}{}", repeat("else if(a){}"))),
            (
                "else if after semicolons",
                format!("if(a)a;{}", repeat("else if(a)a;")),
            ),
            ("nested if", format!("{}a", repeat("if(a)"))),
            (
                "labels",
                (0..depth)
                    .map(|label| format!("l{label}:"))
                    .collect::<String>()
                    + "a",
            ),
            ("do", format!("{}a;{}", repeat("do "), repeat("while(a);"))),
            (
                "functions",
                format!("{}{}", repeat("function f(){"), repeat("}")),
            ),
            ("templates", format!("{}1{}", repeat("`${"), repeat("}`"))),
            ("array types", format!("let a: number{};", repeat("[]"))),
            ("keyof", format!("let a: {}T;", repeat("keyof "))),
            (
                "conditional types",
                format!("type A = {}T;", repeat("T extends U ? T : ")),
            ),
            ("function types", format!("let a: {}T;", repeat("() => "))),
            ("unions", format!("let a: {}T;", repeat("T | "))),
            ("tuples", format!("let a: {}T{};", repeat("["), repeat("]"))),
        ]
    }

    #[test]
    fn the_deepest_accepted_nesting_of_each_shape_strips_within_the_stack() {
        let deep = 100_000;
        for (index, (shape, _)) in shapes(deep).into_iter().enumerate() {
            let source_at = |depth| shapes(depth).swap_remove(index).1;
            assert!(
                nesting::check(&source_at(deep), NESTING_BUDGET).is_err(),
                "{shape}: {deep} deep must be refused"
            );
            // The deepest accepted, found by bisection.
            let (mut accepted, mut refused) = (0, deep);
            while refused - accepted > 1 {
                let middle = (accepted + refused) / 2;
                if nesting::check(&source_at(middle), NESTING_BUDGET).is_ok() {
                    accepted = middle;
                } else {
                    refused = middle;
                }
            }
            assert!(accepted >= 100, "{shape}: only {accepted} deep is accepted");
            let source = source_at(accepted);
            // Only overflowing the stack could fail this: a syntax error is an answer too.
            let stripped = strip(&source);
            if let Ok(code) = &stripped {
                assert_eq!(code.len(), source.len(), "{shape}");
            }
            println!("{shape}: {accepted} deep is accepted: {:?}", stripped.err());
        }
    }
}
