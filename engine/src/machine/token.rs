//! Bearer tokens: `{user}.{device}.{secret}` with a 128-bit random secret.
//! The user's home shard keeps only the SHA-256 of the secret.
//!
//! Lives on: every core (pure functions). The secret's randomness comes
//! from the shell (`Secret`), never from inside the machine.

use sha2::{Digest, Sha256};

use crate::machine::ids::{DeviceId, UserId};

pub const SECRET_BYTES: usize = 16;

/// Random bytes of a new token, drawn by the shell.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_BYTES]);

/// The token made of `secret`, and the hash to store.
pub fn mint(user: UserId, device: DeviceId, secret: Secret) -> (String, [u8; 32]) {
    let secret = secret.0;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash_secret(&hex);
    (format!("{user}.{device}.{hex}"), hash)
}

pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The parts of a well-formed token (not yet checked against the store).
pub fn parse(token: &str) -> Option<(UserId, DeviceId, &str)> {
    let mut parts = token.splitn(3, '.');
    let user = UserId::parse(parts.next()?)?;
    let device = DeviceId::parse(parts.next()?)?;
    let secret = parts.next()?;
    if secret.len() != SECRET_BYTES * 2 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((user, device, secret))
}

/// Compares without an early exit.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_match() {
        let (token, hash) = mint(UserId(5), DeviceId(2), Secret([7; SECRET_BYTES]));
        let (u, d, secret) = parse(&token).unwrap();
        assert_eq!((u, d), (UserId(5), DeviceId(2)));
        assert!(same_hash(&hash_secret(secret), &hash));
        assert!(parse("u5.d2.zz").is_none());
        assert!(parse("garbage").is_none());
    }
}
