//! The clamd client: ClamAV's INSTREAM protocol (clamd(8), "COMMANDS"), over TCP or a Unix
//! socket.
//!
//! A scan sends `zINSTREAM\0`, then the message as chunks — each a 4-byte big-endian length and
//! that many bytes — then a zero length, and reads one NUL-terminated reply:
//! `stream: OK`, `stream: NAME FOUND`, or `... ERROR`.
//!
//! - **Streaming, never a copy.** [`Clamd::scan_bytes`] sends slices of the caller's buffer
//!   as they are; [`Clamd::scan_reader`] reads the caller's stream (a blob file) through one
//!   [`CHUNK`]-sized buffer. Nothing is written to a temporary file and the message is never
//!   held twice.
//! - **StreamMaxLength.** clamd refuses a stream longer than its `StreamMaxLength` (100 MiB by
//!   default, 25 MiB in Debian's packaged clamd.conf): it answers `INSTREAM size limit
//!   exceeded. ERROR` and closes the connection, possibly while we are still sending. We read clamd's reply while sending, so
//!   that answer is seen even when clamd stops reading, and it becomes the typed
//!   [`Error::SizeLimitExceeded`] (the message was *not* scanned: the caller applies
//!   `on_error`). Keep `[filter.antivirus] max_size` at or below StreamMaxLength: messages over
//!   `max_size` are not sent at all and come back as [`Scan::Skipped`].
//! - **Timeouts.** One deadline (`[filter.antivirus] timeout`) bounds each operation — connect,
//!   sending the stream and clamd's answer — so a clamd that hangs cannot hold a session.
//! - **One connection per scan**, no pool: clamd closes the connection after each command
//!   unless the client opens an `IDSESSION`, whose replies are numbered and which clamd runs
//!   one at a time per connection — it would serialise parallel scans. A loopback or Unix
//!   socket connect costs well under a millisecond, against milliseconds of scanning.

use std::io;
use std::time::Duration;

use rampart_config::Antivirus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::net::Address;

/// Size of each INSTREAM chunk, and of the one buffer a reader is streamed through. clamd
/// accepts any chunk up to StreamMaxLength; 64 KiB keeps our memory small and the syscalls few.
pub const CHUNK: usize = 64 * 1024;

/// The longest reply we read. Real replies are a signature name and a few words; a peer that
/// sends more is not clamd.
const MAX_REPLY: usize = 4096;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// clamd scanned the whole message and found nothing.
    Clean,
    /// clamd found a virus: its signature name, e.g. `Win.Test.EICAR_HDB-1`.
    Virus(String),
    /// Not scanned: the message is larger than `max_size` (tag it in the trail).
    Skipped { size: u64 },
}

/// Why clamd could not give an answer; the caller applies `[filter.antivirus] on_error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("clamd address `{0}` is neither host:port nor a socket path")]
    BadAddress(String),
    #[error("clamd at {address} is not reachable (is clamd running?): {source}")]
    Unreachable { address: String, source: io::Error },
    #[error("clamd at {address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("clamd at {address}: connection failed: {source}")]
    Io { address: String, source: io::Error },
    /// clamd's StreamMaxLength is below this message's size: nothing was scanned.
    #[error("clamd at {address} refused the stream as longer than its StreamMaxLength (INSTREAM size limit exceeded); keep filter.antivirus.max_size at or below it")]
    SizeLimitExceeded { address: String },
    /// clamd answered `... ERROR` for another reason (e.g. out of memory, a broken database).
    #[error("clamd at {address} failed: {message}")]
    Clamd { address: String, message: String },
    #[error("clamd at {address} sent an unexpected reply: {reply:?}")]
    UnexpectedReply { address: String, reply: String },
    /// Reading the message the caller handed us failed (the store, not clamd).
    #[error("reading the message to scan failed: {0}")]
    Source(io::Error),
}

/// A clamd to scan with, from `[filter.antivirus]`.
#[derive(Debug, Clone)]
pub struct Clamd {
    address: Address,
    timeout: Duration,
    max_size: u64,
}

impl Clamd {
    /// The client for `[filter.antivirus]`, or `None` when `clamd` is empty (scanning off).
    pub fn from_config(cfg: &Antivirus) -> Result<Option<Clamd>, Error> {
        if cfg.clamd.is_empty() {
            return Ok(None);
        }
        let address = Address::parse(&cfg.clamd).ok_or_else(|| Error::BadAddress(cfg.clamd.clone()))?;
        Ok(Some(Clamd::new(address, cfg.timeout, cfg.max_size)))
    }

    pub fn new(address: Address, timeout: Duration, max_size: u64) -> Clamd {
        Clamd { address, timeout, max_size }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// `PING` → `PONG`: is clamd there? Meant for start-up, to log clearly when it is absent.
    pub async fn ping(&self) -> Result<(), Error> {
        match self.command(b"zPING\0").await?.as_str() {
            "PONG" => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// `VERSION`, e.g. `ClamAV 1.4.6/...`, for the start-up log line.
    pub async fn version(&self) -> Result<String, Error> {
        self.command(b"zVERSION\0").await
    }

    /// Scans a message held in memory, sending slices of it (no copy).
    pub async fn scan_bytes(&self, message: &[u8]) -> Result<Scan, Error> {
        let size = message.len() as u64;
        if size > self.max_size {
            return Ok(Scan::Skipped { size });
        }
        self.instream(Slices { data: message }).await
    }

    /// Scans a message read from `reader` (a blob file) through one [`CHUNK`] buffer. `size` is
    /// its length as stored: over `max_size` it is skipped without being read. Should the reader
    /// give more than `max_size` bytes after all, the scan stops there and says
    /// [`Scan::Skipped`] with the bytes seen so far.
    pub async fn scan_reader<R: AsyncRead + Unpin>(&self, reader: R, size: u64) -> Result<Scan, Error> {
        if size > self.max_size {
            return Ok(Scan::Skipped { size });
        }
        let chunks = Reader { reader, buf: vec![0; CHUNK], seen: 0, max: self.max_size };
        self.instream(chunks).await
    }

    /// Sends a one-word command and returns the reply, all within the timeout.
    async fn command(&self, cmd: &[u8]) -> Result<String, Error> {
        let exchange = async {
            let mut s = self.connect().await?;
            s.write_all(cmd).await.map_err(|e| self.io(e))?;
            read_reply(&mut s).await.map_err(|e| self.io(e))
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or_else(|_| Err(self.timed_out()))
    }

    async fn instream<C: Chunks>(&self, chunks: C) -> Result<Scan, Error> {
        let scan = async {
            let stream = self.connect().await?;
            match stream_and_read(stream, chunks).await {
                Ok(Sent::Whole(reply)) => self.verdict(&reply),
                Ok(Sent::TooLong(size)) => Ok(Scan::Skipped { size }),
                Err(Failure::Source(e)) => Err(Error::Source(e)),
                Err(Failure::Clamd(e)) => Err(self.io(e)),
            }
        };
        tokio::time::timeout(self.timeout, scan).await.unwrap_or_else(|_| Err(self.timed_out()))
    }

    /// clamd's INSTREAM answers (clamd/session.c, clamd/scanner.c).
    fn verdict(&self, reply: &str) -> Result<Scan, Error> {
        if reply == "stream: OK" {
            return Ok(Scan::Clean);
        }
        if let Some(name) = reply.strip_prefix("stream: ").and_then(|r| r.strip_suffix(" FOUND")) {
            return Ok(Scan::Virus(name.to_string()));
        }
        if reply.starts_with("INSTREAM size limit exceeded") {
            return Err(Error::SizeLimitExceeded { address: self.address.to_string() });
        }
        if let Some(message) = reply.strip_suffix(" ERROR") {
            let message = message.strip_prefix("stream: ").unwrap_or(message).to_string();
            return Err(Error::Clamd { address: self.address.to_string(), message });
        }
        Err(self.unexpected(reply))
    }

    async fn connect(&self) -> Result<Box<dyn crate::net::Stream>, Error> {
        self.address
            .connect(self.timeout)
            .await
            .map_err(|source| Error::Unreachable { address: self.address.to_string(), source })
    }

    fn io(&self, source: io::Error) -> Error {
        Error::Io { address: self.address.to_string(), source }
    }

    fn timed_out(&self) -> Error {
        Error::Timeout { address: self.address.to_string(), timeout: self.timeout }
    }

    fn unexpected(&self, reply: &str) -> Error {
        Error::UnexpectedReply { address: self.address.to_string(), reply: reply.to_string() }
    }
}

/// How sending ended when clamd answered.
enum Sent {
    /// clamd's reply (after the whole stream, or early: then it says why it stopped reading).
    Whole(String),
    /// The reader gave more than `max_size`: stopped, nothing to ask clamd.
    TooLong(u64),
}

enum Failure {
    Source(io::Error),
    Clamd(io::Error),
}

/// Sends the stream while reading clamd's reply, so a reply clamd sends before the end (the
/// StreamMaxLength refusal) is read even though clamd has stopped reading and our writes fail.
async fn stream_and_read<S: AsyncRead + AsyncWrite, C: Chunks>(stream: S, mut chunks: C) -> Result<Sent, Failure> {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reply = read_reply(&mut rd);
    let send = send_stream(&mut wr, &mut chunks);
    tokio::pin!(reply, send);
    tokio::select! {
        r = &mut reply => return r.map(Sent::Whole).map_err(Failure::Clamd),
        s = &mut send => match s {
            Ok(Some(size)) => return Ok(Sent::TooLong(size)),
            Ok(None) => {}
            Err(Failure::Source(e)) => return Err(Failure::Source(e)),
            // clamd closed its end: its reply, if it sent one, says why.
            Err(Failure::Clamd(_)) => {}
        },
    }
    reply.await.map(Sent::Whole).map_err(Failure::Clamd)
}

/// `zINSTREAM\0`, the chunks, the zero-length end. `Some(size)` when the source ran past its
/// limit (nothing more is sent; the caller drops the connection).
async fn send_stream<W: AsyncWrite + Unpin, C: Chunks>(wr: &mut W, chunks: &mut C) -> Result<Option<u64>, Failure> {
    wr.write_all(b"zINSTREAM\0").await.map_err(Failure::Clamd)?;
    loop {
        let chunk = match chunks.next().await {
            Ok(Next::Chunk(c)) => c,
            Ok(Next::End) => break,
            Ok(Next::TooLong(size)) => return Ok(Some(size)),
            Err(e) => return Err(Failure::Source(e)),
        };
        // A chunk is at most CHUNK bytes, so its length fits the 4-byte field.
        let len = u32::try_from(chunk.len()).expect("chunks are at most CHUNK bytes");
        wr.write_all(&len.to_be_bytes()).await.map_err(Failure::Clamd)?;
        wr.write_all(chunk).await.map_err(Failure::Clamd)?;
    }
    wr.write_all(&[0, 0, 0, 0]).await.map_err(Failure::Clamd)?;
    wr.flush().await.map_err(Failure::Clamd)?;
    Ok(None)
}

/// A reply ends at NUL (the `z` form of each command) or when clamd closes the connection.
async fn read_reply<R: AsyncRead + Unpin>(rd: &mut R) -> io::Result<String> {
    let mut reply = Vec::new();
    let mut byte = [0u8; 256];
    loop {
        let n = rd.read(&mut byte).await?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&byte[..n]);
        if let Some(end) = reply.iter().position(|&b| b == 0) {
            reply.truncate(end);
            break;
        }
        if reply.len() > MAX_REPLY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "reply longer than 4 KiB"));
        }
    }
    if reply.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed without a reply"));
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
}

enum Next<'a> {
    Chunk(&'a [u8]),
    End,
    TooLong(u64),
}

/// Where the chunks come from: the caller's buffer or the caller's reader.
trait Chunks {
    async fn next(&mut self) -> io::Result<Next<'_>>;
}

struct Slices<'a> {
    data: &'a [u8],
}

impl Chunks for Slices<'_> {
    async fn next(&mut self) -> io::Result<Next<'_>> {
        if self.data.is_empty() {
            return Ok(Next::End);
        }
        let (chunk, rest) = self.data.split_at(self.data.len().min(CHUNK));
        self.data = rest;
        Ok(Next::Chunk(chunk))
    }
}

struct Reader<R> {
    reader: R,
    buf: Vec<u8>,
    seen: u64,
    max: u64,
}

impl<R: AsyncRead + Unpin> Chunks for Reader<R> {
    /// Fills the buffer (a reader may return a few bytes at a time) so chunks stay large.
    async fn next(&mut self) -> io::Result<Next<'_>> {
        let mut filled = 0;
        while filled < self.buf.len() {
            let n = self.reader.read(&mut self.buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.seen += filled as u64;
        if self.seen > self.max {
            return Ok(Next::TooLong(self.seen));
        }
        Ok(if filled == 0 { Next::End } else { Next::Chunk(&self.buf[..filled]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clamd() -> Clamd {
        Clamd::new(Address::Tcp("127.0.0.1:1".into()), Duration::from_secs(1), 100)
    }

    /// The SMTP server runs scans on spawned tasks.
    #[test]
    fn scans_can_run_on_any_thread() {
        fn send<T: Send>(_: T) {}
        let c = clamd();
        send(c.scan_bytes(b""));
        send(c.scan_reader(tokio::io::empty(), 0));
        send(c.ping());
    }

    #[test]
    fn replies_map_to_typed_results() {
        let c = clamd();
        assert_eq!(c.verdict("stream: OK").unwrap(), Scan::Clean);
        assert_eq!(c.verdict("stream: Test.EICAR.UNOFFICIAL FOUND").unwrap(), Scan::Virus("Test.EICAR.UNOFFICIAL".into()));
        assert!(matches!(c.verdict("INSTREAM size limit exceeded. ERROR"), Err(Error::SizeLimitExceeded { .. })));
        let Err(Error::Clamd { message, .. }) = c.verdict("stream: Can't allocate memory ERROR") else { panic!() };
        assert_eq!(message, "Can't allocate memory");
        assert!(matches!(c.verdict("HELLO"), Err(Error::UnexpectedReply { .. })));
    }

    /// The bytes on the wire, read back by a fake clamd over an in-memory pipe.
    #[tokio::test]
    async fn the_stream_is_framed_in_chunks_with_a_zero_end() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let message = vec![b'x'; CHUNK + 10];
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(&[0, 0, 0, 0]) {
                let n = theirs.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            theirs.write_all(b"stream: OK\0").await.unwrap();
            got
        });
        let reader = Reader { reader: &message[..], buf: vec![0; CHUNK], seen: 0, max: u64::MAX };
        let Ok(Sent::Whole(reply)) = stream_and_read(ours, reader).await else { panic!() };
        assert_eq!(reply, "stream: OK");
        let got = server.await.unwrap();
        let mut want = b"zINSTREAM\0".to_vec();
        want.extend_from_slice(&(CHUNK as u32).to_be_bytes());
        want.extend_from_slice(&message[..CHUNK]);
        want.extend_from_slice(&10u32.to_be_bytes());
        want.extend_from_slice(&message[CHUNK..]);
        want.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(got, want);
    }

    /// clamd answers and stops reading mid-stream: the answer wins over the failed writes.
    #[tokio::test]
    async fn an_early_reply_is_read_while_sending() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let _ = theirs.read(&mut buf).await;
            theirs.write_all(b"INSTREAM size limit exceeded. ERROR\0").await.unwrap();
            // Keep the pipe open but never read again: our writes block on a full buffer.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let big = vec![0u8; 1 << 20];
        let Ok(Sent::Whole(reply)) = stream_and_read(ours, Slices { data: &big }).await else { panic!() };
        assert_eq!(reply, "INSTREAM size limit exceeded. ERROR");
    }

    #[tokio::test]
    async fn a_reader_longer_than_max_size_stops() {
        let data = vec![1u8; 300];
        let mut r = Reader { reader: &data[..], buf: vec![0; CHUNK], seen: 0, max: 100 };
        assert!(matches!(r.next().await.unwrap(), Next::TooLong(300)));
        assert_eq!(clamd().scan_bytes(&data).await.unwrap(), Scan::Skipped { size: 300 });
        assert_eq!(clamd().scan_reader(&data[..], 300).await.unwrap(), Scan::Skipped { size: 300 });
    }
}
