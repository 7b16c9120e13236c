//! HTTP integration tests: the real ingress in front of the real sandbox, both on free ports.

mod assets;
mod batch;
mod bodies;
mod failures;
mod fairness;
mod mcp;
mod metrics;
mod proxying;
mod rate_limit;
mod request_id;
mod routing;
mod shutdown;
mod support;
mod tenants;
