//! Every limit of the replication layer, units last, related by
//! compile-time asserts.

/// Default interval between two ticks of every group (the shell's timer).
pub const TICK_INTERVAL_MS_DEFAULT: u64 = 50;
/// Default ticks between two heartbeats of a leader.
pub const HEARTBEAT_TICKS_DEFAULT: usize = 2;
/// Default ticks without a leader before a follower campaigns; raft-rs
/// draws each timeout in [election, 2 × election).
pub const ELECTION_TICKS_DEFAULT: usize = 10;

/// Most bytes of entries in one append message.
pub const APPEND_SIZE_BYTES_MAX: u64 = 1024 * 1024;
/// Most append messages in flight to one follower. Bounds what one Ready
/// may send a follower far behind (this × `APPEND_SIZE_BYTES_MAX` = 32 MiB,
/// the size of the shell's queue per peer link); unacked appends beyond it
/// wait and go out in bigger batches, so pipelining is not lost.
pub const APPENDS_IN_FLIGHT_MAX: usize = 32;
/// Most bytes proposed and not yet committed per group; over it,
/// proposals are dropped (the client sees `unavailable`).
pub const UNCOMMITTED_SIZE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most bytes of committed entries handed out in one collect per group.
pub const COMMITTED_SIZE_PER_READY_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Largest single proposal.
pub const PROPOSAL_SIZE_BYTES_MAX: usize = 1024 * 1024;

/// Ticks between two checks of leadership balance.
pub const BALANCE_INTERVAL_TICKS: u64 = 20;

/// Peer frame: header bytes (length, version, kind, reserved, CRC).
pub const FRAME_HEADER_SIZE_BYTES: usize = 12;
/// Peer frame: largest body. One append message of the largest size plus
/// the batch framing must fit.
pub const FRAME_BODY_SIZE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Peer frame: most raft messages in one batch frame.
pub const FRAME_MESSAGES_MAX: usize = 65_536;
/// Peer frame format version (2: compact heartbeats in raft batches;
/// 3: the accepting node answers a hello with its own).
pub const FRAME_VERSION: u8 = 3;

/// Most replicas of one group (RF).
pub const REPLICAS_MAX: usize = 7;
/// Most nodes in a cluster's membership.
pub const NODES_MAX: usize = 64;

const _: () = assert!(ELECTION_TICKS_DEFAULT > HEARTBEAT_TICKS_DEFAULT);
const _: () = assert!(APPEND_SIZE_BYTES_MAX as usize * 2 <= FRAME_BODY_SIZE_BYTES_MAX);
const _: () = assert!(PROPOSAL_SIZE_BYTES_MAX as u64 <= APPEND_SIZE_BYTES_MAX);
const _: () = assert!(PROPOSAL_SIZE_BYTES_MAX as u64 * 16 <= UNCOMMITTED_SIZE_BYTES_MAX);
const _: () = assert!(FRAME_BODY_SIZE_BYTES_MAX < u32::MAX as usize);
const _: () = assert!(REPLICAS_MAX <= NODES_MAX);
