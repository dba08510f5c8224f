//! The checks of a checkpoint, against the model: every acknowledged
//! message is in its conversation exactly once at its seq and nothing else
//! is (seqs gapless); what devices received live was stored, in seq order,
//! once each, never their own; cursors never went back and never passed
//! what exists; a fresh sync of a device sends exactly what it has not
//! acked, in order, then `sync.done`.
//!
//! Lives on: the simulation's thread.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde_json::Value;

use super::outlet::SimOutlet;
use super::world::{drive, settle, Acked, World};
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::node::conns::ConnEntry;
use crate::shard::mesh::{call, shard_of};
use crate::shard::ops::connect::Disconnect;
use crate::shard::ops::history::History;

/// A conversation's stored messages: seq → (sender, device, body).
type Stored = BTreeMap<Seq, (UserId, DeviceId, String)>;

impl World {
    /// Lets everything in flight finish, then runs every check.
    pub async fn checkpoint(&mut self) -> Result<(), String> {
        let in_flight = self.in_flight.clone();
        if !settle(&self.node, || in_flight.get() == 0).await {
            let shards: Vec<String> = self
                .node
                .cores
                .iter()
                .flat_map(|c| {
                    c.local_shards()
                        .map(|s| {
                            format!(
                                "{}:{:?}/{} effects, log {}..{}",
                                s.id.0,
                                s.health(),
                                s.effects_pending(),
                                s.log.durable_offset().0,
                                s.log.last_offset().0
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            return Err(format!(
                "{} operations never finished; shards {shards:?}",
                in_flight.get()
            ));
        }
        self.absorb_replies()?;
        let mut stored = HashMap::new();
        for i in 0..self.convs.len() {
            let conv = self.convs[i].conv;
            stored.insert(conv, self.check_history(i).await?);
        }
        self.check_live(&stored)?;
        self.check_cursors(&stored)?;
        let d = self.rng.below(self.devices.len() as u64) as usize;
        self.check_sync(d, &stored).await?;
        self.tally.checkpoints += 1;
        Ok(())
    }

    /// All of a conversation, read as its creator (a member from the start).
    async fn history(&self, i: usize) -> Result<Vec<Value>, String> {
        let (conv, reader) = (self.convs[i].conv, self.convs[i].admin);
        let core = self.node.cores[0].clone();
        let mut out = Vec::new();
        let mut after = Seq(0);
        loop {
            let op = History {
                conv,
                user: reader,
                before: None,
                after: Some(after),
                limit: 100,
            };
            let mesh = core.mesh();
            let home = core.shard_of(conv.0);
            let (page, more) = drive(&self.node, async move { call(&mesh, home, op).await })
                .await
                .map_err(|e| format!("history of {conv}: {e:?}"))?;
            if let Some(last) = page.last() {
                after = last.message.seq;
            }
            out.extend(page.iter().map(|m| {
                serde_json::from_str(&crate::wire::message_object(&m.message, m.version))
                    .expect("valid JSON")
            }));
            if !more {
                return Ok(out);
            }
        }
    }

    async fn check_history(&self, i: usize) -> Result<Stored, String> {
        let conv = self.convs[i].conv;
        let messages = self.history(i).await?;
        let mut stored = Stored::new();
        for (n, m) in messages.iter().enumerate() {
            let seq = Seq(m["seq"].as_u64().ok_or("a message without seq")?);
            if seq != Seq(n as u64 + 1) {
                return Err(format!(
                    "{conv}: seq {} where {} belongs: a gap",
                    seq.0,
                    n + 1
                ));
            }
            let sender =
                UserId::parse(m["sender_id"].as_str().unwrap_or("")).ok_or("bad sender")?;
            let device =
                DeviceId::parse(m["sender_device"].as_str().unwrap_or("")).ok_or("bad device")?;
            let body = m["body"]["text"].as_str().unwrap_or("").to_string();
            stored.insert(seq, (sender, device, body));
        }
        let acked: BTreeMap<Seq, &Acked> = self
            .model
            .acked
            .range((conv, Seq(0))..=(conv, Seq(u64::MAX)))
            .map(|((_, s), a)| (*s, a))
            .collect();
        for (seq, a) in &acked {
            match stored.get(seq) {
                Some((s, d, b)) if (*s, *d, b) == (a.sender, a.device, &a.body) => {}
                other => {
                    return Err(format!(
                        "{conv}/{}: acknowledged {a:?}, stored {other:?}",
                        seq.0
                    ))
                }
            }
        }
        if let Some(seq) = stored.keys().find(|s| !acked.contains_key(s)) {
            return Err(format!("{conv}/{}: stored but never acknowledged", seq.0));
        }
        Ok(stored)
    }

    /// Every live `message.new` of every outlet: stored, in seq order per
    /// conversation, once, and never the receiving device's own.
    fn check_live(&mut self, stored: &HashMap<ConvId, Stored>) -> Result<(), String> {
        for outlet in &self.outlets {
            let owner = self
                .conns
                .iter()
                .find(|c| Rc::ptr_eq(&c.outlet, outlet))
                .map(|c| self.devices[c.device].caller);
            let frames = outlet.frames.borrow();
            let mut last: HashMap<ConvId, Seq> = HashMap::new();
            for f in frames.iter() {
                let v: Value = serde_json::from_str(f)
                    .map_err(|e| format!("a frame is not JSON ({e}): {f}"))?;
                if v["type"] != "message.new" {
                    continue;
                }
                self.tally.live_frames += 1;
                let conv = ConvId::parse(v["conversation_id"].as_str().unwrap_or(""))
                    .ok_or("bad conversation id")?;
                let seq = Seq(v["seq"].as_u64().unwrap_or(0));
                if last.get(&conv).is_some_and(|l| seq <= *l) {
                    return Err(format!(
                        "{conv}/{} arrived after {}: out of order or twice",
                        seq.0, last[&conv].0
                    ));
                }
                last.insert(conv, seq);
                let body = v["body"]["text"].as_str().unwrap_or("");
                let found = stored.get(&conv).and_then(|s| s.get(&seq));
                if found.map(|(_, _, b)| b.as_str()) != Some(body) {
                    return Err(format!(
                        "{conv}/{} delivered as {body:?} but stored as {found:?}",
                        seq.0
                    ));
                }
                if let (Some(me), Some((u, d, _))) = (owner, found) {
                    if (me.user, me.device) == (*u, *d) {
                        return Err(format!(
                            "{conv}/{} came back to the device that sent it",
                            seq.0
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Cursors only move forward, and never past what exists.
    fn check_cursors(&mut self, stored: &HashMap<ConvId, Stored>) -> Result<(), String> {
        for dev in &self.devices {
            let (user, device) = (dev.caller.user, dev.caller.device);
            let home = shard_of(&*self.node.cores[0].mesh(), user.0);
            let shard = self.node.core_of(home).local_shard(home);
            let state = shard.state();
            let Some(d) = state.users.get(&user).and_then(|u| u.devices.get(&device)) else {
                return Err(format!("{user}/{device} is gone"));
            };
            for (conv, c) in &d.cursors {
                let last = stored
                    .get(conv)
                    .and_then(|s| s.keys().last().copied())
                    .unwrap_or(Seq(0));
                if c.delivered > last || c.read > c.delivered {
                    return Err(format!(
                        "{user}/{device} in {conv}: cursors {c:?} past the end {}",
                        last.0
                    ));
                }
                let floor = self
                    .model
                    .cursor_floors
                    .entry((user, device, *conv))
                    .or_default();
                if c.delivered < floor.0 || c.read < floor.1 {
                    return Err(format!(
                        "{user}/{device} in {conv}: cursors went back from {floor:?} to {c:?}"
                    ));
                }
                *floor = (c.delivered, c.read);
            }
        }
        Ok(())
    }

    /// What a fresh sync of device `d` must send: per conversation, every
    /// stored message after its delivered cursor not sent by `d` itself.
    fn expected_sync(
        &self,
        d: usize,
        stored: &HashMap<ConvId, Stored>,
    ) -> BTreeMap<ConvId, Vec<Seq>> {
        let me = self.devices[d].caller;
        let home = shard_of(&*self.node.cores[0].mesh(), me.user.0);
        let cursors = self.node.core_of(home).local_shard(home).state().users[&me.user].devices
            [&me.device]
            .cursors
            .clone();
        let mut out = BTreeMap::new();
        for c in self.convs.iter().filter(|c| c.members.contains(&me.user)) {
            let conv_home = shard_of(&*self.node.cores[0].mesh(), c.conv.0);
            let joined = self
                .node
                .core_of(conv_home)
                .local_shard(conv_home)
                .state()
                .convs[&c.conv]
                .members[&me.user]
                .joined;
            let from = cursors
                .get(&c.conv)
                .map_or(joined, |x| x.delivered)
                .max(joined);
            let seqs: Vec<Seq> = stored[&c.conv]
                .iter()
                .filter(|(s, (u, dv, _))| **s > from && (*u, *dv) != (me.user, me.device))
                .map(|(s, _)| *s)
                .collect();
            if !seqs.is_empty() {
                out.insert(c.conv, seqs);
            }
        }
        out
    }

    /// Syncs device `d` on a connection of its own and compares.
    async fn check_sync(
        &mut self,
        d: usize,
        stored: &HashMap<ConvId, Stored>,
    ) -> Result<(), String> {
        let expected = self.expected_sync(d, stored);
        let caller = self.devices[d].caller;
        let core = self.node.cores[d % self.node.cores.len()].clone();
        let outlet = Rc::new(SimOutlet::default());
        let conn = core.new_conn_id();
        core.conns.borrow_mut().insert(
            conn,
            ConnEntry::new(outlet.clone(), caller.user, caller.device),
        );
        let (c2, o2) = (core.clone(), outlet.clone());
        let synced = drive(&self.node, async move {
            crate::front::ws::sync::sync(&c2, caller, conn, &*o2)
                .await
                .is_ok()
        })
        .await;
        core.conns.borrow_mut().remove(&conn);
        let (mesh, home) = (core.mesh(), core.shard_of(caller.user.0));
        let op = Disconnect {
            user: caller.user,
            device: caller.device,
            conn: core.conn_ref(conn),
        };
        // `last_seen` may not be written while a failed write is recovered from.
        let _ = drive(&self.node, async move { call(&mesh, home, op).await }).await;
        if !synced {
            return Err(format!(
                "the sync of {}/{} failed",
                caller.user, caller.device
            ));
        }
        let mut got: BTreeMap<ConvId, Vec<Seq>> = BTreeMap::new();
        let frames = outlet.frames.borrow();
        let done = frames
            .iter()
            .position(|f| f.contains("\"type\":\"sync.done\""))
            .ok_or("no sync.done")?;
        for f in &frames[..done] {
            let v: Value = serde_json::from_str(f).map_err(|e| e.to_string())?;
            let conv = ConvId::parse(v["conversation_id"].as_str().unwrap_or(""))
                .ok_or("bad conversation id")?;
            got.entry(conv)
                .or_default()
                .push(Seq(v["seq"].as_u64().unwrap_or(0)));
        }
        if got != expected {
            return Err(format!(
                "sync of {}/{} sent {got:?}, expected {expected:?}",
                caller.user, caller.device
            ));
        }
        self.tally.syncs_checked += 1;
        Ok(())
    }
}
