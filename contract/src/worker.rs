//! The channel between the sandbox's supervisor and one worker process.
//!
//! A worker is the sandbox binary started as `sandbox worker` with two inherited descriptors:
//! [`CHANNEL_FD`], one end of a Unix stream socket pair, and [`REGION_FD`], a sealed memfd
//! holding the [`Region`]. Over the channel go frames of postcard-encoded messages, each after
//! a [`LENGTH_PREFIX`]-byte big-endian length ([`encode`], [`read_frame`], [`frame_length`]):
//!
//! ```text
//! supervisor                           worker
//!     Setup  ───────────────────────▶  hardens itself, prepares a fresh runtime
//!            ◀───────────────────────  Ready
//!     Job    ───────────────────────▶  runs it, writing console output into the region
//!            ◀───────────────────────  Finished     (then prepares the next runtime)
//!     Job    ───────────────────────▶  ...
//! ```
//!
//! A session's worker ([`Setup::keep_runtime`]) runs every job in the one runtime it prepared
//! first, so globals persist from job to job.
//!
//! While a job runs, its script may call an asynchronous host function: the worker sends a
//! [`HostCall`], the supervisor runs the function and answers with a [`HostAnswer`] of the same
//! id (answers may come in any order), all before the job's deadline, after which the worker is
//! killed and pending calls are dropped:
//!
//! ```text
//!     Job    ───────────────────────▶  runs it; the script calls `lookup(...)`
//!            ◀───────────────────────  Call { id: 1, name: "lookup", arguments }
//!     Answer { id: 1, result } ─────▶  settles the script's promise, runs on
//!            ◀───────────────────────  Finished
//! ```
//!
//! Console output goes to the region as it is produced, not over the channel, so the
//! supervisor still has it when it must kill a worker that does not answer. For a job whose
//! output the supervisor passes on while it runs, it asks to be woken ([`Region::ask_for_wake_up`]):
//! the worker then sends one [`Report::Logged`] after its next entry, and no more until asked
//! again, so a script that logs fast costs at most a frame per entry the supervisor has caught
//! up with. The supervisor
//! treats everything a worker sends as hostile: frames are bounded, the region is sealed so a
//! worker cannot shrink it under the supervisor's mapping, and what is read from it is copied
//! out and checked before use.

use std::{
    fs::File,
    io::{self, Read},
    os::fd::{OwnedFd, RawFd},
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence},
    time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{outcome::ScriptError, request::Language};

/// The worker's end of the channel.
pub const CHANNEL_FD: RawFd = 3;
/// The memfd holding the worker's [`Region`]; the worker maps it and closes the descriptor.
pub const REGION_FD: RawFd = 4;
/// The argument that starts the sandbox binary as a worker.
pub const WORKER_ARGUMENT: &str = "worker";

/// Largest frame a worker accepts: jobs come from the trusted supervisor, so this is only a
/// guard against a corrupted length.
pub const MAX_SUPERVISOR_FRAME: usize = 256 * 1024 * 1024;

/// Supervisor to worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// The first message: how to run every job.
    Setup(Setup),
    /// Run one script.
    Run(Job),
    /// The result of a host function the running job called.
    Answer(HostAnswer),
}

/// How a worker runs its jobs; the same for every worker of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// JavaScript stack limit, in bytes.
    pub stack_limit: u64,
    /// Largest serialised result (or error), in bytes of JSON.
    pub max_result_bytes: u64,
    /// Most bytes of JSON the console output may take.
    pub max_log_bytes: u64,
    /// Most console entries kept.
    pub max_log_entries: u64,
    /// The worker's address-space limit (`RLIMIT_AS`), in bytes: a backstop behind the
    /// engine's own memory limit.
    pub address_space_limit: u64,
    /// False: each job runs in a fresh runtime, prepared while the worker waits for it. True:
    /// a session's worker, whose jobs run one after another in one runtime, so each sees what
    /// the earlier ones left; it serves until the supervisor closes the channel, or until a job
    /// faults the engine, which ends it.
    pub keep_runtime: bool,
}

/// One script to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The file name stack traces show.
    pub script_name: String,
    pub source: String,
    /// How `source` is read: TypeScript is stripped to JavaScript inside the execution.
    pub language: Language,
    /// Time limit, from the start of evaluation.
    pub timeout: Duration,
    /// The runtime's memory limit in bytes.
    pub memory_limit: u64,
    /// The request's `input` as JSON text, for the script's global `input`.
    pub input: Option<String>,
    /// The host functions this execution gets (by registered name), and its call budget.
    pub host: HostGrant,
}

/// Which host functions a job may call, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostGrant {
    /// Registered names of the functions to install.
    pub functions: Vec<String>,
    /// Most host calls, of all functions together, in the execution.
    pub max_calls: u32,
}

/// A script's call of an asynchronous host function, which the supervisor runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCall {
    /// Chosen by the worker, unique within the job.
    pub id: u32,
    /// The registered name.
    pub name: String,
    /// The arguments as a JSON array.
    pub arguments: String,
}

/// What an asynchronous host function returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAnswer {
    pub id: u32,
    /// The value as JSON text, or the error the script's promise is rejected with.
    pub result: Result<String, HostError>,
}

/// An error a host function raises in the script: an exception of class `name` (`Error`,
/// `TypeError`, `RangeError`, ...; anything else becomes `Error` with that name) and `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{name}: {message}")]
pub struct HostError {
    pub name: String,
    pub message: String,
}

impl HostError {
    /// An `Error` with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::named("Error", message)
    }

    /// A `TypeError` with `message` (what `fetch` rejects with, as the Fetch Standard says).
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::named("TypeError", message)
    }

    /// An error of class (or name) `name` with `message`.
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// What a TypeScript script nested too deeply to strip is told, whether the nesting estimate
/// refused it or the stripper's stack ran out ([`Report::NestedTooDeeply`]).
pub const NESTED_TOO_DEEPLY: &str = "the TypeScript is nested too deeply to strip its types";

/// Worker to supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Hardened, with a fresh runtime ready for the first job.
    Ready(Ready),
    /// A job ended; its console output is in the region.
    Finished(Finished),
    /// The running job called an asynchronous host function.
    Call(HostCall),
    /// The worker ran out of memory in its own code (past its address-space limit) while
    /// running the job, and exits: the job's answer is `memory`.
    OutOfMemory,
    /// The TypeScript the running job strips nested past the end of the stripper's stack (its
    /// guard was hit), and the worker exits: the job's answer is a `syntax` error saying
    /// [`NESTED_TOO_DEEPLY`].
    NestedTooDeeply,
    /// New console output is in the region: sent only when the supervisor asked for it
    /// ([`Region::ask_for_wake_up`]), once per asking.
    Logged,
}

/// What a worker says when it is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Whether the engine paces its interrupt checks by the clock (`engine::timed_interrupts`);
    /// false means only the supervisor's kill bounds a loop of slow built-ins.
    pub timed_interrupts: bool,
}

/// The end of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finished {
    /// The result as JSON text, or why the script failed.
    pub result: Result<String, ScriptError>,
    /// From the start of evaluation to the end of serialisation, in microseconds.
    pub duration_micros: u64,
    /// The most memory the runtime held at once, in bytes: a hint for when to check the
    /// worker's resident memory (the supervisor also checks regularly, whatever it says).
    pub memory_peak: u64,
    /// The engine refused an allocation during the job, whether or not the script caught the
    /// error: QuickJS's out-of-memory paths may have left its process's heap corrupt, so the
    /// worker must run no other job.
    pub engine_fault: bool,
    /// Whether the script's bytecode came from the worker's cache (`Some(true)`) or was
    /// compiled (`Some(false)`); `None` when the script was never compiled.
    pub bytecode_cache_hit: Option<bool>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the channel failed: {0}")]
    Io(#[from] io::Error),
    #[error("a frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("a frame does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// A message as one frame: a 4-byte big-endian length, then the postcard encoding.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut frame = postcard::to_extend(message, vec![0; LENGTH_PREFIX])
        .expect("encoding into a Vec cannot fail");
    let length = u32::try_from(frame.len() - LENGTH_PREFIX).expect("frames are far below 4 GiB");
    frame[..LENGTH_PREFIX].copy_from_slice(&length.to_be_bytes());
    frame
}

/// Bytes of the length before each frame's payload.
pub const LENGTH_PREFIX: usize = 4;

/// The payload length a frame's prefix announces.
pub fn frame_length(prefix: [u8; LENGTH_PREFIX]) -> usize {
    u32::from_be_bytes(prefix) as usize
}

/// Decodes one frame's payload (without its length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(payload)?)
}

/// Reads one frame from a blocking channel.
pub fn read_frame<T: DeserializeOwned>(
    reader: &mut impl Read,
    max_frame: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0; LENGTH_PREFIX];
    reader.read_exact(&mut prefix)?;
    let length = frame_length(prefix);
    if length > max_frame {
        return Err(FrameError::TooLarge(length));
    }
    let mut payload = vec![0; length];
    reader.read_exact(&mut payload)?;
    decode(&payload)
}

/// Bytes before the console text in a [`Region`].
const HEADER: usize = 64;
const LOG_LENGTH: usize = 0;
const LOG_ENTRIES: usize = 8;
const LOG_TRUNCATED: usize = 12;
const CANCEL: usize = 16;
const WAKE: usize = 20;
const PREPARED: usize = 24;

/// Memory shared by the supervisor and one worker: the console output of the running job, the
/// supervisor's requests to stop it and to be woken by its next entry, and whether the worker's
/// next runtime is prepared.
///
/// The worker appends each console entry as JSON text, entries separated by commas, then
/// publishes the new length (release); the supervisor reads the published length (acquire) and
/// copies that many bytes. Whatever the worker does to the bytes afterwards, even after being
/// compromised, cannot reach past the published length or outside the mapping.
pub struct Region {
    map: memmap2::MmapRaw,
}

// SAFETY: the mapping is only accessed through atomics and byte copies bounded by its length.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

/// A copy of a job's console output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSnapshot {
    /// The entries as JSON text separated by commas: `[` + text + `]` is the `log` array.
    pub text: Vec<u8>,
    pub entries: u32,
    /// True when output was cut at the entry or byte cap.
    pub truncated: bool,
}

impl Region {
    /// Creates a region for `capacity` bytes of console text, sealed against resizing; the
    /// descriptor is what the worker inherits as [`REGION_FD`].
    pub fn create(capacity: usize) -> io::Result<(Self, OwnedFd)> {
        let memfd = memfd::MemfdOptions::default()
            .close_on_exec(true)
            .allow_sealing(true)
            .create("jsbox-worker-region")
            .map_err(io::Error::other)?;
        memfd.as_file().set_len((HEADER + capacity) as u64)?;
        memfd
            .add_seals(&[
                memfd::FileSeal::SealShrink,
                memfd::FileSeal::SealGrow,
                memfd::FileSeal::SealSeal,
            ])
            .map_err(io::Error::other)?;
        let file = memfd.into_file();
        let region = Self::from_file(&file)?;
        Ok((region, file.into()))
    }

    /// Maps an inherited region (the worker's side).
    pub fn map(fd: OwnedFd) -> io::Result<Self> {
        Self::from_file(&File::from(fd))
    }

    fn from_file(file: &File) -> io::Result<Self> {
        let map = memmap2::MmapOptions::new().map_raw(file)?;
        if map.len() < HEADER {
            return Err(io::Error::other("the region is smaller than its header"));
        }
        Ok(Self { map })
    }

    /// Bytes of console text the region holds.
    pub fn capacity(&self) -> usize {
        self.map.len() - HEADER
    }

    fn header<T>(&self, offset: usize) -> &T {
        // SAFETY: the header offsets are aligned for their atomics within the page-aligned,
        // HEADER-long start of the mapping, which lives as long as `self`.
        unsafe { &*self.map.as_ptr().add(offset).cast::<T>() }
    }

    fn log_length(&self) -> &AtomicU64 {
        self.header(LOG_LENGTH)
    }

    fn log_entries(&self) -> &AtomicU32 {
        self.header(LOG_ENTRIES)
    }

    fn log_truncated(&self) -> &AtomicU32 {
        self.header(LOG_TRUNCATED)
    }

    /// Set by the supervisor to ask the running job to stop at its next interrupt check.
    pub fn cancel_flag(&self) -> &AtomicBool {
        self.header(CANCEL)
    }

    /// Set by the worker once its next runtime is prepared and it waits for a job; cleared by
    /// the supervisor when it hands it one. An idle worker whose flag is still clear is freeing
    /// its last runtime or preparing the next, and a job sent to it would wait for that.
    pub fn prepared_flag(&self) -> &AtomicBool {
        self.header(PREPARED)
    }

    fn wake(&self) -> &AtomicBool {
        self.header(WAKE)
    }

    /// Asks the worker to send a [`Report::Logged`] after its next entry (the supervisor's
    /// side). Whatever the worker published before it saw the request, a look at the output
    /// after this call sees: no entry is published unseen and unannounced.
    pub fn ask_for_wake_up(&self) {
        self.wake().store(true, Ordering::Relaxed);
        // Pairs with the fence in `take_wake_up`: of this store and the worker's publication,
        // at least one side sees the other's.
        fence(Ordering::SeqCst);
    }

    /// Withdraws a request to be woken (the supervisor's side): for a job nobody watches.
    pub fn stop_wake_ups(&self) {
        self.wake().store(false, Ordering::Relaxed);
    }

    /// After publishing an entry: whether the supervisor asked to be woken, which it is then
    /// to be, once (the worker's side).
    pub fn take_wake_up(&self) -> bool {
        fence(Ordering::SeqCst);
        self.wake().swap(false, Ordering::Relaxed)
    }

    /// Readies the region for the job the supervisor is about to hand over (the supervisor's
    /// side): not cancelled, no longer prepared, no request to be woken (only a stream asks, once
    /// the job is delivered), and no output. The worker empties the output too when the job
    /// starts, but a stream looks before that: it must never see the previous job's output.
    pub fn ready_for_job(&self) {
        self.cancel_flag().store(false, Ordering::Release);
        self.prepared_flag().store(false, Ordering::Release);
        self.stop_wake_ups();
        self.clear_log();
    }

    /// Empties the console output: the worker does this before each job.
    pub fn clear_log(&self) {
        self.log_length().store(0, Ordering::Release);
        self.log_entries().store(0, Ordering::Release);
        self.log_truncated().store(0, Ordering::Release);
    }

    /// Appends one entry's JSON text (the worker's side); false, writing nothing, when it does
    /// not fit.
    pub fn append_entry(&self, entry: &[u8]) -> bool {
        let length = self.log_length().load(Ordering::Relaxed) as usize;
        let entries = self.log_entries().load(Ordering::Relaxed);
        let separator = usize::from(entries > 0);
        let Some(end) = length
            .checked_add(separator + entry.len())
            .filter(|end| *end <= self.capacity())
        else {
            return false;
        };
        // SAFETY: `length..end` lies within the data part of the mapping (checked above); only
        // this process writes it.
        unsafe {
            let data = self.map.as_mut_ptr().add(HEADER + length);
            if separator == 1 {
                data.write(b',');
            }
            std::ptr::copy_nonoverlapping(entry.as_ptr(), data.add(separator), entry.len());
        }
        self.log_entries().store(entries + 1, Ordering::Release);
        self.log_length().store(end as u64, Ordering::Release);
        true
    }

    /// Records that console output was cut (the worker's side).
    pub fn mark_truncated(&self) {
        self.log_truncated().store(1, Ordering::Release);
    }

    /// Bytes of console text published so far (the supervisor's side): one atomic load, for
    /// watching the output grow without copying it.
    pub fn published_length(&self) -> usize {
        (self.log_length().load(Ordering::Acquire) as usize).min(self.capacity())
    }

    /// Copies the console output published so far (the supervisor's side).
    pub fn snapshot(&self) -> LogSnapshot {
        self.snapshot_after(0)
    }

    /// Copies the console text published after its first `offset` bytes (none when `offset`
    /// is at or past the published length), with the counts of the whole output.
    pub fn snapshot_after(&self, offset: usize) -> LogSnapshot {
        let length = self.published_length();
        let start = offset.min(length);
        let mut text = vec![0; length - start];
        // SAFETY: `start..length` is clamped to the data part of the mapping. The worker may
        // still be writing past it; those bytes are not read.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(HEADER + start),
                text.as_mut_ptr(),
                length - start,
            );
        }
        LogSnapshot {
            text,
            entries: self.log_entries().load(Ordering::Acquire),
            truncated: self.log_truncated().load(Ordering::Acquire) != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorKind;

    #[test]
    fn messages_round_trip_through_frames() {
        let orders = [
            Order::Setup(Setup {
                stack_limit: 1 << 20,
                max_result_bytes: 1 << 20,
                max_log_bytes: 1 << 20,
                max_log_entries: 1000,
                address_space_limit: 1 << 30,
                keep_runtime: true,
            }),
            Order::Run(Job {
                script_name: "script.js".into(),
                source: "console.log('\u{e9}'); 1 + 2".into(),
                language: Language::TypeScript,
                timeout: Duration::from_millis(5_000),
                memory_limit: 64 << 20,
                input: Some(r#"{"a": [1, "caf\u00e9"]}"#.into()),
                host: HostGrant {
                    functions: vec!["fetch".into()],
                    max_calls: 16,
                },
            }),
            Order::Answer(HostAnswer {
                id: 7,
                result: Err(HostError::type_error("refused")),
            }),
        ];
        for order in orders {
            let frame = encode(&order);
            let back: Order = read_frame(&mut frame.as_slice(), MAX_SUPERVISOR_FRAME).unwrap();
            assert_eq!(back, order);
        }
        let reports = [
            Report::Ready(Ready {
                timed_interrupts: true,
            }),
            Report::Finished(Finished {
                result: Ok("[1,{\"a\":\"b\"}]".into()),
                duration_micros: 42,
                memory_peak: 1 << 20,
                engine_fault: false,
                bytecode_cache_hit: Some(true),
            }),
            Report::Finished(Finished {
                result: Err(ScriptError::limit(
                    ErrorKind::Timeout,
                    "TimeoutError",
                    "late",
                )),
                duration_micros: 7,
                memory_peak: 0,
                engine_fault: true,
                bytecode_cache_hit: None,
            }),
            Report::OutOfMemory,
            Report::NestedTooDeeply,
            Report::Logged,
            Report::Call(HostCall {
                id: 1,
                name: "lookup".into(),
                arguments: "[1,\"a\"]".into(),
            }),
        ];
        for report in reports {
            let frame = encode(&report);
            let length = frame_length(frame[..LENGTH_PREFIX].try_into().unwrap());
            assert_eq!(length, frame.len() - LENGTH_PREFIX);
            let back: Report = decode(&frame[LENGTH_PREFIX..]).unwrap();
            assert_eq!(back, report);
        }
    }

    #[test]
    fn oversized_and_garbled_frames_are_refused() {
        let frame = encode(&Report::Ready(Ready {
            timed_interrupts: false,
        }));
        let refused = read_frame::<Report>(&mut frame.as_slice(), 0);
        assert!(matches!(refused, Err(FrameError::TooLarge(_))));
        let garbled = [0, 0, 0, 2, 0xff, 0xff];
        let refused = read_frame::<Report>(&mut garbled.as_slice(), 100);
        assert!(matches!(refused, Err(FrameError::Decode(_))));
        let cut = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame::<Report>(&mut &cut[..], 100),
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn the_region_shares_published_entries_and_the_cancel_and_prepared_flags() {
        let (supervisor, fd) = Region::create(32).unwrap();
        let worker = Region::map(fd).unwrap();
        assert_eq!(worker.capacity(), 32);
        worker.clear_log();
        assert!(worker.append_entry(b"{\"a\":1}"));
        assert!(worker.append_entry(b"[2]"));
        assert!(!worker.append_entry(&[b'x'; 30]), "does not fit");
        worker.mark_truncated();
        let snapshot = supervisor.snapshot();
        assert_eq!(snapshot.text, b"{\"a\":1},[2]");
        assert_eq!(snapshot.entries, 2);
        assert!(snapshot.truncated);

        assert!(!supervisor.prepared_flag().load(Ordering::Acquire));
        worker.prepared_flag().store(true, Ordering::Release);
        assert!(supervisor.prepared_flag().load(Ordering::Acquire));
        assert!(
            !worker.cancel_flag().load(Ordering::Acquire),
            "the flags are apart"
        );
        assert_eq!(supervisor.published_length(), 11);
        assert_eq!(supervisor.snapshot_after(8).text, b"[2]");
        assert_eq!(supervisor.snapshot_after(8).entries, 2);
        assert_eq!(supervisor.snapshot_after(11).text, b"");
        assert_eq!(supervisor.snapshot_after(99).text, b"");

        supervisor.cancel_flag().store(true, Ordering::Release);
        assert!(worker.cancel_flag().load(Ordering::Acquire));
        worker.clear_log();
        assert_eq!(supervisor.snapshot().text, b"");
    }

    #[test]
    fn the_worker_wakes_the_supervisor_once_per_asking() {
        let (supervisor, fd) = Region::create(64).unwrap();
        let worker = Region::map(fd).unwrap();
        assert!(!worker.take_wake_up(), "not asked");
        supervisor.ask_for_wake_up();
        assert!(worker.take_wake_up());
        assert!(!worker.take_wake_up(), "once");
        supervisor.ask_for_wake_up();
        supervisor.stop_wake_ups();
        assert!(!worker.take_wake_up(), "withdrawn");
    }

    #[test]
    fn a_sealed_region_cannot_be_resized() {
        let (_region, fd) = Region::create(4096).unwrap();
        let file = File::from(fd);
        assert!(file.set_len(0).is_err(), "shrinking must be refused");
        assert!(file.set_len(1 << 30).is_err(), "growing must be refused");
    }
}
