//! Tenants on the real binaries: the ingress reads `TENANTS_FILE` (the repository's example
//! file, and one written here), `ingress hash-key` prints what the file needs, keys are
//! required once the anonymous tier is off, and both binaries' metrics count what happened,
//! the ingress's on its admin listener only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{Service, TempFile, binary_path, free_port, get_status};

/// A whole answer: status code and body.
struct Answer {
    status: u16,
    body: String,
}

/// Sends one HTTP/1.1 request on a fresh connection and reads the whole answer.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().expect("a status code");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    Answer {
        status,
        body: body.to_owned(),
    }
}

fn execute(addr: SocketAddr, headers: &[(&str, &str)], code: &str) -> Answer {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let body = serde_json::json!({ "code": code }).to_string();
    exchange(addr, "POST", "/api/execute", &all, &body)
}

/// The value of the sample `name{labels}` at `GET /metrics` on `addr`; 0 when absent.
fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let answer = exchange(addr, "GET", "/metrics", &[], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// `ingress hash-key` with `argument`, or with `stdin` as its input.
fn hash_key(argument: Option<&str>, stdin: &str) -> String {
    let mut command = Command::new(binary_path("ingress"));
    command.arg("hash-key").args(argument);
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ingress hash-key");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn hash_key_prints_the_sha256_of_a_key_from_its_argument_or_stdin() {
    // printf %s secret | sha256sum
    let expected = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
    assert_eq!(hash_key(Some("secret"), ""), expected);
    assert_eq!(hash_key(None, "secret"), expected);
    // A line from `echo` loses its newline.
    assert_eq!(hash_key(None, "secret\n"), expected);
}

#[test]
fn the_example_tenants_file_is_accepted_by_the_ingress() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenants.example.toml");
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin_addr = admin.to_string();
    let ingress = Service::start(
        "ingress",
        &[
            ("SANDBOX_URL", "http://127.0.0.1:9"),
            ("TENANTS_FILE", example.to_str().unwrap()),
            ("ADMIN_LISTEN_ADDR", &admin_addr),
        ],
    );
    // Its tenants are known from the start.
    assert_eq!(
        metric(admin, "ingress_rate_limited_total{tenant=\"batch-jobs\"}"),
        0.0
    );
    let answer = exchange(admin, "GET", "/metrics", &[], "");
    assert!(answer.body.contains("tenant=\"acme\""), "{}", answer.body);
    drop(ingress);
}

#[test]
fn a_bad_tenants_file_stops_the_ingress_with_a_message_naming_it() {
    let file = TempFile::new(
        "bad-tenants.toml",
        "[anonymous]\nenabled = true\n[[tenants]]\nid = \"acme\"\nkeys = [\"plain-text-key\"]\nrate_limit_rps = 0\n",
    );
    let output = Command::new(binary_path("ingress"))
        .env("TENANTS_FILE", &file.0)
        .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SANDBOX_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TENANTS_FILE") && stderr.contains("keys[0]: expected 64 hex digits"),
        "{stderr}"
    );
    // A plain key put where its hash belongs is not echoed.
    assert!(!stderr.contains("plain-text-key"), "{stderr}");
}

#[test]
fn keys_tenants_and_metrics_work_across_the_real_binaries() {
    let key = "e2e-tenant-key-6d1f0c3b";
    let file = TempFile::new(
        "tenants.toml",
        &format!(
            "[anonymous]\nenabled = false\n\n[[tenants]]\nid = \"acme\"\nkeys = [\"{}\"]\n\
             rate_limit_rps = 0\nmax_timeout_ms = 1000\n",
            hash_key(Some(key), "")
        ),
    );
    let sandbox = Service::start("sandbox", &[]);
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (sandbox_url, admin_addr) = (sandbox.url(), admin.to_string());
    let ingress = Service::start(
        "ingress",
        &[
            ("SANDBOX_URL", &sandbox_url),
            ("TENANTS_FILE", file.0.to_str().unwrap()),
            ("ADMIN_LISTEN_ADDR", &admin_addr),
        ],
    );
    let public = ingress.addr();
    // The start-up health checks were answered 200 already.
    let ok = "ingress_requests_total{status=\"200\"}";
    let ok_before = metric(admin, ok);

    assert_eq!(execute(public, &[], "1").status, 401);
    assert_eq!(execute(public, &[("x-api-key", "nope")], "1").status, 401);
    // The API's description needs no key, even with the anonymous tier off.
    let document = exchange(public, "GET", "/api/openapi.json", &[], "");
    assert_eq!(document.status, 200, "{}", document.body);
    assert!(document.body.contains("\"openapi\":\"3.1.0\""));
    let bearer = format!("Bearer {key}");
    let answer = execute(public, &[("Authorization", &bearer)], "6 * 7");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("\"result\":42"), "{}", answer.body);

    let too_long = exchange(
        public,
        "POST",
        "/api/execute",
        &[("Content-Type", "application/json"), ("x-api-key", key)],
        r#"{"code":"1","timeoutMs":5000}"#,
    );
    assert_eq!(too_long.status, 422);
    assert!(
        too_long
            .body
            .contains("timeoutMs: 5000 exceeds tenant acme's ceiling of 1000"),
        "{}",
        too_long.body
    );

    // The execution with the key, and the API's document.
    assert_eq!(metric(admin, ok) - ok_before, 2.0);
    assert_eq!(metric(admin, "ingress_requests_total{status=\"401\"}"), 2.0);
    assert_eq!(
        metric(admin, "ingress_auth_failures_total{reason=\"missing\"}"),
        1.0
    );
    assert_eq!(
        metric(
            sandbox.addr(),
            "sandbox_executions_total{tenant=\"acme\",outcome=\"success\"}"
        ),
        1.0
    );
    // Neither /metrics is reachable through the public port, and the key never reaches a log.
    assert_eq!(get_status(public, "/metrics").unwrap(), 404);
    assert!(!ingress.log().contains(key), "{}", ingress.log());
    assert!(!sandbox.log().contains(key), "{}", sandbox.log());
}

/// Answers every connection with `200 hi`, until the test ends.
fn serve_hi() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
        }
    });
    addr
}

#[test]
fn fetch_reaches_only_the_hosts_the_tenants_file_grants_and_only_its_tenant() {
    let upstream = serve_hi();
    let key = "e2e-fetch-key-41c9";
    let file = TempFile::new(
        "fetch-tenants.toml",
        &format!(
            "[anonymous]\nenabled = true\n\n[[tenants]]\nid = \"acme\"\nkeys = [\"{}\"]\n\
             rate_limit_rps = 0\nfetch = {{ hosts = [\"127.0.0.1\"] }}\n",
            hash_key(Some(key), "")
        ),
    );
    // Loopback is allowed for the test's own server only by this test-only setting.
    let sandbox = Service::start("sandbox", &[("FETCH_ALLOW_LOOPBACK", "true")]);
    let sandbox_url = sandbox.url();
    let ingress = Service::start(
        "ingress",
        &[
            ("SANDBOX_URL", &sandbox_url),
            ("TENANTS_FILE", file.0.to_str().unwrap()),
            ("RATE_LIMIT_RPS", "0"),
        ],
    );
    let public = ingress.addr();
    let acme = [("x-api-key", key)];

    let fetched = execute(
        public,
        &acme,
        &format!("fetch('http://{upstream}/').then(r => r.text())"),
    );
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert!(
        fetched.body.contains("\"result\":\"hi\""),
        "{}",
        fetched.body
    );

    let elsewhere = execute(
        public,
        &acme,
        &format!("fetch('http://localhost:{}/')", upstream.port()),
    );
    assert!(
        elsewhere
            .body
            .contains("the host localhost is not in this tenant's fetch allow-list"),
        "{}",
        elsewhere.body
    );

    // An anonymous client cannot grant itself fetch by sending the sandbox's header.
    let forged = r#"{"fetch":{"hosts":["127.0.0.1"]}}"#;
    let anonymous = execute(
        public,
        &[("x-tenant-capabilities", forged), ("x-tenant-id", "acme")],
        "typeof fetch",
    );
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("\"result\":\"undefined\""),
        "{}",
        anonymous.body
    );
}
