//! What one streamed answer was: the Server-Sent Events of `POST /api/execute` with
//! `Accept: text/event-stream`, read as they arrive, timed, and judged. A stream is answered
//! when its `result` event is an answer [`Outcome::judge`] accepts and its `log` events are
//! the entries that answer's `log` holds; it is lost when it ends without a `result` event
//! (an `error` event in its place included), or when either of those does not hold.

use std::time::Duration;

use serde_json::Value;

use crate::answer::{LostReason, Outcome, example_body};

/// The media type that asks for a stream, and that a stream is answered with.
pub const EVENT_STREAM: &str = "text/event-stream";

/// One event of a stream, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `message` when the event has none, as in the SSE standard.
    pub name: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// Splits the bytes of a stream into events as they arrive, whatever the chunks' boundaries.
/// Comment lines (the heartbeat) and fields other than `event` and `data` are skipped.
#[derive(Debug, Default)]
pub struct EventReader {
    pending: Vec<u8>,
}

impl EventReader {
    /// The events that `chunk` completes, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = blank_line(&self.pending) {
            let block: Vec<u8> = self.pending.drain(..end.block).collect();
            self.pending.drain(..end.separator);
            if let Some(event) = parse_event(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        events
    }
}

/// Where an event's block ends and how long the blank line after it is.
struct BlockEnd {
    block: usize,
    separator: usize,
}

fn blank_line(bytes: &[u8]) -> Option<BlockEnd> {
    let separators: [&[u8]; 2] = [b"\n\n", b"\r\n\r\n"];
    separators
        .iter()
        .filter_map(|separator| {
            let block = bytes
                .windows(separator.len())
                .position(|window| window == *separator)?;
            Some(BlockEnd {
                block,
                separator: separator.len(),
            })
        })
        .min_by_key(|end| end.block)
}

fn parse_event(block: &str) -> Option<Event> {
    let mut name = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    // A block of comments only (a heartbeat) is no event.
    Some(Event {
        name: name.unwrap_or_else(|| "message".to_owned()),
        data: data?,
    })
}

/// When a stream's events came, counted from the request's start.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StreamTimes {
    /// The first `log` event; `None` for a stream without one.
    pub first_log: Option<Duration>,
    /// The `result` event; `None` for a stream that ended without one.
    pub result: Option<Duration>,
    pub log_events: usize,
}

/// A stream being read: its events so far and when they came.
#[derive(Debug, Default)]
pub struct StreamRead {
    reader: EventReader,
    logs: Vec<String>,
    result: Option<String>,
    /// The `error` event that took the result's place, if any.
    error: Option<String>,
    events: usize,
    pub times: StreamTimes,
}

impl StreamRead {
    /// Takes the next chunk of the body, which arrived `elapsed` after the request started.
    pub fn push(&mut self, chunk: &[u8], elapsed: Duration) {
        for event in self.reader.push(chunk) {
            self.events += 1;
            match event.name.as_str() {
                "log" if self.result.is_none() => {
                    self.times.first_log.get_or_insert(elapsed);
                    self.times.log_events += 1;
                    self.logs.push(event.data);
                }
                "result" if self.result.is_none() => {
                    self.times.result = Some(elapsed);
                    self.result = Some(event.data);
                }
                "error" => self.error = Some(event.data),
                _ => {}
            }
        }
    }

    /// What the whole stream was, once it has ended, for a script whose answer must have the
    /// JSON `expected_result`, when given.
    pub fn judge(&self, expected_result: Option<&str>) -> Outcome {
        let Some(result) = &self.result else {
            let detail = match &self.error {
                Some(error) => format!("event error: {error}"),
                None => format!("{} events, none of them a result", self.events),
            };
            return Outcome::Lost {
                reason: LostReason::StreamWithoutResult,
                detail,
            };
        };
        let outcome = Outcome::judge(200, result.as_bytes(), expected_result);
        if !matches!(outcome, Outcome::Executed { .. }) {
            return outcome;
        }
        let answer: Option<Value> = serde_json::from_str(result).ok();
        let logged: Option<Vec<Value>> = self
            .logs
            .iter()
            .map(|entry| serde_json::from_str(entry).ok())
            .collect();
        let in_answer = answer
            .as_ref()
            .and_then(|answer| answer.get("log")?.as_array());
        if logged.is_some() && logged.as_ref() == in_answer {
            outcome
        } else {
            Outcome::Lost {
                reason: LostReason::StreamLogMismatch,
                detail: format!(
                    "{} log events; result: {}",
                    self.logs.len(),
                    example_body(result.as_bytes())
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"type":"log","timestamp":"2026-01-01T00:00:00.000Z","data":["tick",0]}"#;

    fn result(result: &str, log: &str) -> String {
        format!(
            r#"{{"status":"success","result":{result},"error":false,"log":[{log}],"executionTime":1.0}}"#
        )
    }

    #[test]
    fn events_are_split_whatever_the_chunks_and_heartbeats_are_skipped() {
        let stream = format!(
            "event: log\ndata: {LOG}\n\n: heartbeat\n\nevent: result\r\ndata: {}\r\n\r\n",
            result("40", LOG)
        );
        let mut reader = EventReader::default();
        let mut events = Vec::new();
        for chunk in stream.as_bytes().chunks(7) {
            events.extend(reader.push(chunk));
        }
        let names: Vec<&str> = events.iter().map(|event| event.name.as_str()).collect();
        assert_eq!(names, ["log", "result"]);
        assert_eq!(events[0].data, LOG);
    }

    #[test]
    fn a_stream_is_answered_when_its_result_is_right_and_holds_its_log_events() {
        let mut read = StreamRead::default();
        read.push(
            format!("event: log\ndata: {LOG}\n\n").as_bytes(),
            Duration::from_millis(3),
        );
        read.push(
            format!("event: result\ndata: {}\n\n", result("40", LOG)).as_bytes(),
            Duration::from_millis(90),
        );
        assert_eq!(read.judge(Some("40")).label(), "success");
        assert_eq!(
            read.times,
            StreamTimes {
                first_log: Some(Duration::from_millis(3)),
                result: Some(Duration::from_millis(90)),
                log_events: 1,
            }
        );
        assert_eq!(read.judge(Some("41")).label(), "lost: wrong answer");
    }

    #[test]
    fn a_stream_without_a_result_or_with_other_log_events_is_lost() {
        let mut cut = StreamRead::default();
        cut.push(
            format!("event: log\ndata: {LOG}\n\n").as_bytes(),
            Duration::ZERO,
        );
        assert_eq!(
            cut.judge(None).label(),
            "lost: stream ended without a result"
        );

        let mut refused = StreamRead::default();
        refused.push(
            b"event: error\ndata: {\"status\":\"error\",\"error\":{\"kind\":\"overloaded\",\"message\":\"m\"}}\n\n",
            Duration::ZERO,
        );
        assert!(matches!(
            refused.judge(None),
            Outcome::Lost { reason: LostReason::StreamWithoutResult, detail } if detail.contains("overloaded")
        ));

        let mut missing_log = StreamRead::default();
        missing_log.push(
            format!("event: result\ndata: {}\n\n", result("40", LOG)).as_bytes(),
            Duration::ZERO,
        );
        assert_eq!(
            missing_log.judge(None).label(),
            "lost: log events differ from the result's log"
        );
    }
}
