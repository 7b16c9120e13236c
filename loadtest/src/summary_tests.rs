use std::time::Duration;

use super::*;
use crate::answer::LostReason;
use crate::recorder::Detail;
use crate::resources::{ProcessUsage, SandboxGauges};

fn sample(finished_at: f64, millis: u64, group: &'static str, outcome: Outcome) -> Sample {
    Sample {
        finished_at,
        latency: Duration::from_millis(millis),
        group,
        script: "trivial",
        outcome,
        detail: Detail::default(),
    }
}

fn executed(kind: &str) -> Outcome {
    Outcome::Executed { kind: kind.into() }
}

fn step(users: usize, rate: f64, p50_ms: f64) -> RampStep {
    RampStep {
        users,
        seconds: 5.0,
        successful_executions_per_second: rate,
        p50_ms,
        p99_ms: p50_ms * 2.0,
        refused_per_second: 0.0,
        lost: 0,
    }
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&values, 50.0), Some(50.0));
    assert_eq!(percentile(&values, 99.0), Some(99.0));
    assert_eq!(percentile(&values, 100.0), Some(100.0));
    assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn summary_counts_failed_scripts_as_answers_refusals_apart_and_losses_alone() {
    let samples = vec![
        sample(0.5, 10, "mixed", executed("success")),
        sample(1.5, 20, "mixed", executed("success")),
        sample(1.6, 100, "mixed", executed("timeout")),
        sample(
            1.7,
            1,
            "mixed",
            Outcome::classify(
                503,
                br#"{"status":"error","error":{"kind":"overloaded","message":"m"}}"#,
            ),
        ),
        sample(
            2.5,
            30,
            "mixed",
            Outcome::Lost {
                reason: LostReason::ServerError { status: 502 },
                detail: "bad gateway".into(),
            },
        ),
        sample(3.5, 40, "mixed", executed("success")),
    ];
    let windows = [StepWindow {
        users: 2,
        from: 1.0,
        to: 3.0,
    }];
    let summary = summarize(RunRecord {
        scenario: "mixed",
        target: "http://127.0.0.1:1",
        users: 2,
        samples: &samples,
        expected: BTreeMap::from([("trivial", "success")]),
        focus: None,
        windows: &windows,
        is_ramp: false,
        paced: &[],
        alone: None,
        resource_samples: Vec::new(),
        ingress_memory_budget: None,
        slow_clients: None,
        sessions_expired: None,
    });
    let overall = &summary.overall;
    assert_eq!(overall.requests, 6);
    // Only the success at 1.5 s falls in the 2-second window.
    assert_eq!(overall.successful_executions_per_second, 0.5);
    assert_eq!(overall.answered_by_kind["success"], 3);
    assert_eq!(overall.answered_by_kind["timeout"], 1);
    assert_eq!(overall.refused, 1);
    assert_eq!(overall.refusals["503 overloaded"], 1);
    assert_eq!(overall.lost, 1);
    assert_eq!(overall.lost_by_reason["status 502"], 1);
    assert_eq!(summary.lost_examples[0].detail, "bad gateway");
    // Latency covers the four executions: 10, 20, 40, 100 ms.
    assert_eq!(overall.latency.count, 4);
    assert_eq!(overall.latency.p50_ms, 20.0);
    assert_eq!(overall.latency.max_ms, 100.0);
    assert_eq!(summary.per_second.len(), 4);
    assert_eq!(summary.per_second[1].successes, 1);
    assert_eq!(summary.per_second[1].failed_scripts, 1);
    assert_eq!(summary.per_second[2].lost, 1);
    assert_eq!(summary.by_script["trivial"].answers["lost: status 502"], 1);
    assert!(summary.groups.is_empty(), "one group is not broken down");
}

#[test]
fn batch_figures_count_the_items_of_answered_batches_and_their_successes_per_second() {
    let batch = |at, outcome, succeeded, failed| Sample {
        detail: Detail {
            batch: Some(crate::batch::BatchItems {
                items: succeeded + failed,
                succeeded,
                failed,
            }),
            ..Detail::default()
        },
        ..sample(at, 40, "batcher", outcome)
    };
    let refused = Outcome::Refused {
        status: 503,
        kind: "overloaded".into(),
    };
    let samples = vec![
        batch(1.0, executed("success"), 50, 0),
        batch(1.5, executed("timeout"), 30, 20),
        batch(1.6, refused, 0, 0),
        // Outside the window: counted, but not in the rate.
        batch(9.0, executed("success"), 50, 0),
        sample(1.0, 10, "batcher", executed("success")),
    ];
    let window = StepWindow {
        users: 1,
        from: 0.5,
        to: 2.5,
    };
    let figures = BatchFigures::of(&samples, Some(window)).unwrap();
    assert_eq!(figures.batches, 4);
    assert_eq!(figures.refused, 1);
    assert_eq!(figures.items, 150);
    assert_eq!(figures.succeeded_items, 130);
    assert_eq!(figures.failed_items, 20);
    assert_eq!(figures.successful_items_per_second, 40.0);
    assert_eq!(figures.latency.count, 3);
    assert_eq!(BatchFigures::of(&samples[4..], Some(window)), None);
}

#[test]
fn stream_figures_time_the_answered_streams_events_and_count_every_stream() {
    let streamed = |outcome, first_log: Option<u64>, result: Option<u64>, log_events| Sample {
        detail: Detail {
            stream: Some(crate::stream::StreamTimes {
                first_log: first_log.map(Duration::from_millis),
                result: result.map(Duration::from_millis),
                log_events,
            }),
            ..Detail::default()
        },
        ..sample(1.0, 100, "stream", outcome)
    };
    let cut = Outcome::Lost {
        reason: LostReason::StreamWithoutResult,
        detail: "1 events, none of them a result".into(),
    };
    let samples = vec![
        streamed(executed("success"), Some(2), Some(100), 5),
        streamed(executed("success"), Some(4), Some(120), 5),
        streamed(executed("success"), None, Some(30), 0),
        streamed(cut, Some(1), None, 1),
        sample(1.0, 10, "stream", executed("success")),
    ];
    let stream = StreamFigures::of(&samples).unwrap();
    assert_eq!(stream.streams, 4);
    assert_eq!(stream.log_events, 10);
    assert_eq!(stream.time_to_first_log.count, 2);
    assert_eq!(stream.time_to_first_log.max_ms, 4.0);
    assert_eq!(stream.time_to_result.count, 3);
    assert_eq!(stream.time_to_result.p50_ms, 100.0);
    assert_eq!(StreamFigures::of(&samples[4..]), None);
}

#[test]
fn knee_is_the_first_step_within_a_tenth_of_the_best_throughput() {
    let steps = [
        step(1, 500.0, 2.0),
        step(2, 950.0, 2.1),
        step(4, 1000.0, 4.0),
        step(8, 1010.0, 8.0),
    ];
    let knee = find_knee(&steps).unwrap();
    assert!(knee.reached);
    assert_eq!(knee.users, 2);
    assert_eq!(knee.successful_executions_per_second, 950.0);
    assert_eq!(knee.p50_ms, 2.1);
    assert_eq!(knee.next_users, Some(4));
    assert_eq!(knee.next_p50_ms, Some(4.0));
}

#[test]
fn one_noisy_step_does_not_end_the_ramp_early() {
    let steps = [
        step(1, 2526.0, 0.3),
        step(2, 2393.0, 0.7),
        step(4, 4165.0, 0.9),
        step(8, 5628.0, 1.3),
        step(16, 5112.0, 3.0),
    ];
    let knee = find_knee(&steps).unwrap();
    assert!(knee.reached);
    assert_eq!(knee.users, 8);
    assert_eq!(knee.next_users, Some(16));
}

#[test]
fn knee_is_not_reached_while_throughput_keeps_growing() {
    let steps = [
        step(1, 100.0, 2.0),
        step(2, 200.0, 2.0),
        step(4, 390.0, 2.1),
    ];
    let knee = find_knee(&steps).unwrap();
    assert!(!knee.reached);
    assert_eq!(knee.users, 4);
    assert_eq!(knee.next_users, None);
    assert_eq!(find_knee(&[]), None);
}

#[test]
fn ramp_steps_count_only_answers_inside_their_window() {
    let mut samples = Vec::new();
    for tenth in 0..10 {
        samples.push(sample(
            f64::from(tenth) / 10.0,
            5,
            "ramp",
            executed("success"),
        ));
    }
    for tenth in 0..15 {
        samples.push(sample(
            1.0 + f64::from(tenth) / 15.0,
            9,
            "ramp",
            executed("success"),
        ));
    }
    let windows = [
        StepWindow {
            users: 1,
            from: 0.0,
            to: 1.0,
        },
        StepWindow {
            users: 2,
            from: 1.0,
            to: 2.0,
        },
    ];
    let ramp = Ramp::of(&samples, &windows);
    assert_eq!(ramp.steps[0].successful_executions_per_second, 10.0);
    assert_eq!(ramp.steps[1].successful_executions_per_second, 15.0);
    assert_eq!(ramp.steps[1].p50_ms, 9.0);
    let knee = ramp.knee.unwrap();
    assert!(!knee.reached, "15 is 50% more than 10: still growing");
}

#[test]
fn paced_loads_after_a_ramp_are_measured_in_their_own_windows() {
    let mut samples: Vec<Sample> = (0..20)
        .map(|tenth| sample(f64::from(tenth) / 10.0, 5, "ramp", executed("success")))
        .collect();
    samples.extend((0..8).map(|eighth| {
        sample(
            3.0 + f64::from(eighth) / 8.0,
            3,
            "ramp",
            executed("success"),
        )
    }));
    let windows = [StepWindow {
        users: 4,
        from: 0.0,
        to: 2.0,
    }];
    let paced = [PacedWindow {
        fraction_of_knee: 0.8,
        requests_per_second: 8,
        window: StepWindow {
            users: 4,
            from: 3.0,
            to: 4.0,
        },
    }];
    let summary = summarize(RunRecord {
        scenario: "ramp",
        target: "http://127.0.0.1:1",
        users: 4,
        samples: &samples,
        expected: BTreeMap::new(),
        focus: None,
        windows: &windows,
        is_ramp: true,
        paced: &paced,
        alone: None,
        resource_samples: Vec::new(),
        ingress_memory_budget: None,
        slow_clients: None,
        sessions_expired: None,
    });
    let ramp = summary.ramp.unwrap();
    assert_eq!(ramp.steps.len(), 1, "a paced load is not a ramp step");
    assert_eq!(ramp.steps[0].successful_executions_per_second, 10.0);
    let point = &ramp.below_knee[0];
    assert_eq!(point.offered_per_second, 8);
    assert_eq!(point.successful_executions_per_second, 8.0);
    assert_eq!(point.latency.p50_ms, 3.0);
    // Overall throughput: 28 successes over the 4 seconds from the ramp's start to the
    // paced load's end.
    assert_eq!(summary.measured_seconds, 4.0);
    assert_eq!(summary.overall.successful_executions_per_second, 7.0);
}

#[test]
fn a_process_over_its_memory_budget_is_named() {
    let usage = |resident_bytes| ProcessUsage {
        resident_bytes,
        open_fds: 1,
    };
    let gauges = |resident: f64| SandboxGauges {
        supervisor_resident_bytes: resident,
        memory_budget_bytes: 1000.0,
        ..SandboxGauges::default()
    };
    let sample = |sandbox: f64, ingress: u64| ResourceSample {
        at: 0.0,
        sandbox: Some(gauges(sandbox)),
        ingress: Some(usage(ingress)),
    };
    let within = ResourceRanges::of(&[sample(900.0, 90), sample(1000.0, 100)], Some(100));
    assert_eq!(within.over_budget(), Vec::<&str>::new());
    let over = ResourceRanges::of(&[sample(900.0, 90), sample(1001.0, 101)], Some(100));
    assert_eq!(over.over_budget(), ["sandbox", "ingress"]);
    let unknown = ResourceRanges::of(&[sample(5000.0, 5000)], None);
    assert_eq!(unknown.sandbox_memory_budget_bytes, Some(1000.0));
    assert_eq!(unknown.over_budget(), ["sandbox"]);
}

#[test]
fn session_figures_count_how_each_session_ended_and_time_the_whole_ones() {
    use crate::session::{SessionEnd, SessionLife};
    let life = |end, executions_ok, wrong_state, millis| {
        Some(SessionLife {
            end,
            executions_ok,
            wrong_state,
            duration: Duration::from_millis(millis),
        })
    };
    let step = |script, millis, outcome, session| Sample {
        script,
        detail: Detail {
            session,
            ..Detail::default()
        },
        ..sample(1.0, millis, "sessions", outcome)
    };
    let refused = Outcome::Refused {
        status: 503,
        kind: "session_limit".into(),
    };
    let wrong = Outcome::Lost {
        reason: LostReason::WrongAnswer,
        detail: "1".into(),
    };
    let samples = vec![
        step("session-create", 10, executed("created"), None),
        step("session-counter", 2, executed("success"), None),
        step(
            "session-delete",
            1,
            executed("deleted"),
            life(SessionEnd::Deleted, 1, 0, 20),
        ),
        step("session-create", 30, executed("created"), None),
        step(
            "session-counter",
            4,
            executed("success"),
            life(SessionEnd::Abandoned, 1, 0, 40),
        ),
        step(
            "session-create",
            1,
            refused,
            life(SessionEnd::NotCreated, 0, 0, 1),
        ),
        step("session-create", 10, executed("created"), None),
        step(
            "session-counter",
            2,
            wrong,
            life(SessionEnd::CutShort, 0, 1, 15),
        ),
    ];
    let back = BaselineReturn {
        baseline: Default::default(),
        at_end_of_load: Default::default(),
        last: Default::default(),
        returned: true,
        seconds_to_return: Some(3.5),
        allowed_seconds: 33.0,
    };
    let figures = SessionFigures::of(&samples, Some(back)).unwrap();
    assert_eq!(
        (figures.sessions, figures.created, figures.not_created),
        (4, 3, 1)
    );
    assert_eq!(
        (figures.deleted, figures.abandoned, figures.failed),
        (1, 1, 1)
    );
    assert_eq!((figures.executions_ok, figures.wrong_state), (2, 1));
    assert_eq!(figures.refusals["503 session_limit"], 1);
    // The two sessions that ran to their end, not the failed one.
    assert_eq!(figures.session_latency.count, 2);
    assert_eq!(figures.session_latency.max_ms, 40.0);
    assert_eq!(figures.create_latency.count, 3);
    assert_eq!(figures.create_latency.max_ms, 30.0);
    // The lost execution has no latency worth timing.
    assert_eq!(figures.execute_latency.count, 2);
    assert_eq!(figures.back_to_baseline, Some(back));
    assert_eq!(SessionFigures::of(&samples[..2], None), None);
}
