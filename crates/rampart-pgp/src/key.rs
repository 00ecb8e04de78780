//! A user's OpenPGP public key: read (armored or binary), checked before it is accepted
//! (self-signatures valid, not revoked, not expired, a user ID with the account's address, an
//! encryption-capable subkey), described for `rampart user pgp show`, and kept in binary form.

use std::io::Cursor;

use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::Signature;
use pgp::ser::Serialize;
use pgp::types::KeyDetails;
use pgp::packet::SignatureType;

/// Why a key is refused. The texts are shown to the administrator or the user as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not an OpenPGP public key (armored or binary): {0}")]
    Unreadable(String),
    #[error("this is a secret key: upload only the public key (gpg --export ADDRESS)")]
    Secret,
    #[error("the key's self-signatures do not verify: {0}")]
    BadSignatures(String),
    #[error("the key is revoked")]
    Revoked,
    #[error("the key expired on {0}")]
    Expired(String),
    #[error("the key has no valid encryption-capable subkey (not revoked, not expired)")]
    NoEncryptionSubkey,
    #[error("no user ID of the key names {0}")]
    NoMatchingUserId(String),
}

/// A parsed public key.
#[derive(Debug, Clone)]
pub struct UserKey {
    key: SignedPublicKey,
}

/// What `show` prints and the API returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Upper-case hex, no spaces.
    pub fingerprint: String,
    /// The primary key's algorithm (rPGP's name: RSA, EdDSALegacy, Ed25519...).
    pub algorithm: String,
    /// The algorithm of the subkey mail is encrypted to (ECDH, RSA, X25519...).
    pub encryption_algorithm: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; None when the key does not expire.
    pub expires: Option<i64>,
    pub user_ids: Vec<String>,
}

impl UserKey {
    /// Reads a key, armored or binary, and verifies its self-signatures; nothing else.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyError> {
        if looks_secret(bytes) {
            return Err(KeyError::Secret);
        }
        let (key, _) = SignedPublicKey::from_reader_single(Cursor::new(bytes)).map_err(|e| KeyError::Unreadable(e.to_string()))?;
        key.verify_bindings().map_err(|e| KeyError::BadSignatures(e.to_string()))?;
        Ok(UserKey { key })
    }

    /// [`UserKey::parse`], then everything a key must be to be accepted for `address` at
    /// `now` (unix seconds).
    pub fn check(bytes: &[u8], address: &str, now: i64) -> Result<Self, KeyError> {
        let key = UserKey::parse(bytes)?;
        if !key.key.details.revocation_signatures.is_empty() {
            return Err(KeyError::Revoked);
        }
        if let Some(expires) = key.expires()
            && expires <= now
        {
            return Err(KeyError::Expired(date(expires)));
        }
        if key.encryption_subkey(Some(now)).is_none() {
            return Err(KeyError::NoEncryptionSubkey);
        }
        if !key.user_ids().iter().any(|id| names(id, address)) {
            return Err(KeyError::NoMatchingUserId(address.to_string()));
        }
        Ok(key)
    }

    /// The key in binary form (what is stored and what WKD serves).
    pub fn to_binary(&self) -> Vec<u8> {
        // Serializing parsed packets into a Vec cannot fail but for a bug in rPGP.
        self.key.to_bytes().unwrap_or_default()
    }

    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            fingerprint: format!("{:X}", self.key.fingerprint()),
            algorithm: format!("{:?}", self.key.algorithm()),
            encryption_algorithm: self.encryption_subkey(None).map(|s| format!("{:?}", s.key.algorithm())).unwrap_or_default(),
            created: i64::from(self.key.created_at().as_secs()),
            expires: self.expires(),
            user_ids: self.user_ids(),
        }
    }

    /// The subkey mail is encrypted to: the newest encryption-capable, unrevoked subkey that
    /// has not expired at `now` (expiry ignored when None: delivery still encrypts to a key
    /// that expired since it was uploaded rather than store the mail in clear).
    pub fn encryption_subkey(&self, now: Option<i64>) -> Option<&SignedPublicSubKey> {
        self.key
            .public_subkeys
            .iter()
            .filter(|s| !s.signatures.iter().any(|sig| sig.typ() == Some(SignatureType::SubkeyRevocation)))
            .filter_map(|s| newest(&s.signatures, SignatureType::SubkeyBinding).map(|b| (s, b)))
            .filter(|(_, b)| b.key_flags().encrypt_comms() || b.key_flags().encrypt_storage())
            .filter(|(s, b)| match (now, b.key_expiration_time()) {
                (Some(now), Some(d)) if d.as_secs() != 0 => i64::from(s.key.created_at().as_secs()) + i64::from(d.as_secs()) > now,
                _ => true,
            })
            .max_by_key(|(s, _)| s.key.created_at().as_secs())
            .map(|(s, _)| s)
    }

    /// When the primary key expires: its newest self-signature's key expiration time.
    fn expires(&self) -> Option<i64> {
        let user_sigs = self.key.details.users.iter().flat_map(|u| u.signatures.iter());
        let newest_sig = user_sigs.chain(self.key.details.direct_signatures.iter()).max_by_key(|s| s.created().map(|t| t.as_secs()))?;
        let d = newest_sig.key_expiration_time().filter(|d| d.as_secs() != 0)?;
        Some(i64::from(self.key.created_at().as_secs()) + i64::from(d.as_secs()))
    }

    fn user_ids(&self) -> Vec<String> {
        self.key.details.users.iter().map(|u| String::from_utf8_lossy(u.id.id()).into_owned()).collect()
    }
}

/// The newest signature of type `typ`.
fn newest(sigs: &[Signature], typ: SignatureType) -> Option<&Signature> {
    sigs.iter().filter(|s| s.typ() == Some(typ)).max_by_key(|s| s.created().map(|t| t.as_secs()))
}

/// True when user ID `id` ("Name <addr>" or "addr") names `address`, case-insensitively.
fn names(id: &str, address: &str) -> bool {
    let inner = match (id.rfind('<'), id.rfind('>')) {
        (Some(open), Some(close)) if open < close => &id[open + 1..close],
        _ => id.trim(),
    };
    inner.trim().eq_ignore_ascii_case(address)
}

/// An armored secret key, or a binary one (a secret-key packet, tag 5, first).
fn looks_secret(bytes: &[u8]) -> bool {
    if memchr::memmem::find(bytes, b"-----BEGIN PGP PRIVATE KEY BLOCK-----").is_some() {
        return true;
    }
    match bytes.first() {
        // Old format: tag in bits 5..2; new format: tag in bits 5..0.
        Some(&b) if b & 0xC0 == 0x80 => (b >> 2) & 0x0F == 5,
        Some(&b) if b & 0xC0 == 0xC0 => b & 0x3F == 5,
        _ => false,
    }
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_name_addresses() {
        assert!(names("Joe Doe <Joe@Example.org>", "joe@example.org"));
        assert!(names("joe@example.org", "joe@example.org"));
        assert!(!names("Joe <joe@example.net>", "joe@example.org"));
        assert!(!names("joe@example.org.evil", "joe@example.org"));
    }

    #[test]
    fn secret_keys_are_told_apart() {
        assert!(looks_secret(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"));
        assert!(looks_secret(&[0xC5, 0x01]));
        assert!(looks_secret(&[0x95, 0x01]));
        assert!(!looks_secret(&[0xC6, 0x01]));
        assert!(!looks_secret(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
    }

    const NOW: i64 = 1_795_000_000; // 2026-11-18

    #[test]
    fn keys_made_by_gnupg_are_checked() {
        let alice = UserKey::check(include_bytes!("../testdata/alice.pub.asc"), "Alice@Example.org", NOW).unwrap();
        let info = alice.info();
        assert_eq!(info.fingerprint.len(), 40);
        assert_eq!(info.user_ids, ["Alice <alice@example.org>"]);
        assert_eq!(info.expires, None);
        assert!(!info.encryption_algorithm.is_empty());
        // The binary form reads back as the same key.
        let binary = alice.to_binary();
        assert_eq!(UserKey::parse(&binary).unwrap().info(), info);

        let other = UserKey::check(include_bytes!("../testdata/alice.pub.asc"), "bob@example.org", NOW);
        assert!(matches!(other, Err(KeyError::NoMatchingUserId(_))));
        let sign_only = UserKey::check(include_bytes!("../testdata/bob-signonly.pub.asc"), "bob@example.org", NOW);
        assert!(matches!(sign_only, Err(KeyError::NoEncryptionSubkey)), "{sign_only:?}");
        let expired = UserKey::check(include_bytes!("../testdata/dave-expired.pub.asc"), "dave@example.org", NOW);
        assert!(matches!(expired, Err(KeyError::Expired(_))), "{expired:?}");
        let secret = UserKey::check(include_bytes!("../testdata/alice.sec.asc"), "alice@example.org", NOW);
        assert!(matches!(secret, Err(KeyError::Secret)));
    }

    #[test]
    fn garbage_is_unreadable() {
        assert!(matches!(UserKey::parse(b"hello"), Err(KeyError::Unreadable(_))));
    }
}
