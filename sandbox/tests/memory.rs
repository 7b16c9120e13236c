//! Process memory under memory-hungry scripts. A test binary of its own, so no other test's
//! allocations share the process whose resident memory it measures.

#[path = "api/support.rs"]
#[allow(dead_code)] // shared with the api tests, which use all of it
mod support;

use serde_json::json;

use support::spawn_app_with;

/// Resident memory of this test process, which hosts the sandbox, in MiB.
fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[tokio::test]
async fn process_memory_stays_bounded_under_repeated_memory_bombs() {
    let app = spawn_app_with(|config| config.max_concurrency = 2).await;
    let bomb = json!({ "code": "const keep = []; while (true) keep.push('x'.repeat(65536) + keep.length);", "memoryLimitMb": 48 });
    let before = resident_mib();
    for _ in 0..10 {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (app, bomb) = (app.clone(), bomb.clone());
                tokio::spawn(async move { app.post_execute(bomb).await })
            })
            .collect();
        for run in runs {
            assert_eq!(run.await.unwrap().script_error_kind(), "memory");
        }
    }
    // Twenty 48 MiB bombs ran; at most the workers' limits may stay resident (allocator
    // caches), never the sum of every bomb.
    let grown = resident_mib().saturating_sub(before);
    assert!(grown < 3 * 48 + 64, "resident memory grew by {grown} MiB");
}
