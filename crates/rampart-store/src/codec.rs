//! Message bodies compressed at rest.
//!
//! A compressed body ([`Codec::Zstd`]) is the message cut into chunks of [`CHUNK`] bytes (the
//! last one shorter), each compressed on its own into one zstd frame and stored as its length
//! (4 bytes, little-endian) followed by the frame. Independent frames let a reader start at any
//! chunk: a range of a large message costs the chunks it touches and a 4-byte read for each
//! chunk it skips, never the decompression of what comes before it. Compression happens where
//! the bytes are written (the blob writer, on the blocking pool), never on the store's writer
//! thread.
//!
//! [`Codec::Sealed`] is the same frames, each then sealed with the file's own data key
//! ([`crate::seal`]): an encrypted store's message files. Compression comes first, since
//! ciphertext does not compress.
//!
//! [`Codec::Raw`] is a body as received: blobs stored before compression existed keep it and
//! stay readable. Which codec a blob has is recorded in its `blobs` row, never guessed from
//! its bytes.

use std::io;
use std::sync::Arc;

use crate::seal::{self, DataKey};

/// Uncompressed bytes per frame; every chunk but the last has exactly this many.
pub const CHUNK: usize = 256 * 1024;
/// zstd's default level: about 3–4× on text mail at hundreds of MB/s per core.
const LEVEL: i32 = 3;
/// The length prefix of a frame.
const LEN: usize = 4;

#[derive(Debug, Clone)]
pub enum Codec {
    /// As received (blobs stored before compression).
    Raw,
    /// zstd frames of [`CHUNK`] bytes each.
    Zstd,
    /// zstd frames, each sealed with this data key.
    Sealed(Arc<DataKey>),
}

/// The code in `blobs.codec` of a sealed file (its data key is in `blobs.dkey`).
pub const SEALED: i64 = 2;

impl Codec {
    /// The number stored in `blobs.codec`.
    pub fn code(&self) -> i64 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
            Codec::Sealed(_) => SEALED,
        }
    }

    /// The codec of a `blobs` row; `key` is its data key, already unwrapped, for a sealed one.
    pub fn from_code(code: i64, key: Option<Arc<DataKey>>) -> io::Result<Codec> {
        match (code, key) {
            (0, _) => Ok(Codec::Raw),
            (1, _) => Ok(Codec::Zstd),
            (SEALED, Some(key)) => Ok(Codec::Sealed(key)),
            (SEALED, None) => Err(io::Error::new(io::ErrorKind::InvalidData, "a sealed blob without its data key")),
            (n, _) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown blob codec {n}"))),
        }
    }

    fn key(&self) -> Option<&DataKey> {
        match self {
            Codec::Sealed(k) => Some(k),
            _ => None,
        }
    }
}

/// How many chunks a body of `size` bytes has.
fn chunk_count(size: u64) -> usize {
    (size as usize).div_ceil(CHUNK)
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("compressed blob: {what}"))
}

/// Compresses `data` chunk by chunk and appends the frames to `out` (zstd, no key).
pub fn compress_into(data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    encode_into(&Codec::Zstd, 0, data, true, out)
}

/// Compresses (and with [`Codec::Sealed`] seals) `data` chunk by chunk and appends the frames
/// to `out`; the first chunk of `data` is chunk `first` of the message, and with `last` the
/// final chunk of `data` ends it. Every chunk but the message's last must be whole: callers
/// pass whole chunks until the end of the message.
pub fn encode_into(codec: &Codec, first: usize, data: &[u8], last: bool, out: &mut Vec<u8>) -> io::Result<()> {
    let count = data.len().div_ceil(CHUNK);
    with_compressor(|compressor| {
        for (i, piece) in data.chunks(CHUNK).enumerate() {
            let mut frame = compressor.compress(piece)?;
            if let Some(key) = codec.key() {
                key.seal(first + i, last && i + 1 == count, &mut frame)?;
            }
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        Ok(())
    })
}

// One compression and one decompression context per thread, reused: creating them per
// message (about 1 MiB of tables for a level-3 compressor, touched afresh each time) cost more
// CPU than compressing a small message. Threads here are the blocking pool's, so few.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn with_compressor<R>(f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> io::Result<R>) -> io::Result<R> {
    with_context(&COMPRESSOR, || zstd::bulk::Compressor::new(LEVEL), f)
}

fn with_decompressor<R>(f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> io::Result<R>) -> io::Result<R> {
    with_context(&DECOMPRESSOR, zstd::bulk::Decompressor::new, f)
}

/// Runs `f` with this thread's context in `slot`, made by `new` on first use.
fn with_context<T: 'static, R>(
    slot: &'static std::thread::LocalKey<std::cell::RefCell<Option<T>>>,
    new: impl FnOnce() -> io::Result<T>,
    f: impl FnOnce(&mut T) -> io::Result<R>,
) -> io::Result<R> {
    slot.with(|cell| {
        // A nested use on the same thread (none today) gets its own context.
        let Ok(mut context) = cell.try_borrow_mut() else { return f(&mut new()?) };
        if context.is_none() {
            *context = Some(new()?);
        }
        f(context.as_mut().expect("set above"))
    })
}

/// A stored body in `codec` back to the message bytes; `size` is the recorded size, checked.
pub fn decode(codec: &Codec, stored: Vec<u8>, size: u64) -> io::Result<Vec<u8>> {
    if let Codec::Raw = codec {
        return Ok(stored);
    }
    let mut out = Vec::with_capacity(size as usize);
    // A frame holds at most CHUNK bytes, and a small message's one frame no more than its
    // size: a frame decoding to more is corrupt and fails here.
    let mut chunk = Vec::with_capacity((size as usize).clamp(1, CHUNK));
    let mut opened = Vec::new();
    let mut rest = &stored[..];
    let count = chunk_count(size);
    let mut index = 0;
    with_decompressor(|decompressor| {
        while !rest.is_empty() {
            let (frame, after) = split_frame(rest)?;
            let frame = match codec.key() {
                Some(key) => {
                    opened.clear();
                    opened.extend_from_slice(frame);
                    key.open(index, index + 1 == count, &mut opened)?;
                    &opened[..]
                }
                None => frame,
            };
            decompressor.decompress_to_buffer(frame, &mut chunk)?;
            out.extend_from_slice(&chunk);
            rest = after;
            index += 1;
        }
        Ok(())
    })?;
    if out.len() as u64 != size {
        return Err(corrupt("size differs from the index"));
    }
    Ok(out)
}

/// The frames of a stored body (zstd or sealed), without their length prefixes: what a store
/// that keeps bodies in its database stores one row each (`postgres::blobs`).
pub fn frames(stored: &[u8]) -> io::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = stored;
    while !rest.is_empty() {
        let (frame, after) = split_frame(rest)?;
        out.push(frame);
        rest = after;
    }
    Ok(out)
}

/// Reads the length prefix of the next frame from a stored body's bytes: the frame's length.
pub fn frame_len_of(prefix: [u8; LEN]) -> usize {
    frame_len(&prefix)
}

/// The length prefix of a frame.
pub const FRAME_PREFIX: usize = LEN;

/// Chunk `index` of a zstd body of `size` bytes from its frame alone.
pub fn decode_chunk(codec: &Codec, index: usize, size: u64, frame: &[u8]) -> io::Result<Vec<u8>> {
    if let Codec::Raw = codec {
        return Ok(frame.to_vec());
    }
    let mut opened;
    let frame = match codec.key() {
        Some(key) => {
            opened = frame.to_vec();
            key.open(index, index + 1 == chunk_count(size), &mut opened)?;
            &opened[..]
        }
        None => frame,
    };
    let mut out = Vec::with_capacity(CHUNK);
    with_decompressor(|d| d.decompress_to_buffer(frame, &mut out))?;
    let expected = (size as usize).saturating_sub(index * CHUNK).min(CHUNK);
    if out.len() != expected {
        return Err(corrupt("chunk size differs from the index"));
    }
    Ok(out)
}

/// The first frame of `data` and what follows it.
fn split_frame(data: &[u8]) -> io::Result<(&[u8], &[u8])> {
    let len = frame_len(data.get(..LEN).ok_or_else(|| corrupt("cut length"))?);
    let end = LEN + len;
    let frame = data.get(LEN..end).ok_or_else(|| corrupt("cut frame"))?;
    Ok((frame, &data[end..]))
}

fn frame_len(prefix: &[u8]) -> usize {
    u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize
}

/// Reads chunks of a compressed body from a file: where each frame starts is learnt as the
/// reader walks, and the chunk last decompressed is kept for the next read.
pub struct ChunkReader {
    /// Offsets of the frames found so far (the first is 0).
    starts: Vec<u64>,
    /// The chunk in `data`, if any.
    current: Option<usize>,
    data: Vec<u8>,
    frame: Vec<u8>,
    decompressor: zstd::bulk::Decompressor<'static>,
    /// The data key of a sealed body.
    key: Option<Arc<DataKey>>,
    /// Chunks in the body (the last one is sealed as the last).
    count: usize,
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader").field("frames_known", &self.starts.len()).field("current", &self.current).finish()
    }
}

impl ChunkReader {
    /// A reader of a body of `size` bytes stored with `codec` (zstd or sealed).
    pub fn new(codec: &Codec, size: u64) -> io::Result<ChunkReader> {
        Ok(ChunkReader {
            starts: vec![0],
            current: None,
            data: Vec::new(),
            frame: Vec::new(),
            decompressor: zstd::bulk::Decompressor::new()?,
            key: match codec {
                Codec::Sealed(k) => Some(k.clone()),
                _ => None,
            },
            count: chunk_count(size),
        })
    }

    /// The decompressed chunk `index` of the body in `file`.
    pub async fn chunk(&mut self, file: &mut tokio::fs::File, index: usize) -> io::Result<&[u8]> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if self.current == Some(index) {
            return Ok(&self.data);
        }
        let mut prefix = [0u8; LEN];
        // Walk the length prefixes up to the frame wanted.
        while self.starts.len() <= index {
            let at = *self.starts.last().expect("starts begins with 0");
            file.seek(io::SeekFrom::Start(at)).await?;
            file.read_exact(&mut prefix).await?;
            self.starts.push(at + (LEN + frame_len(&prefix)) as u64);
        }
        file.seek(io::SeekFrom::Start(self.starts[index])).await?;
        file.read_exact(&mut prefix).await?;
        let len = frame_len(&prefix);
        if len > zstd::zstd_safe::compress_bound(CHUNK) + seal::OVERHEAD {
            return Err(corrupt("frame longer than a chunk can be"));
        }
        self.frame.resize(len, 0);
        file.read_exact(&mut self.frame).await?;
        if self.starts.len() == index + 1 {
            self.starts.push(self.starts[index] + (LEN + len) as u64);
        }
        self.current = None;
        if let Some(key) = &self.key {
            key.open(index, index + 1 == self.count, &mut self.frame)?;
        }
        if self.data.capacity() < CHUNK {
            self.data.reserve_exact(CHUNK);
        }
        self.decompressor.decompress_to_buffer(&self.frame, &mut self.data)?;
        self.current = Some(index);
        Ok(&self.data)
    }
}

/// What a [`Stream`] owns between reads.
struct Source {
    file: tokio::fs::File,
    chunks: ChunkReader,
    /// The next chunk to read.
    next: usize,
    count: usize,
}

type Loading = std::pin::Pin<Box<dyn std::future::Future<Output = (Source, io::Result<Vec<u8>>)> + Send>>;

/// A compressed body file read as a stream of the message bytes, one chunk in memory at a
/// time. A damaged file is an error, never a message cut short.
pub struct Stream {
    source: Option<Source>,
    loading: Option<Loading>,
    /// The chunk being handed out, and how much of it was.
    data: Vec<u8>,
    pos: usize,
}

impl Stream {
    pub fn new(file: tokio::fs::File, size: u64, codec: &Codec) -> io::Result<Stream> {
        let count = chunk_count(size);
        let source = Source { file, chunks: ChunkReader::new(codec, size)?, next: 0, count };
        Ok(Stream { source: Some(source), loading: None, data: Vec::new(), pos: 0 })
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        loop {
            if self.pos < self.data.len() {
                let n = buf.remaining().min(self.data.len() - self.pos);
                let pos = self.pos;
                buf.put_slice(&self.data[pos..pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some(loading) = self.loading.as_mut() {
                let (source, result) = std::task::ready!(loading.as_mut().poll(cx));
                self.loading = None;
                self.source = Some(source);
                self.data = result?;
                self.pos = 0;
                continue;
            }
            let Some(mut source) = self.source.take() else { return Poll::Ready(Ok(())) };
            if source.next >= source.count {
                return Poll::Ready(Ok(()));
            }
            self.loading = Some(Box::pin(async move {
                let index = source.next;
                source.next += 1;
                let Source { file, chunks, .. } = &mut source;
                let result = chunks.chunk(file, index).await.map(<[u8]>::to_vec);
                (source, result)
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"From: a@b\r\nSubject: hello world\r\n\r\nsome text of mail "[i % 52]).collect()
    }

    #[test]
    fn round_trip_across_chunks_and_checked_size() {
        for n in [0, 1, 1000, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data = sample(n);
            let mut out = Vec::new();
            compress_into(&data, &mut out).unwrap();
            assert!(n < 100 || out.len() < n / 2, "{n}: {}", out.len());
            assert_eq!(decode(&Codec::Zstd, out.clone(), n as u64).unwrap(), data);
            assert!(decode(&Codec::Zstd, out.clone(), n as u64 + 1).is_err());
            if !out.is_empty() {
                out.truncate(out.len() - 1);
                assert!(decode(&Codec::Zstd, out, n as u64).is_err());
            }
        }
        assert_eq!(decode(&Codec::Raw, b"as is".to_vec(), 99).unwrap(), b"as is");
        assert!(Codec::from_code(7, None).is_err());
        assert!(Codec::from_code(SEALED, None).is_err());
    }

    #[tokio::test]
    async fn chunks_read_in_any_order() {
        let data = sample(3 * CHUNK + 17);
        let mut out = Vec::new();
        compress_into(&data, &mut out).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        std::fs::write(&path, &out).unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        let mut r = ChunkReader::new(&Codec::Zstd, data.len() as u64).unwrap();
        for k in [3, 0, 2, 2, 1] {
            let got = r.chunk(&mut file, k).await.unwrap().to_vec();
            assert_eq!(got, data[k * CHUNK..((k + 1) * CHUNK).min(data.len())]);
        }
        assert!(r.chunk(&mut file, 4).await.is_err());
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut streamed = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut Stream::new(file, data.len() as u64, &Codec::Zstd).unwrap(), &mut streamed).await.unwrap();
        assert_eq!(streamed, data);
        // A file cut short is an error, not a shorter message.
        std::fs::write(&path, &out[..out.len() - 10]).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut stream = Stream::new(file, data.len() as u64, &Codec::Zstd).unwrap();
        assert!(tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut Vec::new()).await.is_err());
    }

    /// The frames of a stored body, each with its length prefix.
    fn frames(stored: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = stored;
        while !rest.is_empty() {
            let (frame, after) = split_frame(rest).unwrap();
            out.push(stored[stored.len() - rest.len()..stored.len() - after.len()].to_vec());
            assert_eq!(out.last().unwrap().len(), frame.len() + LEN);
            rest = after;
        }
        out
    }

    #[tokio::test]
    async fn sealed_bodies_round_trip_and_refuse_tampering() {
        let data = sample(3 * CHUNK + 17);
        let codec = Codec::Sealed(Arc::new(DataKey::generate()));
        // Written as the blob writer does: whole chunks first, then the rest as the end.
        let mut out = Vec::new();
        encode_into(&codec, 0, &data[..2 * CHUNK], false, &mut out).unwrap();
        encode_into(&codec, 2, &data[2 * CHUNK..], true, &mut out).unwrap();
        assert!(!out.windows(11).any(|w| w == b"hello world"));
        assert_eq!(decode(&codec, out.clone(), data.len() as u64).unwrap(), data);
        assert!(decode(&Codec::Sealed(Arc::new(DataKey::generate())), out.clone(), data.len() as u64).is_err(), "wrong key");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        std::fs::write(&path, &out).unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        let mut r = ChunkReader::new(&codec, data.len() as u64).unwrap();
        for k in [3, 1, 0, 2] {
            let got = r.chunk(&mut file, k).await.unwrap().to_vec();
            assert_eq!(got, data[k * CHUNK..((k + 1) * CHUNK).min(data.len())]);
        }
        let frames = frames(&out);
        // Cut at a chunk boundary: the size says 4 chunks, and the third was not sealed as last.
        let cut: Vec<u8> = frames[..3].concat();
        assert!(decode(&codec, cut.clone(), 3 * CHUNK as u64).is_err());
        assert!(decode(&codec, cut, data.len() as u64).is_err());
        // Two chunks swapped.
        let swapped: Vec<u8> = [frames[1].clone(), frames[0].clone(), frames[2].clone(), frames[3].clone()].concat();
        assert!(decode(&codec, swapped, data.len() as u64).is_err());
        // One flipped bit.
        let mut flipped = out.clone();
        flipped[LEN + 9] ^= 1;
        assert!(decode(&codec, flipped, data.len() as u64).is_err());
        // The streamed reader sees the same.
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut streamed = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut Stream::new(file, data.len() as u64, &codec).unwrap(), &mut streamed).await.unwrap();
        assert_eq!(streamed, data);
    }
}
