//! wsecho: a minimal WebSocket echo server, the machine's ceiling for the
//! load generator. io_uring accept/read/write (glommio) + WebSocket framing
//! (tungstenite), and nothing else: no JSON, no storage, no auth. Whatever
//! rate the load generator reaches against wsecho is the most it can expect
//! from chatd on the same machine.
//!
//! One pinned glommio executor per core, each with its own `SO_REUSEPORT`
//! listener on the same port. Every Text/Binary frame is echoed unchanged and
//! in order; Ping is answered with Pong, Close with Close. Frames already
//! read are fed to the socket and flushed once no more are ready, so a
//! pipelining client gets batched writes.
//!
//! # Flags
//! - `--listen ADDR`     loopback only (127.0.0.1:0 by default; port 0 picks one)
//! - `--cores N`         executors, pinned to the first N online CPUs (default: all)
//! - `--drop-every N`    data frame n of a connection with n % N == 0 is not echoed
//! - `--dup-every N`     ... is echoed twice
//! - `--swap-every N`    ... is held back and echoed right after the next frame
//!   that is echoed (a frame held when the connection closes is lost)
//!
//! Faults count each connection's data frames n = 1, 2, 3, …; 0 turns a fault
//! off. When several match, drop wins over dup, dup over swap (`fault`). A
//! swap while a frame is already held is echoed as usual and releases it.
//!
//! # Output
//! stdout, once every listener is bound: `wsecho ready ws=ws://127.0.0.1:PORT pid=PID`.
//! stderr, on SIGTERM/SIGINT: per-core counters; then exit 0.

use std::cell::Cell;
use std::io::{ErrorKind, Write as _};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

/// All limits of wsecho. Units last.
const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// Open connections per core; beyond this, accepted sockets are closed at once.
const CONNECTIONS_PER_CORE_MAX: usize = 100_000;
const LISTEN_BACKLOG: i32 = 4096;
/// After a failed accept (e.g. out of file descriptors), wait this long.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);
/// How long a fixed port may stay taken (by a wsecho that just exited) before
/// wsecho gives up, and how often it looks.
const PORT_FREE_WAIT: Duration = Duration::from_secs(2);
const PORT_FREE_POLL_INTERVAL: Duration = Duration::from_millis(20);
const _: () = assert!(CONNECTIONS_PER_CORE_MAX > 0);
const _: () = assert!(PORT_FREE_POLL_INTERVAL.as_millis() < PORT_FREE_WAIT.as_millis());
const _: () = assert!(MESSAGE_BYTES_MAX >= 125, "a control frame must fit");

/// Exit code of a refused command line (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(about = "Minimal io_uring WebSocket echo server: the load generator's ceiling")]
struct Cli {
    /// Address to listen on; loopback only
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Executors, one pinned per online CPU (default: all online CPUs)
    #[arg(long)]
    cores: Option<usize>,
    /// Do not echo data frame n of a connection when n % N == 0 (0: off)
    #[arg(long, default_value_t = 0)]
    drop_every: u64,
    /// Echo data frame n twice when n % N == 0 (0: off)
    #[arg(long, default_value_t = 0)]
    dup_every: u64,
    /// Hold data frame n back when n % N == 0, echo it after the next echoed frame (0: off)
    #[arg(long, default_value_t = 0)]
    swap_every: u64,
}

// ---------------------------------------------------------------------------
// Fault injection (sans-IO)

/// Which faults to inject; each "every" is a period in data frames, 0 = off.
#[derive(Clone, Copy, Debug, Default)]
struct FaultCfg {
    drop_every: u64,
    dup_every: u64,
    swap_every: u64,
}

/// What happens to one data frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Echo,
    Drop,
    Dup,
    Swap,
}

/// The fault for a connection's data frame `n` (1-based). Precedence: drop,
/// then dup, then swap.
fn fault(n: u64, cfg: &FaultCfg) -> Fault {
    assert!(n >= 1, "data frames count from 1");
    let hits = |every: u64| every != 0 && n.is_multiple_of(every);
    if hits(cfg.drop_every) {
        Fault::Drop
    } else if hits(cfg.dup_every) {
        Fault::Dup
    } else if hits(cfg.swap_every) {
        Fault::Swap
    } else {
        Fault::Echo
    }
}

/// The echo rule of one connection: data frames in, frames to send out.
///
/// Lives on: the task of its connection.
struct Echoer {
    cfg: FaultCfg,
    /// Data frames seen so far.
    frames: u64,
    /// A swapped frame waiting for the next echoed one.
    held: Option<Message>,
}

impl Echoer {
    fn new(cfg: FaultCfg) -> Self {
        Echoer {
            cfg,
            frames: 0,
            held: None,
        }
    }

    /// Appends to `out` what to send for the data frame `msg`.
    fn step(&mut self, msg: Message, out: &mut Vec<Message>) {
        assert!(msg.is_text() || msg.is_binary());
        self.frames += 1;
        match fault(self.frames, &self.cfg) {
            Fault::Drop => {}
            Fault::Swap if self.held.is_none() => self.held = Some(msg),
            Fault::Dup => {
                out.push(msg.clone());
                out.push(msg);
                out.extend(self.held.take());
            }
            Fault::Echo | Fault::Swap => {
                out.push(msg);
                out.extend(self.held.take());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Counters

/// One core's counters, on a cache line of its own; read by main at exit.
///
/// Lives on: written by its core only, read by the main thread.
#[derive(Default)]
#[repr(align(128))]
struct CoreCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    frames_echoed: AtomicU64,
}

fn print_counters(counters: &[CoreCounters]) {
    let (mut accepted, mut refused, mut echoed) = (0, 0, 0);
    for (core, c) in counters.iter().enumerate() {
        let a = c.accepted.load(Ordering::Relaxed);
        let r = c.refused.load(Ordering::Relaxed);
        let e = c.frames_echoed.load(Ordering::Relaxed);
        eprintln!("wsecho core {core}: accepted={a} refused={r} frames_echoed={e}");
        (accepted, refused, echoed) = (accepted + a, refused + r, echoed + e);
    }
    eprintln!("wsecho total: accepted={accepted} refused={refused} frames_echoed={echoed}");
}

// ---------------------------------------------------------------------------
// Startup

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.listen.ip().is_loopback() {
        eprintln!(
            "wsecho: refusing to listen on {}: loopback only",
            cli.listen
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let cpus = match online_cpus() {
        Ok(cpus) => cpus,
        Err(e) => return fail(&format!("cannot list online CPUs: {e}")),
    };
    let cores = cli.cores.unwrap_or(cpus.len());
    if cores == 0 || cores > cpus.len() {
        eprintln!("wsecho: --cores must be 1..={} (online CPUs)", cpus.len());
        return ExitCode::from(EXIT_USAGE);
    }
    let cfg = FaultCfg {
        drop_every: cli.drop_every,
        dup_every: cli.dup_every,
        swap_every: cli.swap_every,
    };
    let (sockets, addr) = match bind_all(cli.listen, cores) {
        Ok(bound) => bound,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", cli.listen)),
    };
    block_signals();
    // Read at exit, which ends the executors: the counters live as long as the process.
    let counters: &'static [CoreCounters] =
        Vec::leak((0..cores).map(|_| CoreCounters::default()).collect());
    if let Err(e) = start_cores(sockets, &cpus, cfg, counters) {
        return fail(&e);
    }
    println!("wsecho ready ws=ws://{addr} pid={}", std::process::id());
    let _ = std::io::stdout().flush();
    wait_for_signal();
    print_counters(counters);
    // The executors serve forever; leaving the process ends them.
    std::process::exit(0)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wsecho: {message}");
    ExitCode::FAILURE
}

fn online_cpus() -> Result<Vec<usize>, String> {
    let cpus: Vec<usize> = glommio::CpuSet::online()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|l| l.cpu)
        .collect();
    assert!(!cpus.is_empty());
    Ok(cpus)
}

/// Binds `cores` listeners to one address; for port 0 the first picks the
/// port and the others follow. Answers the sockets and the bound address.
fn bind_all(addr: SocketAddr, cores: usize) -> std::io::Result<(Vec<Socket>, SocketAddr)> {
    assert!(cores > 0);
    if addr.port() != 0 {
        refuse_if_taken(addr)?;
    }
    let first = bind(addr)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .expect("an IP socket has an IP address");
    assert!(bound.port() != 0);
    let mut sockets = vec![first];
    for _ in 1..cores {
        sockets.push(bind(bound)?);
    }
    assert_eq!(sockets.len(), cores);
    Ok((sockets, bound))
}

/// `SO_REUSEPORT` would let a second wsecho (or a stale one) share a fixed
/// port and take part of the connections: a probe bind without it fails then.
/// A wsecho that just exited holds its port a moment longer (io_uring
/// teardown is asynchronous), so the probe retries for a while.
fn refuse_if_taken(addr: SocketAddr) -> std::io::Result<()> {
    let deadline = Instant::now() + PORT_FREE_WAIT;
    loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        match probe.bind(&addr.into()) {
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(PORT_FREE_POLL_INTERVAL);
            }
            outcome => return outcome,
        }
    }
}

/// A nonblocking listening socket with `SO_REUSEADDR` + `SO_REUSEPORT`.
fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// Starts one pinned executor per socket; returns once each has taken its
/// listener.
fn start_cores(
    sockets: Vec<Socket>,
    cpus: &[usize],
    cfg: FaultCfg,
    counters: &'static [CoreCounters],
) -> Result<(), String> {
    assert!(sockets.len() <= cpus.len());
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let cores = sockets.len();
    for (core, socket) in sockets.into_iter().enumerate() {
        let started_tx = started_tx.clone();
        LocalExecutorBuilder::new(Placement::Fixed(cpus[core]))
            .name(&format!("wsecho-{core}"))
            .spawn(move || async move {
                let fd = socket.into_raw_fd();
                // SAFETY: `fd` is a bound, listening TCP socket whose ownership we hand over.
                let listener = unsafe { TcpListener::from_raw_fd(fd) };
                let _ = started_tx.send(());
                serve(listener, cfg, &counters[core]).await;
            })
            .map_err(|e| format!("cannot start core {core}: {e}"))?;
    }
    drop(started_tx);
    for _ in 0..cores {
        started_rx
            .recv()
            .map_err(|_| "a core stopped before it listened".to_string())?;
    }
    Ok(())
}

/// SIGTERM and SIGINT are taken by `wait_for_signal` on the main thread
/// only: block them before the executor threads start (they inherit the mask).
fn block_signals() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let set = stop_signals();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_signal() {
    let mut sig = 0;
    // SAFETY: as above; `sig` outlives the call.
    unsafe {
        let set = stop_signals();
        libc::sigwait(&set, &mut sig);
    }
}

/// # Safety
/// Plain libc calls on a local signal set.
unsafe fn stop_signals() -> libc::sigset_t {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigaddset(&mut set, libc::SIGTERM);
    libc::sigaddset(&mut set, libc::SIGINT);
    set
}

// ---------------------------------------------------------------------------
// Serving (one executor)

/// Accepts forever, one task per connection, at most
/// `CONNECTIONS_PER_CORE_MAX` at a time.
async fn serve(listener: TcpListener, cfg: FaultCfg, counters: &'static CoreCounters) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(_) => {
                glommio::timer::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        if open.get() >= CONNECTIONS_PER_CORE_MAX {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        open.set(open.get() + 1);
        let open = open.clone();
        glommio::spawn_local(async move {
            let _ = connection(stream, cfg, counters).await;
            assert!(open.get() > 0);
            open.set(open.get() - 1);
        })
        .detach();
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MESSAGE_BYTES_MAX))
        .max_frame_size(Some(MESSAGE_BYTES_MAX))
}

async fn connection(
    stream: TcpStream,
    cfg: FaultCfg,
    counters: &CoreCounters,
) -> Result<(), tungstenite::Error> {
    stream.set_nodelay(true).map_err(std::io::Error::from)?;
    let mut ws = async_tungstenite::accept_async_with_config(stream, Some(ws_config())).await?;
    echo(&mut ws, Echoer::new(cfg), counters).await
}

/// Echoes until Close or end of stream. Reads every frame that is ready,
/// feeds what to send, then flushes once.
async fn echo(
    ws: &mut WebSocketStream<TcpStream>,
    mut echoer: Echoer,
    counters: &CoreCounters,
) -> Result<(), tungstenite::Error> {
    let mut out = Vec::new();
    loop {
        let Some(first) = ws.next().await else {
            return Ok(());
        };
        let mut ready = Some(first);
        let mut closing = false;
        let mut echoed = 0u64;
        while let Some(msg) = ready.take() {
            match msg? {
                msg @ (Message::Text(_) | Message::Binary(_)) => echoer.step(msg, &mut out),
                Message::Close(_) => closing = true, // tungstenite queues the reply
                _ => {}                              // tungstenite queues Pong for Ping
            }
            echoed += out.len() as u64;
            for msg in out.drain(..) {
                ws.feed(msg).await?;
            }
            if closing {
                break;
            }
            ready = ws.next().now_or_never().flatten();
        }
        ws.flush().await?;
        counters.frames_echoed.fetch_add(echoed, Ordering::Relaxed);
        if closing {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(drop_every: u64, dup_every: u64, swap_every: u64) -> FaultCfg {
        FaultCfg {
            drop_every,
            dup_every,
            swap_every,
        }
    }

    fn run(cfg: FaultCfg, frames: u64) -> Vec<String> {
        let mut echoer = Echoer::new(cfg);
        let mut out = Vec::new();
        for n in 1..=frames {
            echoer.step(Message::text(n.to_string()), &mut out);
        }
        out.iter()
            .map(|m| m.to_text().unwrap().to_string())
            .collect()
    }

    #[test]
    fn zero_turns_every_fault_off() {
        for n in 1..100 {
            assert_eq!(fault(n, &FaultCfg::default()), Fault::Echo);
        }
    }

    #[test]
    fn each_fault_hits_multiples_of_its_period() {
        let c = cfg(3, 0, 0);
        let drops: Vec<u64> = (1..=10).filter(|&n| fault(n, &c) == Fault::Drop).collect();
        assert_eq!(drops, [3, 6, 9]);
        assert_eq!(fault(4, &cfg(0, 4, 0)), Fault::Dup);
        assert_eq!(fault(5, &cfg(0, 0, 5)), Fault::Swap);
        assert_eq!(fault(1, &cfg(0, 0, 5)), Fault::Echo);
    }

    #[test]
    fn drop_wins_over_dup_and_dup_over_swap() {
        assert_eq!(fault(6, &cfg(2, 3, 6)), Fault::Drop);
        assert_eq!(fault(3, &cfg(2, 3, 3)), Fault::Dup);
        assert_eq!(fault(5, &cfg(2, 3, 5)), Fault::Swap);
    }

    #[test]
    fn clean_echo_is_unchanged_and_in_order() {
        assert_eq!(run(FaultCfg::default(), 4), ["1", "2", "3", "4"]);
    }

    #[test]
    fn dropped_and_duplicated_frames() {
        assert_eq!(run(cfg(2, 0, 0), 5), ["1", "3", "5"]);
        assert_eq!(run(cfg(0, 2, 0), 4), ["1", "2", "2", "3", "4", "4"]);
    }

    #[test]
    fn swapped_frame_follows_the_next_echoed_frame() {
        assert_eq!(run(cfg(0, 0, 3), 7), ["1", "2", "4", "3", "5", "7", "6"]);
        // The frame after the held one is dropped: the held one waits on.
        assert_eq!(run(cfg(3, 0, 2), 5), ["1", "4", "2", "5"]);
        // A held frame released after a duplicated one.
        assert_eq!(run(cfg(0, 3, 2), 3), ["1", "3", "3", "2"]);
    }

    #[test]
    fn swap_every_frame_swaps_pairs() {
        assert_eq!(run(cfg(0, 0, 1), 5), ["2", "1", "4", "3"]);
    }

    #[test]
    fn held_frame_is_lost_at_the_end() {
        assert_eq!(run(cfg(0, 0, 4), 4), ["1", "2", "3"]);
    }
}
