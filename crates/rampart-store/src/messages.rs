//! The message-reading role: an account's mailboxes and messages as the CLI and IMAP FETCH
//! read them, and finding a message by its transaction reference.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::codec::{CHUNK, ChunkReader, Codec};
use crate::{AccountId, MailboxId, Result, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub special_use: Option<String>,
    pub subscribed: bool,
}

/// Summary of one stored message, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// `address/name` of the mailbox, and its id (to open the message).
    pub mailbox: String,
    pub mailbox_id: MailboxId,
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub reference: String,
    pub trail: String,
}

/// One message in a mailbox listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub flags: String,
    pub reference: String,
}

/// A stored message opened for reading in pieces (IMAP FETCH of a whole message or a range of
/// it), so that a large message is never held in memory at once. The file stays readable
/// while it is open, even if the message is expunged meanwhile.
#[derive(Debug)]
pub struct MessageReader {
    prefix: Vec<u8>,
    body: Body,
    size: u64,
}

#[derive(Debug)]
enum Body {
    /// A small body kept in the database, decompressed.
    Inline(Vec<u8>),
    /// A file as received (blobs stored before compression).
    File { path: PathBuf, file: tokio::fs::File },
    /// A compressed file, read a chunk at a time.
    Chunks { path: PathBuf, file: tokio::fs::File, chunks: Box<ChunkReader> },
    /// Chunks in a database (PostgreSQL), each read when it is needed.
    Db(Box<crate::postgres::blobs::Chunks>),
}

impl MessageReader {
    pub(crate) fn inline(prefix: Vec<u8>, data: Vec<u8>) -> MessageReader {
        let size = (prefix.len() + data.len()) as u64;
        MessageReader { prefix, body: Body::Inline(data), size }
    }

    pub(crate) fn file(prefix: Vec<u8>, path: PathBuf, file: tokio::fs::File, body_size: u64, codec: Codec) -> Result<MessageReader> {
        let size = prefix.len() as u64 + body_size;
        let body = match codec {
            Codec::Raw => Body::File { path, file },
            codec => {
                let chunks = Box::new(ChunkReader::new(&codec, body_size).map_err(|e| StoreError::io(&path, e))?);
                Body::Chunks { path, file, chunks }
            }
        };
        Ok(MessageReader { prefix, body, size })
    }

    /// A body kept in the database as chunks.
    pub(crate) fn db(prefix: Vec<u8>, chunks: crate::postgres::blobs::Chunks) -> MessageReader {
        let size = prefix.len() as u64 + chunks.size();
        MessageReader { prefix, body: Body::Db(Box::new(chunks)), size }
    }

    /// The whole message's size (prefix and body), as RFC822.SIZE counts it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends up to `max` bytes of the message from offset `pos` to `out`; returns how many
    /// (0 at the end).
    pub async fn read_at(&mut self, pos: u64, max: usize, out: &mut Vec<u8>) -> Result<usize> {
        if pos >= self.size || max == 0 {
            return Ok(0);
        }
        let want = (max as u64).min(self.size - pos) as usize;
        let plen = self.prefix.len() as u64;
        if pos < plen {
            let end = (pos as usize + want).min(self.prefix.len());
            out.extend_from_slice(&self.prefix[pos as usize..end]);
            return Ok(end - pos as usize);
        }
        let at = pos - plen;
        match &mut self.body {
            Body::Inline(d) => {
                let start = (at as usize).min(d.len());
                let end = (start + want).min(d.len());
                out.extend_from_slice(&d[start..end]);
                Ok(end - start)
            }
            Body::File { path, file } => read_raw(path, file, at, want, out).await,
            Body::Chunks { path, file, chunks } => {
                let data = chunks.chunk(file, at as usize / CHUNK).await.map_err(|e| StoreError::io(&*path, e))?;
                Ok(copy_from_chunk(data, at, want, out))
            }
            Body::Db(chunks) => {
                let data = chunks.chunk(at as usize / CHUNK).await?;
                Ok(copy_from_chunk(data, at, want, out))
            }
        }
    }
}

/// Appends up to `want` bytes of chunk `data` from body offset `at` (inside it) to `out`.
fn copy_from_chunk(data: &[u8], at: u64, want: usize, out: &mut Vec<u8>) -> usize {
    let start = (at as usize % CHUNK).min(data.len());
    let end = (start + want).min(data.len());
    out.extend_from_slice(&data[start..end]);
    end - start
}

/// Reads up to `want` bytes at `at` of a file stored as received.
async fn read_raw(path: &Path, file: &mut tokio::fs::File, at: u64, want: usize, out: &mut Vec<u8>) -> Result<usize> {
    let io = |e| StoreError::io(path, e);
    file.seek(std::io::SeekFrom::Start(at)).await.map_err(io)?;
    let old = out.len();
    out.resize(old + want, 0);
    let mut got = 0;
    while got < want {
        match file.read(&mut out[old + got..]).await.map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    out.truncate(old + got);
    Ok(got)
}

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// The messages of a mailbox in UID order.
    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// The full message as stored: prefix followed by the blob. `NotFound` once expunged.
    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>>;
    /// The same message opened for reading in pieces. `NotFound` once expunged.
    async fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader>;
    /// Messages stored under a transaction reference, in every account.
    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>>;
}
