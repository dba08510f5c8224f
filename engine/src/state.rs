//! The durable state of one shard, as a pure function of its log.
//!
//! Lives on: the shard's core, inside `Shard`. `apply` is the only way in:
//! the live path applies each record right after appending it, recovery
//! replays the log through the same function. Soft state (who is online,
//! conversation pointers learnt from other shards) is in `soft.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chat_log::Offset;

use crate::constants::{DEDUPE_WINDOW_PER_CONVERSATION, RECEIPT_STEPS_PER_MEMBER_MAX};
use crate::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::records::{ConvKind, Mark, Privacy, Rec, Role};

/// An account, on its home shard.
#[derive(Clone, Debug)]
pub struct User {
    pub phone: String,
    pub name: String,
    pub privacy: Privacy,
    pub read_receipts: bool,
    pub created: Millis,
    pub last_seen: Millis,
    pub devices: BTreeMap<DeviceId, Device>,
    /// Devices ever linked (the next one gets `devices_ever + 1`).
    pub devices_ever: u64,
}

#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    pub token_hash: [u8; 32],
    pub expires: Millis,
    pub created: Millis,
    /// Per conversation: (delivered, read) cursors of this device.
    pub cursors: HashMap<ConvId, (Seq, Seq)>,
}

/// One member's watermark: its latest position, and the times it passed
/// recent positions (for the receipts call), oldest first.
#[derive(Clone, Debug, Default)]
pub struct Watermark {
    pub steps: VecDeque<(Seq, Millis)>,
}

impl Watermark {
    pub fn seq(&self) -> Seq {
        self.steps.back().map_or(Seq(0), |s| s.0)
    }

    fn advance(&mut self, seq: Seq, ts: Millis) {
        if seq <= self.seq() {
            return;
        }
        if self.steps.len() == RECEIPT_STEPS_PER_MEMBER_MAX {
            self.steps.pop_front();
        }
        self.steps.push_back((seq, ts));
    }

    /// When the watermark first reached `seq` (as far as remembered).
    pub fn reached(&self, seq: Seq) -> Option<Millis> {
        if seq > self.seq() {
            return None;
        }
        let step = self.steps.iter().find(|(s, _)| *s >= seq);
        step.map(|(_, ts)| *ts)
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub role: Role,
    /// The last seq before this member joined: it sees what comes after.
    pub joined: Seq,
    pub delivered: Watermark,
    pub read: Watermark,
    /// The member's own latest message (sending implies having read
    /// what came before: it counts as read for unread counts).
    pub last_sent: Seq,
}

/// Where a message is, without its body (the body stays in the log).
#[derive(Clone, Copy, Debug)]
pub struct MessageMeta {
    pub offset: Offset,
    pub sender: UserId,
}

/// A conversation, on its home shard.
#[derive(Clone, Debug)]
pub struct Conv {
    pub kind: ConvKind,
    pub name: String,
    pub created: Millis,
    pub members: BTreeMap<UserId, Member>,
    pub last_ts: Millis,
    /// `messages[seq - 1]`.
    pub messages: Vec<MessageMeta>,
    pub dedupe: HashMap<(UserId, DeviceId, String), Seq>,
    pub dedupe_order: VecDeque<(UserId, DeviceId, String)>,
}

impl Conv {
    pub fn last_seq(&self) -> Seq {
        Seq(self.messages.len() as u64)
    }

    pub fn admins(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Admin)
            .count()
    }

    fn remember(&mut self, key: (UserId, DeviceId, String), seq: Seq) {
        if self.dedupe_order.len() == DEDUPE_WINDOW_PER_CONVERSATION {
            let old = self.dedupe_order.pop_front().expect("window is full");
            self.dedupe.remove(&old);
        }
        self.dedupe_order.push_back(key.clone());
        self.dedupe.insert(key, seq);
    }
}

/// Everything a shard's log says.
#[derive(Debug, Default)]
pub struct State {
    pub users: HashMap<UserId, User>,
    pub phones: HashMap<String, UserId>,
    /// Accounts minted on this shard (the next one is `users_minted + 1`).
    pub users_minted: u64,
    pub convs: HashMap<ConvId, Conv>,
    pub groups_minted: u64,
    /// Records applied (for snapshot pacing and stats).
    pub applied: u64,
}

impl State {
    /// Applies one record at `offset`. Panics on a record that contradicts
    /// the state: the live path validates before appending, so such a
    /// record means a bug or a log that is not ours.
    pub fn apply(&mut self, rec: Rec, offset: Offset) {
        self.applied += 1;
        match rec {
            Rec::UserCreated { user, phone, ts } => {
                assert!(!self.users.contains_key(&user), "user {user} created twice");
                self.users_minted += 1;
                self.phones.insert(phone.clone(), user);
                self.users.insert(
                    user,
                    User {
                        phone,
                        name: String::new(),
                        privacy: Privacy::Everyone,
                        read_receipts: true,
                        created: ts,
                        last_seen: ts,
                        devices: BTreeMap::new(),
                        devices_ever: 0,
                    },
                );
            }
            Rec::DeviceLinked {
                user,
                device,
                name,
                token_hash,
                expires,
                ts,
                cursors,
            } => {
                let u = self.users.get_mut(&user).expect("device of a known user");
                assert_eq!(
                    device.0,
                    u.devices_ever + 1,
                    "device ids are dense and never reused"
                );
                u.devices_ever += 1;
                let cursors = cursors.into_iter().map(|(c, s)| (c, (s, s))).collect();
                let d = Device {
                    name,
                    token_hash,
                    expires,
                    created: ts,
                    cursors,
                };
                assert!(
                    u.devices.insert(device, d).is_none(),
                    "device {device} linked twice"
                );
            }
            Rec::DeviceRevoked { user, device } => {
                let u = self.users.get_mut(&user).expect("known user");
                assert!(
                    u.devices.remove(&device).is_some(),
                    "revoked an unknown device"
                );
            }
            Rec::ProfileSet {
                user,
                name,
                privacy,
                read_receipts,
            } => {
                let u = self.users.get_mut(&user).expect("known user");
                if let Some(name) = name {
                    u.name = name;
                }
                if let Some(p) = privacy {
                    u.privacy = p;
                }
                if let Some(r) = read_receipts {
                    u.read_receipts = r;
                }
            }
            Rec::Cursor {
                user,
                device,
                conv,
                mark,
                seq,
            } => {
                let u = self.users.get_mut(&user).expect("known user");
                let d = u.devices.get_mut(&device).expect("known device");
                let c = d.cursors.entry(conv).or_default();
                match mark {
                    Mark::Delivered => c.0 = c.0.max(seq),
                    Mark::Read => {
                        c.1 = c.1.max(seq);
                        c.0 = c.0.max(seq);
                    }
                }
            }
            Rec::LastSeen { user, ts } => {
                self.users.get_mut(&user).expect("known user").last_seen = ts;
            }
            Rec::ConvCreated {
                conv,
                kind,
                name,
                members,
                ts,
            } => {
                assert!(
                    !self.convs.contains_key(&conv),
                    "conversation {conv} created twice"
                );
                if kind == ConvKind::Group {
                    self.groups_minted += 1;
                }
                let members = members
                    .into_iter()
                    .map(|(u, role)| {
                        (
                            u,
                            Member {
                                role,
                                joined: Seq(0),
                                delivered: Watermark::default(),
                                read: Watermark::default(),
                                last_sent: Seq(0),
                            },
                        )
                    })
                    .collect();
                let c = Conv {
                    kind,
                    name,
                    created: ts,
                    members,
                    last_ts: ts,
                    messages: Vec::new(),
                    dedupe: HashMap::new(),
                    dedupe_order: VecDeque::new(),
                };
                self.convs.insert(conv, c);
            }
            Rec::MemberAdded { conv, user, role } => {
                let c = self.convs.get_mut(&conv).expect("known conversation");
                let joined = c.last_seq();
                let m = Member {
                    role,
                    joined,
                    delivered: Watermark::default(),
                    read: Watermark::default(),
                    last_sent: Seq(0),
                };
                assert!(
                    c.members.insert(user, m).is_none(),
                    "{user} added twice to {conv}"
                );
            }
            Rec::MemberRemoved { conv, user } => {
                let c = self.convs.get_mut(&conv).expect("known conversation");
                assert!(c.members.remove(&user).is_some(), "removed a non-member");
            }
            Rec::RoleSet { conv, user, role } => {
                let c = self.convs.get_mut(&conv).expect("known conversation");
                c.members.get_mut(&user).expect("a member").role = role;
            }
            Rec::Message(m) => {
                let c = self.convs.get_mut(&m.conv).expect("known conversation");
                assert_eq!(
                    m.seq.0,
                    c.last_seq().0 + 1,
                    "seq of {} must follow {}",
                    m.conv,
                    c.last_seq().0
                );
                c.messages.push(MessageMeta {
                    offset,
                    sender: m.sender,
                });
                if let Some(member) = c.members.get_mut(&m.sender) {
                    member.last_sent = m.seq;
                }
                c.last_ts = m.ts;
                c.remember((m.sender, m.device, m.client_msg_id), m.seq);
            }
            Rec::Receipt {
                conv,
                user,
                mark,
                seq,
                ts,
            } => {
                let c = self.convs.get_mut(&conv).expect("known conversation");
                // A member removed since keeps no watermark.
                if let Some(m) = c.members.get_mut(&user) {
                    match mark {
                        Mark::Delivered => m.delivered.advance(seq, ts),
                        Mark::Read => {
                            m.read.advance(seq, ts);
                            m.delivered.advance(seq, ts);
                        }
                    }
                }
            }
        }
    }
}
