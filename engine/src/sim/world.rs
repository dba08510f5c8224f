//! The simulated world: a node, its users and devices, their
//! conversations, and what the model knows was acknowledged. Actions are
//! chosen by the seeded generator; every reply is recorded for the checks.
//!
//! Lives on: the simulation's thread.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;

use super::node::SimNode;
use super::outlet::SimOutlet;
use super::rng::Rng;
use crate::config::Config;
use crate::front::caller::Caller;
use crate::machine::cmd::create_direct::CreateDirect;
use crate::machine::cmd::create_group::CreateGroup;
use crate::machine::cmd::send::Send;
use crate::machine::error::DomainError;
use crate::machine::ids::{phone_shard, ConvId, DeviceId, Seq, UserId};
use crate::machine::records::{BodyKind, ConvKind};
use crate::node::conns::ConnEntry;
use crate::shard::conn::ConnId;
use crate::shard::error::{ShardError, ShardResult};
use crate::shard::mesh::{call, shard_of, tell};
use crate::shard::ops::connect::Disconnect;
use crate::shard::ops::conversations::{NewDirect, NewGroup};
use crate::shard::ops::otp::{RequestCode, Verify};
use crate::shard::ops::send::SendMessage;

/// Yields this many times at most while waiting for work to finish.
pub const SETTLE_YIELDS_MAX: usize = 20_000;

#[derive(Clone, Copy, Debug)]
pub struct SimDevice {
    pub caller: Caller,
}

#[derive(Clone, Debug)]
pub struct SimConv {
    pub conv: ConvId,
    pub kind: ConvKind,
    /// The creator: an admin never removed, member since the start.
    pub admin: UserId,
    pub members: BTreeSet<UserId>,
}

/// A message the model knows was acknowledged (`message.sent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    pub sender: UserId,
    pub device: DeviceId,
    pub client_msg_id: String,
    pub body: String,
}

/// A live connection of the simulation.
pub struct SimConn {
    pub device: usize,
    pub core: usize,
    pub conn: ConnId,
    pub outlet: Rc<SimOutlet>,
}

#[derive(Default)]
pub struct Model {
    /// (conversation, seq) → the message acknowledged there.
    pub acked: BTreeMap<(ConvId, Seq), Acked>,
    /// (device index, client_msg_id) → the seq its `message.sent` named.
    pub by_client_id: HashMap<(usize, String), (ConvId, Seq)>,
    /// Device cursors seen at the last checkpoint: they never go back.
    pub cursor_floors: HashMap<(UserId, DeviceId, ConvId), (Seq, Seq)>,
}

/// What the run did, for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub sends: u64,
    pub acked: u64,
    pub refused: u64,
    pub unavailable: u64,
    pub resends: u64,
    pub crashes: u64,
    pub failed_flushes: u64,
    pub checkpoints: u64,
    pub syncs_checked: u64,
    pub live_frames: u64,
}

pub struct World {
    pub rng: Rng,
    pub config: Config,
    pub node: SimNode,
    /// Earlier incarnations of the node (crashed), stopped at the end.
    pub retired: Vec<SimNode>,
    pub devices: Vec<SimDevice>,
    pub convs: Vec<SimConv>,
    pub model: Model,
    pub conns: Vec<SimConn>,
    /// Every outlet of this incarnation of the node (checked at checkpoints).
    pub outlets: Vec<Rc<SimOutlet>>,
    pub in_flight: Rc<Cell<u64>>,
    /// Replies of sends, recorded as they come: (device, conv, id, member then, reply).
    pub replies: Rc<RefCell<Vec<SendReply>>>,
    pub next_id: u64,
    /// Every send made: (device, client_msg_id, conversation index).
    pub sent: Vec<(usize, String, usize)>,
    pub tally: Tally,
}

pub struct SendReply {
    pub device: usize,
    pub conv: ConvId,
    pub client_msg_id: String,
    pub member: bool,
    pub reply: ShardResult<(Seq, crate::machine::ids::Millis)>,
}

/// The body every send of a client_msg_id carries (resends repeat it).
pub fn body_of(client_msg_id: &str) -> String {
    format!("body of {client_msg_id}")
}

/// Yields until `done` or the bound; flushing the logs each time so
/// that writes waiting for durability get it.
pub async fn settle(node: &SimNode, done: impl Fn() -> bool) -> bool {
    for _ in 0..SETTLE_YIELDS_MAX {
        if done() {
            return true;
        }
        node.flush_all();
        futures_lite::future::yield_now().await;
    }
    done()
}

/// Runs `fut` to its end, flushing the logs meanwhile (writes wait for
/// durability, which only a flush gives in this world).
pub async fn drive<T: 'static>(node: &SimNode, fut: impl Future<Output = T> + 'static) -> T {
    let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let out = slot.clone();
    glommio::spawn_local(async move {
        let value = fut.await;
        *out.borrow_mut() = Some(value);
    })
    .detach();
    let finished = settle(node, || slot.borrow().is_some()).await;
    assert!(finished, "an operation did not finish: a deadlock");
    let value = slot.borrow_mut().take();
    value.expect("finished")
}

impl World {
    pub async fn new(seed: u64, config: Config, node: SimNode) -> World {
        World {
            rng: Rng::new(seed),
            config,
            node,
            retired: Vec::new(),
            devices: Vec::new(),
            convs: Vec::new(),
            model: Model::default(),
            conns: Vec::new(),
            outlets: Vec::new(),
            in_flight: Rc::new(Cell::new(0)),
            replies: Rc::new(RefCell::new(Vec::new())),
            next_id: 0,
            sent: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// A user with `devices` devices, logged in by OTP like a client.
    pub async fn add_user(&mut self, n: usize, devices: usize) -> Result<(), String> {
        let phone = format!("+1555{n:07}");
        let home = phone_shard(&phone, self.node.logs.len() as u16);
        let core = self.node.core_of(home).clone();
        for _ in 0..devices {
            let ask = RequestCode {
                phone: phone.clone(),
            };
            call(&core.mesh(), home, ask)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let code = core.local_shard(home).soft.borrow().otp[&phone]
                .code
                .clone();
            let verify = Verify {
                phone: phone.clone(),
                code,
                device_name: "sim".into(),
            };
            let mesh = core.mesh();
            let linked = drive(&self.node, async move { call(&mesh, home, verify).await })
                .await
                .map_err(|e| format!("verify: {e:?}"))?;
            let caller = Caller {
                user: linked.user,
                device: linked.device,
            };
            self.devices.push(SimDevice { caller });
        }
        Ok(())
    }

    pub fn users(&self) -> Vec<UserId> {
        let set: BTreeSet<UserId> = self.devices.iter().map(|d| d.caller.user).collect();
        set.into_iter().collect()
    }

    /// Direct conversations between some pairs, and a few groups.
    pub async fn add_conversations(&mut self) -> Result<(), String> {
        let users = self.users();
        for i in 0..users.len() {
            let (a, b) = (users[i], users[(i + 1) % users.len()]);
            let home = shard_of(
                &*self.node.cores[0].mesh(),
                crate::machine::ids::direct_conv_id(a, b).0,
            );
            let mesh = self.node.core_of(home).mesh();
            let (view, _) = drive(&self.node, async move {
                call(&mesh, home, NewDirect(CreateDirect { a, b })).await
            })
            .await
            .map_err(|e| format!("direct: {e:?}"))?;
            let members = [a, b].into_iter().collect();
            self.convs.push(SimConv {
                conv: view.conv,
                kind: ConvKind::Direct,
                admin: a,
                members,
            });
        }
        for g in 0..2 {
            let admin = users[g % users.len()];
            let members: Vec<UserId> = users
                .iter()
                .copied()
                .filter(|u| u.0 % 2 == g as u64 % 2)
                .collect();
            let home = shard_of(&*self.node.cores[0].mesh(), admin.0);
            let mesh = self.node.core_of(home).mesh();
            let cmd = CreateGroup {
                creator: admin,
                name: format!("g{g}"),
                members,
            };
            let view = drive(
                &self.node,
                async move { call(&mesh, home, NewGroup(cmd)).await },
            )
            .await
            .map_err(|e| format!("group: {e:?}"))?;
            let members = view.members.iter().map(|(u, _)| *u).collect();
            self.convs.push(SimConv {
                conv: view.conv,
                kind: ConvKind::Group,
                admin,
                members,
            });
        }
        Ok(())
    }

    /// Sends (or resends) a message from a random device, without waiting.
    /// A resend repeats an earlier send whole: same conversation, same id.
    pub fn send(&mut self) {
        let d = self.rng.below(self.devices.len() as u64) as usize;
        let caller = self.devices[d].caller;
        let earlier: Vec<(String, usize)> = self
            .sent
            .iter()
            .filter(|(dev, _, _)| *dev == d)
            .map(|(_, id, c)| (id.clone(), *c))
            .collect();
        let (client_msg_id, c) = if !earlier.is_empty() && self.rng.chance(15) {
            self.tally.resends += 1;
            self.rng.pick(&earlier).clone()
        } else {
            let mine: Vec<usize> = (0..self.convs.len())
                .filter(|c| self.convs[*c].members.contains(&caller.user))
                .collect();
            let c = if !mine.is_empty() && self.rng.chance(85) {
                *self.rng.pick(&mine)
            } else {
                self.rng.below(self.convs.len() as u64) as usize
            };
            self.next_id += 1;
            let id = format!("d{d}-m{}", self.next_id);
            self.sent.push((d, id.clone(), c));
            (id, c)
        };
        let member = self.convs[c].members.contains(&caller.user);
        self.spawn_send(d, self.convs[c].conv, client_msg_id, member);
    }

    fn spawn_send(&mut self, d: usize, conv: ConvId, client_msg_id: String, member: bool) {
        let caller = self.devices[d].caller;
        let cmd = Send {
            conv,
            sender: caller.user,
            device: caller.device,
            client_msg_id: client_msg_id.clone(),
            body_kind: BodyKind::Text,
            body: body_of(&client_msg_id),
            media: None,
            reply_to: None,
        };
        let core = self.node.cores[d % self.node.cores.len()].clone();
        let (replies, in_flight) = (self.replies.clone(), self.in_flight.clone());
        in_flight.set(in_flight.get() + 1);
        self.tally.sends += 1;
        glommio::spawn_local(async move {
            let op = SendMessage {
                cmd,
                started: std::time::Instant::now(),
            };
            let reply = call(&core.mesh(), core.shard_of(conv.0), op).await;
            replies.borrow_mut().push(SendReply {
                device: d,
                conv,
                client_msg_id,
                member,
                reply,
            });
            in_flight.set(in_flight.get() - 1);
        })
        .detach();
    }

    /// Takes the replies that came: the model learns what was acknowledged.
    pub fn absorb_replies(&mut self) -> Result<(), String> {
        let replies: Vec<SendReply> = std::mem::take(&mut *self.replies.borrow_mut());
        for r in replies {
            match (&r.reply, r.member) {
                (Ok((seq, _)), true) => self.acked(r.device, r.conv, &r.client_msg_id, *seq)?,
                (Ok(_), false) => {
                    return Err(format!(
                        "{} sent to {} without being a member",
                        r.client_msg_id, r.conv
                    ))
                }
                (Err(ShardError::Domain(DomainError::NotMember(_))), false) => {
                    self.tally.refused += 1
                }
                (Err(ShardError::Domain(e)), _) => {
                    return Err(format!(
                        "{}: refused {e:?} (member: {})",
                        r.client_msg_id, r.member
                    ))
                }
                (Err(ShardError::Unavailable(_)), _) => self.tally.unavailable += 1,
            }
        }
        Ok(())
    }

    fn acked(&mut self, d: usize, conv: ConvId, id: &str, seq: Seq) -> Result<(), String> {
        let caller = self.devices[d].caller;
        let key = (d, id.to_string());
        if let Some(first) = self.model.by_client_id.get(&key) {
            if *first != (conv, seq) {
                return Err(format!(
                    "{id} acknowledged at {first:?}, then again at {conv}/{}: dedupe broken",
                    seq.0
                ));
            }
            return Ok(());
        }
        let acked = Acked {
            sender: caller.user,
            device: caller.device,
            client_msg_id: id.to_string(),
            body: body_of(id),
        };
        if let Some(other) = self.model.acked.get(&(conv, seq)) {
            return Err(format!(
                "{conv}/{} acknowledged twice: {other:?} and {acked:?}",
                seq.0
            ));
        }
        self.model.acked.insert((conv, seq), acked);
        self.model.by_client_id.insert(key, (conv, seq));
        self.tally.acked += 1;
        Ok(())
    }

    /// Connects a device on a random core and syncs it (in its own task).
    pub fn connect(&mut self) {
        let d = self.rng.below(self.devices.len() as u64) as usize;
        if self.conns.iter().any(|c| c.device == d) {
            return;
        }
        let c = self.rng.below(self.node.cores.len() as u64) as usize;
        let core = self.node.cores[c].clone();
        let caller = self.devices[d].caller;
        let outlet = Rc::new(SimOutlet::default());
        let conn = core.new_conn_id();
        core.conns.borrow_mut().insert(
            conn,
            ConnEntry::new(outlet.clone(), caller.user, caller.device),
        );
        self.conns.push(SimConn {
            device: d,
            core: c,
            conn,
            outlet: outlet.clone(),
        });
        self.outlets.push(outlet.clone());
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        glommio::spawn_local(async move {
            if let Err(failed) = crate::front::ws::sync::sync(&core, caller, conn, &*outlet).await {
                if let Some((code, reason)) = failed.close {
                    crate::node::conns::Outlet::close(&*outlet, code, reason);
                }
            }
            in_flight.set(in_flight.get() - 1);
        })
        .detach();
    }

    /// Ends a random connection, as a session's end does.
    pub async fn disconnect(&mut self) {
        if self.conns.is_empty() {
            return;
        }
        let i = self.rng.below(self.conns.len() as u64) as usize;
        let c = self.conns.swap_remove(i);
        let core = self.node.cores[c.core].clone();
        core.conns.borrow_mut().remove(&c.conn);
        let caller = self.devices[c.device].caller;
        let op = Disconnect {
            user: caller.user,
            device: caller.device,
            conn: core.conn_ref(c.conn),
        };
        let mesh = core.mesh();
        tell(&mesh, shard_of(&*mesh, caller.user.0), op).await;
    }
}
