//! `fetch` for scripts: the request a script's `fetch()` asks for, made by the supervisor (the
//! worker process has no network), only to the hosts and with the methods the tenant's
//! capabilities list, never to an internal address, and within the execution's caps and
//! deadline.
//!
//! - Addresses: the `egress` crate's rules, applied to every address a name resolves to when
//!   connecting, and to addresses written in URLs; redirects are followed by the HTTP client
//!   only after each hop passed the same rules and the allow-list, at most
//!   [`egress::client::MAX_REDIRECTS`].
//! - Caps: requests per execution, bytes of each response body (streamed, stopped at the cap),
//!   bytes sent and received over the execution; all from [`FetchSettings`]. Time: a request
//!   still running at the execution's deadline ends the execution as a `timeout`.
//! - Nothing of the service's: no proxy, cookie store or credentials; request headers that
//!   only the client may set (`Host`, `Cookie`, `Content-Length`, ...) are dropped, as the
//!   Fetch Standard drops them, and `Set-Cookie` is not shown to scripts.
//!
//! - No trace context: the request carries the script's headers only, never the execution's
//!   `traceparent`; the execution's trace records the call's origin and method (its
//!   `host_call` span), never its path or query.
//!
//! Every refusal rejects the script's promise with a `TypeError` whose message names the rule.

use std::sync::Mutex;

use base64::{Engine, prelude::BASE64_STANDARD};
use contract::capabilities::FetchGrant;
use egress::{
    AddressPolicy,
    client::{EgressError, check_url, client_builder, redirect_policy, refusal},
};
use engine::{CallContext, HostError, Json};
use hashlink::LruCache;
use reqwest::{
    Method,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde::Deserialize;
use serde_json::json;
use service_kit::telemetry::traces;
use url::Url;

use crate::config::FetchSettings;

/// HTTP clients kept, one per distinct allow-list (each carries its redirect check).
const CLIENTS: usize = 256;
/// Longest URL a request may name.
const MAX_URL_LENGTH: usize = 8 * 1024;
/// Most request headers, and most bytes of their names and values together.
const MAX_HEADERS: usize = 128;
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Request headers a script may not set (the Fetch Standard's forbidden request headers, less
/// those it lets through): the HTTP client sets them, or they carry what is not the script's.
const FORBIDDEN_HEADERS: &[&str] = &[
    "accept-charset",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "connection",
    "content-length",
    "cookie",
    "cookie2",
    "date",
    "dnt",
    "expect",
    "host",
    "keep-alive",
    "origin",
    "referer",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
];

/// The counters `fetch` charges per execution.
const REQUESTS: &str = "fetch.requests";
const BYTES: &str = "fetch.bytes";

/// What the script's `fetch` sends as its second argument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    method: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// Makes scripts' requests; one per sandbox.
pub struct Fetcher {
    settings: FetchSettings,
    policy: AddressPolicy,
    clients: Mutex<LruCache<FetchGrant, reqwest::Client>>,
}

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Self {
        let policy = AddressPolicy {
            allow_loopback: settings.allow_loopback,
        };
        Self {
            settings,
            policy,
            clients: Mutex::new(LruCache::new(CLIENTS)),
        }
    }

    /// The host function: `fetch(url, {method, headers, body})` as the engine's `fetch.js`
    /// calls it.
    pub async fn fetch(
        self: std::sync::Arc<Self>,
        arguments: Vec<Json>,
        call: CallContext,
    ) -> Result<Json, HostError> {
        let Some(grant) = call.capabilities.fetch.clone() else {
            return Err(HostError::type_error(
                "fetch is not enabled for this tenant (the tenants file grants it)",
            ));
        };
        let (url, options) = arguments_of(arguments)?;
        let shown = shown_url(&url);
        let url = Url::parse(&url)
            .map_err(|_| HostError::type_error(format!("Failed to parse URL from {shown}")))?;
        if traces::enabled() {
            tracing::Span::current().record("url.origin", origin(&url));
        }
        check_url(&url, self.policy).map_err(|error| refused(&url, &error))?;
        let host = url.host_str().unwrap_or_default();
        if !grant.allows_host(host) {
            return Err(HostError::type_error(format!(
                "fetch to {} refused: the host {host} is not in this tenant's fetch allow-list",
                origin(&url)
            )));
        }
        if !grant.allows_method(&options.method) {
            return Err(HostError::type_error(format!(
                "fetch to {} refused: the method {} is not allowed for this tenant (allowed: {})",
                origin(&url),
                options.method,
                grant.methods.join(", ")
            )));
        }
        // One of the operator's allowed methods.
        if traces::enabled() {
            tracing::Span::current().record("http.request.method", options.method.as_str());
        }
        let method = Method::from_bytes(options.method.as_bytes()).map_err(|_| {
            HostError::type_error(format!("'{}' is not a valid HTTP method", options.method))
        })?;
        let headers = request_headers(&options.headers)?;
        let body = match &options.body {
            Some(body) => Some(
                BASE64_STANDARD
                    .decode(body)
                    .map_err(|_| HostError::type_error("the request body is not valid"))?,
            ),
            None => None,
        };
        let max = &self.settings;
        call.usage.charge(REQUESTS, 1, max.max_requests).map_err(|_| {
            HostError::type_error(format!(
                "fetch to {} refused: this execution made its {} requests, the most it may make \
                 (FETCH_MAX_REQUESTS)",
                origin(&url),
                max.max_requests
            ))
        })?;
        let sent = body.as_ref().map_or(0, Vec::len) as u64;
        self.charge_bytes(&call, &url, sent)?;

        let client = self.client_for(&grant)?;
        let mut request = client.request(method, url.clone()).headers(headers);
        if let Some(body) = body {
            request = request.body(body);
        }
        // No timeout of its own: the execution's deadline ends the call (see the supervisor).
        let mut response = request.send().await.map_err(|error| failed(&url, &error))?;
        if let Some(length) = response.content_length()
            && length > max.max_response_bytes
        {
            return Err(too_large(&url, max.max_response_bytes));
        }
        let mut received = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| failed(&url, &error))?
        {
            if (received.len() + chunk.len()) as u64 > max.max_response_bytes {
                return Err(too_large(&url, max.max_response_bytes));
            }
            self.charge_bytes(&call, &url, chunk.len() as u64)?;
            received.extend_from_slice(&chunk);
        }
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str() != "set-cookie" && name.as_str() != "set-cookie2")
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let status = response.status();
        Ok(json!({
            "status": status.as_u16(),
            "statusText": status.canonical_reason().unwrap_or(""),
            "url": response.url().as_str(),
            "redirected": response.url() != &url,
            "headers": headers,
            "body": BASE64_STANDARD.encode(&received),
        }))
    }

    fn charge_bytes(&self, call: &CallContext, url: &Url, bytes: u64) -> Result<(), HostError> {
        let max = self.settings.max_total_bytes;
        call.usage.charge(BYTES, bytes, max).map(drop).map_err(|_| {
            HostError::type_error(format!(
                "fetch to {} refused: this execution's requests would send and receive more \
                 than {max} bytes (FETCH_MAX_TOTAL_BYTES)",
                origin(url)
            ))
        })
    }

    /// The client for an allow-list: its redirect policy checks every hop against it.
    fn client_for(&self, grant: &FetchGrant) -> Result<reqwest::Client, HostError> {
        let mut clients = self.clients.lock().expect("fetch clients");
        if let Some(client) = clients.get(grant) {
            return Ok(client.clone());
        }
        let allowed = grant.clone();
        let redirects = redirect_policy(self.policy, move |url| {
            let host = url.host_str().unwrap_or_default();
            if allowed.allows_host(host) {
                Ok(())
            } else {
                Err(format!(
                    "the host {host} is not in this tenant's fetch allow-list"
                ))
            }
        });
        let client = client_builder(self.policy)
            .redirect(redirects)
            .build()
            .map_err(|error| {
                tracing::error!(%error, "could not build the fetch client");
                HostError::type_error("fetch is unavailable: the HTTP client could not be built")
            })?;
        clients.insert(grant.clone(), client.clone());
        Ok(client)
    }
}

fn arguments_of(arguments: Vec<Json>) -> Result<(String, Options), HostError> {
    let mut arguments = arguments.into_iter();
    let url = match arguments.next() {
        Some(Json::String(url)) if url.len() <= MAX_URL_LENGTH => url,
        Some(Json::String(_)) => {
            return Err(HostError::type_error(format!(
                "fetch refused: the URL is longer than {MAX_URL_LENGTH} bytes"
            )));
        }
        _ => return Err(HostError::type_error("fetch: the URL must be a string")),
    };
    let options = arguments
        .next()
        .map(serde_json::from_value::<Options>)
        .transpose()
        .map_err(|error| HostError::type_error(format!("fetch: bad options: {error}")))?
        .unwrap_or(Options {
            method: "GET".to_owned(),
            headers: Vec::new(),
            body: None,
        });
    Ok((url, options))
}

fn request_headers(pairs: &[(String, String)]) -> Result<HeaderMap, HostError> {
    let bytes: usize = pairs
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if pairs.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(HostError::type_error(format!(
            "fetch refused: at most {MAX_HEADERS} request headers of {MAX_HEADER_BYTES} bytes \
             in all"
        )));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str())
            || lower.starts_with("proxy-")
            || lower.starts_with("sec-")
        {
            continue;
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| HostError::type_error(format!("'{name}' is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HostError::type_error(format!("the value of '{name}' is not valid")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The URL as error messages show it: at most 200 characters.
fn shown_url(url: &str) -> String {
    match url.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &url[..end]),
        None => url.to_owned(),
    }
}

/// Scheme, host and port: what errors name (paths and queries may carry the script's secrets).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn refused(url: &Url, error: &EgressError) -> HostError {
    HostError::type_error(format!("fetch to {} refused: {error}", origin(url)))
}

fn too_large(url: &Url, max: u64) -> HostError {
    HostError::type_error(format!(
        "fetch to {}: the response body is larger than {max} bytes (FETCH_MAX_RESPONSE_BYTES)",
        origin(url)
    ))
}

/// A failed request: a rule's refusal (found in the error's sources), the deadline, or the
/// network.
fn failed(url: &Url, error: &reqwest::Error) -> HostError {
    match refusal(error) {
        // A name that does not resolve is the network's failure, not a rule's refusal.
        Some(unresolved @ EgressError::Unresolved { .. }) => {
            return HostError::type_error(format!("fetch to {} failed: {unresolved}", origin(url)));
        }
        Some(refusal) => return refused(url, refusal),
        None => {}
    }
    if error.is_timeout() {
        return HostError::type_error(format!("fetch to {} timed out connecting", origin(url)));
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    HostError::type_error(format!("fetch to {} failed: {cause}", origin(url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_request_headers_are_dropped_and_others_kept() {
        let pairs = [
            ("Cookie", "a=1"),
            ("Host", "evil"),
            ("Proxy-Authorization", "x"),
            ("Sec-Fetch-Mode", "x"),
            ("Authorization", "Bearer t"),
            ("X-Trace", "1"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let headers = request_headers(&pairs).unwrap();
        let names: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "x-trace"]);
        let bad = [("X".to_owned(), "a\nb".to_owned())];
        assert!(request_headers(&bad).is_err());
        let many = vec![("x-a".to_owned(), "1".to_owned()); MAX_HEADERS + 1];
        assert!(request_headers(&many).is_err());
        let huge = [("x-a".to_owned(), "1".repeat(MAX_HEADER_BYTES))];
        assert!(request_headers(&huge).is_err());
    }

    #[test]
    fn an_unresolvable_name_is_a_failure_and_a_blocked_address_a_refusal() {
        let url = Url::parse("https://nowhere.invalid/").unwrap();
        let unresolved = EgressError::Unresolved {
            host: "nowhere.invalid".into(),
            message: "no such name".into(),
        };
        let blocked = EgressError::Address {
            blocked: egress::check_address("10.0.0.1".parse().unwrap(), AddressPolicy::default())
                .unwrap_err(),
        };
        let (unresolved, blocked) = runtime().block_on(async {
            let client = reqwest::Client::builder()
                .dns_resolver(std::sync::Arc::new(Failing(unresolved)))
                .build()
                .unwrap();
            let unresolved = client.get(url.clone()).send().await.unwrap_err();
            let client = reqwest::Client::builder()
                .dns_resolver(std::sync::Arc::new(Failing(blocked)))
                .build()
                .unwrap();
            (
                unresolved,
                client.get(url.clone()).send().await.unwrap_err(),
            )
        });
        let unresolved = failed(&url, &unresolved).message;
        assert!(
            unresolved.contains("failed: nowhere.invalid could not be resolved"),
            "{unresolved}"
        );
        let blocked = failed(&url, &blocked).message;
        assert!(
            blocked.contains("refused: the URL's host 10.0.0.1 is a private address"),
            "{blocked}"
        );
    }

    /// A resolver that fails with a given egress error.
    struct Failing(EgressError);

    impl reqwest::dns::Resolve for Failing {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let error = self.0.clone();
            Box::pin(async move { Err(error.into()) })
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn error_messages_name_the_origin_not_the_path() {
        let url = Url::parse("https://api.example.com:8443/secret?token=abc").unwrap();
        assert_eq!(origin(&url), "https://api.example.com:8443");
        assert_eq!(shown_url(&"x".repeat(300)).len(), 203);
    }
}
