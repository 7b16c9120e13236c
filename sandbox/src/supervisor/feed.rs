//! A streaming execution's console output, handed on entry by entry while its worker runs.
//!
//! The worker publishes each console entry to its region as the script makes it (see
//! [`contract::worker::Region`]); for an execution whose client asked for a stream, the
//! watching task looks at the published length every [`POLL_INTERVAL`] and hands the new
//! entries on, so an entry reaches the client within about that long of the console call.
//! Executions that do not stream are not polled at all.
//!
//! Every byte of the region is handed on at most once, so what waits for a slow client is
//! bounded by the log caps (`MAX_LOG_BYTES`, `MAX_LOG_ENTRIES`), which the request's memory
//! charge covers; the watching task never waits for the client. The worker runs attackers'
//! code: each entry is checked to be JSON before it is handed on, and output that stops making
//! sense (a length that shrinks, text that is not whole entries) ends the feed; the answer at
//! the end is checked on its own as always.

use std::time::Duration;

use contract::worker::{LogSnapshot, Region};
use serde_json::value::RawValue;
use tokio::{
    sync::mpsc,
    time::{Interval, MissedTickBehavior},
};

/// How often a streaming execution's region is looked at: an entry waits at most this long
/// (plus the time to send it) between the console call and the client.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The console entries of a streaming execution, each the JSON text of one `log[]` entry, in
/// call order; the channel closes once the last one is handed on, before the answer is.
pub type LogEntries = mpsc::UnboundedReceiver<Box<RawValue>>;

/// The watching task's end of a stream: hands on what the worker has published since the
/// last look.
pub struct LogFeed {
    entries: mpsc::UnboundedSender<Box<RawValue>>,
    /// Bytes of the region's text handed on so far.
    forwarded: usize,
    /// Set once the published text stopped making sense: nothing more is handed on.
    broken: bool,
    poll: Interval,
}

impl LogFeed {
    /// A feed and the entries it hands on.
    pub fn channel() -> (Self, LogEntries) {
        let (entries, received) = mpsc::unbounded_channel();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        // A late look catches up on everything published meanwhile: no burst of looks.
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let feed = Self {
            entries,
            forwarded: 0,
            broken: false,
            poll,
        };
        (feed, received)
    }

    /// Waits for the next look.
    pub async fn next_look(&mut self) {
        self.poll.tick().await;
    }

    /// Hands on the entries `region` has published since the last look; costs one atomic
    /// load when there are none.
    pub fn look(&mut self, region: &Region) {
        let length = region.published_length();
        if self.broken || length == self.forwarded {
            return;
        }
        self.forward(&region.snapshot_after(self.forwarded).text, length);
    }

    /// Hands on what the final copy of the output holds beyond what was handed on: the same
    /// copy the answer is made of, so the events and the answer's `log` agree.
    pub fn finish(mut self, log: &LogSnapshot) {
        if self.broken || log.text.len() <= self.forwarded {
            return;
        }
        let length = log.text.len();
        let start = self.forwarded;
        self.forward(&log.text[start..], length);
    }

    /// Hands on the entries in `text`, the region's bytes from `self.forwarded` to `length`.
    fn forward(&mut self, text: &[u8], length: usize) {
        if length < self.forwarded {
            self.broken = true;
            return;
        }
        // After the first entry, each is published after a separating comma.
        let text = if self.forwarded == 0 {
            Some(text)
        } else {
            text.strip_prefix(b",")
        };
        let entries = text
            .and_then(|text| std::str::from_utf8(text).ok())
            .and_then(|text| serde_json::from_str::<Vec<Box<RawValue>>>(&format!("[{text}]")).ok());
        let Some(entries) = entries else {
            self.broken = true;
            return;
        };
        self.forwarded = length;
        for entry in entries {
            // A client that left has dropped its end; its execution is being cancelled.
            let _ = self.entries.send(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(entries: &mut LogEntries) -> Vec<String> {
        std::iter::from_fn(|| entries.try_recv().ok())
            .map(|entry| entry.get().to_owned())
            .collect()
    }

    // In a runtime: the feed's interval needs a timer.
    #[tokio::test]
    async fn each_published_entry_is_handed_on_once_in_order() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        feed.look(&region);
        assert!(received(&mut entries).is_empty());

        worker.append_entry(br#"{"type":"log","data":["a, b"]}"#);
        feed.look(&region);
        feed.look(&region);
        assert_eq!(
            received(&mut entries),
            [r#"{"type":"log","data":["a, b"]}"#]
        );

        worker.append_entry(b"[1,2]");
        worker.append_entry(b"\"c\"");
        feed.look(&region);
        assert_eq!(received(&mut entries), ["[1,2]", "\"c\""]);

        worker.append_entry(b"3");
        feed.finish(&region.snapshot());
        assert_eq!(received(&mut entries), ["3"]);
        assert!(entries.try_recv().is_err(), "the channel is closed");
    }

    // In a runtime: the feed's interval needs a timer.
    #[tokio::test]
    async fn output_that_is_not_whole_entries_ends_the_feed() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        worker.append_entry(b"{\"a\":");
        feed.look(&region);
        worker.clear_log();
        worker.append_entry(b"1");
        feed.look(&region);
        feed.finish(&region.snapshot());
        assert!(received(&mut entries).is_empty());
    }

    // In a runtime: the feed's interval needs a timer.
    #[tokio::test]
    async fn a_length_that_shrinks_ends_the_feed() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        worker.append_entry(b"\"first\"");
        feed.look(&region);
        worker.clear_log();
        worker.append_entry(b"1");
        feed.look(&region);
        worker.append_entry(b"22");
        worker.append_entry(b"33");
        feed.look(&region);
        assert_eq!(received(&mut entries), ["\"first\""]);
    }
}
