//! End-to-end tests live in `tests/`; this library holds their shared helpers.
//!
//! [`Service`] runs one of the workspace's real binaries (`sandbox`, `ingress`) on a free loopback
//! port and stops it when dropped; [`Stack`] runs a sandbox with an ingress in front of it, as they
//! are deployed. These helpers use only the standard library. [`deploy`] reads the deploy files
//! (Dockerfile, docker-compose.yml, cloudrun.yaml, cloudbuild.yaml) for the tests that check them.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{env, thread};

pub mod deploy;

/// How long a binary may take, from its start, to answer 200 on `GET /healthz`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running workspace binary, killed when dropped. Its stdout and stderr go to a file in the temp
/// directory, printed when the test that owns it panics.
pub struct Service {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
    log_path: PathBuf,
}

impl Service {
    /// Starts the workspace binary `name` with `LISTEN_ADDR` on a free loopback port and the extra
    /// `env`, and returns once its `/healthz` answers 200.
    pub fn start(name: &'static str, env: &[(&str, &str)]) -> Service {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let listen_addr = addr.to_string();
        let mut full_env = vec![("LISTEN_ADDR", listen_addr.as_str())];
        full_env.extend_from_slice(env);
        Service::start_with_env(name, addr, &full_env)
    }

    /// Starts the workspace binary `name` with the extra `env` alone, which must make it listen
    /// where `addr` reaches it (e.g. `LISTEN_ADDR=0.0.0.0:<port>`, or only `PORT` for the
    /// ingress, as the deploy files configure them); `LISTEN_ADDR` and `PORT` are not inherited.
    /// Returns once `/healthz` on `addr` answers 200.
    pub fn start_with_env(name: &'static str, addr: SocketAddr, env: &[(&str, &str)]) -> Service {
        let log_path = env::temp_dir().join(format!(
            "e2e-{name}-{}-{}.log",
            std::process::id(),
            addr.port()
        ));
        let log = File::create(&log_path).expect("create the service's log file");
        let child = Command::new(binary_path(name))
            .env_remove("LISTEN_ADDR")
            .env_remove("PORT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        let mut service = Service {
            name,
            addr,
            child,
            log_path,
        };
        service.wait_until_healthy();
        service
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id of the running binary.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything the binary has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits up to `deadline` for the binary to exit (after a signal the test sent): its exit
    /// status, or `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child process") {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while get_status(self.addr, "/healthz").ok() != Some(200) {
            if let Some(status) = self.child.try_wait().expect("poll the child process") {
                panic!(
                    "{} exited ({status}) before it was healthy:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer 200 on /healthz within {STARTUP_TIMEOUT:?}:\n{}",
                self.name,
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Errors here mean the process is already gone, which is what dropping wants.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- {} output ---\n{}", self.name, self.log());
        }
        let _ = fs::remove_file(&self.log_path);
    }
}

/// A sandbox and an ingress proxying to it (`SANDBOX_URL`), each on its own free port.
/// Dropping it stops the ingress first, then the sandbox.
pub struct Stack {
    pub ingress: Service,
    pub sandbox: Service,
}

impl Stack {
    /// Starts both binaries; `ingress_env` is added to the ingress's environment (for example
    /// `RATE_LIMIT_RPS=0`).
    pub fn start(ingress_env: &[(&str, &str)]) -> Stack {
        Stack::start_with(&[], ingress_env)
    }

    /// Starts both binaries, `sandbox_env` added to the sandbox's environment and
    /// `ingress_env` to the ingress's.
    pub fn start_with(sandbox_env: &[(&str, &str)], ingress_env: &[(&str, &str)]) -> Stack {
        let sandbox = Service::start("sandbox", sandbox_env);
        let sandbox_url = sandbox.url();
        let mut env = vec![("SANDBOX_URL", sandbox_url.as_str())];
        env.extend_from_slice(ingress_env);
        let ingress = Service::start("ingress", &env);
        Stack { ingress, sandbox }
    }

    /// The ingress's base URL: what a browser or client talks to.
    pub fn url(&self) -> String {
        self.ingress.url()
    }
}

/// The path of the workspace binary `name`, next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
///
/// The first call in a test process runs `cargo build` for the `sandbox` and `ingress` binaries in
/// the test's profile: `cargo test` builds a package's binaries only for that package's own
/// integration tests, and this also keeps them current when only `-p e2e` is tested.
pub fn binary_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let test_exe = env::current_exe().expect("locate the test executable");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/<profile>/deps");
    BUILT.get_or_init(|| build_service_binaries(profile_dir));
    let path = profile_dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: `cargo build -p {name}` builds it",
        path.display()
    );
    path
}

/// Builds the `sandbox` and `ingress` binaries into `profile_dir` (`target/debug` or
/// `target/release`); a no-op when they are up to date.
fn build_service_binaries(profile_dir: &Path) {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args([
        "build", "--quiet", "--bins", "-p", "sandbox", "-p", "ingress",
    ]);
    match profile_dir.file_name().and_then(|dir| dir.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(profile) => {
            cargo.args(["--profile", profile]);
        }
    }
    let build = cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build");
    assert!(
        build.status.success(),
        "building the sandbox and ingress binaries failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
}

/// A loopback port that was free a moment ago. Another process could take it before the caller
/// binds it, which is unlikely enough for tests on one machine.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// Sends `POST /api/execute` with `body` (JSON) on a new connection and returns the status
/// code and the response body.
pub fn post_execute(addr: SocketAddr, body: &str) -> io::Result<(u16, String)> {
    post_execute_with(addr, &[], body)
}

/// [`post_execute`] with the extra request `headers` (names and values).
pub fn post_execute_with(
    addr: SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<(u16, String)> {
    post_json(addr, "/api/execute", headers, body)
}

/// Sends `POST path` with `body` (JSON) and the extra request `headers` on a new connection
/// and returns the status code and the response body.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    read_answer(stream)
}

/// A `POST /api/execute` (or a session's execute) that asked for Server-Sent Events (`Accept:
/// text/event-stream`), read as they arrive; dropping it closes the connection, as a client
/// that leaves does.
pub struct EventStream {
    reader: BufReader<TcpStream>,
    /// The answer's status code.
    pub status: u16,
    /// The answer's head, status line and headers, as received.
    pub head: String,
    /// Body text received and not yet made into events.
    pending: String,
    ended: bool,
    /// Whether the body comes in chunks, as a stream does; an answer of a known length is a
    /// whole one (a refusal).
    chunked: bool,
}

/// One event, or a comment line alone (a heartbeat: no name), with when it arrived.
#[derive(Debug)]
pub struct StreamEvent {
    pub name: Option<String>,
    /// The `data:` lines, joined.
    pub data: String,
    pub arrived: Instant,
}

/// Sends `POST /api/execute` with `body` (JSON) and `Accept: text/event-stream` on a new
/// connection and reads the answer's head: read a stream with [`EventStream::next_event`], a
/// whole answer (a request refused before it ran) with [`EventStream::whole_body`].
pub fn post_stream(addr: SocketAddr, body: &str) -> io::Result<EventStream> {
    post_stream_to(addr, "/api/execute", body)
}

/// [`post_stream`] to `path`, such as a session's `/api/sessions/{id}/execute`.
pub fn post_stream_to(addr: SocketAddr, path: &str, body: &str) -> io::Result<EventStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if reader.read_line(&mut head)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, head));
        }
    }
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Ok(EventStream {
        reader,
        status,
        head,
        pending: String::new(),
        ended: false,
        chunked,
    })
}

impl EventStream {
    /// The body of an answer that is not a stream, to the end of the connection.
    pub fn whole_body(mut self) -> io::Result<String> {
        if self.chunked {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a stream, not a whole answer: {}", self.head),
            ));
        }
        let mut body = String::new();
        self.reader.read_to_string(&mut body)?;
        Ok(body)
    }

    /// The next event or comment, `None` at the end of the stream.
    pub fn next_event(&mut self) -> io::Result<Option<StreamEvent>> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if !self.chunked {
            return Err(invalid(&format!("a stream comes in chunks: {}", self.head)));
        }
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                return Ok(Some(parse_event(&block)));
            }
            if self.ended {
                return match self.pending.is_empty() {
                    true => Ok(None),
                    false => Err(invalid("the stream ended inside an event")),
                };
            }
            let mut size = String::new();
            self.reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| invalid("chunk size"))?;
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            self.ended = size == 0;
            self.pending
                .push_str(&String::from_utf8(chunk).map_err(|_| invalid("UTF-8"))?);
        }
    }

    /// Every event to the end of the stream, comments included.
    pub fn until_end(mut self) -> io::Result<Vec<StreamEvent>> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event()? {
            events.push(event);
        }
        Ok(events)
    }
}

fn parse_event(block: &str) -> StreamEvent {
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    StreamEvent {
        name,
        data: data.join("\n"),
        arrived: Instant::now(),
    }
}

/// The process ids of `parent`'s children whose command line's first argument ends with
/// `program` (and, when given, whose second is `argument`).
pub fn children_of(parent: u32, program: &str, argument: Option<&str>) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let mut fields = stat[close + 2..].split_whitespace();
            let (state, ppid) = (fields.next(), fields.next());
            if state == Some("Z") || ppid != Some(parent.to_string().as_str()) {
                return false;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut args = cmdline.split(|byte| *byte == 0);
            let first = args.next().unwrap_or_default();
            first.ends_with(program.as_bytes())
                && argument.is_none_or(|argument| args.next() == Some(argument.as_bytes()))
        })
        .collect()
}

/// The sum of every sample of the metric `name` (whatever its labels) at `GET /metrics` on
/// `addr`; 0 when it has none.
pub fn metric_total(addr: SocketAddr, name: &str) -> f64 {
    let (status, body) = get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the one sample `name{labels}` (as the exposition writes it, e.g.
/// `sandbox_memory_budget_bytes{share="requests_charged"}`) at `GET /metrics` on `addr`; 0
/// when it is absent.
pub fn metric_sample(addr: SocketAddr, sample: &str) -> f64 {
    let (status, body) = get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .map_or(0.0, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{sample}: {value}"))
        })
}

/// Sends `GET path` on a new connection and returns the response's status code.
pub fn get_status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    get(addr, path).map(|(status, _)| status)
}

/// Sends `GET path` on a new connection and returns the status code and the whole body.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    read_answer(stream)
}

/// Reads a whole `Connection: close` answer: its status code and its body (de-chunked when it
/// came in chunks).
fn read_answer(mut stream: TcpStream) -> io::Result<(u16, String)> {
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP/1.1 response");
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let chunked = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if !chunked {
        return Ok((status, body.to_owned()));
    }
    let mut rest = body;
    let mut whole = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or_else(invalid)?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| invalid())?;
        if size == 0 {
            return Ok((status, whole));
        }
        whole.push_str(after.get(..size).ok_or_else(invalid)?);
        rest = after.get(size + 2..).ok_or_else(invalid)?;
    }
}

/// Runs `command` with its stdout and stderr captured, and returns its output; panics (after
/// killing it) if it has not exited within `deadline`.
pub fn output_within(mut command: Command, deadline: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    let started = Instant::now();
    while child.try_wait().expect("poll the child").is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("{command:?} still running after {deadline:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect the output")
}

/// For a test that needs a tool this machine may lack (a browser, a fuzzer, an S3 server): such
/// a test is `#[ignore]`d with the reason and how to install the tool, so cargo's summary counts
/// it as ignored rather than passed. Asked to run (`cargo test -- --include-ignored`, as CI
/// does), it fails here, naming the `missing` tool.
pub fn missing_tool(test: &str, missing: &str) -> ! {
    panic!("the {test} cannot run: {missing}");
}

/// A file in the temp directory, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `contents` to a file named after `name` and this test process.
    pub fn new(name: &str, contents: &str) -> Self {
        let path = env::temp_dir().join(format!("e2e-{}-{name}", std::process::id()));
        fs::write(&path, contents).expect("write the temporary file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
