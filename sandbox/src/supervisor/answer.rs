//! A finished execution as the HTTP layer answers it, made from what its worker reported or
//! from how the supervisor ended it. What a worker sends is checked here: it runs attackers'
//! code, so its result and its published console output must both be JSON to be passed on.

use std::time::{Duration, Instant};

use contract::{
    outcome::{ErrorKind, ScriptError},
    worker::{Finished, LogSnapshot, NESTED_TOO_DEEPLY},
};
use serde_json::value::RawValue;

/// A finished execution as the HTTP layer answers it: JSON checked after it left the worker.
#[derive(Debug)]
pub struct Answer {
    /// The result as JSON, or why the execution failed.
    pub result: Result<Box<RawValue>, ScriptError>,
    /// The `log` array as JSON.
    pub log: Box<RawValue>,
    pub log_entries: u32,
    pub log_truncated: bool,
    /// From the start of evaluation (or of the job's delivery, for a killed worker).
    pub duration: Duration,
}

impl Answer {
    /// The outcome kind for logs and metrics: `success` or the error kind.
    pub fn kind(&self) -> &'static str {
        match &self.result {
            Ok(_) => "success",
            Err(error) => error.kind.as_str(),
        }
    }
}

/// Checks what a worker sent: the result must be JSON and so must its published console
/// output. On failure, the console output that can still be trusted (none) is returned.
pub(super) fn checked(finished: Finished, log: LogSnapshot) -> Result<Answer, LogSnapshot> {
    let empty = LogSnapshot {
        text: Vec::new(),
        entries: 0,
        truncated: true,
    };
    let Some(log_json) = log_array(&log.text) else {
        return Err(empty);
    };
    let result = match finished.result {
        Ok(json) => match RawValue::from_string(json) {
            Ok(json) => Ok(json),
            Err(_) => return Err(empty),
        },
        Err(error) => Err(error),
    };
    Ok(Answer {
        result,
        log: log_json,
        log_entries: log.entries,
        log_truncated: log.truncated,
        duration: Duration::from_micros(finished.duration_micros),
    })
}

/// An execution the supervisor ended: `kind` with `message`, and the console output
/// published before it.
pub(super) fn failed(
    kind: ErrorKind,
    message: String,
    log: LogSnapshot,
    duration: Duration,
) -> Answer {
    let name = match kind {
        ErrorKind::Timeout => "TimeoutError",
        // As the engine names running out of memory.
        ErrorKind::Memory => "InternalError",
        // As the engine names what it cannot parse.
        ErrorKind::Syntax => "SyntaxError",
        _ => "CrashError",
    };
    let (log_json, entries, truncated) = match log_array(&log.text) {
        Some(json) => (json, log.entries, log.truncated),
        None => (empty_log(), 0, true),
    };
    Answer {
        result: Err(ScriptError::limit(kind, name, message)),
        log: log_json,
        log_entries: entries,
        log_truncated: truncated,
        duration,
    }
}

/// The answer of an execution whose TypeScript ran the type stripper into its stack's guard,
/// which ends the worker: a syntax error, with the message the nesting estimate gives.
pub(super) fn nested_too_deeply(log: LogSnapshot, delivered: Instant) -> Answer {
    failed(
        ErrorKind::Syntax,
        NESTED_TOO_DEEPLY.to_owned(),
        log,
        delivered.elapsed(),
    )
}

/// `[` + the published entries + `]`, if that is JSON.
fn log_array(text: &[u8]) -> Option<Box<RawValue>> {
    let mut array = String::with_capacity(text.len() + 2);
    array.push('[');
    array.push_str(std::str::from_utf8(text).ok()?);
    array.push(']');
    RawValue::from_string(array).ok()
}

fn empty_log() -> Box<RawValue> {
    RawValue::from_string("[]".to_owned()).expect("[] is JSON")
}
