//! The command lines of both binaries: `--help` and `--version` answer at once without starting
//! anything, `--help` lists every environment variable with its default, `check-config`
//! validates the environment and the tenants file, and the older `--healthcheck` flag still
//! works for deploy files that use it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{Service, binary_path, output_within};

/// Far longer than answering `--help` takes; a binary that started serving would not exit.
const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `name` with `args` and `env` (no inherited listen address), waiting at most
/// [`DEADLINE`].
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary_path(name));
    command
        .args(args)
        .env_remove("LISTEN_ADDR")
        .env_remove("PORT")
        .env_remove("TENANTS_FILE")
        .envs(env.iter().copied());
    output_within(command, DEADLINE)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_answer_at_once_on_every_command_of_both_binaries() {
    let commands: [(&str, &[&str]); 2] = [
        (
            "ingress",
            &["serve", "healthcheck", "hash-key", "check-config"],
        ),
        (
            "sandbox",
            &["serve", "healthcheck", "check-config", "worker"],
        ),
    ];
    for (name, subcommands) in commands {
        for flag in ["--version", "-V"] {
            let output = run(name, &[flag], &[]);
            assert!(output.status.success(), "{name} {flag}");
            assert_eq!(
                text(&output.stdout).trim(),
                format!("{name} {}", env!("CARGO_PKG_VERSION"))
            );
        }
        let output = run(name, &["--help"], &[]);
        assert!(output.status.success(), "{name} --help");
        let help = text(&output.stdout);
        for subcommand in subcommands {
            assert!(
                help.contains(subcommand),
                "{name} --help lists {subcommand}:\n{help}"
            );
            let output = run(name, &[subcommand, "--help"], &[]);
            assert!(output.status.success(), "{name} {subcommand} --help");
            assert!(
                text(&output.stdout).contains(&format!("Usage: {name} {subcommand}")),
                "{name} {subcommand} --help"
            );
        }
        let unknown = run(name, &["frobnicate"], &[]);
        assert_eq!(unknown.status.code(), Some(2), "{name} frobnicate");
        assert!(text(&unknown.stderr).contains("Usage:"));
    }
}

#[test]
fn help_lists_every_environment_variable_with_its_default() {
    let sandbox = text(&run("sandbox", &["--help"], &[]).stdout);
    for line in [
        "MAX_TIMEOUT_MS",
        "[default: 30000]",
        "QUEUE_TIMEOUT_MS",
        "WORKER_MAX_RSS_MB",
        "MAX_CONNECTIONS_PER_CLIENT",
        "HEADER_READ_TIMEOUT_MS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        assert!(
            sandbox.contains(line),
            "sandbox --help lacks {line}:\n{sandbox}"
        );
    }
    let ingress = text(&run("ingress", &["--help"], &[]).stdout);
    for line in [
        "TENANTS_FILE",
        "RATE_LIMIT_RPS",
        "[default: 5]",
        "UPSTREAM_TIMEOUT_MS",
        "[default: 35000]",
        "WRITE_TIMEOUT_MS",
        "OTEL_TRACES_SAMPLER",
    ] {
        assert!(
            ingress.contains(line),
            "ingress --help lacks {line}:\n{ingress}"
        );
    }
    // Every variable README's tables document is in a --help.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let both = format!("{sandbox}{ingress}");
    for row in readme.lines().filter(|line| line.starts_with("| `")) {
        let name = row[3..].split('`').next().unwrap_or_default();
        let is_variable = name.starts_with(|first: char| first.is_ascii_uppercase())
            && name
                .bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte == b'_' || byte.is_ascii_digit());
        if is_variable {
            assert!(
                both.contains(name),
                "{name} is documented in README but not in --help"
            );
        }
    }
}

#[test]
fn check_config_accepts_valid_settings_and_names_the_problem_otherwise() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants.example.toml");
    let example = example.to_str().unwrap();
    let valid = run("ingress", &["check-config"], &[("TENANTS_FILE", example)]);
    assert!(valid.status.success(), "{}", text(&valid.stderr));
    assert!(text(&valid.stdout).contains("configuration is valid"));

    let bad_file = std::env::temp_dir().join(format!("cli-{}-tenants.toml", std::process::id()));
    std::fs::write(&bad_file, "[anonymous]\nenabled = true\n[[tenants]]\nid = \"acme\"\nkeys = [\"not-a-hash\"]\nrate_limit_rps = 0\n").unwrap();
    let invalid = run(
        "ingress",
        &["check-config"],
        &[("TENANTS_FILE", bad_file.to_str().unwrap())],
    );
    let _ = std::fs::remove_file(&bad_file);
    assert_eq!(invalid.status.code(), Some(1));
    let stderr = text(&invalid.stderr);
    assert!(
        stderr.contains("TENANTS_FILE") && stderr.contains("expected 64 hex digits"),
        "{stderr}"
    );

    let invalid = run("ingress", &["check-config"], &[("RATE_LIMIT_RPS", "lots")]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(text(&invalid.stderr).contains("RATE_LIMIT_RPS"));

    let valid = run("sandbox", &["check-config"], &[("MAX_TIMEOUT_MS", "60000")]);
    assert!(valid.status.success(), "{}", text(&valid.stderr));
    assert!(text(&valid.stdout).contains("at most 60000 ms"));
    let invalid = run(
        "sandbox",
        &["check-config"],
        &[("DEFAULT_TIMEOUT_MS", "9000"), ("MAX_TIMEOUT_MS", "1000")],
    );
    assert_eq!(invalid.status.code(), Some(1));
    assert!(text(&invalid.stderr).contains("DEFAULT_TIMEOUT_MS"));
}

#[test]
fn the_older_healthcheck_flag_still_checks_a_running_sandbox() {
    let sandbox = Service::start("sandbox", &[]);
    let addr = sandbox.addr().to_string();
    let healthy = run("sandbox", &["--healthcheck"], &[("LISTEN_ADDR", &addr)]);
    assert!(healthy.status.success(), "{}", text(&healthy.stderr));
    let healthy = run("sandbox", &["healthcheck"], &[("LISTEN_ADDR", &addr)]);
    assert!(healthy.status.success(), "{}", text(&healthy.stderr));
    drop(sandbox);
    let down = run("sandbox", &["healthcheck"], &[("LISTEN_ADDR", &addr)]);
    assert_eq!(down.status.code(), Some(1));
}

#[test]
fn check_config_warns_when_proxy_hops_are_trusted_on_an_address_clients_reach_directly() {
    let warning = "clients may reach without the proxy";
    let run_with = |env: &[(&str, &str)]| {
        let mut command = Command::new(binary_path("ingress"));
        command
            .arg("check-config")
            .env_remove("LISTEN_ADDR")
            .env_remove("PORT")
            .env_remove("TENANTS_FILE")
            .env_remove("K_SERVICE")
            .envs(env.iter().copied());
        let output = output_within(command, DEADLINE);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stderr)
    };

    // Trusted hops on every interface: a client connecting directly writes its own identity.
    let stderr = run_with(&[("TRUSTED_PROXY_HOPS", "1"), ("LISTEN_ADDR", "0.0.0.0:8080")]);
    assert!(
        stderr.contains(warning) && stderr.contains("TRUSTED_PROXY_HOPS=1"),
        "{stderr}"
    );
    // Docker Compose's setting (clients connect directly, peers are told apart by address).
    let stderr = run_with(&[("TRUSTED_PROXY_HOPS", "0"), ("LISTEN_ADDR", "0.0.0.0:8080")]);
    assert!(!stderr.contains(warning), "{stderr}");
    // Only a proxy on the same host can connect to loopback.
    let stderr = run_with(&[
        ("TRUSTED_PROXY_HOPS", "1"),
        ("LISTEN_ADDR", "127.0.0.1:8080"),
    ]);
    assert!(!stderr.contains(warning), "{stderr}");
    // Cloud Run (which sets K_SERVICE): its front end is the only way to the port.
    let stderr = run_with(&[
        ("TRUSTED_PROXY_HOPS", "1"),
        ("PORT", "8080"),
        ("K_SERVICE", "jsbox"),
    ]);
    assert!(!stderr.contains(warning), "{stderr}");
}
