//! HTTP integration tests of the sandbox: the real server on a free port, spoken to over HTTP.

mod console;
mod errors;
mod fetch;
mod hostile;
mod input;
mod isolation;
mod limits;
mod metrics;
mod requests;
mod results;
mod support;
mod tenants;
mod web_apis;
