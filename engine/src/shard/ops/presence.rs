//! Presence: who watches whom, who may see it (the subject's privacy
//! setting), and the events when a user comes online or goes offline.
//!
//! Lives on: the subject's home shard.

use std::rc::Rc;
use std::sync::Arc;

use super::push_to;
use crate::machine::ids::{Millis, UserId};
use crate::machine::records::Privacy;
use crate::shard::conn::ConnRef;
use crate::shard::error::ShardResult;
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;
use crate::wire::presence_event;

/// May `watcher` see `subject`'s presence? "contacts" are the users who
/// share a direct conversation with the subject.
fn allowed(shard: &Shard, subject: UserId, watcher: UserId) -> bool {
    let state = shard.state();
    let Some(u) = state.users.get(&subject) else {
        return false;
    };
    match u.privacy {
        Privacy::Everyone => true,
        Privacy::Nobody => watcher == subject,
        Privacy::Contacts => {
            watcher == subject
                || shard
                    .soft
                    .borrow()
                    .pointers
                    .get(&subject)
                    .is_some_and(|p| p.values().any(|c| c.peer == Some(watcher)))
        }
    }
}

pub struct Subscribe {
    pub subject: UserId,
    pub watcher: UserId,
    pub conn: ConnRef,
}

impl ShardOp for Subscribe {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        // The subject's privacy as the leader knows it.
        shard.settled().await?;
        let Some(last_seen) = shard.state().users.get(&self.subject).map(|u| u.last_seen) else {
            return Ok(());
        };
        {
            let mut soft = shard.soft.borrow_mut();
            let list = soft.watchers.entry(self.subject).or_default();
            if !list.iter().any(|(_, c)| *c == self.conn) {
                list.push((self.watcher, self.conn));
            }
        }
        if allowed(&shard, self.subject, self.watcher) {
            let online = shard.soft.borrow().is_online(self.subject);
            let event: Arc<str> = presence_event(self.subject, online, Some(last_seen)).into();
            push_to(&mesh, std::iter::once(self.conn), &event, None, None).await;
        }
        Ok(())
    }
}

pub struct Unsubscribe {
    pub subject: UserId,
    pub conn: ConnRef,
}

impl ShardOp for Unsubscribe {
    type Reply = ();

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<()> {
        let mut soft = shard.soft.borrow_mut();
        if let Some(list) = soft.watchers.get_mut(&self.subject) {
            list.retain(|(_, c)| *c != self.conn);
            if list.is_empty() {
                soft.watchers.remove(&self.subject);
            }
        }
        Ok(())
    }
}

/// Tells the watchers allowed to see it that `subject` came online or
/// went offline.
pub async fn changed(
    shard: &Shard,
    mesh: &Rc<dyn Mesh>,
    subject: UserId,
    online: bool,
    last_seen: Option<Millis>,
) {
    let watchers = shard
        .soft
        .borrow()
        .watchers
        .get(&subject)
        .cloned()
        .unwrap_or_default();
    if watchers.is_empty() {
        return;
    }
    let event: Arc<str> = presence_event(subject, online, last_seen).into();
    let to: Vec<ConnRef> = watchers
        .into_iter()
        .filter(|(w, _)| allowed(shard, subject, *w))
        .map(|(_, c)| c)
        .collect();
    push_to(mesh, to.into_iter(), &event, None, None).await;
}
