//! What every request of a run got, and when: the raw material of the summary and the plots.
//! Goose keeps its own metrics for its report; these are ours, timed from before the request
//! is sent until its whole body is read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::answer::Outcome;
use crate::batch::BatchItems;
use crate::session::SessionLife;
use crate::stream::StreamTimes;

/// The start of a run, which every sample's time is counted from.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    started: Instant,
    started_unix_ms: i64,
}

impl RunClock {
    pub fn start() -> RunClock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        RunClock {
            started: Instant::now(),
            started_unix_ms: i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Seconds since the run started.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Seconds from the run's start to a wall-clock time in milliseconds since the epoch.
    pub fn seconds_at_unix_ms(&self, unix_ms: i64) -> f64 {
        (unix_ms - self.started_unix_ms) as f64 / 1000.0
    }
}

/// One request's fate.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds from the run's start to the end of the answer.
    pub finished_at: f64,
    pub latency: Duration,
    /// The tenant, or the user group of anonymous requests.
    pub group: &'static str,
    pub script: &'static str,
    pub outcome: Outcome,
    pub detail: Detail,
}

/// What the scenarios that look beyond a request's outcome learnt from it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Detail {
    /// When a streamed answer's events came; `None` for an answer asked for whole.
    pub stream: Option<StreamTimes>,
    /// What became of a batch's items (all zero for a batch that was not answered); `None`
    /// for an execution.
    pub batch: Option<BatchItems>,
    /// The life of the session whose last request this was; `None` for other requests.
    pub session: Option<SessionLife>,
}

/// Shared by every user of a run.
#[derive(Clone, Debug)]
pub struct Recorder {
    clock: RunClock,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Recorder {
    pub fn new(clock: RunClock) -> Recorder {
        Recorder {
            clock,
            samples: Arc::default(),
        }
    }

    pub fn record(
        &self,
        latency: Duration,
        group: &'static str,
        script: &'static str,
        outcome: Outcome,
        detail: Detail,
    ) {
        let sample = Sample {
            finished_at: self.clock.now(),
            latency,
            group,
            script,
            outcome,
            detail,
        };
        // A user that panicked mid-push leaves a usable vector behind.
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sample);
    }

    /// Every sample so far, in the order they finished.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
