//! Work a replica hands to its shard's leader: the machine's commands as
//! one enum (`AnyCommand`), their replies as another, both rkyv archives
//! validated on decode (bytes from a peer are untrusted). The leader
//! decides with its own state and clock, proposes, and answers once the
//! records committed.
//!
//! Lives on: any core (plain values).

use rkyv::{Archive, Deserialize, Serialize};

use crate::machine::cmd::add_member::AddMember;
use crate::machine::cmd::create_direct::{CreateDirect, Created};
use crate::machine::cmd::create_group::CreateGroup;
use crate::machine::cmd::cursor::Cursor;
use crate::machine::cmd::delete::Delete;
use crate::machine::cmd::delete_account::{DeleteAccount, EraseSender};
use crate::machine::cmd::edit::{Edit, Edited};
use crate::machine::cmd::last_seen::LastSeen;
use crate::machine::cmd::link_device::{LinkDevice, Linked};
use crate::machine::cmd::patch_me::PatchMe;
use crate::machine::cmd::push::{PushDone, SetPushToken};
use crate::machine::cmd::put_keys::PutKeys;
use crate::machine::cmd::receipt::Receipt;
use crate::machine::cmd::remove_member::RemoveMember;
use crate::machine::cmd::revoke_device::RevokeDevice;
use crate::machine::cmd::send::{Send, Sent};
use crate::machine::cmd::set_disappearing::SetDisappearing;
use crate::machine::cmd::set_role::SetRole;
use crate::machine::cmd::share_media::ShareMedia;
use crate::machine::cmd::store_media::StoreMedia;
use crate::machine::cmd::take_prekeys::{Bundle, TakePrekeys};
use crate::machine::cmd::Decision;
use crate::machine::ctx::Ctx;
use crate::machine::error::DomainError;
use crate::machine::ids::{DeviceId, MediaId, UserId};
use crate::machine::state::{MediaRef, State};
use crate::shard::error::{unavailable, ShardError, ShardResult};

/// A machine command that may be forwarded to the leader.
pub trait Command: Sized + 'static {
    type Reply;
    fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Self::Reply>, DomainError>;
    fn wrap(self) -> AnyCommand;
    fn unwrap_reply(reply: AnyReply) -> Option<Self::Reply>;
}

/// Every command, for the wire.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AnyCommand {
    AddMember(AddMember),
    CreateDirect(CreateDirect),
    CreateGroup(CreateGroup),
    Cursor(Cursor),
    Delete(Delete),
    Edit(Edit),
    LastSeen(LastSeen),
    LinkDevice(LinkDevice),
    PatchMe(PatchMe),
    PutKeys(PutKeys),
    Receipt(Receipt),
    RemoveMember(RemoveMember),
    RevokeDevice(RevokeDevice),
    Send(Send),
    SetRole(SetRole),
    SetDisappearing(SetDisappearing),
    TakePrekeys(TakePrekeys),
    StoreMedia(StoreMedia),
    ShareMedia(ShareMedia),
    EraseSender(EraseSender),
    DeleteAccount(DeleteAccount),
    SetPushToken(SetPushToken),
    PushDone(PushDone),
}

/// Every command's reply, for the wire.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AnyReply {
    Unit,
    Bool(bool),
    Created(Created),
    Linked(Linked),
    Sent(Sent),
    Edited(Edited),
    Bundles(Vec<Bundle>),
    MediaId(MediaId),
    MediaRef(MediaRef),
    /// A new OTP code, minted on the leader; the node asked delivers it
    /// to its own sink.
    OtpCode(String),
    /// Committed log records (`Work::FetchLog`), in order.
    Records(Vec<LogRecord>),
    /// A piece of a media file (`Work::BlobGet`).
    Blob(Vec<u8>),
    /// The devices connected to the callee (`Work::Attached`).
    Devices(Vec<DeviceId>),
}

/// One record of a shard's log, as a follower catching up fetches it.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub index: u64,
    pub term: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// What a replica asks of its shard's leader.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Command(AnyCommand),
    /// OTP codes live on the leader of the phone's home shard (soft
    /// state): a code asked for on one node is checked on any other.
    OtpRequest {
        phone: String,
    },
    OtpVerify {
        phone: String,
        code: String,
        device_name: String,
    },
    /// The committed records from `from` through `upto`, as many as fit
    /// in about `CATCH_UP_CHUNK_BYTES` (any replica that committed them
    /// answers: a follower behind the leader's compaction point).
    FetchLog {
        from: u64,
        upto: u64,
    },
    /// A piece of a media file (`media/replica.rs`); answered
    /// `Bool(true)` once the file is whole on the callee.
    BlobPut {
        sha256: [u8; 32],
        size: u64,
        at: u64,
        bytes: Vec<u8>,
    },
    /// Bytes `at..at + len` of a media file the callee holds (`Blob`).
    BlobGet {
        sha256: [u8; 32],
        at: u64,
        len: u64,
    },
    /// Which of these devices of `user` are connected to the callee
    /// (`Devices`; any replica of the user's home answers): the push
    /// sender on the leader skips them.
    Attached {
        user: UserId,
        devices: Vec<DeviceId>,
    },
}

/// A forwarded call: which shard, and what to do there.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    pub shard: u16,
    pub work: Work,
}

/// The leader's answer.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done; committed through `index` on the leader (the caller's replica
    /// waits until it applied that far, so that it reads its own write).
    Done {
        reply: AnyReply,
        index: u64,
    },
    Refused(ShardError),
}

macro_rules! command {
    ($ty:ty, $variant:ident, $reply:ty, $unwrap:pat => $val:expr) => {
        impl Command for $ty {
            type Reply = $reply;
            fn decide(self, s: &State, ctx: &Ctx) -> Result<Decision<$reply>, DomainError> {
                <$ty>::decide(self, s, ctx)
            }
            fn wrap(self) -> AnyCommand {
                AnyCommand::$variant(self)
            }
            fn unwrap_reply(reply: AnyReply) -> Option<$reply> {
                match reply {
                    $unwrap => Some($val),
                    _ => None,
                }
            }
        }
    };
}

command!(AddMember, AddMember, bool, AnyReply::Bool(b) => b);
command!(CreateDirect, CreateDirect, Created, AnyReply::Created(c) => c);
command!(CreateGroup, CreateGroup, Created, AnyReply::Created(c) => c);
command!(Cursor, Cursor, (), AnyReply::Unit => ());
command!(Delete, Delete, (), AnyReply::Unit => ());
command!(Edit, Edit, Edited, AnyReply::Edited(e) => e);
command!(LastSeen, LastSeen, (), AnyReply::Unit => ());
command!(LinkDevice, LinkDevice, Linked, AnyReply::Linked(l) => l);
command!(PatchMe, PatchMe, (), AnyReply::Unit => ());
command!(Receipt, Receipt, (), AnyReply::Unit => ());
command!(RemoveMember, RemoveMember, (), AnyReply::Unit => ());
command!(RevokeDevice, RevokeDevice, (), AnyReply::Unit => ());
command!(Send, Send, Sent, AnyReply::Sent(s) => s);
command!(SetRole, SetRole, (), AnyReply::Unit => ());
command!(SetDisappearing, SetDisappearing, (), AnyReply::Unit => ());
command!(PutKeys, PutKeys, (), AnyReply::Unit => ());
command!(TakePrekeys, TakePrekeys, Vec<Bundle>, AnyReply::Bundles(b) => b);
command!(StoreMedia, StoreMedia, MediaId, AnyReply::MediaId(m) => m);
command!(ShareMedia, ShareMedia, MediaRef, AnyReply::MediaRef(m) => m);
command!(EraseSender, EraseSender, (), AnyReply::Unit => ());
command!(DeleteAccount, DeleteAccount, (), AnyReply::Unit => ());
command!(SetPushToken, SetPushToken, (), AnyReply::Unit => ());
command!(PushDone, PushDone, (), AnyReply::Unit => ());

fn map<R>(d: Decision<R>, f: impl FnOnce(R) -> AnyReply) -> Decision<AnyReply> {
    Decision {
        recs: d.recs,
        reply: f(d.reply),
    }
}

impl AnyCommand {
    /// Decides whichever command this is; its reply wrapped.
    pub fn decide(self, s: &State, ctx: &Ctx) -> Result<Decision<AnyReply>, DomainError> {
        let unit = |_: ()| AnyReply::Unit;
        Ok(match self {
            AnyCommand::AddMember(c) => map(c.decide(s, ctx)?, AnyReply::Bool),
            AnyCommand::CreateDirect(c) => map(c.decide(s, ctx)?, AnyReply::Created),
            AnyCommand::CreateGroup(c) => map(c.decide(s, ctx)?, AnyReply::Created),
            AnyCommand::Cursor(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::Delete(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::Edit(c) => map(c.decide(s, ctx)?, AnyReply::Edited),
            AnyCommand::LastSeen(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::LinkDevice(c) => map(c.decide(s, ctx)?, AnyReply::Linked),
            AnyCommand::PatchMe(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::Receipt(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::RemoveMember(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::RevokeDevice(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::Send(c) => map(c.decide(s, ctx)?, AnyReply::Sent),
            AnyCommand::SetRole(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::SetDisappearing(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::PutKeys(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::TakePrekeys(c) => map(c.decide(s, ctx)?, AnyReply::Bundles),
            AnyCommand::StoreMedia(c) => map(c.decide(s, ctx)?, AnyReply::MediaId),
            AnyCommand::ShareMedia(c) => map(c.decide(s, ctx)?, AnyReply::MediaRef),
            AnyCommand::EraseSender(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::DeleteAccount(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::SetPushToken(c) => map(c.decide(s, ctx)?, unit),
            AnyCommand::PushDone(c) => map(c.decide(s, ctx)?, unit),
        })
    }
}

/// Sends `work` to `shard`'s replica on `node` (not necessarily the
/// leader) and waits for its answer.
pub async fn call_node(
    r: &super::replicator::Replicator,
    node: chat_replication::NodeId,
    shard: u16,
    work: Work,
) -> ShardResult<AnyReply> {
    let body = encode_forward(&Forward { shard, work });
    let group = chat_replication::GroupId(u32::from(shard));
    let bytes = r.call(node, group, body).await?;
    match decode_answer(&bytes).map_err(unavailable)? {
        Answer::Done { reply, .. } => Ok(reply),
        Answer::Refused(e) => Err(e),
    }
}

pub fn encode_forward(f: &Forward) -> Vec<u8> {
    rkyv::to_bytes::<rkyv::rancor::Error>(f)
        .expect("a forward always serializes")
        .to_vec()
}

pub fn decode_forward(bytes: &[u8]) -> Result<Forward, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::new();
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<Forward, rkyv::rancor::Error>(&aligned).map_err(|e| e.to_string())
}

pub fn encode_answer(a: &Answer) -> Vec<u8> {
    rkyv::to_bytes::<rkyv::rancor::Error>(a)
        .expect("an answer always serializes")
        .to_vec()
}

pub fn decode_answer(bytes: &[u8]) -> Result<Answer, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::new();
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<Answer, rkyv::rancor::Error>(&aligned).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ids::ConvId;

    #[test]
    fn forwards_and_answers_round_trip_and_garbage_is_refused() {
        let f = Forward {
            shard: 3,
            work: Work::Command(AnyCommand::AddMember(AddMember {
                conv: ConvId(1),
                by: UserId(2),
                user: UserId(3),
            })),
        };
        let bytes = encode_forward(&f);
        assert_eq!(decode_forward(&bytes).unwrap(), f);
        assert!(decode_forward(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode_forward(&[0xff; 40]).is_err());
        let a = Answer::Refused(ShardError::Unavailable("x".into()));
        assert_eq!(decode_answer(&encode_answer(&a)).unwrap(), a);
    }
}
