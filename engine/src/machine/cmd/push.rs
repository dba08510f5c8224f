//! Push tokens: `PUT /v1/devices/{id}/push` sets or removes a device's
//! token; `PushDone` records what the push gateway took (how far each
//! device was notified in a conversation, so that a restart does not send
//! it again) and removes the tokens it refused.

use crate::machine::ctx::Ctx;
use crate::machine::effects::Effects;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, DeviceId, Seq, UserId};
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, State};

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SetPushToken {
    pub user: UserId,
    pub device: DeviceId,
    /// Checked by the front end (`constants::PUSH_TOKEN_BYTES_MAX`).
    pub token: Option<String>,
}

impl SetPushToken {
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let u = state.users.get(&self.user).ok_or(DomainError::UserGone)?;
        let d = u
            .devices
            .get(&self.device)
            .ok_or(DomainError::NoDevice(self.device))?;
        let elsewhere = self.token.as_ref().is_some_and(|t| {
            u.devices
                .iter()
                .any(|(id, o)| *id != self.device && o.push_token.as_ref() == Some(t))
        });
        if d.push_token == self.token && !elsewhere {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::PushTokenSet {
            user: self.user,
            device: self.device,
            token: self.token,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

/// The gateway's answer to one notification, as the sender reports it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PushDone {
    pub user: UserId,
    pub conv: ConvId,
    pub seq: Seq,
    pub devices: Vec<DeviceId>,
    pub rejected: Vec<String>,
}

impl PushDone {
    /// Writes only what changes: devices still there and not yet pushed
    /// this far, tokens some device still holds.
    pub fn decide(self, state: &State, _ctx: &Ctx) -> Result<Decision<()>, DomainError> {
        let Some(u) = state.users.get(&self.user) else {
            return Ok(Decision::nothing(()));
        };
        let devices: Vec<DeviceId> = self
            .devices
            .into_iter()
            .filter(|id| {
                u.devices.get(id).is_some_and(|d| {
                    d.cursors.get(&self.conv).map_or(Seq(0), |c| c.pushed) < self.seq
                })
            })
            .collect();
        let rejected: Vec<String> = self
            .rejected
            .into_iter()
            .filter(|t| u.devices.values().any(|d| d.push_token.as_ref() == Some(t)))
            .collect();
        if devices.is_empty() && rejected.is_empty() {
            return Ok(Decision::nothing(()));
        }
        let rec = Rec::PushDone {
            user: self.user,
            conv: self.conv,
            seq: self.seq,
            devices,
            rejected,
        };
        Ok(Decision::write(vec![rec], ()))
    }
}

pub fn apply_token(
    state: &mut State,
    (user, device, token): (UserId, DeviceId, &Option<String>),
    at: Lsn,
) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    if let Some(t) = token {
        for d in u.devices.values_mut() {
            if d.push_token.as_ref() == Some(t) {
                d.push_token = None;
            }
        }
    }
    let d = u
        .devices
        .get_mut(&device)
        .expect("a push token of a known device");
    d.push_token = token.clone();
    Effects::new()
}

pub fn apply_done(
    state: &mut State,
    (user, conv, seq): (UserId, ConvId, Seq),
    (devices, rejected): (&[DeviceId], &[String]),
    at: Lsn,
) -> Effects {
    let Some(u) = state.user_at(user, at) else {
        return Effects::new();
    };
    for id in devices {
        // Revoked since the decision? Then there is nothing to move.
        if let Some(d) = u.devices.get_mut(id) {
            let c = d.cursors.entry(conv).or_default();
            c.pushed = c.pushed.max(seq);
        }
    }
    for d in u.devices.values_mut() {
        if d.push_token.as_ref().is_some_and(|t| rejected.contains(t)) {
            d.push_token = None;
        }
    }
    Effects::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::apply::apply;
    use crate::machine::cmd::link_device::LinkDevice;
    use crate::machine::ids::{Millis, ShardId};
    use crate::machine::state::Params;
    use crate::machine::token::{Secret, SECRET_BYTES};

    const CTX: Ctx = Ctx {
        now: Millis(1_000),
        shard: ShardId(0),
        shards: 1,
    };

    fn write(state: &mut State, log: &mut u64, recs: Vec<Rec>) {
        for rec in recs {
            *log += 1;
            apply(state, &rec, Lsn(*log));
        }
    }

    fn link(state: &mut State, log: &mut u64) -> (UserId, DeviceId) {
        let cmd = LinkDevice {
            phone: "+15550001111".into(),
            device_name: "phone".into(),
            secret: Secret([3; SECRET_BYTES]),
            cursors: Vec::new(),
        };
        let d = cmd.decide(state, &CTX).unwrap();
        write(state, log, d.recs);
        (d.reply.user, d.reply.device)
    }

    #[test]
    fn a_token_moves_between_devices_and_goes_when_refused() {
        let params = Params {
            group_members_max: 8,
            fanout_on_read_members: 4,
            token_ttl_seconds: 60,
            edit_window_seconds: 60,
            key_fetches_per_minute: 60,
        };
        let (mut state, mut log) = (State::new(params), 0);
        let (user, first) = link(&mut state, &mut log);
        let (_, second) = link(&mut state, &mut log);
        let set = |device, token: &str| SetPushToken {
            user,
            device,
            token: Some(token.to_string()),
        };
        let d = set(first, "t1").decide(&state, &CTX).unwrap();
        write(&mut state, &mut log, d.recs);
        assert!(set(first, "t1")
            .decide(&state, &CTX)
            .unwrap()
            .recs
            .is_empty());
        // The same token on the other device leaves the first one.
        let d = set(second, "t1").decide(&state, &CTX).unwrap();
        write(&mut state, &mut log, d.recs);
        let devices = &state.users[&user].devices;
        assert_eq!(devices[&first].push_token, None);
        assert_eq!(devices[&second].push_token.as_deref(), Some("t1"));
        let done = PushDone {
            user,
            conv: ConvId(5),
            seq: Seq(3),
            devices: vec![second],
            rejected: vec!["t1".into()],
        };
        let d = done.clone().decide(&state, &CTX).unwrap();
        write(&mut state, &mut log, d.recs);
        let dev = &state.users[&user].devices[&second];
        assert_eq!(dev.push_token, None);
        assert_eq!(dev.cursors[&ConvId(5)].pushed, Seq(3));
        // Said again: nothing left to write.
        assert!(done.decide(&state, &CTX).unwrap().recs.is_empty());
        let unknown = SetPushToken {
            user,
            device: DeviceId(99),
            token: None,
        };
        assert_eq!(
            unknown.decide(&state, &CTX).unwrap_err(),
            DomainError::NoDevice(DeviceId(99))
        );
    }
}
