//! The embedded demo page: content types, caching, compression and security headers.

use std::collections::{BTreeSet, VecDeque};
use std::io::Read;

use axum::http::StatusCode;

use crate::support::{TestResponse, spawn_app};

fn assert_security_headers(answer: &TestResponse) {
    let csp = answer.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    assert!(answer.header("referrer-policy").is_some());
}

#[tokio::test]
async fn the_demo_page_is_served_at_the_root_with_caching_and_security_headers() {
    let app = spawn_app().await;

    let page = app.http.get("/").await;

    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    assert!(page.header("etag").is_some());
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_security_headers(&page);
}

#[tokio::test]
async fn api_answers_carry_the_security_headers_too() {
    let app = spawn_app().await;

    assert_security_headers(&app.http.get("/api/examples").await);
    assert_security_headers(&app.http.get("/no-such-page").await);
}

/// Local references of an HTML page (`src`/`href`) or a JavaScript module (`import`s).
fn local_references(name: &str, text: &str) -> Vec<String> {
    let quoted_after = |marker: &str| -> Vec<String> {
        text.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &text[at + marker.len()..];
                let rest = rest.trim_start();
                let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
                let end = rest[1..].find(quote)?;
                Some(rest[1..1 + end].to_owned())
            })
            .collect()
    };
    let candidates = if name.ends_with(".html") {
        [quoted_after("src="), quoted_after("href=")].concat()
    } else if name.ends_with(".js") {
        [quoted_after("from"), quoted_after("import")].concat()
    } else {
        Vec::new()
    };
    candidates
        .into_iter()
        .filter(|reference| !reference.contains(':') && !reference.starts_with(['#', '/']))
        // Links to the API (the OpenAPI document) are not assets.
        .filter(|reference| !reference.starts_with("api/"))
        .map(|reference| match reference.trim_start_matches("./") {
            "" => "index.html".to_owned(),
            name => name.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn every_file_the_page_loads_is_served_with_its_content_type() {
    let app = spawn_app().await;
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([String::from("index.html")]);

    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let answer = app.http.get(&format!("/{name}")).await;
        assert_eq!(answer.status, StatusCode::OK, "/{name}");
        let expected = match name.rsplit('.').next().unwrap() {
            "html" => "text/html; charset=utf-8",
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("the page loads a .{other} file; add its expected type here"),
        };
        assert_eq!(answer.header("content-type"), Some(expected), "/{name}");
        assert!(answer.header("etag").is_some(), "/{name}");
        queue.extend(local_references(
            &name,
            &String::from_utf8_lossy(&answer.body),
        ));
    }

    assert!(seen.iter().any(|name| name.ends_with(".js")), "{seen:?}");
    assert!(seen.iter().any(|name| name.ends_with(".css")), "{seen:?}");
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style_so_it_runs_under_the_csp() {
    let app = spawn_app().await;
    let page = String::from_utf8(app.http.get("/").await.body.to_vec()).unwrap();
    let lowered = page.to_ascii_lowercase();

    for (at, _) in lowered.match_indices("<script") {
        let tag = &lowered[at..at + lowered[at..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}>");
    }
    assert!(!lowered.contains("<style"), "inline <style> element");
    assert!(!lowered.contains(" style="), "inline style attribute");
    assert!(!lowered.contains("javascript:"), "javascript: URL");
    for handler in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        " oninput=",
        " onchange=",
    ] {
        assert!(!lowered.contains(handler), "inline event handler {handler}");
    }
}

#[tokio::test]
async fn an_unchanged_asset_revalidates_with_304_and_no_body() {
    let app = spawn_app().await;
    let page = app.http.get("/").await;
    let etag = page.header("etag").unwrap();

    let again = app.http.get_with("/", &[("if-none-match", etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag));

    let changed = app
        .http
        .get_with("/", &[("if-none-match", "W/\"stale\"")])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body, page.body);
}

#[tokio::test]
async fn assets_are_gzip_compressed_for_clients_that_accept_it() {
    let app = spawn_app().await;
    let plain = app.http.get("/").await;

    let compressed = app.http.get_with("/", &[("accept-encoding", "gzip")]).await;

    assert_eq!(compressed.status, StatusCode::OK);
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    assert!(
        compressed
            .header("vary")
            .unwrap()
            .contains("accept-encoding")
    );
    assert!(compressed.body.len() < plain.body.len());
    let mut decompressed = Vec::new();
    flate2::read::GzDecoder::new(&compressed.body[..])
        .read_to_end(&mut decompressed)
        .unwrap();
    assert_eq!(decompressed, plain.body);
}
