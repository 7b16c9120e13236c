//! The OpenAPI document against the real binaries: the ingress serves the sandbox's document,
//! which states that deployment's limits, and schemathesis (a property-based API fuzzer, from
//! PyPI) generates requests from it, valid and invalid, and checks every answer against it.
//!
//! The fuzzing test needs `pip install schemathesis` (the `st` command; `SCHEMATHESIS` names
//! another), so it is ignored unless asked for (`cargo test -- --include-ignored`, as CI runs
//! it); asked for without `st`, it fails.
//! Its settings are in `tests/schemathesis.toml`; its HAR report of every request and answer
//! goes to `tests/artifacts/schemathesis/`.

use std::env;
use std::path::Path;
use std::process::Command;

use e2e::{Service, Stack};

/// Requests generated per operation and phase; the run takes about a minute on two cores.
const MAX_EXAMPLES: &str = "100";

/// The fuzzed sandbox's time limits: `schemathesis.toml`'s response-time bound for a batch is its
/// whole-batch deadline (`MAX_TIMEOUT_MS`, however many items it has) plus the kill grace and a
/// loaded machine's margin.
const FUZZED_SANDBOX: &[(&str, &str)] =
    &[("DEFAULT_TIMEOUT_MS", "500"), ("MAX_TIMEOUT_MS", "2000")];

#[test]
fn the_document_served_by_the_ingress_states_the_sandboxs_limits_and_examples() {
    let sandbox = Service::start(
        "sandbox",
        &[("MAX_TIMEOUT_MS", "12345"), ("MAX_MEMORY_LIMIT_MB", "96")],
    );
    let sandbox_url = sandbox.url();
    let ingress = Service::start("ingress", &[("SANDBOX_URL", &sandbox_url)]);
    let (status, body) = e2e::get(ingress.addr(), "/api/openapi.json").expect("GET the document");
    assert_eq!(status, 200, "{body}");
    let document: serde_json::Value = serde_json::from_str(&body).expect("the document is JSON");

    assert_eq!(document["openapi"], "3.1.0");
    let request = &document["components"]["schemas"]["ExecuteRequest"]["allOf"][0]["properties"];
    assert_eq!(request["timeoutMs"]["maximum"], 12345);
    assert_eq!(request["memoryLimitMb"]["maximum"], 96);
    let examples = request["file"]["enum"].as_array().expect("example names");
    let on_disk =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-scripts"))
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|extension| extension == "js")
            })
            .count();
    assert_eq!(
        examples.len(),
        on_disk + 1,
        "every example, and null: {examples:?}"
    );
    for path in [
        "/api/execute",
        "/api/batch",
        "/api/examples",
        "/api/openapi.json",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/sessions/{id}/execute",
        "/healthz",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not described"
        );
    }
}

#[test]
#[ignore = "needs schemathesis: pip install 'schemathesis==4.32.5', then cargo test -- --include-ignored"]
fn schemathesis_finds_no_answer_that_breaks_the_document() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = env::var("SCHEMATHESIS").unwrap_or_else(|_| "st".to_owned());
    if Command::new(&st).arg("--version").output().is_err() {
        e2e::missing_tool(
            "fuzzing test",
            &format!("`{st}` is not on PATH (pip install schemathesis, or set SCHEMATHESIS)"),
        );
    }
    // Short time limits: the fuzzer picks the endless-loop example and batches of it, and with the
    // defaults each such batch holds both workers for 30 s. (`MAX_BATCH_ITEMS` keeps its default:
    // with a small one, the coverage phase builds arrays of that many deeply nested inputs, and
    // CPython 3.11's `ast` has failed doing so with "AST constructor recursion depth mismatch".) The document states these limits, so
    // the fuzzer still probes every bound it declares, in a fraction of the time.
    let sandbox = Service::start("sandbox", FUZZED_SANDBOX);
    let sandbox_url = sandbox.url();
    // Rate limits off: the fuzzer's requests must reach the service, not the limiter.
    let ingress = Service::start(
        "ingress",
        &[("SANDBOX_URL", &sandbox_url), ("RATE_LIMIT_RPS", "0")],
    );
    let stack = Stack { ingress, sandbox };
    let report_dir = manifest_dir.join("artifacts/schemathesis");
    let _ = std::fs::remove_dir_all(&report_dir);
    let run = Command::new(&st)
        .args(["--config-file", "schemathesis.toml", "run"])
        .arg(format!("{}/api/openapi.json", stack.url()))
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES])
        // Two at a time: both workers busy with an example's endless loop cannot refuse a third.
        .args(["--workers", "2", "--request-timeout", "40"])
        .args(["--report", "har", "--report-dir"])
        .arg(&report_dir)
        .args(["--seed", "1"])
        .current_dir(manifest_dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}\nsandbox log:\n{}",
        run.status,
        tail(&stack.sandbox.log()),
    );
    // It must have tested every operation but its own document.
    assert!(
        stdout.contains("Tested: 8"),
        "schemathesis did not test every operation:\n{stdout}"
    );
    println!("{stdout}");
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(4000);
    log.get(start..).unwrap_or(log)
}
