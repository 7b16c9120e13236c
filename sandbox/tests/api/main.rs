//! HTTP integration tests of the sandbox: the real server on a free port, spoken to over HTTP.

mod batch;
mod console;
mod engine_faults;
mod errors;
mod fetch;
mod hostile;
mod input;
mod isolation;
mod limits;
mod memory;
mod metrics;
mod requests;
mod results;
mod sessions;
mod streaming;
mod support;
mod tenants;
mod tiers;
mod typescript;
mod web_apis;
