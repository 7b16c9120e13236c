use sandbox::engine::*;
use std::time::Duration;
fn main() {
    let code = std::env::args().nth(1).unwrap();
    let settings = EngineSettings::default();
    let out = execute(
        &settings,
        Script {
            name: "script.js".into(),
            source: code.into(),
        },
        Limits {
            timeout: Duration::from_millis(
                std::env::var("T")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(1000),
            ),
            memory_limit: std::env::var("M")
                .map(|v| v.parse::<usize>().unwrap())
                .unwrap_or(32)
                << 20,
        },
    )
    .unwrap();
    println!("{}", serde_json::to_string(&out).unwrap());
}
