//! Logging set-up, the same in both binaries: JSON for Cloud Logging or human-readable text,
//! `RUST_LOG` refining the default `info` level (libraries that chatter per request kept to
//! warnings unless it names them); which successful requests get their line
//! (`REQUEST_LOG_SAMPLE`); the trace id that both put on a request's log lines; and, when the
//! `OTEL_*` variables name a collector, the spans exported as OpenTelemetry traces
//! ([`traces`]), with each JSON line carrying its span's trace for Cloud Logging
//! (`logging.googleapis.com/trace`, `…/spanId`, `…/trace_sampled`), so it nests the lines
//! under the request's trace.

pub mod traces;

use std::{
    hash::{BuildHasher, BuildHasherDefault, DefaultHasher},
    io::Write,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::http::HeaderMap;
use contract::ids;
use opentelemetry::trace::SpanContext;
use tracing_subscriber::{
    EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line in Cloud Logging's format (tracing-stackdriver).
    Json,
}

/// How a binary logs: [`LogFormat`] and [`Sample`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Logging {
    pub format: LogFormat,
    /// The successful requests whose line is written.
    pub sample: Sample,
}

/// The share of successful requests whose request line is written (`REQUEST_LOG_SAMPLE`, from 0
/// to 1); a request that failed, was refused or broke anything is always logged. The choice
/// follows from the request id, so the ingress and the sandbox keep the lines of the same
/// requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample(f64);

impl Default for Sample {
    fn default() -> Self {
        Self(1.0)
    }
}

impl Sample {
    /// A share from 0 to 1.
    pub fn new(share: f64) -> Option<Self> {
        (0.0..=1.0).contains(&share).then_some(Self(share))
    }

    /// The share, as `REQUEST_LOG_SAMPLE` reads.
    pub fn share(self) -> f64 {
        self.0
    }

    /// Whether a successful request with this id gets its line; one without an id always does.
    fn keeps(self, request_id: Option<&str>) -> bool {
        match request_id {
            _ if self.0 >= 1.0 => true,
            None => true,
            // The same hash in both binaries (fixed keys): a request is kept on both sides.
            Some(id) => {
                let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(id);
                (hash as f64) < self.0 * u64::MAX as f64
            }
        }
    }
}

/// [`Sample`]'s share as bits, set once by [`init`].
static SAMPLE: AtomicU64 = AtomicU64::new(1.0f64.to_bits());

/// Whether the line of a successful request with this id is written (see [`Sample`]). Cheap:
/// a request not kept costs no formatting.
pub fn logs_success(request_id: Option<&str>) -> bool {
    Sample(f64::from_bits(SAMPLE.load(Ordering::Relaxed))).keeps(request_id)
}

/// Installs the global subscriber for the binary `service_name`, with trace export when the
/// environment asks for it ([`traces`]): then what stops the export, to be awaited before the
/// process ends. A subscriber already installed (a test that runs a server in its own process
/// twice) is kept, not a panic.
pub fn init(
    Logging { format, sample }: Logging,
    service_name: &'static str,
) -> Option<traces::Exporting> {
    SAMPLE.store(sample.0.to_bits(), Ordering::Relaxed);
    let filter = filter(std::env::var(EnvFilter::DEFAULT_ENV).ok().as_deref());
    let (tracer, exporting) = traces::start(service_name).unzip();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer)));
    let _ = match format {
        LogFormat::Json if exporting.is_some() => registry
            .with(tracing_stackdriver::layer().with_writer(TracedStdout::from_env()))
            .try_init(),
        LogFormat::Json => registry.with(tracing_stackdriver::layer()).try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(colours()))
            .try_init(),
    };
    exporting
}

/// Standard output for JSON lines, each given the trace of the span it was logged in, as
/// Cloud Logging reads it: `logging.googleapis.com/trace` (`projects/PROJECT/traces/ID` when
/// `GOOGLE_CLOUD_PROJECT` names the project), `…/spanId` and `…/trace_sampled`.
struct TracedStdout {
    project: Option<String>,
}

impl TracedStdout {
    fn from_env() -> Self {
        let project = std::env::var("GOOGLE_CLOUD_PROJECT")
            .ok()
            .filter(|project| {
                !project.is_empty()
                    && project
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || b"-.:".contains(&byte))
            });
        Self { project }
    }
}

impl<'a> MakeWriter<'a> for TracedStdout {
    type Writer = TracedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        TracedLine {
            project: self.project.as_deref(),
            span: traces::current(),
            line: Vec::new(),
        }
    }
}

/// One JSON line, written to standard output with its trace fields when dropped.
struct TracedLine<'a> {
    project: Option<&'a str>,
    span: Option<SpanContext>,
    line: Vec<u8>,
}

impl Write for TracedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TracedLine<'_> {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.line);
        let traced = match (&self.span, line.strip_prefix(b"{")) {
            (Some(span), Some(rest)) => {
                let trace = match self.project {
                    Some(project) => format!("projects/{project}/traces/{}", span.trace_id()),
                    None => span.trace_id().to_string(),
                };
                let mut traced = format!(
                    "{{\"logging.googleapis.com/trace\":\"{trace}\",\
                     \"logging.googleapis.com/spanId\":\"{}\",\
                     \"logging.googleapis.com/trace_sampled\":{},",
                    span.span_id(),
                    span.is_sampled()
                )
                .into_bytes();
                traced.extend_from_slice(rest);
                Some(traced)
            }
            _ => None,
        };
        let _ = std::io::stdout()
            .lock()
            .write_all(traced.as_deref().unwrap_or(&line));
    }
}

/// Libraries whose `info` lines are per-request chatter: the MCP SDK logs every stateless
/// request's start (with the client's description of itself) and end, beside the ingress's own
/// request line.
const CHATTY: [&str; 1] = ["rmcp"];

/// `RUST_LOG`'s directives (`info` when unset or invalid), with [`CHATTY`] libraries at `warn`
/// unless they name them.
fn filter(directives: Option<&str>) -> EnvFilter {
    let directives = directives.unwrap_or("info");
    let mut filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in CHATTY {
        if !directives.contains(target) {
            filter =
                filter.add_directive(format!("{target}=warn").parse().expect("a valid directive"));
        }
    }
    filter
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatty_libraries_log_warnings_only_unless_rust_log_names_them() {
        for directives in [
            None,
            Some("info"),
            Some("ingress=debug"),
            Some("not a filter"),
        ] {
            let filter = filter(directives).to_string();
            assert!(filter.contains("rmcp=warn"), "{directives:?}: {filter}");
        }
        let named = filter(Some("info,rmcp=debug")).to_string();
        assert!(
            named.contains("rmcp=debug") && !named.contains("rmcp=warn"),
            "{named}"
        );
    }

    #[test]
    fn a_sample_keeps_about_its_share_of_ids_and_the_same_ids_each_time() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("request-{i}")).collect();
        let kept = |sample: Sample| {
            ids.iter()
                .filter(|id| sample.keeps(Some(id.as_str())))
                .count()
        };
        assert_eq!(kept(Sample::default()), ids.len());
        assert_eq!(kept(Sample::new(0.0).unwrap()), 0);
        let tenth = kept(Sample::new(0.1).unwrap());
        assert!((800..1200).contains(&tenth), "{tenth} of 10000 kept at 0.1");
        let tenth_again = kept(Sample::new(0.1).unwrap());
        assert_eq!(tenth, tenth_again, "the choice follows from the id");
        assert!(
            Sample::new(0.0).unwrap().keeps(None),
            "no id: always logged"
        );
        assert_eq!(Sample::new(1.5), None);
        assert_eq!(Sample::new(-0.1), None);
    }
}
