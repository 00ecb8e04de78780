//! How an encrypted store opens (`[store.encryption] mode = "server"`).
//!
//! The whole database — summaries, the full-text index, small messages kept in rows, the
//! queue, the quarantine, and its WAL — is a SQLCipher file (AES-256 per page with an HMAC),
//! keyed with the database key that `store.key` holds wrapped ([`crate::storekey`]). Message
//! files are sealed chunk by chunk with their own data keys ([`crate::seal`]).
//!
//! Which keys a store opens with: those given to [`SqliteStore::open_with_keys`], else those
//! the process set once with [`set_master_keys`] (the binary does, from its config, before
//! any command opens the store), else none. The rules (checked by [`resolve`]):
//! - no keys and no `store.key`: a clear store, as before;
//! - keys and `store.key`: the key must unwrap the database key, else the open fails;
//! - `store.key` but no keys: refused (never start in clear over encrypted data);
//! - keys and an existing database without `store.key`: refused until `rampart store encrypt`
//!   converts it; a new store is created encrypted;
//! - `store.key` in state `encrypting`: opens only for the converter.
//!
//! [`SqliteStore::open_with_keys`]: super::SqliteStore::open_with_keys

use std::path::Path;
use std::sync::{Arc, RwLock};

use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::keys::{MasterKeys, sqlcipher_literal};
use crate::storekey::{PageHmac, State, StoreKey};
use crate::{Result, StoreError};

static PROCESS_KEYS: RwLock<Option<Arc<MasterKeys>>> = RwLock::new(None);

/// The master keys every later [`SqliteStore::open`](super::SqliteStore::open) in this process
/// uses (None: the store must be clear).
pub fn set_master_keys(keys: Option<Arc<MasterKeys>>) {
    *PROCESS_KEYS.write().expect("keys lock") = keys;
}

pub(crate) fn process_keys() -> Option<Arc<MasterKeys>> {
    PROCESS_KEYS.read().expect("keys lock").clone()
}

/// The master keys one open store uses now. A running server replaces them when it reloads its
/// key text during `rampart keys rotate` ([`super::rotation`]); readers and blob writers take
/// the keys of the moment, and the writer thread rewraps, at commit, a data key that an older
/// key wrapped ([`super::insert_blob`]).
#[derive(Clone, Default)]
pub(crate) struct KeyCell(Arc<RwLock<Option<Arc<MasterKeys>>>>);

impl KeyCell {
    pub(crate) fn new(keys: Option<Arc<MasterKeys>>) -> KeyCell {
        KeyCell(Arc::new(RwLock::new(keys)))
    }

    pub(crate) fn get(&self) -> Option<Arc<MasterKeys>> {
        self.0.read().expect("keys lock").clone()
    }

    pub(crate) fn set(&self, keys: Arc<MasterKeys>) {
        *self.0.write().expect("keys lock") = Some(keys);
    }
}

/// What every connection to the database is keyed with: SQLCipher's raw-key literal and the
/// store's page HMAC.
pub(crate) struct DbKey {
    literal: Zeroizing<String>,
    hmac: PageHmac,
}

impl DbKey {
    /// The database key `marker` wraps, unwrapped with `keys`.
    pub(crate) fn of(marker: &StoreKey, keys: &MasterKeys) -> Result<DbKey> {
        Ok(DbKey { literal: sqlcipher_literal(&*marker.db_key(keys)?), hmac: marker.hmac })
    }

    /// The key clause of an `ATTACH ... KEY` statement.
    pub(crate) fn literal(&self) -> &str {
        self.literal.as_str()
    }

    /// The statement that sets the page HMAC of `schema` (`main` or an attached name); it
    /// must follow the key and come before the first read.
    pub(crate) fn settings(&self, schema: &str) -> String {
        format!("PRAGMA {schema}.cipher_hmac_algorithm = {};", self.hmac.pragma())
    }
}

/// Whether a database file with content exists in `data_dir`.
pub(crate) fn has_database(data_dir: &Path) -> bool {
    std::fs::metadata(data_dir.join("rampart.db")).is_ok_and(|m| m.len() > 0)
}

/// The database key of the store in `data_dir` opened with `keys`, or None for a clear store;
/// see the module doc for the rules. A new encrypted store gets its `store.key` here.
/// `converting`: the caller is `rampart store encrypt`, which may open a store mid-conversion.
pub(crate) fn resolve(data_dir: &Path, keys: Option<&MasterKeys>, converting: bool) -> Result<Option<DbKey>> {
    let marker = StoreKey::read(data_dir)?;
    match (marker, keys) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(StoreError::Encrypted(data_dir.to_path_buf())),
        (None, Some(keys)) => {
            if has_database(data_dir) {
                return Err(StoreError::NotEncrypted(data_dir.to_path_buf()));
            }
            std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
            let (marker, key) = StoreKey::create(keys, State::Ready);
            marker.write(data_dir)?;
            Ok(Some(DbKey { literal: sqlcipher_literal(&key), hmac: marker.hmac }))
        }
        (Some(marker), Some(keys)) => {
            if marker.state == State::Encrypting && !converting {
                return Err(StoreError::Converting(data_dir.to_path_buf()));
            }
            Ok(Some(DbKey::of(&marker, keys)?))
        }
    }
}

/// The database key of the database file `db` when a `store.key` lies beside it (a data
/// directory, or a backup of one), unwrapped with the process's keys; None for a clear one.
pub(crate) fn key_beside(db: &Path) -> Result<Option<DbKey>> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let Some(marker) = StoreKey::read(dir)? else { return Ok(None) };
    let keys = process_keys().ok_or_else(|| StoreError::Encrypted(dir.to_path_buf()))?;
    Ok(Some(DbKey::of(&marker, &keys)?))
}

/// Keys a new connection; must be its first statement. A wrong key shows at the first read,
/// so it reads the schema at once to fail here with a clear error rather than later.
pub(crate) fn apply_key(conn: &Connection, key: Option<&DbKey>) -> Result<()> {
    let Some(key) = key else { return Ok(()) };
    // SQLCipher's crypto is the system libcrypto. Initialized by SQLCipher itself, libcrypto
    // would register its atexit cleanup, which frees its state while another thread may still
    // be closing a connection (a crash at exit, seen about once in ten CLI runs); initialized
    // first through the openssl crate, it registers none (OPENSSL_INIT_NO_ATEXIT).
    openssl::init();
    // SQLCipher would also print its own lines about a wrong key to stderr; the error returned
    // here says it once.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    conn.execute_batch(&Zeroizing::new(format!("PRAGMA key = \"{}\";", key.literal())))?;
    conn.execute_batch(&key.settings("main"))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
        .map_err(|_| StoreError::Key(crate::keys::KeyError::Mismatch))?;
    Ok(())
}
