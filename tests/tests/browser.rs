//! The demo page in real headless Chromium, against the real ingress and sandbox binaries.
//!
//! The browser is driven by `tests/browser/demo-page.mjs` (Node with playwright-core, pointed at
//! Debian's Chromium): it loads the page (printing its weight and time to interactive), checks
//! that there are no console errors or CSP violations, runs a picked example, typed code and an
//! endless loop in the CodeMirror editor, checks the editor's highlighting, keys, search and
//! undo, the share link's round trip, the curl command (run for real), the TypeScript switch
//! (a typed script's result, its highlighting, the language in share links and curl commands),
//! console output shown while a script still runs, batch mode (a JSON array of inputs in, a
//! table of results out, in order, a failing item's error in its row, bad inputs refused without
//! a request), the Keep state switch (runs in one session, its expiry, its end when switched off
//! or when the page goes, a lost or vanished session said so and replaced), the API key field,
//! the phone layout in light and dark, and the API reference page, and saves screenshots to
//! `tests/artifacts/`. This test starts the services, runs that script and fails if any step
//! fails.
//!
//! Needs `apt-get install chromium` and `npm ci --prefix tests/browser`, so it is ignored unless
//! asked for (`cargo test -- --include-ignored`, as CI runs it); asked for without them, it
//! fails and names what is missing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::Stack;

/// Where Debian's `chromium` package installs the browser; the `CHROMIUM` variable overrides it.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

#[test]
#[ignore = "needs Chromium and playwright-core: apt-get install chromium && npm ci --prefix tests/browser, then cargo test -- --include-ignored"]
fn demo_page_runs_examples_typed_code_and_endless_loops_in_headless_chromium() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver_dir = manifest_dir.join("browser");
    let chromium =
        env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
    if let Some(missing) = missing_browser_tool(&driver_dir, &chromium) {
        e2e::missing_tool("browser test", &missing);
    }

    let artifacts = manifest_dir.join("artifacts");
    let screenshot = artifacts.join("demo-desktop.png");
    // A screenshot left over from an earlier run must not count for this one.
    let _ = std::fs::remove_file(&screenshot);

    // A small body limit keeps the oversized-script step quick.
    let max_body_bytes = "65536";
    let stack = Stack::start(&[("RATE_LIMIT_RPS", "0"), ("MAX_BODY_BYTES", max_body_bytes)]);
    let run = Command::new("node")
        .arg("demo-page.mjs")
        .current_dir(&driver_dir)
        .env("BASE_URL", stack.url())
        .env("ARTIFACTS_DIR", &artifacts)
        .env("MAX_BODY_BYTES", max_body_bytes)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");

    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    println!("{stdout}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
}

/// Names the first thing the browser run needs that this machine lacks.
fn missing_browser_tool(driver_dir: &Path, chromium: &Path) -> Option<String> {
    if !chromium.is_file() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not on PATH".to_owned());
    }
    if !driver_dir.join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "playwright-core is not installed (npm ci --prefix {})",
            driver_dir.display()
        ));
    }
    None
}
