//! Per-user encryption (`rampart user encryption enable ADDRESS`, issue 16): the keys.
//!
//! A user in per-user mode has an X25519 key pair. Delivery needs only the public key: each
//! message's random data key ([`crate::seal`]) is sealed to it (ECIES: an ephemeral X25519
//! key, HKDF-SHA256 over the shared secret and both public keys, XChaCha20-Poly1305 with the
//! blob id as associated data — [`seal_to`]). Reading needs the secret key, which the store
//! keeps only wrapped ([`Wrap`]): once under each *unlock key* the user has —
//!
//! - the password: the unlock key is the SCRAM-SHA-256 ClientKey (RFC 5802 §3,
//!   `HMAC(SaltedPassword, "Client Key")`). A PLAIN/LOGIN login computes it from the password
//!   and the stored salt and iteration count; a SCRAM login recovers it as
//!   `ClientProof XOR ClientSignature`. The server stores only `StoredKey = H(ClientKey)`, so
//!   it never holds what unwraps the key; one wrap serves both kinds of login.
//! - each app password, and the recovery code shown once: random, high-entropy strings, whose
//!   unlock key is HKDF-SHA256 of the text.
//!
//! The wrapping key is HKDF-SHA256(unlock key, a random per-wrap salt). No extra argon2 pass:
//! a thief of the database can already test password guesses against StoredKey at the cost
//! of the SCRAM iterations, and the other unlock keys are random; argon2 here would add a
//! login's worth of memory and time without raising what a guess costs.
//!
//! Everything secret is zeroized when dropped. No primitive is hand-written: x25519-dalek,
//! hkdf/sha2 and chacha20poly1305 (RustCrypto) do the work.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2_010::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::keys::{KEY_LEN, random_key};

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const SALT_LEN: usize = 16;
/// Bytes of a data key sealed to a public key: ephemeral public key, nonce, sealed key.
pub const SEALED_LEN: usize = KEY_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;
/// Bytes of a wrapped secret key: salt, nonce, sealed key.
pub const WRAP_LEN: usize = SALT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Why a per-user key could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserKeyError {
    /// The unlock key is not the one that made the wrap (a wrong or changed password), or
    /// the data was damaged.
    #[error("the user key does not open with this secret")]
    Mismatch,
    #[error("malformed per-user key data")]
    Malformed,
}

/// A 32-byte secret that opens one wrap of a user's secret key.
pub type UnlockKey = Zeroizing<[u8; KEY_LEN]>;

/// A user's secret key, held only while the user has sessions.
pub struct SecretKey {
    secret: StaticSecret,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new random key pair.
    pub fn generate() -> SecretKey {
        let bytes = random_key();
        SecretKey { secret: StaticSecret::from(*bytes) }
    }

    pub fn public(&self) -> [u8; KEY_LEN] {
        PublicKey::from(&self.secret).to_bytes()
    }

    /// This key wrapped under `unlock`; `name` (what the wrap is for: "password", "app 7",
    /// "recovery", with the account) is authenticated with it.
    pub fn wrap(&self, unlock: &[u8; KEY_LEN], name: &[u8]) -> Vec<u8> {
        let mut salt = [0u8; SALT_LEN];
        rand::fill(&mut salt[..]);
        let key = wrapping_key(unlock, &salt);
        let mut out = Vec::with_capacity(WRAP_LEN);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&seal(&key, &self.secret.to_bytes(), name));
        out
    }

    /// The key inside `wrap`, made by [`wrap`](Self::wrap) with the same unlock key and name.
    pub fn unwrap(wrap: &[u8], unlock: &[u8; KEY_LEN], name: &[u8]) -> Result<SecretKey, UserKeyError> {
        if wrap.len() != WRAP_LEN {
            return Err(UserKeyError::Malformed);
        }
        let key = wrapping_key(unlock, &wrap[..SALT_LEN]);
        let bytes = open(&key, &wrap[SALT_LEN..], name)?;
        Ok(SecretKey { secret: StaticSecret::from(*bytes) })
    }

    /// The data key that [`seal_to`] sealed to this key's public half.
    pub fn open_sealed(&self, sealed: &[u8], name: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, UserKeyError> {
        if sealed.len() != SEALED_LEN {
            return Err(UserKeyError::Malformed);
        }
        let ephemeral: [u8; KEY_LEN] = sealed[..KEY_LEN].try_into().map_err(|_| UserKeyError::Malformed)?;
        let ephemeral = PublicKey::from(ephemeral);
        let shared = Zeroizing::new(self.secret.diffie_hellman(&ephemeral).to_bytes());
        let key = sealing_key(&shared, ephemeral.as_bytes(), &self.public());
        open(&key, &sealed[KEY_LEN..], name)
    }
}

/// `data_key` sealed to `public` (a user's key); `name` is authenticated with it.
pub fn seal_to(public: &[u8; KEY_LEN], data_key: &[u8; KEY_LEN], name: &[u8]) -> Vec<u8> {
    let ephemeral = SecretKey::generate();
    let ephemeral_public = ephemeral.public();
    let shared = Zeroizing::new(ephemeral.secret.diffie_hellman(&PublicKey::from(*public)).to_bytes());
    let key = sealing_key(&shared, &ephemeral_public, public);
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(&ephemeral_public);
    out.extend_from_slice(&seal(&key, data_key, name));
    out
}

/// The unlock key of a random secret text (an app password, the recovery code).
pub fn unlock_from_text(text: &str) -> UnlockKey {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(b"rampart per-user unlock"), text.trim().as_bytes())
        .expand(b"text", &mut out[..])
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// A new recovery code: 160 random bits as eight groups of five base32 letters.
pub fn recovery_code() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = Zeroizing::new([0u8; 40]);
    rand::fill(&mut bytes[..]);
    let mut code = Zeroizing::new(String::with_capacity(47));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        code.push(ALPHABET[(b & 31) as usize] as char);
    }
    code
}

fn wrapping_key(unlock: &[u8; KEY_LEN], salt: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(salt), unlock).expand(b"rampart per-user key wrap", &mut out[..]).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

fn sealing_key(shared: &[u8; KEY_LEN], ephemeral: &[u8; KEY_LEN], public: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut info = Vec::with_capacity(2 * KEY_LEN + 24);
    info.extend_from_slice(b"rampart per-user seal");
    info.extend_from_slice(ephemeral);
    info.extend_from_slice(public);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(None, shared).expand(&info, &mut out[..]).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// nonce || XChaCha20-Poly1305(key, secret, aad = name).
fn seal(key: &[u8; KEY_LEN], secret: &[u8; KEY_LEN], name: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce[..]);
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: name })
        .expect("XChaCha20-Poly1305 encrypts 32 bytes");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; KEY_LEN], data: &[u8], name: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, UserKeyError> {
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(key.into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: name })
            .map_err(|_| UserKeyError::Mismatch)?,
    );
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(plain.get(..KEY_LEN).ok_or(UserKeyError::Malformed)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_rewrap() {
        let key = SecretKey::generate();
        let password = random_key();
        let wrap = key.wrap(&password, b"1 password");
        let opened = SecretKey::unwrap(&wrap, &password, b"1 password").unwrap();
        assert_eq!(opened.public(), key.public());
        assert_eq!(SecretKey::unwrap(&wrap, &random_key(), b"1 password").unwrap_err(), UserKeyError::Mismatch);
        assert_eq!(SecretKey::unwrap(&wrap, &password, b"2 password").unwrap_err(), UserKeyError::Mismatch);
        // A password change: the key opened with the old one is wrapped under the new one.
        let new = random_key();
        let rewrapped = opened.wrap(&new, b"1 password");
        assert_eq!(SecretKey::unwrap(&rewrapped, &new, b"1 password").unwrap().public(), key.public());
        assert!(SecretKey::unwrap(&rewrapped, &password, b"1 password").is_err());
        // The recovery code's and an app password's wraps.
        let code = recovery_code();
        assert_eq!(code.len(), 47);
        let wrap = key.wrap(&unlock_from_text(&code), b"1 recovery");
        assert_eq!(SecretKey::unwrap(&wrap, &unlock_from_text(&code), b"1 recovery").unwrap().public(), key.public());
        assert!(SecretKey::unwrap(&wrap, &unlock_from_text(&recovery_code()), b"1 recovery").is_err());
    }

    #[test]
    fn sealed_data_keys_open_only_with_the_secret_key() {
        let key = SecretKey::generate();
        let data_key = random_key();
        let sealed = seal_to(&key.public(), &data_key, b"blob1");
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(*key.open_sealed(&sealed, b"blob1").unwrap(), *data_key);
        assert!(key.open_sealed(&sealed, b"blob2").is_err(), "bound to its blob");
        assert!(SecretKey::generate().open_sealed(&sealed, b"blob1").is_err(), "another user's key");
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        assert!(key.open_sealed(&bad, b"blob1").is_err());
    }
}
