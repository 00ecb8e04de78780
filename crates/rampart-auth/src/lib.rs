//! Authentication for Rampart.
//!
//! - Passwords are stored as argon2id PHC strings (RFC 9106) with OWASP's parameters by
//!   default; verification reads the parameters from the stored string, so raising them later
//!   keeps old hashes valid. SCRAM-SHA-256 keys (RFC 5803 form) are stored beside the hash.
//! - [`policy`] refuses weak passwords at `user add` and `user passwd`.
//! - [`sasl`] runs the mechanisms (PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, opt-in
//!   CRAM-MD5) for SMTP and IMAP; [`Authenticator`] checks them against the store.
//! - App passwords are random, stored hashed, and accepted wherever the password is.
//! - [`cache`] remembers verified passwords for a while, so reconnecting clients skip argon2.
//! - [`totp`] is the web login's second factor (TOTP and recovery codes) and its tokens.

mod authenticator;
pub mod cache;
pub mod policy;
mod work;
pub mod sasl;
pub mod scram;
mod sodium;
pub mod totp;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, Version};

pub use authenticator::{AuthSettings, Authenticator, Identity, Unlock, UnlockWrap, new_app_password, secrets_for};
pub use policy::PasswordPolicy;
pub use sasl::{Exchange, Failure, Mechanism, Step};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        HashParams { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

fn hasher(p: HashParams) -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &str, params: HashParams) -> Result<String, AuthError> {
    let hash = hasher(params)?.hash_password(password.as_bytes()).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// The cost a stored PHC string was hashed with, when it is a well-formed argon2id hash
/// (`rampart audit` compares it with the configured cost); `None` for anything else.
pub fn argon2id_cost(stored: &str) -> Option<HashParams> {
    let parsed = PasswordHash::new(stored).ok()?;
    if Algorithm::try_from(parsed.algorithm.as_str()).ok()? != Algorithm::Argon2id {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    Some(HashParams { memory_kib: params.m_cost(), iterations: params.t_cost(), parallelism: params.p_cost() })
}

/// True when `password` matches the stored PHC string. A malformed stored string never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    verify_password_in(password, stored, &mut Vec::new())
}

/// [`verify_password`] with a caller-kept work area, grown to the hash's memory cost as needed.
/// Reusing it spares the allocator and the kernel a fresh `memory_kib` of zeroed pages per
/// login, which cost a fifth of a login's CPU. argon2's first pass overwrites every block, so
/// what the area held before does not matter.
///
/// Hashes libsodium can check (argon2id or argon2i, version 19, one lane, no secret key or
/// associated data: every hash Rampart makes with the default settings) go to libsodium,
/// which is faster; the others to the argon2 crate.
pub(crate) fn verify_password_in(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if matches!(algorithm, Algorithm::Argon2id | Algorithm::Argon2i)
        && version == Version::V0x13
        && params.p_cost() == 1
        && params.keyid().is_empty()
        && params.data().is_empty()
        && let Some(matched) = sodium::verify(password, stored)
    {
        return matched;
    }
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks]).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    argon2::password_hash::phc::Output::new(&out).is_ok_and(|o| &o == expected)
}

#[cfg(test)]
mod tests;
