//! The engine's own benchmark: what a fresh runtime costs with everything a script may reach
//! (`console`, timers, every Web API) next to a bare rquickjs runtime with the same intrinsics,
//! and the ratio between them. Run with `cargo bench -p engine`; `BENCH_ROUNDS` sets how many
//! interleaved rounds are taken (default 30), and the median round is printed.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use engine::{Builtins, EngineSettings, Limits, Script};
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
                input: None,
            };
            let (outcome, _log) = engine::execute(&settings, script, limits).unwrap();
            assert_eq!(outcome.result.as_deref(), Ok("3"));
        }));
    }
    let (bare, prepared) = (median(bare), median(prepared));
    let (bare_eval, executed) = (median(bare_eval), median(executed));
    println!("median of {rounds} rounds of {PER_ROUND}, microseconds per runtime");
    println!("{:<44} {:>9} {:>9} {:>7}", "", "bare", "engine", "ratio");
    println!(
        "{:<44} {bare:>9.1} {prepared:>9.1} {:>6.2}x",
        "fresh runtime + context, prepared",
        prepared / bare
    );
    println!(
        "{:<44} {bare_eval:>9.1} {executed:>9.1} {:>6.2}x",
        "fresh runtime + context + `1 + 2`",
        executed / bare_eval
    );
}

/// Microseconds per call of `f`, over one round.
fn per_iteration(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..PER_ROUND {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
