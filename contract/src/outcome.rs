//! How an execution can fail: the `error` of a finished execution's answer. The engine decides
//! the kind from what it did (a limit it enforced, a parse it could not finish), never from the
//! text of what a script threw; the supervisor adds the kinds only it can see (`crashed`, and a
//! `timeout` it enforced by killing the worker).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The class of failure, stable for clients to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The source does not parse.
    Syntax,
    /// The script threw, a job or timer callback threw, a promise was rejected and never
    /// handled, or the result promise rejected.
    Exception,
    /// The execution ran past its time limit.
    Timeout,
    /// The runtime ran out of its memory limit.
    Memory,
    /// Recursion ran past the stack limit.
    StackOverflow,
    /// The result is larger than the result byte cap.
    OutputLimit,
    /// The result is a promise that can never settle: no job or timer is left to settle it.
    UnsettledPromise,
    /// The worker process running the execution died (a signal, an abort, a fault in the
    /// engine); only this execution is lost.
    Crashed,
    /// A session's execution whose worker had to be killed, crashed or ran out of memory: the
    /// session has ended with it, and its id is unknown from now on. The message says why.
    SessionLost,
}

impl ErrorKind {
    /// Every kind, for metrics that expose each from the start.
    pub const ALL: [Self; 9] = [
        Self::Syntax,
        Self::Exception,
        Self::Timeout,
        Self::Memory,
        Self::StackOverflow,
        Self::OutputLimit,
        Self::UnsettledPromise,
        Self::Crashed,
        Self::SessionLost,
    ];

    /// The kind as it appears in JSON, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::StackOverflow => "stack_overflow",
            Self::OutputLimit => "output_limit",
            Self::UnsettledPromise => "unsettled_promise",
            Self::Crashed => "crashed",
            Self::SessionLost => "session_lost",
        }
    }
}

/// Why an execution failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScriptError {
    pub kind: ErrorKind,
    /// The error's `name` (`TypeError`, ...), `Uncaught` for thrown non-errors, or the
    /// service's own name for limits (`TimeoutError`, ...).
    pub name: String,
    pub message: String,
    /// The JavaScript stack (`at f (script.js:3:11)`), when there is one.
    #[schema(required = true)]
    pub stack: Option<String>,
}

impl ScriptError {
    /// An error raised by the service rather than thrown by the script.
    pub fn limit(kind: ErrorKind, name: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            message: message.into(),
            stack: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_serialises_as_its_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
