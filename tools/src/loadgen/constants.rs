//! All limits of the load generator, in one place. Units last.

use std::time::Duration;

/// Histograms cover 1 µs to 120 s with 3 significant digits.
pub const HISTOGRAM_MICROS_MAX: u64 = 120_000_000;
/// A worker process keeps its sockets under the 20,000 open files a process
/// may have here, with room for its own files.
pub const CONNECTIONS_PER_WORKER_MAX: usize = 19_000;
/// Worker processes one run may start.
pub const WORKERS_MAX: usize = 64;
/// Handshakes (TCP connect + upgrade + auth) in flight per worker.
pub const CONNECTS_IN_FLIGHT_MAX: usize = 256;
/// A failed connect (TCP, upgrade, handshake) is tried this often in all.
pub const CONNECT_TRIES_MAX: u32 = 3;
/// Every network step (connect, upgrade, one handshake answer) times out.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// REST setup threads per worker (logins, conversations).
pub const SETUP_THREADS: usize = 16;
/// Logins retried this often (e.g. after `rate_limited`).
pub const LOGIN_TRIES_MAX: u32 = 3;
/// A message body is at least this long (the header) and at most this long.
pub const BODY_BYTES_MIN: usize = 48;
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Members of one conversation (the verdict counts them in u16).
pub const GROUP_MEMBERS_MAX: usize = 4096;
/// The live progress line, and the workers' progress reports, this often.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A send that leaves this much later than intended counts as late (the
/// generator itself could not keep the schedule).
pub const SEND_LAG_LATE: Duration = Duration::from_millis(10);
/// The drain phase checks whether every message has arrived this often.
pub const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Fault lines kept for the report.
pub const FAULT_SAMPLES_MAX: usize = 8;
/// Workers announce readiness within setup + connect time; the coordinator
/// gives the whole run `--hard-stop` at most, then kills what is left.
pub const WORKER_EXIT_GRACE: Duration = Duration::from_secs(5);
/// Frames a connection may queue for writing before its sender waits.
pub const WRITE_QUEUE_FRAMES_MAX: usize = 4096;
/// Storm: how long a connection stays up between reconnects (ms range).
pub const STORM_HOLD_MILLIS_MIN: u64 = 200;
pub const STORM_HOLD_MILLIS_MAX: u64 = 1500;

/// Failover: a dropped connection tries again after this pause, doubling
/// up to the maximum.
pub const RECONNECT_PAUSE_MIN: Duration = Duration::from_millis(50);
pub const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(1);

const _: () = assert!(CONNECTIONS_PER_WORKER_MAX < 20_000);
const _: () = assert!(GROUP_MEMBERS_MAX <= u16::MAX as usize);
const _: () = assert!(BODY_BYTES_MIN < BODY_BYTES_MAX);
const _: () = assert!(STORM_HOLD_MILLIS_MIN < STORM_HOLD_MILLIS_MAX);
const _: () = assert!(RECONNECT_PAUSE_MIN.as_millis() < RECONNECT_PAUSE_MAX.as_millis());
