//! A shard: its log, the state the log makes, and the soft state beside it.
//! `exec` runs one operation; the operations live in `users.rs`,
//! `otp.rs`, `convs.rs`, `messages.rs`.
//!
//! Lives on: core `shard % cores`, nowhere else. Writes are serialised by
//! `write`: validate against the state, append, apply, then wait for the
//! record to be durable before answering.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use chat_log::{Entry, Log, Offset, Term};
use chat_net::protocol::{ApiError, ErrorCode};
use glommio::sync::Semaphore;

use crate::config::Config;
use crate::constants::{REBUILD_POLL_INTERVAL, REBUILD_WAIT};
use crate::core::Core;
use crate::ids::ShardId;
use crate::ops::{Op, Reply};
use crate::records::{decode, encode, Rec, KIND_CHAT};
use crate::soft::Soft;
use crate::state::State;

pub struct Shard {
    pub id: ShardId,
    pub shards: u16,
    pub log: Log,
    pub state: RefCell<State>,
    pub soft: RefCell<Soft>,
    pub cache: RefCell<crate::cache::MessageCache>,
    pub config: Rc<Config>,
    write_lock: Semaphore,
    /// Set when a write failed to become durable; cleared once the state
    /// has been rebuilt from the log.
    broken: Cell<bool>,
    /// `state.applied` at the last snapshot, and whether one is being taken.
    snapshot_at: Cell<u64>,
    snapshotting: Cell<bool>,
}

pub fn unavailable(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("storage unavailable: {why}"),
    )
}

impl Shard {
    /// Opens the shard's log under `dir` and replays it.
    pub async fn open(
        dir: &Path,
        id: ShardId,
        shards: u16,
        config: Rc<Config>,
    ) -> Result<Shard, String> {
        let path = dir.join(format!("shard-{:04}", id.0));
        let log = Log::open(&path, chat_log::Config::default())
            .await
            .map_err(|e| format!("shard {}: {e}", id.0))?;
        let state = recover(&log)
            .await
            .map_err(|e| format!("shard {}: {e}", id.0))?;
        let applied = state.applied;
        Ok(Shard {
            id,
            shards,
            log,
            state: RefCell::new(state),
            soft: RefCell::new(Soft::default()),
            cache: RefCell::new(crate::cache::MessageCache::new(
                crate::cache::MESSAGE_CACHE_BYTES_MAX,
            )),
            config,
            write_lock: Semaphore::new(1),
            broken: Cell::new(false),
            snapshot_at: Cell::new(applied),
            snapshotting: Cell::new(false),
        })
    }

    /// Validates against the state and builds records (`f`), appends and
    /// applies them, then waits until they are durable. Nothing is
    /// answered before that. `f` sees a state no other write changes.
    pub async fn write<T>(
        self: &Rc<Self>,
        f: impl FnOnce(&State) -> Result<(Vec<Rec>, T), ApiError>,
    ) -> Result<T, ApiError> {
        let permit = self
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(unavailable)?;
        if self.broken.get() {
            return Err(unavailable("recovering from a failed write"));
        }
        let (recs, out) = f(&self.state.borrow())?;
        if recs.is_empty() {
            return Ok(out);
        }
        let encoded: Vec<_> = recs.iter().map(encode).collect();
        let entries: Vec<Entry<'_>> = encoded
            .iter()
            .map(|p| Entry {
                kind: KIND_CHAT,
                term: Term(0),
                payload: p,
            })
            .collect();
        let appended = self.log.append(&entries).await.map_err(unavailable)?;
        {
            let mut state = self.state.borrow_mut();
            for (i, rec) in recs.into_iter().enumerate() {
                state.apply(rec, Offset(appended.first.0 + i as u64));
            }
        }
        drop(permit);
        self.maybe_snapshot();
        if let Err(e) = appended.durable.await {
            self.failed(&e);
            return Err(unavailable(e));
        }
        Ok(out)
    }

    /// A write did not become durable: the log dropped it (and everything
    /// queued after it). Rebuild the state from the log so that it again
    /// says exactly what is on disk.
    fn failed(self: &Rc<Self>, error: &chat_log::LogError) {
        if self.broken.replace(true) {
            return;
        }
        eprintln!(
            "chatd: shard {}: write failed, rebuilding state from the log: {error}",
            self.id.0
        );
        let me = self.clone();
        glommio::spawn_local(async move {
            while me.broken.get() {
                me.rebuild().await;
                if me.broken.get() {
                    glommio::timer::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        })
        .detach();
    }

    /// Rebuilds the durable state from the log (after a failed write).
    pub async fn rebuild(&self) {
        let _permit = self.write_lock.acquire_permit(1).await;
        match recover(&self.log).await {
            Ok(state) => {
                *self.state.borrow_mut() = state;
                self.cache.borrow_mut().clear();
                self.broken.set(false);
                eprintln!("chatd: shard {}: state rebuilt from the log", self.id.0);
            }
            Err(e) => eprintln!(
                "chatd: shard {}: rebuild failed (will retry): {e}",
                self.id.0
            ),
        }
    }

    /// Waits (bounded) until no rebuild is pending: after a failed write the
    /// state may hold records the log dropped, and reads must not see them
    /// or race the rebuild that removes them.
    pub async fn settled(&self) -> Result<(), ApiError> {
        let deadline = std::time::Instant::now() + REBUILD_WAIT;
        while self.broken.get() {
            if std::time::Instant::now() >= deadline {
                return Err(unavailable("recovering from a failed write"));
            }
            glommio::timer::sleep(REBUILD_POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Starts a snapshot once enough records were applied since the last.
    fn maybe_snapshot(self: &Rc<Self>) {
        let applied = self.state.borrow().applied;
        if self.snapshotting.get()
            || applied < self.snapshot_at.get() + self.config.snapshot_records
        {
            return;
        }
        self.snapshotting.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = me.snapshot().await {
                eprintln!(
                    "chatd: shard {}: snapshot failed (will retry later): {e}",
                    me.id.0
                );
            }
            me.snapshotting.set(false);
        })
        .detach();
    }

    /// Writes a snapshot of the durable state. Writers wait meanwhile only
    /// for an fsync and the encoding; the file is written after.
    pub async fn snapshot(&self) -> Result<(), String> {
        let (offset, applied, data) = {
            let _permit = self
                .write_lock
                .acquire_permit(1)
                .await
                .map_err(|e| e.to_string())?;
            if self.broken.get() {
                return Err("state is being rebuilt".into());
            }
            self.log.sync().await.map_err(|e| e.to_string())?;
            let state = self.state.borrow();
            (
                self.log.last_offset(),
                state.applied,
                crate::snapshot::encode(&state),
            )
        };
        let snap = chat_log::Snapshot {
            offset,
            term: Term(0),
            data,
        };
        self.log
            .save_snapshot(&snap)
            .await
            .map_err(|e| e.to_string())?;
        self.snapshot_at.set(applied);
        Ok(())
    }

    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Runs one operation on this shard.
    pub async fn exec(self: &Rc<Self>, core: &Rc<Core>, op: Op) -> Reply {
        match op {
            Op::OtpRequest { phone } => self.otp_request(phone),
            Op::OtpVerify {
                phone,
                code,
                device_name,
            } => self.otp_verify(phone, code, device_name).await,
            Op::LookupPhone { phone } => self.lookup_phone(&phone),
            Op::Authenticate { token } => self.authenticate(&token),
            Op::GetMe { user } => self.get_me(user),
            Op::PatchMe {
                user,
                name,
                privacy,
                read_receipts,
            } => self.patch_me(user, name, privacy, read_receipts).await,
            Op::RevokeDevice { user, device } => self.revoke_device(core, user, device).await,
            Op::UsersExist { users } => self.users_exist(&users),
            Op::ListConvs { user } => self.list_convs(user),
            Op::Connect { user, device, conn } => self.connect(core, user, device, conn).await,
            Op::Disconnect { user, device, conn } => {
                self.disconnect(core, user, device, conn).await
            }
            Op::Cursor {
                user,
                device,
                conv,
                mark,
                seq,
            } => self.cursor(core, user, device, conv, mark, seq).await,
            Op::Deliver {
                users,
                conv,
                seq,
                ts,
                from,
                event,
                started,
            } => {
                self.deliver(core, users, conv, seq, ts, from, event, started)
                    .await
            }
            Op::DeliverLarge {
                conv,
                seq,
                ts,
                from,
                event,
                started,
            } => {
                self.deliver_large(core, conv, seq, ts, from, event, started)
                    .await
            }
            Op::Notify { users, event } => self.notify(core, &users, event).await,
            Op::Joined { user, info } => self.joined(user, info),
            Op::Left { user, conv } => self.left(user, conv),
            Op::PresenceSubscribe {
                subject,
                subscriber,
                conn,
            } => {
                self.presence_subscribe(core, subject, subscriber, conn)
                    .await
            }
            Op::PresenceUnsubscribe { subject, conn } => self.presence_unsubscribe(subject, conn),
            Op::CreateDirect { a, b } => self.create_direct(core, a, b).await,
            Op::CreateGroup {
                creator,
                name,
                members,
            } => self.create_group(core, creator, name, members).await,
            Op::AddMember { conv, by, user } => self.add_member(core, conv, by, user).await,
            Op::RemoveMember { conv, by, user } => self.remove_member(core, conv, by, user).await,
            Op::SetRole {
                conv,
                by,
                user,
                role,
            } => self.set_role(conv, by, user, role).await,
            Op::Send(send) => self.send(core, send).await,
            Op::Receipt {
                conv,
                user,
                mark,
                seq,
                notify,
            } => self.receipt(core, conv, user, mark, seq, notify).await,
            Op::Typing { conv, user, state } => self.typing(core, conv, user, state).await,
            Op::History {
                conv,
                user,
                before,
                after,
                limit,
            } => self.history(conv, user, before, after, limit).await,
            Op::Receipts { conv, user, seq } => self.receipts(conv, user, seq),
            Op::Fetch {
                conv,
                user,
                device,
                after,
                limit,
            } => self.fetch(conv, (user, device), after, limit).await,
            Op::ConvInfo { conv, user } => self.conv_info(conv, user),
            Op::Announce => self.announce(core).await,
        }
    }
}

/// The state of a log: its snapshot, if any, then the records after it.
pub async fn recover(log: &Log) -> Result<State, String> {
    let (mut state, from) = match log.load_snapshot().await.map_err(|e| e.to_string())? {
        Some(snap) if snap.offset <= log.last_offset() => (
            crate::snapshot::decode(&snap.data)?,
            Offset(snap.offset.0 + 1),
        ),
        Some(snap) => {
            return Err(format!(
                "snapshot covers offset {} but the log ends at {}",
                snap.offset.0,
                log.last_offset().0
            ));
        }
        None => (State::default(), log.first_offset()),
    };
    let mut reader = log.reader_from(from);
    while let Some(record) = reader.next().await {
        let record = record.map_err(|e| e.to_string())?;
        let rec = decode(&record)?;
        state.apply(rec, record.offset);
    }
    Ok(state)
}
