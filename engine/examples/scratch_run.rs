fn main() {
    let path = std::env::args().nth(1).unwrap();
    let source = std::fs::read_to_string(path).unwrap();
    let (outcome, log) = engine::execute(
        &engine::EngineSettings::default(),
        engine::Script {
            name: "script.js".into(),
            source: source.into(),
            input: None,
        },
        engine::Limits {
            timeout: std::time::Duration::from_secs(5),
            memory_limit: std::env::var("MB").map_or(64, |v| v.parse().unwrap()) << 20,
        },
    )
    .unwrap();
    println!("{:?}\n{}", outcome.result, log.json());
}
