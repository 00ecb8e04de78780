//! Authentication for Rampart.
//!
//! - Passwords are stored as argon2id PHC strings (RFC 9106) with OWASP's parameters by
//!   default; verification reads the parameters from the stored string, so raising them later
//!   keeps old hashes valid. SCRAM-SHA-256 keys (RFC 5803 form) are stored beside the hash.
//! - [`policy`] refuses weak passwords at `user add` and `user passwd`.
//! - [`sasl`] runs the mechanisms (PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, opt-in
//!   CRAM-MD5) for SMTP and IMAP; [`Authenticator`] checks them against the store.
//! - App passwords are random, stored hashed, and accepted wherever the password is.

mod authenticator;
pub mod policy;
pub mod sasl;
pub mod scram;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

pub use authenticator::{AuthSettings, Authenticator, Identity, new_app_password, secrets_for};
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

/// True when `password` matches the stored PHC string. A malformed stored string never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests;
