//! `DELETE /v1/me`'s two steps (`machine/cmd/delete_account.rs`).
//!
//! Lives on: `EraseOn` on each conversation's home; `DeleteUser` on the
//! user's home.

use std::rc::Rc;

use crate::machine::cmd::delete_account::{DeleteAccount, EraseSender};
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;

pub struct EraseOn(pub EraseSender);

impl ShardOp for EraseOn {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}

pub struct DeleteUser(pub DeleteAccount);

impl ShardOp for DeleteUser {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        shard.submit(&mesh, self.0).await
    }
}
