//! The deploy files checked against the binaries they deploy: everything a file can show
//! without a Docker engine or a Google Cloud project. The values the binaries really accept are
//! checked by `healthcheck.rs`, which starts them with the environments these files set.

use std::collections::{BTreeMap, BTreeSet};

use e2e::deploy::{
    self, DockerStage, Yaml, cloud_build, cloud_run, compose, items, placeholders, scalar, strings,
};

/// The route both binaries answer health checks on (the contract's `GET /healthz`).
const HEALTH_ROUTE: &str = "/healthz";
/// The sandbox's default port (`LISTEN_ADDR` defaults to `127.0.0.1:8081`).
const SANDBOX_PORT: u16 = 8081;
/// The port the ingress listens on in both deployments (`PORT` on Cloud Run, default 8080).
const INGRESS_PORT: u16 = 8080;
/// The sandbox's default `MAX_TIMEOUT_MS`: the longest deadline a script can ask for.
const DEFAULT_MAX_TIMEOUT_MS: u64 = 30_000;
/// The sandbox's default `QUEUE_TIMEOUT_MS`: how long a request may wait for a worker.
const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 2_000;
/// The ingress's default `UPSTREAM_TIMEOUT_MS`: how long it waits for the sandbox.
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 35_000;
/// The sandbox's default `MAX_MEMORY_LIMIT_MB`: the largest heap one script can ask for.
const DEFAULT_MAX_MEMORY_LIMIT_MB: u64 = 256;
/// Memory the sandbox process needs beside its scripts' heaps: the executable, thread stacks,
/// request and response buffers.
const SANDBOX_OVERHEAD_MIB: u64 = 128;
/// A worker process's own memory besides its script's heap (measured: about 5 MiB resident),
/// with room for the allocator.
const WORKER_OVERHEAD_MIB: u64 = 16;
/// Threads and processes of the sandbox container besides its workers: the supervisor's
/// runtime and launcher threads, and a health check process with its own runtime.
const SANDBOX_OTHER_PIDS: u64 = 32;

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("{address:?} has no port"))
}

fn number(value: &Yaml, what: &str) -> u64 {
    scalar(value)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("{what} is not a whole number: {value:?}"))
}

/// `1Gi`, `768Mi`, `768m`, `1g`: a memory size in MiB.
fn mebibytes(size: &str) -> u64 {
    let digits_end = size
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(size.len());
    let (amount, unit) = size.split_at(digits_end);
    let amount: u64 = amount
        .parse()
        .unwrap_or_else(|_| panic!("bad memory size {size:?}"));
    match unit.to_ascii_lowercase().as_str() {
        "gi" | "g" | "gb" => amount * 1024,
        "mi" | "m" | "mb" => amount,
        _ => panic!("unknown memory unit in {size:?}"),
    }
}

// ---------------------------------------------------------------- cloudrun.yaml

#[test]
fn cloud_run_ingress_is_the_only_container_with_a_port() {
    let service = cloud_run::service();
    let with_ports: Vec<&str> = cloud_run::containers(&service)
        .iter()
        .filter(|container| !items(&container["ports"]).is_empty())
        .filter_map(|container| container["name"].as_str())
        .collect();
    assert_eq!(with_ports, ["ingress"]);

    let ports = items(&cloud_run::container(&service, "ingress")["ports"]);
    assert_eq!(ports.len(), 1, "Cloud Run allows one port: {ports:?}");
    assert_eq!(
        number(&ports[0]["containerPort"], "containerPort"),
        u64::from(INGRESS_PORT)
    );
}

#[test]
fn cloud_run_ingress_listens_on_port_and_finds_the_sandbox_on_loopback() {
    let service = cloud_run::service();
    let ingress = cloud_run::env(cloud_run::container(&service, "ingress"));
    let sandbox = cloud_run::env(cloud_run::container(&service, "sandbox"));

    // Cloud Run injects PORT and forbids setting it; a LISTEN_ADDR would override it.
    assert!(!ingress.contains_key("PORT"), "PORT is Cloud Run's to set");
    assert!(
        !ingress.contains_key("LISTEN_ADDR"),
        "the ingress must listen on $PORT"
    );

    assert_eq!(sandbox["LISTEN_ADDR"], format!("127.0.0.1:{SANDBOX_PORT}"));
    assert_eq!(
        ingress["SANDBOX_URL"],
        format!("http://127.0.0.1:{SANDBOX_PORT}")
    );
}

#[test]
fn cloud_run_starts_the_ingress_after_the_sandbox_passes_its_startup_probe() {
    let service = cloud_run::service();
    let dependencies = cloud_run::annotation(&service, "run.googleapis.com/container-dependencies")
        .expect("the container-dependencies annotation is set");
    let dependencies: serde_json::Value =
        serde_json::from_str(&dependencies).expect("container-dependencies is JSON");
    assert_eq!(dependencies, serde_json::json!({ "ingress": ["sandbox"] }));

    let sandbox = cloud_run::container(&service, "sandbox");
    assert!(
        !sandbox["startupProbe"].is_badvalue(),
        "without a startup probe on the sandbox the dependency orders nothing"
    );
}

#[test]
fn cloud_run_probes_ask_each_container_for_its_health_route_on_its_port() {
    let service = cloud_run::service();
    let sandbox = cloud_run::container(&service, "sandbox");
    let ingress = cloud_run::container(&service, "ingress");
    let sandbox_port = port_of(&cloud_run::env(sandbox)["LISTEN_ADDR"]);
    let ingress_port = number(&ingress["ports"][0]["containerPort"], "containerPort");

    for (container, port) in [(sandbox, u64::from(sandbox_port)), (ingress, ingress_port)] {
        let name = container["name"].as_str().unwrap_or_default();
        for probe in ["startupProbe", "livenessProbe"] {
            let http_get = &container[probe]["httpGet"];
            assert_eq!(
                http_get["path"].as_str(),
                Some(HEALTH_ROUTE),
                "{name} {probe} path"
            );
            assert_eq!(
                number(&http_get["port"], "probe port"),
                port,
                "{name} {probe} port"
            );
        }
    }
}

#[test]
fn cloud_run_sends_an_instance_one_waiting_request_per_worker_at_most() {
    let service = cloud_run::service();
    let sandbox = cloud_run::env(cloud_run::container(&service, "sandbox"));
    assert!(
        sandbox.contains_key("MAX_CONCURRENCY"),
        "MAX_CONCURRENCY is set explicitly: its default follows the CPU count"
    );
    let config = sandbox::config::Config::from_lookup(|name| sandbox.get(name).cloned())
        .expect("the sandbox accepts cloudrun.yaml's environment");
    let workers = config.max_concurrency as u64;
    let container_concurrency = number(
        &cloud_run::revision_spec(&service)["containerConcurrency"],
        "containerConcurrency",
    );
    // More than the workers, so requests of different tenants wait in the sandbox and take
    // turns there; at most one waiting per worker, so every request Cloud Run sends starts
    // within one execution: the sandbox does not refuse what Cloud Run would rather hold at its
    // front end while it starts instances.
    assert!(
        workers < container_concurrency && container_concurrency <= 2 * workers,
        "containerConcurrency {container_concurrency} outside ({workers}, {}]",
        2 * workers
    );
    // Nothing in the sandbox's own bounds refuses what Cloud Run may send.
    assert!(config.queue_capacity as u64 >= container_concurrency);
}

#[test]
fn cloud_run_request_timeout_outlasts_the_longest_script_and_the_proxy_wait() {
    let service = cloud_run::service();
    let timeout_ms = number(
        &cloud_run::revision_spec(&service)["timeoutSeconds"],
        "timeoutSeconds",
    ) * 1000;
    let sandbox = cloud_run::env(cloud_run::container(&service, "sandbox"));
    let ingress = cloud_run::env(cloud_run::container(&service, "ingress"));
    let max_script_ms = sandbox
        .get("MAX_TIMEOUT_MS")
        .map_or(DEFAULT_MAX_TIMEOUT_MS, |ms| {
            ms.parse().expect("MAX_TIMEOUT_MS is a number")
        });
    let queue_ms = sandbox
        .get("QUEUE_TIMEOUT_MS")
        .map_or(DEFAULT_QUEUE_TIMEOUT_MS, |ms| {
            ms.parse().expect("QUEUE_TIMEOUT_MS is a number")
        });
    let upstream_ms = ingress
        .get("UPSTREAM_TIMEOUT_MS")
        .map_or(DEFAULT_UPSTREAM_TIMEOUT_MS, |ms| {
            ms.parse().expect("UPSTREAM_TIMEOUT_MS is a number")
        });

    // A request may wait QUEUE_TIMEOUT_MS for a worker, then run for MAX_TIMEOUT_MS.
    assert!(
        timeout_ms > queue_ms + max_script_ms,
        "{timeout_ms} ms <= a {queue_ms} ms queue wait + a {max_script_ms} ms script"
    );
    assert!(
        timeout_ms > upstream_ms,
        "{timeout_ms} ms <= UPSTREAM_TIMEOUT_MS {upstream_ms} ms"
    );
}

#[test]
fn cloud_run_containers_have_limits_that_fit_the_sandbox_scripts() {
    let service = cloud_run::service();
    for container in cloud_run::containers(&service) {
        let limits = &container["resources"]["limits"];
        assert!(
            scalar(&limits["cpu"]).is_some(),
            "cpu limit on {container:?}"
        );
        assert!(
            scalar(&limits["memory"]).is_some(),
            "memory limit on {container:?}"
        );
    }
    let sandbox = cloud_run::container(&service, "sandbox");
    let memory = scalar(&sandbox["resources"]["limits"]["memory"]).unwrap_or_default();
    assert_sandbox_memory_fits(
        &cloud_run::env(sandbox),
        mebibytes(&memory),
        cloud_run::FILE,
    );
}

fn assert_sandbox_memory_fits(env: &BTreeMap<String, String>, limit_mib: u64, file: &str) {
    let setting = |name: &str, default: u64| -> u64 {
        env.get(name).map_or(default, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{file}: {name} is a number"))
        })
    };
    assert!(
        env.contains_key("MAX_CONCURRENCY"),
        "{file}: MAX_CONCURRENCY is set explicitly"
    );
    let concurrency = setting("MAX_CONCURRENCY", 0);
    // One worker process per execution, each with at most its script's heap; a worker killed
    // at its deadline frees its memory as its replacement starts, so for a moment both exist.
    let per_script_mib = setting("MAX_MEMORY_LIMIT_MB", DEFAULT_MAX_MEMORY_LIMIT_MB);
    let needed = concurrency * (per_script_mib + 2 * WORKER_OVERHEAD_MIB) + SANDBOX_OVERHEAD_MIB;
    assert!(
        limit_mib >= needed,
        "{file}: sandbox memory {limit_mib} MiB < {concurrency} workers x ({per_script_mib} MiB \
         + 2 x {WORKER_OVERHEAD_MIB} MiB) + {SANDBOX_OVERHEAD_MIB} MiB"
    );
}

#[test]
fn cloud_run_runs_on_gen1_with_a_scale_cap_and_its_own_service_account() {
    let service = cloud_run::service();
    assert_eq!(
        cloud_run::annotation(&service, "run.googleapis.com/execution-environment").as_deref(),
        Some("gen1"),
        "gen1's gVisor is the extra wall around untrusted code"
    );
    let max_scale: u64 = cloud_run::annotation(&service, "autoscaling.knative.dev/maxScale")
        .expect("maxScale is set")
        .parse()
        .expect("maxScale is a number");
    assert!(max_scale >= 1);

    let account = scalar(&cloud_run::revision_spec(&service)["serviceAccountName"])
        .expect("a dedicated service account is named");
    assert_eq!(
        placeholders(&account).len(),
        1,
        "filled at deploy time: {account}"
    );
}

#[test]
fn cloud_run_ingress_trusts_one_proxy_hop_and_both_containers_log_json() {
    let service = cloud_run::service();
    let ingress = cloud_run::env(cloud_run::container(&service, "ingress"));
    assert_eq!(ingress["TRUSTED_PROXY_HOPS"], "1");
    for name in ["ingress", "sandbox"] {
        let env = cloud_run::env(cloud_run::container(&service, name));
        assert_eq!(
            env.get("LOG_FORMAT").map(String::as_str),
            Some("json"),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------- cloudbuild.yaml

/// The render step's envsubst variable list and the values its `env` gives them.
fn render_step_variables(pipeline: &Yaml) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let render = cloud_build::step(pipeline, "render");
    let script = render["script"]
        .as_str()
        .expect("the render step is a script");
    let envsubst_line = script
        .lines()
        .find(|line| line.trim_start().starts_with("envsubst"))
        .expect("the render step runs envsubst");
    let list = envsubst_line
        .split('\'')
        .nth(1)
        .expect("envsubst is given an explicit, quoted variable list");
    (placeholders(list), cloud_build::env(render))
}

#[test]
fn every_cloud_run_placeholder_is_in_the_envsubst_list_cloud_build_provides() {
    let pipeline = cloud_build::pipeline();
    let (list, env) = render_step_variables(&pipeline);
    let in_file = placeholders(&deploy::read(cloud_run::FILE));
    assert!(!in_file.is_empty());

    let missing: Vec<&String> = in_file.difference(&list).collect();
    assert!(missing.is_empty(), "not in the envsubst list: {missing:?}");
    let unset: Vec<&String> = list
        .iter()
        .filter(|name| !env.contains_key(*name))
        .collect();
    assert!(
        unset.is_empty(),
        "in the envsubst list but not in the render step's env: {unset:?}"
    );
}

/// Cloud Build's built-in substitutions, with made-up values.
fn builtins() -> BTreeMap<String, String> {
    [
        ("PROJECT_ID", "demo-project"),
        ("BUILD_ID", "0b5ef2a4-1c9d-4d47-9b1e-2f1d8c6a7e30"),
        ("SHORT_SHA", ""),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

#[test]
fn rendered_cloud_run_service_deploys_the_images_cloud_build_pushes() {
    let pipeline = cloud_build::pipeline();
    let defaults = cloud_build::substitutions(&pipeline);
    let (_, env) = render_step_variables(&pipeline);
    let values: BTreeMap<String, String> = env
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                cloud_build::apply_substitutions(value, &defaults, &builtins()),
            )
        })
        .collect();

    let rendered = deploy::substitute(&deploy::read(cloud_run::FILE), &values);
    assert!(
        placeholders(&rendered).is_empty(),
        "left unfilled: {:?}",
        placeholders(&rendered)
    );
    let service = deploy::parse_yaml(&rendered).expect("the rendered service is YAML");
    assert_eq!(
        scalar(&service["metadata"]["name"]),
        Some(values["SERVICE"].clone())
    );

    for name in ["ingress", "sandbox"] {
        let deployed = scalar(&cloud_run::container(&service, name)["image"]).unwrap_or_default();
        let push = cloud_build::step(&pipeline, &format!("push-{name}"));
        let pushed: Vec<String> = strings(&push["args"])
            .iter()
            .map(|arg| cloud_build::apply_substitutions(arg, &defaults, &builtins()))
            .collect();
        assert_eq!(pushed, ["push".to_owned(), deployed.clone()], "{name}");
        assert!(
            deployed.starts_with(&format!(
                "{}-docker.pkg.dev/demo-project/",
                defaults["_REGION"]
            )),
            "{name} image {deployed} is in Artifact Registry"
        );
        assert!(
            !deployed.ends_with(':'),
            "{name} image has a tag even without $SHORT_SHA"
        );
    }
}

#[test]
fn cloud_build_builds_both_images_at_once_for_linux_amd64() {
    let pipeline = cloud_build::pipeline();
    for target in ["ingress", "sandbox"] {
        let build = cloud_build::steps(&pipeline)
            .iter()
            .find(|step| {
                let args = strings(&step["args"]);
                args.first().map(String::as_str) == Some("build")
                    && args.contains(&format!("--target={target}"))
            })
            .unwrap_or_else(|| panic!("no docker build step for --target={target}"));
        assert!(strings(&build["args"]).contains(&"--platform=linux/amd64".to_owned()));
        assert_eq!(
            cloud_build::wait_for(build),
            ["-"],
            "{target} builds from the start"
        );
    }
}

#[test]
fn cloud_build_deploys_once_after_the_pushes_then_grants_public_access() {
    let pipeline = cloud_build::pipeline();
    let deploys: Vec<&Yaml> = cloud_build::steps(&pipeline)
        .iter()
        .filter(|step| {
            strings(&step["args"]).starts_with(&["run".into(), "services".into(), "replace".into()])
        })
        .collect();
    assert_eq!(deploys.len(), 1, "one `gcloud run services replace`");
    let deploy = deploys[0];
    let deploy_id = scalar(&deploy["id"]).expect("the deploy step has an id");

    let waits: BTreeSet<String> = cloud_build::wait_for(deploy).into_iter().collect();
    for needed in ["push-ingress", "push-sandbox", "render"] {
        assert!(waits.contains(needed), "the deploy waits for {needed}");
    }
    let render_script = cloud_build::step(&pipeline, "render")["script"]
        .as_str()
        .unwrap_or_default();
    let deploy_args = strings(&deploy["args"]);
    let deployed_file = &deploy_args[3];
    assert!(
        render_script.contains(&format!("> {deployed_file}")),
        "the deploy applies the file the render step writes ({deployed_file})"
    );

    let grant = cloud_build::steps(&pipeline)
        .iter()
        .find(|step| strings(&step["args"]).contains(&"add-iam-policy-binding".to_owned()))
        .expect("a step grants public access");
    let args = strings(&grant["args"]);
    assert!(args.contains(&"--member=allUsers".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--role=roles/run.invoker".to_owned()),
        "{args:?}"
    );
    assert_eq!(cloud_build::wait_for(grant), [deploy_id]);
}

#[test]
fn cloud_build_defines_every_substitution_it_uses_and_uses_every_one_it_defines() {
    let pipeline = cloud_build::pipeline();
    let defaults = cloud_build::substitutions(&pipeline);
    for needed in ["_REGION", "_REPO", "_SERVICE", "_TAG"] {
        let value = defaults
            .get(needed)
            .unwrap_or_else(|| panic!("{needed} has a default"));
        assert!(!value.is_empty(), "{needed} default is empty");
    }
    assert!(
        !defaults["_TAG"].contains("SHORT_SHA"),
        "$SHORT_SHA is empty under `gcloud builds submit`"
    );

    // Cloud Build rejects a build that uses an undefined user substitution, or defines one it
    // does not use.
    let used = cloud_build::substitutions_used(&pipeline);
    let defined: BTreeSet<String> = defaults.keys().cloned().collect();
    assert_eq!(used, defined);
}

// ---------------------------------------------------------------- docker-compose.yml

/// Whether the service `name` starts on a plain `docker compose up` (it is under no profile).
fn starts_by_default(compose: &Yaml, name: &str) -> bool {
    items(&compose::service(compose, name)["profiles"]).is_empty()
}

#[test]
fn compose_publishes_only_the_ingress_port() {
    let compose = compose::file();
    let publishing: Vec<String> = deploy::keys(&compose["services"])
        .into_iter()
        .filter(|name| starts_by_default(&compose, name))
        .filter(|name| !items(&compose::service(&compose, name)["ports"]).is_empty())
        .collect();
    assert_eq!(publishing, ["ingress"]);

    let ports = strings(&compose::service(&compose, "ingress")["ports"]);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(
        ports[0].ends_with(&format!(":{INGRESS_PORT}:{INGRESS_PORT}")),
        "{ports:?}"
    );
    let ingress_env = compose::env(compose::service(&compose, "ingress"));
    assert_eq!(port_of(&ingress_env["LISTEN_ADDR"]), INGRESS_PORT);
}

#[test]
fn compose_starts_the_trace_collector_and_viewer_only_under_the_tracing_profile() {
    let compose = compose::file();
    for name in ["otel-collector", "jaeger"] {
        let service = compose::service(&compose, name);
        assert_eq!(strings(&service["profiles"]), ["tracing"], "{name}");
        for port in strings(&service["ports"]) {
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port}");
        }
    }
    let collector_networks = compose::networks(compose::service(&compose, "otel-collector"));
    for name in ["sandbox", "ingress"] {
        let service = compose::service(&compose, name);
        assert!(starts_by_default(&compose, name), "{name}");
        // Empty (export off) unless set when the profile is started.
        assert_eq!(
            compose::env(service)["OTEL_EXPORTER_OTLP_ENDPOINT"],
            "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
            "{name}"
        );
        let networks = compose::networks(service);
        assert!(
            networks
                .iter()
                .any(|network| collector_networks.contains(network)),
            "{name} reaches the collector"
        );
    }
}

#[test]
fn compose_keeps_the_sandbox_on_an_internal_network_only() {
    let compose = compose::file();
    let sandbox_networks = compose::networks(compose::service(&compose, "sandbox"));
    assert_eq!(sandbox_networks.len(), 1, "{sandbox_networks:?}");
    let private = &sandbox_networks[0];
    assert_eq!(
        compose["networks"][private.as_str()]["internal"].as_bool(),
        Some(true)
    );

    let ingress_networks = compose::networks(compose::service(&compose, "ingress"));
    assert!(
        ingress_networks.contains(private),
        "the ingress reaches the sandbox"
    );
    assert!(
        ingress_networks
            .iter()
            .any(
                |network| compose["networks"][network.as_str()]["internal"].as_bool() != Some(true)
            ),
        "the ingress is also on a network with a way out to publish its port: {ingress_networks:?}"
    );
}

#[test]
fn compose_ingress_reaches_the_sandbox_by_name_once_it_is_healthy() {
    let compose = compose::file();
    let sandbox = compose::service(&compose, "sandbox");
    let ingress = compose::service(&compose, "ingress");

    let sandbox_port = port_of(&compose::env(sandbox)["LISTEN_ADDR"]);
    assert_eq!(sandbox_port, SANDBOX_PORT);
    assert_eq!(
        compose::env(ingress)["SANDBOX_URL"],
        format!("http://sandbox:{sandbox_port}")
    );
    assert_eq!(
        ingress["depends_on"]["sandbox"]["condition"].as_str(),
        Some("service_healthy")
    );

    let entrypoints = dockerfile_entrypoints();
    for (name, service) in [("sandbox", sandbox), ("ingress", ingress)] {
        let test = strings(&service["healthcheck"]["test"]);
        assert_eq!(
            test,
            [
                "CMD".to_owned(),
                entrypoints[name].clone(),
                "healthcheck".to_owned()
            ],
            "{name}"
        );
    }
}

#[test]
fn compose_services_run_read_only_unprivileged_and_limited() {
    let compose = compose::file();
    for name in ["sandbox", "ingress"] {
        let service = compose::service(&compose, name);
        assert_eq!(
            service["read_only"].as_bool(),
            Some(true),
            "{name} read_only"
        );
        assert_eq!(strings(&service["cap_drop"]), ["ALL"], "{name} cap_drop");
        assert!(
            strings(&service["security_opt"]).contains(&"no-new-privileges:true".to_owned()),
            "{name} no-new-privileges"
        );
        let user = scalar(&service["user"]).unwrap_or_else(|| panic!("{name} names its user"));
        assert_non_root(&user, name);
        assert!(scalar(&service["mem_limit"]).is_some(), "{name} mem_limit");
        assert!(
            number(&service["pids_limit"], "pids_limit") > 0,
            "{name} pids_limit"
        );
        assert_eq!(
            scalar(&service["stop_grace_period"]).as_deref(),
            Some("10s"),
            "{name}"
        );
    }
    let sandbox = compose::service(&compose, "sandbox");
    let memory = scalar(&sandbox["mem_limit"]).unwrap_or_default();
    assert_sandbox_memory_fits(&compose::env(sandbox), mebibytes(&memory), compose::FILE);
}

#[test]
fn compose_sandbox_pids_limit_leaves_room_for_its_workers_and_their_replacements() {
    let compose = compose::file();
    let sandbox = compose::service(&compose, "sandbox");
    let env = compose::env(sandbox);
    let workers: u64 = env["MAX_CONCURRENCY"].parse().unwrap();
    // Every worker, and as many replacements starting while killed ones are reaped.
    let needed = 2 * workers + SANDBOX_OTHER_PIDS;
    let limit = number(&sandbox["pids_limit"], "pids_limit");
    assert!(limit >= needed, "pids_limit {limit} < {needed}");
}

fn assert_non_root(user: &str, what: &str) {
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !matches!(name, "" | "0" | "root"),
        "{what} runs as root ({user:?})"
    );
}

// ---------------------------------------------------------------- Dockerfile

/// The runtime stage of each binary, by name.
fn runtime_stages() -> BTreeMap<String, DockerStage> {
    deploy::dockerfile_stages()
        .into_iter()
        .filter(|stage| !stage.all("ENTRYPOINT").is_empty())
        .map(|stage| {
            (
                stage
                    .name
                    .clone()
                    .expect("runtime stages are named for --target"),
                stage,
            )
        })
        .collect()
}

/// The exec-form ENTRYPOINT of each runtime stage: the binary's path in the image.
fn dockerfile_entrypoints() -> BTreeMap<String, String> {
    runtime_stages()
        .into_iter()
        .map(|(name, stage)| {
            let entrypoint = exec_form(stage.last("ENTRYPOINT").unwrap_or_default(), "ENTRYPOINT");
            (name, entrypoint[0].clone())
        })
        .collect()
}

/// Parses an exec-form (JSON array) instruction argument; a shell-form one fails the test,
/// since the distroless runtime has no shell.
fn exec_form(arguments: &str, what: &str) -> Vec<String> {
    let words: Vec<String> = serde_json::from_str(arguments)
        .unwrap_or_else(|_| panic!("{what} is not in exec form (a JSON array): {arguments}"));
    assert!(!words.is_empty(), "{what} is empty");
    words
}

#[test]
fn dockerfile_builds_every_workspace_binary_as_its_own_target() {
    let binaries = deploy::workspace_binaries();
    assert_eq!(binaries.len(), 2, "the workspace's binaries: {binaries:?}");
    let stages = deploy::dockerfile_stages();
    let targets: BTreeSet<String> = runtime_stages().into_keys().collect();
    assert_eq!(
        targets,
        binaries.iter().cloned().collect(),
        "one --target per binary"
    );

    for binary in &binaries {
        let command = [
            "cargo",
            "build",
            "--release",
            "--locked",
            "-p",
            binary.as_str(),
        ];
        let builds_it = stages.iter().flat_map(|stage| stage.all("RUN")).any(|run| {
            let words: Vec<&str> = run.split_whitespace().collect();
            words.windows(command.len()).any(|window| window == command)
        });
        assert!(builds_it, "no `{}` in the Dockerfile", command.join(" "));
    }
}

#[test]
fn dockerfile_runtime_images_run_the_binary_as_non_root_with_a_shell_free_health_check() {
    for (name, stage) in runtime_stages() {
        assert!(
            stage.base.starts_with("gcr.io/distroless/cc-debian12")
                && stage.base.ends_with(":nonroot"),
            "{name} runs on distroless cc (nonroot): {}",
            stage.base
        );
        assert_non_root(stage.last("USER").unwrap_or_default(), &name);

        let entrypoint = exec_form(stage.last("ENTRYPOINT").unwrap_or_default(), "ENTRYPOINT");
        assert_eq!(
            entrypoint,
            [format!("/usr/local/bin/{name}")],
            "{name} ENTRYPOINT"
        );
        assert!(
            stage
                .all("COPY")
                .iter()
                .any(|copy| copy.ends_with(&entrypoint[0])),
            "{name}: the ENTRYPOINT binary is copied into the image"
        );

        let healthcheck = stage
            .last("HEALTHCHECK")
            .unwrap_or_else(|| panic!("{name} HEALTHCHECK"));
        let command = healthcheck
            .split_once("CMD")
            .map(|(_, command)| command.trim())
            .unwrap_or_default();
        assert_eq!(
            exec_form(command, "HEALTHCHECK CMD"),
            [entrypoint[0].clone(), "healthcheck".to_owned()],
            "{name} HEALTHCHECK"
        );
    }
}

#[test]
fn dockerfile_builder_and_runtime_share_a_debian_release() {
    let stages = deploy::dockerfile_stages();
    let builders: Vec<&DockerStage> = stages
        .iter()
        .filter(|stage| stage.base.starts_with("rust:"))
        .collect();
    assert!(!builders.is_empty(), "a rust image builds the binaries");
    for builder in builders {
        assert!(
            builder.base.ends_with("-bookworm"),
            "builder {} is Debian 12",
            builder.base
        );
    }
    for (name, stage) in runtime_stages() {
        assert!(
            stage.base.contains("debian12"),
            "{name} runtime {} is Debian 12",
            stage.base
        );
    }
}

#[test]
fn dockerignore_keeps_build_output_out_and_the_embedded_files_in() {
    let ignored: Vec<String> = deploy::read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_end_matches('/').to_owned())
        .collect();
    for needed in ["target", ".git", "**/node_modules", "tests/artifacts"] {
        assert!(
            ignored.iter().any(|line| line == needed),
            "{needed} is not ignored: {ignored:?}"
        );
    }
    let embedded = deploy::embedded_folders();
    assert!(
        !embedded.is_empty(),
        "the binaries embed the page and the examples"
    );
    let needed = embedded.iter().map(String::as_str).chain([
        "Cargo.toml",
        "Cargo.lock",
        "sandbox",
        "ingress",
        "tests",
    ]);
    for path in needed {
        assert!(
            !ignored.iter().any(|line| path.starts_with(line.as_str())),
            "{path} is needed by the build but ignored"
        );
    }
}
