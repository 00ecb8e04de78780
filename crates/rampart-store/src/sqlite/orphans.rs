//! The start-up sweep of blob files that no row refers to.
//!
//! A blob file is renamed into its bucket inside its writer job, before the batch commits.
//! When the commit fails the writer removes it again, but a crash between the rename and the
//! commit (or a failed removal) leaves a file no `blobs` row names: it was never acknowledged,
//! and nothing would ever read or delete it. The lock holder sweeps such files when it starts.
//!
//! A CLI process may be delivering at that very moment (a DMARC report, a bounce), so its file
//! can sit in a bucket a moment before its commit. Files are judged by the creation time in
//! their ID, and only those older than [`GRACE_SECS`] are removed.

use std::fs;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::{Result, StoreError};

/// How old a file without a row must be before it counts as an orphan: far longer than any
/// delivery takes from its first byte to its commit.
const GRACE_SECS: i64 = 3600;

/// Removes orphaned blob files under `root`; returns how many.
pub fn sweep(conn: &Connection, root: &Path, now: i64) -> Result<usize> {
    let mut has_row = conn.prepare("SELECT 1 FROM blobs WHERE id = ?1")?;
    let mut removed = 0;
    for bucket in fs::read_dir(root).map_err(|e| StoreError::io(root, e))? {
        let bucket = bucket.map_err(|e| StoreError::io(root, e))?.path();
        if !bucket.is_dir() || !bucket.file_name().and_then(|n| n.to_str()).is_some_and(|n| is_hex(n, 6)) {
            continue; // `tmp`, or nothing of ours
        }
        for file in fs::read_dir(&bucket).map_err(|e| StoreError::io(&bucket, e))? {
            let path = file.map_err(|e| StoreError::io(&bucket, e))?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).filter(|n| is_hex(n, 28)) else { continue };
            let created = i64::from_str_radix(&id[..12], 16).map_or(now, |ms| ms / 1000);
            if created > now - GRACE_SECS || has_row.query_row([id], |_| Ok(())).optional()?.is_some() {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(event = "blob_remove_failed", path = %path.display(), error = %e),
            }
        }
    }
    if removed > 0 {
        tracing::info!(event = "blob_orphans_removed", count = removed);
    }
    Ok(removed)
}

/// `len` lowercase hex digits, as blob IDs and bucket names are written.
fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
