//! Only `/api/*`, `/healthz` and the page are served; the sandbox's other routes stay private.

use axum::http::{Method, StatusCode};

use crate::support::{raw_exchange, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_ingress_answers_its_own_health_check() {
    let app = spawn_app().await;

    let health = app.http.get("/healthz").await;

    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
}

#[tokio::test]
async fn unknown_paths_get_404_in_the_json_error_shape() {
    let app = spawn_app().await;

    for path in [
        "/nope",
        "/index.htm",
        "/api",
        "/healthz/x",
        "/app.js/x",
        "/.env",
        "/%2e%2e/Cargo.toml",
    ] {
        let answer = app.http.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.error_kind(), "not_found", "{path}");
    }
}

#[tokio::test]
async fn wrong_methods_on_the_page_and_health_check_get_405() {
    let app = spawn_app().await;

    for path in ["/", "/healthz"] {
        let answer = app.http.call(Method::POST, path, &[], "").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(answer.error_kind(), "method_not_allowed", "{path}");
    }
}

#[tokio::test]
async fn the_sandbox_health_route_is_unreachable_through_the_ingress() {
    let app = spawn_app().await;
    // It exists on the sandbox itself.
    assert_eq!(
        app.sandbox.http.get("/healthz").await.status,
        StatusCode::OK
    );
    // The ingress refuses these paths itself, exactly as it refuses any unknown path, rather
    // than trusting every server behind it to resolve them the same way.
    let ingress_not_found = app.http.get("/no-such-page").await;

    for path in [
        "/api/../healthz",
        "/api/./../healthz",
        "/api/x/../../healthz",
        "/api/%2e%2e/healthz",
        "/api/%2E%2E/healthz",
        "/api/.%2e/healthz",
        "/api/..%2fhealthz",
        "/api/..%2Fhealthz",
        "/api/..%5chealthz",
        "/api/..\\healthz",
    ] {
        let answer = app.http.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.body, ingress_not_found.body, "{path}");
    }
    // Under /api/ it is just an unknown API path of the sandbox.
    assert_eq!(
        app.http.get("/api/healthz").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_absolute_form_target_cannot_reach_the_sandbox_health_route() {
    let app = spawn_app().await;
    let request = format!(
        "GET http://{}/api/../healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        app.sandbox.addr(),
        app.sandbox.addr()
    );

    let (status, answer) = raw_exchange(app.addr(), request.as_bytes()).await;

    assert_eq!(status, 404, "{answer}");
    let ingress_not_found = app.http.get("/no-such-page").await;
    let expected_body = std::str::from_utf8(&ingress_not_found.body).unwrap();
    assert!(answer.ends_with(expected_body), "{answer}");
}

#[tokio::test]
async fn every_path_under_api_asks_for_the_key_but_the_api_description() {
    let app = spawn_app_with(|config| config.tenants.anonymous.enabled = false).await;

    for path in ["/api/", "/api/examples", "/api/no-such-route"] {
        let answer = app.http.get(path).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.error_kind(), "unauthorized", "{path}");
    }
    // `/api` is not under `/api/`: it is a page that does not exist.
    assert_eq!(app.http.get("/api").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.http.get("/api/openapi.json").await.status,
        StatusCode::OK
    );
}
