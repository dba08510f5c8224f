//! Operations on a conversation's home shard that shape it: create,
//! members and roles, info; and the startup announcement of memberships
//! to the users' home shards.
//!
//! Lives on: the conversation's home shard's core.

use std::collections::BTreeSet;
use std::rc::Rc;

use chat_net::protocol::{ApiError, ErrorCode};
use serde_json::json;

use crate::core::Core;
use crate::ids::{direct_conv_id, mint, ConvId, Millis, Seq, UserId};
use crate::ops::{Answer, ConvPointer, Op, Reply};
use crate::records::{ConvKind, Rec, Role};
use crate::shard::Shard;
use crate::state::{Conv, State};

pub fn not_found(conv: ConvId) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no conversation {conv}"))
}

/// The conversation, if `user` is in it (else `not_found`: existence is
/// not revealed to outsiders).
pub fn member_conv(state: &State, conv: ConvId, user: UserId) -> Result<&Conv, ApiError> {
    let c = state.convs.get(&conv).ok_or_else(|| not_found(conv))?;
    if !c.members.contains_key(&user) {
        return Err(not_found(conv));
    }
    Ok(c)
}

fn admin_conv(state: &State, conv: ConvId, by: UserId) -> Result<&Conv, ApiError> {
    let c = member_conv(state, conv, by)?;
    if c.kind == ConvKind::Direct {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a direct conversation has no admins",
        ));
    }
    if c.members[&by].role != Role::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "admins only"));
    }
    Ok(c)
}

pub fn conv_json(conv: ConvId, c: &Conv) -> serde_json::Value {
    let members: Vec<_> = c
        .members
        .iter()
        .map(|(u, m)| json!({"user_id": u.to_string(), "role": m.role.as_str()}))
        .collect();
    let name = if c.kind == ConvKind::Group {
        json!(c.name)
    } else {
        json!(null)
    };
    json!({"conversation_id": conv.to_string(), "kind": c.kind.as_str(), "name": name, "members": members})
}

pub fn pointer(conv: ConvId, c: &Conv, user: UserId, large_members: usize) -> ConvPointer {
    let peer = match c.kind {
        ConvKind::Direct => c.members.keys().find(|u| **u != user).copied(),
        ConvKind::Group => None,
    };
    ConvPointer {
        conv,
        kind: c.kind,
        name: c.name.clone(),
        peer,
        joined: c.members.get(&user).map_or(Seq(0), |m| m.joined),
        last_seq: c.last_seq(),
        last_ts: c.last_ts,
        large: c.members.len() > large_members,
        own_last: c.members.get(&user).map_or(Seq(0), |m| m.last_sent),
    }
}

impl Shard {
    /// Tells each user's home shard that the user is in `conv`.
    async fn announce_members(&self, core: &Rc<Core>, conv: ConvId, users: &[UserId]) {
        let infos: Vec<_> = {
            let state = self.state.borrow();
            let Some(c) = state.convs.get(&conv) else {
                return;
            };
            users
                .iter()
                .filter(|u| c.members.contains_key(u))
                .map(|u| (*u, pointer(conv, c, *u, self.config.fanout_on_read_members)))
                .collect()
        };
        for (user, info) in infos {
            core.tell(core.shard_of(user.0), Op::Joined { user, info })
                .await;
        }
    }

    /// Startup: every membership of this shard, to the users' shards.
    pub async fn announce(&self, core: &Rc<Core>) -> Reply {
        let convs: Vec<(ConvId, Vec<UserId>)> = self
            .state
            .borrow()
            .convs
            .iter()
            .map(|(id, c)| (*id, c.members.keys().copied().collect()))
            .collect();
        for (conv, users) in convs {
            self.announce_members(core, conv, &users).await;
        }
        Ok(Answer::Done)
    }

    pub async fn create_direct(self: &Rc<Self>, core: &Rc<Core>, a: UserId, b: UserId) -> Reply {
        let conv = direct_conv_id(a, b);
        assert_eq!(
            core.shard_of(conv.0),
            self.id,
            "routed to the conversation's home"
        );
        let created = self
            .write(|state| {
                if state.convs.contains_key(&conv) {
                    return Ok((Vec::new(), false));
                }
                let members = vec![(a, Role::Member), (b, Role::Member)];
                Ok((
                    vec![Rec::ConvCreated {
                        conv,
                        kind: ConvKind::Direct,
                        name: String::new(),
                        members,
                        ts: Millis::now(),
                    }],
                    true,
                ))
            })
            .await?;
        if created {
            self.announce_members(core, conv, &[a, b]).await;
        }
        let body = conv_json(conv, &self.state.borrow().convs[&conv]);
        Ok(Answer::Created { created, body })
    }

    pub async fn create_group(
        self: &Rc<Self>,
        core: &Rc<Core>,
        creator: UserId,
        name: String,
        members: Vec<UserId>,
    ) -> Reply {
        let max = self.config.group_members_max;
        let (shard, shards) = (self.id, self.shards);
        let mut set: BTreeSet<UserId> = members.into_iter().collect();
        set.remove(&creator);
        let conv = self
            .write(|state| {
                if set.len() + 1 > max {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!("a group has at most {max} members"),
                    ));
                }
                let conv = ConvId(mint(state.groups_minted + 1, shard, shards));
                let mut list = vec![(creator, Role::Admin)];
                list.extend(set.iter().map(|u| (*u, Role::Member)));
                Ok((
                    vec![Rec::ConvCreated {
                        conv,
                        kind: ConvKind::Group,
                        name,
                        members: list,
                        ts: Millis::now(),
                    }],
                    conv,
                ))
            })
            .await?;
        let users: Vec<UserId> = self.state.borrow().convs[&conv]
            .members
            .keys()
            .copied()
            .collect();
        self.announce_members(core, conv, &users).await;
        let body = conv_json(conv, &self.state.borrow().convs[&conv]);
        Ok(Answer::Created {
            created: true,
            body,
        })
    }

    pub async fn add_member(
        self: &Rc<Self>,
        core: &Rc<Core>,
        conv: ConvId,
        by: UserId,
        user: UserId,
    ) -> Reply {
        let max = self.config.group_members_max;
        let added = self
            .write(|state| {
                let c = admin_conv(state, conv, by)?;
                if c.members.contains_key(&user) {
                    return Ok((Vec::new(), false));
                }
                if c.members.len() >= max {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!("a group has at most {max} members"),
                    ));
                }
                Ok((
                    vec![Rec::MemberAdded {
                        conv,
                        user,
                        role: Role::Member,
                    }],
                    true,
                ))
            })
            .await?;
        if added {
            let (members, crossed) = self.size_change(conv, 1);
            let to = if crossed { members } else { vec![user] };
            self.announce_members(core, conv, &to).await;
        }
        Ok(Answer::Done)
    }

    /// Removes `user`: by an admin, or by `user` itself (leave). The last
    /// admin leaving hands the role to the longest-standing member.
    pub async fn remove_member(
        self: &Rc<Self>,
        core: &Rc<Core>,
        conv: ConvId,
        by: UserId,
        user: UserId,
    ) -> Reply {
        self.write(|state| {
            let c = member_conv(state, conv, by)?;
            if c.kind == ConvKind::Direct {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "one cannot leave a direct conversation",
                ));
            }
            if by != user && c.members[&by].role != Role::Admin {
                return Err(ApiError::new(ErrorCode::Forbidden, "admins only"));
            }
            let m = c.members.get(&user).ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("{user} is not a member"))
            })?;
            let mut recs = vec![Rec::MemberRemoved { conv, user }];
            if m.role == Role::Admin && c.admins() == 1 {
                let heir = c
                    .members
                    .iter()
                    .filter(|(u, _)| **u != user)
                    .min_by_key(|(u, m)| (m.joined, **u));
                if let Some((heir, _)) = heir {
                    recs.push(Rec::RoleSet {
                        conv,
                        user: *heir,
                        role: Role::Admin,
                    });
                }
            }
            Ok((recs, ()))
        })
        .await?;
        core.tell(core.shard_of(user.0), Op::Left { user, conv })
            .await;
        let (members, crossed) = self.size_change(conv, -1);
        if crossed {
            self.announce_members(core, conv, &members).await;
        }
        Ok(Answer::Done)
    }

    pub async fn set_role(
        self: &Rc<Self>,
        conv: ConvId,
        by: UserId,
        user: UserId,
        role: Role,
    ) -> Reply {
        self.write(|state| {
            let c = admin_conv(state, conv, by)?;
            let m = c.members.get(&user).ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("{user} is not a member"))
            })?;
            if m.role == role {
                return Ok((Vec::new(), ()));
            }
            if role == Role::Member && m.role == Role::Admin && c.admins() == 1 {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "a group keeps at least one admin",
                ));
            }
            Ok((vec![Rec::RoleSet { conv, user, role }], ()))
        })
        .await?;
        Ok(Answer::Done)
    }

    /// After the member count moved by `delta`: the members, and whether
    /// the group crossed the fan-out-on-read size (every member's home
    /// must then learn the new mode).
    fn size_change(&self, conv: ConvId, delta: isize) -> (Vec<UserId>, bool) {
        let state = self.state.borrow();
        let c = &state.convs[&conv];
        let now = c.members.len();
        let before = (now as isize - delta) as usize;
        let limit = self.config.fanout_on_read_members;
        (
            (c.members.keys().copied().collect()),
            (now > limit) != (before > limit),
        )
    }

    pub fn conv_info(&self, conv: ConvId, user: UserId) -> Reply {
        let state = self.state.borrow();
        let c = member_conv(&state, conv, user)?;
        Ok(Answer::Pointer(pointer(
            conv,
            c,
            user,
            self.config.fanout_on_read_members,
        )))
    }
}
