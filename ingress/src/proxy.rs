//! Forwards `/api/*` to the sandbox over pooled keep-alive connections.
//!
//! Method, path, query, body and end-to-end headers go through unchanged (so do
//! `x-request-id`, `traceparent` and `X-Cloud-Trace-Context`, except that when traces are
//! exported `traceparent` names the proxy hop's span, under which the sandbox continues the
//! trace); hop-by-hop headers are dropped in both directions. The client's credentials and any `x-tenant-id`, `x-tenant-limits`,
//! `x-tenant-capabilities` or `x-client-key` it sent are dropped too, and the ingress sets
//! those headers itself from the caller it identified, so the sandbox, which trusts them,
//! always hears the truth.
//!
//! Bodies ([`crate::body`]): a `GET` or `HEAD` (and so the OpenAPI document) forwards none and
//! reads none; a JSON `POST /api/execute` or `POST /api/batch`, which may name a `url`, is read
//! whole (charged to the ingress's memory budget: 503 when it is full) only here, after the
//! caller was identified and charged to its rate limit, and gets the script loaded first
//! ([`crate::sources`]): the sandbox receives it as `code`. A batch is charged one request of
//! the rate limit per item, all at once (the request paid for the first). Every other body
//! streams to the sandbox as it arrives. Either way a
//! body over `MAX_BODY_BYTES` answers 413 (before anything is sent when `Content-Length` says
//! so) and one slower than `BODY_READ_TIMEOUT_MS` 408. A refused or broken connection answers
//! 502, no answer within `UPSTREAM_TIMEOUT_MS` answers 504.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use axum::response::{IntoResponse, Response};
use contract::{
    capabilities::CAPABILITIES_HEADER,
    request::BatchRequest,
    tenant::{ANONYMOUS, CLIENT_KEY_HEADER, TENANT_ID_HEADER, TENANT_LIMITS_HEADER},
};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use service_kit::{Charge, MemoryBudget, telemetry::traces};
use tower_http::timeout::TimeoutBody;
use tracing::Instrument;

use crate::auth::{Admitted, Caller, Identification, X_API_KEY};
use crate::body::{BodyLimits, Buffered, CutRecord, Streamed};
use crate::error::ApiError;
use crate::metrics::{Metrics, UpstreamError};
use crate::rate_limit::{Allowance, ClientKey};
use crate::refusals::Refusals;
use crate::sources::Loader;

/// The tenant of a proxied request, for the sandbox's scheduler, limits and metrics.
pub const X_TENANT_ID: HeaderName = HeaderName::from_static(TENANT_ID_HEADER);
/// The tenant's ceilings, e.g. `concurrency=2,timeout-ms=10000,memory-mb=64`.
pub const X_TENANT_LIMITS: HeaderName = HeaderName::from_static(TENANT_LIMITS_HEADER);
/// Which anonymous client a request is from, so the sandbox gives each its own turn.
pub const X_CLIENT_KEY: HeaderName = HeaderName::from_static(CLIENT_KEY_HEADER);
/// What the caller's tier was granted (`fetch`), as JSON.
pub const X_TENANT_CAPABILITIES: HeaderName = HeaderName::from_static(CAPABILITIES_HEADER);

/// How long an unused connection to the sandbox is kept; the sandbox closes idle connections
/// after its `HEADER_READ_TIMEOUT_MS` (60 s by default).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most unused connections to the sandbox kept open.
const POOL_MAX_IDLE: usize = 32;

/// Connecting to the sandbox is local (same host or same pod); if it takes longer than this,
/// it is down rather than slow.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The sandbox as seen from the ingress: where it is, how long it may take, and a pool of
/// keep-alive connections to it.
#[derive(Clone)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
    scheme: Scheme,
    authority: Authority,
    timeout: Duration,
    body_limits: BodyLimits,
    /// Bytes of buffered bodies across all connections (shared with the source loader).
    budget: Arc<MemoryBudget>,
    metrics: Arc<Metrics>,
    sources: Arc<Loader>,
    /// Clients the sandbox refused, until their `Retry-After`.
    refusals: Arc<Refusals>,
}

impl Proxy {
    /// A proxy to `sandbox_url` (`http://host:port`) that counts its failures in `metrics` and
    /// charges the bodies it buffers to `budget`.
    ///
    /// # Panics
    /// If `sandbox_url` has no authority; `Config` only accepts URLs that have one.
    pub fn new(
        config: &crate::Config,
        sandbox_url: &Uri,
        metrics: Arc<Metrics>,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        // Requests and answers are small: don't let Nagle's algorithm hold them back.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the sandbox's idle timeout, so the ingress never sends a request on
            // a connection the sandbox is closing.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // Bursts (many clients at once) open many connections; keep only enough of them.
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .build(connector);
        Self {
            client,
            scheme: sandbox_url.scheme().cloned().unwrap_or(Scheme::HTTP),
            authority: sandbox_url
                .authority()
                .cloned()
                .expect("the sandbox URL has a host"),
            timeout: config.upstream_timeout,
            body_limits: BodyLimits {
                max_bytes: config.max_body_bytes,
                deadline: config.connections.body_read_timeout,
            },
            sources: Arc::new(Loader::new(config.sources.clone(), budget.clone())),
            budget,
            metrics,
            refusals: Arc::default(),
        }
    }
}

/// State of [`forward`]: the sandbox, and who may reach it.
#[derive(Clone)]
pub struct Api {
    pub proxy: Arc<Proxy>,
    pub identification: Identification,
}

impl FromRef<Api> for Identification {
    fn from_ref(api: &Api) -> Self {
        api.identification.clone()
    }
}

/// Handler for `/api/*`: forwards the request of an identified caller within its rate limit
/// (see [`Admitted`]) and streams the sandbox's answer back, telling the caller its allowance.
pub async fn forward(
    State(api): State<Api>,
    admitted: Admitted,
    request: Request,
) -> (Option<Allowance>, Result<Response, ApiError>) {
    let (caller, mut allowance) = admitted.into_parts();
    let answer = api.proxy.send(&caller, request, &mut allowance).await;
    (allowance, answer)
}

/// `GET /api/openapi.json`: the API's description is public, so it is forwarded for no one
/// in particular (see [`Identification::nobody`]), with no key asked and no rate limit, even
/// where the anonymous tier is off.
pub async fn forward_document(
    State((proxy, nobody)): State<(Arc<Proxy>, Caller)>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy.send(&nobody, request, &mut None).await
}

impl Proxy {
    /// Sends `request` to the sandbox on behalf of `caller`: its answer, or the ingress's own
    /// when the path is not the sandbox's to see, the body is refused or the sandbox fails. A
    /// batch's further items are charged to the caller's rate limit here, and `allowance`
    /// says what is left after them.
    pub(crate) async fn send(
        &self,
        caller: &Caller,
        request: Request,
        allowance: &mut Option<Allowance>,
    ) -> Result<Response, ApiError> {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .filter(|target| is_forwardable_path(target.path()))
            .cloned()
            .ok_or(ApiError::NotFound)?;

        let cut = CutRecord::default();
        // A buffered body's charge, held until the sandbox has answered: hyper holds the bytes
        // until they are sent.
        let mut held: Option<Charge> = None;
        let mut buffered_length = None;
        let execute = parts.method == Method::POST && runs_one_script(path_and_query.path());
        let batch = parts.method == Method::POST && path_and_query.path() == "/api/batch";
        if (execute || batch)
            && let Err(refused) = self.refusals.check(caller)
        {
            self.metrics.refused_recently(&caller.tier().id);
            return Err(refused);
        }
        let body = if matches!(parts.method, Method::GET | Method::HEAD) {
            Body::empty()
        } else if execute && crate::sources::declares_json(&parts.headers) {
            let (body, charge) =
                crate::body::read_buffered(body, &parts.headers, self.body_limits, &self.budget)
                    .await?;
            let charge = held.insert(charge);
            match self
                .sources
                .rewrite(&caller.tier().id, &caller.tier().sources, body, charge)
                .await
            {
                Ok(body) => {
                    buffered_length = Some(body.len());
                    body.into_body()
                }
                Err(refused) => return Ok(refused.into_response()),
            }
        } else if batch && crate::sources::declares_json(&parts.headers) {
            let (body, charge) =
                crate::body::read_buffered(body, &parts.headers, self.body_limits, &self.budget)
                    .await?;
            let charge = held.insert(charge);
            match self.batch_body(caller, body, charge, allowance).await {
                Ok(body) => {
                    buffered_length = Some(body.len());
                    body.into_body()
                }
                Err(refused) => return Ok(refused),
            }
        } else {
            crate::body::check_declared_length(&parts.headers, self.body_limits)?;
            Body::new(Streamed::new(body, self.body_limits, cut.clone()))
        };

        parts.uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ApiError::Internal("could not build the sandbox URL"))?;
        parts.version = Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers);
        // The client set a length for its own body encoding; hyper sets the one of the body it
        // sends (or sends it chunked), and the Host of the sandbox's URL.
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::HOST);
        parts.headers.remove(header::EXPECT);
        // Sent in the pieces it came in, so hyper cannot know its length: say it, as the client did.
        if let Some(length) = buffered_length {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        set_tenant_headers(&mut parts.headers, caller);
        // The hop's client span, whose context the sandbox continues (`traceparent`).
        let hop = traces::span(|| {
            tracing::info_span!(
                "proxy",
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                http.request.method = %parts.method,
                server.address = %self.authority,
                url.path = parts.uri.path(),
                http.response.status_code = tracing::field::Empty,
            )
        });
        hop.in_scope(|| traces::inject(&mut parts.headers));
        let upstream_request = hyper::Request::from_parts(parts, body);

        let response = tokio::time::timeout(self.timeout, self.client.request(upstream_request))
            .instrument(hop.clone())
            .await
            .map_err(|_| {
                self.metrics.upstream_failed(UpstreamError::Timeout);
                ApiError::UpstreamTimeout(self.timeout)
            })?
            .map_err(|error| {
                // A body the client cut short fails the upstream request: the client's fault.
                if let Some(cut) = cut.take() {
                    return cut.into_error();
                }
                self.metrics.upstream_failed(UpstreamError::Unavailable);
                ApiError::UpstreamUnavailable(error)
            })?;

        drop(held);
        traces::record_status(&hop, response.status().as_u16());
        let (mut parts, body) = response.into_parts();
        if execute || batch {
            self.refusals.remember(caller, parts.status, &parts.headers);
        }
        strip_hop_by_hop(&mut parts.headers);
        // Once the head has arrived, a body that stops flowing must not hold the client forever.
        let body = Body::new(TimeoutBody::new(self.timeout, body));
        Ok(Response::from_parts(parts, body))
    }
}

impl Proxy {
    /// A JSON batch's body as it goes to the sandbox: parsed once, its items beyond the first
    /// charged to the caller's rate limit (the request itself paid for one), and its script
    /// loaded when it names a `url`. A body that is not a batch goes as it is: the sandbox
    /// parses it the same way and says what is wrong with it. The answer when the ingress
    /// refuses it (429, 503, or a `source_*` error).
    async fn batch_body(
        &self,
        caller: &Caller,
        buffered: Buffered,
        charge: &mut Charge,
        allowance: &mut Option<Allowance>,
    ) -> Result<Buffered, Response> {
        let body = buffered
            .contiguous(charge)
            .map_err(|_| ApiError::MemoryBusy.into_response())?;
        // The request parsed from the body holds about as many bytes again.
        charge
            .grow(body.len())
            .map_err(|_| ApiError::MemoryBusy.into_response())?;
        let Ok(request) = BatchRequest::parse(&body) else {
            return Ok(buffered);
        };
        // Parsed, a batch has at least one item.
        let items = u32::try_from(request.inputs.len()).unwrap_or(u32::MAX);
        if let Some(items) = NonZeroU32::new(items) {
            let left = caller
                .charge_rest_of_batch(items, &self.metrics)
                .map_err(IntoResponse::into_response)?;
            if left.is_some() {
                *allowance = left;
            }
        }
        let tier = caller.tier();
        let loaded = self
            .sources
            .resolve(&tier.id, &tier.sources, request, body.len(), charge)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(loaded.unwrap_or(buffered))
    }
}

/// Replaces whatever the client said about its tenant with what the ingress knows, and keeps
/// its key from going any further.
fn set_tenant_headers(headers: &mut HeaderMap, caller: &Caller) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(X_API_KEY);
    headers.remove(X_TENANT_LIMITS);
    headers.remove(X_CLIENT_KEY);
    headers.remove(X_TENANT_CAPABILITIES);
    let id = HeaderValue::from_str(&caller.tier().id).expect("tenant ids are plain ASCII");
    headers.insert(X_TENANT_ID, id);
    if *caller.tier().id == *ANONYMOUS
        && let ClientKey(Some(client)) = caller.client()
        && let Ok(key) = HeaderValue::from_str(&client.to_string())
    {
        headers.insert(X_CLIENT_KEY, key);
    }
    if let Some(limits) = &caller.tier().limits {
        headers.insert(X_TENANT_LIMITS, limits.clone());
    }
    if let Some(capabilities) = &caller.tier().capabilities {
        headers.insert(X_TENANT_CAPABILITIES, capabilities.clone());
    }
}

/// Whether a `POST` to `path` takes an execute request (which may name a `url` to load):
/// `/api/execute`, or a session's `/api/sessions/{id}/execute`.
fn runs_one_script(path: &str) -> bool {
    path == "/api/execute"
        || path
            .strip_prefix("/api/sessions/")
            .and_then(|rest| rest.strip_suffix("/execute"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether `path` may be sent to the sandbox: a route under `/api/` (not `/api/` itself), free
/// of anything the sandbox (or a proxy between) could resolve to a route outside `/api/`, such
/// as `/api/../healthz`, percent-encoded dots or slashes, or backslashes.
fn is_forwardable_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/").filter(|rest| !rest.is_empty()) else {
        return false;
    };
    let lowered = path.to_ascii_lowercase();
    let has_encoded_separator = ["%2e", "%2f", "%5c"]
        .iter()
        .any(|encoded| lowered.contains(encoded));
    let has_dot_segment = rest
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    !has_encoded_separator && !has_dot_segment && !path.contains('\\')
}

/// Removes the hop-by-hop headers, including any the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named_by_connection) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_requests_are_those_of_execute_and_of_a_sessions_execute() {
        for path in ["/api/execute", "/api/sessions/0a1b/execute"] {
            assert!(runs_one_script(path), "{path}");
        }
        for path in [
            "/api/batch",
            "/api/sessions",
            "/api/sessions/0a1b",
            "/api/sessions//execute",
            "/api/sessions/a/b/execute",
        ] {
            assert!(!runs_one_script(path), "{path}");
        }
    }

    #[test]
    fn only_plain_api_paths_are_forwardable() {
        for path in [
            "/api/execute",
            "/api/examples",
            "/api/a.b/c..d",
            "/api/x%20y",
        ] {
            assert!(is_forwardable_path(path), "{path}");
        }
        for path in [
            "/api",
            "/api/",
            "/healthz",
            "/api/../healthz",
            "/api/./../healthz",
            "/api/x/../../healthz",
            "/api/..",
            "/api/%2e%2e/healthz",
            "/api/%2E%2E/healthz",
            "/api/.%2e/healthz",
            "/api/..%2fhealthz",
            "/api/..%5chealthz",
            "/api/..\\healthz",
        ] {
            assert!(!is_forwardable_path(path), "{path}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private-hop"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-private-hop", "1"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }

        strip_hop_by_hop(&mut headers);

        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "traceparent", "x-request-id"]);
    }
}
