//! `report.html`: one self-contained page (inline SVG polylines, no script, nothing fetched)
//! with the scenario's figures and its plots over time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::attack::GOOSE_REPORT_HTML;
use crate::summary::{Figures, Latency, ScenarioSummary, Spread};

const MIB: f64 = 1024.0 * 1024.0;
const CHART_WIDTH: f64 = 760.0;
const CHART_HEIGHT: f64 = 240.0;
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_BOTTOM: f64 = 36.0;
const TICKS: usize = 5;
/// Series with at most this many points get a dot on each.
const DOTTED_POINTS: usize = 20;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
    table{border-collapse:collapse;margin:.5em 0 1.5em}\
    td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
    th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
    .lost{color:#b00;font-weight:bold}svg{display:block;margin:1em 0}\
    pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em}";

/// One line of a chart.
struct Series {
    name: String,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn new(name: impl Into<String>, color: &'static str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            color,
            points,
        }
    }
}

pub fn page(summary: &ScenarioSummary) -> String {
    let mut html = String::new();
    // Writing to a String cannot fail: the results below are ignored for that reason.
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>loadtest: {scenario}</title><style>{STYLE}</style></head><body>\
         <h1>loadtest: {scenario}</h1><p>{users} users against {target}, {measured:.1} s \
         measured ({run:.1} s run). Goose's own report: <a href=\"{GOOSE_REPORT_HTML}\">\
         {GOOSE_REPORT_HTML}</a> (its charts load a script from a CDN).</p>",
        scenario = escape(&summary.scenario),
        users = summary.users,
        target = escape(&summary.target),
        measured = summary.measured_seconds,
        run = summary.run_seconds,
    );

    html.push_str("<h2>Figures</h2>");
    let mut rows = vec![("all".to_owned(), &summary.overall)];
    rows.extend(summary.groups.iter().map(|(group, figures)| {
        let focus = if summary.focus.as_deref() == Some(group.as_str()) {
            " (focus)"
        } else {
            ""
        };
        (format!("{group}{focus}"), figures)
    }));
    if let (Some(focus), Some(compared)) = (&summary.focus, &summary.focus_alone) {
        rows.push((format!("{focus} alone, first"), &compared.alone));
    }
    html.push_str(&figures_table(&rows));
    if let (Some(focus), Some(ratio)) = (
        &summary.focus,
        summary.focus_alone.as_ref().and_then(|c| c.p50_ratio),
    ) {
        let _ = write!(
            html,
            "<p><b>{}'s median beside the load is {ratio:.2}x its median alone.</b></p>",
            escape(focus)
        );
    }

    if let Some(stream) = &summary.stream {
        let _ = write!(
            html,
            "<h2>Streams</h2><p>{} streamed requests; {} <code>log</code> events in the \
             answered ones. Times from the request's start:</p>",
            stream.streams, stream.log_events
        );
        html.push_str(&latency_table(&[
            ("first log event", &stream.time_to_first_log),
            ("result event", &stream.time_to_result),
        ]));
    }

    if let Some(batch) = &summary.batch {
        let _ = write!(
            html,
            "<h2>Batches</h2><p>{} batches ({} refused whole); {} items answered: {} succeeded              ({:.0} items/s), {} failed. Time of a whole batch:</p>",
            batch.batches,
            batch.refused,
            batch.items,
            batch.succeeded_items,
            batch.successful_items_per_second,
            batch.failed_items
        );
        html.push_str(&latency_table(&[("batch", &batch.latency)]));
    }

    if let Some(sessions) = &summary.sessions {
        let _ = write!(
            html,
            "<h2>Sessions</h2><p>{} sessions started: {} created ({} deleted, {} abandoned, \
             {} failed), {} not created; {} executions answered with the right count, {} with \
             a wrong one (state lost).</p>",
            sessions.sessions,
            sessions.created,
            sessions.deleted,
            sessions.abandoned,
            sessions.failed,
            sessions.not_created,
            sessions.executions_ok,
            sessions.wrong_state
        );
        html.push_str(&latency_table(&[
            ("whole session", &sessions.session_latency),
            ("creation", &sessions.create_latency),
            ("execution", &sessions.execute_latency),
        ]));
        if let Some(back) = &sessions.back_to_baseline {
            let _ = write!(
                html,
                "<p>Before the load: {} sessions open, {} bytes charged; at its end: {} and {}; \
                 {}.</p>",
                back.baseline.sessions_open,
                back.baseline.requests_charged_bytes,
                back.at_end_of_load.sessions_open,
                back.at_end_of_load.requests_charged_bytes,
                match back.seconds_to_return {
                    Some(seconds) =>
                        format!("<b>back at the baseline {seconds:.1} s after the load</b>"),
                    None => format!(
                        "<b>not back at the baseline after {:.0} s</b> ({} open, {} bytes charged)",
                        back.allowed_seconds,
                        back.last.sessions_open,
                        back.last.requests_charged_bytes
                    ),
                }
            );
        }
    }

    html.push_str("<h2>Answers</h2>");
    let overall = &summary.overall;
    html.push_str(&counts_table(
        "answered executions, by kind",
        &overall.answered_by_kind,
    ));
    html.push_str(&counts_table("refusals (503, 429)", &overall.refusals));
    html.push_str(&counts_table("rejections (other 4xx)", &overall.rejections));
    html.push_str(&counts_table("lost, by reason", &overall.lost_by_reason));
    html.push_str("<table><tr><th>script</th><th>expected</th><th>answers</th></tr>");
    for (script, answers) in &summary.by_script {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(script),
            escape(&answers.expected),
            escape(&inline_counts(&answers.answers))
        );
    }
    html.push_str("</table>");
    if !summary.lost_examples.is_empty() {
        html.push_str("<h3 class=\"lost\">Lost requests (first ones)</h3>");
        for example in &summary.lost_examples {
            let _ = write!(
                html,
                "<pre>at {:.2} s, {}/{}: {}\n{}</pre>",
                example.at_seconds,
                escape(&example.group),
                escape(&example.script),
                escape(&example.reason),
                escape(&example.detail)
            );
        }
    }

    html.push_str("<h2>Over time</h2>");
    let run_end = summary
        .resource_samples
        .iter()
        .map(|sample| sample.at)
        .fold(summary.run_seconds, f64::max);
    html.push_str(&throughput_chart(summary, run_end));
    html.push_str(&latency_charts(summary, run_end));
    html.push_str(&resource_charts(summary, run_end));

    if let Some(ramp) = &summary.ramp {
        html.push_str("<h2>Ramp</h2>");
        let by_users = |value: fn(&crate::summary::RampStep) -> f64| {
            ramp.steps
                .iter()
                .map(|step| (step.users as f64, value(step)))
                .collect()
        };
        html.push_str(&line_chart(
            "successful executions per second, by users",
            "users",
            None,
            &[Series::new(
                "exec/s",
                "#1f77b4",
                by_users(|step| step.successful_executions_per_second),
            )],
        ));
        html.push_str(&line_chart(
            "latency by users (ms)",
            "users",
            None,
            &[
                Series::new("p50", "#2ca02c", by_users(|step| step.p50_ms)),
                Series::new("p99", "#d62728", by_users(|step| step.p99_ms)),
            ],
        ));
        if let Some(knee) = &ramp.knee {
            let _ = write!(
                html,
                "<p><b>Knee{}:</b> {} users, {:.1} successful executions/s, p50 {:.1} ms.</p>",
                if knee.reached {
                    ""
                } else {
                    " not reached (last step)"
                },
                knee.users,
                knee.successful_executions_per_second,
                knee.p50_ms
            );
        }
        if !ramp.below_knee.is_empty() {
            html.push_str(
                "<h3>Below the knee</h3><p>The same traffic paced to a fraction of the knee's \
                 throughput, by the last step's users.</p><table><tr><th>load</th>\
                 <th>offered/s</th><th>successful/s</th><th>p50 ms</th><th>p90 ms</th>\
                 <th>p99 ms</th><th>max ms</th><th>refused</th><th>lost</th></tr>",
            );
            for point in &ramp.below_knee {
                let latency = &point.latency;
                let _ = write!(
                    html,
                    "<tr><td>{:.0}% of the knee</td><td>{}</td><td>{:.1}</td><td>{:.1}</td>\
                     <td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                    point.fraction_of_knee * 100.0,
                    point.offered_per_second,
                    point.successful_executions_per_second,
                    latency.p50_ms,
                    latency.p90_ms,
                    latency.p99_ms,
                    latency.max_ms,
                    point.refused,
                    point.lost
                );
            }
            html.push_str("</table>");
        }
    }

    if let Some(slow_clients) = &summary.slow_clients {
        html.push_str(
            "<h2>Slow clients</h2><table><tr><th>misbehaviour</th><th>clients</th>\
             <th>connections</th><th>closed by the service</th><th>seconds to close (min/p50/max)</th>\
             <th>open at end</th><th>connect failures</th><th>what the service sent</th></tr>",
        );
        for (misbehaviour, report) in slow_clients {
            let _ = write!(
                html,
                "<tr><td>{misbehaviour}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                report.clients,
                report.connections,
                report.closed_by_service,
                report
                    .seconds_to_close
                    .as_ref()
                    .map_or("-".to_owned(), |s| format!(
                        "{:.1} / {:.1} / {:.1}",
                        s.min, s.p50, s.max
                    )),
                report.open_at_end,
                report.connect_failures,
                escape(&inline_counts(&report.answers))
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>\n");
    html
}

fn figures_table(rows: &[(String, &Figures)]) -> String {
    let mut html = String::from(
        "<table><tr><th></th><th>requests</th><th>successful exec/s</th><th>p50 ms</th>\
         <th>p90 ms</th><th>p99 ms</th><th>max ms</th><th>refused</th><th>lost</th></tr>",
    );
    for (name, figures) in rows {
        let latency = &figures.latency;
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{}</td><td{}>{}</td></tr>",
            escape(name),
            figures.requests,
            figures.successful_executions_per_second,
            latency.p50_ms,
            latency.p90_ms,
            latency.p99_ms,
            latency.max_ms,
            figures.refused,
            if figures.lost > 0 {
                " class=\"lost\""
            } else {
                ""
            },
            figures.lost
        );
    }
    html.push_str("</table>");
    html
}

fn latency_table(rows: &[(&str, &Latency)]) -> String {
    let mut html = String::from(
        "<table><tr><th></th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>\
         <th>max ms</th></tr>",
    );
    for (name, latency) in rows {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            escape(name),
            latency.count,
            latency.p50_ms,
            latency.p90_ms,
            latency.p99_ms,
            latency.max_ms
        );
    }
    html.push_str("</table>");
    html
}

fn counts_table(title: &str, counts: &BTreeMap<String, usize>) -> String {
    let mut html = format!("<table><tr><th>{}</th><th>count</th></tr>", escape(title));
    if counts.is_empty() {
        html.push_str("<tr><td>none</td><td>0</td></tr>");
    }
    for (label, count) in counts {
        let _ = write!(html, "<tr><td>{}</td><td>{count}</td></tr>", escape(label));
    }
    html.push_str("</table>");
    html
}

fn inline_counts(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(label, count)| format!("{label} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn throughput_chart(summary: &ScenarioSummary, run_end: f64) -> String {
    let per_second = |count: fn(&crate::summary::Second) -> usize| {
        summary
            .per_second
            .iter()
            .map(|second| (second.second as f64, count(second) as f64))
            .collect()
    };
    line_chart(
        "answers per second",
        "seconds",
        Some(run_end),
        &[
            Series::new("successful", "#1f77b4", per_second(|s| s.successes)),
            Series::new(
                "failed scripts",
                "#ff7f0e",
                per_second(|s| s.failed_scripts),
            ),
            Series::new("refused", "#9467bd", per_second(|s| s.refused)),
            Series::new("lost", "#d62728", per_second(|s| s.lost)),
        ],
    )
}

/// Latency over time of every answered execution, and of the focus group alone, whose
/// latency the others' (a hostile tenant's 5-second loops) would flatten.
fn latency_charts(summary: &ScenarioSummary, run_end: f64) -> String {
    let per_second = |latency: fn(&crate::summary::Second) -> Option<f64>| {
        summary
            .per_second
            .iter()
            .filter_map(|second| Some((second.second as f64, latency(second)?)))
            .collect()
    };
    let mut html = line_chart(
        "latency of answered executions (ms)",
        "seconds",
        Some(run_end),
        &[
            Series::new("p50", "#2ca02c", per_second(|s| s.p50_ms)),
            Series::new("p99", "#d62728", per_second(|s| s.p99_ms)),
        ],
    );
    if let Some(focus) = &summary.focus {
        html.push_str(&line_chart(
            &format!("latency of {focus} alone (ms)"),
            "seconds",
            Some(run_end),
            &[
                Series::new("p50", "#17becf", per_second(|s| s.focus_p50_ms)),
                Series::new("p99", "#e377c2", per_second(|s| s.focus_p99_ms)),
            ],
        ));
    }
    html
}

fn resource_charts(summary: &ScenarioSummary, run_end: f64) -> String {
    let samples = &summary.resource_samples;
    let sandbox = |value: fn(&crate::resources::SandboxGauges) -> f64| {
        samples
            .iter()
            .filter_map(|sample| Some((sample.at, value(sample.sandbox.as_ref()?))))
            .collect::<Vec<_>>()
    };
    let ingress = |value: fn(&crate::resources::ProcessUsage) -> f64| {
        samples
            .iter()
            .filter_map(|sample| Some((sample.at, value(sample.ingress.as_ref()?))))
            .collect::<Vec<_>>()
    };
    let mut html = String::new();
    html.push_str(&line_chart(
        "resident memory (MiB)",
        "seconds",
        Some(run_end),
        &[
            Series::new(
                "sandbox total",
                "#1f77b4",
                sandbox(|g| (g.supervisor_resident_bytes + g.workers_resident_bytes) / MIB),
            ),
            Series::new(
                "supervisor",
                "#2ca02c",
                sandbox(|g| g.supervisor_resident_bytes / MIB),
            ),
            Series::new(
                "workers",
                "#ff7f0e",
                sandbox(|g| g.workers_resident_bytes / MIB),
            ),
            Series::new(
                "ingress",
                "#9467bd",
                ingress(|p| p.resident_bytes as f64 / MIB),
            ),
        ],
    ));
    html.push_str(&line_chart(
        "workers and open descriptors",
        "seconds",
        Some(run_end),
        &[
            Series::new("workers", "#1f77b4", sandbox(|g| g.workers)),
            Series::new("workers busy", "#2ca02c", sandbox(|g| g.workers_busy)),
            Series::new("sandbox fds", "#ff7f0e", sandbox(|g| g.open_fds)),
            Series::new("ingress fds", "#9467bd", ingress(|p| p.open_fds as f64)),
        ],
    ));
    let ranges = &summary.resources;
    let _ = write!(
        html,
        "<p>Ranges over {} samples ({} failed scrapes): sandbox RSS {} MiB, workers {}, \
         sandbox fds {}, ingress RSS {} MiB, ingress fds {}.</p>",
        ranges.samples,
        ranges.failed_scrapes,
        spread_text(ranges.sandbox_resident_bytes.as_ref(), MIB),
        spread_text(ranges.workers.as_ref(), 1.0),
        spread_text(ranges.sandbox_open_fds.as_ref(), 1.0),
        spread_text(ranges.ingress_resident_bytes.as_ref(), MIB),
        spread_text(ranges.ingress_open_fds.as_ref(), 1.0),
    );
    html
}

fn spread_text(spread: Option<&Spread>, unit: f64) -> String {
    spread.map_or("-".to_owned(), |spread| {
        format!("{:.1}-{:.1}", spread.min / unit, spread.max / unit)
    })
}

/// An SVG line chart of `series` with both axes from 0, the x axis up to at least `x_end`
/// (so the charts of one run line up).
fn line_chart(title: &str, x_label: &str, x_end: Option<f64>, series: &[Series]) -> String {
    let points = series.iter().flat_map(|series| &series.points);
    let (x_max, y_max) = points.fold((x_end.unwrap_or(0.0), 0.0f64), |(x_max, y_max), &(x, y)| {
        (x_max.max(x), y_max.max(y))
    });
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" \
         font-size=\"11\"><text x=\"{MARGIN_LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    if series.iter().all(|series| series.points.is_empty()) {
        svg.push_str("<text x=\"60\" y=\"120\">no data</text></svg>");
        return svg;
    }
    let (x_max, y_max) = (nice_ceiling(x_max), nice_ceiling(y_max));
    let plot_width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x_at = |x: f64| MARGIN_LEFT + x / x_max * plot_width;
    let y_at = |y: f64| MARGIN_TOP + plot_height - y / y_max * plot_height;

    for tick in 0..=TICKS {
        let fraction = tick as f64 / TICKS as f64;
        let (x, y) = (x_max * fraction, y_max * fraction);
        let _ = write!(
            svg,
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{x2:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>\
             <text x=\"{xx:.1}\" y=\"{xy:.1}\" text-anchor=\"middle\">{}</text>",
            tick_label(y),
            tick_label(x),
            x2 = MARGIN_LEFT + plot_width,
            yy = y_at(y),
            tx = MARGIN_LEFT - 6.0,
            ty = y_at(y) + 4.0,
            xx = x_at(x),
            xy = MARGIN_TOP + plot_height + 16.0,
        );
    }
    let _ = write!(
        svg,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{plot_width}\" height=\"{plot_height}\" \
         fill=\"none\" stroke=\"#999\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        MARGIN_LEFT + plot_width / 2.0,
        CHART_HEIGHT - 4.0,
        escape(x_label)
    );
    for (index, series) in series.iter().enumerate() {
        let coordinates: Vec<String> = series
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
            series.color,
            coordinates.join(" ")
        );
        if series.points.len() <= DOTTED_POINTS {
            for &(x, y) in &series.points {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                    x_at(x),
                    y_at(y),
                    series.color
                );
            }
        }
        let legend_y = MARGIN_TOP + 12.0 + index as f64 * 16.0;
        let legend_x = MARGIN_LEFT + plot_width + 12.0;
        let _ = write!(
            svg,
            "<line x1=\"{legend_x}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{legend_y:.1}\">{}</text>",
            legend_x + 16.0,
            legend_y - 4.0,
            legend_y - 4.0,
            series.color,
            legend_x + 22.0,
            escape(&series.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at or
/// above `value`, 1 for nothing, so an axis ends close to its data on a round number.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|&ceiling| ceiling >= value)
        .unwrap_or(10.0 * power)
}

fn tick_label(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(21.1), 25.0);
        assert_eq!(nice_ceiling(450.0), 500.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_ceiling(0.03), 0.03);
    }
}
