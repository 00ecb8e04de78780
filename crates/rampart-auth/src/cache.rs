//! The verified-credential cache (as Dovecot's auth cache): after argon2 accepted a password,
//! a keyed hash of it is remembered for the user for a while, so a client that reconnects
//! every few minutes costs an HMAC instead of an argon2 run.
//!
//! - Memory only; the key is random per process, so nothing useful outlives the process.
//! - An entry holds HMAC-SHA256(key, address ‖ 0 ‖ password) and a digest of the stored hash
//!   that matched (the account's or one app password's, with its id). A hit needs both: the
//!   password's HMAC and the stored hash as it is *now*. The caller reads the credentials from
//!   the store on every login anyway, so the stored hash is the credential version: a password
//!   change writes a new hash (a new salt), a revoked app password is no longer among the
//!   credentials, a removed account has none. Any of them, even made by the CLI in another
//!   process, misses the cache at the next login, with no message between the processes.
//! - Only successes go in; a wrong password never matches an entry and goes to argon2.
//! - Bounded: at most [`MAX_ENTRIES`]; expired entries are dropped first, then arbitrary ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Most entries kept (about 150 bytes each): a storm of more distinct users than this only
/// makes some of them pay argon2 again.
pub const MAX_ENTRIES: usize = 50_000;

/// Which stored secret a cached password matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    Account,
    /// The app password with this id.
    App(i64),
}

struct Entry {
    expires: Instant,
    matched: Matched,
    /// SHA-256 of the PHC string that verified the password.
    stored: [u8; 32],
}

pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn digest(stored_hash: &str) -> [u8; 32] {
    Sha256::digest(stored_hash.as_bytes()).into()
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> CredentialCache {
        CredentialCache { key: rand::random(), ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn tag(&self, address: &str, password: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(address.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The secret this password verified against before, if that is still the stored hash
    /// (`current` gives the stored PHC string of a secret, None once it is gone).
    pub fn lookup<'a>(&self, address: &str, password: &str, current: impl Fn(Matched) -> Option<&'a str>) -> Option<Matched> {
        let tag = self.tag(address, password);
        let mut entries = self.entries.lock().expect("credential cache lock");
        let entry = entries.get(&tag)?;
        let fresh = entry.expires > Instant::now();
        // Constant time is not needed here: the tag is already a keyed hash of the password.
        if fresh && current(entry.matched).is_some_and(|h| digest(h) == entry.stored) {
            return Some(entry.matched);
        }
        entries.remove(&tag);
        None
    }

    /// Remembers a password argon2 just accepted against `stored_hash`.
    pub fn insert(&self, address: &str, password: &str, matched: Matched, stored_hash: &str) {
        let tag = self.tag(address, password);
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&tag) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_ENTRIES {
                let drop: Vec<[u8; 32]> = entries.keys().take(MAX_ENTRIES / 10).copied().collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(tag, Entry { expires: now + self.ttl, matched, stored: digest(stored_hash) });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("credential cache lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_needs_the_same_password_and_the_same_stored_hash() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        cache.insert("bob@example.test", "pw one", Matched::Account, "$hash1");
        let account = |h: &'static str| move |m: Matched| (m == Matched::Account).then_some(h);
        assert_eq!(cache.lookup("bob@example.test", "pw one", account("$hash1")), Some(Matched::Account));
        assert_eq!(cache.lookup("bob@example.test", "pw two", account("$hash1")), None);
        assert_eq!(cache.lookup("eve@example.test", "pw one", account("$hash1")), None);
        // The password was changed: the stored hash differs and the entry is dropped.
        assert_eq!(cache.lookup("bob@example.test", "pw one", account("$hash2")), None);
        assert_eq!(cache.len(), 0);
        cache.insert("bob@example.test", "app", Matched::App(7), "$app7");
        assert_eq!(cache.lookup("bob@example.test", "app", |m| (m == Matched::App(7)).then_some("$app7")), Some(Matched::App(7)));
        // Revoked: the app password is no longer among the credentials.
        assert_eq!(cache.lookup("bob@example.test", "app", |_| None), None);
    }

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let cache = CredentialCache::new(Duration::ZERO);
        cache.insert("bob@example.test", "pw", Matched::Account, "$h");
        assert_eq!(cache.lookup("bob@example.test", "pw", |_| Some("$h")), None);
        let cache = CredentialCache::new(Duration::from_secs(60));
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(&format!("u{i}@example.test"), "pw", Matched::Account, "$h");
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
