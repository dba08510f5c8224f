//! Sync on connect: per conversation, every message the device has not
//! acked in seq order, as each reads now (its own messages only when
//! another device changed them: as change events), then
//! `message.edited` / `message.deleted` for the messages it had acked that
//! changed since; then `sync.done`, then the live events held meanwhile. Used by the WebSocket session and the simulation alike.
//!
//! Lives on: the connection's core. Pages come from the conversations'
//! homes; the socket paces them (`Outlet::send_paced`).

use std::collections::HashMap;
use std::rc::Rc;

use chat_net::protocol::ApiError;

use crate::constants::SYNC_PAGE_MESSAGES_MAX;
use crate::front::caller::Caller;
use crate::front::errors::api_error;
use crate::machine::ids::{ConvId, Seq};
use crate::machine::state::Version;
use crate::node::conns::{Held, Outlet};
use crate::node::core::Core;
use crate::shard::conn::{ConnId, CLOSE_SLOW_CONSUMER, CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHORIZED};
use crate::shard::current::Shown;
use crate::shard::error::ShardError;
use crate::shard::mesh::{call, ShardOp};
use crate::shard::ops::connect::Connect;
use crate::shard::ops::history::{Fetch, MissedChanges};
use crate::wire::{message_deleted, message_edited, message_new, message_object, SYNC_DONE};

/// Why a sync stopped: tell the device (if there is an error) and close.
pub struct SyncFailed {
    pub error: Option<ApiError>,
    pub close: Option<(u16, &'static str)>,
}

impl SyncFailed {
    fn gone() -> SyncFailed {
        SyncFailed {
            error: None,
            close: None,
        }
    }
}

/// Syncs connection `conn` (already in the core's table, holding pushes).
pub async fn sync(
    core: &Rc<Core>,
    caller: Caller,
    conn: ConnId,
    out: &dyn Outlet,
) -> Result<(), SyncFailed> {
    let connect = Connect {
        user: caller.user,
        device: caller.device,
        conn: core.conn_ref(conn),
    };
    let plan = call(&core.mesh(), core.shard_of(caller.user.0), connect)
        .await
        .map_err(|e| {
            // A home that cannot answer now (no leader, a replica behind)
            // is not a bad token: the device reconnects and syncs.
            let close = match e {
                ShardError::Unavailable(_) => (CLOSE_TRY_AGAIN_LATER, "unavailable: reconnect"),
                ShardError::Domain(_) => (CLOSE_UNAUTHORIZED, "unauthorized"),
            };
            SyncFailed {
                error: Some(api_error(e)),
                close: Some(close),
            }
        })?;
    let mut synced: HashMap<ConvId, Seq> = HashMap::new();
    for (conv, cursor) in plan {
        let through = catch_up(core, caller, conv, cursor, out).await?;
        synced.insert(conv, through);
    }
    let held = release_held(core, conn, synced).ok_or_else(SyncFailed::gone)?;
    let frames =
        std::iter::once(SYNC_DONE.to_string()).chain(held.into_iter().map(|h| h.event.to_string()));
    for frame in frames {
        if out.try_send(frame).is_err() {
            core.stats.borrow_mut().slow_consumers_dropped += 1;
            let reason = "slow consumer: reconnect to catch up";
            return Err(SyncFailed {
                error: None,
                close: Some((CLOSE_SLOW_CONSUMER, reason)),
            });
        }
    }
    Ok(())
}

/// Sends `conv`'s messages after `cursor`, page by page, then the changes
/// of the messages up to it (when the first page says there are any);
/// answers the last seq sent. Never skips: a failed page ends the session (the device
/// resumes from its cursor).
async fn catch_up(
    core: &Rc<Core>,
    caller: Caller,
    conv: ConvId,
    cursor: Seq,
    out: &dyn Outlet,
) -> Result<Seq, SyncFailed> {
    let (mut after, mut changed_before) = (cursor, false);
    loop {
        let op = Fetch {
            conv,
            user: caller.user,
            device: caller.device,
            after,
            limit: SYNC_PAGE_MESSAGES_MAX,
            first: after == cursor,
        };
        let page = page_of(core, conv, op).await?;
        for m in &page.messages {
            let own = (m.message.sender, m.message.device) == (caller.user, caller.device);
            let event = if own {
                change_event(m)
            } else {
                message_new(&message_object(&m.message, m.version))
            };
            out.send_paced(event)
                .await
                .map_err(|_| SyncFailed::gone())?;
        }
        core.stats
            .borrow_mut()
            .event_out("message.new", page.messages.len() as u64);
        changed_before |= page.changed_before;
        let moved = page.through > after;
        after = page.through;
        if !moved || after >= page.last_seq {
            if changed_before {
                changes_since(core, caller, conv, cursor, out).await?;
            }
            return Ok(after);
        }
    }
}

/// The change events of messages up to `acked` that changed since the
/// device acked them, page by page (at least once: a device drops a change
/// it already applied).
async fn changes_since(
    core: &Rc<Core>,
    caller: Caller,
    conv: ConvId,
    acked: Seq,
    out: &dyn Outlet,
) -> Result<(), SyncFailed> {
    let mut from = Seq(0);
    loop {
        let op = MissedChanges {
            conv,
            user: caller.user,
            acked,
            from,
            limit: SYNC_PAGE_MESSAGES_MAX,
        };
        let page = page_of(core, conv, op).await?;
        let Some(last) = page.last().map(|m| m.message.seq) else {
            return Ok(());
        };
        for m in &page {
            out.send_paced(change_event(m))
                .await
                .map_err(|_| SyncFailed::gone())?;
        }
        core.stats
            .borrow_mut()
            .event_out("message.changed", page.len() as u64);
        from = last;
    }
}

/// `message.edited` / `message.deleted` for a message as it reads now
/// (one never changed: nothing the device lacks, sent as an edit to
/// itself would be wrong, so it goes as `message.new`).
fn change_event(m: &Shown) -> String {
    let msg = &m.message;
    match m.version {
        Version::Edited(ts) => {
            message_edited(None, msg.conv, msg.seq, (msg.body_kind, &msg.body), ts)
        }
        Version::Deleted => message_deleted(None, msg.conv, msg.seq),
        Version::Original => message_new(&message_object(msg, m.version)),
    }
}

/// One page of `conv`'s home; a failure ends the sync (reconnect).
async fn page_of<O: ShardOp>(core: &Rc<Core>, conv: ConvId, op: O) -> Result<O::Reply, SyncFailed> {
    call(&core.mesh(), core.shard_of(conv.0), op)
        .await
        .map_err(|e| SyncFailed {
            error: Some(api_error(e)),
            close: Some((CLOSE_TRY_AGAIN_LATER, "sync failed: reconnect")),
        })
}

/// From now on pushes go straight out; late ones already synced are
/// dropped against the floor, and so are held ones. `None`: the
/// connection is gone.
fn release_held(core: &Core, conn: ConnId, synced: HashMap<ConvId, Seq>) -> Option<Vec<Held>> {
    let mut conns = core.conns.borrow_mut();
    let entry = conns.get_mut(&conn)?;
    entry.synced = synced;
    let held = entry.held.take().unwrap_or_default();
    Some(
        held.into_iter()
            .filter(|h| !entry.already_synced(h.tag))
            .collect(),
    )
}
