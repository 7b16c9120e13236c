#!/usr/bin/env python3
"""Where an execution's CPU goes, stage by stage, from `perf script` output.

`run` (beside this file) records the whole machine with `perf record -a -g` while wrk drives
the ingress; this file turns those samples into a cost per successful execution for each stage
of the path: accept and parse, ingress checks, proxy hop, scheduling, the supervisor<->worker
exchange, runtime preparation, evaluation, serialisation, logging.

A sample belongs to the ingress, the sandbox's supervisor or one of its workers by its process
id (a worker is a child of the sandbox, known from perf's task events); its stage is decided
from its call stack:
1. a stack with a frame of the logging or metrics libraries anywhere is logging or metrics
   (they run inside every other stage, and their own frames are what they cost);
2. otherwise the frame nearest the leaf that names a stage decides, so a middleware that wraps
   the rest of a request does not swallow what it wraps;
3. otherwise the sample is the async runtime's (polling, parking, waking) when tokio is on the
   stack, a worker's channel traffic when only its socket calls could be unwound, or "other".
Kernel frames carry no stage of their own: a system call is charged to the code that made it.
The patterns match crate and module paths, so they survive changes inside a module; a stage
that grows unclassified shows up in "other", and `--stacks` shows what each stage holds.

    perf script -F comm,pid,tid,period,ip,sym --no-inline --show-task-events | \
        stages.py classify --ingress-pid P --sandbox-pid Q --executions N > run.json
    stages.py table c1.json c16.json
"""

import argparse
import collections
import json
import re
import sys

# (stage, pattern) checked anywhere on the stack, before anything else.
ANYWHERE = [
    ("logging", r"tracing_subscriber|tracing_stackdriver|tracing_core::|tracing::span::"
     r"|tracing_log"),
    ("metrics", r"prometheus_client"),
    ("worker replacement", r"sandbox::supervisor::launcher|supervisor::worker::Worker::start"),
]

# Per process, (stage, pattern) tried on each frame from the leaf up; in one frame, the first
# pattern that matches wins.
NEAREST = {
    "ingress": [
        ("ingress checks", r"ingress::auth|ingress::rate_limit|ingress::sources|ingress::body"
         r"|ingress::request_id|ingress::tenants|ingress::refusals|governor::|uuid::"
         r"|tower_http::request_id"),
        ("proxy hop", r"ingress::proxy|hyper_util::client|hyper::client|h1::role::Client"),
        ("accept and parse", r"hyper::server|hyper_util::server|h1::role::Server|axum::"
         r"|tower_http::|tower::|ingress::metrics|ingress::telemetry|ingress::assets"),
    ],
    "supervisor": [
        ("serialisation", r"charged_json|ExecuteResponse|From<sandbox::supervisor::Answer>"),
        ("scheduling", r"sandbox::scheduler|take_idle|make_idle|put_back"),
        ("supervisor<->worker exchange", r"sandbox::supervisor|contract::worker"),
        # The execute handler is inlined into axum's `Handler::call`.
        ("sandbox: validate, prepare the job", r"sandbox::routes|sandbox::tenant|validator::"
         r"|ApiJson|axum::handler::Handler"),
        ("proxy hop", r"hyper::server|hyper_util::server|h1::role::Server|axum::|tower_http::"
         r"|tower::|sandbox::metrics|sandbox::telemetry"),
    ],
    "worker": [
        ("worker idle polling", r"poll_for_job|sched_yield"),
        ("serialisation", r"engine::serialize|engine::json"),
        ("evaluation", r"engine::Execution|Execution::run|Execution::compile|Execution::evaluate"),
        ("supervisor<->worker exchange", r"contract::worker|worker::assignment|UnixStream"
         r"|worker::serve|HostRuntime::install|console::ConsoleLog::open"),
        ("runtime teardown", r"JS_FreeRuntime|JS_FreeContext|RawRuntime as core::ops::drop::Drop"),
        # rquickjs's frames are named `rquickjs_core::`; the intrinsics' C functions are called
        # straight from its `Context::custom`.
        ("runtime preparation", r"engine::|rquickjs|JS_NewRuntime|JS_NewContext|JS_AddIntrinsic"),
    ],
}

# Per process, tried on the whole stack when no frame named a stage. A worker's only socket is
# its channel: its socket calls whose stack perf could not unwind past the C library are the
# exchange.
ASYNC = ("async runtime (tokio: poll, park, wake)", r"tokio::|mio::")
FALLBACK = {
    "ingress": [ASYNC],
    "supervisor": [ASYNC],
    "worker": [("supervisor<->worker exchange", r"^(unix_stream|__libc_recv|__send|sock_)")],
}

ORDER = [
    "accept and parse",
    "ingress checks",
    "proxy hop",
    "sandbox: validate, prepare the job",
    "scheduling",
    "supervisor<->worker exchange",
    "worker idle polling",
    "runtime preparation",
    "runtime teardown",
    "evaluation",
    "serialisation",
    "logging",
    "metrics",
    "async runtime (tokio: poll, park, wake)",
    "worker replacement",
    "other",
]

PROCESSES = ["ingress", "supervisor", "worker"]


def compile_rules():
    anywhere = [(stage, re.compile(pattern)) for stage, pattern in ANYWHERE]
    nearest = {
        process: [(stage, re.compile(pattern)) for stage, pattern in rules]
        for process, rules in NEAREST.items()
    }
    fallback = {
        process: [(stage, re.compile(pattern)) for stage, pattern in rules]
        for process, rules in FALLBACK.items()
    }
    return anywhere, nearest, fallback


FORK = re.compile(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)")


def samples(lines, parents):
    """(comm, pid, period, [symbols leaf first]) for each sample of `perf script`; fills
    `parents` (process id to its parent's) from the task events on the way."""
    header = None
    frames = []
    for line in lines:
        fork = FORK.search(line)
        if fork:
            pid, parent = int(fork.group(1)), int(fork.group(2))
            if pid != parent:
                parents[pid] = parent
            continue
        if not line.strip():
            if header:
                yield (*header, frames)
            header, frames = None, []
            continue
        if not line[0].isspace():
            if header:
                yield (*header, frames)
            match = re.match(r"^(.*?)\s+(\d+)/(\d+)\s+(\d+)", line)
            header = (match.group(1), int(match.group(2)), int(match.group(4))) if match else None
            frames = []
        else:
            parts = line.strip().split(" ", 1)
            symbol = parts[1] if len(parts) > 1 else parts[0]
            frames.append(symbol.rsplit(" (", 1)[0])
    if header:
        yield (*header, frames)


def classify(args):
    anywhere, nearest, fallback = compile_rules()
    cost = {process: collections.Counter() for process in PROCESSES}
    elsewhere = collections.Counter()
    stacks = collections.Counter()
    parents = {}
    for comm, pid, period, frames in samples(sys.stdin, parents):
        if pid == args.ingress_pid:
            process = "ingress"
        elif pid == args.sandbox_pid:
            process = "supervisor"
        elif parents.get(pid) == args.sandbox_pid:
            process = "worker"
        else:
            elsewhere["idle" if pid == 0 else comm] += period
            continue
        stage = next(
            (s for s, pattern in anywhere if any(pattern.search(f) for f in frames)), None
        )
        if stage is None:
            for frame in frames:
                stage = next((s for s, pattern in nearest[process] if pattern.search(frame)), None)
                if stage:
                    break
        if stage is None:
            stage = next(
                (s for s, pattern in fallback[process] if any(pattern.search(f) for f in frames)),
                "other",
            )
        if frames:
            stacks[(stage, process, " <- ".join(frames[:8]))] += period
        cost[process][stage] += period
    json.dump(
        {
            "label": args.label,
            "executions": args.executions,
            "seconds": args.seconds,
            "latency_p50_us": args.p50,
            "cost_ns": {process: dict(stages) for process, stages in cost.items()},
            "elsewhere_ns": dict(elsewhere),
        },
        sys.stdout,
        indent=1,
    )
    if args.stacks:
        with open(args.stacks, "w") as out:
            for stage in ORDER:
                top = [(key, ns) for key, ns in stacks.most_common() if key[0] == stage]
                if top:
                    out.write(f"## {stage}\n")
                for (_, process, stack), ns in top[:25]:
                    out.write(f"{ns / 1e6:9.1f} ms  {process}: {stack}\n")


def table(args):
    runs = [json.load(open(path)) for path in args.runs]
    per_stage = []
    for run in runs:
        stages = collections.Counter()
        where = collections.defaultdict(set)
        for process, costs in run["cost_ns"].items():
            for stage, ns in costs.items():
                stages[stage] += ns
                if ns / max(run["executions"], 1) >= 1000:  # processes where it costs >= 1 us
                    where[stage].add(process)
        per_stage.append((stages, where))
    head = "| stage | where |"
    rule = "| --- | --- |"
    for run in runs:
        head += f" {run['label']} connection(s): us per execution | % |"
        rule += " ---: | ---: |"
    print(head)
    print(rule)
    for stage in ORDER:
        if not any(stages.get(stage) for stages, _ in per_stage):
            continue
        processes = sorted(set().union(*(where[stage] for _, where in per_stage)),
                           key=PROCESSES.index)
        row = f"| {stage} | {', '.join(processes)} |"
        for run, (stages, _) in zip(runs, per_stage):
            total = sum(stages.values())
            us = stages.get(stage, 0) / 1e3 / run["executions"]
            row += f" {us:.1f} | {100 * stages.get(stage, 0) / total:.0f}% |"
        print(row)
    row = "| **total CPU** | |"
    for run, (stages, _) in zip(runs, per_stage):
        row += f" **{sum(stages.values()) / 1e3 / run['executions']:.0f}** | 100% |"
    print(row)
    print()
    for run, (stages, _) in zip(runs, per_stage):
        by_process = {
            process: sum(costs.values()) / 1e3 / run["executions"]
            for process, costs in run["cost_ns"].items()
        }
        elsewhere = run["elsewhere_ns"]
        seconds = run["seconds"]
        others = sorted(
            ((name, ns) for name, ns in elsewhere.items() if name != "idle"),
            key=lambda item: -item[1],
        )[:3]
        print(
            f"- {run['label']} connection(s): {run['executions']} successful executions in "
            f"{seconds:g} s ({run['executions'] / seconds:.0f}/s, p50 {run['latency_p50_us']} us "
            "under the profiler); CPU per execution by process: "
            + ", ".join(f"{p} {us:.0f} us" for p, us in by_process.items())
            + f"; machine idle {100 * elsewhere.get('idle', 0) / 1e9 / seconds / args.cores:.0f}%"
            + "; also on the CPUs: "
            + ", ".join(f"{name} {ns / 1e9 / seconds:.2f} cores" for name, ns in others)
        )


def ratios(args):
    """The ratios of issue 22's table from wrk's RESULT lines and the service bench's output."""
    wrk = {}
    for line in open(args.wrk):
        name, connections = line.split()[:2]
        figures = re.findall(r"(\w+)=([\d.]+)", line)
        wrk[(name, int(connections[2:]))] = {key: float(value) for key, value in figures}
    bench = open(args.bench).read().splitlines()
    trivial = [line.split() for line in bench if line.startswith("trivial")]
    raw_us, raw_all, bench_p50 = float(trivial[0][2]), float(trivial[1][1]), float(trivial[0][3])
    one = next(line for line in bench if line.startswith("1 connection:"))
    many = next(line for line in bench if line.startswith("16 connections:"))
    via_p50 = float(re.search(r"via ingress ([\d.]+)", one).group(1))
    direct_rate, via_rate = (float(x) for x in re.findall(r"([\d.]+) exec/s", many))
    peer = wrk.get(("wasm-pooled", 16), {}).get("ok_rps")

    def rates(rate):
        of_peer = f"{rate / peer:.2f}x the pooled peer, " if peer else ""
        return f"{of_peer}{100 * rate / raw_all:.0f}% of the raw engine's all-core rate"

    rows = [
        ("raw engine: fresh runtime + context + eval (bench)",
         f"{raw_us:.0f} us, {raw_all:.0f}/s on all cores", ""),
        ("p50 straight to the sandbox (bench) / raw engine", f"{bench_p50:.0f} us",
         f"{bench_p50 / raw_us:.2f}x"),
        ("p50 through the ingress (bench) / raw engine", f"{via_p50:.0f} us",
         f"{via_p50 / raw_us:.2f}x"),
    ]
    for name, where in [("jsbox-sandbox", "straight to the sandbox"),
                        ("jsbox-ingress", "through the ingress")]:
        if (name, 1) in wrk:
            p50 = wrk[(name, 1)]["p50_us"]
            rows.append((f"p50 {where} (wrk, 1 connection) / raw engine", f"{p50:.0f} us",
                         f"{p50 / raw_us:.2f}x"))
    if ("wasm-pooled", 1) in wrk and ("jsbox-ingress", 1) in wrk:
        theirs, ours = wrk[("wasm-pooled", 1)]["p50_us"], wrk[("jsbox-ingress", 1)]["p50_us"]
        rows.append(("p50 of the pooled QuickJS-WASM peer / ours through the ingress (wrk)",
                     f"{theirs:.0f} us vs {ours:.0f} us", f"{theirs / ours:.2f}x"))
    rows.append(("exec/s at 16 connections through the ingress (bench)", f"{via_rate:.0f}/s",
                 rates(via_rate)))
    rows.append(("exec/s at 16 connections straight to the sandbox (bench)",
                 f"{direct_rate:.0f}/s", rates(direct_rate)))
    for name, where in [("jsbox-ingress", "through the ingress"),
                        ("jsbox-sandbox", "straight to the sandbox")]:
        if (name, 16) in wrk:
            ours = wrk[(name, 16)]
            rows.append((f"successful exec/s at 16 connections {where} (wrk)",
                         f"{ours['ok_rps']:.0f}/s, {ours['non2xx_or_fail']:.0f} refused or "
                         f"failed, {ours['errors']:.0f} socket errors", rates(ours["ok_rps"])))
    for connections in (1, 16):
        if ("wasm-pooled", connections) in wrk:
            theirs = wrk[("wasm-pooled", connections)]
            rows.append((f"pooled QuickJS-WASM peer, {connections} connection(s) (wrk)",
                         f"{theirs['ok_rps']:.0f}/s, p50 {theirs['p50_us']:.0f} us, "
                         f"{theirs['non2xx_or_fail']:.0f} refused or failed", ""))
    print("| | figure | ratio |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("classify", help="perf script text on stdin to one run's JSON")
    one.add_argument("--label", required=True)
    one.add_argument("--ingress-pid", type=int, required=True)
    one.add_argument("--sandbox-pid", type=int, required=True)
    one.add_argument("--executions", type=int, required=True)
    one.add_argument("--seconds", type=float, required=True)
    one.add_argument("--p50", type=int, required=True, help="wrk's p50 latency in us")
    one.add_argument("--stacks", help="write each stage's costliest stacks (leaf first) here")
    many = commands.add_parser("table", help="runs' JSON to the README's Markdown table")
    many.add_argument("--cores", type=int, default=2)
    many.add_argument("runs", nargs="+")
    compare = commands.add_parser("ratios", help="wrk's and the service bench's figures to ratios")
    compare.add_argument("wrk", help="lines of `<name> c=<connections> RESULT ...`")
    compare.add_argument("bench", help="the output of `cargo bench -p e2e --bench service`")
    args = parser.parse_args()
    {"classify": classify, "table": table, "ratios": ratios}[args.command](args)


if __name__ == "__main__":
    main()
