//! The ingress's MCP server against a second client library: the official Python SDK (`mcp`
//! from PyPI) runs `tests/mcp/python_client.py` against the real binaries, in both protocol
//! lifecycles (the 2025-11-25 handshake and 2026-07-28's discovery): tools/list and the
//! schemas, a result, a script error, a timeout, concurrent calls, a session's round trip
//! (created, state kept between two runs, ended), 401 and 429.
//!
//! It needs `pip install 'mcp==2.3.0'` (with `python3`, or the interpreter `MCP_PYTHON` names),
//! so it is ignored unless asked for (`cargo test -- --include-ignored`, as CI runs it); asked
//! for without the package, it fails.

use std::env;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Stack, TempFile};
use ingress::tenants::KeyHash;

const KEY: &str = "acme-0d5e8b2f6a91c3d7";
const TIGHT_KEY: &str = "tight-7c2a9e4b1f6d8035";

#[test]
#[ignore = "needs the Python MCP SDK: pip install 'mcp==2.3.0', then cargo test -- --include-ignored"]
fn the_python_mcp_sdk_lists_and_calls_the_tools_and_meets_the_key_and_the_rate_limit() {
    let python = env::var("MCP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_sdk = Command::new(&python)
        .args(["-c", "import mcp.client"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_sdk {
        e2e::missing_tool(
            "Python MCP client test",
            &format!("`{python}` cannot import mcp (pip install 'mcp==2.3.0', or set MCP_PYTHON)"),
        );
    }
    // acme: no rate limit. tight: four requests, then one every 100 s. No anonymous tier.
    let tenants = TempFile::new(
        "mcp-tenants.toml",
        &format!(
            "[anonymous]\nenabled = false\n\n\
             [[tenants]]\nid = \"acme\"\nkeys = [\"{}\"]\nrate_limit_rps = 0\n\n\
             [[tenants]]\nid = \"tight\"\nkeys = [\"{}\"]\nrate_limit_rps = 0.01\nrate_limit_burst = 4\n",
            KeyHash::of_key(KEY),
            KeyHash::of_key(TIGHT_KEY),
        ),
    );
    let stack = Stack::start(&[("TENANTS_FILE", tenants.0.to_str().unwrap())]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/python_client.py");

    let mut command = Command::new(&python);
    command
        .arg(script)
        .arg(format!("{}/mcp", stack.url()))
        .args([KEY, TIGHT_KEY]);
    let run = e2e::output_within(command, Duration::from_secs(120));

    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && stdout.contains("every check passed"),
        "the Python client failed ({}):\n{stdout}\n{stderr}\ningress log:\n{}",
        run.status,
        stack.ingress.log(),
    );
}
