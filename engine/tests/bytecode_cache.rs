//! Scripts compiled once: a second execution of the same script loads the bytecode its first
//! execution compiled, answers exactly as a compiled one does, and no bytecode outlives an
//! engine fault. TypeScript shares the bytecode of the JavaScript it strips to, and is not
//! stripped again when repeated.

use std::{cell::Cell, rc::Rc, sync::Arc, time::Duration};

use engine::{
    Assignment, BytecodeCache, EngineSettings, ErrorKind, HostAccess, Language, Limits, LogBuffer,
    NEVER_CANCELLED, Outcome, Script, memory::HostHeap,
};

const MIB: usize = 1024 * 1024;

fn run(cache: &Rc<BytecodeCache>, name: &str, code: &str, memory_limit: usize) -> Outcome {
    run_as(cache, name, Language::JavaScript, code, memory_limit)
}

fn run_as(
    cache: &Rc<BytecodeCache>,
    name: &str,
    language: Language,
    code: &str,
    memory_limit: usize,
) -> Outcome {
    let assignment = Assignment {
        script: Script {
            name: name.into(),
            source: Arc::from(code),
            language,
            input: None,
        },
        limits: Limits {
            timeout: Duration::from_secs(60),
            memory_limit,
        },
        cancel: &NEVER_CANCELLED,
        log: Rc::new(LogBuffer::default()),
        host: HostAccess::default(),
        bytecode: Some(cache.clone()),
        finished: None,
    };
    engine::run_in_fresh_runtime(&EngineSettings::default(), || Some(assignment))
        .unwrap()
        .unwrap()
}

#[test]
fn a_script_loaded_from_the_cache_answers_as_the_compiled_one_did() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    let code = "function area(r) {\n  return Math.PI * r * r;\n}\n\
                function fail() {\n  throw new Error('at line five');\n}\n\
                [area(2), area.toString(), (() => { try { fail() } catch (e) { return e.stack } })()]";
    let first = run(&cache, "library.js", code, 16 * MIB);
    let second = run(&cache, "library.js", code, 16 * MIB);
    assert_eq!(first.bytecode_cache_hit, Some(false));
    assert_eq!(second.bytecode_cache_hit, Some(true));
    assert_eq!(first.result, second.result);
    let result = second.result.unwrap();
    assert!(
        result.contains("library.js:5"),
        "the stack keeps its lines: {result}"
    );
    assert!(
        result.contains("return Math.PI * r * r;"),
        "functions keep their source: {result}"
    );
}

#[test]
fn typescript_and_javascript_of_the_same_text_keep_bytecode_apart() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    // Valid in both languages, with another meaning in each: JavaScript compares and calls,
    // TypeScript calls with a type argument.
    let code = "const f = (x) => x, a = 1, b = 2, T = 0;\n[typeof f<T>(a), a < b]";
    let javascript = run_as(&cache, "same.ts", Language::JavaScript, code, 16 * MIB);
    let typescript = run_as(&cache, "same.ts", Language::TypeScript, code, 16 * MIB);
    assert_eq!(javascript.bytecode_cache_hit, Some(false));
    assert_eq!(
        typescript.bytecode_cache_hit,
        Some(false),
        "the TypeScript is compiled, not found under the JavaScript's key"
    );
    assert_eq!(javascript.result.unwrap(), "[false,true]");
    assert_eq!(typescript.result.unwrap(), r#"["number",true]"#);
    let again = run_as(&cache, "same.ts", Language::TypeScript, code, 16 * MIB);
    assert_eq!(again.bytecode_cache_hit, Some(true));
    assert_eq!(again.result.unwrap(), r#"["number",true]"#);
}

#[test]
fn the_same_source_under_another_name_is_compiled_again() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    assert_eq!(
        run(&cache, "a.js", "1 + 2", 16 * MIB).bytecode_cache_hit,
        Some(false)
    );
    assert_eq!(
        run(&cache, "b.js", "1 + 2", 16 * MIB).bytecode_cache_hit,
        Some(false)
    );
    assert_eq!(
        run(&cache, "a.js", "1 + 2", 16 * MIB).bytecode_cache_hit,
        Some(true)
    );
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_syntax_error_is_reported_each_time_and_never_cached() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    for _ in 0..2 {
        let outcome = run(&cache, "broken.js", "let = ;", 16 * MIB);
        assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Syntax);
        assert_eq!(outcome.bytecode_cache_hit, Some(false));
        let refused = "enum Color { Red }";
        let outcome = run_as(&cache, "broken.ts", Language::TypeScript, refused, 16 * MIB);
        assert_eq!(outcome.result.unwrap_err().kind, ErrorKind::Syntax);
        assert_eq!(outcome.bytecode_cache_hit, Some(false));
    }
    assert!(cache.is_empty());
}

#[test]
fn an_engine_fault_empties_the_cache() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    run(&cache, "kept.js", "40 + 2", 16 * MIB);
    assert_eq!(cache.len(), 1);
    let bomb = "const held = []; for (;;) held.push(new Array(100000).fill(1));";
    let outcome = run(&cache, "bomb.js", bomb, 16 * MIB);
    assert!(outcome.engine_fault, "{outcome:?}");
    assert!(cache.is_empty(), "no bytecode is reused after a fault");
    assert_eq!(
        run(&cache, "kept.js", "40 + 2", 16 * MIB).bytecode_cache_hit,
        Some(false)
    );
}

#[test]
fn typescript_and_its_stripped_javascript_under_one_name_share_bytecode() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    let code = "const a: number = 40;\na + 2";
    let typescript = run_as(&cache, "shared.ts", Language::TypeScript, code, 16 * MIB);
    assert_eq!(typescript.bytecode_cache_hit, Some(false));
    let javascript = engine::typescript::strip(code).unwrap();
    let again = run_as(
        &cache,
        "shared.ts",
        Language::JavaScript,
        &javascript,
        16 * MIB,
    );
    assert_eq!(again.bytecode_cache_hit, Some(true));
    assert_eq!(again.result.unwrap(), "42");
    assert_eq!(cache.len(), 1);
}

#[test]
fn typescript_sources_that_differ_only_in_types_share_bytecode() {
    let cache = Rc::new(BytecodeCache::new(MIB));
    let first = run_as(
        &cache,
        "script.ts",
        Language::TypeScript,
        "const a: number = 40;\na + 2",
        16 * MIB,
    );
    let second = run_as(
        &cache,
        "script.ts",
        Language::TypeScript,
        "const a: string = 40;\na + 2",
        16 * MIB,
    );
    assert_eq!(first.bytecode_cache_hit, Some(false));
    assert_eq!(second.bytecode_cache_hit, Some(true));
    assert_eq!(second.result.unwrap(), "42");
    assert_eq!(cache.len(), 1);
}

thread_local! {
    /// Strips run on this thread: each limits the host heap once.
    static STRIPS: Cell<usize> = const { Cell::new(0) };
}

/// A host heap that only counts the strips of the thread it is limited on.
struct StripCounter;

impl HostHeap for StripCounter {
    fn limit(&self, _ceiling: usize) {
        STRIPS.set(STRIPS.get() + 1);
    }

    fn unlimit(&self) -> usize {
        0
    }
}

#[test]
fn a_repeated_typescript_script_is_loaded_without_being_stripped_again() {
    static COUNTER: StripCounter = StripCounter;
    engine::memory::register_host_heap(&COUNTER);
    let cache = Rc::new(BytecodeCache::new(MIB));
    let code = "function double(x: number): number { return 2 * x; }\ndouble(21)";
    let first = run_as(&cache, "script.ts", Language::TypeScript, code, 16 * MIB);
    assert_eq!(first.bytecode_cache_hit, Some(false));
    assert_eq!(STRIPS.get(), 1, "the first run strips it");
    let second = run_as(&cache, "script.ts", Language::TypeScript, code, 16 * MIB);
    assert_eq!(second.bytecode_cache_hit, Some(true));
    assert_eq!(second.result.unwrap(), "42");
    assert_eq!(STRIPS.get(), 1, "the second is not stripped");
}
