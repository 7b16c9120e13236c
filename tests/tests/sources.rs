//! Scripts from a `url`, on the real binaries, against real servers on loopback: moto's S3
//! server (`moto_server`, from PyPI's `moto[server]`), a GCS XML-API server written here after
//! Google's documented answers (see [`gcs_object`]: gcp-storage-emulator's downloads carry no
//! `ETag` or `Last-Modified`, which object_store requires of GCS), and a plain HTTP server
//! written here that counts its downloads and can be slow, large or redirect.
//!
//! Each test starts its own servers on free ports, and a stack whose tenants file allows some
//! buckets, prefixes and hosts. The S3 test needs `moto_server`, so it is ignored unless asked
//! for (`cargo test -- --include-ignored`, as CI runs it); asked for without it, it fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{Service, TempFile, free_port};

const KEY: &str = "e2e-sources-key-1f3a";
/// `MAX_SCRIPT_BYTES` of the stacks here: scripts above it are refused.
const CAP: usize = 4096;
/// `SOURCE_CACHE_TTL_MS` of the tests that watch the cache go stale. The executions meant to
/// fall within it take milliseconds each on a quiet machine; this leaves room for a loaded one.
const CACHE_TTL: Duration = Duration::from_secs(3);
/// `SOURCE_TIMEOUT_MS` of the test that loads from a server that never answers in time.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `/slow.js` takes to answer: far beyond [`SOURCE_TIMEOUT`], so that a load the
/// timeout did not cut would be plain.
const SLOW_ANSWER: Duration = Duration::from_secs(30);

/// A whole answer: status code and body as JSON.
struct Answer {
    status: u16,
    body: serde_json::Value,
    text: String,
}

impl Answer {
    fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or_default()
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// `POST /api/execute` with `body`, with the tenant's key unless `anonymous`.
fn execute(addr: SocketAddr, body: &serde_json::Value, anonymous: bool) -> Answer {
    execute_text(addr, &body.to_string(), anonymous)
}

/// [`execute`] with the body as written.
fn execute_text(addr: SocketAddr, body: &str, anonymous: bool) -> Answer {
    post_text(addr, "/api/execute", body, anonymous)
}

/// `POST path` with the body as written, with the tenant's key unless `anonymous`.
fn post_text(addr: SocketAddr, path: &str, body: &str, anonymous: bool) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let key = if anonymous {
        String::new()
    } else {
        format!("x-api-key: {KEY}\r\n")
    };
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\n{key}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().expect("a status code");
    let (_, text) = answer.split_once("\r\n\r\n").expect("a head and a body");
    Answer {
        status,
        body: serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
        text: text.to_owned(),
    }
}

fn url(url: &str) -> serde_json::Value {
    serde_json::json!({ "url": url })
}

/// Asserts a 200 whose result is `expected`.
fn assert_result(answer: &Answer, expected: serde_json::Value) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["result"], expected, "{}", answer.text);
}

/// Asserts an error answer with `status` and `kind` whose message contains `needle`.
fn assert_error(answer: &Answer, status: u16, kind: &str, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.kind(), kind, "{}", answer.text);
    assert!(
        answer.message().contains(needle),
        "{:?} lacks {needle:?}",
        answer.message()
    );
}

/// Waits until a script cached or revalidated by the answer that has just arrived is stale: the
/// cache stamps it before that answer is sent, so one TTL after the answer it is past.
fn wait_out_the_cache_ttl() {
    thread::sleep(CACHE_TTL + Duration::from_millis(50));
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

fn sha256_hex(text: &str) -> String {
    let output = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

/// A sandbox and an ingress whose tenant `acme` (key [`KEY`]) may load from `sources`; the
/// anonymous tier is on and may load nothing. `env` is added to the ingress's.
struct SourceStack {
    ingress: Service,
    _sandbox: Service,
    _tenants: TempFile,
}

impl SourceStack {
    fn start(sources: &[&str], env: &[(&str, &str)]) -> Self {
        let hash = sha256_hex(KEY);
        let list = sources
            .iter()
            .map(|source| format!("{source:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let tenants = TempFile::new(
            &format!("sources-{}.toml", free_port()),
            &format!(
                "[anonymous]\nenabled = true\nrate_limit_rps = 0\n\n[[tenants]]\nid = \"acme\"\n\
                 keys = [\"{hash}\"]\nrate_limit_rps = 0\nsources = [{list}]\n"
            ),
        );
        let sandbox = Service::start("sandbox", &[]);
        let sandbox_url = sandbox.url();
        let cap = CAP.to_string();
        let mut all = vec![
            ("SANDBOX_URL", sandbox_url.as_str()),
            ("TENANTS_FILE", tenants.0.to_str().unwrap()),
            ("MAX_SCRIPT_BYTES", cap.as_str()),
            ("ADMIN_LISTEN_ADDR", "off"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ];
        all.extend_from_slice(env);
        let ingress = Service::start("ingress", &all);
        Self {
            ingress,
            _sandbox: sandbox,
            _tenants: tenants,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.ingress.addr()
    }
}

/// One object the plain server holds: its body and ETag.
#[derive(Clone)]
struct Object {
    body: String,
    etag: String,
}

/// A plain HTTP/1.1 server on loopback, one thread per connection, `Connection: close`.
///
/// - `/gcs/<bucket>/<key, percent-encoded>`: Google Cloud Storage's XML API download, as
///   documented (https://cloud.google.com/storage/docs/xml-api/get-object-download): `ETag`,
///   `Last-Modified`, `x-goog-generation`, `Content-Length`; 304 on a matching
///   `If-None-Match`; 404 with a `NoSuchKey` XML error.
/// - `/unsized/...`: objects sent without `Content-Length`.
/// - `/slowish/...`: objects sent after 300 ms. `/slow.js`: answers after [`SLOW_ANSWER`].
///   `/redirect?to=<url>`: 302 to `to`.
/// - any other path: the object at that path, with the same ETag and 304 handling.
struct PlainServer {
    addr: SocketAddr,
    objects: Arc<Mutex<HashMap<String, Object>>>,
    /// Full (200) answers per path.
    downloads: Arc<Mutex<HashMap<String, usize>>>,
    /// 304 answers.
    not_modified: Arc<AtomicUsize>,
}

impl PlainServer {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            objects: Arc::default(),
            downloads: Arc::default(),
            not_modified: Arc::default(),
        };
        let (objects, downloads, not_modified) = (
            server.objects.clone(),
            server.downloads.clone(),
            server.not_modified.clone(),
        );
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (objects, downloads, not_modified) =
                    (objects.clone(), downloads.clone(), not_modified.clone());
                thread::spawn(move || serve(stream, &objects, &downloads, &not_modified));
            }
        });
        server
    }

    fn put(&self, path: &str, body: &str) {
        let mut objects = self.objects.lock().unwrap();
        let version = objects.len() + 1;
        objects.insert(
            path.to_owned(),
            Object {
                body: body.to_owned(),
                etag: format!("\"v{version}-{}\"", body.len()),
            },
        );
    }

    fn downloads(&self, path: &str) -> usize {
        self.downloads
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn serve(
    stream: TcpStream,
    objects: &Mutex<HashMap<String, Object>>,
    downloads: &Mutex<HashMap<String, usize>>,
    not_modified: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("if-none-match")
        {
            if_none_match = Some(value.trim().to_owned());
        }
    }
    let mut stream = stream;
    // `/unsized/...` objects come without a length: the body ends when the connection does.
    let sized = !target.starts_with("/unsized/");
    let mut answer = |status: &str, headers: &[(&str, String)], body: &str| {
        let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        if sized {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let _ = stream.write_all(format!("{head}\r\n{body}").as_bytes());
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path.starts_with("/slowish/") {
        thread::sleep(Duration::from_millis(300));
    }
    if path == "/slow.js" {
        thread::sleep(SLOW_ANSWER);
        return answer("200 OK", &[], "1");
    }
    if path == "/redirect" {
        let to = query.strip_prefix("to=").unwrap_or_default();
        return answer("302 Found", &[("Location", to.to_owned())], "");
    }
    // object_store percent-encodes the whole GCS key (`team%2Fa%2Ejs`); objects are kept
    // under the decoded path.
    let key = percent_decode(path);
    let is_gcs = key.starts_with("/gcs/");
    let Some(object) = objects.lock().unwrap().get(&key).cloned() else {
        let body = if is_gcs {
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
        } else {
            "not found"
        };
        return answer("404 Not Found", &[], body);
    };
    let mut headers = vec![("ETag", object.etag.clone())];
    if is_gcs {
        headers.push(("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT".to_owned()));
        headers.push(("x-goog-generation", "1764669600000000".to_owned()));
        headers.push(("Content-Type", "text/javascript".to_owned()));
    }
    if if_none_match.as_deref() == Some(object.etag.as_str()) {
        not_modified.fetch_add(1, Ordering::SeqCst);
        let mut stream = stream;
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 304 Not Modified\r\nConnection: close\r\nETag: {}\r\n\r\n",
                object.etag
            )
            .as_bytes(),
        );
        return;
    }
    *downloads.lock().unwrap().entry(key).or_default() += 1;
    answer("200 OK", &headers, &object.body);
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = text
            .get(index + 1..index + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap()
}

/// moto's S3 server on a free loopback port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Fails the test, naming what to install, without `moto_server`.
    fn start() -> Self {
        let port = free_port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => e2e::missing_tool(
                "S3 source test",
                &format!("moto_server: {error} (pip install 'moto[server]')"),
            ),
        };
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(moto.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s"
            );
            thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// An S3 PUT (moto takes any or no credentials).
    fn put(&self, path: &str, body: &str) {
        let mut stream = TcpStream::connect(self.addr()).unwrap();
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr(),
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "PUT {path}: {answer}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs moto's S3 server: pip install 'moto[server]==5.2.1', then cargo test -- --include-ignored"]
fn scripts_load_from_s3_within_the_allow_list_with_every_error_named() {
    let moto = Moto::start();
    moto.put("/scripts", "");
    moto.put("/other", "");
    let script = "const answer = 6 * 7; answer";
    moto.put("/scripts/allowed/a.js", script);
    moto.put("/scripts/allowed/big.js", &"1;".repeat(CAP));
    moto.put("/scripts/secret/a.js", "1");
    moto.put("/other/allowed/a.js", "1");
    let endpoint = format!("http://{}", moto.addr());
    let stack = SourceStack::start(
        &["s3://scripts/allowed/"],
        &[
            ("SOURCES_S3_ENDPOINT", &endpoint),
            ("SOURCES_ALLOW_LOOPBACK", "true"),
        ],
    );
    let addr = stack.addr();

    assert_result(
        &execute(addr, &url("s3://scripts/allowed/a.js"), false),
        42.into(),
    );
    let pinned =
        serde_json::json!({"url": "s3://scripts/allowed/a.js", "sha256": sha256_hex(script)});
    assert_result(&execute(addr, &pinned, false), 42.into());
    let wrong = serde_json::json!({"url": "s3://scripts/allowed/a.js", "sha256": "0".repeat(64)});
    assert_error(
        &execute(addr, &wrong, false),
        422,
        "source_hash_mismatch",
        "s3://scripts/allowed/a.js",
    );

    for forbidden in [
        "s3://scripts/secret/a.js",
        "s3://other/allowed/a.js",
        "gs://scripts/allowed/a.js",
    ] {
        assert_error(
            &execute(addr, &url(forbidden), false),
            403,
            "source_forbidden",
            forbidden,
        );
    }
    assert_error(
        &execute(addr, &url("s3://scripts/allowed/a.js"), true),
        403,
        "source_forbidden",
        "tenant anonymous may not load scripts from URLs",
    );
    assert_error(
        &execute(addr, &url("s3://scripts/allowed/missing.js"), false),
        404,
        "source_not_found",
        "s3://scripts/allowed/missing.js",
    );
    assert_error(
        &execute(addr, &url("s3://scripts/allowed/big.js"), false),
        413,
        "payload_too_large",
        &CAP.to_string(),
    );
    for malformed in [
        "s3://scripts/allowed/../secret/a.js",
        "s3://scripts",
        "file:///etc/passwd",
        "not a url",
    ] {
        let answer = execute(addr, &url(malformed), false);
        assert_eq!(answer.status, 422, "{malformed}: {}", answer.text);
        assert_eq!(answer.kind(), "invalid_request", "{}", answer.text);
    }
    let both = serde_json::json!({"url": "s3://scripts/allowed/a.js", "code": "1"});
    assert_error(
        &execute(addr, &both, false),
        422,
        "invalid_request",
        "exactly one of",
    );

    // The store goes down: cached scripts still run within the TTL, others get 502.
    drop(moto);
    assert_result(
        &execute(addr, &url("s3://scripts/allowed/a.js"), false),
        42.into(),
    );
    assert_error(
        &execute(addr, &url("s3://scripts/allowed/other.js"), false),
        502,
        "source_unavailable",
        "s3://scripts/allowed/other.js",
    );
    assert!(
        !stack.ingress.log().contains(script),
        "the script is not logged"
    );
}

#[test]
fn scripts_load_from_gcs_and_are_revalidated_with_their_etag() {
    let server = PlainServer::start();
    let script = "'from gcs'";
    server.put("/gcs/gscripts/team/a.js", script);
    let endpoint = server.url("/gcs");
    let ttl = millis(CACHE_TTL);
    let stack = SourceStack::start(
        &["gs://gscripts/team/"],
        &[
            ("SOURCES_GCS_ENDPOINT", &endpoint),
            ("SOURCES_ALLOW_LOOPBACK", "true"),
            ("SOURCE_CACHE_TTL_MS", &ttl),
        ],
    );
    let addr = stack.addr();
    let location = url("gs://gscripts/team/a.js");

    assert_result(&execute(addr, &location, false), "from gcs".into());
    assert_result(&execute(addr, &location, false), "from gcs".into());
    assert_eq!(server.downloads("/gcs/gscripts/team/a.js"), 1);
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 0);
    wait_out_the_cache_ttl();
    assert_result(&execute(addr, &location, false), "from gcs".into());
    assert_eq!(server.downloads("/gcs/gscripts/team/a.js"), 1);
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 1);

    assert_error(
        &execute(addr, &url("gs://gscripts/team/nope.js"), false),
        404,
        "source_not_found",
        "gs://gscripts/team/nope.js",
    );
    assert_error(
        &execute(addr, &url("gs://gscripts/other/a.js"), false),
        403,
        "source_forbidden",
        "acme",
    );
}

#[test]
fn web_scripts_are_cached_revalidated_bounded_in_time_and_redirects_rechecked() {
    let server = PlainServer::start();
    server.put("/scripts/a.js", "'version 1'");
    let port = server.addr.port();
    let stack = SourceStack::start(
        &[
            "http://127.0.0.1/scripts/",
            "http://127.0.0.1/unsized/",
            "http://127.0.0.1/slow.js",
            "http://127.0.0.1/redirect",
        ],
        &[
            ("SOURCES_ALLOW_LOOPBACK", "true"),
            ("SOURCE_CACHE_TTL_MS", &millis(CACHE_TTL)),
            ("SOURCE_TIMEOUT_MS", &millis(SOURCE_TIMEOUT)),
        ],
    );
    let addr = stack.addr();
    let location = url(&server.url("/scripts/a.js"));

    assert_result(&execute(addr, &location, false), "version 1".into());
    // A key written with an escape is the same key: loaded too, never sent on unloaded.
    let escaped = format!(
        r#"{{"\u0075rl": "{}", "timeoutMs": 1e3}}"#,
        server.url("/scripts/a.js")
    );
    assert_result(&execute_text(addr, &escaped, false), "version 1".into());
    assert_eq!(
        server.downloads("/scripts/a.js"),
        1,
        "a second execution within the TTL downloads nothing"
    );
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 0);
    wait_out_the_cache_ttl();
    assert_result(&execute(addr, &location, false), "version 1".into());
    assert_eq!(server.downloads("/scripts/a.js"), 1);
    assert_eq!(
        server.not_modified.load(Ordering::SeqCst),
        1,
        "after the TTL, a conditional request"
    );

    server.put("/scripts/a.js", "'version 2'");
    assert_result(&execute(addr, &location, false), "version 1".into());
    wait_out_the_cache_ttl();
    assert_result(&execute(addr, &location, false), "version 2".into());
    assert_eq!(server.downloads("/scripts/a.js"), 2);

    let started = Instant::now();
    assert_error(
        &execute(addr, &url(&server.url("/slow.js")), false),
        504,
        "source_unavailable",
        "1000 ms",
    );
    // Cut by the timeout, not answered by the server: a third of the server's delay leaves
    // room for a loaded machine.
    assert!(
        started.elapsed() < SLOW_ANSWER / 3,
        "{:?}",
        started.elapsed()
    );

    // An allowed host redirecting to one the tenant may not load from (same server, other name).
    let elsewhere = format!("http://localhost:{port}/scripts/a.js");
    let redirect = url(&server.url(&format!("/redirect?to={elsewhere}")));
    assert_error(
        &execute(addr, &redirect, false),
        403,
        "source_forbidden",
        "redirect",
    );
    let inside = url(&server.url(&format!("/redirect?to={}", server.url("/scripts/a.js"))));
    assert_result(&execute(addr, &inside, false), "version 2".into());
    assert_error(
        &execute(addr, &url(&server.url("/scripts/none.js")), false),
        404,
        "source_not_found",
        "/scripts/none.js",
    );
    assert_error(
        &execute(
            addr,
            &url(&format!("https://127.0.0.1:{port}/scripts/a.js")),
            false,
        ),
        403,
        "source_forbidden",
        "allowed sources",
    );

    // Over the cap: refused while streaming, whatever the server says first.
    server.put("/scripts/big.js", &"1;".repeat(CAP));
    server.put("/unsized/big.js", &"1;".repeat(CAP * 4));
    assert_error(
        &execute(addr, &url(&server.url("/unsized/big.js")), false),
        413,
        "payload_too_large",
        "4096",
    );
    assert_error(
        &execute(addr, &url(&server.url("/scripts/big.js")), false),
        413,
        "payload_too_large",
        "4096",
    );
}

#[test]
fn a_batch_runs_a_script_from_a_url_loaded_once_within_the_tenants_allow_list_and_pin() {
    let server = PlainServer::start();
    server.put("/scripts/rule.js", "input * 3");
    let stack = SourceStack::start(
        &["http://127.0.0.1/scripts/"],
        &[("SOURCES_ALLOW_LOOPBACK", "true")],
    );
    let addr = stack.addr();
    let rule = server.url("/scripts/rule.js");
    let batch = |body: serde_json::Value| post_text(addr, "/api/batch", &body.to_string(), false);

    let answer = batch(serde_json::json!({"url": rule, "inputs": [1, 2, 3]}));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let results: Vec<&serde_json::Value> = answer.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| &result["result"])
        .collect();
    assert_eq!(results, [3, 6, 9]);
    assert_eq!(server.downloads("/scripts/rule.js"), 1);

    let pinned = |digest: &str| serde_json::json!({"url": rule, "sha256": digest, "inputs": [1]});
    let pin = sha256_hex("input * 3");
    assert_eq!(batch(pinned(&pin)).body["results"][0]["result"], 3);
    assert_error(
        &batch(pinned(&"0".repeat(64))),
        422,
        "source_hash_mismatch",
        &pin,
    );
    assert_error(
        &batch(serde_json::json!({"url": server.url("/elsewhere/a.js"), "inputs": [1]})),
        403,
        "source_forbidden",
        "allowed sources",
    );
    // The anonymous tier may load from nowhere.
    let anonymous = post_text(
        addr,
        "/api/batch",
        &serde_json::json!({"url": rule, "inputs": [1]}).to_string(),
        true,
    );
    assert_error(&anonymous, 403, "source_forbidden", "anonymous");
}

#[test]
fn a_typescript_script_loaded_from_a_url_runs_as_typescript() {
    let server = PlainServer::start();
    let script = "interface Answer { value: number }\n\
                  const answer: Answer = { value: 6 * 7 };\n\
                  answer.value as number";
    server.put("/typed/a.ts", script);
    let stack = SourceStack::start(
        &["http://127.0.0.1/typed/"],
        &[("SOURCES_ALLOW_LOOPBACK", "true")],
    );
    let location = server.url("/typed/a.ts");
    let typescript = serde_json::json!({ "url": location, "language": "typescript" });
    assert_result(&execute(stack.addr(), &typescript, false), 42.into());
    // The same text as JavaScript does not parse: the language reached the sandbox.
    let javascript = execute(stack.addr(), &url(&location), false);
    assert_eq!(javascript.status, 200, "{}", javascript.text);
    assert_eq!(
        javascript.body["error"]["kind"], "syntax",
        "{}",
        javascript.text
    );
    // A batch keeps its language through the ingress too.
    let batch = serde_json::json!({ "url": location, "language": "typescript", "inputs": [1, 2] });
    let answer = post_text(stack.addr(), "/api/batch", &batch.to_string(), false);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["results"][0]["result"], 42, "{}", answer.text);
    assert_eq!(answer.body["results"][1]["result"], 42, "{}", answer.text);
}

#[test]
fn concurrent_executions_of_a_script_not_yet_cached_download_it_once() {
    let server = PlainServer::start();
    server.put("/slowish/a.js", "'once'");
    let stack = SourceStack::start(
        &["http://127.0.0.1/slowish/"],
        &[("SOURCES_ALLOW_LOOPBACK", "true")],
    );
    let addr = stack.addr();
    let location = url(&server.url("/slowish/a.js"));
    let answers: Vec<Answer> = thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| execute(addr, &location, false)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_result(answer, "once".into());
    }
    assert_eq!(server.downloads("/slowish/a.js"), 1);
}

#[test]
fn loopback_addresses_are_refused_in_every_notation_without_the_test_setting() {
    let server = PlainServer::start();
    server.put("/scripts/a.js", "1");
    let port = server.addr.port();
    let stack = SourceStack::start(
        &[
            "http://127.0.0.1/",
            "http://[::ffff:7f00:1]/",
            "http://localhost/",
            "http://[::1]/",
        ],
        &[],
    );
    let addr = stack.addr();
    for (location, rule) in [
        (format!("http://127.0.0.1:{port}/scripts/a.js"), "loopback"),
        (format!("http://0x7f.1:{port}/scripts/a.js"), "loopback"),
        (format!("http://2130706433:{port}/scripts/a.js"), "loopback"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/scripts/a.js"),
            "embeds an IPv4",
        ),
        (format!("http://[::1]:{port}/scripts/a.js"), "loopback"),
        (
            format!("http://localhost:{port}/scripts/a.js"),
            "resolves to",
        ),
    ] {
        assert_error(
            &execute(addr, &url(&location), false),
            403,
            "source_forbidden",
            rule,
        );
    }
    assert_eq!(server.downloads("/scripts/a.js"), 0);
}

#[test]
fn the_sandbox_refuses_a_url_sent_to_it_directly() {
    let sandbox = Service::start("sandbox", &[]);
    let (status, body) =
        e2e::post_execute(sandbox.addr(), r#"{"url": "gs://bucket/a.js"}"#).unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("loaded by the ingress"), "{body}");
}

#[test]
fn a_url_script_at_the_default_max_script_bytes_reaches_the_engine_with_the_largest_input() {
    let server = PlainServer::start();
    let cap = ingress::sources::Settings::default().max_script_bytes;
    let cap_text = cap.to_string();
    // The ingress's default cap, against the sandbox's default MAX_BODY_BYTES and MAX_INPUT_BYTES.
    let stack = SourceStack::start(
        &["http://127.0.0.1/scripts/"],
        &[
            ("SOURCES_ALLOW_LOOPBACK", "true"),
            ("MAX_SCRIPT_BYTES", cap_text.as_str()),
        ],
    );
    let head = "input.length + ' bytes of input'; //";
    // No character here needs escaping, so the script is exactly the cap as the sandbox gets it.
    let at_the_cap = format!("{head}{}", "x".repeat(cap - head.len()));
    server.put("/scripts/at-the-cap.js", &at_the_cap);
    let input_bytes = sandbox::Config::default().max_input_bytes;
    // A JSON string of `input_bytes` in all, quotes included.
    let input = "i".repeat(input_bytes - 2);
    let answer = execute(
        stack.addr(),
        &serde_json::json!({ "url": server.url("/scripts/at-the-cap.js"), "input": input }),
        false,
    );
    assert_result(
        &answer,
        format!("{} bytes of input", input_bytes - 2).into(),
    );

    // One quote more is one byte more once escaped, though not in the download: the ingress
    // refuses it itself, naming its limit.
    let over = format!("{head}\"{}", "x".repeat(cap - head.len() - 1));
    assert_eq!(over.len(), cap);
    server.put("/scripts/over.js", &over);
    assert_error(
        &execute(stack.addr(), &url(&server.url("/scripts/over.js")), false),
        413,
        "payload_too_large",
        "MAX_SCRIPT_BYTES",
    );
}

#[test]
fn a_cached_script_is_served_to_a_tenant_only_if_its_allow_list_accepts_every_redirect_loading_it_took()
 {
    let server = PlainServer::start();
    server.put("/scripts/a.js", "'from elsewhere'");
    let port = server.addr.port();
    // Both may load the redirect; only `broad` may load where it leads (same server, other name).
    let (narrow_key, broad_key) = ("e2e-narrow-key-5c1d", "e2e-broad-key-9a7e");
    let tenants = TempFile::new(
        &format!("grants-{}.toml", free_port()),
        &format!(
            "[anonymous]\nenabled = false\n\n\
             [[tenants]]\nid = \"narrow\"\nkeys = [\"{}\"]\nrate_limit_rps = 0\n\
             sources = [\"http://127.0.0.1/redirect\"]\n\n\
             [[tenants]]\nid = \"broad\"\nkeys = [\"{}\"]\nrate_limit_rps = 0\n\
             sources = [\"http://127.0.0.1/redirect\", \"http://localhost/scripts/\"]\n",
            sha256_hex(narrow_key),
            sha256_hex(broad_key)
        ),
    );
    let sandbox = Service::start("sandbox", &[]);
    let sandbox_url = sandbox.url();
    let ingress = Service::start(
        "ingress",
        &[
            ("SANDBOX_URL", sandbox_url.as_str()),
            ("TENANTS_FILE", tenants.0.to_str().unwrap()),
            ("ADMIN_LISTEN_ADDR", "off"),
            ("SOURCES_ALLOW_LOOPBACK", "true"),
        ],
    );
    let target = format!("http://localhost:{port}/scripts/a.js");
    let body = url(&server.url(&format!("/redirect?to={target}"))).to_string();
    let execute_as = |key: &str| {
        let mut stream = TcpStream::connect(ingress.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "POST /api/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nx-api-key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (_, text) = answer.split_once("\r\n\r\n").expect("a head and a body");
        Answer {
            status: answer[9..12].parse().expect("a status code"),
            body: serde_json::from_str(text).unwrap_or(serde_json::Value::Null),
            text: text.to_owned(),
        }
    };

    assert_error(&execute_as(narrow_key), 403, "source_forbidden", "redirect");
    assert_result(&execute_as(broad_key), "from elsewhere".into());
    assert_error(&execute_as(narrow_key), 403, "source_forbidden", "redirect");
    assert_result(&execute_as(broad_key), "from elsewhere".into());
    assert_eq!(
        server.downloads("/scripts/a.js"),
        1,
        "the tenant whose rules accept the redirect is still served from the cache"
    );
}
