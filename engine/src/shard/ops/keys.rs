//! The key directory on the user's home: uploads, the count a device
//! refills by, fetches (which consume one-time prekeys), and the per-user
//! limit on fetches.
//!
//! Lives on: the user's home shard (for `CountKeyFetch`: the caller's).

use std::rc::Rc;

use crate::constants::KEY_FETCH_MAP_USERS_MAX;
use crate::machine::cmd::put_keys::PutKeys;
use crate::machine::cmd::take_prekeys::{Bundle, TakePrekeys};
use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, UserId};
use crate::machine::query::keys::prekeys_left;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct UploadKeys(pub PutKeys);

impl ShardOp for UploadKeys {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

pub struct PrekeysLeft {
    pub user: UserId,
    pub device: DeviceId,
}

impl ShardOp for PrekeysLeft {
    type Reply = usize;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<usize> {
        shard.settled().await?;
        Ok(prekeys_left(&shard.state(), self.user, self.device)?)
    }
}

pub struct FetchKeys(pub TakePrekeys);

impl ShardOp for FetchKeys {
    type Reply = Vec<Bundle>;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<Vec<Bundle>> {
        shard.submit(&mesh, self.0).await
    }
}

/// One key fetch by `caller`: refused with `rate_limited` past
/// `--key-fetches-per-minute` in the current minute (soft state of this
/// replica of the caller's home: each node counts its own).
pub struct CountKeyFetch {
    pub caller: UserId,
}

impl ShardOp for CountKeyFetch {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        const MINUTE_MS: u64 = 60_000;
        let now = shard.clock.now();
        let max = shard.state().params.key_fetches_per_minute;
        let mut soft = shard.soft.borrow_mut();
        let fetches = &mut soft.key_fetches;
        if fetches.len() >= KEY_FETCH_MAP_USERS_MAX {
            fetches.retain(|_, (start, _)| now.0 < start.0 + MINUTE_MS);
        }
        let entry = fetches.entry(self.caller).or_insert((now, 0));
        if now.0 >= entry.0 .0 + MINUTE_MS {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            let retry_after_ms = entry.0 .0 + MINUTE_MS - now.0;
            return Err(DomainError::RateLimited { retry_after_ms }.into());
        }
        entry.1 += 1;
        Ok(())
    }
}
