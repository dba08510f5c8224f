//! Push notifications (PROTOCOL.md "Push notifications"): a message stored
//! for a device with a push token and no open connection is POSTed to
//! `--push-gateway` within 1 s, retried with backoff for an hour, one
//! pending per device and conversation; pending ones survive a restart
//! because they follow from durable state.
//!
//! - `outbox.rs`       pending notifications, collapse and retry schedule (pure)
//! - `due.rs`          who is owed one, from the state and the home's soft knowledge (pure)
//! - `offer.rs`        the live path: a delivered message offers its offline, tokened devices
//! - `notification.rs` the gateway's JSON both ways
//! - `sender.rs`       the per-shard task: gateway calls (`chat_net::client`), outcomes, leadership
//!
//! The durable side (tokens, how far each device was pushed, refused
//! tokens) is `machine/cmd/push.rs`; `PUT /v1/devices/{id}/push` is in
//! `front/rest/account.rs`.

pub mod due;
pub mod notification;
pub mod offer;
pub mod outbox;
pub mod sender;
