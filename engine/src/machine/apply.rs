//! `apply`: the one way the state changes. Each record kind goes to the
//! `apply` of the command that makes it (`cmd/`); what comes back is what
//! the shell must do once the record is durable.
//!
//! Lives on: the shard's core. The live path applies a record right after
//! appending it (so the next decision sees it); recovery replays the log
//! through the same function and drops the effects.

use crate::machine::cmd::{
    add_member, create_group, cursor, delete, delete_account, edit, last_seen, link_device,
    patch_me, push, put_keys, receipt, remove_member, revoke_device, send, set_disappearing,
    set_role, share_media, store_media, take_prekeys,
};
use crate::machine::effects::Effects;
use crate::machine::records::Rec;
use crate::machine::state::{Lsn, State};

/// Applies `rec`, written at log offset `at`. Panics on a record that
/// contradicts the state: decisions are checked before their records are
/// appended, so such a record means a bug or a log that is not ours.
pub fn apply(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::UserCreated { .. } | Rec::DeviceLinked { .. } => linking(state, rec, at),
        Rec::DeviceRevoked { user, device } => revoke_device::apply(state, *user, *device, at),
        Rec::ProfileSet {
            user,
            name,
            privacy,
            read_receipts,
        } => patch_me::apply(state, *user, (name, *privacy, *read_receipts), at),
        Rec::Cursor {
            user,
            device,
            conv,
            mark,
            seq,
        } => cursor::apply(state, (*user, *device, *conv, *mark, *seq), at),
        Rec::LastSeen { user, ts } => last_seen::apply(state, *user, *ts, at),
        Rec::ConvCreated {
            conv,
            kind,
            name,
            members,
            ts,
        } => {
            let creating = create_group::Creating {
                conv: *conv,
                kind: *kind,
                name,
                members,
                ts: *ts,
            };
            create_group::apply(state, creating, at)
        }
        Rec::MemberAdded { .. } | Rec::MemberRemoved { .. } | Rec::RoleSet { .. } => {
            membership(state, rec, at)
        }
        Rec::Message(m) => send::apply(state, m, at),
        Rec::MessageEdited { .. } | Rec::MessageDeleted { .. } => change(state, rec, at),
        Rec::KeysPut { .. } | Rec::PrekeysTaken { .. } => keys(state, rec, at),
        Rec::MediaStored { .. } | Rec::MediaShared { .. } => media(state, rec, at),
        Rec::UserDeleted { user } => delete_account::apply(state, *user, at),
        Rec::SenderErased { conv, user } => delete_account::apply_erased(state, *conv, *user, at),
        Rec::DisappearingSet { conv, seconds, .. } => {
            set_disappearing::apply(state, *conv, *seconds, at)
        }
        Rec::Receipt {
            conv,
            user,
            mark,
            seq,
            ts,
        } => receipt::apply(state, (*conv, *user, *mark, *seq, *ts), at),
        Rec::PushTokenSet {
            user,
            device,
            token,
        } => push::apply_token(state, (*user, *device, token), at),
        Rec::PushDone {
            user,
            conv,
            seq,
            devices,
            rejected,
        } => push::apply_done(state, (*user, *conv, *seq), (devices, rejected), at),
    }
}

/// An edit or a delete of a stored message.
fn change(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::MessageEdited {
            conv,
            seq,
            by,
            device,
            ts,
            body_kind,
            body,
        } => {
            let editing = edit::Editing {
                conv: *conv,
                seq: *seq,
                by: (*by, *device),
                ts: *ts,
                body_kind: *body_kind,
                body,
            };
            edit::apply(state, editing, at)
        }
        Rec::MessageDeleted {
            conv,
            seq,
            by,
            device,
            ts,
        } => delete::apply(state, (*conv, *seq, (*by, *device), *ts), at),
        _ => unreachable!("only edits and deletes come here"),
    }
}

/// A key upload or a key fetch.
fn keys(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::KeysPut {
            user,
            device,
            identity_key,
            signed_prekey,
            one_time,
        } => {
            let putting = put_keys::Putting {
                user: *user,
                device: *device,
                identity_key,
                signed_prekey,
                one_time,
            };
            put_keys::apply(state, putting, at)
        }
        Rec::PrekeysTaken { user, taken } => take_prekeys::apply(state, *user, taken, at),
        _ => unreachable!("only key records come here"),
    }
}

fn media(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::MediaStored {
            user,
            n,
            sha256,
            size,
            mime,
            ts,
        } => {
            let stored = store_media::Stored {
                user: *user,
                n: *n,
                sha256: *sha256,
                size: *size,
                mime,
                ts: *ts,
            };
            store_media::apply(state, stored, at)
        }
        Rec::MediaShared { user, n, conv } => share_media::apply(state, *user, *n, *conv, at),
        _ => unreachable!("only media records come here"),
    }
}

/// A member added, removed, or given a role.
fn membership(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::MemberAdded { conv, user, role } => add_member::apply(state, *conv, *user, *role, at),
        Rec::MemberRemoved { conv, user } => remove_member::apply(state, *conv, *user, at),
        Rec::RoleSet { conv, user, role } => set_role::apply(state, *conv, *user, *role, at),
        _ => unreachable!("only membership records come here"),
    }
}

/// A new account, or a device linked to one.
fn linking(state: &mut State, rec: &Rec, at: Lsn) -> Effects {
    match rec {
        Rec::UserCreated { user, phone, ts } => {
            link_device::apply_user_created(state, *user, phone, *ts, at)
        }
        Rec::DeviceLinked {
            user,
            device,
            name,
            token_hash,
            expires,
            ts,
            cursors,
        } => {
            let linking = link_device::Linking {
                user: *user,
                device: *device,
                name,
                token_hash: *token_hash,
                expires: *expires,
                ts: *ts,
                cursors,
            };
            link_device::apply_device_linked(state, linking, at)
        }
        _ => unreachable!("only account records come here"),
    }
}
