//! chatbench: a simple bench client for chatd, speaking only the public
//! protocol (shared/PROTOCOL.md, v1). Not the full load harness: it answers
//! two questions, durable 1:1 messages/s with their latency, and server
//! memory per idle authenticated connection.
//!
//! # Layout
//! - limits            every timeout and bound, in one place
//! - `UsersFile`       users.json: tokens and the direct conversations
//! - `setup`           OTP logins over REST (blocking `chat_tools::client`, threads)
//! - `connect_ws`      socket (optionally bound to a source address) → glommio
//!   `TcpStream` → async-tungstenite, then `auth` → `auth.ok` → `sync.done`
//! - `direct`          one sender and one receiver per pair; latencies in
//!   HdrHistograms; `check_delivery` proves no loss and no duplicates
//! - `idle`            N authenticated connections, a ping every 30 s
//!
//! Clocks: every timestamp is µs since one process-wide `Instant` (`epoch`),
//! so a send time written into a body by one executor can be read by another.
//! Senders and receivers of a pair live in the same process, so send→receive
//! latency needs no cross-machine clock.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::fs;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use chat_tools::client::{self, Endpoint};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tungstenite::Message;

/// All limits of the bench client. Units last.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// WebSocket handshakes (TCP connect + upgrade + auth + sync) in flight per executor.
const CONNECTS_IN_FLIGHT_MAX: u64 = 128;
/// Histograms cover 1 µs to 60 s with 3 significant digits.
const HISTOGRAM_MICROS_MAX: u64 = 60_000_000;
/// Logins retried this often (e.g. after `rate_limited`) before setup fails.
const LOGIN_TRIES_MAX: u32 = 3;
/// The body text starts with this, then the send time in µs since `epoch`.
const BODY_PREFIX: &str = "bench";
/// How often the drain phase checks whether every pair is settled.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Pairs that failed the delivery check described one by one in the report.
const LOSSY_PAIRS_REPORTED_MAX: usize = 5;
const _: () = assert!(CONNECTS_IN_FLIGHT_MAX > 0);

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Every timestamp of the process is µs since this instant.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MICROS_MAX, 3).expect("valid bounds")
}

// ---------------------------------------------------------------------------
// Command line

#[derive(Parser)]
#[command(about = "Bench client for chatd: durable 1:1 throughput and idle connection memory")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Log in N users over REST (OTP via the file sink) and pair them into
    /// N/2 direct conversations; writes tokens and conversation ids to --out.
    Setup(SetupArgs),
    /// Senders send message.send, receivers ack message.new; reports
    /// messages/s, latencies, errors and a loss/duplicate check.
    Direct(DirectArgs),
    /// Opens N authenticated WebSocket connections and holds them.
    Idle(IdleArgs),
}

#[derive(Args)]
struct SetupArgs {
    /// chatd's REST address, http://HOST:PORT
    #[arg(long)]
    server: String,
    /// The file of chatd's `--otp-sink file:PATH`
    #[arg(long)]
    otp_file: PathBuf,
    /// Users to create (even: they are paired)
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Where to write tokens and conversation ids
    #[arg(long)]
    out: PathBuf,
    /// Login threads
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Phones are +1555 followed by 7 digits: phone-base + i
    #[arg(long, default_value_t = 0)]
    phone_base: u64,
}

#[derive(Args)]
struct DirectArgs {
    /// chatd's address, http://HOST:PORT
    #[arg(long)]
    server: String,
    /// users.json from `setup`
    #[arg(long)]
    users: PathBuf,
    /// Measured time after the warm-up (e.g. 20s, 500ms, 2m)
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Sending before the measured time (counted in no figure but the check)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop: messages per second in total, spread over the senders;
    /// latency counts from the scheduled send time. Without: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Messages in flight per sender (without message.sent): the closed
    /// loop's window, and the open loop's cap
    #[arg(long, default_value_t = 4)]
    window: u64,
    /// Use only the first N pairs of users.json
    #[arg(long)]
    pairs: Option<usize>,
    /// Client executors (threads); pairs are spread over them
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Body text length in bytes (at least the timestamp's)
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// After the run, how long to wait for outstanding message.sent / message.new
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

#[derive(Args)]
struct IdleArgs {
    /// chatd's address, http://HOST:PORT
    #[arg(long)]
    server: String,
    /// users.json from `setup`; tokens are reused round-robin
    #[arg(long)]
    users: PathBuf,
    /// Connections to open and hold
    #[arg(long)]
    connections: usize,
    /// Start at this index of the users (several processes: give each its own)
    #[arg(long, default_value_t = 0)]
    user_offset: usize,
    /// Exit after holding this many seconds once all are up (default: until killed)
    #[arg(long)]
    hold: Option<u64>,
    /// Bind client sockets to this many source addresses (127.0.0.2, .3, …);
    /// 0: let the kernel pick (one source address, ~28k ephemeral ports)
    #[arg(long, default_value_t = 0)]
    source_ips: usize,
    /// Seconds between pings on each connection
    #[arg(long, default_value_t = 30)]
    ping_interval: u64,
}

/// "20s", "500ms", "2m", "1.5s" or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit is one of ms, s, m")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> BenchResult<()> {
    let _ = epoch();
    match Cli::parse().cmd {
        Cmd::Setup(args) => setup(args),
        Cmd::Direct(args) => direct(args),
        Cmd::Idle(args) => idle(args),
    }
}

// ---------------------------------------------------------------------------
// users.json

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UsersFile {
    server: String,
    users: Vec<UserEntry>,
    pairs: Vec<PairEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UserEntry {
    phone: String,
    user_id: String,
    device_id: String,
    token: String,
}

/// One direct conversation: `sender` and `receiver` index `users`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PairEntry {
    conversation_id: String,
    sender: usize,
    receiver: usize,
}

fn read_users(path: &Path) -> BenchResult<UsersFile> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: UsersFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for pair in &file.pairs {
        assert!(pair.sender < file.users.len() && pair.receiver < file.users.len());
    }
    Ok(file)
}

/// `http://host:port` → the socket address and `host:port`.
fn resolve(server: &str) -> BenchResult<(SocketAddr, String)> {
    let ep = Endpoint::parse(server, None)?;
    let addr = ep
        .host_port
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", ep.host_port))?;
    Ok((addr, ep.host_port))
}

fn phone(base: u64, i: usize) -> String {
    let n = base + i as u64;
    assert!(n < 10_000_000, "phones are +1555 and 7 digits");
    format!("+1555{n:07}")
}

// ---------------------------------------------------------------------------
// setup

fn setup(args: SetupArgs) -> BenchResult<()> {
    if args.users == 0 || args.users % 2 == 1 {
        return Err("--users must be even and positive (users are paired)".into());
    }
    let ep = Endpoint::parse(&args.server, None)?;
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let sessions: Mutex<Vec<Option<UserEntry>>> = Mutex::new(vec![None; args.users]);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.users {
                    return;
                }
                let phone = phone(args.phone_base, i);
                match login_with_retry(&ep, &phone, &args.otp_file) {
                    Ok(s) => {
                        sessions.lock().unwrap()[i] = Some(UserEntry {
                            phone,
                            user_id: s.user_id,
                            device_id: s.device_id,
                            token: s.token,
                        })
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{phone}: {e}")),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        return Err(format!("{} logins failed, e.g. {}", failures.len(), failures[0]).into());
    }
    let users: Vec<UserEntry> = sessions
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|s| s.expect("every login succeeded"))
        .collect();
    let logins_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let pair_count = users.len() / 2;
    let next = AtomicUsize::new(0);
    let pairs: Mutex<Vec<Option<PairEntry>>> = Mutex::new(vec![None; pair_count]);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.threads.max(1) {
            scope.spawn(|| loop {
                let p = next.fetch_add(1, Ordering::Relaxed);
                if p >= pair_count {
                    return;
                }
                let (sender, receiver) = (2 * p, 2 * p + 1);
                let body = json!({"kind": "direct", "peer": users[receiver].user_id});
                let answer = client::request(
                    &ep,
                    "POST",
                    "/v1/conversations",
                    Some(&users[sender].token),
                    Some(&body),
                )
                .and_then(client::expect_success);
                match answer {
                    Ok(v) => match v["conversation_id"].as_str() {
                        Some(id) => {
                            pairs.lock().unwrap()[p] = Some(PairEntry {
                                conversation_id: id.to_owned(),
                                sender,
                                receiver,
                            })
                        }
                        None => failures
                            .lock()
                            .unwrap()
                            .push(format!("pair {p}: no conversation_id in {v}")),
                    },
                    Err(e) => failures.lock().unwrap().push(format!("pair {p}: {e}")),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        return Err(format!(
            "{} conversations failed, e.g. {}",
            failures.len(),
            failures[0]
        )
        .into());
    }
    let pairs: Vec<PairEntry> = pairs
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|p| p.expect("every pair succeeded"))
        .collect();
    let convs_s = started.elapsed().as_secs_f64();
    let file = UsersFile {
        server: args.server.clone(),
        users,
        pairs,
    };
    fs::write(&args.out, serde_json::to_vec_pretty(&file)?)
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!(
        "setup: {} users in {logins_s:.2} s ({:.0} logins/s, {} threads), {} direct conversations in {convs_s:.2} s; wrote {}",
        file.users.len(),
        file.users.len() as f64 / logins_s,
        args.threads,
        file.pairs.len(),
        args.out.display()
    );
    Ok(())
}

fn login_with_retry(
    ep: &Endpoint,
    phone: &str,
    otp_file: &Path,
) -> client::Result<client::Session> {
    let mut tries = 0;
    loop {
        tries += 1;
        match client::login(ep, phone, "chatbench", otp_file) {
            Ok(s) => return Ok(s),
            Err(e) if tries < LOGIN_TRIES_MAX => {
                eprintln!("setup: login {phone} try {tries}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200 * u64::from(tries)));
            }
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket connections (async, on a glommio executor)

type Ws = WebSocketStream<TcpStream>;
type WsTx = WebSocketSender<TcpStream>;
type WsRx = WebSocketReceiver<TcpStream>;

/// What the client reads out of a server event; other fields are ignored.
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    client_msg_id: Option<Cow<'a, str>>,
    #[serde(default, rename = "ref", borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(default, borrow)]
    body: Option<Body<'a>>,
}

#[derive(Debug, Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// `fut`, or `None` after `limit`.
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// TCP connect (bound to `source` when given), WebSocket upgrade at `/v1/ws`.
async fn connect_ws(addr: SocketAddr, host_port: &str, source: Option<IpAddr>) -> BenchResult<Ws> {
    let stream = match source {
        None => TcpStream::connect_timeout(addr, IO_TIMEOUT)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?,
        Some(ip) => {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket
                .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
                .map_err(|e| format!("bind {ip}: {e}"))?;
            // Blocking, but on loopback with chatd's deep backlog it returns
            // at once; glommio has no connect for a pre-bound socket.
            socket
                .connect_timeout(&SockAddr::from(addr), IO_TIMEOUT)
                .map_err(|e| format!("connect {addr} from {ip}: {e}"))?;
            socket.set_nonblocking(true)?;
            // SAFETY: the fd is a connected TCP socket that we own; glommio
            // takes it over (socket2 0.6 here, 0.4 inside glommio).
            unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) }
        }
    };
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let url = format!("ws://{host_port}/v1/ws");
    let (ws, _response) = within(IO_TIMEOUT, async_tungstenite::client_async(url, stream))
        .await
        .ok_or("WebSocket upgrade timed out")?
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    Ok(ws)
}

/// Authenticates with the first frame, waits for `auth.ok`, then for
/// `sync.done`; answers the highest seq per conversation of the backlog.
async fn auth(ws: &mut Ws, token: &str) -> BenchResult<HashMap<String, u64>> {
    let frame = json!({"type": "auth", "token": token}).to_string();
    ws.send(Message::text(frame)).await?;
    let mut authed = false;
    let mut backlog: HashMap<String, u64> = HashMap::new();
    loop {
        let frame = within(IO_TIMEOUT, ws.next())
            .await
            .ok_or(if authed {
                "no sync.done within 10 s"
            } else {
                "no auth.ok within 10 s"
            })?
            .ok_or("closed during auth")??;
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(close) => {
                return Err(format!("closed during auth: {close:?}").into());
            }
            _ => continue,
        };
        let event: Event = serde_json::from_str(text.as_str())?;
        match event.ty.as_ref() {
            "auth.ok" => authed = true,
            "error" => {
                return Err(format!("auth answered error {}", text.as_str()).into());
            }
            "message.new" => {
                if let (Some(conv), Some(seq)) = (event.conversation_id, event.seq) {
                    let top = backlog.entry(conv.into_owned()).or_insert(0);
                    *top = (*top).max(seq);
                }
            }
            "sync.done" if authed => return Ok(backlog),
            _ => {}
        }
    }
}

fn ack_frame(conv: &str, seq: u64) -> String {
    format!(r#"{{"type":"message.ack","conversation_id":"{conv}","seq":{seq}}}"#)
}

/// How a connection ended, for the report: close code or error text.
fn end_reason(frame: Option<Result<Message, tungstenite::Error>>) -> String {
    match frame {
        None => "eof".to_owned(),
        Some(Ok(Message::Close(Some(close)))) => format!("close {}", u16::from(close.code)),
        Some(Ok(Message::Close(None))) => "close (no code)".to_owned(),
        Some(Ok(_)) => "unexpected frame".to_owned(),
        Some(Err(e)) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------
// direct: the pure parts

/// The body of a bench message: the prefix, the send time, padding to `len`.
fn body_text(t_us: u64, len: usize) -> String {
    let mut text = format!("{BODY_PREFIX} {t_us} ");
    while text.len() < len {
        text.push('x');
    }
    text
}

/// The send time written by `body_text`.
fn body_time(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(BODY_PREFIX)?.strip_prefix(' ')?;
    rest.split(' ').next()?.parse().ok()
}

/// What the receiver got against what the sender was told is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Delivery {
    /// Distinct seqs confirmed by `message.sent`.
    confirmed: u64,
    /// Confirmed seqs the peer received exactly once.
    delivered_once: u64,
    /// Confirmed seqs the peer never received.
    lost: u64,
    /// Confirmed seqs the peer received more than once.
    duplicated: u64,
    /// Seqs the peer received that no `message.sent` confirmed.
    unexpected: u64,
    /// Receptions whose seq was below the one before.
    out_of_order: u64,
    /// `message.sent` seqs given twice (two sends, one seq).
    sent_twice: u64,
}

impl Delivery {
    fn add(&mut self, other: &Delivery) {
        self.confirmed += other.confirmed;
        self.delivered_once += other.delivered_once;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.out_of_order += other.out_of_order;
        self.sent_twice += other.sent_twice;
    }

    fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.out_of_order == 0
            && self.sent_twice == 0
    }
}

/// Compares the seqs of one conversation's `message.sent` (any order) with
/// the seqs its peer received in arrival order.
fn check_delivery(sent: &[u64], received: &[u64]) -> Delivery {
    let mut d = Delivery::default();
    let mut times: HashMap<u64, u32> = HashMap::with_capacity(received.len());
    for (i, seq) in received.iter().enumerate() {
        *times.entry(*seq).or_insert(0) += 1;
        if i > 0 && *seq < received[i - 1] {
            d.out_of_order += 1;
        }
    }
    let mut confirmed: HashSet<u64> = HashSet::with_capacity(sent.len());
    for seq in sent {
        if !confirmed.insert(*seq) {
            d.sent_twice += 1;
            continue;
        }
        match times.get(seq).copied().unwrap_or(0) {
            0 => d.lost += 1,
            1 => d.delivered_once += 1,
            _ => d.duplicated += 1,
        }
    }
    d.confirmed = confirmed.len() as u64;
    d.unexpected = times.keys().filter(|s| !confirmed.contains(s)).count() as u64;
    assert_eq!(d.delivered_once + d.lost + d.duplicated, d.confirmed);
    d
}

// ---------------------------------------------------------------------------
// direct: the run

/// The measured window, in µs since `epoch`; shared by every executor.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// Sending starts.
    start_us: u64,
    /// Figures count from here (after the warm-up).
    measure_us: u64,
    /// Sending stops.
    end_us: u64,
}

impl Window {
    fn measured(&self, t_us: u64) -> bool {
        t_us >= self.measure_us && t_us < self.end_us
    }
}

/// The figures of one executor.
///
/// Lives on: one executor; sent back to the main thread when it ends.
struct Figures {
    send_to_sent: Histogram<u64>,
    send_to_receive: Histogram<u64>,
    sends: u64,
    sent_measured: u64,
    received_measured: u64,
    acks: u64,
    delivered_events: u64,
    errors: BTreeMap<String, u64>,
    other_events: BTreeMap<String, u64>,
    disconnects: BTreeMap<String, u64>,
    delivery: Delivery,
    pairs: usize,
    connect_failures: Vec<String>,
    undrained_pairs: usize,
    /// A line for each of the first pairs that failed the delivery check.
    lossy_pairs: Vec<String>,
}

impl Default for Figures {
    fn default() -> Figures {
        Figures::new()
    }
}

impl Figures {
    fn new() -> Figures {
        Figures {
            send_to_sent: histogram(),
            send_to_receive: histogram(),
            sends: 0,
            sent_measured: 0,
            received_measured: 0,
            acks: 0,
            delivered_events: 0,
            errors: BTreeMap::new(),
            other_events: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            delivery: Delivery::default(),
            pairs: 0,
            connect_failures: Vec::new(),
            undrained_pairs: 0,
            lossy_pairs: Vec::new(),
        }
    }

    fn merge(&mut self, other: Figures) {
        self.send_to_sent
            .add(&other.send_to_sent)
            .expect("same bounds");
        self.send_to_receive
            .add(&other.send_to_receive)
            .expect("same bounds");
        self.sends += other.sends;
        self.sent_measured += other.sent_measured;
        self.received_measured += other.received_measured;
        self.acks += other.acks;
        self.delivered_events += other.delivered_events;
        for (maps, theirs) in [
            (&mut self.errors, other.errors),
            (&mut self.other_events, other.other_events),
            (&mut self.disconnects, other.disconnects),
        ] {
            for (k, v) in theirs {
                *maps.entry(k).or_insert(0) += v;
            }
        }
        self.delivery.add(&other.delivery);
        self.pairs += other.pairs;
        self.connect_failures.extend(other.connect_failures);
        self.undrained_pairs += other.undrained_pairs;
        self.lossy_pairs.extend(other.lossy_pairs);
        self.lossy_pairs.truncate(LOSSY_PAIRS_REPORTED_MAX);
    }
}

/// One direct conversation under load.
///
/// Lives on: one executor; its sender's two tasks and its receiver's task
/// share it.
struct Pair {
    index: usize,
    conv: String,
    /// `client_msg_id` → send time (µs), until `message.sent` or an error.
    inflight: RefCell<HashMap<String, u64>>,
    /// Free slots of the window.
    window: Semaphore,
    next_n: Cell<u64>,
    /// Seqs from `message.sent`, in arrival order.
    sent: RefCell<Vec<u64>>,
    /// Seqs from the receiver's `message.new`, in arrival order.
    received: RefCell<Vec<u64>>,
    sender_gone: Cell<bool>,
    receiver_gone: Cell<bool>,
    /// When the receiver last got a `message.new` (µs since `epoch`).
    last_received_us: Cell<u64>,
}

impl Pair {
    /// No send awaits its answer, and the receiver has every confirmed seq.
    fn settled(&self) -> bool {
        if !self.inflight.borrow().is_empty() && !self.sender_gone.get() {
            return false;
        }
        if self.receiver_gone.get() {
            return true;
        }
        let received: HashSet<u64> = self.received.borrow().iter().copied().collect();
        self.sent.borrow().iter().all(|s| received.contains(s))
    }
}

/// What each executor of `direct` is given.
#[derive(Clone)]
struct DirectPlan {
    addr: SocketAddr,
    host_port: String,
    rate_per_sender: Option<f64>,
    window: u64,
    body_bytes: usize,
    drain_timeout: Duration,
    senders_total: usize,
    /// Random, per run: the first part of every `client_msg_id`.
    run_id: String,
}

fn direct(args: DirectArgs) -> BenchResult<()> {
    let file = read_users(&args.users)?;
    let (addr, host_port) = resolve(&args.server)?;
    let pair_count = args.pairs.unwrap_or(file.pairs.len()).min(file.pairs.len());
    if pair_count == 0 {
        return Err("no pairs to run".into());
    }
    if args.window == 0 {
        return Err("--window must be at least 1".into());
    }
    let threads = args.threads.clamp(1, pair_count);
    let plan = DirectPlan {
        addr,
        host_port,
        rate_per_sender: args.rate.map(|r| r / pair_count as f64),
        window: args.window,
        body_bytes: args.body_bytes,
        drain_timeout: args.drain_timeout,
        senders_total: pair_count,
        run_id: client::random_id()[..8].to_owned(),
    };
    let mut ready_rxs = Vec::new();
    let mut start_txs = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<(usize, PairEntry, String, String)> = (0..pair_count)
            .filter(|p| p % threads == t)
            .map(|p| {
                let pair = file.pairs[p].clone();
                let (s, r) = (
                    file.users[pair.sender].token.clone(),
                    file.users[pair.receiver].token.clone(),
                );
                (p, pair, s, r)
            })
            .collect();
        let (ready_tx, ready_rx) = mpsc::channel::<usize>();
        let (start_tx, start_rx) = mpsc::channel::<Window>();
        ready_rxs.push(ready_rx);
        start_txs.push(start_tx);
        let plan = plan.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("chatbench-{t}"))
            .spawn(move || async move { direct_executor(plan, mine, ready_tx, start_rx).await })
            .map_err(|e| format!("cannot start executor {t}: {e}"))?;
        handles.push(handle);
    }
    let connect_started = Instant::now();
    let mut connected = 0;
    for rx in &ready_rxs {
        connected += rx.recv().unwrap_or(0);
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    eprintln!(
        "direct: {connected} of {} connections authenticated and synced in {connect_s:.2} s",
        2 * pair_count
    );
    let start_us = now_us() + 50_000;
    let window = Window {
        start_us,
        measure_us: start_us + args.warmup.as_micros() as u64,
        end_us: start_us + (args.warmup + args.duration).as_micros() as u64,
    };
    for tx in &start_txs {
        let _ = tx.send(window);
    }
    let mut figures = Figures::new();
    for handle in handles {
        let theirs = handle.join().map_err(|e| format!("executor failed: {e}"))?;
        figures.merge(theirs);
    }
    report_direct(&args, &plan, connected, connect_s, &figures);
    if !figures.delivery.clean() || !figures.connect_failures.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}

async fn direct_executor(
    plan: DirectPlan,
    mine: Vec<(usize, PairEntry, String, String)>,
    ready: mpsc::Sender<usize>,
    start: mpsc::Receiver<Window>,
) -> Figures {
    let figures = Rc::new(RefCell::new(Figures::new()));
    let gate = Rc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX));
    // Connect every sender and receiver (bounded concurrency), then wait.
    let mut joins = Vec::new();
    for (index, entry, sender_token, receiver_token) in mine {
        let (gate, plan) = (gate.clone(), plan.clone());
        joins.push(glommio::spawn_local(async move {
            let _permit = gate.acquire_permit(1).await.expect("gate open");
            let connect = |token: String| {
                let plan = plan.clone();
                async move {
                    let mut ws = connect_ws(plan.addr, &plan.host_port, None).await?;
                    let backlog = auth(&mut ws, &token).await?;
                    BenchResult::Ok((ws, backlog))
                }
            };
            let sender = connect(sender_token).await;
            let receiver = connect(receiver_token).await;
            (index, entry, sender, receiver)
        }));
    }
    let mut pairs = Vec::new();
    let mut connections = 0;
    for join in joins {
        let (index, entry, sender, receiver) = join.await;
        match (sender, receiver) {
            (Ok((mut s, s_backlog)), Ok((mut r, r_backlog))) => {
                // Ack what an earlier run left unacked (a sender never acks
                // its own messages while it runs), so sync skips it next time.
                for (ws, backlog) in [(&mut s, s_backlog), (&mut r, r_backlog)] {
                    for (conv, seq) in backlog {
                        let _ = ws.send(Message::text(ack_frame(&conv, seq))).await;
                    }
                }
                connections += 2;
                pairs.push((index, entry, s, r));
            }
            (s, r) => {
                let why = [s.err(), r.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                figures
                    .borrow_mut()
                    .connect_failures
                    .push(format!("pair {index}: {why}"));
            }
        }
    }
    let _ = ready.send(connections);
    // Blocks this executor until every executor is ready; nothing runs meanwhile.
    let Ok(window) = start.recv() else {
        return figures.take();
    };

    let mut live = Vec::new();
    for (index, entry, sender, receiver) in pairs {
        let pair = Rc::new(Pair {
            index,
            conv: entry.conversation_id,
            inflight: RefCell::new(HashMap::new()),
            window: Semaphore::new(plan.window),
            next_n: Cell::new(0),
            sent: RefCell::new(Vec::new()),
            received: RefCell::new(Vec::new()),
            sender_gone: Cell::new(false),
            receiver_gone: Cell::new(false),
            last_received_us: Cell::new(0),
        });
        let (s_tx, s_rx) = sender.split();
        let (r_tx, r_rx) = receiver.split();
        glommio::spawn_local(send_loop(
            pair.clone(),
            s_tx,
            plan.clone(),
            window,
            figures.clone(),
        ))
        .detach();
        glommio::spawn_local(sender_reader(pair.clone(), s_rx, window, figures.clone())).detach();
        glommio::spawn_local(receiver_loop(
            pair.clone(),
            r_tx,
            r_rx,
            window,
            figures.clone(),
        ))
        .detach();
        live.push(pair);
    }
    figures.borrow_mut().pairs = live.len();
    let end = window.end_us.saturating_sub(now_us());
    glommio::timer::sleep(Duration::from_micros(end)).await;
    let deadline = Instant::now() + plan.drain_timeout;
    while Instant::now() < deadline && !live.iter().all(|p| p.settled()) {
        glommio::timer::sleep(DRAIN_POLL_INTERVAL).await;
    }
    let mut figures = figures.take();
    for pair in &live {
        if !pair.settled() {
            figures.undrained_pairs += 1;
        }
        let (sent, received) = (pair.sent.borrow(), pair.received.borrow());
        let d = check_delivery(&sent, &received);
        figures.delivery.add(&d);
        if !d.clean() && figures.lossy_pairs.len() < LOSSY_PAIRS_REPORTED_MAX {
            let mut lost: Vec<u64> = {
                let got: HashSet<u64> = received.iter().copied().collect();
                sent.iter().copied().filter(|s| !got.contains(s)).collect()
            };
            lost.sort_unstable();
            let step_back = (1..received.len())
                .find(|&i| received[i] < received[i - 1])
                .map(|i| {
                    let around = &received[i.saturating_sub(3)..(i + 3).min(received.len())];
                    format!(", first step back at reception {i}: seqs {around:?}")
                })
                .unwrap_or_default();
            figures.lossy_pairs.push(format!(
                "pair {} conv {}: {} confirmed (seq {}..={}), {} received (last seq {}), lost {} (first {:?}), last message.new at {:.3} s into the run{}{}{step_back}",
                pair.index,
                pair.conv,
                sent.len(),
                sent.iter().min().copied().unwrap_or(0),
                sent.iter().max().copied().unwrap_or(0),
                received.len(),
                received.last().copied().unwrap_or(0),
                lost.len(),
                lost.first(),
                pair.last_received_us.get().saturating_sub(window.start_us) as f64 / 1e6,
                if pair.sender_gone.get() { ", sender gone" } else { "" },
                if pair.receiver_gone.get() { ", receiver gone" } else { "" },
            ));
        }
    }
    figures
}

/// The sender's writing half: closed loop (a free window slot → send) or
/// open loop (the schedule → send, the window as a cap).
async fn send_loop(
    pair: Rc<Pair>,
    mut tx: WsTx,
    plan: DirectPlan,
    window: Window,
    figures: Rc<RefCell<Figures>>,
) {
    let interval_us = plan.rate_per_sender.map(|r| 1e6 / r);
    // Spread the senders' first sends over one interval.
    let offset_us = interval_us.map_or(0.0, |i| i * pair.index as f64 / plan.senders_total as f64);
    let mut k: u64 = 0;
    loop {
        let scheduled = interval_us.map(|i| window.start_us + (offset_us + i * k as f64) as u64);
        if let Some(at) = scheduled {
            if at >= window.end_us {
                return;
            }
            let wait = at.saturating_sub(now_us());
            if wait > 0 {
                glommio::timer::sleep(Duration::from_micros(wait)).await;
            }
        } else {
            let wait = window.start_us.saturating_sub(now_us());
            if wait > 0 {
                glommio::timer::sleep(Duration::from_micros(wait)).await;
            }
        }
        if pair.window.acquire(1).await.is_err() {
            return;
        }
        let now = now_us();
        if now >= window.end_us || pair.sender_gone.get() {
            return;
        }
        let t_us = scheduled.unwrap_or(now);
        let n = pair.next_n.get();
        pair.next_n.set(n + 1);
        // The run's nonce keeps ids unique across runs: the server answers a
        // repeated client_msg_id with the old seq and delivers nothing.
        let id = format!("{}-{}-{n}", plan.run_id, pair.index);
        let text = format!(
            r#"{{"type":"message.send","ref":"{id}","conversation_id":"{}","client_msg_id":"{id}","body":{{"text":"{}"}}}}"#,
            pair.conv,
            body_text(t_us, plan.body_bytes)
        );
        pair.inflight.borrow_mut().insert(id, t_us);
        if tx.send(Message::text(text)).await.is_err() {
            pair.sender_gone.set(true);
            return;
        }
        figures.borrow_mut().sends += 1;
        k += 1;
    }
}

/// The sender's reading half: `message.sent` frees a window slot and
/// records its latency; `error` is counted (and retried after
/// `retry_after_ms` when rate limited).
async fn sender_reader(
    pair: Rc<Pair>,
    mut rx: WsRx,
    window: Window,
    figures: Rc<RefCell<Figures>>,
) {
    loop {
        let frame = rx.next().await;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            other => {
                pair.sender_gone.set(true);
                *figures
                    .borrow_mut()
                    .disconnects
                    .entry(format!("sender {}", end_reason(other)))
                    .or_insert(0) += 1;
                pair.window.close();
                return;
            }
        };
        let now = now_us();
        let Ok(event) = serde_json::from_str::<Event>(text.as_str()) else {
            *figures
                .borrow_mut()
                .errors
                .entry("client: unparsable frame".into())
                .or_insert(0) += 1;
            continue;
        };
        let mut f = figures.borrow_mut();
        match event.ty.as_ref() {
            "message.sent" => {
                let id = event.client_msg_id.as_deref().unwrap_or("");
                let Some(t) = pair.inflight.borrow_mut().remove(id) else {
                    *f.errors
                        .entry("client: unknown message.sent".into())
                        .or_insert(0) += 1;
                    continue;
                };
                if let Some(seq) = event.seq {
                    pair.sent.borrow_mut().push(seq);
                }
                if t >= window.measure_us {
                    f.send_to_sent
                        .saturating_record(now.saturating_sub(t).max(1));
                }
                if window.measured(now) {
                    f.sent_measured += 1;
                }
                pair.window.signal(1);
            }
            "error" => {
                let code = event.code.as_deref().unwrap_or("?").to_owned();
                *f.errors.entry(code.clone()).or_insert(0) += 1;
                let id = event.reference.as_deref().unwrap_or("");
                if pair.inflight.borrow_mut().remove(id).is_some() {
                    match (code.as_str(), event.retry_after_ms) {
                        ("rate_limited", Some(ms)) => {
                            let pair = pair.clone();
                            glommio::spawn_local(async move {
                                glommio::timer::sleep(Duration::from_millis(ms)).await;
                                pair.window.signal(1);
                            })
                            .detach();
                        }
                        _ => pair.window.signal(1),
                    }
                }
            }
            "message.delivered" => f.delivered_events += 1,
            other => *f.other_events.entry(other.to_owned()).or_insert(0) += 1,
        }
    }
}

/// The receiver: records `message.new`'s latency and seq, acks it.
async fn receiver_loop(
    pair: Rc<Pair>,
    mut tx: WsTx,
    mut rx: WsRx,
    window: Window,
    figures: Rc<RefCell<Figures>>,
) {
    loop {
        let frame = rx.next().await;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            other => {
                pair.receiver_gone.set(true);
                *figures
                    .borrow_mut()
                    .disconnects
                    .entry(format!("receiver {}", end_reason(other)))
                    .or_insert(0) += 1;
                return;
            }
        };
        let now = now_us();
        let ack = {
            let Ok(event) = serde_json::from_str::<Event>(text.as_str()) else {
                *figures
                    .borrow_mut()
                    .errors
                    .entry("client: unparsable frame".into())
                    .or_insert(0) += 1;
                continue;
            };
            let mut f = figures.borrow_mut();
            match (event.ty.as_ref(), event.seq) {
                ("message.new", Some(seq)) => {
                    if event.conversation_id.as_deref() != Some(pair.conv.as_str()) {
                        *f.errors
                            .entry("client: message.new of another conversation".into())
                            .or_insert(0) += 1;
                        continue;
                    }
                    pair.received.borrow_mut().push(seq);
                    pair.last_received_us.set(now);
                    let sent_at = event
                        .body
                        .as_ref()
                        .and_then(|b| b.text.as_deref())
                        .and_then(body_time);
                    if let Some(t) = sent_at {
                        if t >= window.measure_us {
                            f.send_to_receive
                                .saturating_record(now.saturating_sub(t).max(1));
                        }
                    }
                    if window.measured(now) {
                        f.received_measured += 1;
                    }
                    ack_frame(&pair.conv, seq)
                }
                ("error", _) => {
                    let code = event.code.as_deref().unwrap_or("?");
                    *f.errors.entry(format!("receiver: {code}")).or_insert(0) += 1;
                    continue;
                }
                (other, _) => {
                    *f.other_events
                        .entry(format!("receiver: {other}"))
                        .or_insert(0) += 1;
                    continue;
                }
            }
        };
        if tx.send(Message::text(ack)).await.is_err() {
            pair.receiver_gone.set(true);
            return;
        }
        figures.borrow_mut().acks += 1;
    }
}

/// p50/p99/p999/max of a histogram, in µs.
fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn report_direct(
    args: &DirectArgs,
    plan: &DirectPlan,
    connected: usize,
    connect_s: f64,
    f: &Figures,
) {
    let seconds = args.duration.as_secs_f64();
    let sent_per_s = f.sent_measured as f64 / seconds;
    let received_per_s = f.received_measured as f64 / seconds;
    let mode = match args.rate {
        Some(r) => format!(
            "open loop at {r:.0} msg/s offered, window cap {}",
            args.window
        ),
        None => format!("closed loop, window {} per sender", args.window),
    };
    let line = |name: &str, h: &Histogram<u64>| {
        format!(
            "  {name:<16} p50 {:>8.2} ms  p99 {:>8.2} ms  p999 {:>8.2} ms  max {:>8.2} ms  (n={})",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        )
    };
    let d = &f.delivery;
    println!(
        "direct: {} pairs ({connected} connections, {connect_s:.1} s to connect), {mode}, {} client executor(s), body {} B",
        f.pairs, args.threads, plan.body_bytes
    );
    println!(
        "  measured {seconds:.1} s after {:.1} s warm-up: {sent_per_s:.0} msg/s durable (message.sent), {received_per_s:.0} msg/s received (message.new)",
        args.warmup.as_secs_f64()
    );
    println!("{}", line("send->sent", &f.send_to_sent));
    println!("{}", line("send->receive", &f.send_to_receive));
    println!(
        "  sends {} acks {} message.delivered {}; errors {:?}; disconnects {:?}; other events {:?}",
        f.sends, f.acks, f.delivered_events, f.errors, f.disconnects, f.other_events
    );
    println!(
        "  delivery check: {} confirmed, {} delivered once, {} lost, {} duplicated, {} unexpected, {} out of order, {} seqs confirmed twice; {} pairs not drained: {}",
        d.confirmed,
        d.delivered_once,
        d.lost,
        d.duplicated,
        d.unexpected,
        d.out_of_order,
        d.sent_twice,
        f.undrained_pairs,
        if d.clean() { "OK" } else { "FAILED" }
    );
    for line in &f.lossy_pairs {
        println!("  failed {line}");
    }
    for failure in f.connect_failures.iter().take(5) {
        println!("  connect failure: {failure}");
    }
    let report = json!({
        "bench": "direct",
        "pairs": f.pairs,
        "connections": connected,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate_offered": args.rate,
        "window": args.window,
        "client_threads": args.threads,
        "body_bytes": plan.body_bytes,
        "duration_s": seconds,
        "warmup_s": args.warmup.as_secs_f64(),
        "sent_per_s": sent_per_s,
        "received_per_s": received_per_s,
        "send_to_sent": quantiles(&f.send_to_sent),
        "send_to_receive": quantiles(&f.send_to_receive),
        "sends": f.sends,
        "acks": f.acks,
        "errors": f.errors,
        "disconnects": f.disconnects,
        "connect_failures": f.connect_failures.len(),
        "delivery": {
            "confirmed": d.confirmed,
            "delivered_once": d.delivered_once,
            "lost": d.lost,
            "duplicated": d.duplicated,
            "unexpected": d.unexpected,
            "out_of_order": d.out_of_order,
            "sent_twice": d.sent_twice,
            "undrained_pairs": f.undrained_pairs,
            "ok": d.clean(),
        },
    });
    println!("{report}");
    let _ = std::io::stdout().flush();
}

// ---------------------------------------------------------------------------
// idle

/// Source address `i` of `count` (127.0.0.2, .3, …), or none for `count` 0.
fn source_ip(i: usize, count: usize) -> Option<IpAddr> {
    if count == 0 {
        return None;
    }
    let n = 2 + (i % count) as u32;
    assert!(n < 1 << 24, "stays inside 127/8");
    Some(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n)))
}

fn idle(args: IdleArgs) -> BenchResult<()> {
    let file = read_users(&args.users)?;
    if file.users.is_empty() {
        return Err("users.json has no users".into());
    }
    let (addr, host_port) = resolve(&args.server)?;
    let tokens: Vec<String> = (0..args.connections)
        .map(|i| {
            file.users[(args.user_offset + i) % file.users.len()]
                .token
                .clone()
        })
        .collect();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("chatbench-idle")
        .spawn(move || async move { idle_executor(args, addr, host_port, tokens).await })
        .map_err(|e| format!("cannot start the executor: {e}"))?;
    handle.join().map_err(|e| format!("executor failed: {e}"))?
}

async fn idle_executor(
    args: IdleArgs,
    addr: SocketAddr,
    host_port: String,
    tokens: Vec<String>,
) -> BenchResult<()> {
    let started = Instant::now();
    let gate = Rc::new(Semaphore::new(CONNECTS_IN_FLIGHT_MAX));
    let up = Rc::new(Cell::new(0usize));
    let ended: Rc<RefCell<BTreeMap<String, u64>>> = Rc::new(RefCell::new(BTreeMap::new()));
    let failures: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
    let ping = Duration::from_secs(args.ping_interval.max(1));
    let mut joins = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (gate, host_port) = (gate.clone(), host_port.clone());
        let (up, ended, failures) = (up.clone(), ended.clone(), failures.clone());
        let source = source_ip(i, args.source_ips);
        joins.push(glommio::spawn_local(async move {
            let ws = {
                let _permit = gate.acquire_permit(1).await.expect("gate open");
                let connected = async {
                    let mut ws = connect_ws(addr, &host_port, source).await?;
                    auth(&mut ws, &token).await?;
                    BenchResult::Ok(ws)
                }
                .await;
                match connected {
                    Ok(ws) => ws,
                    Err(e) => {
                        failures.borrow_mut().push(format!("connection {i}: {e}"));
                        return;
                    }
                }
            };
            up.set(up.get() + 1);
            // Hold: answer nothing, ping on a jittered period, note the end.
            glommio::spawn_local(hold(ws, ping, i, ended)).detach();
        }));
    }
    for join in joins {
        join.await;
    }
    let up_s = started.elapsed().as_secs_f64();
    let failures = failures.take();
    println!(
        "idle: {} of {} connections up (auth.ok + sync.done) in {up_s:.2} s, {} failed{}",
        up.get(),
        args.connections,
        failures.len(),
        failures
            .first()
            .map(|f| format!(", e.g. {f}"))
            .unwrap_or_default()
    );
    if failures.is_empty() {
        println!("idle: all {} up", args.connections);
    }
    println!(
        "{}",
        json!({"bench": "idle", "connections": args.connections, "up": up.get(),
               "failed": failures.len(), "up_s": up_s})
    );
    let _ = std::io::stdout().flush();
    let hold_until = args.hold.map(|s| Instant::now() + Duration::from_secs(s));
    let mut reported = 0u64;
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let total: u64 = ended.borrow().values().sum();
        if total != reported {
            println!("idle: {total} connections ended: {:?}", ended.borrow());
            let _ = std::io::stdout().flush();
            reported = total;
        }
        if hold_until.is_some_and(|t| Instant::now() >= t) {
            println!("idle: held for {} s; exiting", args.hold.unwrap_or(0));
            return Ok(());
        }
    }
}

/// Holds one authenticated connection: pings every `interval` (the first
/// one at a per-connection offset, so pings are spread out), reads and
/// drops whatever arrives, and notes how it ended.
async fn hold(ws: Ws, interval: Duration, i: usize, ended: Rc<RefCell<BTreeMap<String, u64>>>) {
    let (mut tx, mut rx) = ws.split();
    let first = interval.mul_f64((i % 1000) as f64 / 1000.0);
    let mut next_ping = Instant::now() + first;
    loop {
        let wait = next_ping.saturating_duration_since(Instant::now());
        match within(wait, rx.next()).await {
            Some(Some(Ok(Message::Close(close)))) => {
                let reason = end_reason(Some(Ok(Message::Close(close))));
                *ended.borrow_mut().entry(reason).or_insert(0) += 1;
                return;
            }
            Some(Some(Ok(_))) => {}
            Some(other) => {
                *ended.borrow_mut().entry(end_reason(other)).or_insert(0) += 1;
                return;
            }
            None => {
                if let Err(e) = tx.send(Message::text(r#"{"type":"ping"}"#)).await {
                    *ended
                        .borrow_mut()
                        .entry(format!("ping failed: {e}"))
                        .or_insert(0) += 1;
                    return;
                }
                next_ping += interval;
            }
        }
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_confirmed_seq_received_once_is_clean() {
        let d = check_delivery(&[3, 1, 2], &[1, 2, 3]);
        assert_eq!(d.confirmed, 3);
        assert_eq!(d.delivered_once, 3);
        assert!(d.clean());
    }

    #[test]
    fn missing_seq_is_lost_and_repeated_seq_is_duplicated() {
        let d = check_delivery(&[1, 2, 3, 4], &[1, 2, 2, 4]);
        assert_eq!(d.lost, 1, "3 never arrived");
        assert_eq!(d.duplicated, 1, "2 arrived twice");
        assert_eq!(d.delivered_once, 2);
        assert_eq!(d.out_of_order, 0, "a repeat is not a step back");
        assert!(!d.clean());
    }

    #[test]
    fn unconfirmed_and_reordered_receptions_are_flagged() {
        let d = check_delivery(&[1, 2], &[2, 1, 5]);
        assert_eq!(d.unexpected, 1, "5 was never confirmed by message.sent");
        assert_eq!(d.out_of_order, 1, "1 came after 2");
        assert_eq!(d.delivered_once, 2);
        assert!(!d.clean());
    }

    #[test]
    fn one_seq_confirmed_for_two_sends_is_flagged() {
        let d = check_delivery(&[1, 1], &[1]);
        assert_eq!(d.sent_twice, 1);
        assert_eq!(d.confirmed, 1);
        assert!(!d.clean());
    }

    #[test]
    fn body_carries_its_send_time() {
        let text = body_text(123_456, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(body_time(&text), Some(123_456));
        assert_eq!(
            body_time(&body_text(7, 0)),
            Some(7),
            "shorter than the stamp"
        );
        assert_eq!(body_time("hello 1"), None);
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn source_addresses_cycle_from_127_0_0_2() {
        assert_eq!(source_ip(0, 0), None);
        assert_eq!(source_ip(0, 3), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(source_ip(4, 3), Some("127.0.0.3".parse().unwrap()));
    }

    #[test]
    fn server_events_parse_with_the_fields_we_read() {
        let text = r#"{"type":"message.new","conversation_id":"c1","seq":7,"message_id":"m","sender_id":"u","sender_device":"d","ts":1,"body":{"text":"bench 42 xx"}}"#;
        let e: Event = serde_json::from_str(text).unwrap();
        assert_eq!(e.ty, "message.new");
        assert_eq!(e.seq, Some(7));
        assert_eq!(
            body_time(e.body.unwrap().text.as_deref().unwrap()),
            Some(42)
        );
        let text = r#"{"type":"error","ref":"b1-2","code":"rate_limited","message":"slow down","retry_after_ms":10}"#;
        let e: Event = serde_json::from_str(text).unwrap();
        assert_eq!(e.reference.as_deref(), Some("b1-2"));
        assert_eq!(e.retry_after_ms, Some(10));
    }

    #[test]
    fn phones_are_e164_with_seven_digits() {
        assert_eq!(phone(0, 0), "+15550000000");
        assert_eq!(phone(1000, 23), "+15550001023");
    }
}
