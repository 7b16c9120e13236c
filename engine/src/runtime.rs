//! Preparing a fresh runtime and running one assignment in it: the runtime, its context with
//! the built-ins, `console`, timers and the Web APIs (defined at once, built on first use), the
//! interrupt handler and rejection tracker, then the limits applied when the script arrives and
//! everything script-owned released before the runtime is freed. A fresh runtime runs one
//! script, never two; a session's runtime ([`run_in_session_runtime`]) runs its scripts one
//! after another, so what one leaves on the global object the next one sees.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use rquickjs::{Context, Runtime, context::intrinsic, qjs};

use crate::{
    Assignment, EngineSettings, Outcome, SetupError,
    clock::Clock,
    console::ConsoleLog,
    context_fields::ContextFields,
    execution::Execution,
    fault,
    globals::Globals,
    host::HostRuntime,
    intrinsics::Intrinsics,
    memory::{MemoryMeter, MeteredAllocator},
    rejections::Rejections,
    timers::Timers,
    web::WebApis,
};

/// The language built-ins a script gets: everything QuickJS offers except its own `performance`,
/// whose clock is not coarsened ([`crate::web`] installs one that is). A runtime makes them all
/// at once ([`EagerBuiltins`]) except the typed arrays, which it makes when a script first
/// reaches for one ([`crate::typed_arrays`]).
pub type Builtins = (EagerBuiltins, intrinsic::TypedArrays);

/// [`Builtins`] but the typed arrays: what a runtime makes at once.
pub type EagerBuiltins = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::Promise,
    intrinsic::WeakRef,
);

/// True once a runtime was prepared in this process and the interrupt handler can check the
/// clock by time (see [`crate::context_fields`]).
pub fn timed_interrupts() -> bool {
    TIMED_INTERRUPTS.load(Ordering::Relaxed)
}

static TIMED_INTERRUPTS: AtomicBool = AtomicBool::new(false);

/// Creates a fresh runtime and context with `console`, timers and the Web APIs, then calls `next` (which may
/// block) for the one script this runtime will ever run. Returns `None` when `next` does.
///
/// Creating the runtime before the script is known is what keeps its cost off the request path.
pub fn run_in_fresh_runtime(
    settings: &EngineSettings,
    next: impl FnOnce() -> Option<Assignment>,
) -> Result<Option<Outcome>, SetupError> {
    let mut next = Some(next);
    run_in_runtime(settings, move || next.take().and_then(|next| next()))
}

/// Creates a fresh runtime as [`run_in_fresh_runtime`] does, then runs the assignments `next`
/// gives in it one after another, until `next` returns `None` or an execution faults the
/// engine (its heap may be corrupt: nothing else may run in it). Globals, functions and values
/// one script leaves are there for the next; each execution gets its own time limit, console
/// caps and host call budget, and the memory limit covers everything the runtime holds, what
/// earlier executions left included. Returns the last outcome.
///
/// A script stopped at its deadline leaves the runtime usable: QuickJS's interrupt unwinds it
/// like an exception that cannot be caught.
pub fn run_in_session_runtime(
    settings: &EngineSettings,
    next: impl FnMut() -> Option<Assignment>,
) -> Result<Option<Outcome>, SetupError> {
    run_in_runtime(settings, next)
}

/// Prepares a runtime, then runs what `next` gives until it gives nothing or an execution
/// faulted the engine.
fn run_in_runtime(
    settings: &EngineSettings,
    mut next: impl FnMut() -> Option<Assignment>,
) -> Result<Option<Outcome>, SetupError> {
    let meter = MemoryMeter::new();
    let runtime = Runtime::new_with_alloc(MeteredAllocator(meter.clone()))?;
    runtime.set_max_stack_size(settings.stack_limit);
    let context = Context::custom::<EagerBuiltins>(&runtime)?;
    let clock = Rc::new(Clock::default());
    let rejections = Rc::new(RefCell::new(Rejections::default()));

    let counter = context.with(|ctx| {
        let fields = ContextFields::get(&ctx)?;
        fields.seed_random(&ctx, fresh_seed());
        Some(fields.interrupt_counter(&ctx))
    });
    TIMED_INTERRUPTS.store(counter.is_some(), Ordering::Relaxed);
    clock.counter.set(counter);
    let handler_clock = clock.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || handler_clock.on_interrupt())));
    let tracked = rejections.clone();
    runtime.set_host_promise_rejection_tracker(Some(Box::new(
        move |ctx, promise, reason, handled| {
            tracked.borrow_mut().track(&ctx, promise, reason, handled)
        },
    )));

    let outcome = context.with(|ctx| {
        let timers = Rc::new(RefCell::new(Timers::default()));
        let web = Rc::new(WebApis::new(&ctx, &timers)?);
        let intrinsics = Rc::new(Intrinsics::new(web.serializer_builtins()?));
        let console = ConsoleLog::new(intrinsics.clone(), &settings.output);
        let globals = Globals::install(&ctx, console.clone(), timers.clone(), web.clone())?;

        // The host functions are installed by the first assignment; later ones of a session
        // get the same grant, with a fresh call budget.
        let mut installed: Option<Rc<HostRuntime<'_>>> = None;
        let mut last = None;
        while let Some(mut assignment) = next() {
            let host = match &installed {
                Some(host) => {
                    host.renew();
                    host.clone()
                }
                None => {
                    let (host, fetch) =
                        HostRuntime::install(&ctx, std::mem::take(&mut assignment.host))?;
                    if let Some(fetch) = fetch {
                        web.enable_fetch(fetch);
                        globals.enable_fetch(&ctx)?;
                    }
                    installed.insert(host).clone()
                }
            };
            console.open(assignment.log.clone());
            // SAFETY: the runtime is live; the stack limit is measured from here on.
            unsafe { qjs::JS_UpdateStackTop(qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) };
            // SAFETY: the zone is the stretch of this thread's stack just above QuickJS's
            // limit, below this frame; the worker's stack is sized well beyond that limit.
            unsafe {
                meter.start(
                    assignment.limits.memory_limit,
                    stack_zone(settings.stack_limit),
                )
            };
            let started = Instant::now();
            web.start(started);
            clock.start(started + assignment.limits.timeout, assignment.cancel);

            let execution = Execution {
                ctx: ctx.clone(),
                clock: &clock,
                limits: assignment.limits,
                settings,
                intrinsics: &intrinsics,
                timers: &timers,
                meter: &meter,
                rejections: &rejections,
                host: &host,
                bytecode: assignment.bytecode.as_deref(),
                cache_hit: Cell::new(None),
                compiled: RefCell::default(),
            };
            let result = execution.run(&assignment.script);
            let duration = started.elapsed();
            let memory_peak = meter.peak();
            let engine_fault = meter.refused() || fault::take();
            // Only bytecode from a runtime that never faulted is kept, and none is reused
            // after a fault (see `crate::bytecode`).
            if let Some(cache) = &assignment.bytecode {
                let compiled = execution.compiled.take();
                if engine_fault {
                    cache.clear();
                } else {
                    cache.keep(compiled);
                }
            }

            // Nothing more reaches the console once the outcome is out.
            console.detach();
            let mut outcome = Outcome {
                result,
                duration,
                memory_peak,
                engine_fault,
                bytecode_cache_hit: execution.cache_hit.get(),
            };
            if let Some(finished) = assignment.finished.take() {
                finished(&mut outcome);
            }

            // What the execution left running ends with it: its timers, host calls and
            // rejections; its limits are lifted until the next one.
            clock.stop();
            meter.stop();
            timers.borrow_mut().clear();
            host.clear();
            rejections.borrow_mut().clear();
            last = Some(outcome);
            if engine_fault {
                break;
            }
        }
        // Script values held by Rust must be released before the runtime is freed.
        console.close();
        web.clear();
        Ok(last)
    });
    runtime.set_host_promise_rejection_tracker(None);
    runtime.set_interrupt_handler(None);
    outcome
}

/// A seed for `Math.random` from the operating system's CSPRNG.
fn fresh_seed() -> u64 {
    getrandom::u64().expect("the operating system's CSPRNG answers")
}

/// The stretch of native stack where the script counts as being at the stack limit: the last
/// eighth of the JavaScript stack (at most 64 KiB), measured from here.
fn stack_zone(stack_limit: usize) -> std::ops::Range<usize> {
    let here = 0u8;
    let top = std::hint::black_box(&here) as *const u8 as usize;
    let margin = (stack_limit / 8).min(64 * 1024);
    let limit = top.saturating_sub(stack_limit);
    limit..limit + margin
}
