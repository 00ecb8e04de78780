//! Credentials. Passwords are stored only as argon2id PHC strings (RFC 9106), with the
//! parameters OWASP recommends as the minimum for argon2id: 19 MiB of memory, 2 passes,
//! 1 lane. Verification reads the parameters from the stored string, so raising them later
//! keeps old hashes valid.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("{0}")]
    Policy(String),
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
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery staple", HashParams::default()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapler", &h));
        assert!(!verify_password("x", "not a hash"));
        let again = hash_password("correct horse battery staple", HashParams::default()).unwrap();
        assert_ne!(h, again, "salts must differ");
    }
}
