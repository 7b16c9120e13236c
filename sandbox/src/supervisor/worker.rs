//! One worker process as the supervisor sees it: its channel, its region, how much it has run
//! and how much memory it holds. Everything read from it is bounded and checked: the process
//! runs attackers' code.

use std::{fs::File, io, os::unix::fs::FileExt, time::Duration};

use contract::worker::{
    FrameError, LENGTH_PREFIX, Order, Ready, Region, Report, Setup, decode, encode, frame_length,
};
use tokio::{io::AsyncWriteExt, net::UnixStream};

use super::launcher::{Launcher, Retirement};

/// How long a new worker has to harden itself and prepare its first runtime.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not start the worker process: {0}")]
    Spawn(#[from] io::Error),
    #[error("the worker did not become ready: {0}")]
    Handshake(String),
}

/// A live worker process, ready or running an execution.
pub struct Worker {
    /// `None` once handed to the launcher to retire.
    pid: Option<u32>,
    channel: UnixStream,
    /// Bytes read from the channel that do not make a whole report yet.
    inbox: Vec<u8>,
    pub region: Region,
    /// `/proc/<pid>/statm`, opened once, read after each execution.
    statm: Option<File>,
    pub executions: u64,
    /// Lowered to background priority during a long execution; such a worker is retired after
    /// it, since an unprivileged process cannot raise a priority again.
    pub in_background: bool,
    /// The script of the last batch item it ran: its bytecode cache holds that script, so the
    /// batch's next items are handed to it first.
    pub last_batch_script: Option<ScriptKey>,
    launcher: Launcher,
}

/// Which script a batch runs, to find the worker whose bytecode cache holds it: a hash of the
/// script's name, source and language, made once per batch.
pub type ScriptKey = u64;

impl Worker {
    /// Starts a worker and waits until it is hardened and has a runtime ready.
    pub async fn start(launcher: &Launcher, setup: &Setup) -> Result<(Self, Ready), StartError> {
        let spawned = launcher.spawn(setup.address_space_limit).await?;
        let channel = spawned
            .channel
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(spawned.channel));
        let channel = match channel {
            Ok(channel) => channel,
            Err(error) => {
                launcher.retire(spawned.pid, Retirement::FailedToStart);
                return Err(error.into());
            }
        };
        let pid = spawned.pid;
        let mut worker = Self {
            pid: Some(pid),
            channel,
            inbox: Vec::new(),
            region: spawned.region,
            statm: File::open(format!("/proc/{pid}/statm")).ok(),
            executions: 0,
            in_background: false,
            last_batch_script: None,
            launcher: launcher.clone(),
        };
        let handshake = async {
            worker.send(&encode(&Order::Setup(setup.clone()))).await?;
            match worker.report(4096).await {
                Ok(Report::Ready(ready)) => Ok(ready),
                Ok(other) => Err(StartError::Handshake(format!("unexpected {other:?}"))),
                Err(error) => Err(StartError::Handshake(error.to_string())),
            }
        };
        let ready = match tokio::time::timeout(STARTUP_TIMEOUT, handshake).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(error)) => {
                worker.retire(Retirement::FailedToStart);
                return Err(error);
            }
            Err(_) => {
                worker.retire(Retirement::FailedToStart);
                return Err(StartError::Handshake(format!(
                    "no answer within {STARTUP_TIMEOUT:?}"
                )));
            }
        };
        Ok((worker, ready))
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Lowers the worker's CPU priority to `nice`, so that short executions, the ingress and
    /// the supervisor take its core first. Best effort: where the kernel refuses, the worker
    /// runs on at its priority and is still retired afterwards.
    pub fn send_to_background(&mut self, nice: i32) {
        self.in_background = true;
        let Some(pid) = self.pid else { return };
        // SAFETY: setpriority reads only its arguments; `pid` is our own child, not yet reaped
        // (the launcher reaps a worker only after it was retired).
        let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, nice) };
        if set != 0 {
            tracing::debug!(pid, error = %io::Error::last_os_error(), "could not lower a worker's priority");
        }
    }

    /// Sends one encoded frame.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), StartError> {
        self.channel.write_all(frame).await?;
        Ok(())
    }

    /// Resident memory, from the kernel, not from the worker.
    pub fn resident_bytes(&self) -> Option<u64> {
        let statm = self.statm.as_ref()?;
        let mut text = [0u8; 128];
        let read = statm.read_at(&mut text, 0).ok()?;
        let resident_pages: u64 = std::str::from_utf8(&text[..read])
            .ok()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Some(resident_pages * page)
    }

    /// Hands the process to the launcher to be killed (if it still runs) and reaped.
    pub fn retire(mut self, why: Retirement) {
        if let Some(pid) = self.pid.take() {
            self.launcher.retire(pid, why);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.launcher.retire(pid, Retirement::Stopped);
        }
    }
}

impl Worker {
    /// The next report, of at most `max_frame` bytes, if it has arrived whole; does not wait.
    pub fn try_report(&mut self, max_frame: usize) -> Option<Result<Report, FrameError>> {
        loop {
            if self.inbox.len() >= LENGTH_PREFIX {
                let prefix = self.inbox[..LENGTH_PREFIX].try_into().expect("four bytes");
                let length = frame_length(prefix);
                if length > max_frame {
                    return Some(Err(FrameError::TooLarge(length)));
                }
                if self.inbox.len() >= LENGTH_PREFIX + length {
                    let report = decode(&self.inbox[LENGTH_PREFIX..LENGTH_PREFIX + length]);
                    self.inbox.drain(..LENGTH_PREFIX + length);
                    return Some(report);
                }
                self.inbox
                    .reserve(LENGTH_PREFIX + length - self.inbox.len());
            } else {
                self.inbox.reserve(READ_CHUNK);
            }
            match self.channel.try_read_buf(&mut self.inbox) {
                Ok(0) => return Some(Err(io::Error::from(io::ErrorKind::UnexpectedEof).into())),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
                Err(error) => return Some(Err(error.into())),
            }
        }
    }

    /// Waits for the next report. Cancel-safe: what was read stays in the inbox.
    pub async fn report(&mut self, max_frame: usize) -> Result<Report, FrameError> {
        loop {
            if let Some(report) = self.try_report(max_frame) {
                return report;
            }
            self.channel.readable().await?;
        }
    }
}

/// Bytes asked for per read when no frame length is known yet.
const READ_CHUNK: usize = 4096;
