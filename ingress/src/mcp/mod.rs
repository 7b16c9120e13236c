//! `/mcp`: the Model Context Protocol's Streamable HTTP transport, so AI agents reach the
//! service as tools (`run_javascript`, `list_examples`, `create_session`, `end_session`)
//! instead of through a hand-written wrapper around the API.
//!
//! The protocol is the official Rust SDK's (`rmcp`), served statelessly: no MCP session is
//! kept, each HTTP request is answered on its own with a JSON body, so any instance of the
//! ingress can answer any request. (A jsbox session, which `create_session` makes, lives in one
//! sandbox instance, as one made through the API does.) It speaks every revision the
//! SDK knows, up to 2026-07-28 (per-request `_meta`, no handshake) and 2025-11-25 (the
//! `initialize` handshake, answered but not remembered).
//!
//! Every HTTP request to `/mcp` passes the same steps as one to `/api/*`, each taking the
//! value of the step before it ([`serve`]'s extractors run in order): its `Host` and `Origin`
//! ([`origin`], 403), then identification (401) and one charge to the caller's rate limit
//! (429), all answered in the API's JSON error shape; then the body is read within
//! `MAX_BODY_BYTES`, `BODY_READ_TIMEOUT_MS` and the memory budget, as an execute request's is.
//! So the rate limit counts HTTP requests to `/mcp`, whatever they carry: one `tools/call` is
//! one request, and so are `initialize`, its `notifications/initialized` and `tools/list`.
//!
//! The caller goes to the tools as a request extension that only [`serve`] inserts; the tools
//! ([`tools`]) send the sandbox what the API would, through the same [`Proxy`].

pub mod origin;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use service_kit::MemoryBudget;

use crate::Config;
use crate::auth::{Admitted, Identification};
use crate::body::BodyLimits;
use crate::error::ApiError;
use crate::proxy::Proxy;
use crate::rate_limit::Allowance;
use origin::{AllowedHosts, PermittedSite};
use tools::Tools;

/// Where the MCP server answers.
pub const PATH: &str = "/mcp";

/// State of [`serve`].
#[derive(Clone)]
struct Mcp {
    service: StreamableHttpService<Tools, NeverSessionManager>,
    hosts: Arc<AllowedHosts>,
    identification: Identification,
    body_limits: BodyLimits,
    budget: Arc<MemoryBudget>,
}

impl FromRef<Mcp> for Identification {
    fn from_ref(mcp: &Mcp) -> Self {
        mcp.identification.clone()
    }
}

impl FromRef<Mcp> for Arc<AllowedHosts> {
    fn from_ref(mcp: &Mcp) -> Self {
        mcp.hosts.clone()
    }
}

/// `/mcp`, every method (the SDK answers 405 to all but `POST` in stateless mode).
pub fn router(
    config: &Config,
    proxy: Arc<Proxy>,
    identification: Identification,
    budget: Arc<MemoryBudget>,
) -> Router {
    let tools = Tools::new(proxy);
    let transport = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        // Checked by `PermittedSite` first, in the API's error shape, with the public host's
        // policy; the SDK's own check would allow loopback names only.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(config.max_body_bytes);
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        transport,
    );
    Router::new().route(PATH, any(serve)).with_state(Mcp {
        service,
        hosts: Arc::new(config.mcp_allowed_hosts.clone()),
        identification,
        body_limits: BodyLimits {
            max_bytes: config.max_body_bytes,
            deadline: config.connections.body_read_timeout,
        },
        budget,
    })
}

/// Handler for `/mcp`: a permitted site, an identified caller within its rate limit, a body
/// read within the limits; then the SDK answers, with the caller in the request's extensions
/// for the tools.
async fn serve(
    State(mcp): State<Mcp>,
    _site: PermittedSite,
    admitted: Admitted,
    request: Request,
) -> (Option<Allowance>, Result<Response, ApiError>) {
    let (caller, allowance) = admitted.into_parts();
    let answer = async {
        let (mut parts, body) = request.into_parts();
        let (body, charge) =
            crate::body::read_buffered(body, &parts.headers, mcp.body_limits, &mcp.budget).await?;
        parts.extensions.insert(caller);
        let response = mcp
            .service
            .handle(Request::from_parts(parts, body.into_body()))
            .await;
        // Held until the SDK has answered: it keeps the parsed request, about the body's size,
        // until then.
        drop(charge);
        Ok(response.map(Body::new).into_response())
    };
    (allowance, answer.await)
}
