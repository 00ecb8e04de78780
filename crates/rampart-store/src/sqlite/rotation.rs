//! `rampart keys rotate` beside a running server.
//!
//! With the server stopped, the command rewraps everything itself ([`super::convert`]). With
//! a server holding the store, only that server may wrap new data keys, so the work is split:
//! 1. the command writes the key file with a new current key followed by the old one, and
//!    sends the server SIGHUP (its pid is in `rampart.lock`, [`running_server`]);
//! 2. the server reloads the key text and adopts it ([`SqliteStore::adopt_master_keys`]):
//!    from then on it wraps with the new key, its writer thread rewraps at commit any data
//!    key wrapped before that (a message being received while it reloaded), and it rewraps
//!    `store.key`, which is the command's sign that the server has the new keys;
//! 3. the server rewraps the data keys of the rows already there in one pass in id order, a
//!    batch per writer job between other writes ([`SqliteStore::rewrap_data_keys`]);
//! 4. the command waits until `store.key` is the new key's and no data key is wrapped by
//!    another ([`SqliteStore::stale_wraps`]), then writes the key file with the new key alone
//!    and sends SIGHUP again, so the server forgets the old one.
//!
//! Each step survives kill -9 of either side: while the key file lists both keys, a server
//! started on it adopts them and resumes the pass, and the command run again waits for it.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, params};

use super::SqliteStore;
use super::writer::Effects;
use crate::keys::MasterKeys;
use crate::storekey::StoreKey;
use crate::{Result, StoreError};

/// Data keys rewrapped per writer job.
const BATCH: usize = 500;

impl SqliteStore {
    pub(super) fn data_dir(&self) -> &Path {
        self.inner.db_path.parent().unwrap_or(Path::new("."))
    }

    /// Makes `keys` the master keys of this open, encrypted store from now on, after checking
    /// they open it, and rewraps `store.key` under their current key. What a running server
    /// does when it reloads its key text, and at start while a rotation is unfinished.
    pub fn adopt_master_keys(&self, keys: Arc<MasterKeys>) -> Result<()> {
        let dir = self.data_dir().to_path_buf();
        if !self.is_encrypted() {
            return Err(StoreError::NotEncrypted(dir));
        }
        let marker = StoreKey::read(&dir)?.ok_or_else(|| StoreError::NotEncrypted(dir.clone()))?;
        marker.db_key(&keys)?;
        self.inner.keys.set(keys.clone());
        if marker.wrapped_by() != Some(keys.current().id) {
            marker.rewrapped(&keys)?.write(&dir)?;
        }
        Ok(())
    }

    /// Whether the store is encrypted (opened with a `store.key`, or converted since).
    pub fn is_encrypted(&self) -> bool {
        self.db_key().is_some()
    }

    pub(crate) fn db_key(&self) -> Option<Arc<super::encryption::DbKey>> {
        self.inner.db.read().expect("switch lock").clone()
    }

    /// Whether the store has these master keys already (the same ids in the same order; a key
    /// of the same id with other bytes would not have opened it).
    pub fn has_master_keys(&self, keys: &MasterKeys) -> bool {
        self.inner.keys.get().is_some_and(|k| k.ids() == keys.ids())
    }

    /// Rewraps under the current key every data key that an older one wrapped, in one pass
    /// over the blobs in id order, [`BATCH`] per writer job; returns how many. Rows committed
    /// after the pass began are current already (see [`super::insert_blob`]). A second call
    /// while a pass runs returns 0 at once.
    pub async fn rewrap_data_keys(&self) -> Result<u64> {
        if self.inner.rewrapping.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let result = self.rewrap_pass().await;
        self.inner.rewrapping.store(false, Ordering::Release);
        result
    }

    async fn rewrap_pass(&self) -> Result<u64> {
        let (mut after, mut total) = (String::new(), 0);
        loop {
            let (done, next) = self.write(move |conn, effects| rewrap_batch(conn, effects, &after)).await?;
            total += done;
            match next {
                Some(id) => after = id,
                None => return Ok(total),
            }
        }
    }

    /// How many data keys are not wrapped by the current master key.
    pub fn stale_wraps(&self) -> Result<u64> {
        let Some(keys) = self.inner.keys.get() else { return Ok(0) };
        let current = keys.current().id.to_be_bytes().to_vec();
        self.read_now(move |conn| {
            let n: i64 = conn.query_row(
                "SELECT count(*) FROM blobs WHERE dkey IS NOT NULL AND owner IS NULL AND substr(dkey, 1, 4) != ?1",
                [current],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        })
    }
}

/// One batch of the pass: the rows after `after`; returns how many were rewrapped and where
/// the pass goes on (None: the end).
fn rewrap_batch(conn: &Connection, effects: &mut Effects, after: &str) -> Result<(u64, Option<String>)> {
    let Some(keys) = effects.keys.get() else { return Ok((0, None)) };
    let rows: Vec<(String, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT id, dkey FROM blobs WHERE id > ?1 AND owner IS NULL ORDER BY id LIMIT ?2")?
        .query_map(params![after, BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut done = 0;
    for (id, wrapped) in &rows {
        let Some(wrapped) = wrapped else { continue };
        if let Some(new) = keys.rewrap(wrapped, id.as_bytes())? {
            conn.prepare_cached("UPDATE blobs SET dkey = ?1 WHERE id = ?2")?.execute(params![new, id])?;
            done += 1;
        }
    }
    let next = if rows.len() < BATCH { None } else { rows.last().map(|(id, _)| id.clone()) };
    Ok((done, next))
}

/// Records this process as the server holding `lock` (`rampart.lock`), for [`running_server`].
pub(crate) fn record_server(lock: &mut std::fs::File) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.rewind()?;
    writeln!(lock, "{}", std::process::id())
}

/// The pid of the server running on the store in `data_dir`, or None when no process holds
/// its lock. A holder that recorded no pid (a `store encrypt` or an offline `keys rotate`
/// empties the file) gives `LockHeld`.
pub fn running_server(data_dir: &Path) -> Result<Option<u32>> {
    let path = data_dir.join("rampart.lock");
    let mut file = match std::fs::File::options().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => return Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| StoreError::io(&path, e))?;
    text.trim().parse().map(Some).map_err(|_| StoreError::LockHeld(data_dir.to_path_buf()))
}
