//! Where a connection lives: its core and its id there. The user's home
//! keeps these for its online devices; pushes go to the core named.
//!
//! Lives on: every core (plain values).

/// One core (one glommio executor, one mesh peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub u16);

/// A connection, unique on its core for the process's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnRef {
    pub core: CoreId,
    pub conn: ConnId,
}

/// Close code for a connection dropped because it fell behind.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code when the server cannot serve the socket now (RFC 6455
/// "try again later": a shard without a leader during an election).
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Close code for a revoked device or a bad token.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
