//! The one-screen text summary printed after each scenario.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::resources::SessionHoldings;
use crate::summary::{Figures, ScenarioSummary, SessionFigures, Spread};

const MIB: f64 = 1024.0 * 1024.0;

/// Prints the summary of one scenario to stdout.
pub fn print_summary(summary: &ScenarioSummary, report: &Path) {
    print!("{}", render(summary, report));
}

fn render(summary: &ScenarioSummary, report: &Path) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail: the results below are ignored for that reason.
    let overall = &summary.overall;
    let _ = writeln!(
        out,
        "\n== {} == {} users, {:.1} s measured ({:.1} s run), {}",
        summary.scenario,
        summary.users,
        summary.measured_seconds,
        summary.run_seconds,
        summary.target
    );
    let _ = writeln!(
        out,
        "requests {}   successful executions {:.1}/s   refused {}   LOST {}",
        overall.requests, overall.successful_executions_per_second, overall.refused, overall.lost
    );
    let latency = &overall.latency;
    let _ = writeln!(
        out,
        "latency of answered executions: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        latency.p50_ms, latency.p90_ms, latency.p99_ms, latency.max_ms
    );
    let _ = writeln!(out, "answers     {}", counts(&overall.answered_by_kind));
    if !overall.refusals.is_empty() {
        let _ = writeln!(out, "refusals    {}", counts(&overall.refusals));
    }
    if !overall.rejections.is_empty() {
        let _ = writeln!(out, "rejections  {}", counts(&overall.rejections));
    }
    if overall.lost > 0 {
        let _ = writeln!(out, "lost        {}", counts(&overall.lost_by_reason));
        for example in summary.lost_examples.iter().take(3) {
            let _ = writeln!(
                out,
                "  e.g. at {:.1} s, {}/{}: {}: {}",
                example.at_seconds,
                example.group,
                example.script,
                example.reason,
                example.detail.replace('\n', " ")
            );
        }
    }
    if let Some(batch) = &summary.batch {
        let latency = &batch.latency;
        let _ = writeln!(
            out,
            "batches     {} ({} refused)  items {}: {} succeeded ({:.0} items/s), {} failed   batch: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            batch.batches,
            batch.refused,
            batch.items,
            batch.succeeded_items,
            batch.successful_items_per_second,
            batch.failed_items,
            latency.p50_ms,
            latency.p99_ms,
            latency.max_ms
        );
    }
    if let Some(sessions) = &summary.sessions {
        render_sessions(&mut out, sessions);
    }
    if let Some(stream) = &summary.stream {
        let (first, result) = (&stream.time_to_first_log, &stream.time_to_result);
        let _ = writeln!(
            out,
            "streams     {} ({} log events)  first log: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   result: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            stream.streams,
            stream.log_events,
            first.p50_ms,
            first.p99_ms,
            first.max_ms,
            result.p50_ms,
            result.p99_ms,
            result.max_ms
        );
    }
    for (script, answers) in &summary.by_script {
        let unexpected: BTreeMap<String, usize> = answers
            .answers
            .iter()
            .filter(|(label, _)| {
                **label != answers.expected && !overall.refusals.contains_key(label.as_str())
            })
            .map(|(label, count)| (label.clone(), *count))
            .collect();
        if !unexpected.is_empty() {
            let _ = writeln!(
                out,
                "unexpected  {script} (expects {}): {}",
                answers.expected,
                counts(&unexpected)
            );
        }
    }
    for (group, figures) in &summary.groups {
        let marker = if summary.focus.as_deref() == Some(group) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(out, "{marker}{group:<11}{}", group_line(figures));
    }
    if let (Some(focus), Some(compared)) = (&summary.focus, &summary.focus_alone) {
        let _ = writeln!(
            out,
            " {:<13}{}",
            format!("{focus} alone"),
            group_line(&compared.alone)
        );
        if let Some(ratio) = compared.p50_ratio {
            let _ = writeln!(
                out,
                "            {focus}'s median beside the load is {ratio:.2}x its median alone"
            );
        }
    }

    let resources = &summary.resources;
    if let Some(memory) = &resources.sandbox_resident_bytes {
        let _ = writeln!(
            out,
            "sandbox     RSS {} MiB{} (supervisor {}, workers {})  workers {}  busy {}  fds {}",
            mib(memory),
            of_budget(resources.sandbox_memory_budget_bytes),
            resources
                .supervisor_resident_bytes
                .as_ref()
                .map_or("-".into(), mib),
            resources
                .workers_resident_bytes
                .as_ref()
                .map_or("-".into(), mib),
            range(resources.workers.as_ref()),
            range(resources.workers_busy.as_ref()),
            range(resources.sandbox_open_fds.as_ref()),
        );
        let executions: BTreeMap<String, usize> = resources
            .sandbox_executions_by_outcome
            .iter()
            .map(|(outcome, count)| (outcome.clone(), *count as usize))
            .collect();
        let _ = writeln!(
            out,
            "            executions it counted: {}",
            counts(&executions)
        );
        if !resources.sandbox_session_events.is_empty() {
            let events: BTreeMap<String, usize> = resources
                .sandbox_session_events
                .iter()
                .map(|(event, count)| (event.clone(), *count as usize))
                .collect();
            let _ = writeln!(
                out,
                "            sessions it counted: {}; open {}",
                counts(&events),
                range(resources.sessions_open.as_ref())
            );
        }
    } else {
        let _ = writeln!(out, "sandbox     not sampled");
    }
    if let Some(memory) = &resources.ingress_resident_bytes {
        let _ = writeln!(
            out,
            "ingress     RSS {} MiB{}  fds {}",
            mib(memory),
            of_budget(resources.ingress_memory_budget_bytes),
            range(resources.ingress_open_fds.as_ref())
        );
    }
    for process in resources.over_budget() {
        let _ = writeln!(
            out,
            "OVER BUDGET {process}: its resident memory passed its budget"
        );
    }
    if let Some(slow_clients) = &summary.slow_clients {
        for (misbehaviour, report) in slow_clients {
            let closed_after = report.seconds_to_close.as_ref().map_or(String::new(), |s| {
                format!(" after {:.1}-{:.1} s (p50 {:.1})", s.min, s.max, s.p50)
            });
            let _ = writeln!(
                out,
                "slow        {misbehaviour:<14}{} clients, {} connections, {} closed by the service{closed_after}, {} open at end, {} failed to connect; saw {}",
                report.clients,
                report.connections,
                report.closed_by_service,
                report.open_at_end,
                report.connect_failures,
                counts(&report.answers)
            );
        }
    }
    if let Some(ramp) = &summary.ramp {
        for step in &ramp.steps {
            let _ = writeln!(
                out,
                "ramp        {:>4} users: {:>8.1} exec/s  p50 {:>7.1} ms  p99 {:>7.1} ms  refused {:.1}/s  lost {}",
                step.users,
                step.successful_executions_per_second,
                step.p50_ms,
                step.p99_ms,
                step.refused_per_second,
                step.lost
            );
        }
        if let Some(knee) = &ramp.knee {
            let next = match (
                knee.next_users,
                knee.next_successful_executions_per_second,
                knee.next_p50_ms,
            ) {
                (Some(users), Some(rate), Some(p50)) => {
                    format!(" ({users} users: {rate:.1} exec/s, p50 {p50:.1} ms)")
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "knee        {}{} users: {:.1} exec/s, p50 {:.1} ms{next}",
                if knee.reached {
                    ""
                } else {
                    "not reached; last step "
                },
                knee.users,
                knee.successful_executions_per_second,
                knee.p50_ms
            );
        }
        for point in &ramp.below_knee {
            let _ = writeln!(
                out,
                "{:>3.0}% knee    {:>5}/s offered: {:>8.1} exec/s  p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  refused {}  lost {}",
                point.fraction_of_knee * 100.0,
                point.offered_per_second,
                point.successful_executions_per_second,
                point.latency.p50_ms,
                point.latency.p90_ms,
                point.latency.p99_ms,
                point.latency.max_ms,
                point.refused,
                point.lost
            );
        }
    }
    let _ = writeln!(out, "report      {}", report.display());
    out
}

fn render_sessions(out: &mut String, sessions: &SessionFigures) {
    let (whole, create, execute) = (
        &sessions.session_latency,
        &sessions.create_latency,
        &sessions.execute_latency,
    );
    let _ = writeln!(
        out,
        "sessions    {} started: {} created ({} deleted, {} abandoned, {} FAILED), {} not created   executions ok {}   WRONG STATE {}   refused {}",
        sessions.sessions,
        sessions.created,
        sessions.deleted,
        sessions.abandoned,
        sessions.failed,
        sessions.not_created,
        sessions.executions_ok,
        sessions.wrong_state,
        counts(&sessions.refusals)
    );
    let _ = writeln!(
        out,
        "            session: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms   create: p50 {:.1} ms  p99 {:.1} ms   execute: p50 {:.1} ms  p99 {:.1} ms",
        whole.p50_ms,
        whole.p99_ms,
        whole.max_ms,
        create.p50_ms,
        create.p99_ms,
        execute.p50_ms,
        execute.p99_ms
    );
    let Some(back) = &sessions.back_to_baseline else {
        let _ = writeln!(
            out,
            "            the sandbox's metrics were not read: no baseline"
        );
        return;
    };
    let held = |held: &SessionHoldings| {
        format!(
            "{} open, {:.1} MiB charged",
            held.sessions_open,
            held.requests_charged_bytes / MIB
        )
    };
    let verdict = match back.seconds_to_return {
        Some(seconds) => format!("back at baseline {seconds:.1} s after the load"),
        None => format!(
            "NOT BACK AT BASELINE after {:.0} s: {}",
            back.allowed_seconds,
            held(&back.last)
        ),
    };
    let _ = writeln!(
        out,
        "            baseline {}; at the end of the load {}; {verdict}",
        held(&back.baseline),
        held(&back.at_end_of_load)
    );
}

fn group_line(figures: &Figures) -> String {
    format!(
        "{} requests  {:.1} exec/s  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  refused {}  lost {}",
        figures.requests,
        figures.successful_executions_per_second,
        figures.latency.p50_ms,
        figures.latency.p99_ms,
        figures.latency.max_ms,
        figures.refused,
        figures.lost
    )
}

fn counts(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(label, count)| format!("{label} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(spread: &Spread) -> String {
    format!("{:.1}-{:.1}", spread.min / MIB, spread.max / MIB)
}

fn range(spread: Option<&Spread>) -> String {
    spread.map_or("-".to_owned(), |spread| {
        format!("{}-{}", spread.min, spread.max)
    })
}

/// ` of N MiB budget`, or nothing when the budget is unknown.
fn of_budget(budget: Option<f64>) -> String {
    budget.map_or(String::new(), |bytes| {
        format!(" of {:.0} MiB budget", bytes / MIB)
    })
}
