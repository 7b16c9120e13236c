//! Logging set-up, the same in both binaries: JSON for Cloud Logging or human-readable text,
//! `RUST_LOG` refining the default `info` level; and the trace id that both put on a request's
//! log lines, so Cloud Logging can group them under its trace.

use axum::http::HeaderMap;
use contract::ids;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line in Cloud Logging's format (tracing-stackdriver).
    Json,
}

/// Installs the global subscriber. A subscriber already installed (a test that runs a server
/// in its own process twice) is kept, not a panic.
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

/// Colours only for a terminal: `docker compose logs` and files get plain text.
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// The trace id of a request, from `traceparent` or `X-Cloud-Trace-Context` (see
/// [`contract::ids::trace_id`]).
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    ids::trace_id(
        header(ids::TRACEPARENT_HEADER),
        header(ids::CLOUD_TRACE_HEADER),
    )
}
