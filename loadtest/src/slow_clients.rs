//! Misbehaving raw TCP clients that run beside the users of `slow-clients`: connections that
//! stay idle, send half a header, trickle half a body, or ask for a large answer and never read
//! it. Each reconnects when the service closes it, so the pressure lasts the whole run.
//!
//! Against a loopback target they connect from 127.0.0.2, so the service sees them as another
//! client than the users (127.0.0.1), as it would see an attacker: per-client limits then
//! apply to them and not to the users beside them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::scripts;
use crate::summary::Spread;

/// Pause before reconnecting after the service closed a connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Time between two bytes of a trickled body.
const TRICKLE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a client that never reads holds its connection before looking whether the service
/// dropped it: longer than the sandbox's default `WRITE_TIMEOUT_MS` (5 s).
const UNREAD_HOLD: Duration = Duration::from_secs(10);
/// How long to wait for more bytes of an answer that is being drained.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Where the clients connect from against a loopback target: another address than the users'.
const MISBEHAVING_CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The smallest receive buffer the kernel allows, so an unread answer stalls the service's
/// writes early.
const UNREAD_RECEIVE_BUFFER: u32 = 4096;
/// A body long enough that half of it takes a while to trickle.
const TRICKLED_BODY: &str = r#"{"code": "1 + 2 /* a body sent one byte at a time, for as long as the service waits for it */"}"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Misbehaviour {
    /// Connects and sends nothing.
    Idle,
    /// Sends the first half of a request's headers.
    HalfHeader,
    /// Sends whole headers, then half the body a byte at a time.
    TrickledBody,
    /// Sends a request whose answer is about 1.8 MB and never reads it.
    UnreadAnswer,
}

impl Misbehaviour {
    const ALL: [Misbehaviour; 4] = [
        Misbehaviour::Idle,
        Misbehaviour::HalfHeader,
        Misbehaviour::TrickledBody,
        Misbehaviour::UnreadAnswer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Misbehaviour::Idle => "idle",
            Misbehaviour::HalfHeader => "half-header",
            Misbehaviour::TrickledBody => "trickled-body",
            Misbehaviour::UnreadAnswer => "unread-answer",
        }
    }
}

/// What happened to the connections of one misbehaviour.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MisbehaviourReport {
    /// Clients misbehaving this way at once.
    pub clients: usize,
    /// Connections opened over the run.
    pub connections: usize,
    pub connect_failures: usize,
    /// Connections the service closed (or reset).
    pub closed_by_service: usize,
    /// Connections still open when the run ended.
    pub open_at_end: usize,
    /// From connecting to the service closing the connection (not for unread answers, which
    /// are only looked at after a hold).
    pub seconds_to_close: Option<Spread>,
    /// What the service sent before closing, by status line (`none` for nothing), and for
    /// unread answers whether it dropped them (`... closed`) or kept them open.
    pub answers: BTreeMap<String, usize>,
}

/// The misbehaving clients of a run.
pub struct SlowClients {
    stop: watch::Sender<bool>,
    clients: JoinSet<()>,
    tallies: Arc<Mutex<BTreeMap<Misbehaviour, Tally>>>,
}

#[derive(Default)]
struct Tally {
    report: MisbehaviourReport,
    seconds_to_close: Vec<f64>,
}

/// How one connection ended.
enum ConnectionEnd {
    ClosedByService {
        answer: String,
        after: Option<Duration>,
    },
    /// The client hung up itself, after an unread answer the service kept sending.
    ClosedByClient { answer: String },
}

impl SlowClients {
    /// Starts `count` clients against `addr`, the misbehaviours taking turns.
    pub fn start(addr: SocketAddr, count: usize) -> SlowClients {
        let (stop, stopped) = watch::channel(false);
        let tallies: Arc<Mutex<BTreeMap<Misbehaviour, Tally>>> = Arc::default();
        let mut clients = JoinSet::new();
        for index in 0..count {
            let misbehaviour = Misbehaviour::ALL[index % Misbehaviour::ALL.len()];
            tally(&tallies, misbehaviour, |tally| tally.report.clients += 1);
            clients.spawn(misbehave(
                misbehaviour,
                addr,
                stopped.clone(),
                tallies.clone(),
            ));
        }
        SlowClients {
            stop,
            clients,
            tallies,
        }
    }

    /// Stops every client and reports per misbehaviour.
    pub async fn finish(mut self) -> BTreeMap<&'static str, MisbehaviourReport> {
        // Every receiver sees the change; none can have been dropped before its task ends.
        let _ = self.stop.send(true);
        while self.clients.join_next().await.is_some() {}
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *tallies)
            .into_iter()
            .map(|(misbehaviour, mut tally)| {
                tally.report.seconds_to_close = Spread::of(&mut tally.seconds_to_close);
                (misbehaviour.name(), tally.report)
            })
            .collect()
    }
}

fn tally(
    tallies: &Mutex<BTreeMap<Misbehaviour, Tally>>,
    misbehaviour: Misbehaviour,
    update: impl FnOnce(&mut Tally),
) {
    let mut tallies = tallies.lock().unwrap_or_else(PoisonError::into_inner);
    update(tallies.entry(misbehaviour).or_default());
}

/// One client: connects, misbehaves until the service closes the connection, and reconnects,
/// until told to stop.
async fn misbehave(
    misbehaviour: Misbehaviour,
    addr: SocketAddr,
    mut stopped: watch::Receiver<bool>,
    tallies: Arc<Mutex<BTreeMap<Misbehaviour, Tally>>>,
) {
    let record = |update: &dyn Fn(&mut Tally)| tally(&tallies, misbehaviour, update);
    loop {
        let connection = tokio::select! {
            connection = connect(addr, misbehaviour) => connection,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let Ok(stream) = connection else {
            record(&|tally| tally.report.connect_failures += 1);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        record(&|tally| tally.report.connections += 1);
        let end = tokio::select! {
            end = run_connection(misbehaviour, addr, stream) => end,
            _ = stopped.wait_for(|stop| *stop) => {
                record(&|tally| tally.report.open_at_end += 1);
                return;
            }
        };
        match end {
            ConnectionEnd::ClosedByService { answer, after } => record(&|tally| {
                tally.report.closed_by_service += 1;
                *tally.report.answers.entry(answer.clone()).or_default() += 1;
                if let Some(after) = after {
                    tally.seconds_to_close.push(after.as_secs_f64());
                }
            }),
            ConnectionEnd::ClosedByClient { answer } => {
                record(&|tally| *tally.report.answers.entry(answer.clone()).or_default() += 1)
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

async fn connect(addr: SocketAddr, misbehaviour: Misbehaviour) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if addr.ip().is_loopback() && addr.is_ipv4() {
        socket.bind(SocketAddr::new(IpAddr::V4(MISBEHAVING_CLIENT_ADDRESS), 0))?;
    }
    if misbehaviour == Misbehaviour::UnreadAnswer {
        socket.set_recv_buffer_size(UNREAD_RECEIVE_BUFFER)?;
    }
    socket.connect(addr).await
}

async fn run_connection(
    misbehaviour: Misbehaviour,
    addr: SocketAddr,
    mut stream: TcpStream,
) -> ConnectionEnd {
    let opened = Instant::now();
    let closed = |answer| ConnectionEnd::ClosedByService {
        answer,
        after: Some(opened.elapsed()),
    };
    match misbehaviour {
        Misbehaviour::Idle => closed(read_until_closed(&mut stream).await),
        Misbehaviour::HalfHeader => {
            let half = format!("POST /api/execute HTTP/1.1\r\nHost: {addr}\r\nContent-Ty");
            if stream.write_all(half.as_bytes()).await.is_err() {
                return closed("write failed".to_owned());
            }
            closed(read_until_closed(&mut stream).await)
        }
        Misbehaviour::TrickledBody => closed(trickle_half_a_body(addr, stream).await),
        Misbehaviour::UnreadAnswer => {
            let request = request(addr, scripts::LARGE_ANSWER.body);
            if stream.write_all(request.as_bytes()).await.is_err() {
                return closed("write failed".to_owned());
            }
            tokio::time::sleep(UNREAD_HOLD).await;
            let (answer, closed) = drain(&mut stream).await;
            if closed {
                ConnectionEnd::ClosedByService {
                    answer: format!("{answer} closed"),
                    after: None,
                }
            } else {
                ConnectionEnd::ClosedByClient {
                    answer: format!("{answer} kept open"),
                }
            }
        }
    }
}

fn request(addr: SocketAddr, body: &str) -> String {
    format!(
        "POST /api/execute HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends whole headers and then the first half of the body one byte at a time, then nothing,
/// while watching for the service to close the connection.
async fn trickle_half_a_body(addr: SocketAddr, stream: TcpStream) -> String {
    let request = request(addr, TRICKLED_BODY);
    let headers_end = request.len() - TRICKLED_BODY.len();
    let (mut reader, mut writer) = stream.into_split();
    if writer
        .write_all(&request.as_bytes()[..headers_end])
        .await
        .is_err()
    {
        return "write failed".to_owned();
    }
    let half = &request.as_bytes()[headers_end..headers_end + TRICKLED_BODY.len() / 2];
    let mut sent = 0;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        tokio::select! {
            read = reader.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return status_of(&received),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            },
            _ = tokio::time::sleep(TRICKLE_INTERVAL), if sent < half.len() => {
                if writer.write_all(&half[sent..=sent]).await.is_err() {
                    return status_of(&received);
                }
                sent += 1;
            }
        }
    }
}

/// Reads until the service closes the connection; returns the status of what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        received.extend_from_slice(&buffer[..n]);
    }
    status_of(&received)
}

/// Reads what is waiting; returns its status and whether the service closed the connection
/// (rather than merely having nothing more to send).
async fn drain(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(DRAIN_TIMEOUT, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (status_of(&received), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (status_of(&received), false),
        }
    }
}

/// `200`, `408`, ... from an HTTP/1.1 status line, or `none` when nothing came.
fn status_of(received: &[u8]) -> String {
    if received.is_empty() {
        return "none".to_owned();
    }
    received
        .get(9..12)
        .and_then(|code| std::str::from_utf8(code).ok())
        .map_or_else(|| "not HTTP".to_owned(), str::to_owned)
}
