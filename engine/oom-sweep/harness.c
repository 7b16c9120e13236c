/*
 * The out-of-memory sweep's harness (README.md beside it): runs one script, or the creation of a
 * runtime and a context, under every memory limit of a schedule, so that the engine's
 * allocation-failure paths are walked one by one while AddressSanitizer and
 * UndefinedBehaviorSanitizer watch.
 *
 * Why: quickjs-ng corrupted its heap on paths where an allocation fails while parsing or
 * compiling (vendor/rquickjs-sys/PATCHES.md). Fuzzers run it with a large limit, so those paths
 * are rarely walked; here every limit from a fresh context's baseline up to 200 KB above it is.
 *
 * A script: an unlimited run first measures the most the script makes the runtime hold; limits
 * above that change nothing and are skipped. Then, for each limit, a fresh runtime and context:
 * the limit is set to the baseline read with JS_ComputeMemoryUsage + extra, the script is
 * compiled with JS_EVAL_FLAG_COMPILE_ONLY, what compiled is evaluated (with its jobs, under an
 * interrupt budget), a failure must have been thrown as an error and not as `null`, and the
 * context and the runtime are freed (whose teardown finds corrupted lists and leaked objects).
 *
 * With --bytecode, a script is compiled once without a limit and written with JS_WriteObject, as
 * the engine's bytecode cache keeps it; each limit then reads it back with JS_ReadObject in place
 * of compiling, so the paths where reading a cached script runs out of memory are walked too.
 *
 * A context (--context=KIND): the same, for making a context and evaluating the prelude in it,
 * under every limit from nothing up to what a made context holds. KIND says what is made and how
 * the limit is set:
 *   quickjs    JS_NewContext, limit by JS_SetMemoryLimit (set on a bare runtime)
 *   engine     the intrinsics the engine asks rquickjs for, added as rquickjs adds them (each
 *              call's failure ignored), limit by JS_SetMemoryLimit
 *   allocator  the engine's intrinsics, limit by the allocator functions refusing, as the
 *              engine's metered allocator does; this one also walks JS_NewRuntime2's failures
 *   typed-arrays  the engine's intrinsics but the typed arrays, made without a limit; then,
 *              under the limit (JS_SetMemoryLimit above what that context holds), the typed
 *              arrays made as the engine makes them when a script first reaches for one
 *              (JS_AddIntrinsicTypedArraysTo an object of its own, once more after a failure)
 *              and a script that uses them
 *
 * A sanitizer report ends the process (ASAN_OPTIONS=abort_on_error=1, -fno-sanitize-recover)
 * after naming what ran and the limit it was at; with --fork each limit runs in a child instead,
 * and the summary lists every failing limit.
 *
 * Usage: harness [--fork] [--fine] [--at EXTRA] [--bytecode] (SCRIPT.js | --context=KIND)   Prints one
 * summary line; exits 1 when any limit failed. --at runs the one limit EXTRA, to reproduce a
 * report under a debugger.
 */
#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "quickjs.h"

/* Highest extra bytes above the baseline that the schedule reaches. */
#define SWEEP_MAX_EXTRA (200 * 1024)
/* Interrupt-handler calls (one per ~10,000 bytecode operations) before an evaluation is stopped,
 * so scripts that loop forever end. */
#define INTERRUPT_BUDGET 20
/* Pending jobs (promise reactions) run after an evaluation, at most. */
#define MAX_JOBS 10000
/* Failing limits of each kind printed in the summary, at most. */
#define MAX_REPORTED 20
#define LIST_SIZE (MAX_REPORTED * 24)
/* The `extra` of a run without a limit. */
#define UNLIMITED SIZE_MAX
/* Bytes swept beyond an unlimited run's peak, for what differs between runs (clocks, random). */
#define PEAK_MARGIN 1024

/* The exit codes of a child, other than 0 (clean). */
enum child_status {
    CHILD_THREW_NULL = 3,
};

/* Globals the bundled examples use that plain quickjs-ng lacks, as inert stand-ins, so that their
 * evaluation gets past the first call. Evaluated before the baseline is measured. */
static const char prelude[] =
    "globalThis.console = { log() {}, info() {}, warn() {}, error() {}, debug() {},"
    " table() {}, time() {}, timeEnd() {} };"
    "globalThis.input = undefined;"
    "globalThis.setTimeout = (f) => { Promise.resolve().then(f); return 1; };"
    "globalThis.clearTimeout = () => {};";

static int interrupt_budget;

/* Bytes the runtime holds through its allocator, and their peak: an unlimited run's peak tells
 * where the sweep can stop, since every limit above it runs exactly as the unlimited run does. The
 * runtime counts the same usable sizes (its MALLOC_OVERHEAD equals the block header it adds). */
static size_t tracked_bytes, peak_bytes;
/* Most bytes the allocator functions hand out in all, UNLIMITED when they refuse nothing: the
 * `allocator` context sweep's limit. */
static size_t allocator_budget = UNLIMITED;

static bool over_budget(size_t more)
{
    return allocator_budget != UNLIMITED && tracked_bytes + more > allocator_budget;
}

static void track(ptrdiff_t delta)
{
    tracked_bytes += delta;
    if (tracked_bytes > peak_bytes)
        peak_bytes = tracked_bytes;
}

static void *tracking_calloc(void *opaque, size_t count, size_t size)
{
    (void)opaque;
    if (over_budget(count * size))
        return NULL;
    void *ptr = calloc(count, size);
    if (ptr)
        track(malloc_usable_size(ptr));
    return ptr;
}

static void *tracking_malloc(void *opaque, size_t size)
{
    (void)opaque;
    if (over_budget(size))
        return NULL;
    void *ptr = malloc(size);
    if (ptr)
        track(malloc_usable_size(ptr));
    return ptr;
}

static void tracking_free(void *opaque, void *ptr)
{
    (void)opaque;
    if (ptr)
        track(-(ptrdiff_t)malloc_usable_size(ptr));
    free(ptr);
}

static void *tracking_realloc(void *opaque, void *ptr, size_t size)
{
    (void)opaque;
    size_t old_size = ptr ? malloc_usable_size(ptr) : 0;
    if (size > old_size && over_budget(size - old_size))
        return NULL;
    void *new_ptr = realloc(ptr, size);
    if (new_ptr)
        track((ptrdiff_t)malloc_usable_size(new_ptr) - (ptrdiff_t)old_size);
    else if (size == 0)
        track(-(ptrdiff_t)old_size);
    return new_ptr;
}

static size_t tracking_usable_size(const void *ptr)
{
    return malloc_usable_size((void *)ptr);
}

static const JSMallocFunctions tracking_malloc_functions = {
    tracking_calloc, tracking_malloc, tracking_free, tracking_realloc, tracking_usable_size,
};

static int interrupt_handler(JSRuntime *rt, void *opaque)
{
    (void)rt;
    (void)opaque;
    return --interrupt_budget < 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *file = fopen(path, "rb");
    if (!file)
        return NULL;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    char *buf = malloc(size + 1);
    if (!buf || fread(buf, 1, size, file) != (size_t)size) {
        fclose(file);
        free(buf);
        return NULL;
    }
    fclose(file);
    buf[size] = '\0';
    *len = size;
    return buf;
}

/* Takes the pending exception; true when it is `null`, which the engine throws where it could not
 * allocate the error it meant to throw. */
static bool exception_is_null(JSContext *ctx)
{
    JSValue exception = JS_GetException(ctx);
    bool is_null = JS_IsNull(exception);
    JS_FreeValue(ctx, exception);
    return is_null;
}

static JSValue evaluate_prelude(JSContext *ctx)
{
    return JS_Eval(ctx, prelude, strlen(prelude), "<prelude>", JS_EVAL_TYPE_GLOBAL);
}

/* What a context sweep makes, and how its limit is set (the header's KIND). */
enum context_kind {
    CONTEXT_QUICKJS,
    CONTEXT_ENGINE,
    CONTEXT_ALLOCATOR,
    CONTEXT_TYPED_ARRAYS,
};

static const char *const context_kind_names[] = {"quickjs", "engine", "allocator",
                                                 "typed-arrays"};

/* A context with the intrinsics a script can reach in the engine (`Builtins` in
 * engine/src/runtime.rs, made by rquickjs's Context::custom), the typed arrays left out unless
 * `typed_arrays`: base objects, then each of them, every call's failure ignored, as rquickjs
 * does. NULL only when JS_NewContextRaw failed. */
static JSContext *new_engine_context(JSRuntime *rt, bool typed_arrays)
{
    JSContext *ctx = JS_NewContextRaw(rt);
    if (!ctx)
        return NULL;
    JS_AddIntrinsicBaseObjects(ctx);
    JS_AddIntrinsicDate(ctx);
    JS_AddIntrinsicEval(ctx);
    JS_AddIntrinsicRegExpCompiler(ctx);
    JS_AddIntrinsicRegExp(ctx);
    JS_AddIntrinsicJSON(ctx);
    JS_AddIntrinsicProxy(ctx);
    JS_AddIntrinsicMapSet(ctx);
    if (typed_arrays)
        JS_AddIntrinsicTypedArrays(ctx);
    JS_AddIntrinsicPromise(ctx);
    JS_AddIntrinsicWeakRef(ctx);
    return ctx;
}

/* What the typed-arrays sweep runs once they are made, with their constructors as globals. */
static const char typed_arrays_script[] =
    "const bytes = new Uint8Array(new ArrayBuffer(16)); bytes.set([1, 2, 3]);"
    "new DataView(bytes.buffer).getInt16(0) + Float64Array.from(bytes).length"
    " + Atomics.add(new Int32Array(new SharedArrayBuffer(8)), 0, 1) + bytes.toHex().length;";

/* Makes the typed arrays as the engine does (engine/src/typed_arrays.rs), trying once more after
 * a failure, and defines the constructors it made as globals; false when both attempts failed.
 * Sets *threw_null when a failure was thrown as `null`. */
static bool make_typed_arrays(JSContext *ctx, bool *threw_null)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        JSValue made = JS_NewObjectProto(ctx, JS_NULL);
        if (JS_IsException(made) || JS_AddIntrinsicTypedArraysTo(ctx, made) < 0) {
            *threw_null |= exception_is_null(ctx);
            JS_FreeValue(ctx, made);
            continue;
        }
        JSValue global = JS_GetGlobalObject(ctx);
        const char *names[] = {"ArrayBuffer", "SharedArrayBuffer", "Uint8Array", "Int32Array",
                               "Float64Array", "DataView", "Atomics"};
        bool defined = true;
        for (size_t i = 0; defined && i < sizeof(names) / sizeof(names[0]); i++) {
            JSValue constructor = JS_GetPropertyStr(ctx, made, names[i]);
            defined = !JS_IsException(constructor) &&
                      JS_SetPropertyStr(ctx, global, names[i], constructor) >= 0;
        }
        if (!defined)
            *threw_null |= exception_is_null(ctx);
        JS_FreeValue(ctx, global);
        JS_FreeValue(ctx, made);
        return defined;
    }
    return false;
}

/* A fresh runtime and context with the prelude evaluated, for a script; NULL (with a message)
 * when that fails, which no limit is involved in yet. */
static JSContext *new_context(void)
{
    JSRuntime *rt = JS_NewRuntime2(&tracking_malloc_functions, NULL);
    JSContext *ctx = rt ? JS_NewContext(rt) : NULL;
    if (!ctx) {
        fprintf(stderr, "cannot create a runtime and a context\n");
        return NULL;
    }
    interrupt_budget = INTERRUPT_BUDGET;
    JS_SetInterruptHandler(rt, interrupt_handler, NULL);
    JSValue result = evaluate_prelude(ctx);
    if (JS_IsException(result)) {
        fprintf(stderr, "the prelude threw\n");
        return NULL;
    }
    JS_FreeValue(ctx, result);
    JS_RunGC(rt);
    return ctx;
}

/* What one sweep runs at each limit: a script, or the making of a context. */
struct sweep {
    /* For reports: the script's path, or the context sweep's kind. */
    const char *name;
    char *source;
    size_t len;
    int eval_type;
    /* The script as JS_WriteObject wrote it, when it is read back rather than compiled. */
    uint8_t *bytecode;
    size_t bytecode_len;
    bool context;
    enum context_kind kind;
};

/* Compiles and evaluates the script in a fresh context whose limit is its baseline + extra, then
 * frees everything; returns 0, or CHILD_THREW_NULL, or -1 when the context could not be made.
 * `extra` UNLIMITED sets no limit. Sets *peak_extra to the most the run held above the baseline. */
static int run_script(const struct sweep *sweep, size_t extra, size_t *peak_extra)
{
    JSContext *ctx = new_context();
    if (!ctx)
        return -1;
    JSRuntime *rt = JS_GetRuntime(ctx);
    JSMemoryUsage usage;
    JS_ComputeMemoryUsage(rt, &usage);
    bool threw_null = false;

    peak_bytes = tracked_bytes;
    size_t tracked_at_baseline = tracked_bytes;
    if (extra != UNLIMITED)
        JS_SetMemoryLimit(rt, usage.malloc_size + extra);
    JSValue compiled =
        sweep->bytecode
            ? JS_ReadObject(ctx, sweep->bytecode, sweep->bytecode_len, JS_READ_OBJ_BYTECODE)
            : JS_Eval(ctx, sweep->source, sweep->len, sweep->name,
                      sweep->eval_type | JS_EVAL_FLAG_COMPILE_ONLY);
    if (JS_IsException(compiled)) {
        threw_null |= exception_is_null(ctx);
    } else {
        interrupt_budget = INTERRUPT_BUDGET;
        JSValue result = JS_EvalFunction(ctx, compiled);
        if (JS_IsException(result))
            threw_null |= exception_is_null(ctx);
        JS_FreeValue(ctx, result);
        for (int jobs = 0; jobs < MAX_JOBS; jobs++) {
            JSContext *job_ctx;
            int ran = JS_ExecutePendingJob(rt, &job_ctx);
            if (ran == 0)
                break;
            if (ran < 0)
                threw_null |= exception_is_null(job_ctx);
        }
    }
    *peak_extra = peak_bytes - tracked_at_baseline;
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
    return threw_null ? CHILD_THREW_NULL : 0;
}

/* Sets `rt`'s limit to what it holds now + `extra` (no limit for UNLIMITED); returns the tracked
 * bytes the limit counts from. */
static size_t limit_above_usage(JSRuntime *rt, size_t extra)
{
    JSMemoryUsage usage;
    JS_ComputeMemoryUsage(rt, &usage);
    if (extra != UNLIMITED)
        JS_SetMemoryLimit(rt, usage.malloc_size + extra);
    return tracked_bytes;
}

/* Makes a runtime and a context and evaluates the prelude under the limit `extra`: above a bare
 * runtime's malloc_size with JS_SetMemoryLimit, or from nothing in the allocator functions (the
 * `allocator` kind); for the `typed-arrays` kind, makes the context without a limit, then the
 * typed arrays and a script using them under the limit above what it holds. Then frees what was
 * made. Failing to make the runtime or the context is an
 * answer, not a failure; returns 0, or CHILD_THREW_NULL. Sets *peak_extra to the most the run
 * held above where its limit counts from. */
static int run_context(const struct sweep *sweep, size_t extra, size_t *peak_extra)
{
    bool threw_null = false;
    tracked_bytes = peak_bytes = 0;
    if (sweep->kind == CONTEXT_ALLOCATOR)
        allocator_budget = extra;
    JSRuntime *rt = JS_NewRuntime2(&tracking_malloc_functions, NULL);
    size_t limit_base = 0;
    JSContext *ctx = NULL;
    if (rt && sweep->kind == CONTEXT_TYPED_ARRAYS) {
        /* The context is made with no limit: the limit counts from what it holds. */
        ctx = new_engine_context(rt, false);
        peak_bytes = tracked_bytes;
        limit_base = limit_above_usage(rt, extra);
        if (ctx && !make_typed_arrays(ctx, &threw_null)) {
            JS_FreeContext(ctx);
            ctx = NULL;
        }
    } else if (rt) {
        if (sweep->kind != CONTEXT_ALLOCATOR)
            limit_base = limit_above_usage(rt, extra);
        ctx = sweep->kind == CONTEXT_QUICKJS ? JS_NewContext(rt) : new_engine_context(rt, true);
    }
    if (ctx) {
        interrupt_budget = INTERRUPT_BUDGET;
        JS_SetInterruptHandler(rt, interrupt_handler, NULL);
        JSValue result =
            sweep->kind == CONTEXT_TYPED_ARRAYS
                ? JS_Eval(ctx, typed_arrays_script, strlen(typed_arrays_script),
                          "<typed-arrays>", JS_EVAL_TYPE_GLOBAL)
                : evaluate_prelude(ctx);
        if (JS_IsException(result))
            threw_null |= exception_is_null(ctx);
        JS_FreeValue(ctx, result);
        JS_FreeContext(ctx);
    }
    *peak_extra = peak_bytes - limit_base;
    if (rt)
        JS_FreeRuntime(rt);
    allocator_budget = UNLIMITED;
    return threw_null ? CHILD_THREW_NULL : 0;
}

static int run_sweep(const struct sweep *sweep, size_t extra, size_t *peak_extra)
{
    return sweep->context ? run_context(sweep, extra, peak_extra)
                          : run_script(sweep, extra, peak_extra);
}

/* The next extra above `extra`: every 8 bytes up to 16 KB, where most scripts' compilation
 * allocates, then every 64 bytes up to 64 KB and every 512 above. Making a context allocates in
 * small pieces all the way to its peak (about 100 KB), so its sweeps step 8 bytes throughout.
 * --fine divides each step by 8, to look for sites between CI's steps. */
static size_t next_extra(const struct sweep *sweep, size_t extra, bool fine)
{
    size_t step = sweep->context || extra < 16 * 1024 ? 8 : extra < 64 * 1024 ? 64 : 512;
    return extra + (fine ? step / 8 : step);
}

/* Where an in-process sweep is, for the sanitizer's death callback: a phase, or a limit above
 * `current_base`. */
static const char *current_name;
static const char *current_base = "baseline + ";
static const char *current_phase = "without a limit";
static size_t current_extra;

static void report_position(void)
{
    if (current_phase)
        fprintf(stderr, "oom-sweep: the sanitizer stopped %s %s\n", current_name, current_phase);
    else
        fprintf(stderr, "oom-sweep: the sanitizer stopped %s at %s%zu bytes\n", current_name,
                current_base, current_extra);
}

void __sanitizer_set_death_callback(void (*callback)(void));

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--fork] [--fine] [--at EXTRA] [--bytecode] (SCRIPT.js | "
            "--context=quickjs|engine|allocator|typed-arrays)\n",
            program);
}

/* Fills *sweep from the arguments after the options; false (with a message) when they name
 * nothing to sweep. */
static bool parse_target(int argc, char **argv, int arg, struct sweep *sweep)
{
    const char *context_prefix = "--context=";
    if (arg + 1 == argc && !strncmp(argv[arg], context_prefix, strlen(context_prefix))) {
        const char *kind_name = argv[arg] + strlen(context_prefix);
        for (size_t kind = 0; kind < sizeof context_kind_names / sizeof *context_kind_names;
             kind++) {
            if (!strcmp(kind_name, context_kind_names[kind])) {
                static char name[64];
                snprintf(name, sizeof name, "context:%s", kind_name);
                *sweep = (struct sweep){.name = name, .context = true, .kind = kind};
                return true;
            }
        }
        usage(argv[0]);
        return false;
    }
    if (arg + 1 != argc) {
        usage(argv[0]);
        return false;
    }
    const char *name = argv[arg];
    size_t len;
    char *source = read_file(name, &len);
    if (!source) {
        fprintf(stderr, "%s: cannot read: %s\n", name, strerror(errno));
        return false;
    }
    int eval_type = JS_DetectModule(source, len) ? JS_EVAL_TYPE_MODULE : JS_EVAL_TYPE_GLOBAL;
    *sweep = (struct sweep){.name = name, .source = source, .len = len, .eval_type = eval_type};
    return true;
}

/* Compiles the script without a limit and keeps what JS_WriteObject writes of it, as the
 * engine's cache does; false when it does not compile. */
static bool write_bytecode(struct sweep *sweep)
{
    JSContext *ctx = new_context();
    if (!ctx)
        return false;
    JSValue compiled = JS_Eval(ctx, sweep->source, sweep->len, sweep->name,
                               sweep->eval_type | JS_EVAL_FLAG_COMPILE_ONLY);
    bool written = false;
    if (JS_IsException(compiled)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
    } else {
        size_t len;
        uint8_t *bytes = JS_WriteObject(ctx, &len, compiled, JS_WRITE_OBJ_BYTECODE);
        if (bytes) {
            sweep->bytecode = malloc(len);
            if (sweep->bytecode) {
                memcpy(sweep->bytecode, bytes, len);
                sweep->bytecode_len = len;
                written = true;
            }
            js_free(ctx, bytes);
        }
    }
    JS_FreeValue(ctx, compiled);
    JSRuntime *rt = JS_GetRuntime(ctx);
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
    return written;
}

int main(int argc, char **argv)
{
    bool fork_each = false, fine = false, only_one = false, bytecode = false;
    size_t only_extra = 0;
    int arg = 1;
    for (; arg < argc && argv[arg][0] == '-'; arg++) {
        if (!strcmp(argv[arg], "--fork"))
            fork_each = true;
        else if (!strcmp(argv[arg], "--fine"))
            fine = true;
        else if (!strcmp(argv[arg], "--bytecode"))
            bytecode = true;
        else if (!strcmp(argv[arg], "--at") && arg + 1 < argc) {
            only_one = true;
            only_extra = strtoull(argv[++arg], NULL, 10);
        } else
            break;
    }
    struct sweep sweep;
    if (!parse_target(argc, argv, arg, &sweep))
        return 2;
    /* A script that does not compile (one importing quickjs-ng's own modules, say) has no
     * bytecode to read back: nothing to sweep. */
    if (bytecode && !sweep.context && !write_bytecode(&sweep)) {
        printf("%s: no bytecode, 0 limits\n", sweep.name);
        free(sweep.source);
        return 0;
    }
    current_name = sweep.name;
    if (sweep.context)
        current_base = sweep.kind == CONTEXT_ALLOCATOR ? "" : "a bare runtime + ";
    __sanitizer_set_death_callback(report_position);

    /* Limits above what an unlimited run holds at its peak change nothing; no need to run them. */
    size_t peak_extra;
    if (run_sweep(&sweep, UNLIMITED, &peak_extra) < 0)
        return 2;
    size_t first_extra = 0, last_extra = peak_extra + PEAK_MARGIN;
    if (last_extra > SWEEP_MAX_EXTRA && !sweep.context)
        last_extra = SWEEP_MAX_EXTRA;
    if (only_one)
        first_extra = last_extra = only_extra;

    size_t limits = 0, failures = 0, null_throws = 0;
    char crash_limits[LIST_SIZE] = "", null_limits[LIST_SIZE] = "";
    size_t run_peak;
    for (size_t extra = first_extra; extra <= last_extra; extra = next_extra(&sweep, extra, fine)) {
        limits++;
        current_phase = NULL;
        current_extra = extra;
        int status;
        if (fork_each) {
            fflush(stdout);
            fflush(stderr);
            pid_t child = fork();
            if (child < 0) {
                perror("fork");
                return 2;
            }
            if (child == 0) {
                int verdict = run_sweep(&sweep, extra, &run_peak);
                /* exit, not _exit: LeakSanitizer checks at exit, so --leaks names the limit */
                exit(verdict < 0 ? 2 : verdict);
            }
            int wait_status;
            if (waitpid(child, &wait_status, 0) < 0) {
                perror("waitpid");
                return 2;
            }
            status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
            /* A child's own null-throw verdict comes back as its exit code. */
            if (status == 0)
                continue;
        } else {
            status = run_sweep(&sweep, extra, &run_peak);
            if (status < 0)
                return 2;
            if (status == 0)
                continue;
        }
        bool threw_null = status == CHILD_THREW_NULL;
        size_t *count = threw_null ? &null_throws : &failures;
        char *list = threw_null ? null_limits : crash_limits;
        if (++*count <= MAX_REPORTED) {
            size_t used = strlen(list);
            snprintf(list + used, LIST_SIZE - used, " +%zu", extra);
        }
    }
    current_phase = "at exit (its leak check)";
    printf("%s: peak +%zu B, %zu limits, %zu crashes%s%s%s, %zu null throws%s%s%s\n", sweep.name,
           peak_extra, limits, failures, failures ? " (at" : "", crash_limits, failures ? ")" : "",
           null_throws, null_throws ? " (at" : "", null_limits, null_throws ? ")" : "");
    free(sweep.source);
    free(sweep.bytecode);
    return failures || null_throws ? 1 : 0;
}
