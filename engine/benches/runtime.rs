//! The engine's own benchmark: what a fresh runtime costs with everything a script may reach
//! (`console`, timers, every Web API) next to a bare rquickjs runtime with the same intrinsics,
//! and the ratio between them, and next to one with only the intrinsics the engine makes at
//! once (all but the typed arrays, which it makes when a script first reaches for one); and a
//! ~100 KB bundled library's first execution in a worker (compiled, its bytecode kept) next to
//! its later ones (loaded from the [`BytecodeCache`]). Run with `cargo bench -p engine`;
//! `BENCH_ROUNDS` sets how many interleaved rounds are taken (default 30), and the median round
//! is printed.

use std::{
    hint::black_box,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use engine::{
    Assignment, Builtins, BytecodeCache, EagerBuiltins, EngineSettings, HostAccess, Language,
    Limits, LogBuffer, NEVER_CANCELLED, Script,
};
use rquickjs::{Context, Runtime};

/// Iterations per round: long enough to read a clock, short enough to interleave.
const PER_ROUND: u32 = 200;

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(30);
    let settings = EngineSettings::default();
    let limits = Limits {
        timeout: Duration::from_secs(5),
        memory_limit: 64 << 20,
    };

    let mut bare = Vec::with_capacity(rounds);
    let mut eager = Vec::with_capacity(rounds);
    let mut prepared = Vec::with_capacity(rounds);
    let mut bare_eval = Vec::with_capacity(rounds);
    let mut executed = Vec::with_capacity(rounds);
    // Warm the process-wide state (the Web APIs' bytecode) before measuring.
    engine::run_in_fresh_runtime(&settings, || None).unwrap();
    for _ in 0..rounds {
        bare.push(per_iteration(|| {
            let runtime = Runtime::new().unwrap();
            let context = Context::custom::<Builtins>(&runtime).unwrap();
            black_box((&runtime, &context));
        }));
        eager.push(per_iteration(|| {
            let runtime = Runtime::new().unwrap();
            let context = Context::custom::<EagerBuiltins>(&runtime).unwrap();
            black_box((&runtime, &context));
        }));
        prepared.push(per_iteration(|| {
            black_box(engine::run_in_fresh_runtime(&settings, || None).unwrap());
        }));
        bare_eval.push(per_iteration(|| {
            let runtime = Runtime::new().unwrap();
            let context = Context::custom::<Builtins>(&runtime).unwrap();
            let sum: i32 = context.with(|ctx| ctx.eval("1 + 2")).unwrap();
            black_box(sum);
        }));
        executed.push(per_iteration(|| {
            let script = Script {
                name: "bench.js".into(),
                source: Arc::from("1 + 2"),
                language: Language::JavaScript,
                input: None,
            };
            let (outcome, _log) = engine::execute(&settings, script, limits).unwrap();
            assert_eq!(outcome.result.as_deref(), Ok("3"));
        }));
    }
    let (bare, eager, prepared) = (median(bare), median(eager), median(prepared));
    let (bare_eval, executed) = (median(bare_eval), median(executed));
    println!("median of {rounds} rounds of {PER_ROUND}, microseconds per runtime");
    println!("{:<44} {:>9} {:>9} {:>7}", "", "bare", "engine", "ratio");
    println!(
        "{:<44} {bare:>9.1} {prepared:>9.1} {:>6.2}x",
        "fresh runtime + context, prepared",
        prepared / bare
    );
    println!(
        "{:<44} {eager:>9.1} {prepared:>9.1} {:>6.2}x",
        "  bare without the typed arrays, prepared",
        prepared / eager
    );
    println!(
        "{:<44} {bare_eval:>9.1} {executed:>9.1} {:>6.2}x",
        "fresh runtime + context + `1 + 2`",
        executed / bare_eval
    );

    let library: Arc<str> = Arc::from(library_source());
    let run_library = |cache: &Rc<BytecodeCache>| {
        let assignment = Assignment {
            script: Script {
                name: "library.js".into(),
                source: library.clone(),
                language: Language::JavaScript,
                input: None,
            },
            limits,
            cancel: &NEVER_CANCELLED,
            log: Rc::new(LogBuffer::default()),
            host: HostAccess::default(),
            bytecode: Some(cache.clone()),
            finished: None,
        };
        let outcome = engine::run_in_fresh_runtime(&settings, || Some(assignment))
            .unwrap()
            .unwrap();
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        outcome.bytecode_cache_hit
    };
    let warm = Rc::new(BytecodeCache::new(8 << 20));
    run_library(&warm);
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        first.push(per_iteration_of(10, || {
            let cold = Rc::new(BytecodeCache::new(8 << 20));
            assert_eq!(run_library(&cold), Some(false));
        }));
        later.push(per_iteration_of(10, || {
            assert_eq!(run_library(&warm), Some(true));
        }));
    }
    let (first, later) = (median(first), median(later));
    println!(
        "\n{} KB library, fresh runtime each time, microseconds per execution",
        library.len() / 1000
    );
    println!("{:<44} {:>9} {:>9} {:>7}", "", "first", "later", "speedup");
    println!(
        "{:<44} {first:>9.1} {later:>9.1} {:>6.2}x",
        "compiled vs loaded from the bytecode cache",
        first / later
    );
}

/// A bundled library of about 100 KB in the style of lodash: an IIFE defining hundreds of
/// small functions over arrays, objects and strings, exported on one object; the script's
/// result is one call, so what the execution costs is mostly compiling and defining it.
fn library_source() -> String {
    let mut source =
        String::from("var library = (function () {\n  'use strict';\n  var exports = {};\n");
    let mut index = 0;
    while source.len() < 100_000 {
        source.push_str(&format!(
            "  function chunk{index}(array, size) {{\n\
             \x20   size = Math.max(Number(size) || {index} % 7 + 1, 1);\n\
             \x20   var length = array == null ? 0 : array.length, result = [], at = 0;\n\
             \x20   while (at < length) {{ result.push(array.slice(at, (at += size))); }}\n\
             \x20   return result;\n  }}\n\
             \x20 function pick{index}(object, keys) {{\n\
             \x20   var picked = {{}};\n\
             \x20   for (var i = 0; i < keys.length; i++) {{\n\
             \x20     if (Object.prototype.hasOwnProperty.call(object, keys[i])) picked[keys[i]] = object[keys[i]];\n\
             \x20   }}\n\
             \x20   return picked;\n  }}\n\
             \x20 function camel{index}(text) {{\n\
             \x20   return String(text).toLowerCase().replace(/[-_\\s]+(.)?/g, function (match, next) {{\n\
             \x20     return next ? next.toUpperCase() : '';\n\
             \x20   }}) + '{index}';\n  }}\n\
             \x20 exports.chunk{index} = chunk{index}; exports.pick{index} = pick{index}; \
             exports.camel{index} = camel{index};\n"
        ));
        index += 1;
    }
    source.push_str("  return exports;\n})();\nlibrary.chunk0([1, 2, 3, 4, 5], 2).length\n");
    source
}

/// Microseconds per call of `f`, over one round.
fn per_iteration(f: impl FnMut()) -> f64 {
    per_iteration_of(PER_ROUND, f)
}

/// Microseconds per call of `f`, over `calls` calls.
fn per_iteration_of(calls: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
