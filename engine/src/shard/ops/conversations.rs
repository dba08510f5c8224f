//! Conversations on their home shard: create, members and roles, and what
//! a member's lists need; the user's list of conversations on its home.
//!
//! Lives on: the conversation's home shard (`ListConvs`: the user's home).

use std::rc::Rc;

use crate::machine::cmd::add_member::AddMember;
use crate::machine::cmd::create_direct::CreateDirect;
use crate::machine::cmd::create_group::CreateGroup;
use crate::machine::cmd::remove_member::RemoveMember;
use crate::machine::cmd::set_disappearing::SetDisappearing;
use crate::machine::cmd::set_role::SetRole;
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Seq, UserId};
use crate::machine::query::conv::{member_conv, view, ConvView};
use crate::machine::state::ConvPointer;
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

fn view_of(shard: &Shard, conv: ConvId) -> ShardResult<ConvView> {
    view(&shard.state(), conv).ok_or_else(|| unavailable("the conversation was rebuilt away"))
}

/// The pair's direct conversation: (its view, whether this call made it).
pub struct NewDirect(pub CreateDirect);

impl ShardOp for NewDirect {
    type Reply = (ConvView, bool);

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        let created = shard.submit(&mesh, self.0).await?;
        Ok((view_of(&shard, created.conv)?, created.created))
    }
}

pub struct NewGroup(pub CreateGroup);

impl ShardOp for NewGroup {
    type Reply = ConvView;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<ConvView> {
        let created = shard.submit(&mesh, self.0).await?;
        view_of(&shard, created.conv)
    }
}

pub struct Add(pub AddMember);

impl ShardOp for Add {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await?;
        Ok(())
    }
}

pub struct Remove(pub RemoveMember);

impl ShardOp for Remove {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

pub struct ChangeRole(pub SetRole);

impl ShardOp for ChangeRole {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

pub struct Disappearing(pub SetDisappearing);

impl ShardOp for Disappearing {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

/// What a member's lists need of a conversation now (large groups' ends).
pub struct ConvInfo {
    pub conv: ConvId,
    pub user: UserId,
}

impl ShardOp for ConvInfo {
    type Reply = ConvPointer;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<ConvPointer> {
        shard.settled().await?;
        let state = shard.state();
        let c = member_conv(&state, self.conv, self.user)?;
        Ok(c.pointer(self.conv, self.user, state.params.fanout_on_read_members))
    }
}

/// The user's conversations, each with the user's read position in it (the
/// front end pulls fresh ends of large groups and orders them).
pub struct ListConvs {
    pub user: UserId,
}

impl ShardOp for ListConvs {
    type Reply = Vec<(ConvPointer, Seq)>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        shard.settled().await?;
        let state = shard.state();
        let u = state
            .users
            .get(&self.user)
            .ok_or(DomainError::NoUser(self.user))?;
        let soft = shard.soft.borrow();
        let Some(pointers) = soft.pointers.get(&self.user) else {
            return Ok(Vec::new());
        };
        let list = pointers
            .values()
            .map(|p| {
                let read = u.level(p.conv, crate::machine::records::Mark::Read);
                (p.clone(), read.max(p.joined).max(p.own_last))
            })
            .collect();
        Ok(list)
    }
}
