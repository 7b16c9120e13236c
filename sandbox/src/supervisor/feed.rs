//! A streaming execution's console output, handed on entry by entry while its worker runs.
//!
//! The worker publishes each console entry to its region as the script makes it (see
//! [`contract::worker::Region`]). For an execution whose client asked for a stream, the
//! watching task asks the worker to wake it after its next entry (a [`Report::Logged`] on the
//! channel), looks at what was published and hands the new entries on, then asks again; so an
//! entry is on its way to the client as soon as the watching task runs, and a script that logs
//! nothing costs nothing. Executions that do not stream are never looked at while they run.
//!
//! [`Report::Logged`]: contract::worker::Report::Logged
//!
//! Every byte of the region is handed on at most once, so what waits for a slow client is
//! bounded by the log caps (`MAX_LOG_BYTES`, `MAX_LOG_ENTRIES`), which the request's memory
//! charge covers; the watching task never waits for the client. The worker runs attackers'
//! code: each entry is checked to be JSON before it is handed on, and output that stops making
//! sense (a length that shrinks, text that is not whole entries) ends the feed; the answer at
//! the end is checked on its own as always.

use contract::worker::{LogSnapshot, Region};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

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
}

impl LogFeed {
    /// A feed and the entries it hands on.
    pub fn channel() -> (Self, LogEntries) {
        let (entries, received) = mpsc::unbounded_channel();
        let feed = Self {
            entries,
            forwarded: 0,
            broken: false,
        };
        (feed, received)
    }

    /// Asks `region`'s worker to wake the watching task after its next entry, then hands on
    /// what it published before: called once the job is delivered, and at every wake-up.
    pub fn look_and_ask_again(&mut self, region: &Region) {
        // Asked first: an entry published after the look below wakes the task again.
        region.ask_for_wake_up();
        self.look(region);
    }

    /// Hands on the entries `region` has published since the last look; costs one atomic
    /// load when there are none.
    fn look(&mut self, region: &Region) {
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

    #[test]
    fn each_published_entry_is_handed_on_once_in_order() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        feed.look_and_ask_again(&region);
        assert!(received(&mut entries).is_empty());
        assert!(
            worker.take_wake_up(),
            "the worker is asked to wake the supervisor"
        );

        worker.append_entry(br#"{"type":"log","data":["a, b"]}"#);
        feed.look_and_ask_again(&region);
        feed.look_and_ask_again(&region);
        assert_eq!(
            received(&mut entries),
            [r#"{"type":"log","data":["a, b"]}"#]
        );

        worker.append_entry(b"[1,2]");
        worker.append_entry(b"\"c\"");
        feed.look_and_ask_again(&region);
        assert_eq!(received(&mut entries), ["[1,2]", "\"c\""]);

        worker.append_entry(b"3");
        feed.finish(&region.snapshot());
        assert_eq!(received(&mut entries), ["3"]);
        assert!(entries.try_recv().is_err(), "the channel is closed");
    }

    #[test]
    fn output_that_is_not_whole_entries_ends_the_feed() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        worker.append_entry(b"{\"a\":");
        feed.look_and_ask_again(&region);
        worker.clear_log();
        worker.append_entry(b"1");
        feed.look_and_ask_again(&region);
        feed.finish(&region.snapshot());
        assert!(received(&mut entries).is_empty());
    }

    #[test]
    fn a_length_that_shrinks_ends_the_feed() {
        let (region, fd) = Region::create(1024).unwrap();
        let worker = Region::map(fd).unwrap();
        let (mut feed, mut entries) = LogFeed::channel();
        worker.append_entry(b"\"first\"");
        feed.look_and_ask_again(&region);
        worker.clear_log();
        worker.append_entry(b"1");
        feed.look_and_ask_again(&region);
        worker.append_entry(b"22");
        worker.append_entry(b"33");
        feed.look_and_ask_again(&region);
        assert_eq!(received(&mut entries), ["\"first\""]);
    }
}
