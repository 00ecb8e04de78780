//! Message bodies in PostgreSQL: one `blobs` row per body, its bytes as `bytea` rows of
//! `blob_chunks` (why not large objects: `super`'s module doc).
//!
//! - A body streams in through the ordinary [`crate::BlobWriter`], pointed at the store's
//!   local spool directory ([`crate::BlobWriter::spool`]): it is compressed a chunk at a time
//!   into zstd frames of 256 KiB (`crate::codec`) and never held whole in memory. The spool
//!   file is not fsynced: it is scratch.
//! - The delivery (or APPEND, or hold) copies the frames into `blob_chunks`, one row per
//!   frame, read from the spool file one at a time ([`insert`]), inside its own transaction,
//!   before it locks any mailbox row; the caller acknowledges after COMMIT, so a body is
//!   durable exactly when its index rows are (`synchronous_commit` on, the default). The
//!   spool file goes when the [`crate::Blob`] is dropped. Small bodies (inline, 128 KiB or
//!   less) never touch the spool.
//! - Reading: a whole message reads every chunk ([`read`]); a [`Chunks`] reader (inside
//!   [`crate::MessageReader`]) reads one chunk per query from the pool, when a read needs it,
//!   so a partial FETCH of a 20 MiB message costs the chunks it touches and memory for one.
//!   A reader whose message is expunged meanwhile gets `NotFound` for chunks it had not read
//!   yet (a file store keeps an open file readable; a database row is gone at commit).
//! - Spool files older than a day are left-overs of a node that died mid-message and are
//!   removed at open ([`prepare_spool`]); newer ones may be another process's (a CLI command
//!   beside the server) and stay.

use std::path::Path;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::io::AsyncReadExt;

use crate::codec::{self, CHUNK, Codec};
use crate::{Blob, Result, StoreError};

/// A spool file older than this was left by a process that died while receiving it.
const STALE_SPOOL: Duration = Duration::from_secs(24 * 3600);

/// Makes `spool/tmp` and removes stale files from it.
pub(crate) fn prepare_spool(spool: &Path) -> Result<()> {
    crate::blob::prepare_root(spool)?;
    let tmp = spool.join(crate::blob::TMP_DIR);
    let entries = std::fs::read_dir(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_SPOOL));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Stores `blob` (its row with `refcount`, then its chunks) in the transaction.
pub(crate) async fn insert(txn: &Transaction<'_>, blob: &Blob, refcount: i64) -> Result<()> {
    let row = txn.prepare_cached("INSERT INTO blobs (id, size, refcount, codec) VALUES ($1, $2, $3, $4)").await?;
    txn.execute(&row, &[&blob.id(), &(blob.size() as i64), &refcount, &(blob.codec.code() as i32)]).await?;
    let chunk = txn.prepare_cached("INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)").await?;
    if let Some(stored) = &blob.inline {
        let frames = codec::frames(stored).map_err(|e| StoreError::io(blob.tmp_path(), e))?;
        for (seq, frame) in frames.into_iter().enumerate() {
            txn.execute(&chunk, &[&blob.id(), &(seq as i32), &frame]).await?;
        }
        return Ok(());
    }
    let path = blob.tmp_path();
    let io = |e| StoreError::io(&path, e);
    let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
    let count = (blob.size() as usize).div_ceil(CHUNK);
    let mut frame = Vec::new();
    for seq in 0..count {
        let mut prefix = [0u8; codec::FRAME_PREFIX];
        file.read_exact(&mut prefix).await.map_err(io)?;
        frame.resize(codec::frame_len_of(prefix), 0);
        file.read_exact(&mut frame).await.map_err(io)?;
        txn.execute(&chunk, &[&blob.id(), &(seq as i32), &frame]).await?;
    }
    Ok(())
}

/// The size and codec of a stored body.
async fn head(client: &impl GenericClient, blob_id: &str) -> Result<(u64, Codec)> {
    let row = client
        .query_opt("SELECT size, codec FROM blobs WHERE id = $1", &[&blob_id])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("blob {blob_id}")))?;
    let codec = Codec::from_code(i64::from(row.get::<_, i32>(1)), None).map_err(|e| StoreError::io(blob_id, e))?;
    Ok((row.get::<_, i64>(0) as u64, codec))
}

/// A whole body, as received.
pub(crate) async fn read(client: &impl GenericClient, blob_id: &str) -> Result<Vec<u8>> {
    let (size, codec) = head(client, blob_id).await?;
    let rows = client.query("SELECT data FROM blob_chunks WHERE blob_id = $1 ORDER BY seq", &[&blob_id]).await?;
    if rows.len() != (size as usize).div_ceil(CHUNK) {
        return Err(StoreError::io(blob_id, std::io::Error::other("chunks missing")));
    }
    let mut out = Vec::with_capacity(size as usize);
    for (index, row) in rows.iter().enumerate() {
        let frame: &[u8] = row.get(0);
        out.extend(codec::decode_chunk(&codec, index, size, frame).map_err(|e| StoreError::io(blob_id, e))?);
    }
    Ok(out)
}

/// A prefix followed by a body: the message as stored.
pub(crate) async fn read_message(client: &impl GenericClient, prefix: Vec<u8>, blob_id: &str) -> Result<Vec<u8>> {
    let body = read(client, blob_id).await?;
    Ok(crate::sqlite::joined(&prefix, &body))
}

/// A body read a chunk at a time, each when it is first needed; the last one read is kept.
pub(crate) struct Chunks {
    pool: Pool,
    blob_id: String,
    size: u64,
    codec: Codec,
    current: Option<(usize, Vec<u8>)>,
}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks").field("blob_id", &self.blob_id).field("size", &self.size).finish()
    }
}

impl Chunks {
    pub(crate) async fn open(pool: Pool, client: &impl GenericClient, blob_id: &str) -> Result<Chunks> {
        let (size, codec) = head(client, blob_id).await?;
        Ok(Chunks { pool, blob_id: blob_id.to_string(), size, codec, current: None })
    }

    /// The body's size.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Chunk `index`, as received.
    pub(crate) async fn chunk(&mut self, index: usize) -> Result<&[u8]> {
        if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
            let client = self.pool.get().await.map_err(|e| StoreError::Db(crate::DbError::new(e, true)))?;
            let row = client
                .query_opt("SELECT data FROM blob_chunks WHERE blob_id = $1 AND seq = $2", &[&self.blob_id, &(index as i32)])
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("chunk {index} of blob {}", self.blob_id)))?;
            let frame: &[u8] = row.get(0);
            let data = codec::decode_chunk(&self.codec, index, self.size, frame).map_err(|e| StoreError::io(&self.blob_id, e))?;
            self.current = Some((index, data));
        }
        Ok(&self.current.as_ref().expect("set above").1)
    }
}
