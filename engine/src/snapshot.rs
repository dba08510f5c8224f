//! Snapshots of a shard's durable state, so that recovery replays only
//! the records after the last one.
//!
//! Lives on: the shard's core. The state is flattened into sorted vectors
//! (deterministic bytes) and archived with rkyv; a snapshot is validated on
//! load like any record. It is taken with the write lock held, after an
//! fsync, so that it covers only durable records.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chat_log::Offset;
use rkyv::{Archive, Deserialize, Serialize};

use crate::ids::{ConvId, DeviceId, Millis, Seq, UserId};
use crate::records::{ConvKind, Privacy, Role};
use crate::state::{Conv, Device, Member, MessageMeta, State, User, Watermark};

#[derive(Archive, Serialize, Deserialize, Debug)]
struct SnapState {
    users: Vec<SnapUser>,
    users_minted: u64,
    convs: Vec<SnapConv>,
    groups_minted: u64,
    applied: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug)]
struct SnapUser {
    id: UserId,
    phone: String,
    name: String,
    privacy: Privacy,
    read_receipts: bool,
    created: Millis,
    last_seen: Millis,
    devices_ever: u64,
    devices: Vec<SnapDevice>,
}

#[derive(Archive, Serialize, Deserialize, Debug)]
struct SnapDevice {
    id: DeviceId,
    name: String,
    token_hash: [u8; 32],
    expires: Millis,
    created: Millis,
    cursors: Vec<(ConvId, Seq, Seq)>,
}

#[derive(Archive, Serialize, Deserialize, Debug)]
struct SnapConv {
    id: ConvId,
    kind: ConvKind,
    name: String,
    created: Millis,
    last_ts: Millis,
    members: Vec<SnapMember>,
    messages: Vec<(u64, UserId)>,
    dedupe: Vec<(UserId, DeviceId, String, Seq)>,
}

#[derive(Archive, Serialize, Deserialize, Debug)]
struct SnapMember {
    user: UserId,
    role: Role,
    joined: Seq,
    delivered: Vec<(Seq, Millis)>,
    read: Vec<(Seq, Millis)>,
    last_sent: Seq,
}

fn sorted<K: Ord + Copy, V>(map: &HashMap<K, V>) -> Vec<(K, &V)> {
    let mut v: Vec<(K, &V)> = map.iter().map(|(k, v)| (*k, v)).collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

/// The state as snapshot bytes (the same state always gives the same bytes).
pub fn encode(state: &State) -> Vec<u8> {
    let users = sorted(&state.users)
        .into_iter()
        .map(|(id, u)| SnapUser {
            id,
            phone: u.phone.clone(),
            name: u.name.clone(),
            privacy: u.privacy,
            read_receipts: u.read_receipts,
            created: u.created,
            last_seen: u.last_seen,
            devices_ever: u.devices_ever,
            devices: u
                .devices
                .iter()
                .map(|(id, d)| SnapDevice {
                    id: *id,
                    name: d.name.clone(),
                    token_hash: d.token_hash,
                    expires: d.expires,
                    created: d.created,
                    cursors: sorted(&d.cursors)
                        .into_iter()
                        .map(|(c, (a, r))| (c, *a, *r))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let convs = sorted(&state.convs)
        .into_iter()
        .map(|(id, c)| snap_conv(id, c))
        .collect();
    let snap = SnapState {
        users,
        users_minted: state.users_minted,
        convs,
        groups_minted: state.groups_minted,
        applied: state.applied,
    };
    rkyv::to_bytes::<rkyv::rancor::Error>(&snap)
        .expect("a snapshot always serializes")
        .into_vec()
}

fn snap_conv(id: ConvId, c: &Conv) -> SnapConv {
    let steps = |w: &Watermark| w.steps.iter().copied().collect();
    SnapConv {
        id,
        kind: c.kind,
        name: c.name.clone(),
        created: c.created,
        last_ts: c.last_ts,
        members: c
            .members
            .iter()
            .map(|(u, m)| SnapMember {
                user: *u,
                role: m.role,
                joined: m.joined,
                delivered: steps(&m.delivered),
                read: steps(&m.read),
                last_sent: m.last_sent,
            })
            .collect(),
        messages: c.messages.iter().map(|m| (m.offset.0, m.sender)).collect(),
        dedupe: c
            .dedupe_order
            .iter()
            .map(|k| (k.0, k.1, k.2.clone(), c.dedupe[k]))
            .collect(),
    }
}

/// The state a snapshot holds; the bytes are validated first.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let snap = rkyv::from_bytes::<SnapState, rkyv::rancor::Error>(&aligned)
        .map_err(|e| format!("invalid snapshot: {e}"))?;
    let mut state = State {
        users_minted: snap.users_minted,
        groups_minted: snap.groups_minted,
        applied: snap.applied,
        ..State::default()
    };
    for u in snap.users {
        state.phones.insert(u.phone.clone(), u.id);
        let devices = u
            .devices
            .into_iter()
            .map(|d| {
                let cursors = d.cursors.into_iter().map(|(c, a, r)| (c, (a, r))).collect();
                (
                    d.id,
                    Device {
                        name: d.name,
                        token_hash: d.token_hash,
                        expires: d.expires,
                        created: d.created,
                        cursors,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        let user = User {
            phone: u.phone,
            name: u.name,
            privacy: u.privacy,
            read_receipts: u.read_receipts,
            created: u.created,
            last_seen: u.last_seen,
            devices,
            devices_ever: u.devices_ever,
        };
        state.users.insert(u.id, user);
    }
    for c in snap.convs {
        let watermark = |steps: Vec<(Seq, Millis)>| Watermark {
            steps: steps.into_iter().collect::<VecDeque<_>>(),
        };
        let members = c
            .members
            .into_iter()
            .map(|m| {
                (
                    m.user,
                    Member {
                        role: m.role,
                        joined: m.joined,
                        delivered: watermark(m.delivered),
                        read: watermark(m.read),
                        last_sent: m.last_sent,
                    },
                )
            })
            .collect();
        let mut dedupe = HashMap::with_capacity(c.dedupe.len());
        let mut dedupe_order = VecDeque::with_capacity(c.dedupe.len());
        for (u, d, id, seq) in c.dedupe {
            dedupe_order.push_back((u, d, id.clone()));
            dedupe.insert((u, d, id), seq);
        }
        let messages = c
            .messages
            .into_iter()
            .map(|(o, sender)| MessageMeta {
                offset: Offset(o),
                sender,
            })
            .collect();
        let conv = Conv {
            kind: c.kind,
            name: c.name,
            created: c.created,
            members,
            last_ts: c.last_ts,
            messages,
            dedupe,
            dedupe_order,
        };
        state.convs.insert(c.id, conv);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BodyKind, MessageRec, Rec};

    #[test]
    fn snapshot_round_trips_a_state() {
        let mut state = State::default();
        let (u1, u2, conv) = (UserId(2), UserId(4), ConvId(6));
        let mut offset = 0;
        let mut apply = |state: &mut State, rec: Rec| {
            offset += 1;
            state.apply(rec, Offset(offset));
        };
        apply(
            &mut state,
            Rec::UserCreated {
                user: u1,
                phone: "+1".into(),
                ts: Millis(1),
            },
        );
        apply(
            &mut state,
            Rec::UserCreated {
                user: u2,
                phone: "+2".into(),
                ts: Millis(1),
            },
        );
        let linked = Rec::DeviceLinked {
            user: u1,
            device: DeviceId(1),
            name: "p".into(),
            token_hash: [7; 32],
            expires: Millis(9),
            ts: Millis(2),
            cursors: vec![],
        };
        apply(&mut state, linked);
        let members = vec![(u1, Role::Admin), (u2, Role::Member)];
        apply(
            &mut state,
            Rec::ConvCreated {
                conv,
                kind: ConvKind::Group,
                name: "g".into(),
                members,
                ts: Millis(3),
            },
        );
        for seq in 1..=3 {
            let m = MessageRec {
                conv,
                seq: Seq(seq),
                sender: u1,
                device: DeviceId(1),
                client_msg_id: format!("c{seq}"),
                ts: Millis(4),
                body_kind: BodyKind::Text,
                body: "x".into(),
                media: None,
                reply_to: None,
            };
            apply(&mut state, Rec::Message(m));
        }
        apply(
            &mut state,
            Rec::Cursor {
                user: u1,
                device: DeviceId(1),
                conv,
                mark: crate::records::Mark::Read,
                seq: Seq(2),
            },
        );
        apply(
            &mut state,
            Rec::Receipt {
                conv,
                user: u2,
                mark: crate::records::Mark::Delivered,
                seq: Seq(3),
                ts: Millis(5),
            },
        );
        let bytes = encode(&state);
        let back = decode(&bytes).unwrap();
        assert_eq!(encode(&back), bytes);
        assert_eq!(back.convs[&conv].last_seq(), Seq(3));
        assert_eq!(
            back.convs[&conv].dedupe[&(u1, DeviceId(1), "c2".to_string())],
            Seq(2)
        );
        assert_eq!(back.phones["+2"], u2);
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
