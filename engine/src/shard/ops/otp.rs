//! One-time codes on the phone's home: request (rate limited per phone),
//! verify (expiry, tries, single use), then the machine links the device.
//! Codes are soft state: a restart only means asking for a new one.
//!
//! Lives on: the phone's home shard (also the account's home: accounts
//! are minted on their phone's shard).

use std::rc::Rc;

use crate::cluster::forward::{AnyReply, Work};
use crate::constants::{
    OTP_REQUESTS_PER_WINDOW_MAX, OTP_REQUEST_WINDOW_SECONDS, OTP_TRIES_MAX, OTP_TTL_SECONDS,
};
use crate::machine::cmd::link_device::{LinkDevice, Linked};
use crate::machine::error::DomainError;
use crate::machine::ids::{ConvId, Millis, Seq};
use crate::machine::token::{Secret, SECRET_BYTES};
use crate::shard::error::{unavailable, ShardResult};
use crate::shard::mesh::{Mesh, ShardOp};
use crate::shard::runner::Shard;
use crate::shard::soft::Otp;

/// Random bytes from the OS (the shell's job, never the machine's).
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
}

pub struct RequestCode {
    pub phone: String,
}

impl ShardOp for RequestCode {
    /// Seconds the code lives.
    type Reply = u64;

    async fn run(self, shard: Rc<Shard>, _mesh: Rc<dyn Mesh>) -> ShardResult<u64> {
        let phone = self.phone.clone();
        let code = match shard.on_leader(|| Work::OtpRequest { phone }).await {
            None => self.mint(&shard)?,
            Some(answer) => match answer? {
                AnyReply::OtpCode(code) => code,
                _ => return Err(unavailable("the leader answered another request")),
            },
        };
        // The code goes to this node's sink, whichever node holds it.
        super::super::otp_sink::deliver(&shard.config, self.phone, code);
        Ok(OTP_TTL_SECONDS)
    }
}

impl RequestCode {
    /// A new code for the phone, kept on this replica (the leader of the
    /// phone's home shard in a cluster): the rate limit, then the code.
    pub fn mint(&self, shard: &Shard) -> ShardResult<String> {
        let now = shard.clock.now();
        let window_ms = OTP_REQUEST_WINDOW_SECONDS * 1000;
        let code = {
            let mut soft = shard.soft.borrow_mut();
            let entry = soft
                .otp_requests
                .entry(self.phone.clone())
                .or_insert((now, 0));
            if now.0 >= entry.0 .0 + window_ms {
                *entry = (now, 0);
            }
            if entry.1 >= OTP_REQUESTS_PER_WINDOW_MAX {
                let retry_after_ms = entry.0 .0 + window_ms - now.0;
                return Err(DomainError::RateLimited { retry_after_ms }.into());
            }
            entry.1 += 1;
            let code = format!("{:06}", u64::from_le_bytes(random::<8>()) % 1_000_000);
            let otp = Otp {
                code: code.clone(),
                expires: now.plus_seconds(OTP_TTL_SECONDS),
                tries: 0,
            };
            soft.otp.insert(self.phone.clone(), otp);
            code
        };
        Ok(code)
    }
}

pub struct Verify {
    pub phone: String,
    pub code: String,
    pub device_name: String,
}

impl Verify {
    /// Checks the code: expiry, tries, equality without an early exit.
    fn check_code(&self, shard: &Shard, now: Millis) -> Result<(), DomainError> {
        let mut soft = shard.soft.borrow_mut();
        let Some(otp) = soft.otp.get_mut(&self.phone) else {
            return Err(DomainError::WrongCode);
        };
        if now >= otp.expires {
            soft.otp.remove(&self.phone);
            return Err(DomainError::WrongCode);
        }
        if otp.tries >= OTP_TRIES_MAX {
            let retry_after_ms = otp.expires.0.saturating_sub(now.0);
            return Err(DomainError::RateLimited { retry_after_ms });
        }
        otp.tries += 1;
        let differ = otp.code.len() != self.code.len()
            || otp
                .code
                .bytes()
                .zip(self.code.bytes())
                .fold(0, |a, (x, y)| a | (x ^ y))
                != 0;
        if differ {
            return Err(DomainError::WrongCode);
        }
        soft.otp.remove(&self.phone);
        Ok(())
    }
}

impl ShardOp for Verify {
    type Reply = Linked;

    async fn run(self, shard: Rc<Shard>, mesh: Rc<dyn Mesh>) -> ShardResult<Linked> {
        let work = || Work::OtpVerify {
            phone: self.phone.clone(),
            code: self.code.clone(),
            device_name: self.device_name.clone(),
        };
        if let Some(answer) = shard.on_leader(work).await {
            return match answer? {
                AnyReply::Linked(l) => Ok(l),
                _ => Err(unavailable("the leader answered another request")),
            };
        }
        self.check_code(&shard, shard.clock.now())?;
        let secret = Secret(random::<SECRET_BYTES>());
        // A new device starts at the end of each conversation.
        let cursors: Vec<(ConvId, Seq)> = shard
            .state()
            .phones
            .get(&self.phone)
            .and_then(|u| {
                shard
                    .soft
                    .borrow()
                    .pointers
                    .get(u)
                    .map(|p| p.values().map(|c| (c.conv, c.last_seq)).collect())
            })
            .unwrap_or_default();
        let cmd = LinkDevice {
            phone: self.phone,
            device_name: self.device_name,
            secret,
            cursors,
        };
        shard.submit(&mesh, cmd).await
    }
}
