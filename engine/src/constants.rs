//! All limits of the engine, in one place. Units last in every name.
//!
//! Lives on: compile time; every core reads them. The configurable ones are
//! defaults that `config.rs` may override within the bounds given here.

/// Largest encoded message event a client may send (PROTOCOL.md: 128 KiB).
pub const MESSAGE_BYTES_MAX: usize = 128 * 1024;

/// Members of a group, by default and at most.
pub const GROUP_MEMBERS_DEFAULT: usize = 512;
pub const GROUP_MEMBERS_LIMIT: usize = 100_000;

/// Groups larger than this fan out on read (default).
pub const FANOUT_ON_READ_MEMBERS_DEFAULT: usize = 256;

/// Per-device send rate: tokens per second and burst (defaults).
pub const SEND_RATE_PER_SECOND_DEFAULT: u32 = 100;
pub const SEND_BURST_DEFAULT: u32 = 200;

/// Frames queued for one connection before it counts as a slow consumer
/// and is disconnected (it catches up on reconnect).
pub const OUTBOX_FRAMES_MAX: usize = 1024;

/// Connections one core accepts at most.
pub const CONNECTIONS_PER_CORE_MAX: usize = 250_000;

/// Capacity of each ring of the core mesh (messages).
pub const MESH_RING_CAPACITY: usize = 4096;

/// A WebSocket must authenticate within this long.
pub const AUTH_TIMEOUT_MS: u64 = 10_000;

/// OTP codes: lifetime, tries per code, requests per phone per window.
pub const OTP_TTL_SECONDS: u64 = 300;
pub const OTP_TRIES_MAX: u32 = 5;
pub const OTP_REQUESTS_PER_WINDOW_MAX: u32 = 5;
pub const OTP_REQUEST_WINDOW_SECONDS: u64 = 600;
/// An SMS gateway's webhook answers within this long, or the call is
/// logged as failed (the user asks for a new code).
pub const OTP_WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// Tokens expire after this long unless configured otherwise.
pub const TOKEN_TTL_SECONDS_DEFAULT: u64 = 90 * 24 * 3600;

/// A message may be edited this long after its `ts` unless configured
/// otherwise.
pub const EDIT_WINDOW_SECONDS_DEFAULT: u64 = 24 * 3600;
/// One-time prekeys one `PUT /v1/keys` may upload.
pub const PREKEYS_PER_PUT_MAX: usize = 100;
/// One-time prekeys stored per device.
pub const PREKEYS_STORED_MAX: usize = 1000;
/// Bytes of one key field, decoded from base64.
pub const KEY_BYTES_MAX: usize = 1024;
/// Key fetches (`GET /v1/keys/{user}`) per caller per minute, by default.
pub const KEY_FETCHES_PER_MINUTE_DEFAULT: u32 = 60;
const _: () = assert!(PREKEYS_PER_PUT_MAX <= PREKEYS_STORED_MAX);
/// Callers a shard counts key fetches of before it drops those whose
/// minute is over.
pub const KEY_FETCH_MAP_USERS_MAX: usize = 100_000;

/// Largest upload (PROTOCOL.md: over 16 MiB → 413); the HTTP layer
/// refuses a larger body before the handler runs.
pub const MEDIA_BYTES_MAX: usize = chat_net::constants::HTTP_MEDIA_BODY_BYTES_MAX;
/// Uploads one account holds (about 100 bytes of state each).
pub const MEDIA_PER_USER_MAX: usize = 100_000;
/// Conversations one upload may be sent to; past it, upload it again.
pub const MEDIA_CONVS_MAX: usize = 1024;
/// Longest `Content-Type` of an upload.
pub const MEDIA_MIME_BYTES_MAX: usize = 255;
/// Uploads one core streams to disk at once; past it, 503 `unavailable`.
/// With `MEDIA_WRITE_BYTES` this bounds upload memory per core.
pub const MEDIA_UPLOADS_PER_CORE_MAX: usize = 32;
/// An upload is written to its file in pieces of this size (its only
/// buffer besides hyper's read buffer).
pub const MEDIA_WRITE_BYTES: usize = 256 * 1024;
/// Cluster mode: media files travel between nodes in pieces of this size
/// (one call each, well under a peer frame).
pub const MEDIA_BLOB_CHUNK_BYTES: usize = 1024 * 1024;
/// Files a core receives from peers at once (each holds a temporary file).
pub const MEDIA_BLOBS_RECEIVING_MAX: usize = 64;
/// A file from a peer whose next piece is this late is thrown away.
pub const MEDIA_RECEIVE_IDLE_MS: u64 = 30_000;
const _: () =
    assert!(MEDIA_BLOB_CHUNK_BYTES * 2 <= chat_replication::constants::FRAME_BODY_SIZE_BYTES_MAX);
/// A download reads its file in pieces of this size.
pub const MEDIA_READ_BYTES: usize = 64 * 1024;
const _: () =
    assert!(MEDIA_WRITE_BYTES <= MEDIA_BYTES_MAX && MEDIA_READ_BYTES <= MEDIA_WRITE_BYTES);
const _: () = assert!(MEDIA_UPLOADS_PER_CORE_MAX * MEDIA_WRITE_BYTES <= 64 * 1024 * 1024);

/// The media sweep leaves a file this long after it was written before
/// it may go for want of an account holding it (an upload's file comes
/// before its record; a copy may reach a node before the record does).
pub const MEDIA_SWEEP_GRACE_SECONDS_MAX: u64 = 600;

/// The longest disappearing setting (a year).
pub const DISAPPEARING_SECONDS_MAX: u64 = 366 * 24 * 3600;

/// Edits one message may have (the next is refused with `conflict`).
pub const EDITS_PER_MESSAGE_MAX: u8 = 10;

/// Devices one account may link.
pub const DEVICES_PER_USER_MAX: usize = 16;

/// History pages.
pub const HISTORY_LIMIT_DEFAULT: usize = 50;
pub const HISTORY_LIMIT_MAX: usize = 100;

/// Search answers (`limit`).
pub const SEARCH_LIMIT_DEFAULT: usize = 20;
pub const SEARCH_LIMIT_MAX: usize = 50;
/// A search's `q`: bytes and words at most (more → 400).
pub const SEARCH_QUERY_BYTES_MAX: usize = 256;
pub const SEARCH_QUERY_WORDS_MAX: usize = 16;
/// Candidates one search takes from a shard's index, and messages it reads
/// to check them, at most (past these it answers what it found).
pub const SEARCH_CANDIDATES_MAX: usize = 4_096;
pub const SEARCH_READS_MAX: usize = 2_000;
const _: () = assert!(SEARCH_LIMIT_DEFAULT <= SEARCH_LIMIT_MAX);
const _: () =
    assert!(SEARCH_LIMIT_MAX <= SEARCH_READS_MAX && SEARCH_READS_MAX <= SEARCH_CANDIDATES_MAX);

/// Sync on connect reads a conversation's missed messages in pages this big.
pub const SYNC_PAGE_MESSAGES_MAX: usize = 256;

/// `client_msg_id`s remembered per conversation for dedupe.
pub const DEDUPE_WINDOW_PER_CONVERSATION: usize = 4096;

/// Receipt timestamps remembered per member (steps of its watermark).
pub const RECEIPT_STEPS_PER_MEMBER_MAX: usize = 64;

/// Group `message.status` events are coalesced over this period.
pub const STATUS_COALESCE_MS: u64 = 100;

/// A coalesced status looks back at most this many messages for senders.
pub const STATUS_SCAN_MESSAGES_MAX: u64 = 256;

/// A direct `message.delivered` names the peer's latest message covered,
/// looking back at most this many messages.
pub const RECEIPT_SCAN_MESSAGES_MAX: u64 = 1024;

/// Senders of a conversation's latest messages kept in memory (receipts
/// and status look back at most this far; older senders are read from the
/// log).
pub const SENDER_WINDOW_MESSAGES: usize = 1024;
const _: () = assert!(SENDER_WINDOW_MESSAGES as u64 >= RECEIPT_SCAN_MESSAGES_MAX);
const _: () = assert!(SENDER_WINDOW_MESSAGES as u64 >= STATUS_SCAN_MESSAGES_MAX);

/// Recent messages kept in memory per shard.
pub const MESSAGE_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Typing auto-stops after this long without a new `start`.
pub const TYPING_TIMEOUT_MS: u64 = 5_000;

/// Text fields: names, phone numbers, device names.
pub const NAME_BYTES_MAX: usize = 128;
pub const PHONE_DIGITS_MIN: usize = 8;
pub const PHONE_DIGITS_MAX: usize = 15;

/// A snapshot is taken after this many records since the last one.
pub const SNAPSHOT_RECORDS_INTERVAL: u64 = 200_000;

/// Seconds between two erasure compactions of a shard's log (the contract:
/// erased bytes gone from disk within 24 h).
pub const COMPACT_INTERVAL_SECONDS_DEFAULT: u64 = 3600;
const _: () = assert!(2 * COMPACT_INTERVAL_SECONDS_DEFAULT + 5 <= 24 * 3600);

/// Shards of a data directory (fixed when it is created).
pub const SHARDS_MAX: usize = 1024;

const _: () = assert!(GROUP_MEMBERS_DEFAULT <= GROUP_MEMBERS_LIMIT);
const _: () = assert!(FANOUT_ON_READ_MEMBERS_DEFAULT <= GROUP_MEMBERS_DEFAULT);
const _: () = assert!(SEND_BURST_DEFAULT >= SEND_RATE_PER_SECOND_DEFAULT);
const _: () = assert!(HISTORY_LIMIT_DEFAULT <= HISTORY_LIMIT_MAX);
const _: () = assert!(SYNC_PAGE_MESSAGES_MAX < OUTBOX_FRAMES_MAX);
// A stored message (body + envelope) must fit one log record.
const _: () =
    assert!(MESSAGE_BYTES_MAX + 4096 <= chat_log::constants::RECORD_PAYLOAD_SIZE_BYTES_MAX);

/// Reads wait at most this long for a rebuild after a failed write, then
/// answer `unavailable`; a rebuild that fails is retried after the pause.
pub const REBUILD_WAIT_MS: u64 = 5_000;
pub const REBUILD_RETRY_MS: u64 = 500;
/// A read that saw the state rebuilt under it starts again, this often at most.
pub const READ_TRIES_MAX: usize = 3;
const _: () = assert!(REBUILD_RETRY_MS < REBUILD_WAIT_MS);

/// A snapshot encodes entities in chunks of about this many bytes, and
/// yields to the shard's other tasks between chunks.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;
const _: () = assert!(SNAPSHOT_CHUNK_BYTES <= chat_log::constants::SNAPSHOT_CHUNK_SIZE_BYTES_MAX);

/// How long a write forwarded to its shard's leader waits for the answer
/// (the leader itself gives up after `COMMIT_WAIT_MS`; a leader cut off
/// from this node never answers).
pub const FORWARD_WAIT_MS: u64 = 6_000;
/// How long a write waits for its shard to have a leader (an election).
pub const LEADER_WAIT_MS: u64 = 5_000;
/// Between two looks for a leader while one is being elected.
pub const LEADER_POLL_MS: u64 = 20;
/// How long a leader's write waits for its commit before answering
/// `unavailable` (cut off from the majority: it may still commit later,
/// or be replaced; a resend with the same client_msg_id dedupes).
pub const COMMIT_WAIT_MS: u64 = 5_000;
/// How many (longest) election timeouts a starting cluster node waits
/// for its shards' leaders before it opens its client port anyway.
pub const STARTUP_ELECTIONS: u64 = 4;
/// One try of a read index (a leader that died drops it: ask again; a
/// leader change ends the try at once).
pub const READ_INDEX_TRY_MS: u64 = 500;
const _: () = assert!(LEADER_POLL_MS < LEADER_WAIT_MS && LEADER_WAIT_MS < FORWARD_WAIT_MS);
const _: () = assert!(READ_INDEX_TRY_MS < LEADER_WAIT_MS);
const _: () = assert!(COMMIT_WAIT_MS < FORWARD_WAIT_MS);

/// Cluster mode: Raft's view of a shard's log (held in memory) keeps at
/// most about twice this many entries: past it, the applied entries but
/// the last this many are compacted away (`--snapshot-records` lowers
/// it). A follower further behind fetches the log (`cluster/catch_up.rs`).
pub const RAFT_KEEP_ENTRIES_MAX: u64 = 10_000;
/// ... and at most this many bytes of entries (then everything applied goes).
pub const RAFT_HELD_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bytes queued on one peer link (one core to one peer node) before frames
/// are dropped (raft then probes the peer again). A Ready's appends to a
/// follower far behind fit.
pub const LINK_QUEUE_BYTES_MAX: usize = 32 * 1024 * 1024;
const _: () = assert!(
    chat_replication::constants::APPENDS_IN_FLIGHT_MAX
        * chat_replication::constants::APPEND_SIZE_BYTES_MAX as usize
        <= LINK_QUEUE_BYTES_MAX
);
/// A follower catching up fetches the log in chunks of about this many
/// bytes (one chunk may go over by one record).
pub const CATCH_UP_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// ... and stores its new compaction point every this many chunks, so that
/// a restart in the middle resumes from there with little held in memory.
pub const CATCH_UP_STORE_EVERY_CHUNKS: u64 = 4;
const _: () = assert!(
    CATCH_UP_CHUNK_BYTES + chat_replication::constants::PROPOSAL_SIZE_BYTES_MAX + 64 * 1024
        <= chat_replication::constants::FRAME_BODY_SIZE_BYTES_MAX
);
const _: () = assert!(
    RAFT_HELD_BYTES_MAX >= 16 * chat_replication::constants::PROPOSAL_SIZE_BYTES_MAX as u64
);

/// Push notifications (`push/`). A push token is at most this long (more
/// → 400); APNs tokens are 64 hex digits, FCM's about 160 characters.
pub const PUSH_TOKEN_BYTES_MAX: usize = 4096;
/// Notifications waiting per shard (one per user and conversation, newer
/// messages replace older ones); past it a new one is dropped and counted
/// (`chatd_push_dropped_total`).
pub const PUSH_PENDING_PER_SHARD_MAX: usize = 100_000;
/// Calls to the gateway in flight per shard at once.
pub const PUSH_IN_FLIGHT_PER_SHARD_MAX: usize = 32;
/// A gateway answer that takes longer counts as a failure (PROTOCOL.md).
pub const PUSH_ANSWER_TIMEOUT_MS: u64 = 5_000;
/// The first retry waits this long; each next one twice as long.
pub const PUSH_RETRY_FIRST_MS: u64 = 1_000;
/// Retries stop this long after the message was stored (PROTOCOL.md).
pub const PUSH_GIVE_UP_MS: u64 = 3_600_000;
/// Tokens taken from one gateway answer's `rejected` at most.
pub const PUSH_REJECTED_PER_ANSWER_MAX: usize = 64;
/// Cluster mode: how often the sender looks whether its shard's replica
/// became (or stopped being) the leader, and how long it waits for a
/// peer to say which devices are connected there.
pub const PUSH_LEADER_CHECK_MS: u64 = 250;
pub const PUSH_PEER_ASK_TIMEOUT_MS: u64 = 300;
const _: () = assert!(PUSH_RETRY_FIRST_MS < PUSH_GIVE_UP_MS);
const _: () = assert!(PUSH_REJECTED_PER_ANSWER_MAX >= DEVICES_PER_USER_MAX);
const _: () = assert!(PUSH_IN_FLIGHT_PER_SHARD_MAX <= PUSH_PENDING_PER_SHARD_MAX);
