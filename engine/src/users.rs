//! Operations on a user's home shard: lookups, profile, devices, tokens,
//! connections and presence, delivery cursors, and delivery to devices.
//!
//! Lives on: the user's home shard's core.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use chat_net::protocol::{ApiError, ErrorCode};
use serde_json::json;

use crate::core::{Core, CLOSE_UNAUTHORIZED};
use crate::ids::{ConnId, ConnRef, ConvId, CoreId, DeviceId, Millis, Seq, UserId};
use crate::ops::{Answer, ConvPointer, Op, Reply};
use crate::records::{Mark, Privacy, Rec};
use crate::shard::Shard;
use crate::soft::Online;
use crate::state::User;
use crate::wire::presence_event;

pub fn unauthorized(why: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, why)
}

pub fn not_member(conv: ConvId) -> ApiError {
    ApiError::new(ErrorCode::NotMember, format!("not a member of {conv}"))
}

impl Shard {
    fn user(&self, user: UserId) -> Result<std::cell::Ref<'_, User>, ApiError> {
        std::cell::Ref::filter_map(self.state.borrow(), |s| s.users.get(&user))
            .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("no user {user}")))
    }

    pub fn lookup_phone(&self, phone: &str) -> Reply {
        let state = self.state.borrow();
        let user = state
            .phones
            .get(phone)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no user with that phone"))?;
        let name = &state.users[user].name;
        Ok(Answer::Json(
            json!({"user_id": user.to_string(), "name": name}),
        ))
    }

    pub fn authenticate(&self, token: &str) -> Reply {
        let (user, device, secret) =
            crate::token::parse(token).ok_or_else(|| unauthorized("malformed token"))?;
        let state = self.state.borrow();
        let d = state
            .users
            .get(&user)
            .and_then(|u| u.devices.get(&device))
            .ok_or_else(|| unauthorized("unknown or revoked token"))?;
        if !crate::token::same_hash(&crate::token::hash_secret(secret), &d.token_hash) {
            return Err(unauthorized("unknown or revoked token"));
        }
        if Millis::now() >= d.expires {
            return Err(unauthorized("token expired"));
        }
        Ok(Answer::Authenticated { user, device })
    }

    pub fn get_me(&self, user: UserId) -> Reply {
        let u = self.user(user)?;
        let devices: Vec<_> = u
            .devices
            .iter()
            .map(|(id, d)| json!({"device_id": id.to_string(), "name": d.name, "created": d.created.0}))
            .collect();
        Ok(Answer::Json(json!({
            "user_id": user.to_string(),
            "phone": u.phone,
            "name": u.name,
            "last_seen_privacy": u.privacy.as_str(),
            "read_receipts": u.read_receipts,
            "devices": devices,
        })))
    }

    pub async fn patch_me(
        self: &Rc<Self>,
        user: UserId,
        name: Option<String>,
        privacy: Option<Privacy>,
        read_receipts: Option<bool>,
    ) -> Reply {
        self.write(|state| {
            if !state.users.contains_key(&user) {
                return Err(ApiError::new(ErrorCode::NotFound, "no such user"));
            }
            Ok((
                vec![Rec::ProfileSet {
                    user,
                    name,
                    privacy,
                    read_receipts,
                }],
                (),
            ))
        })
        .await?;
        self.get_me(user)
    }

    pub async fn revoke_device(
        self: &Rc<Self>,
        core: &Rc<Core>,
        user: UserId,
        device: DeviceId,
    ) -> Reply {
        self.write(|state| {
            let known = state
                .users
                .get(&user)
                .is_some_and(|u| u.devices.contains_key(&device));
            if !known {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("no device {device}"),
                ));
            }
            Ok((vec![Rec::DeviceRevoked { user, device }], ()))
        })
        .await?;
        let conns: Vec<ConnRef> = {
            let soft = self.soft.borrow();
            let online = soft
                .online
                .get(&user)
                .map(Vec::as_slice)
                .unwrap_or_default();
            online
                .iter()
                .filter(|o| o.device == device)
                .map(|o| o.conn)
                .collect()
        };
        for conn in conns {
            core.close(conn, CLOSE_UNAUTHORIZED, "device revoked").await;
        }
        Ok(Answer::Done)
    }

    pub fn users_exist(&self, users: &[UserId]) -> Reply {
        let state = self.state.borrow();
        let missing = users
            .iter()
            .filter(|u| !state.users.contains_key(u))
            .copied()
            .collect();
        Ok(Answer::Missing(missing))
    }

    /// The user's conversations, latest activity first, with unread counts.
    /// The user's conversations with the user's read position in each
    /// (the REST layer pulls fresh ends of large groups and renders).
    pub fn list_convs(&self, user: UserId) -> Reply {
        let u = self.user(user)?;
        let soft = self.soft.borrow();
        let pointers = soft
            .pointers
            .get(&user)
            .map(|p| {
                p.values()
                    .map(|p| {
                        let read = u
                            .devices
                            .values()
                            .filter_map(|d| d.cursors.get(&p.conv))
                            .map(|c| c.1)
                            .max();
                        (
                            p.clone(),
                            read.unwrap_or(Seq(0)).max(p.joined).max(p.own_last),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Answer::Pointers {
            pointers,
            cursors: Vec::new(),
        })
    }

    /// Marks the device online and answers where it must catch up:
    /// (conversation, its delivered cursor) for each one with news.
    pub async fn connect(
        self: &Rc<Self>,
        core: &Rc<Core>,
        user: UserId,
        device: DeviceId,
        conn: ConnRef,
    ) -> Reply {
        let plan = {
            let state = self.state.borrow();
            let d = state
                .users
                .get(&user)
                .and_then(|u| u.devices.get(&device))
                .ok_or_else(|| unauthorized("device revoked"))?;
            let mut soft = self.soft.borrow_mut();
            let pointers = soft.pointers.get(&user);
            let plan: Vec<(ConvId, Seq)> = pointers
                .map(|p| {
                    p.values()
                        .map(|p| {
                            (
                                p.conv,
                                d.cursors
                                    .get(&p.conv)
                                    .map_or(p.joined, |c| c.0)
                                    .max(p.joined),
                                p.last_seq,
                            )
                        })
                        // Large groups do not move pointers per message:
                        // their news is pulled at sync.
                        .filter(|(c, cursor, last)| last > cursor || p_large(pointers, *c))
                        .map(|(c, cursor, _)| (c, cursor))
                        .collect()
                })
                .unwrap_or_default();
            let first = !soft.is_online(user);
            soft.online
                .entry(user)
                .or_default()
                .push(Online { device, conn });
            if first {
                let convs: Vec<ConvId> = soft
                    .pointers
                    .get(&user)
                    .map(|p| p.keys().copied().collect())
                    .unwrap_or_default();
                for conv in convs {
                    soft.online_by_conv.entry(conv).or_default().push(user);
                }
            }
            plan
        };
        if self.soft.borrow().online[&user].len() == 1 {
            self.presence_changed(core, user, true, None).await;
        }
        Ok(Answer::Pointers {
            pointers: Vec::new(),
            cursors: plan,
        })
    }

    pub async fn disconnect(
        self: &Rc<Self>,
        core: &Rc<Core>,
        user: UserId,
        device: DeviceId,
        conn: ConnRef,
    ) -> Reply {
        let now_offline = {
            let mut soft = self.soft.borrow_mut();
            let Some(online) = soft.online.get_mut(&user) else {
                return Ok(Answer::Done);
            };
            online.retain(|o| !(o.conn == conn && o.device == device));
            let empty = online.is_empty();
            if empty {
                soft.online.remove(&user);
                let convs: Vec<ConvId> = soft
                    .pointers
                    .get(&user)
                    .map(|p| p.keys().copied().collect())
                    .unwrap_or_default();
                for conv in convs {
                    soft.leave_conv(conv, user);
                }
            }
            empty
        };
        if now_offline && self.state.borrow().users.contains_key(&user) {
            let ts = Millis::now();
            self.write(|_| Ok((vec![Rec::LastSeen { user, ts }], ())))
                .await?;
            self.presence_changed(core, user, false, Some(ts)).await;
        }
        Ok(Answer::Done)
    }

    /// A device acked or read up to `seq` in `conv`.
    pub async fn cursor(
        self: &Rc<Self>,
        core: &Rc<Core>,
        user: UserId,
        device: DeviceId,
        conv: ConvId,
        mark: Mark,
        seq: Seq,
    ) -> Reply {
        let (last, joined) = {
            let soft = self.soft.borrow();
            let p = soft
                .pointers
                .get(&user)
                .and_then(|p| p.get(&conv))
                .ok_or_else(|| not_member(conv))?;
            (p.last_seq, p.joined)
        };
        // A cursor never passes what exists: acking the future would skip it.
        let seq = seq.min(last);
        let (advanced, read_receipts) = self
            .write(|state| {
                let u = state
                    .users
                    .get(&user)
                    .ok_or_else(|| unauthorized("no such user"))?;
                let d = u
                    .devices
                    .get(&device)
                    .ok_or_else(|| unauthorized("device revoked"))?;
                let current = d.cursors.get(&conv).copied().unwrap_or((joined, joined));
                let mine = match mark {
                    Mark::Delivered => current.0,
                    Mark::Read => current.1,
                };
                if seq <= mine {
                    return Ok((Vec::new(), (false, u.read_receipts)));
                }
                let best = |pick: fn(&(Seq, Seq)) -> Seq| {
                    u.devices
                        .values()
                        .filter_map(|d| d.cursors.get(&conv))
                        .map(pick)
                        .max()
                        .unwrap_or(Seq(0))
                };
                let user_level = match mark {
                    Mark::Delivered => best(|c| c.0),
                    Mark::Read => best(|c| c.1),
                };
                Ok((
                    vec![Rec::Cursor {
                        user,
                        device,
                        conv,
                        mark,
                        seq,
                    }],
                    (seq > user_level, u.read_receipts),
                ))
            })
            .await?;
        // A read implies delivery; with read receipts off the reader's
        // read is reported as a delivery only.
        let mark = if mark == Mark::Read && !read_receipts {
            Mark::Delivered
        } else {
            mark
        };
        if advanced {
            let shard = core.shard_of(conv.0);
            core.tell(
                shard,
                Op::Receipt {
                    conv,
                    user,
                    mark,
                    seq,
                    notify: true,
                },
            )
            .await;
        }
        Ok(Answer::Done)
    }

    /// A durable message: move the members' pointers and push it to their
    /// online devices (but not to the device that sent it).
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver(
        self: &Rc<Self>,
        core: &Rc<Core>,
        users: Vec<UserId>,
        conv: ConvId,
        seq: Seq,
        ts: Millis,
        from: (UserId, DeviceId),
        event: Arc<str>,
        started: Instant,
    ) -> Reply {
        let targets = {
            let mut soft = self.soft.borrow_mut();
            for user in &users {
                if let Some(p) = soft.pointers.get_mut(user).and_then(|p| p.get_mut(&conv)) {
                    if seq > p.last_seq {
                        p.last_seq = seq;
                        p.last_ts = ts;
                    }
                    if *user == from.0 {
                        p.own_last = p.own_last.max(seq);
                    }
                }
            }
            by_core(users.iter().flat_map(|u| {
                let online = soft.online.get(u).map(Vec::as_slice).unwrap_or_default();
                online
                    .iter()
                    .filter(move |o| !(*u == from.0 && o.device == from.1))
                    .map(|o| o.conn)
            }))
        };
        for (core_id, conns) in local_first(core, targets) {
            core.push(
                core_id,
                conns,
                event.clone(),
                Some((conv, seq)),
                Some(started),
            )
            .await;
        }
        Ok(Answer::Done)
    }

    pub async fn notify(
        self: &Rc<Self>,
        core: &Rc<Core>,
        users: &[UserId],
        event: Arc<str>,
    ) -> Reply {
        let targets = {
            let soft = self.soft.borrow();
            by_core(users.iter().flat_map(|u| {
                soft.online
                    .get(u)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|o| o.conn)
            }))
        };
        for (core_id, conns) in local_first(core, targets) {
            core.push(core_id, conns, event.clone(), None, None).await;
        }
        Ok(Answer::Done)
    }

    pub fn joined(&self, user: UserId, mut info: ConvPointer) -> Reply {
        let mut soft = self.soft.borrow_mut();
        let online = soft.is_online(user);
        let pointers = soft.pointers.entry(user).or_default();
        if let Some(p) = pointers.get(&info.conv) {
            if p.last_seq > info.last_seq {
                (info.last_seq, info.last_ts) = (p.last_seq, p.last_ts);
            }
            info.own_last = info.own_last.max(p.own_last);
        }
        let (conv, new) = (info.conv, pointers.insert(info.conv, info).is_none());
        if new && online {
            soft.online_by_conv.entry(conv).or_default().push(user);
        }
        Ok(Answer::Done)
    }

    pub fn left(&self, user: UserId, conv: ConvId) -> Reply {
        let mut soft = self.soft.borrow_mut();
        if let Some(p) = soft.pointers.get_mut(&user) {
            p.remove(&conv);
        }
        soft.leave_conv(conv, user);
        Ok(Answer::Done)
    }

    /// A large group's message: push it to the members online here.
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver_large(
        self: &Rc<Self>,
        core: &Rc<Core>,
        conv: ConvId,
        seq: Seq,
        ts: Millis,
        from: (UserId, DeviceId),
        event: Arc<str>,
        started: Instant,
    ) -> Reply {
        let users = self
            .soft
            .borrow()
            .online_by_conv
            .get(&conv)
            .cloned()
            .unwrap_or_default();
        if users.is_empty() {
            return Ok(Answer::Done);
        }
        self.deliver(core, users, conv, seq, ts, from, event, started)
            .await
    }

    /// May `watcher` see `subject`'s presence?
    fn presence_allowed(&self, subject: UserId, watcher: UserId) -> bool {
        let state = self.state.borrow();
        let Some(u) = state.users.get(&subject) else {
            return false;
        };
        match u.privacy {
            Privacy::Everyone => true,
            Privacy::Nobody => watcher == subject,
            Privacy::Contacts => {
                watcher == subject
                    || self
                        .soft
                        .borrow()
                        .pointers
                        .get(&subject)
                        .is_some_and(|p| p.values().any(|c| c.peer == Some(watcher)))
            }
        }
    }

    pub async fn presence_subscribe(
        self: &Rc<Self>,
        core: &Rc<Core>,
        subject: UserId,
        watcher: UserId,
        conn: ConnRef,
    ) -> Reply {
        if !self.state.borrow().users.contains_key(&subject) {
            return Ok(Answer::Done);
        }
        {
            let mut soft = self.soft.borrow_mut();
            let list = soft.watchers.entry(subject).or_default();
            if !list.iter().any(|(_, c)| *c == conn) {
                list.push((watcher, conn));
            }
        }
        if self.presence_allowed(subject, watcher) {
            let online = self.soft.borrow().is_online(subject);
            let last_seen = self.state.borrow().users[&subject].last_seen;
            let event: Arc<str> = presence_event(subject, online, Some(last_seen)).into();
            core.push(conn.core, vec![conn.conn], event, None, None)
                .await;
        }
        Ok(Answer::Done)
    }

    pub fn presence_unsubscribe(&self, subject: UserId, conn: ConnRef) -> Reply {
        let mut soft = self.soft.borrow_mut();
        if let Some(list) = soft.watchers.get_mut(&subject) {
            list.retain(|(_, c)| *c != conn);
            if list.is_empty() {
                soft.watchers.remove(&subject);
            }
        }
        Ok(Answer::Done)
    }

    async fn presence_changed(
        self: &Rc<Self>,
        core: &Rc<Core>,
        subject: UserId,
        online: bool,
        last_seen: Option<Millis>,
    ) {
        let watchers = self
            .soft
            .borrow()
            .watchers
            .get(&subject)
            .cloned()
            .unwrap_or_default();
        if watchers.is_empty() {
            return;
        }
        let event: Arc<str> = presence_event(subject, online, last_seen).into();
        let allowed = watchers
            .into_iter()
            .filter(|(w, _)| self.presence_allowed(subject, *w))
            .map(|(_, c)| c);
        for (core_id, conns) in local_first(core, by_core(allowed)) {
            core.push(core_id, conns, event.clone(), None, None).await;
        }
    }
}

/// Groups connections by their core (one mesh message per core).
pub fn by_core(conns: impl Iterator<Item = ConnRef>) -> HashMap<CoreId, Vec<ConnId>> {
    let mut out: HashMap<CoreId, Vec<ConnId>> = HashMap::new();
    for c in conns {
        out.entry(c.core).or_default().push(c.conn);
    }
    out
}

/// `not_member` for an id that does not even parse.
pub fn not_member_named(conv: &str) -> ApiError {
    ApiError::new(ErrorCode::NotMember, format!("not a member of {conv}"))
}

fn p_large(pointers: Option<&HashMap<ConvId, ConvPointer>>, conv: ConvId) -> bool {
    pointers.and_then(|p| p.get(&conv)).is_some_and(|p| p.large)
}

/// This core's connections first: they are pushed at once, before any
/// wait on a full ring to another core (so a later event of the same
/// conversation cannot overtake on this core).
fn local_first(core: &Core, targets: HashMap<CoreId, Vec<ConnId>>) -> Vec<(CoreId, Vec<ConnId>)> {
    let mut list: Vec<_> = targets.into_iter().collect();
    list.sort_by_key(|(c, _)| (*c != core.id, c.0));
    list
}
