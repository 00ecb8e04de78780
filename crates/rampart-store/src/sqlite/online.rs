//! `rampart store encrypt` beside a running server: the server converts its own clear store.
//!
//! With the server stopped, the command converts the store itself ([`super::convert`]). With
//! a server holding it, the server must, since the database changes file format under every
//! connection it has:
//! 1. the command writes `store.key` in state `encrypting` with a new database key (from then
//!    on other commands refuse to open the store) and sends the server SIGHUP;
//! 2. the server, reloading a config with `mode = "server"` and finding that `store.key`,
//!    switches ([`SqliteStore::encrypt_online`]): it takes the switch lock exclusively (no
//!    read in flight; new ones wait), closes its idle reader connections, and has the writer
//!    thread, between two batches, export its database to SQLCipher, put the export in
//!    place and continue on a keyed connection; then it holds the keys, so messages stored
//!    from now on are sealed. Mail keeps arriving meanwhile: its commits wait for the switch;
//! 3. it seals each message file that is still clear as `ID.sealed`, then — holding the
//!    switch lock exclusively, so that no reader pairs a row with a file of the other kind
//!    (readers open the file with its row, see `stored_body`) — commits the batch's rows and
//!    renames the files. One pass in id order, then a sweep for files that writers begun
//!    before the switch committed clear behind the pass;
//! 4. `store.key` goes to state `ready`, which the command waits for.
//!
//! Killed at any point, the server started again on `store.key` in state `encrypting` (and
//! the key in its config) finishes what step 2 did not (the export, with the store's lock
//! held, before serving), renames the sealed files whose rows were committed, and goes on
//! with step 3 in the background ([`prepare_resume`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::{Connection, params};

use super::SqliteStore;
use super::convert::{self, finish_renames, seal_file, sealed_path};
use super::encryption::DbKey;
use crate::blob::{blob_path, sync_dir};
use crate::codec::{Codec, SEALED};
use crate::keys::MasterKeys;
use crate::seal::DataKey;
use crate::storekey::{State, StoreKey};
use crate::{Result, StoreError};

/// Rows looked at per read of the pass, and files sealed per commit.
const SCAN: usize = 500;
const BATCH: usize = 64;

/// A file to seal: blob id, size as received, codec code.
type Clear = (String, i64, i64);

/// At a server's start, before the store opens: when `store.key` says a conversion is under
/// way (and `keys` are given), exports the database if that was not done yet and renames the
/// sealed files whose rows were committed. True when a conversion is under way.
pub(crate) fn prepare_resume(data_dir: &Path, keys: Option<&MasterKeys>) -> Result<bool> {
    let (Some(keys), Some(marker)) = (keys, StoreKey::read(data_dir)?) else { return Ok(false) };
    if marker.state != State::Encrypting {
        return Ok(false);
    }
    let db_key = DbKey::of(&marker, keys)?;
    convert::export_database(data_dir, &db_key)?;
    finish_renames(&convert::keyed(&data_dir.join("rampart.db"), &db_key)?, &data_dir.join("blobs"))?;
    Ok(true)
}

impl SqliteStore {
    /// Whether `store.key` says a conversion to an encrypted store is under way: a server
    /// that opened such a store finishes it with [`encrypt_online`](Self::encrypt_online).
    pub fn conversion_requested(&self) -> bool {
        StoreKey::read(self.data_dir()).is_ok_and(|m| m.is_some_and(|m| m.state == State::Encrypting))
    }

    /// Converts this store, held by a running server, to an encrypted one under `keys` (see
    /// the module doc); returns how many files it sealed. Needs `store.key` in state
    /// `encrypting` (written by `rampart store encrypt`); a second call while one runs
    /// returns None at once.
    pub async fn encrypt_online(&self, keys: Arc<MasterKeys>) -> Result<Option<u64>> {
        if self.inner.converting.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let result = self.convert_online(keys).await;
        self.inner.converting.store(false, Ordering::Release);
        result.map(Some)
    }

    async fn convert_online(&self, keys: Arc<MasterKeys>) -> Result<u64> {
        let dir = self.data_dir().to_path_buf();
        let marker = match StoreKey::read(&dir)? {
            Some(m) if m.state == State::Encrypting => m,
            Some(_) => return Ok(0),
            None => return Err(StoreError::NotEncrypted(dir)),
        };
        if !self.is_encrypted() {
            let db_key = Arc::new(DbKey::of(&marker, &keys)?);
            let store = self.clone();
            let keys = keys.clone();
            tokio::task::spawn_blocking(move || store.switch_database(db_key, keys)).await.map_err(|_| StoreError::Closed)??;
            tracing::info!(event = "store_encrypt_switched");
        }
        let sealed = self.seal_clear_files(&keys).await?;
        marker.with_state(State::Ready).write(&dir)?;
        Ok(sealed)
    }

    /// Step 2, on a blocking thread: the database file replaced under the switch lock.
    fn switch_database(&self, db_key: Arc<DbKey>, keys: Arc<MasterKeys>) -> Result<()> {
        let mut db = self.inner.db.write().expect("switch lock");
        // Idle readers of the clear file; none is in use while the lock is held.
        self.inner.readers.lock().expect("reader pool lock").clear();
        self.inner.point_readers.lock().expect("reader pool lock").clear();
        let (path, key) = (self.inner.db_path.clone(), db_key.clone());
        self.inner.writer.exclusive_blocking(Box::new(move |conn| switch_writer(conn, &path, &key)))?;
        *db = Some(db_key);
        self.inner.keys.set(keys);
        Ok(())
    }

    /// Step 3: every clear message file sealed; returns how many.
    async fn seal_clear_files(&self, keys: &Arc<MasterKeys>) -> Result<u64> {
        let (mut after, mut total) = (String::new(), 0);
        loop {
            let from = after.clone();
            let (files, last) = self.read(move |conn| clear_files_after(conn, &from)).await?;
            for batch in files.chunks(BATCH) {
                total += self.seal_batch(batch.to_vec(), keys.clone()).await?;
            }
            match last {
                Some(id) => after = id,
                None => break,
            }
        }
        // Writers begun before the switch store clear files behind the pass, until the last
        // of them has committed (or given up): then one sweep finds every one left.
        loop {
            let done = Arc::strong_count(&self.inner.clear_writers) == 1;
            if done {
                // The last reference went with its writer job, before that batch's commit: a
                // job sent now commits in that batch or a later one, so after it the rows are
                // there to be found.
                self.write(|_, _| Ok(())).await?;
            }
            let files = self.read(|conn| clear_files(conn, BATCH)).await?;
            if files.is_empty() && done {
                return Ok(total);
            }
            if files.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            total += self.seal_batch(files, keys.clone()).await?;
        }
    }

    /// Seals `files` beside their originals, then commits their rows and renames them under
    /// the switch lock. Returns how many were sealed (a file expunged meanwhile is not).
    async fn seal_batch(&self, files: Vec<Clear>, keys: Arc<MasterKeys>) -> Result<u64> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let root = &store.inner.blob_root;
            let mut sealed = Vec::with_capacity(files.len());
            for (id, size, code) in files {
                let key = DataKey::generate();
                let codec = Codec::from_code(code, None).map_err(|e| StoreError::io(&id, e))?;
                match seal_file(&blob_path(root, &id), &sealed_path(root, &id), &codec, size as u64, &key) {
                    Ok(()) => sealed.push((id.clone(), code, keys.wrap(key.bytes(), id.as_bytes()))),
                    // Expunged since it was listed.
                    Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            store.commit_sealed(sealed)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Commits the sealed rows and puts the files in place, holding the switch lock.
    fn commit_sealed(&self, sealed: Vec<(String, i64, Vec<u8>)>) -> Result<u64> {
        let root = self.inner.blob_root.clone();
        let _db = self.inner.db.write().expect("switch lock");
        let rows = sealed.clone();
        let updated: Vec<bool> = tokio::runtime::Handle::current().block_on(self.write(move |conn, _| {
            let mut stmt = conn.prepare_cached("UPDATE blobs SET codec = ?1, dkey = ?2 WHERE id = ?3 AND codec = ?4")?;
            rows.iter().map(|(id, code, wrapped)| Ok(stmt.execute(params![SEALED, wrapped, id, code])? == 1)).collect()
        }))?;
        let mut dirs = std::collections::BTreeSet::new();
        let mut done = 0;
        for ((id, _, _), updated) in sealed.iter().zip(updated) {
            let from = sealed_path(&root, id);
            if updated {
                let to = blob_path(&root, id);
                std::fs::rename(&from, &to).map_err(|e| StoreError::io(&from, e))?;
                dirs.extend(to.parent().map(Path::to_path_buf));
                done += 1;
            } else {
                // Its message was deleted meanwhile: the row is gone, so is the file.
                let _ = std::fs::remove_file(&from);
            }
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        Ok(done)
    }
}

/// The writer's part of the switch: its clear database exported, the export put in place,
/// and the writer continuing on a keyed connection. When the export fails the clear database
/// is still the one in place and the writer goes on with it.
fn switch_writer(conn: &mut Connection, db: &Path, key: &DbKey) -> Result<()> {
    let dir = db.parent().unwrap_or(Path::new("."));
    let out = match convert::export_into(conn, dir, key) {
        Ok(out) => out,
        Err(e) => {
            // Back to WAL if it had left it (the export failed after that).
            let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()));
            return Err(e);
        }
    };
    // Until the keyed connection opens, one that refuses every write: were the writer left
    // on an in-memory database, commits would "succeed" and acknowledge mail kept nowhere.
    let placeholder = Connection::open_in_memory()?;
    placeholder.execute_batch("PRAGMA query_only = 1")?;
    drop(std::mem::replace(conn, placeholder));
    convert::put_in_place(&out, dir)?;
    *conn = super::open_connection(db, Some(key))?;
    Ok(())
}

/// Clear message files after `after` in id order (up to [`SCAN`] rows looked at), and the
/// last id looked at when there may be more.
fn clear_files_after(conn: &Connection, after: &str) -> Result<(Vec<Clear>, Option<String>)> {
    let rows: Vec<(String, i64, i64, bool)> = conn
        .prepare_cached("SELECT id, size, codec, data IS NULL AND body IS NULL FROM blobs WHERE id > ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![after, SCAN as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let last = if rows.len() < SCAN { None } else { rows.last().map(|r| r.0.clone()) };
    let files = rows.into_iter().filter(|(_, _, codec, file)| *file && *codec != SEALED).map(|(id, size, codec, _)| (id, size, codec)).collect();
    Ok((files, last))
}

/// Up to `n` clear message files, wherever they are.
fn clear_files(conn: &Connection, n: usize) -> Result<Vec<Clear>> {
    Ok(conn
        .prepare_cached("SELECT id, size, codec FROM blobs WHERE codec != ?1 AND data IS NULL AND body IS NULL LIMIT ?2")?
        .query_map(params![SEALED, n as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}
