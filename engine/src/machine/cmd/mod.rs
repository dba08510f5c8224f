//! The commands: each file holds one command's request type, its
//! `decide` (check it against the state, make the records), the `apply`
//! of the records it makes, and its reply type. `apply.rs` dispatches
//! records to those `apply` functions; nothing else changes the state.
//!
//! Lives on: the shard's core (the home shard of what the command names).

pub mod add_member;
pub mod create_direct;
pub mod create_group;
pub mod cursor;
pub mod delete;
pub mod delete_account;
pub mod edit;
pub mod last_seen;
pub mod link_device;
pub mod patch_me;
pub mod push;
pub mod put_keys;
pub mod receipt;
pub mod remove_member;
pub mod revoke_device;
pub mod send;
pub mod set_disappearing;
pub mod set_role;
pub mod share_media;
pub mod store_media;
pub mod take_prekeys;

use crate::machine::records::Rec;

/// What a command decided: the records to append (none: nothing changes)
/// and the reply to give once they are durable.
#[derive(Debug)]
pub struct Decision<R> {
    pub recs: Vec<Rec>,
    pub reply: R,
}

impl<R> Decision<R> {
    /// Nothing to write; the reply stands as it is.
    pub fn nothing(reply: R) -> Decision<R> {
        Decision {
            recs: Vec::new(),
            reply,
        }
    }

    pub fn write(recs: Vec<Rec>, reply: R) -> Decision<R> {
        Decision { recs, reply }
    }
}
