//! Accounts on the user's home: tokens, profile, devices, lookups.
//!
//! Lives on: the user's home shard (`ByPhone`: the phone's home, which is
//! where its account was minted).

use std::rc::Rc;

use crate::machine::cmd::patch_me::PatchMe;
use crate::machine::cmd::push::SetPushToken;
use crate::machine::cmd::revoke_device::RevokeDevice;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::query::{auth, me};
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct Authenticate {
    pub token: String,
}

impl ShardOp for Authenticate {
    type Reply = (UserId, DeviceId);

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        shard.settled().await?;
        let now = shard.clock.now();
        Ok(auth::authenticate(&shard.state(), &self.token, now)?)
    }
}

pub struct GetMe {
    pub user: UserId,
}

impl ShardOp for GetMe {
    type Reply = me::Me;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<me::Me> {
        shard.settled().await?;
        Ok(me::me(&shard.state(), self.user)?)
    }
}

/// Changes the profile; replies with it as it is then.
pub struct SetProfile(pub PatchMe);

impl ShardOp for SetProfile {
    type Reply = me::Me;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<me::Me> {
        let user = self.0.user;
        shard.submit(&mesh, self.0).await?;
        Ok(me::me(&shard.state(), user)?)
    }
}

/// Revokes a device (the effect closes its connections).
pub struct Revoke(pub RevokeDevice);

impl ShardOp for Revoke {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

pub struct SetPush(pub SetPushToken);

impl ShardOp for SetPush {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

/// The account of a phone: its id and name.
pub struct ByPhone {
    pub phone: String,
}

impl ShardOp for ByPhone {
    type Reply = (UserId, String);

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Self::Reply> {
        shard.settled().await?;
        Ok(me::by_phone(&shard.state(), &self.phone)?)
    }
}

/// The users of the list (all of this home) that do not exist.
pub struct Missing {
    pub users: Vec<UserId>,
}

impl ShardOp for Missing {
    type Reply = Vec<UserId>;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<Vec<UserId>> {
        // A user made a moment ago through another node exists here too.
        shard.settled().await?;
        Ok(me::missing(&shard.state(), &self.users))
    }
}
