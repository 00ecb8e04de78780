//! Master keys of an encrypted store (`[store.encryption] mode = "server"`), and key wrapping.
//!
//! A master key never encrypts mail itself: it wraps (XChaCha20-Poly1305, a random 24-byte
//! nonce, the wrapped thing's name as associated data) the random keys that do — the
//! database key (SQLCipher, [`crate::storekey`]) and each message file's data key
//! ([`crate::seal`]). Rotating it therefore rewraps 32-byte keys, never re-encrypts mail.
//!
//! The key text (a `key_file`, an environment variable or a systemd credential) has one key a
//! line, `rampart-master-key ID HEX`, the current one first; keys after it are older ones kept
//! only while `rampart keys rotate` rewraps what they wrapped. `#` starts a comment.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Bytes of every key: master, database and data keys.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const ID_LEN: usize = 4;
/// The first word of every key line.
const LINE_TAG: &str = "rampart-master-key";

/// Why a master key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the master key text is malformed: {0}")]
    Malformed(String),
    /// What was wrapped names a key that is not in the key text.
    #[error("the master key does not open this store: it needs key {0:08x}, which the key given lacks")]
    Unknown(u32),
    /// The tag did not verify: another key of the same id, or damaged data.
    #[error("the master key does not open this store (a wrong key, or a damaged key wrap)")]
    Mismatch,
}

/// One master key and its id.
pub struct MasterKey {
    pub id: u32,
    key: Zeroizing<[u8; KEY_LEN]>,
}

/// The master keys a process holds: the current one first.
pub struct MasterKeys {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| format!("{:08x}", k.id)).collect();
        f.debug_struct("MasterKeys").field("ids", &ids).finish()
    }
}

/// A fresh random key (the OS generator through `rand`).
pub fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(&mut key[..]);
    key
}

fn new_id(avoid: &[MasterKey]) -> u32 {
    loop {
        let id = rand::random::<u32>();
        if id != 0 && !avoid.iter().any(|k| k.id == id) {
            return id;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    let out = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?;
    Some(Zeroizing::new(out))
}

impl MasterKeys {
    /// One new random key.
    pub fn generate() -> MasterKeys {
        MasterKeys { keys: vec![MasterKey { id: new_id(&[]), key: random_key() }] }
    }

    pub fn parse(text: &str) -> Result<MasterKeys, KeyError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [LINE_TAG, id, key] = words[..] else {
                return Err(KeyError::Malformed(format!("a line is not `{LINE_TAG} ID HEX`")));
            };
            let id = u32::from_str_radix(id, 16).map_err(|_| KeyError::Malformed("a key id is not 8 hex digits".into()))?;
            let bytes = unhex(key).filter(|b| b.len() == KEY_LEN).ok_or_else(|| KeyError::Malformed(format!("key {id:08x} is not {} hex digits", KEY_LEN * 2)))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyError::Malformed(format!("key {id:08x} appears twice")));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&bytes);
            keys.push(MasterKey { id, key });
        }
        if keys.is_empty() {
            return Err(KeyError::Malformed("no key in it".into()));
        }
        Ok(MasterKeys { keys })
    }

    /// The key text, current key first (what a `key_file` holds).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = String::from("# Rampart master key: keep it secret, keep a copy apart from the data; without it the mail is lost.\n");
        for k in &self.keys {
            out.push_str(&format!("{LINE_TAG} {:08x} {}\n", k.id, hex(&k.key[..])));
        }
        Zeroizing::new(out)
    }

    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// Whether older keys are still listed (a rotation not finished).
    pub fn has_old(&self) -> bool {
        self.keys.len() > 1
    }

    /// These keys with a new random key put first (the start of a rotation).
    pub fn with_new_current(&self) -> MasterKeys {
        let mut keys = vec![MasterKey { id: new_id(&self.keys), key: random_key() }];
        keys.extend(self.keys.iter().map(|k| MasterKey { id: k.id, key: k.key.clone() }));
        MasterKeys { keys }
    }

    /// Only the current key (the end of a rotation).
    pub fn current_only(&self) -> MasterKeys {
        let k = self.current();
        MasterKeys { keys: vec![MasterKey { id: k.id, key: k.key.clone() }] }
    }

    /// `secret` wrapped under the current key: id (4 bytes, big-endian), nonce, ciphertext.
    /// `name` (what is wrapped: a blob id, "database") is authenticated with it, so a wrap
    /// cannot be moved to another row.
    pub fn wrap(&self, secret: &[u8], name: &[u8]) -> Vec<u8> {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let cipher = XChaCha20Poly1305::new((&*key.key).into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: name })
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut out = Vec::with_capacity(ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The id of the key that made `wrapped`.
    pub fn wrapped_by(wrapped: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(wrapped.get(..ID_LEN)?.try_into().ok()?))
    }

    /// The key inside `wrapped` (made by [`wrap`](Self::wrap) with the same `name`).
    pub fn unwrap(&self, wrapped: &[u8], name: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        if wrapped.len() != ID_LEN + NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(KeyError::Mismatch);
        }
        let id = Self::wrapped_by(wrapped).ok_or(KeyError::Mismatch)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or(KeyError::Unknown(id))?;
        let cipher = XChaCha20Poly1305::new((&*key.key).into());
        let nonce = XNonce::from_slice(&wrapped[ID_LEN..ID_LEN + NONCE_LEN]);
        let plain = Zeroizing::new(
            cipher.decrypt(nonce, Payload { msg: &wrapped[ID_LEN + NONCE_LEN..], aad: name }).map_err(|_| KeyError::Mismatch)?,
        );
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(&plain);
        Ok(out)
    }
}

impl MasterKeys {
    /// `wrapped` as the current key would have wrapped it; None when the current key already
    /// did (nothing to do). What a rotation does to each wrap.
    pub fn rewrap(&self, wrapped: &[u8], name: &[u8]) -> Result<Option<Vec<u8>>, KeyError> {
        if Self::wrapped_by(wrapped) == Some(self.current().id) {
            return Ok(None);
        }
        Ok(Some(self.wrap(&self.unwrap(wrapped, name)?[..], name)))
    }

    /// The ids of the keys, current first: two sets of keys with the same ids are the same
    /// keys as far as a store can tell (a key of the same id but other bytes fails to unwrap).
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }
}

/// `key` as SQLCipher's raw-key literal (`x'…'`): a raw key skips its PBKDF2, which would
/// otherwise cost every connection opened a quarter of a second.
pub(crate) fn sqlcipher_literal(key: &[u8; KEY_LEN]) -> Zeroizing<String> {
    Zeroizing::new(format!("x'{}'", hex(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_wrapping() {
        let keys = MasterKeys::generate();
        let again = MasterKeys::parse(&keys.to_text()).unwrap();
        let secret = random_key();
        let wrapped = keys.wrap(&secret[..], b"blob1");
        assert_eq!(*again.unwrap(&wrapped, b"blob1").unwrap(), *secret);
        // Bound to its name, and to its key.
        assert!(matches!(again.unwrap(&wrapped, b"blob2"), Err(KeyError::Mismatch)));
        assert!(matches!(MasterKeys::generate().unwrap(&wrapped, b"blob1"), Err(KeyError::Unknown(_))));
        let mut bad = wrapped.clone();
        bad[40] ^= 1;
        assert!(matches!(again.unwrap(&bad, b"blob1"), Err(KeyError::Mismatch)));
        // A rotation: the new key wraps, the old one still unwraps.
        let rotated = keys.with_new_current();
        assert!(rotated.has_old());
        assert_eq!(*rotated.unwrap(&wrapped, b"blob1").unwrap(), *secret);
        let rewrapped = rotated.wrap(&secret[..], b"blob1");
        assert_eq!(MasterKeys::wrapped_by(&rewrapped), Some(rotated.current().id));
        assert_eq!(*rotated.current_only().unwrap(&rewrapped, b"blob1").unwrap(), *secret);
    }

    #[test]
    fn malformed_texts() {
        for text in ["", "# only a comment\n", "rampart-master-key 1 abcd\n", "other 00000001 00\n"] {
            assert!(matches!(MasterKeys::parse(text), Err(KeyError::Malformed(_))), "{text:?}");
        }
    }
}
