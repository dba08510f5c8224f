//! `POST /v1/auth/verify` once the code checked out: the phone's first
//! verify creates the account; every verify links a new device with a
//! fresh token (only its hash is stored).

use std::collections::BTreeMap;

use crate::constants::DEVICES_PER_USER_MAX;
use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{mint, ConvId, DeviceId, Millis, Seq, UserId};
use crate::machine::records::{Privacy, Rec};
use crate::machine::state::{covered, Cursors, Device, Lsn, State, User};
use crate::machine::token::{self, Secret};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LinkDevice {
    pub phone: String,
    pub device_name: String,
    /// The new token's random part (drawn by the shell).
    pub secret: Secret,
    /// Where the new device starts in each of the user's conversations
    /// (their ends: a new device does not replay history).
    pub cursors: Vec<(ConvId, Seq)>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    pub user: UserId,
    pub device: DeviceId,
    pub token: String,
}

impl LinkDevice {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Linked>, DomainError> {
        let mut recs = Vec::new();
        let user = match state.phones.get(&self.phone) {
            Some(user) => *user,
            None => {
                let user = UserId(mint(state.meta.users_minted + 1, ctx.shard, ctx.shards));
                recs.push(Rec::UserCreated {
                    user,
                    phone: self.phone.clone(),
                    ts: ctx.now,
                });
                user
            }
        };
        let existing = state.users.get(&user);
        if existing.map_or(0, |u| u.devices.len()) >= DEVICES_PER_USER_MAX {
            return Err(DomainError::TooManyDevices {
                max: DEVICES_PER_USER_MAX,
            });
        }
        // Ids are never reused, not even those of revoked devices.
        let device = DeviceId(existing.map_or(0, |u| u.devices_ever) + 1);
        let (token, token_hash) = token::mint(user, device, self.secret);
        recs.push(Rec::DeviceLinked {
            user,
            device,
            name: self.device_name,
            token_hash,
            expires: ctx.now.plus_seconds(state.params.token_ttl_seconds),
            ts: ctx.now,
            cursors: self.cursors,
        });
        let reply = Linked {
            user,
            device,
            token,
        };
        Ok(Decision::write(recs, reply))
    }
}

pub fn apply_user_created(
    state: &mut State,
    user: UserId,
    phone: &str,
    ts: Millis,
    at: Lsn,
) -> Effects {
    let floor = state.replay_floor;
    if !covered(floor, state.meta.lsn, at) {
        state.meta.users_minted += 1;
        state.meta.lsn = at;
    }
    if let Some(u) = state.users.get(&user) {
        assert!(covered(floor, u.lsn, at), "user {user} created twice");
        return Effects::new();
    }
    // An empty phone: the erasure compaction removed it from the record
    // of an account deleted later in the log (it holds no phone then).
    if !phone.is_empty() {
        state.phones.insert(phone.to_string(), user);
    }
    let u = User {
        lsn: at,
        phone: phone.to_string(),
        name: String::new(),
        privacy: Privacy::Everyone,
        read_receipts: true,
        created: ts,
        last_seen: ts,
        devices: BTreeMap::new(),
        devices_ever: 0,
        media: BTreeMap::new(),
        media_minted: 0,
        deleted: false,
    };
    state.users.insert(user, u);
    Effects::new()
}

/// The fields of `Rec::DeviceLinked`.
pub struct Linking<'a> {
    pub user: UserId,
    pub device: DeviceId,
    pub name: &'a str,
    pub token_hash: [u8; 32],
    pub expires: Millis,
    pub ts: Millis,
    pub cursors: &'a [(ConvId, Seq)],
}

pub fn apply_device_linked(state: &mut State, l: Linking<'_>, at: Lsn) -> Effects {
    let Some(u) = state.user_at(l.user, at) else {
        return Effects::new();
    };
    assert_eq!(
        l.device.0,
        u.devices_ever + 1,
        "device ids are dense and never reused"
    );
    u.devices_ever += 1;
    let cursors = l
        .cursors
        .iter()
        .map(|(c, s)| {
            let at_end = Cursors {
                delivered: *s,
                read: *s,
                pushed: *s,
            };
            (*c, at_end)
        })
        .collect();
    let d = Device {
        name: l.name.to_string(),
        token_hash: l.token_hash,
        expires: l.expires,
        created: l.ts,
        cursors,
        keys: None,
        push_token: None,
    };
    assert!(
        u.devices.insert(l.device, d).is_none(),
        "device {} linked twice",
        l.device
    );
    Effects::new()
}
