//! An operator's own binary with host functions of its own (`examples/host_functions.rs`), run
//! as a process like the stock `sandbox`: its synchronous function runs in the worker, its
//! asynchronous one in the supervisor, and scripts see both only as the registry says.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The example binary, built for this test's profile and target directory if need be. The
/// whole workspace is selected, as `cargo test --workspace` selects it when it builds the
/// example, so dependencies keep the same features and this is a no-op there.
fn example_binary() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().and_then(|deps| deps.parent()).unwrap();
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "sandbox",
            "--example",
            "host_functions",
        ])
        .args((profile_dir.file_name().unwrap() == "release").then_some("--release"))
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the example builds");
    profile_dir.join("examples/host_functions")
}

struct Operator {
    child: Child,
    addr: SocketAddr,
}

impl Operator {
    fn start() -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(example_binary())
            .env("LISTEN_ADDR", addr.to_string())
            .env("MAX_CONCURRENCY", "1")
            .env("MAX_HOST_CALLS", "3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the example never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr }
    }

    /// Runs `code` for the tenant `acme`; the answer's body.
    fn run(&self, code: &str) -> Value {
        let body = json!({ "code": code }).to_string();
        let mut stream = TcpStream::connect(self.addr).unwrap();
        write!(
            stream,
            "POST /api/execute HTTP/1.1\r\nhost: sandbox\r\nx-tenant-id: acme\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
        serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_operators_binary_exposes_its_synchronous_and_asynchronous_functions() {
    let operator = Operator::start();
    let answer = operator.run(
        "(async () => {
           const warm = units.toCelsius(212);
           let bad; try { units.toCelsius('hot') } catch (e) { bad = [e.name, e.message] }
           const apple = await inventory.lookup('apple');
           return [warm, bad, apple, typeof fetch];
         })()",
    );
    assert_eq!(answer["status"], "success", "{answer}");
    assert_eq!(
        answer["result"],
        json!([
            100,
            ["TypeError", "units.toCelsius: expected a number of degrees Fahrenheit"],
            {"sku": "apple", "stock": 12, "askedBy": "acme"},
            "undefined"
        ])
    );
}

#[test]
fn host_errors_reject_and_the_call_budget_holds_across_functions() {
    let operator = Operator::start();
    let missing = operator.run("inventory.lookup('plum')");
    assert_eq!(missing["error"]["kind"], "exception", "{missing}");
    assert_eq!(missing["error"]["name"], "NotFoundError", "{missing}");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no item plum"),
        "{missing}"
    );
    let budget = operator.run(
        "(async () => {
           units.toCelsius(1); await inventory.lookup('pear'); units.toCelsius(2);
           try { await inventory.lookup('apple') } catch (e) { return e.message }
         })()",
    );
    let message = budget["result"].as_str().unwrap_or_default();
    assert!(
        message.contains("made its 3 host function calls"),
        "{budget}"
    );
}
