//! `rampart backup DIR`, `rampart backup verify DIR`, `rampart restore DIR`.
//!
//! A backup is a directory: `rampart.db` (a snapshot taken with SQLite's online backup API
//! while the server runs), `blobs/BUCKET/ID` (the message files that snapshot names) and
//! `manifest.json` listing every file with its size and SHA-256. It holds the data directory
//! only — accounts, mailboxes, the queue, the quarantine, DKIM keys; the configuration file and
//! `tls/` are the administrator's to keep. The consistency argument is in
//! `rampart_store::backup`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sha2::{Digest, Sha256};

use rampart_store::backup;

const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "rampart-backup-1";
const DB: &str = "rampart.db";

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// Directory to write the backup into (created; must be empty). Safe while the server runs.
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check a backup: every file against the manifest's size and SHA-256, the database's
    /// integrity, and that every message file the database names is there.
    Verify { dir: PathBuf },
}

/// One file of a backup as the manifest lists it.
#[derive(Debug)]
struct Entry {
    path: String,
    size: u64,
    sha256: String,
}

pub fn command(config: &Path, args: BackupArgs) -> anyhow::Result<()> {
    match (args.command, args.dir) {
        (Some(BackupCommand::Verify { dir }), _) => {
            // A backup of an encrypted store opens only with the master key from the config.
            if dir.join(rampart_store::storekey::FILE).exists() {
                crate::serve::load_config(config, &[])?;
            }
            let entries = verify(&dir)?;
            println!("{}: ok ({} files)", dir.display(), entries.len());
            Ok(())
        }
        (None, Some(dir)) => create(config, &dir),
        (None, None) => bail!("name the directory to write the backup into: rampart backup DIR"),
    }
}

fn create(config: &Path, dir: &Path) -> anyhow::Result<()> {
    let config = crate::serve::load_config(config, &[])?;
    crate::backend::require_sqlite(&config, "`rampart backup` (back PostgreSQL up with its own tools, e.g. pg_dump)")?;
    let data_dir = config.server.data_dir;
    prepare_empty(dir)?;
    let db = dir.join(DB);
    // An encrypted store's database key, wrapped by the master key: the backup needs it to
    // open (and the master key, which is not in the backup).
    let mut entries = Vec::new();
    let store_key = data_dir.join(rampart_store::storekey::FILE);
    if store_key.exists() {
        entries.push(copy_file(&store_key, &dir.join(rampart_store::storekey::FILE), rampart_store::storekey::FILE)?);
    }
    let snapshot = backup::snapshot(&data_dir, &db).context("snapshot of the store")?;
    entries.insert(0, entry_of(&db, DB)?);
    for (rel, src) in snapshot.files() {
        let rel = rel.to_str().context("blob paths are ASCII")?.to_string();
        entries.push(copy_file(&src, &dir.join(&rel), &rel)?);
    }
    drop(snapshot);
    write_manifest(dir, &entries)?;
    // For `rampart audit`, which reports a missing or old backup.
    let stamp = format!("{} {}\n", chrono::Utc::now().timestamp(), dir.display());
    fs::write(data_dir.join(crate::audit::checks::BACKUP_STAMP), stamp).context("recording the backup's time")?;
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    println!("{}: {} files, {} bytes", dir.display(), entries.len(), bytes);
    Ok(())
}

/// `rampart restore DIR`: into the configured data directory, which must be empty (or absent)
/// and not in use by a server.
pub fn restore(config: &Path, dir: &Path) -> anyhow::Result<()> {
    let config = crate::serve::load_config(config, &[])?;
    crate::backend::require_sqlite(&config, "`rampart restore`")?;
    let data_dir = config.server.data_dir;
    let entries = verify(dir).with_context(|| format!("{} is not a sound backup", dir.display()))?;
    prepare_empty(&data_dir)?;
    for e in &entries {
        copy_file(&dir.join(&e.path), &data_dir.join(&e.path), &e.path)?;
    }
    sync_dir(&data_dir)?;
    // Opening brings an older backup's schema up to date and proves the result usable.
    drop(rampart_store::SqliteStore::open(&data_dir).context("opening the restored store")?);
    println!("{}: restored {} files from {}", data_dir.display(), entries.len(), dir.display());
    Ok(())
}

/// Checks `dir` against its manifest; returns the manifest's entries.
fn verify(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let entries = read_manifest(dir)?;
    let mut problems = Vec::new();
    for e in &entries {
        match entry_of(&dir.join(&e.path), &e.path) {
            Ok(found) if found.size == e.size && found.sha256 == e.sha256 => {}
            Ok(_) => problems.push(format!("{}: content differs from the manifest", e.path)),
            Err(err) => problems.push(format!("{}: {err:#}", e.path)),
        }
    }
    let db = dir.join(DB);
    if db.exists() {
        if let Some(p) = backup::integrity_problems(&db)? {
            problems.push(format!("{DB}: integrity check: {p}"));
        }
        let listed: std::collections::HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        for id in backup::file_blob_ids(&db)? {
            let rel = format!("blobs/{}/{id}", &id[..6]);
            if !listed.contains(rel.as_str()) {
                problems.push(format!("{rel}: named by the database, missing from the backup"));
            }
        }
    } else {
        problems.push(format!("{DB}: missing"));
    }
    if problems.is_empty() {
        return Ok(entries);
    }
    for p in &problems {
        eprintln!("{}: {p}", dir.display());
    }
    bail!("{}: {} problem(s)", dir.display(), problems.len())
}

/// Creates `dir` or accepts it empty: a backup or restore never mixes with other files.
fn prepare_empty(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    Ok(())
}

/// Copies `src` to `dest` (creating its directory), fsyncs it, and returns its entry.
fn copy_file(src: &Path, dest: &Path, rel: &str) -> anyhow::Result<Entry> {
    let parent = dest.parent().context("a file has a directory")?;
    if !parent.exists() {
        fs::create_dir_all(parent)?;
        sync_dir(parent.parent().unwrap_or(parent))?;
    }
    let mut from = File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let mut to = File::create(dest).with_context(|| format!("writing {}", dest.display()))?;
    let (size, sha256) = hash_copy(&mut from, Some(&mut to))?;
    to.sync_all()?;
    sync_dir(parent)?;
    Ok(Entry { path: rel.to_string(), size, sha256 })
}

fn entry_of(path: &Path, rel: &str) -> anyhow::Result<Entry> {
    let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let (size, sha256) = hash_copy(&mut file, None)?;
    Ok(Entry { path: rel.to_string(), size, sha256 })
}

/// Reads `from` to its end, writing it to `to` if given; returns its size and SHA-256 (hex).
fn hash_copy(from: &mut File, mut to: Option<&mut File>) -> anyhow::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(to) = to.as_mut() {
            to.write_all(&buf[..n])?;
        }
        size += n as u64;
    }
    Ok((size, hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

fn write_manifest(dir: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    let files: Vec<_> =
        entries.iter().map(|e| json!({"path": e.path, "size": e.size, "sha256": e.sha256})).collect();
    let manifest = json!({
        "format": FORMAT,
        "created": chrono::Utc::now().to_rfc3339(),
        "rampart": env!("CARGO_PKG_VERSION"),
        "files": files,
    });
    // Written last and renamed into place: a backup without its manifest is visibly unfinished.
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(MANIFEST))?;
    sync_dir(dir)
}

fn read_manifest(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {} (an unfinished backup?)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if v["format"] != FORMAT {
        bail!("{}: not a {FORMAT} manifest", path.display());
    }
    let files = v["files"].as_array().with_context(|| format!("{}: no file list", path.display()))?;
    files
        .iter()
        .map(|f| {
            let path = f["path"].as_str().context("a file without a path")?;
            // Paths come from a file anyone may have edited: keep them inside the backup.
            if Path::new(path).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                bail!("{path}: not a plain relative path");
            }
            Ok(Entry {
                path: path.to_string(),
                size: f["size"].as_u64().context("a file without a size")?,
                sha256: f["sha256"].as_str().context("a file without a checksum")?.to_string(),
            })
        })
        .collect()
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)?.sync_all().with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = json!({"format": FORMAT, "files": [{"path": "../etc/passwd", "size": 1, "sha256": "00"}]});
        fs::write(dir.path().join(MANIFEST), manifest.to_string()).unwrap();
        assert!(read_manifest(dir.path()).is_err());
    }

    #[test]
    fn a_changed_file_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("blob"), b"mail").unwrap();
        let entry = entry_of(&dir.path().join("blob"), "blob").unwrap();
        write_manifest(dir.path(), &[entry]).unwrap();
        fs::write(dir.path().join("blob"), b"mall").unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert!(err.contains("problem"), "{err}");
    }
}
