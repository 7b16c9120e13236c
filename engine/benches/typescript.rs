//! What TypeScript costs an execution: stripping a ~5 KB script alone, and a fresh execution
//! of it as TypeScript next to the same execution of its stripped JavaScript, whose difference
//! is what a client pays for `"language": "typescript"` (issue 24 asks for at most 0.3 ms):
//! first compiled (no bytecode cache: the script's first run in a worker), then loaded from a
//! warm bytecode cache (its later runs, as the worker keeps them). Run with
//! `cargo bench -p engine --bench typescript`; `BENCH_ROUNDS` sets how many interleaved rounds
//! are taken (default 30), and the median round is printed.

use std::{
    hint::black_box,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use engine::{
    Assignment, BytecodeCache, EngineSettings, HostAccess, Language, Limits, LogBuffer,
    NEVER_CANCELLED, Script,
};

/// Iterations per round.
const PER_ROUND: u32 = 50;

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
    let typescript = typescript_source();
    let javascript: Arc<str> = Arc::from(engine::typescript::strip(&typescript).unwrap());
    let typescript: Arc<str> = Arc::from(typescript);
    let script = |source: &Arc<str>, language| Script {
        name: "bench.ts".into(),
        source: source.clone(),
        language,
        input: None,
    };
    let execute = |source: &Arc<str>, language| {
        let (outcome, _log) = engine::execute(&settings, script(source, language), limits).unwrap();
        assert_eq!(outcome.result.as_deref(), Ok("42"));
    };
    let cache = Rc::new(BytecodeCache::new(8 << 20));
    let run_cached = |source: &Arc<str>, language| {
        let assignment = Assignment {
            script: script(source, language),
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
        assert_eq!(outcome.result.as_deref(), Ok("42"));
        outcome.bytecode_cache_hit
    };
    // Fill the cache: the "later" rows measure its hits.
    run_cached(&javascript, Language::JavaScript);
    run_cached(&typescript, Language::TypeScript);
    let execute_cached = |source: &Arc<str>, language| {
        assert_eq!(run_cached(source, language), Some(true));
    };
    let mut rows: [Vec<f64>; 5] = Default::default();
    for _ in 0..rounds {
        rows[0].push(per_iteration(|| {
            black_box(engine::typescript::strip(&typescript).unwrap());
        }));
        rows[1].push(per_iteration(|| execute(&javascript, Language::JavaScript)));
        rows[2].push(per_iteration(|| execute(&typescript, Language::TypeScript)));
        rows[3].push(per_iteration(|| {
            execute_cached(&javascript, Language::JavaScript)
        }));
        rows[4].push(per_iteration(|| {
            execute_cached(&typescript, Language::TypeScript)
        }));
    }
    let [
        stripped,
        javascript_run,
        typescript_run,
        javascript_later,
        typescript_later,
    ] = rows.map(median);
    println!(
        "{} bytes of TypeScript, median of {rounds} rounds of {PER_ROUND}, microseconds",
        typescript.len()
    );
    println!("{:<44} {stripped:>9.1}", "stripping alone");
    println!("{:<44} {:>9} {:>9}", "", "first", "later");
    println!(
        "{:<44} {javascript_run:>9.1} {javascript_later:>9.1}",
        "execution of the stripped JavaScript"
    );
    println!(
        "{:<44} {typescript_run:>9.1} {typescript_later:>9.1}",
        "execution of the TypeScript"
    );
    println!(
        "{:<44} {:>9.1} {:>9.1}",
        "added by TypeScript",
        typescript_run - javascript_run,
        typescript_later - javascript_later
    );
}

/// About 5 KB of ordinary TypeScript: interfaces, annotated functions, generics, assertions.
fn typescript_source() -> String {
    let mut source = String::new();
    let mut index = 0;
    while source.len() < 5_000 {
        source.push_str(&format!(
            "interface Item{index} {{ price: number; count: number; tags?: string[] }}\n\
             function total{index}<T extends Item{index}>(items: readonly T[]): number {{\n\
             \x20 return items.reduce((sum: number, item: T) => sum + item.price * item.count, 0);\n\
             }}\n\
             const sample{index} = [{{ price: 2, count: 21 }}] satisfies Item{index}[];\n"
        ));
        index += 1;
    }
    source.push_str("total0(sample0 as Item0[])");
    source
}

fn per_iteration(mut run: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..PER_ROUND {
        run();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
