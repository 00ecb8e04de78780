//! `data_dir/store.key`: the mark of an encrypted store and its wrapped database key.
//!
//! The SQLite database of an encrypted store is a SQLCipher file keyed with a random database
//! key; this file holds that key wrapped by the master key ([`crate::keys`]). Unwrapping it is
//! the check that the master key given is the right one (the AEAD tag is the key check value),
//! and its presence is what says "this store is encrypted": a server without a key refuses
//! such a store, and a server with a key refuses a store without it (convert it first with
//! `rampart store encrypt`).
//!
//! `hmac` names the database's page HMAC: `sha256` for stores made since stop 25 (SHA-256 runs
//! on this hardware's SHA extensions at about three times SHA-512's speed, and every page the
//! database writes or reads in from the disk is authenticated), `sha512` — SQLCipher 4's
//! default — for earlier ones, which is what a file without the line means.
//!
//! `state` is `ready`, or `encrypting` while `rampart store encrypt` converts a clear store;
//! a store in that state opens only for the converter. The file is replaced atomically
//! (temporary file, fsync, rename, directory fsync), so a crash leaves the old or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::keys::{KEY_LEN, MasterKeys};
use crate::{Result, StoreError};

pub const FILE: &str = "store.key";
const HEADER: &str = "rampart-store-key 1";
/// What the database key's wrap is bound to.
const NAME: &[u8] = b"rampart database key";

/// The HMAC SQLCipher authenticates each database page with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageHmac {
    Sha256,
    /// SQLCipher 4's default; stores made before `hmac` was recorded.
    Sha512,
}

impl PageHmac {
    /// The value of SQLCipher's `cipher_hmac_algorithm` pragma.
    pub fn pragma(self) -> &'static str {
        match self {
            PageHmac::Sha256 => "HMAC_SHA256",
            PageHmac::Sha512 => "HMAC_SHA512",
        }
    }

    fn name(self) -> &'static str {
        match self {
            PageHmac::Sha256 => "sha256",
            PageHmac::Sha512 => "sha512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    /// A conversion of a clear store is under way.
    Encrypting,
}

/// The contents of `store.key`.
#[derive(Debug, Clone)]
pub struct StoreKey {
    pub state: State,
    pub hmac: PageHmac,
    wrapped: Vec<u8>,
}

fn malformed(path: &Path, what: &str) -> StoreError {
    StoreError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("malformed store key file: {what}")))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

impl StoreKey {
    /// A new database key wrapped by `keys`.
    pub fn create(keys: &MasterKeys, state: State) -> (StoreKey, Zeroizing<[u8; KEY_LEN]>) {
        let key = crate::keys::random_key();
        (StoreKey { state, hmac: PageHmac::Sha256, wrapped: keys.wrap(&key[..], NAME) }, key)
    }

    /// The file of `data_dir`, or None when the store is not encrypted.
    pub fn read(data_dir: &Path) -> Result<Option<StoreKey>> {
        let path = path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(malformed(&path, "unknown header"));
        }
        let (mut state, mut wrapped, mut hmac) = (None, None, PageHmac::Sha512);
        for line in lines {
            match line.split_once(' ') {
                Some(("state", "ready")) => state = Some(State::Ready),
                Some(("state", "encrypting")) => state = Some(State::Encrypting),
                Some(("hmac", "sha256")) => hmac = PageHmac::Sha256,
                Some(("hmac", "sha512")) => hmac = PageHmac::Sha512,
                Some(("db", hex)) => wrapped = unhex(hex),
                _ => return Err(malformed(&path, "unknown line")),
            }
        }
        match (state, wrapped) {
            (Some(state), Some(wrapped)) => Ok(Some(StoreKey { state, hmac, wrapped })),
            _ => Err(malformed(&path, "state or db missing")),
        }
    }

    /// The database key; fails with [`crate::keys::KeyError`] when `keys` is not the right.
    pub fn db_key(&self, keys: &MasterKeys) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        Ok(keys.unwrap(&self.wrapped, NAME)?)
    }

    /// The id of the master key that wraps the database key.
    pub fn wrapped_by(&self) -> Option<u32> {
        MasterKeys::wrapped_by(&self.wrapped)
    }

    /// The same database key wrapped by the current key of `keys` (a rotation).
    pub fn rewrapped(&self, keys: &MasterKeys) -> Result<StoreKey> {
        let key = self.db_key(keys)?;
        Ok(StoreKey { state: self.state, hmac: self.hmac, wrapped: keys.wrap(&key[..], NAME) })
    }

    pub fn with_state(&self, state: State) -> StoreKey {
        StoreKey { state, hmac: self.hmac, wrapped: self.wrapped.clone() }
    }

    /// Writes the file atomically.
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let path = path(data_dir);
        let tmp = data_dir.join(format!("{FILE}.tmp"));
        let state = match self.state {
            State::Ready => "ready",
            State::Encrypting => "encrypting",
        };
        let hex: String = self.wrapped.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("{HEADER}\nstate {state}\nhmac {}\ndb {hex}\n", self.hmac.name());
        let io = |e| StoreError::io(&tmp, e);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        crate::blob::sync_dir(data_dir)
    }
}
