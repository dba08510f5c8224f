//! `POST /v1/conversations` kind direct: the one conversation of a pair
//! (its id is a hash of the pair), made on first ask.

use crate::machine::ctx::Ctx;
use crate::machine::error::DomainError;
use crate::machine::ids::{direct_conv_id, home_shard, ConvId, UserId};
use crate::machine::records::{ConvKind, Rec, Role};
use crate::machine::state::State;

use super::Decision;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateDirect {
    pub a: UserId,
    pub b: UserId,
}

/// The conversation, and whether this call made it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub conv: ConvId,
    pub created: bool,
}

impl CreateDirect {
    pub fn decide(self, state: &State, ctx: &Ctx) -> Result<Decision<Created>, DomainError> {
        let conv = direct_conv_id(self.a, self.b);
        assert_eq!(
            home_shard(conv.0, ctx.shards),
            ctx.shard,
            "decided on the conversation's home"
        );
        if state.convs.contains_key(&conv) {
            return Ok(Decision::nothing(Created {
                conv,
                created: false,
            }));
        }
        let rec = Rec::ConvCreated {
            conv,
            kind: ConvKind::Direct,
            name: String::new(),
            members: vec![(self.a, Role::Member), (self.b, Role::Member)],
            ts: ctx.now,
        };
        Ok(Decision::write(
            vec![rec],
            Created {
                conv,
                created: true,
            },
        ))
    }
}
