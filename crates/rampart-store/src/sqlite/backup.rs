//! A consistent copy of a running store: the database through SQLite's online backup API and
//! the blob files its rows name.
//!
//! The server keeps writing while a backup runs, and deletes the file of a message whose last
//! reference went away. A database snapshot taken at one instant names files that may be gone
//! by the time they are copied, so the files are pinned first:
//!
//! 1. every blob file is hard-linked into a staging directory inside `blobs/` (same file
//!    system, no data copied; the server's later unlink only drops its own link);
//! 2. the database is copied with the backup API in one step, which reads it in one read
//!    transaction — in WAL mode that never blocks the writer;
//! 3. files the snapshot names that appeared after step 1 are linked into staging too. One that
//!    is gone by then was created and released inside the few seconds between the steps; the
//!    whole snapshot is taken again (at most [`ATTEMPTS`] times).
//!
//! An encrypted store's snapshot is encrypted with the same database key (both connections
//! are keyed); the caller copies `store.key`, which holds that key wrapped, beside it, and the
//! backup opens with the same master key.
//!
//! The caller copies from the staged links (see [`Snapshot::files`]); dropping the
//! [`Snapshot`] removes the staging directory. Its name (`backup-PID`) is not a bucket name,
//! so the start-up orphan sweep never touches it; a staging directory left by a backup that
//! died is removed by the next backup.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::encryption::{apply_key, key_beside};
use crate::blob::blob_path;
use crate::{Result, StoreError};

/// How many times a snapshot is retaken when a file vanished between its steps.
const ATTEMPTS: usize = 3;
const STAGING_PREFIX: &str = "backup-";

/// A database copy plus the blob files it names, pinned until this is dropped.
pub struct Snapshot {
    staging: PathBuf,
    ids: Vec<String>,
}

impl Snapshot {
    /// `(path relative to the data directory, file to copy it from)` for every blob file the
    /// snapshot's database names.
    pub fn files(&self) -> Vec<(PathBuf, PathBuf)> {
        self.ids
            .iter()
            .map(|id| (blob_path(Path::new("blobs"), id), blob_path(&self.staging, id)))
            .collect()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// Copies the store under `data_dir` into the database file `dest_db` (which must not exist)
/// and pins the blob files it names. Safe while a server runs on `data_dir`.
pub fn snapshot(data_dir: &Path, dest_db: &Path) -> Result<Snapshot> {
    let live = data_dir.join("blobs");
    remove_stale_staging(&live);
    let staging = live.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    for attempt in 1..=ATTEMPTS {
        let _ = fs::remove_dir_all(&staging);
        link_all(&live, &staging)?;
        let _ = fs::remove_file(dest_db);
        copy_database(&data_dir.join("rampart.db"), dest_db, key_beside(&data_dir.join("rampart.db"))?.as_ref())?;
        let ids = file_blob_ids(dest_db)?;
        let mut vanished = 0;
        for id in &ids {
            let pinned = blob_path(&staging, id);
            if pinned.exists() {
                continue;
            }
            match link(&blob_path(&live, id), &pinned) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => vanished += 1,
                Err(e) => return Err(StoreError::io(&pinned, e)),
            }
        }
        if vanished == 0 {
            return Ok(Snapshot { staging, ids });
        }
        tracing::info!(event = "backup_retry", attempt, vanished, "files released during the snapshot");
    }
    let _ = fs::remove_dir_all(&staging);
    Err(StoreError::io(&live, std::io::Error::other("blob files kept vanishing during the snapshot; try again")))
}

/// The IDs of the blobs stored as files in the database at `db`: not inline in their row
/// (`data`) nor in `blob_bodies` (`body`, since migration 9; a backup taken before has no such
/// column).
pub fn file_blob_ids(db: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    apply_key(&conn, key_beside(db)?.as_ref())?;
    let bodies: bool = conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('blobs') WHERE name = 'body'", [], |r| r.get(0))?;
    let sql = if bodies {
        "SELECT id FROM blobs WHERE data IS NULL AND body IS NULL ORDER BY id"
    } else {
        "SELECT id FROM blobs WHERE data IS NULL ORDER BY id"
    };
    let mut stmt = conn.prepare(sql)?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

/// `PRAGMA integrity_check` of the database at `db`: `None` when it is sound, else SQLite's
/// findings.
pub fn integrity_problems(db: &Path) -> Result<Option<String>> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    apply_key(&conn, key_beside(db)?.as_ref())?;
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let lines = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(if lines == ["ok"] { None } else { Some(lines.join("; ")) })
}

/// All pages in one step: one read transaction, so the copy is one instant of the database
/// (stepping in pieces would restart whenever the server commits).
/// `key`: an encrypted store's database key, which the copy is encrypted with too.
fn copy_database(src: &Path, dest: &Path, key: Option<&super::encryption::DbKey>) -> Result<()> {
    let from = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    apply_key(&from, key)?;
    let mut to = Connection::open(dest)?;
    apply_key(&to, key)?;
    {
        let backup = Backup::new(&from, &mut to)?;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                // The writer holds a lock only for a moment (WAL); wait and go on.
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
    // One file, readable without the -wal beside it.
    to.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Hard-links every file in the bucket directories under `live` into `staging`.
fn link_all(live: &Path, staging: &Path) -> Result<()> {
    fs::create_dir_all(staging).map_err(|e| StoreError::io(staging, e))?;
    let Ok(buckets) = fs::read_dir(live) else { return Ok(()) }; // no blob files yet
    for bucket in buckets {
        let bucket = bucket.map_err(|e| StoreError::io(live, e))?.path();
        let Some(name) = bucket.file_name().and_then(|n| n.to_str()) else { continue };
        if !bucket.is_dir() || name.len() != 6 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue; // `tmp`, a staging directory, nothing of ours
        }
        for file in fs::read_dir(&bucket).map_err(|e| StoreError::io(&bucket, e))? {
            let path = file.map_err(|e| StoreError::io(&bucket, e))?.path();
            let target = staging.join(name).join(path.file_name().unwrap_or_default());
            match link(&path, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // released meanwhile
                Err(e) => return Err(StoreError::io(&target, e)),
            }
        }
    }
    Ok(())
}

fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::hard_link(from, to)
}

/// Staging directories of backups whose process is gone.
fn remove_stale_staging(live: &Path) {
    let Ok(entries) = fs::read_dir(live) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(STAGING_PREFIX)) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    #[test]
    fn a_snapshot_of_an_empty_store_is_a_sound_database() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        drop(SqliteStore::open(&data).unwrap());
        let dest = dir.path().join("copy.db");
        let snap = snapshot(&data, &dest).unwrap();
        assert!(snap.files().is_empty());
        assert_eq!(integrity_problems(&dest).unwrap(), None);
        let staging = snap.staging.clone();
        assert!(staging.exists());
        drop(snap);
        assert!(!staging.exists(), "dropping the snapshot removes its links");
    }

    #[test]
    fn stale_staging_of_a_dead_process_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("backup-4000000000");
        fs::create_dir_all(stale.join("0123ab")).unwrap();
        let bucket = dir.path().join("0123ab");
        fs::create_dir_all(&bucket).unwrap();
        remove_stale_staging(dir.path());
        assert!(!stale.exists());
        assert!(bucket.exists(), "buckets are never touched");
    }
}
