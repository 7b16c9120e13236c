//! What TypeScript costs an execution: stripping a ~5 KB script alone, and a fresh execution
//! of it as TypeScript next to the same execution of its stripped JavaScript (both compiled,
//! no bytecode cache), whose difference is what a client pays for `"language": "typescript"`
//! (issue 24 asks for at most 0.3 ms). Run with `cargo bench -p engine --bench typescript`;
//! `BENCH_ROUNDS` sets how many interleaved rounds are taken (default 30), and the median
//! round is printed.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use engine::{EngineSettings, Language, Limits, Script};

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
    let execute = |source: &Arc<str>, language| {
        let script = Script {
            name: "bench.ts".into(),
            source: source.clone(),
            language,
            input: None,
        };
        let (outcome, _log) = engine::execute(&settings, script, limits).unwrap();
        assert_eq!(outcome.result.as_deref(), Ok("42"));
    };
    let (mut stripped, mut as_typescript, mut as_javascript) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        stripped.push(per_iteration(|| {
            black_box(engine::typescript::strip(&typescript).unwrap());
        }));
        as_typescript.push(per_iteration(|| execute(&typescript, Language::TypeScript)));
        as_javascript.push(per_iteration(|| execute(&javascript, Language::JavaScript)));
    }
    let (stripped, typescript_run) = (median(stripped), median(as_typescript));
    let javascript_run = median(as_javascript);
    println!(
        "{} bytes of TypeScript, median of {rounds} rounds of {PER_ROUND}, microseconds",
        typescript.len()
    );
    println!("{:<44} {stripped:>9.1}", "stripping alone");
    println!(
        "{:<44} {javascript_run:>9.1}",
        "execution of the stripped JavaScript"
    );
    println!(
        "{:<44} {typescript_run:>9.1}",
        "execution of the TypeScript"
    );
    println!(
        "{:<44} {:>9.1}",
        "added by TypeScript",
        typescript_run - javascript_run
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
