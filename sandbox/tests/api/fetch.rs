//! `fetch` for tenants granted it: real requests from the real sandbox to real HTTP servers on
//! loopback (allowed here by the test-only `FETCH_ALLOW_LOOPBACK`), and every rule that must
//! refuse one: the allow-list, the address rules (with loopback not allowed), redirects, the
//! caps and the deadline. A refusal is an ordinary script error whose message names the rule.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{any, get},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::support::{TestApp, TestResponse, spawn_app_with};

/// A server on loopback that the scripts fetch from.
async fn serve_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/json", get(json_answer))
        .route("/echo", any(echo))
        .route("/redirect/{hops}", get(redirect))
        .route("/to/{host}", get(redirect_to_host))
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route("/big/{bytes}", get(big))
        .route("/slow", get(slow))
        .route("/delay", get(delay))
        .with_state(addr);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn json_answer() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::SET_COOKIE, "session=secret; Path=/"),
        ],
        r#"{"hello":"world"}"#,
    )
        .into_response()
}

async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Value::from(value.to_str().unwrap_or_default()),
            )
        })
        .collect();
    axum::Json(json!({
        "method": method.as_str(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn redirect(Path(hops): Path<u32>) -> Redirect {
    if hops == 0 {
        Redirect::temporary("/json")
    } else {
        Redirect::temporary(&format!("/redirect/{}", hops - 1))
    }
}

async fn redirect_to_host(State(addr): State<SocketAddr>, Path(host): Path<String>) -> Redirect {
    Redirect::temporary(&format!("http://{host}:{}/json", addr.port()))
}

async fn big(Path(bytes): Path<usize>) -> Vec<u8> {
    vec![b'x'; bytes]
}

async fn delay() -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await;
    "late"
}

async fn slow() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(30)).await;
    StatusCode::OK
}

/// A server that answers every request with a chunked body of `bytes` bytes and no length.
async fn serve_chunked(bytes: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'y'; 16 * 1024];
                let mut left = bytes;
                while left > 0 {
                    let size = left.min(chunk.len());
                    let frame =
                        [format!("{size:x}\r\n").as_bytes(), &chunk[..size], b"\r\n"].concat();
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                    left -= size;
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

const GRANT: &str = r#"{"fetch":{"hosts":["127.0.0.1"],"methods":["GET","POST"]}}"#;

async fn app(allow_loopback: bool) -> TestApp {
    spawn_app_with(|config| {
        config.fetch.allow_loopback = allow_loopback;
        config.fetch.max_response_bytes = 64 * 1024;
        config.fetch.max_requests = 4;
        config.fetch.max_total_bytes = 160 * 1024;
    })
    .await
}

async fn run_granted(app: &TestApp, grant: &str, code: &str) -> TestResponse {
    app.post_execute_with(
        &[("x-tenant-id", "acme"), ("x-tenant-capabilities", grant)],
        json!({ "code": code, "timeoutMs": 3000 }),
    )
    .await
}

/// The message of the `TypeError` the script's fetch rejected with.
fn refusal(response: &TestResponse) -> String {
    assert_eq!(
        response.script_error_kind(),
        "exception",
        "{}",
        response.body
    );
    assert_eq!(
        response.body["error"]["name"], "TypeError",
        "{}",
        response.body
    );
    response.body["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_granted_tenant_fetches_json_with_status_and_headers_and_no_cookies_are_kept() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let code = format!(
        "(async () => {{
           const first = await fetch('http://{upstream}/json');
           const body = await first.json();
           const again = await fetch('http://{upstream}/echo');
           const echoed = await again.json();
           return [first.ok, first.status, first.statusText, first.headers.get('content-type'),
                   first.headers.has('set-cookie'), first.url, first.redirected, body,
                   'cookie' in echoed.headers, first.bodyUsed];
         }})()"
    );
    let response = run_granted(&app, GRANT, &code).await;
    assert_eq!(
        response.result(),
        &json!([
            true,
            200,
            "OK",
            "application/json",
            false,
            format!("http://{upstream}/json"),
            false,
            {"hello": "world"},
            false,
            true
        ])
    );
}

#[tokio::test]
async fn a_post_sends_its_body_and_headers_but_not_the_forbidden_ones() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let code = format!(
        "(async () => {{
           const response = await fetch('http://{upstream}/echo', {{
             method: 'post',
             headers: {{'x-trace': 'abc', cookie: 'stolen=1', host: 'evil.example'}},
             body: new URLSearchParams({{a: '1', b: 'é'}}),
           }});
           const echoed = await response.json();
           return [echoed.method, echoed.body, echoed.headers['x-trace'],
                   echoed.headers['content-type'], echoed.headers.cookie ?? null,
                   echoed.headers.host];
         }})()"
    );
    let response = run_granted(&app, GRANT, &code).await;
    assert_eq!(
        response.result(),
        &json!([
            "POST",
            "a=1&b=%C3%A9",
            "abc",
            "application/x-www-form-urlencoded;charset=UTF-8",
            null,
            upstream.to_string()
        ])
    );
}

#[tokio::test]
async fn without_the_capability_a_script_has_no_fetch() {
    let app = app(true).await;
    let anonymous = app
        .run("[typeof fetch, typeof Headers, typeof Response]")
        .await;
    assert_eq!(
        anonymous.result(),
        &json!(["undefined", "undefined", "undefined"])
    );
    let keyed = app
        .post_execute_with(
            &[("x-tenant-id", "acme")],
            json!({ "code": "typeof fetch" }),
        )
        .await;
    assert_eq!(keyed.result(), &json!("undefined"));
}

#[tokio::test]
async fn hosts_and_methods_outside_the_allow_list_are_refused_naming_the_rule() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let port = upstream.port();
    let other_host = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://localhost:{port}/json')"),
    )
    .await;
    let message = refusal(&other_host);
    assert!(
        message.contains("the host localhost is not in this tenant's fetch allow-list"),
        "{message}"
    );
    let method = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/echo', {{method: 'DELETE'}})"),
    )
    .await;
    let message = refusal(&method);
    assert!(
        message.contains("the method DELETE is not allowed"),
        "{message}"
    );
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/", "not a url"] {
        let refused = run_granted(&app, GRANT, &format!("fetch('{url}')")).await;
        let message = refusal(&refused);
        assert!(
            message.contains("scheme") || message.contains("parse URL"),
            "{url}: {message}"
        );
    }
}

#[tokio::test]
async fn internal_addresses_are_refused_in_every_notation_when_loopback_is_not_allowed() {
    let (app, upstream) = (app(false).await, serve_upstream().await);
    let port = upstream.port();
    let grant = r#"{"fetch":{"hosts":["127.0.0.1","localhost","0x7f.1","[::1]","[::ffff:127.0.0.1]","169.254.169.254","10.0.0.1"]}}"#;
    let cases = [
        (format!("http://127.0.0.1:{port}/json"), "loopback"),
        (format!("http://0x7f.1:{port}/json"), "loopback"),
        (format!("http://[::1]:{port}/json"), "loopback"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/json"),
            "embeds an IPv4 address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://10.0.0.1/".to_owned(), "private"),
        // A name is resolved by the host and every address checked when connecting.
        (
            format!("http://localhost:{port}/json"),
            "localhost resolves to",
        ),
    ];
    for (url, rule) in cases {
        let refused = run_granted(&app, grant, &format!("fetch('{url}')")).await;
        let message = refusal(&refused);
        assert!(message.contains(rule), "{url}: {message}");
        assert!(message.contains("refused"), "{url}: {message}");
    }
}

#[tokio::test]
async fn redirects_are_followed_within_the_allow_list_and_rechecked_at_every_hop() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let followed = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/redirect/2').then(async r => [r.redirected, r.url, await r.json()])"),
    )
    .await;
    assert_eq!(
        followed.result(),
        &json!([true, format!("http://{upstream}/json"), {"hello": "world"}])
    );
    let too_many = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/redirect/9')"),
    )
    .await;
    assert!(
        refusal(&too_many).contains("more than 5 redirects"),
        "{}",
        too_many.body
    );
    let elsewhere = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/to/localhost')"),
    )
    .await;
    let message = refusal(&elsewhere);
    assert!(
        message.contains(&format!(
            "redirect to http://localhost:{} was refused",
            upstream.port()
        )),
        "{message}"
    );
    assert!(
        message.contains("not in this tenant's fetch allow-list"),
        "{message}"
    );
    let metadata = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/to-metadata')"),
    )
    .await;
    let message = refusal(&metadata);
    assert!(
        message.contains("169.254.169.254") && message.contains("link-local"),
        "{message}"
    );
}

#[tokio::test]
async fn bodies_requests_and_bytes_are_capped_per_execution() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let declared = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/big/70000')"),
    )
    .await;
    assert!(refusal(&declared).contains("larger than 65536 bytes (FETCH_MAX_RESPONSE_BYTES)"));
    let chunked = serve_chunked(10 * 1024 * 1024).await;
    let streamed = run_granted(&app, GRANT, &format!("fetch('http://{chunked}/')")).await;
    assert!(
        refusal(&streamed).contains("FETCH_MAX_RESPONSE_BYTES"),
        "{}",
        streamed.body
    );

    let requests = run_granted(
        &app,
        GRANT,
        &format!(
            "(async () => {{ let n = 0; try {{ for (;;) {{ await fetch('http://{upstream}/json'); n++ }} }}
               catch (e) {{ return [n, e.message] }} }})()"
        ),
    )
    .await;
    let result = requests.result();
    assert_eq!(result[0], 4, "{result}");
    assert!(
        result[1].as_str().unwrap().contains("FETCH_MAX_REQUESTS"),
        "{result}"
    );

    let bytes = run_granted(
        &app,
        GRANT,
        &format!(
            "(async () => {{ let n = 0; try {{ for (;;) {{ await fetch('http://{upstream}/big/60000'); n++ }} }}
               catch (e) {{ return [n, e.message] }} }})()"
        ),
    )
    .await;
    let result = bytes.result();
    assert_eq!(result[0], 2, "{result}");
    assert!(
        result[1]
            .as_str()
            .unwrap()
            .contains("FETCH_MAX_TOTAL_BYTES"),
        "{result}"
    );
}

#[tokio::test]
async fn a_large_request_body_is_refused_by_the_byte_cap_not_by_crashing_its_worker() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    // 1.5 MB of body is 2 MB of base64 in the call's arguments: more than a result may be.
    let code =
        format!("fetch('http://{upstream}/echo', {{method: 'POST', body: 'x'.repeat(1500000)}})");
    let refused = run_granted(&app, GRANT, &code).await;
    assert!(
        refusal(&refused).contains("FETCH_MAX_TOTAL_BYTES"),
        "{}",
        refused.body
    );
    let arguments = run_granted(
        &app,
        GRANT,
        &format!("fetch('http://{upstream}/echo', {{method: 'POST', body: 'x'.repeat(5000000)}})"),
    )
    .await;
    assert_eq!(
        arguments.script_error_kind(),
        "exception",
        "{}",
        arguments.body
    );
    assert_eq!(
        arguments.body["error"]["name"], "RangeError",
        "{}",
        arguments.body
    );
}

#[tokio::test]
async fn a_slow_server_is_bounded_by_the_execution_deadline() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let started = Instant::now();
    let response = app
        .post_execute_with(
            &[("x-tenant-id", "acme"), ("x-tenant-capabilities", GRANT)],
            json!({ "code": format!("fetch('http://{upstream}/slow')"), "timeoutMs": 500 }),
        )
        .await;
    assert_eq!(response.script_error_kind(), "timeout", "{}", response.body);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Caught, the deadline still ends the execution.
    let caught = app
        .post_execute_with(
            &[("x-tenant-id", "acme"), ("x-tenant-capabilities", GRANT)],
            json!({ "code": format!("fetch('http://{upstream}/slow').catch(e => 'caught ' + e)"), "timeoutMs": 500 }),
        )
        .await;
    assert_eq!(caught.script_error_kind(), "timeout", "{}", caught.body);
}

#[tokio::test]
async fn an_abort_signal_rejects_a_pending_fetch_with_its_reason() {
    let (app, upstream) = (app(true).await, serve_upstream().await);
    let code = format!(
        "(async () => {{
           const controller = new AbortController();
           setTimeout(() => controller.abort(), 50);
           try {{ await fetch('http://{upstream}/slow', {{signal: controller.signal}}); }}
           catch (e) {{ return [e.name, e instanceof DOMException]; }}
         }})()"
    );
    let response = run_granted(&app, GRANT, &code).await;
    assert_eq!(response.result(), &json!(["AbortError", true]));
}

#[tokio::test]
async fn an_answer_that_comes_after_its_fetch_was_abandoned_does_not_disturb_the_next_execution() {
    // One worker, recycled after its seventh execution: the six below and one more. That
    // recycling is the only exit this test expects, and the event it waits for: a worker lost
    // on the way (died idle, crashed, by any signal) would have been replaced, and its
    // replacement would not reach seven executions.
    let app = spawn_app_with(|config| {
        config.max_concurrency = 1;
        config.worker_max_executions = 7;
        config.fetch.allow_loopback = true;
    })
    .await;
    let upstream = serve_upstream().await;
    // The fetch is aborted at once; its answer reaches the worker while the script still runs,
    // and is left unread when the execution ends.
    let abandon = format!(
        "const c = new AbortController();
         fetch('http://{upstream}/delay', {{signal: c.signal}}).catch(() => {{}});
         c.abort();
         const until = Date.now() + 200; while (Date.now() < until);
         'done'"
    );
    for _ in 0..3 {
        let abandoned = run_granted(&app, GRANT, &abandon).await;
        assert_eq!(abandoned.result(), &json!("done"));
        let next = app.run("6 * 7").await;
        assert_eq!(next.result(), &json!(42));
    }
    assert_eq!(app.run("'seventh'").await.result(), &json!("seventh"));
    let recycled = "sandbox_worker_exits_total{reason=\"recycled\",";
    app.wait_for("recycled workers", 1.0, |app| async move {
        app.metric_sum(recycled).await
    })
    .await;
    let (_, metrics) = app.metrics().await;
    let exits: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("sandbox_worker_exits_total{"))
        .collect();
    assert_eq!(
        app.metric_sum("sandbox_worker_exits_total{").await,
        1.0,
        "every exit: {exits:?}"
    );
}

#[tokio::test]
async fn headers_and_response_follow_the_fetch_standard() {
    // Adapted from WPT fetch/api/headers/headers-basic.any.js, headers-combine.any.js and
    // fetch/api/response/response-init-001.any.js.
    let app = app(true).await;
    let code = r#"
      const h = new Headers([['B', '1'], ['a', '2']]);
      h.append('b', '3');
      const pairs = [...h];
      let bad; try { h.append('bad name', 'x') } catch (e) { bad = e.name }
      const r = new Response('héllo', {status: 201, headers: {'X-A': 'b'}});
      let badStatus; try { new Response(null, {status: 600}) } catch (e) { badStatus = e.name }
      (async () => [pairs, h.get('B'), bad, r.status, r.ok, r.headers.get('content-type'),
                    await r.text(), r.bodyUsed, await r.text().catch(e => e.name), badStatus,
                    await Response.json({a: 1}).json(), Object.prototype.toString.call(h)])()
    "#;
    let response = run_granted(&app, GRANT, code).await;
    assert_eq!(
        response.result(),
        &json!([
            [["a", "2"], ["b", "1, 3"]],
            "1, 3",
            "TypeError",
            201,
            true,
            "text/plain;charset=UTF-8",
            "héllo",
            true,
            "TypeError",
            "RangeError",
            {"a": 1},
            "[object Headers]"
        ])
    );
}
