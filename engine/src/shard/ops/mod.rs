//! The operations a shard runs, one concept per file; each is a typed
//! `ShardOp` (its request fields, its `run`, its reply type), called with
//! `mesh::call` or `mesh::tell`. Writes go through `Shard::write` with a
//! machine command; reads use machine queries; the rest is soft state.
//!
//! Lives on: the core of the shard each op names (user home, conversation
//! home or phone home, as each file says).

pub mod account;
pub mod change;
pub mod connect;
pub mod conversations;
pub mod cursor;
pub mod deliver;
pub mod erase;
pub mod history;
pub mod keys;
pub mod media;
pub mod membership;
pub mod otp;
pub mod presence;
pub mod receipt;
pub mod search;
pub mod send;
pub mod typing;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::conn::{ConnId, ConnRef, CoreId};
use super::mesh::{Mesh, Push};
use crate::machine::ids::{ConvId, Seq};

/// Pushes `event` to `conns`, one push per core; this core's connections
/// first, so that a later event of the same conversation cannot overtake
/// them here while a ring to another core is full.
pub async fn push_to(
    mesh: &Rc<dyn Mesh>,
    conns: impl Iterator<Item = ConnRef>,
    event: &Arc<str>,
    tag: Option<(ConvId, Seq)>,
    started: Option<Instant>,
) {
    let mut by_core: BTreeMap<CoreId, Vec<ConnId>> = BTreeMap::new();
    for c in conns {
        by_core.entry(c.core).or_default().push(c.conn);
    }
    let here = mesh.core();
    let mut list: Vec<_> = by_core.into_iter().collect();
    list.sort_by_key(|(c, _)| (*c != here, c.0));
    for (core, conns) in list {
        let push = Push {
            conns,
            event: event.clone(),
            tag,
            started,
        };
        mesh.push(core, push).await;
    }
}
