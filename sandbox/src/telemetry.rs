//! Logging set-up, and the trace id taken from incoming requests for log correlation.

use axum::http::HeaderMap;
use contract::ids;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Installs the global subscriber: JSON for Cloud Logging or human-readable text. `RUST_LOG`
/// overrides the default `info` level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(tracing_stackdriver::layer()).try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(colours()))
            .try_init(),
    };
}

/// The trace id of a request (see [`contract::ids::trace_id`]).
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    ids::trace_id(
        header(ids::TRACEPARENT_HEADER),
        header(ids::CLOUD_TRACE_HEADER),
    )
}

/// Colours only for a terminal: `docker compose logs` and files get plain text.
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}
