//! Message bodies as files.
//!
//! A [`BlobWriter`] collects a message while it streams in; it holds at most [`FLUSH_AT`]
//! bytes in memory and writes the rest to `blobs/tmp/ID` from the blocking pool.
//! [`BlobWriter::finish`] fsyncs the file and gives a [`Blob`]. The store's writer thread then
//! renames it to `blobs/BUCKET/ID`, fsyncs each touched directory once per batch and commits the
//! index rows. Anything left in `blobs/tmp` when the server starts was never acknowledged and
//! is removed.
//!
//! Bodies are compressed as they are written ([`crate::codec`]: zstd frames of 256 KiB); the
//! sizes everywhere else (`size`, RFC822.SIZE, quotas) are those of the message as received.
//!
//! In an encrypted store the file's chunks are also sealed ([`crate::seal`]) with a data key
//! made for that file, wrapped by the master key into its `blobs` row. A small body kept in the
//! database row is not sealed: the database itself is encrypted (SQLCipher).
//!
//! IDs start with the creation time in milliseconds (hex), so a bucket (the first six hex
//! digits, about 4.7 hours) collects the messages of a burst and one directory fsync covers them.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::{self, CHUNK, Codec};
use crate::keys::MasterKeys;
use crate::seal::DataKey;
use crate::{Result, StoreError};

/// Bytes a writer keeps in memory before it compresses and writes them out: one chunk.
pub const FLUSH_AT: usize = CHUNK;
/// Messages up to this size never touch the file system: they are stored in the database row,
/// committed by the same WAL fsync as their index entries.
pub const INLINE_MAX: usize = 128 * 1024;

pub(crate) const TMP_DIR: &str = "tmp";

/// The path of a committed blob under `root`.
pub(crate) fn blob_path(root: &Path, id: &str) -> PathBuf {
    root.join(&id[..6]).join(id)
}

fn new_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{:012x}{:016x}", millis & 0xffff_ffff_ffff, rand::random::<u64>())
}

/// A message being received. Dropping it without [`finish`](Self::finish) removes its file.
pub struct BlobWriter {
    id: String,
    root: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
    size: u64,
    /// The master keys of an encrypted store: a file written gets a data key.
    keys: Option<Arc<MasterKeys>>,
    /// How the file is written: zstd, or sealed with its data key.
    codec: Codec,
    /// Chunks written to the file so far.
    chunks: usize,
    /// Held, with the blob it makes, until that is committed or dropped; see [`Blob::_clear_hold`].
    clear_hold: Option<Arc<()>>,
    /// A per-user copy: the account and public key its data key is sealed to
    /// ([`crate::peruser`]); always a sealed file, never kept in the (maybe clear) database.
    owner: Option<(crate::AccountId, [u8; crate::keys::KEY_LEN])>,
    /// Whether `finish` fsyncs the file: not for a spool file, whose bytes are made durable
    /// by the database they are copied into ([`BlobWriter::spool`]).
    sync: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").field("id", &self.id).field("size", &self.size).finish()
    }
}

impl BlobWriter {
    pub(crate) fn new(root: &Path, keys: Option<Arc<MasterKeys>>) -> Self {
        let codec = match keys {
            Some(_) => Codec::Sealed(Arc::new(DataKey::generate())),
            None => Codec::Zstd,
        };
        BlobWriter { id: new_id(), root: root.to_path_buf(), file: None, buf: Vec::new(), size: 0, keys, codec, chunks: 0, clear_hold: None, owner: None, sync: true }
    }

    /// A writer into the spool directory of a store that keeps bodies in its database (the
    /// PostgreSQL store): the same compressed frames, not fsynced, since the delivery copies
    /// them into the database and the database's commit is what makes them durable.
    pub(crate) fn spool(root: &Path) -> Self {
        let mut writer = Self::new(root, None);
        writer.sync = false;
        writer
    }

    /// A clear store's writer holds `hold` (see [`Blob::_clear_hold`]).
    pub(crate) fn holding(mut self, hold: Arc<()>) -> Self {
        self.clear_hold = Some(hold);
        self
    }

    /// A writer of a per-user copy for `account`, whose data key is sealed to `public`.
    pub(crate) fn for_user(root: &Path, account: crate::AccountId, public: [u8; crate::keys::KEY_LEN]) -> Self {
        let codec = Codec::Sealed(Arc::new(DataKey::generate()));
        BlobWriter { id: new_id(), root: root.to_path_buf(), file: None, buf: Vec::new(), size: 0, keys: None, codec, chunks: 0, clear_hold: None, owner: Some((account, public)), sync: true }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join(TMP_DIR).join(&self.id)
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        self.size += data.len() as u64;
        // More than a chunk: the chunks written before the end are never the message's last
        // (a sealed last chunk is marked as such), so at least one byte stays behind.
        if self.buf.len() > FLUSH_AT {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Compresses (and seals) and writes out the buffer's whole chunks but the final one, or
    /// with `last` all of it and fsyncs, on the blocking pool. What is left (up to a chunk)
    /// stays buffered.
    async fn flush(&mut self, last: bool) -> Result<()> {
        let path = self.tmp_path();
        let file = self.file.take();
        let buf = std::mem::take(&mut self.buf);
        let (codec, first, sync) = (self.codec.clone(), self.chunks, self.sync);
        let whole = if last { buf.len() } else { buf.len().saturating_sub(1) / CHUNK * CHUNK };
        self.chunks += whole.div_ceil(CHUNK);
        let (file, buf, result) = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(f) => f,
                None => match File::options().write(true).create_new(true).open(&path) {
                    Ok(f) => {
                        same_owner_as_root(&f, &path);
                        f
                    }
                    Err(e) => return (None, buf, Err(StoreError::io(&path, e))),
                },
            };
            let mut frames = Vec::new();
            let mut result = codec::encode_into(&codec, first, &buf[..whole], last, &mut frames).and_then(|()| file.write_all(&frames));
            if last && sync && result.is_ok() {
                result = file.sync_data();
            }
            let rest = buf[whole..].to_vec();
            (Some(file), rest, result.map_err(|e| StoreError::io(&path, e)))
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        self.buf = buf;
        self.file = file;
        result
    }

    /// Writes and fsyncs the rest. The blob is durable (or, when small, held in memory to be
    /// written with its index rows) but not yet part of any mailbox.
    pub async fn finish(mut self) -> Result<Blob> {
        let inline = if self.file.is_none() && self.buf.len() <= INLINE_MAX && self.owner.is_none() {
            let mut stored = Vec::new();
            codec::compress_into(&self.buf, &mut stored).map_err(|e| StoreError::io(self.tmp_path(), e))?;
            Some(stored)
        } else {
            self.flush(true).await?;
            None
        };
        let (codec, wrapped_key) = match (&inline, &self.keys, &self.codec, &self.owner) {
            (None, _, Codec::Sealed(key), Some((_, public))) => {
                (self.codec.clone(), Some(crate::peruser::seal_to(public, key.bytes(), self.id.as_bytes())))
            }
            (None, Some(keys), Codec::Sealed(key), None) => (self.codec.clone(), Some(keys.wrap(key.bytes(), self.id.as_bytes()))),
            _ => (Codec::Zstd, None),
        };
        let blob = Blob {
            id: std::mem::take(&mut self.id),
            root: std::mem::take(&mut self.root),
            size: self.size,
            committed: false,
            inline,
            codec,
            wrapped_key,
            _clear_hold: self.clear_hold.take(),
            owner: self.owner.map(|(account, _)| account),
            sealed_summary: None,
        };
        Ok(blob)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.id.is_empty() && self.file.is_some() {
            let _ = fs::remove_file(self.tmp_path());
        }
    }
}

/// A finished, fsynced message file waiting to be committed into the index.
/// Dropping it uncommitted removes the file.
#[derive(Debug)]
pub struct Blob {
    pub(crate) id: String,
    pub(crate) root: PathBuf,
    pub(crate) size: u64,
    pub(crate) committed: bool,
    /// The content of a small blob as stored (compressed), kept in the database instead of a
    /// file.
    pub(crate) inline: Option<Vec<u8>>,
    pub(crate) codec: Codec,
    /// The data key of a sealed file, wrapped by the master key (`blobs.dkey`), or for a
    /// per-user copy sealed to its owner's public key.
    pub(crate) wrapped_key: Option<Vec<u8>>,
    /// For a blob written while its store was clear: a reference to the store's count of such
    /// blobs not yet committed, which an online conversion waits to reach none so that its
    /// last sweep seals every clear file ([`crate::sqlite`]'s `online`).
    pub(crate) _clear_hold: Option<Arc<()>>,
    /// The account of a per-user copy (`blobs.owner`).
    pub(crate) owner: Option<crate::AccountId>,
    /// A per-user copy's summary sealed with its data key (`sealed_summaries`,
    /// [`crate::sealsummary`]).
    pub(crate) sealed_summary: Option<Vec<u8>>,
}

impl Blob {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn tmp_path(&self) -> PathBuf {
        self.root.join(TMP_DIR).join(&self.id)
    }

    /// Keeps `summary` with a per-user copy, sealed with its data key; nothing for another
    /// blob (its summary goes to the summary tables).
    pub(crate) fn seal_summary(&mut self, summary: &crate::Summary) {
        if let (Some(_), crate::codec::Codec::Sealed(key)) = (self.owner, &self.codec) {
            self.sealed_summary = Some(crate::sealsummary::seal(key.bytes(), &self.id, summary));
        }
    }

    fn path(&self) -> PathBuf {
        if self.committed { blob_path(&self.root, &self.id) } else { self.tmp_path() }
    }

    /// The content as received (decompressed).
    pub async fn contents(&self) -> Result<Vec<u8>> {
        let path = self.path();
        let stored = match &self.inline {
            Some(data) => data.clone(),
            None => tokio::fs::read(&path).await.map_err(|e| StoreError::io(&path, e))?,
        };
        let (codec, size) = (self.codec.clone(), self.size);
        let decode = move || codec::decode(&codec, stored, size);
        // A large body decompresses on the blocking pool, as it was compressed.
        let data = if self.inline.is_some() { decode() } else { tokio::task::spawn_blocking(decode).await.map_err(|_| StoreError::Closed)? };
        data.map_err(|e| StoreError::io(&path, e))
    }

    /// The content as received, as a stream: an antivirus scanner reads a large message
    /// through a small buffer (a chunk at a time) instead of the whole of it in memory.
    pub async fn reader(&self) -> Result<Box<dyn tokio::io::AsyncRead + Unpin + Send + '_>> {
        let path = self.path();
        if let Some(data) = &self.inline {
            let data = codec::decode(&self.codec, data.clone(), self.size).map_err(|e| StoreError::io(&path, e))?;
            return Ok(Box::new(std::io::Cursor::new(data)));
        }
        let file = tokio::fs::File::open(&path).await.map_err(|e| StoreError::io(&path, e))?;
        match &self.codec {
            Codec::Raw => Ok(Box::new(file)),
            c => Ok(Box::new(codec::Stream::new(file, self.size, c).map_err(|e| StoreError::io(&path, e))?)),
        }
    }

    /// Moves the file to its bucket. Returns the directory that now needs an fsync, or None
    /// for an inline blob, which has no file.
    pub(crate) fn commit(&mut self) -> Result<Option<PathBuf>> {
        if self.inline.is_some() {
            self.committed = true;
            return Ok(None);
        }
        let target = blob_path(&self.root, &self.id);
        let dir = target.parent().expect("blob paths have a bucket").to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            if let Ok(d) = File::open(&dir) {
                same_owner_as_root(&d, &dir);
            }
            // The new bucket's own entry lives in the root directory.
            sync_dir(&self.root)?;
        }
        fs::rename(self.tmp_path(), &target).map_err(|e| StoreError::io(&target, e))?;
        self.committed = true;
        Ok(Some(dir))
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        if !self.committed && self.inline.is_none() {
            let _ = fs::remove_file(self.tmp_path());
        }
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))
}

/// Creates `root` and `root/tmp`.
/// A file or bucket created by a command run as root in a data directory that belongs to the
/// server's user (see `[server] user`) is given to that user, so the server can read and
/// remove it; SQLite does the same for its journal files. For anyone but root the owners
/// already match, or changing them is not allowed and nothing happens.
fn same_owner_as_root(file: &File, path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let root = path.ancestors().find(|a| a.file_name().is_some_and(|n| n == "blobs"));
    let (Some(root), Ok(mine)) = (root, file.metadata()) else { return };
    let Ok(owner) = fs::metadata(root) else { return };
    if (owner.uid(), owner.gid()) != (mine.uid(), mine.gid()) {
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
}

pub(crate) fn prepare_root(root: &Path) -> Result<()> {
    let tmp = root.join(TMP_DIR);
    fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))
}

/// Empties `tmp` of anything an earlier run left behind.
pub(crate) fn clean_tmp(root: &Path) -> Result<()> {
    let tmp = root.join(TMP_DIR);
    prepare_root(root)?;
    for entry in fs::read_dir(&tmp).map_err(|e| StoreError::io(&tmp, e))? {
        let entry = entry.map_err(|e| StoreError::io(&tmp, e))?;
        let _ = fs::remove_file(entry.path());
    }
    Ok(())
}
