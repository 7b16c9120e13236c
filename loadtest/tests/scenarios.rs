//! Short runs of scenarios against the real stack: the `loadtest` binary starts the `sandbox`
//! and `ingress` built beside it, sends its load for a few seconds, and must lose nothing and
//! report the scenario's own figures in `summary.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `loadtest` binary, with the `sandbox` and `ingress` binaries it starts built beside it
/// (`cargo test` builds only this package's own).
fn loadtest_binary() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let profile = loadtest
        .parent()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .expect("loadtest sits in target/<profile>/");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build", "--quiet", "--bins", "-p", "sandbox", "-p", "ingress",
    ]);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        profile => {
            cargo.args(["--profile", profile]);
        }
    }
    let build = cargo.output().expect("run cargo build");
    assert!(
        build.status.success(),
        "building the sandbox and ingress failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    loadtest
}

/// Runs `scenario` for 3 s with 2 users and returns its `summary.json`, after checking that
/// loadtest exited 0 (nothing lost, nothing over budget).
fn run_scenario(scenario: &str) -> Value {
    let report_dir =
        std::env::temp_dir().join(format!("loadtest-test-{scenario}-{}", std::process::id()));
    let output = Command::new(loadtest_binary())
        .args(["--scenario", scenario, "--duration", "3s", "--users", "2"])
        .arg("--report-dir")
        .arg(&report_dir)
        .output()
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadtest --scenario {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = report_dir.join(scenario).join("summary.json");
    let summary = std::fs::read_to_string(&summary)
        .unwrap_or_else(|error| panic!("{}: {error}", summary.display()));
    let summary: Value = serde_json::from_str(&summary).unwrap();
    std::fs::remove_dir_all(&report_dir).ok();
    assert_eq!(summary["lost"], 0, "{stdout}");
    summary
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// A count the sandbox's metrics gave, which the summary holds as a float.
fn counted(value: &Value) -> u64 {
    value.as_f64().unwrap_or(0.0) as u64
}

#[test]
fn stream_scenario_loses_no_stream_and_times_its_first_log_and_its_result() {
    let summary = run_scenario("stream");
    let answers = &summary["by_script"]["streamed-ticks"]["answers"];
    assert!(count(&answers["success"]) > 0, "{summary:#}");
    assert_eq!(answers.as_object().unwrap().len(), 1, "{answers}");

    let stream = &summary["stream"];
    let streams = count(&stream["streams"]);
    assert_eq!(streams, count(&summary["requests"]), "{stream}");
    // Five entries a stream, each passed on as a `log` event before the result.
    assert_eq!(count(&stream["log_events"]), 5 * streams, "{stream}");
    assert_eq!(count(&stream["time_to_first_log"]["count"]), streams);
    assert_eq!(count(&stream["time_to_result"]["count"]), streams);
    // The first entry is logged 100 ms of timers before the result: streamed as it comes, it
    // arrives before the result, not with it.
    let first_log = stream["time_to_first_log"]["p50_ms"].as_f64().unwrap();
    let result = stream["time_to_result"]["p50_ms"].as_f64().unwrap();
    assert!(first_log < result, "{stream}");
}

#[test]
fn batch_scenario_checks_every_item_in_order_and_counts_the_items() {
    let summary = run_scenario("batch");
    let answers = &summary["by_script"]["batch-of-50"]["answers"];
    assert!(count(&answers["success"]) > 0, "{summary:#}");
    let batch = &summary["batch"];
    let batches = count(&batch["batches"]);
    assert_eq!(batches, count(&summary["requests"]), "{batch}");
    // Every answered batch holds its 50 items; the judge lost any out of order or wrong.
    let answered = batches - count(&batch["refused"]);
    assert_eq!(count(&batch["items"]), 50 * answered, "{batch}");
    assert_eq!(
        count(&batch["succeeded_items"]) + count(&batch["failed_items"]),
        count(&batch["items"]),
        "{batch}"
    );
    assert!(count(&batch["succeeded_items"]) > 0, "{batch}");
    assert!(
        batch["successful_items_per_second"].as_f64().unwrap() > 0.0,
        "{batch}"
    );
    assert_eq!(count(&batch["latency"]["count"]), answered, "{batch}");
    assert!(summary["stream"].is_null(), "nothing was streamed");
}

#[test]
fn typescript_scenario_gets_the_typed_scripts_answer_and_refuses_its_enum() {
    let summary = run_scenario("typescript");
    let typed = &summary["by_script"]["typescript-typed"]["answers"];
    assert!(count(&typed["success"]) > 0, "{summary:#}");
    assert_eq!(typed.as_object().unwrap().len(), 1, "{typed}");
    let refused = &summary["by_script"]["typescript-enum"]["answers"];
    assert!(count(&refused["syntax"]) > 0, "{summary:#}");
    assert_eq!(refused.as_object().unwrap().len(), 1, "{refused}");
    assert!(summary["stream"].is_null(), "nothing was streamed");
    assert!(summary["batch"].is_null(), "no batch was sent");
}

#[test]
fn sessions_scenario_keeps_each_sessions_state_and_leaves_the_sandbox_as_it_found_it() {
    let summary = run_scenario("sessions");
    let sessions = &summary["sessions"];
    let created = count(&sessions["created"]);
    assert!(created > 0, "{summary:#}");
    // Every created session ended as planned: none lost its state or failed.
    assert_eq!(count(&sessions["wrong_state"]), 0, "{sessions}");
    assert_eq!(count(&sessions["failed"]), 0, "{sessions}");
    assert_eq!(
        count(&sessions["deleted"]) + count(&sessions["abandoned"]),
        created,
        "{sessions}"
    );
    assert!(count(&sessions["deleted"]) > 0, "{sessions}");
    assert!(count(&sessions["abandoned"]) > 0, "{sessions}");
    // Five executions in each, each answering its count.
    assert_eq!(count(&sessions["executions_ok"]), 5 * created, "{sessions}");
    assert_eq!(
        count(&summary["by_script"]["session-counter"]["answers"]["success"]),
        5 * created,
        "{summary:#}"
    );
    assert_eq!(
        count(&sessions["session_latency"]["count"]),
        created,
        "{sessions}"
    );
    // The sandbox counted them too, and once the abandoned ones expired it was back where
    // it started: no session open, nothing of the memory budget charged beyond the baseline.
    let events = &summary["resources"]["sandbox_session_events"];
    let sandbox_created = counted(&events["created"]);
    assert!(sandbox_created >= created, "{events}");
    assert_eq!(
        counted(&events["deleted"]) + counted(&events["expired"]),
        sandbox_created,
        "{events}"
    );
    assert_eq!(
        counted(&events["deleted"]),
        count(&sessions["deleted"]),
        "{events}"
    );
    assert!(
        counted(&events["expired"]) >= count(&sessions["abandoned"]),
        "{events}"
    );
    let back = &sessions["back_to_baseline"];
    assert_eq!(back["returned"], true, "{back}");
    let open = &summary["resources"]["sessions_open"];
    assert!(open["max"].as_f64().unwrap() > 0.0, "{open}");
    assert_eq!(
        back["last"]["sessions_open"], back["baseline"]["sessions_open"],
        "{back}"
    );
    assert!(
        back["last"]["requests_charged_bytes"].as_f64().unwrap()
            <= back["baseline"]["requests_charged_bytes"].as_f64().unwrap(),
        "{back}"
    );
}
