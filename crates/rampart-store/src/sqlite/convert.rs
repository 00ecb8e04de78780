//! `rampart store encrypt` (a clear store converted in place) and `rampart keys rotate` (data
//! keys rewrapped under a new master key), both resumable and safe to kill at any instant.
//!
//! Both take the store's server lock ([`SqliteStore::open_for_server`]'s `rampart.lock`), so
//! they run with the server stopped. For the conversion that is forced: the database becomes
//! another file format (SQLCipher pages), which every process must switch to at one instant.
//! A rotation with the server running is the server's work instead ([`super::rotation`]).
//!
//! The conversion, step by step; each is either done or redone from the start on a rerun:
//! 1. `store.key` is written in state `encrypting` with a new database key (a rerun finds it);
//! 2. the database, if it does not open with that key yet, is exported by SQLCipher's
//!    `sqlcipher_export` into `rampart.db.encrypting`, fsynced and renamed over `rampart.db`
//!    (the clear one is first checkpointed out of its WAL, which is then removed);
//! 3. each message file not yet sealed is rewritten as `ID.sealed` beside it, a chunk at a
//!    time (an existing zstd frame is sealed as it is; a raw file is compressed first), and
//!    fsynced; a batch's rows then get codec 2 and their wrapped data key in one commit, and
//!    only then are the files renamed over their originals. A rerun first renames each
//!    `ID.sealed` whose row says sealed, and deletes the others (not committed);
//! 4. `store.key` goes to state `ready`, and the server may start.
//!
//! [`SqliteStore::open_for_server`]: super::SqliteStore::open_for_server

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::encryption::{self, DbKey, has_database};
use crate::blob::{blob_path, sync_dir};
use crate::codec::{self, CHUNK, Codec, SEALED};
use crate::keys::MasterKeys;
use crate::seal::DataKey;
use crate::storekey::{State, StoreKey};
use crate::{Result, StoreError};

/// Files sealed per commit.
const BATCH: usize = 64;
/// Data keys rewrapped per commit.
const REWRAP_BATCH: usize = 500;
const SEALED_SUFFIX: &str = ".sealed";
const EXPORT: &str = "rampart.db.encrypting";

/// What a conversion or rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConvertProgress {
    /// The database was exported to SQLCipher in this run.
    pub database: bool,
    /// Message files sealed, or data keys rewrapped.
    pub files: u64,
    /// The database key was rewrapped (a rotation).
    pub store_key: bool,
}

/// Takes the lock that a running server holds.
fn lock(data_dir: &Path) -> Result<File> {
    let path = data_dir.join("rampart.lock");
    let lock = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
    match lock.try_lock() {
        // No pid of a server in it while this holds the lock (`rotation::running_server`).
        Ok(()) => lock.set_len(0).map(|()| lock).map_err(|e| StoreError::io(&path, e)),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::LockHeld(data_dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
    }
}

pub(super) fn keyed(path: &Path, key: &DbKey) -> Result<Connection> {
    let conn = Connection::open(path)?;
    encryption::apply_key(&conn, Some(key))?;
    Ok(conn)
}

/// Converts the clear store in `data_dir` to an encrypted one under `keys`; see the module doc.
/// A store already encrypted is left as it is.
pub fn encrypt_store(data_dir: &Path, keys: &MasterKeys) -> Result<ConvertProgress> {
    let _lock = lock(data_dir)?;
    let marker = match StoreKey::read(data_dir)? {
        Some(m) if m.state == State::Ready => {
            m.db_key(keys)?;
            return Ok(ConvertProgress::default());
        }
        Some(m) => m,
        None if !has_database(data_dir) => return Err(StoreError::NotFound(format!("a store in {}", data_dir.display()))),
        None => {
            let (marker, _) = StoreKey::create(keys, State::Encrypting);
            marker.write(data_dir)?;
            marker
        }
    };
    let db_key = DbKey::of(&marker, keys)?;
    let mut progress = ConvertProgress { database: export_database(data_dir, &db_key)?, ..Default::default() };
    let conn = keyed(&data_dir.join("rampart.db"), &db_key)?;
    let root = data_dir.join("blobs");
    finish_renames(&conn, &root)?;
    loop {
        let done = seal_batch(&conn, &root, keys)?;
        if done == 0 {
            break;
        }
        progress.files += done as u64;
    }
    marker.with_state(State::Ready).write(data_dir)?;
    Ok(progress)
}

/// Step 2: exports the clear database unless it already opens with `key`. True if it did.
pub(super) fn export_database(data_dir: &Path, key: &DbKey) -> Result<bool> {
    let db = data_dir.join("rampart.db");
    if keyed(&db, key).is_ok() {
        return Ok(false);
    }
    let out = export_into(&Connection::open(&db)?, data_dir, key)?;
    put_in_place(&out, data_dir)?;
    Ok(true)
}

/// Exports the clear database of `clear` (the one connection to it) into a SQLCipher file
/// beside it, fsynced, and leaves the clear one out of WAL mode with its WAL gone, so that no
/// clear -wal is left beside the encrypted database. Returns the new file's path.
pub(super) fn export_into(clear: &Connection, data_dir: &Path, key: &DbKey) -> Result<PathBuf> {
    let out = data_dir.join(EXPORT);
    let _ = fs::remove_file(&out);
    // Every commit out of the WAL into the file first.
    clear.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let version: i64 = clear.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let attach = zeroize::Zeroizing::new(format!("ATTACH DATABASE ?1 AS enc KEY \"{}\"", key.literal()));
    clear.execute(&attach, [out.to_string_lossy()])?;
    clear.execute_batch(&key.settings("enc"))?;
    clear.query_row("SELECT sqlcipher_export('enc')", [], |_| Ok(()))?;
    clear.execute_batch(&format!("PRAGMA enc.user_version = {version}; DETACH DATABASE enc;"))?;
    // Leaving WAL mode needs every other connection closed: a process still holding one
    // would keep its clear -wal beside the encrypted file, so that is refused.
    let mode: String = clear.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        let _ = fs::remove_file(&out);
        return Err(StoreError::LockHeld(data_dir.to_path_buf()));
    }
    File::open(&out).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(&out, e))?;
    Ok(out)
}

/// Renames the export over `rampart.db`, removes what is left of the clear WAL, fsyncs.
pub(super) fn put_in_place(out: &Path, data_dir: &Path) -> Result<()> {
    let db = data_dir.join("rampart.db");
    fs::rename(out, &db).map_err(|e| StoreError::io(&db, e))?;
    for stale in ["rampart.db-wal", "rampart.db-shm"] {
        let _ = fs::remove_file(data_dir.join(stale));
    }
    sync_dir(data_dir)
}

pub(super) fn sealed_path(root: &Path, id: &str) -> PathBuf {
    let mut p = blob_path(root, id).into_os_string();
    p.push(SEALED_SUFFIX);
    PathBuf::from(p)
}

/// The rerun's first step: `ID.sealed` files whose row was committed replace their originals;
/// the others were never committed and go.
pub(super) fn finish_renames(conn: &Connection, root: &Path) -> Result<()> {
    let Ok(buckets) = fs::read_dir(root) else { return Ok(()) };
    let mut codec_of = conn.prepare("SELECT codec FROM blobs WHERE id = ?1")?;
    for bucket in buckets.flatten() {
        let Ok(files) = fs::read_dir(bucket.path()) else { continue };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(SEALED_SUFFIX) else { continue };
            let codec: Option<i64> = codec_of.query_row([id], |r| r.get(0)).optional()?;
            if codec == Some(SEALED) {
                fs::rename(file.path(), blob_path(root, id)).map_err(|e| StoreError::io(file.path(), e))?;
            } else {
                let _ = fs::remove_file(file.path());
            }
        }
        sync_dir(&bucket.path())?;
    }
    Ok(())
}

/// Step 3 for up to [`BATCH`] files; returns how many were sealed (0: none left).
fn seal_batch(conn: &Connection, root: &Path, keys: &MasterKeys) -> Result<usize> {
    let rows: Vec<(String, i64, i64)> = conn
        .prepare("SELECT id, size, codec FROM blobs WHERE codec != ?1 AND data IS NULL AND body IS NULL ORDER BY id LIMIT ?2")?
        .query_map(params![SEALED, BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut sealed = Vec::with_capacity(rows.len());
    for (id, size, code) in &rows {
        let key = DataKey::generate();
        let codec = Codec::from_code(*code, None).map_err(|e| StoreError::io(id, e))?;
        seal_file(&blob_path(root, id), &sealed_path(root, id), &codec, *size as u64, &key)?;
        sealed.push((id.clone(), *code, keys.wrap(key.bytes(), id.as_bytes())));
    }
    let txn = conn.unchecked_transaction()?;
    for (id, code, wrapped) in &sealed {
        txn.execute("UPDATE blobs SET codec = ?1, dkey = ?2 WHERE id = ?3 AND codec = ?4", params![SEALED, wrapped, id, code])?;
    }
    txn.commit()?;
    finish_renames(conn, root)?;
    Ok(rows.len())
}

/// Writes `from` (stored with `codec`, `size` bytes as received) sealed under `key` to `to`,
/// one chunk in memory at a time, and fsyncs it.
pub(super) fn seal_file(from: &Path, to: &Path, codec: &Codec, size: u64, key: &DataKey) -> Result<()> {
    let sealed = Codec::Sealed(std::sync::Arc::new(DataKey::from_bytes(zeroize::Zeroizing::new(*key.bytes()))));
    let count = (size as usize).div_ceil(CHUNK);
    let io_from = |e| StoreError::io(from, e);
    let mut input = std::io::BufReader::new(File::open(from).map_err(io_from)?);
    let mut output = File::create(to).map_err(|e| StoreError::io(to, e))?;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut out = Vec::new();
    for index in 0..count {
        buf.clear();
        out.clear();
        let last = index + 1 == count;
        match codec {
            // Already a zstd frame: seal it as it is.
            Codec::Zstd => {
                let mut prefix = [0u8; 4];
                input.read_exact(&mut prefix).map_err(io_from)?;
                let len = u32::from_le_bytes(prefix) as usize;
                if len > zstd::zstd_safe::compress_bound(CHUNK) {
                    return Err(StoreError::io(from, std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too long")));
                }
                buf.resize(len, 0);
                input.read_exact(&mut buf).map_err(io_from)?;
                key.seal(index, last, &mut buf).map_err(io_from)?;
                out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
                out.extend_from_slice(&buf);
            }
            _ => {
                let want = if last { size as usize - index * CHUNK } else { CHUNK };
                buf.resize(want, 0);
                input.read_exact(&mut buf).map_err(io_from)?;
                codec::encode_into(&sealed, index, &buf, last, &mut out).map_err(io_from)?;
            }
        }
        output.write_all(&out).map_err(|e| StoreError::io(to, e))?;
    }
    output.sync_all().map_err(|e| StoreError::io(to, e))
}

/// Rewraps, under the current key of `keys`, the database key and every data key that an
/// older key of `keys` wrapped (`rampart keys rotate`). Each commit is a batch; a rerun goes
/// on with what is left. The caller drops the old keys only after this returns.
pub fn rotate_keys(data_dir: &Path, keys: &MasterKeys) -> Result<ConvertProgress> {
    let _lock = lock(data_dir)?;
    let marker = StoreKey::read(data_dir)?.ok_or_else(|| StoreError::NotEncrypted(data_dir.to_path_buf()))?;
    if marker.state != State::Ready {
        return Err(StoreError::Converting(data_dir.to_path_buf()));
    }
    let current = keys.current().id;
    let mut progress = ConvertProgress::default();
    if marker.wrapped_by() != Some(current) {
        marker.rewrapped(keys)?.write(data_dir)?;
        progress.store_key = true;
    }
    let db_key = DbKey::of(&marker, keys)?;
    let conn = keyed(&data_dir.join("rampart.db"), &db_key)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let current_prefix = current.to_be_bytes().to_vec();
    loop {
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare("SELECT id, dkey FROM blobs WHERE dkey IS NOT NULL AND owner IS NULL AND substr(dkey, 1, 4) != ?1 LIMIT ?2")?
            .query_map(params![current_prefix, REWRAP_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            return Ok(progress);
        }
        let txn = conn.unchecked_transaction()?;
        for (id, wrapped) in &rows {
            if let Some(new) = keys.rewrap(wrapped, id.as_bytes())? {
                txn.execute("UPDATE blobs SET dkey = ?1 WHERE id = ?2", params![new, id])?;
            }
        }
        txn.commit()?;
        progress.files += rows.len() as u64;
    }
}

/// The export step alone, for the store's tests of an interrupted conversion.
#[cfg(test)]
pub(crate) fn tests_export(data_dir: &Path, key: &DbKey) -> bool {
    export_database(data_dir, key).unwrap()
}
