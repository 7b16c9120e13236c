//! Why a scenario could not run. Lost requests are not errors: they are counted in the summary.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is missing: build it with `cargo build -p {name}`", path.display())]
    MissingBinary { name: &'static str, path: PathBuf },

    #[error("{name} did not become healthy: {reason}; its output is in {}", log.display())]
    Unhealthy {
        name: &'static str,
        reason: String,
        log: PathBuf,
    },

    #[error(
        "scenario {scenario} needs the stack loadtest starts itself (its tenants file holds keys loadtest makes); run it without --target"
    )]
    NeedsOwnStack { scenario: &'static str },

    #[error("scenario {scenario} needs at least {needed} users")]
    TooFewUsers {
        scenario: &'static str,
        needed: usize,
    },

    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("generating an API key: {0}")]
    Random(#[from] getrandom::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("goose: {0}")]
    Goose(#[from] Box<goose::GooseError>),

    #[error("batch-vs-loop: {0}")]
    Comparison(String),

    #[error("writing the JSON summary: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl From<goose::GooseError> for Error {
    fn from(error: goose::GooseError) -> Self {
        Error::Goose(Box::new(error))
    }
}
