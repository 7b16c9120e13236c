//! What the steps of one session were (`/api/sessions`): its creation, its executions, each of
//! which must see the state the earlier ones left, and its end. A session runs
//! [`crate::scripts::SESSION_COUNTER`] once per execution, which counts its runs in a global, so
//! the `n`-th execution must answer `n`: any other answer means the session lost or mixed up
//! its state, and is lost as a wrong answer. Every other session is deleted when its
//! executions are done; the rest are abandoned, never deleted, and must expire by themselves
//! after their short idle timeout ([`TTL`]), freeing their worker and memory: the scenario
//! waits for that (see [`crate::resources::wait_for_baseline`]). Refusals (429, 503) are
//! judged as an execution's are; any other answer to a session's own request (its id unknown,
//! expired or busy) is lost: the service lost a session it should hold.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::answer::{LostReason, Outcome, example_body};

/// The idle timeout the scenario's sessions ask for (`ttlSeconds`): short, so that the
/// abandoned ones expire soon after the load, and long enough that none expires between two
/// of its executions on a loaded machine.
pub const TTL: Duration = Duration::from_secs(3);
/// Executions of the counter in each session.
pub const EXECUTIONS: usize = 5;
/// The memory limit of each session (`memoryLimitMb`): what its counter needs, so that each
/// session's charge to the memory budget stays small.
const MEMORY_LIMIT_MB: u64 = 16;
/// How long, beyond [`TTL`], the scenario waits after its load for the sessions it left to
/// expire and the sandbox to be back at its baseline: the reaper looks every 250 ms, and a
/// loaded machine is slow to kill and reap processes.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(30);

/// The names the requests of a session are reported under (its executions, under their
/// script's name).
pub const CREATE: &str = "session-create";
pub const DELETE: &str = "session-delete";
/// Those names with the answer each must get.
pub const STEPS: [(&str, &str); 2] = [(CREATE, "created"), (DELETE, "deleted")];

/// The body of `POST /api/sessions`.
pub fn create_body() -> String {
    format!(
        r#"{{"ttlSeconds": {}, "memoryLimitMb": {MEMORY_LIMIT_MB}}}"#,
        TTL.as_secs()
    )
}

/// Whether the `n`-th session a group starts (from 0) is abandoned rather than deleted: every
/// other one.
pub fn abandons(n: usize) -> bool {
    n % 2 == 1
}

/// How a session ended, from the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// Its creation was refused (429, 503) or rejected: there was no session.
    NotCreated,
    /// Deleted (204) after its executions.
    Deleted,
    /// Left to expire after its executions.
    Abandoned,
    /// Given up on: an answer was lost or an execution refused, and it was abandoned there.
    CutShort,
}

/// One session's life, recorded with its last request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionLife {
    pub end: SessionEnd,
    /// Executions answered with the count they must have.
    pub executions_ok: usize,
    /// Executions that succeeded with another count: the session's state was not what its
    /// earlier executions left.
    pub wrong_state: usize,
    /// From the creation's request to the last answer (the deletion's, for a deleted one).
    pub duration: Duration,
}

/// Judges the answer to `POST /api/sessions`: 201 with an `id` and an `expiresAt` is a
/// session, reported as `created`; its id comes with it.
pub fn judge_created(status: u16, body: &[u8]) -> (Outcome, Option<String>) {
    if status != 201 {
        return (Outcome::classify(status, body), None);
    }
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    let id = answer.as_ref().and_then(|answer| {
        answer.get("expiresAt")?.as_str()?;
        let id = answer.get("id")?.as_str()?;
        let well_formed = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit());
        well_formed.then(|| id.to_owned())
    });
    match id {
        Some(id) => (
            Outcome::Executed {
                kind: "created".to_owned(),
            },
            Some(id),
        ),
        None => (
            Outcome::Lost {
                reason: LostReason::Malformed { status },
                detail: example_body(body),
            },
            None,
        ),
    }
}

/// Judges the answer to a session's `n`-th execution of the counter, which must succeed with
/// `n`; the flag says whether it succeeded with another count (wrong state).
pub fn judge_run(status: u16, body: &[u8], n: usize) -> (Outcome, bool) {
    let outcome = own_request(Outcome::judge(status, body, Some(&n.to_string())), body);
    let wrong_state = matches!(
        outcome,
        Outcome::Lost {
            reason: LostReason::WrongAnswer,
            ..
        }
    ) && Outcome::classify(status, body).is_success();
    (outcome, wrong_state)
}

/// Judges the answer to `DELETE /api/sessions/{id}`: 204, reported as `deleted`.
pub fn judge_deleted(status: u16, body: &[u8]) -> Outcome {
    if status == 204 {
        return Outcome::Executed {
            kind: "deleted".to_owned(),
        };
    }
    own_request(Outcome::classify(status, body), body)
}

/// A rejection (4xx other than 429) of a request to a session that exists: lost, as the
/// service answered for a session it no longer held.
fn own_request(outcome: Outcome, body: &[u8]) -> Outcome {
    match outcome {
        Outcome::Rejected { status, kind } => Outcome::Lost {
            reason: LostReason::WrongAnswer,
            detail: format!("{status} {kind}: {}", example_body(body)),
        },
        outcome => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(n: usize) -> String {
        format!(r#"{{"status":"success","result":{n},"error":false,"log":[],"executionTime":0.1}}"#)
    }

    #[test]
    fn a_201_with_a_hex_id_and_an_expiry_is_a_session() {
        let (outcome, id) = judge_created(
            201,
            br#"{"id":"5f0c2a9be1d34c7f","expiresAt":"2026-01-01T12:10:00.000Z"}"#,
        );
        assert_eq!(outcome.label(), "created");
        assert_eq!(id.as_deref(), Some("5f0c2a9be1d34c7f"));
        let (outcome, id) = judge_created(201, br#"{"id":"../x","expiresAt":"t"}"#);
        assert_eq!(outcome.label(), "lost: malformed answer (status 201)");
        assert_eq!(id, None);
        let refused = br#"{"status":"error","error":{"kind":"session_limit","message":"m"}}"#;
        assert_eq!(judge_created(503, refused).0.label(), "503 session_limit");
    }

    #[test]
    fn the_nth_run_must_answer_n_and_another_count_is_a_wrong_state() {
        assert_eq!(
            judge_run(200, counted(3).as_bytes(), 3),
            (
                Outcome::Executed {
                    kind: "success".into()
                },
                false
            )
        );
        let (outcome, wrong_state) = judge_run(200, counted(1).as_bytes(), 3);
        assert_eq!(outcome.label(), "lost: wrong answer");
        assert!(wrong_state);
        let lost = br#"{"status":"error","result":null,"error":{"kind":"session_lost","name":"Error","message":"m","stack":null},"log":[],"executionTime":1}"#;
        let (outcome, wrong_state) = judge_run(200, lost, 2);
        assert_eq!(outcome.label(), "lost: wrong answer");
        assert!(!wrong_state);
    }

    #[test]
    fn a_session_that_vanished_is_lost_and_a_refusal_is_a_refusal() {
        let gone = br#"{"status":"error","error":{"kind":"session_expired","message":"m"}}"#;
        assert!(matches!(
            judge_run(404, gone, 2).0,
            Outcome::Lost { reason: LostReason::WrongAnswer, ref detail } if detail.starts_with("404 session_expired")
        ));
        assert_eq!(judge_deleted(404, gone).label(), "lost: wrong answer");
        assert_eq!(judge_deleted(204, b"").label(), "deleted");
        let overloaded = br#"{"status":"error","error":{"kind":"overloaded","message":"m"}}"#;
        assert_eq!(judge_run(503, overloaded, 1).0.label(), "503 overloaded");
    }

    #[test]
    fn half_the_sessions_are_abandoned_and_the_body_asks_for_the_short_ttl() {
        assert_eq!((0..10).filter(|&n| abandons(n)).count(), 5);
        let body: Value = serde_json::from_str(&create_body()).unwrap();
        assert_eq!(body["ttlSeconds"], TTL.as_secs());
    }
}
