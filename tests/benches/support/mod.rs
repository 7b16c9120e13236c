//! What both benchmarks need: a pooled HTTP client like a load generator's, and percentiles.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// An HTTP/1.1 client with keep-alive connections for up to 64 concurrent requests.
pub fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// The `p`-th percentile of `latencies` in microseconds; NaN when there are none.
pub fn percentile_micros(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}
