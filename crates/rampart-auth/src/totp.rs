//! The second factor for web logins: TOTP (RFC 6238 with SHA-1, 6 digits, 30-second steps,
//! one step either side accepted, each step usable once) and one-time recovery codes; plus
//! the random tokens the web hands out (session IDs, API tokens), stored only as hashes.
//!
//! The enrollment and check steps here are the one implementation the web API and the CLI
//! (`rampart user totp enroll|disable`) both call.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rampart_store::{AccountId, StoreError, WebStore};
use sha2::{Digest, Sha256};

/// Recovery codes handed out at enrollment.
pub const RECOVERY_CODES: usize = 10;
/// RFC 4226 §4 asks for at least 128 bits of secret and recommends 160.
const SECRET_BYTES: usize = 20;

fn totp(secret_b32: &str, address: &str, issuer: &str) -> Option<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).ok()?;
    // The builder's defaults are RFC 6238's: SHA-1, 6 digits, 30 s, skew 1.
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(address)
        .with_issuer(Some(issuer.replace(':', "")))
        .build()
        .ok()
}

/// A fresh shared secret, base32 as authenticator apps take it.
pub fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    totp_rs::Secret::from(bytes).to_base32()
}

/// The `otpauth://totp/...` URI an authenticator app scans.
pub fn uri(secret_b32: &str, address: &str, issuer: &str) -> Option<String> {
    totp(secret_b32, address, issuer)?.to_url().ok()
}

/// The time step a code is valid for at `now` (unix seconds), if any.
pub fn check_code(secret_b32: &str, code: &str, now: u64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret_b32, "", "x")?.check(code, now).map(|s| s as i64)
}

/// A random token of `bytes` bytes, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// The stored form of a high-entropy secret the client presents (session ID, API token,
/// recovery code): SHA-256, hex. A slow hash adds nothing when the secret is random.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Ten recovery codes: 12 lowercase letters in three groups (about 56 bits each).
fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let letters: Vec<char> = (0..12).map(|_| (b'a' + rand::random_range(0..26u8)) as char).collect();
            letters.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

fn recovery_hash(code: &str) -> String {
    let normal: String = code.trim().to_ascii_lowercase().chars().filter(|c| c.is_ascii_lowercase()).collect();
    token_hash(&format!("recovery:{normal}"))
}

/// Why a second factor was refused.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP is already set up; disable it first")]
    AlreadyEnrolled,
    #[error("no TOTP enrollment is waiting for confirmation")]
    NotPending,
    #[error("TOTP is not set up")]
    NotEnrolled,
    #[error("the code is wrong or was used already")]
    WrongCode,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TotpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(_) => TotpError::AlreadyEnrolled,
            other => TotpError::Store(other),
        }
    }
}

/// Starts an enrollment: a new secret waits for its first code ([`confirm`]).
pub async fn begin(store: &dyn WebStore, account: AccountId) -> Result<String, TotpError> {
    let secret = new_secret();
    store.totp_begin(account, &secret).await?;
    Ok(secret)
}

/// Confirms a pending enrollment with a current code; returns the recovery codes (shown once).
pub async fn confirm(store: &dyn WebStore, account: AccountId, code: &str, now: u64) -> Result<Vec<String>, TotpError> {
    let pending = store.totp(account).await?.filter(|t| !t.confirmed).ok_or(TotpError::NotPending)?;
    let step = check_code(&pending.secret, code, now).ok_or(TotpError::WrongCode)?;
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    if !store.totp_confirm(account, step, &hashes).await? {
        return Err(TotpError::NotPending);
    }
    Ok(codes)
}

/// Enrolls at once, without a first code (the CLI, run by the server's administrator):
/// returns the secret and the recovery codes.
pub async fn enroll_now(store: &dyn WebStore, account: AccountId) -> Result<(String, Vec<String>), TotpError> {
    let secret = begin(store, account).await?;
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    if !store.totp_confirm(account, 0, &hashes).await? {
        return Err(TotpError::NotPending);
    }
    Ok((secret, codes))
}

/// New recovery codes in place of the old ones (all of them stop working); shown once.
pub async fn renew_recovery_codes(store: &dyn WebStore, account: AccountId) -> Result<Vec<String>, TotpError> {
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    if !store.recovery_codes_replace(account, &hashes).await? {
        return Err(TotpError::NotEnrolled);
    }
    Ok(codes)
}

/// Checks a second factor at login: a 6-digit TOTP code (each step once) or a recovery code
/// (each once). False for anything else, including an account without confirmed TOTP.
pub async fn verify(store: &dyn WebStore, account: AccountId, code: &str, now: u64) -> Result<bool, StoreError> {
    let Some(t) = store.totp(account).await?.filter(|t| t.confirmed) else { return Ok(false) };
    if let Some(step) = check_code(&t.secret, code, now) {
        return store.totp_use_step(account, step).await;
    }
    if code.trim().len() >= 12 {
        return store.recovery_code_use(account, &recovery_hash(code)).await;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1 key "12345678901234567890", last six digits.
        let secret = totp_rs::Secret::from(b"12345678901234567890".to_vec()).to_base32();
        for (time, code) in [(59u64, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")] {
            assert_eq!(check_code(&secret, code, time), Some((time / 30) as i64), "{time}");
        }
        // One step either side, not two.
        assert_eq!(check_code(&secret, "081804", 1111111109 + 30), Some(1111111109 / 30));
        assert_eq!(check_code(&secret, "081804", 1111111109 + 60), None);
        assert_eq!(check_code(&secret, "08180", 1111111109), None);
        assert_eq!(check_code(&secret, "abcdef", 1111111109), None);
    }

    #[test]
    fn uri_names_issuer_and_account() {
        let u = uri(&new_secret(), "bob@example.test", "mx.example.test").unwrap();
        assert!(u.starts_with("otpauth://totp/mx.example.test:bob%40example.test?"), "{u}");
        assert!(u.contains("issuer=mx.example.test"), "{u}");
    }

    #[test]
    fn recovery_codes_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(recovery_hash(&codes[0]), recovery_hash(&codes[0].to_uppercase().replace('-', " ")));
        assert_ne!(recovery_hash(&codes[0]), recovery_hash(&codes[1]));
    }
}
