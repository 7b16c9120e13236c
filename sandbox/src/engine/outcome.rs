//! What an execution produces: its result or error, its console output and its duration.

use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

/// The end of one execution.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The script's result as JSON, or why it failed.
    pub result: Result<serde_json::Value, ScriptError>,
    /// Console output in call order, captured even when the script fails.
    pub log: Vec<ConsoleEntry>,
    /// True when console output was cut at the entry or byte cap.
    pub log_truncated: bool,
    /// Wall-clock time from the start of evaluation to the end of serialisation.
    pub duration: Duration,
}

/// One console call.
#[derive(Debug, Clone, Serialize)]
pub struct ConsoleEntry {
    /// The console method: `log`, `info`, `warn`, `error`, `debug`, `trace`, `assert`, `table`,
    /// `dir`, `count`, `timeLog`, `timeEnd`, `group`, `groupCollapsed`, `groupEnd`, or
    /// `truncated` for the marker that ends a cut log.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the call was made, serialised as RFC 3339 with milliseconds in UTC.
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: SystemTime,
    /// The call's arguments as JSON (see `serialize` for values JSON cannot hold).
    pub data: Vec<serde_json::Value>,
}

/// Why an execution failed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScriptError {
    pub kind: ErrorKind,
    /// The error's `name` (`TypeError`, ...); `Uncaught` for thrown non-error values, and the
    /// service's own name (`TimeoutError`, ...) for limits.
    pub name: String,
    pub message: String,
    pub stack: Option<String>,
}

/// The class of failure, stable for clients to branch on.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source does not parse.
    Syntax,
    /// The script threw, or its result promise rejected.
    Exception,
    /// The execution ran past its time limit.
    Timeout,
    /// The execution ran out of its memory limit.
    Memory,
    /// Recursion ran past the stack limit.
    StackOverflow,
    /// The result is larger than the result byte cap.
    OutputLimit,
    /// The result is a promise that can never settle: no job or timer is left to settle it.
    UnsettledPromise,
}

impl ErrorKind {
    /// The kind as it appears in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::StackOverflow => "stack_overflow",
            Self::OutputLimit => "output_limit",
            Self::UnsettledPromise => "unsettled_promise",
        }
    }
}

impl ScriptError {
    /// An error raised by the service itself rather than thrown by the script.
    pub fn limit(kind: ErrorKind, name: &str, message: String) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            message,
            stack: None,
        }
    }
}

impl Outcome {
    /// The outcome kind for logs and metrics: `success` or the error kind.
    pub fn kind(&self) -> &'static str {
        match &self.result {
            Ok(_) => "success",
            Err(error) => error.kind.as_str(),
        }
    }
}

fn rfc3339_millis<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}
