//! The connection driver: bytes in and out, literals and their limits, STARTTLS, COMPRESS,
//! IDLE, SASL continuations and timeouts around a [`Session`].
//!
//! Commands are framed here, line by line: a line that ends in a literal announcement
//! (`{N}` or `{N+}`, RFC 3501 §4.3, RFC 7888) is checked against the limits of the session's
//! state *before* any of the literal is read — a few KiB before login, APPENDLIMIT after —
//! so an announced 1 GiB literal costs nothing: a synchronizing one is refused with
//! `BAD [TOOBIG]` and never sent, a non-synchronizing one ends the connection. The complete
//! command then goes to the pure [`crate::parser::parse`].
//!
//! It works on any `AsyncRead + AsyncWrite` stream, so tests run the real driver over an
//! in-memory pipe.

use std::time::Duration;

use memchr::memchr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use crate::parser::{self, is_append, literal_announcement};
use crate::session::{Next, Output, Session, Settings};

/// Before login a client has this long per command: enough for a person typing, short
/// enough that idle unauthenticated connections do not pile up.
pub const PREAUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// IDLE re-checks the mailbox this often even without a wake-up, for changes made by
/// another process (the command line) that the in-process notification does not see. Long,
/// because every server-side change already wakes IDLE at once and 10,000 idle clients
/// polling often would keep the store busy for nothing.
pub const IDLE_POLL: Duration = Duration::from_secs(120);
/// APPEND literals larger than this stream to a blob file instead of memory; so do smaller
/// ones once an APPEND's command holds this much, so MULTIAPPEND's memory stays bounded too.
const STREAM_APPEND_AT: u64 = 64 * 1024;
/// One MULTIAPPEND (RFC 3502) takes at most this many messages and this many times
/// APPENDLIMIT in all: the messages wait in blob files until the last one has arrived.
const MULTIAPPEND_MAX_MESSAGES: usize = 1000;
const MULTIAPPEND_MAX_FACTOR: u64 = 10;
/// Bytes of a dropped over-long line kept to find its tag for the BAD reply.
const TAG_PEEK: usize = 64;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes asked of the socket per read while a client idles.
const IDLE_READ: usize = 256;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts TLS on `io`; also returns the connection's `tls-exporter` channel binding. The
/// guard bounds how many handshakes run at once and how long each may take.
pub async fn tls_accept(
    acceptor: &rampart_tls::TlsAcceptor,
    io: Box<dyn Io>,
    guard: &rampart_guard::Guard,
) -> std::io::Result<(Box<dyn Io>, Option<Vec<u8>>)> {
    let busy = || std::io::Error::new(std::io::ErrorKind::TimedOut, "too many TLS handshakes in progress");
    let _permit = guard.handshake_permit().await.ok_or_else(busy)?;
    let stream = tokio::time::timeout(guard.handshake_timeout(), acceptor.accept(io))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let cb = rampart_tls::channel_binding(stream.get_ref().1);
    Ok((Box::new(stream), cb))
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Logout,
    Closed,
    Timeout,
    Refused,
    TlsFailed,
    IoError,
}

struct Driver {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
}

impl Output for Driver {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.io.flush().await?;
            self.out.clear();
        }
        Ok(())
    }
}

enum Line {
    Full(Vec<u8>),
    /// The line was over the limit and dropped; its first bytes name the tag.
    TooLong(Vec<u8>),
    Eof,
    Timeout,
}

impl Driver {
    /// RFC 4978: from here on both directions are raw DEFLATE (RFC 1951). Input already read
    /// past the COMPRESS command is compressed too, so it goes into the decoder first. Each
    /// flush of the encoder ends in a sync flush, so every reply reaches the client whole.
    fn compress(&mut self) {
        use async_compression::tokio::{bufread::DeflateDecoder, write::DeflateEncoder};
        let early = std::io::Cursor::new(self.pending().to_vec());
        self.buf.clear();
        self.start = 0;
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())));
        let (rx, tx) = tokio::io::split(plain);
        let rx = DeflateDecoder::new(tokio::io::BufReader::new(early.chain(rx)));
        self.io = Box::new(tokio::io::join(rx, DeflateEncoder::new(tx)));
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Reads more input; false at EOF.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.compact();
        self.buf.reserve(READ_CHUNK);
        Ok(self.io.read_buf(&mut self.buf).await? > 0)
    }

    /// The next line without its line ending (CRLF, or a bare LF from lenient clients).
    /// Never holds more than `max` bytes of a line: a longer one is dropped up to its end.
    async fn line(&mut self, max: usize, wait: Duration) -> std::io::Result<Line> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut skipped: Option<Vec<u8>> = None;
        loop {
            if let Some(lf) = memchr(b'\n', self.pending()) {
                let start = self.start;
                self.start += lf + 1;
                if let Some(head) = skipped {
                    return Ok(Line::TooLong(head));
                }
                if lf > max {
                    return Ok(Line::TooLong(self.buf[start..start + TAG_PEEK.min(lf)].to_vec()));
                }
                let mut line = self.buf[start..start + lf].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Full(line));
            }
            if self.pending().len() > max {
                if skipped.is_none() {
                    skipped = Some(self.pending()[..TAG_PEEK.min(self.pending().len())].to_vec());
                }
                self.start = self.buf.len();
            }
            self.flush().await?;
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return Ok(Line::Timeout),
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Ok(Line::Eof),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Streams exactly `n` bytes of input into a new blob. None at EOF or timeout. A store
    /// error is kept (the bytes are still consumed) and answered by the APPEND.
    async fn stream_to_blob(
        &mut self,
        session: &Session,
        n: u64,
        wait: Duration,
    ) -> std::io::Result<Option<Result<rampart_store::BlobWriter, String>>> {
        let mut staged = session.services().store.blob_writer().map_err(|e| e.chain().to_string());
        let mut left = n;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let take = (self.pending().len() as u64).min(left) as usize;
            if take > 0 {
                if let Ok(w) = &mut staged
                    && let Err(e) = w.write(&self.buf[self.start..self.start + take]).await {
                        staged = Err(e.chain().to_string());
                    }
                self.start += take;
                left -= take as u64;
            }
            if left == 0 {
                return Ok(Some(staged));
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) | Ok(Ok(false)) => return Ok(None),
                Ok(Ok(true)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Appends exactly `n` bytes of input to `into`.
    async fn exact(&mut self, into: &mut Vec<u8>, n: u64, wait: Duration) -> std::io::Result<Option<End>> {
        let mut left = n;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let take = (self.pending().len() as u64).min(left) as usize;
            into.extend_from_slice(&self.buf[self.start..self.start + take]);
            self.start += take;
            left -= take as u64;
            if left == 0 {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return Ok(Some(End::Timeout)),
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Ok(Some(End::Closed)),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

/// Runs a session on a connected stream until it ends. `acceptor` is needed for STARTTLS.
pub async fn run(io: Box<dyn Io>, mut session: Session, acceptor: Option<rampart_tls::TlsAcceptor>) -> End {
    let mut d = Driver { io, buf: Vec::with_capacity(READ_CHUNK), start: 0, out: Vec::new() };
    session.greeting(&mut d.out);
    match drive(&mut d, &mut session, acceptor.as_ref()).await {
        Ok(end) => {
            let _ = d.flush().await;
            let _ = d.io.shutdown().await;
            end
        }
        Err(e) => {
            debug!(error = %e, "connection i/o error");
            End::IoError
        }
    }
}

/// Holds a session to `guard.imap_commands_per_second`: a client faster than that is slowed
/// down, not cut off, so one connection cannot keep the store busy alone.
struct Pace {
    second: tokio::time::Instant,
    count: u32,
    limit: u32,
}

impl Pace {
    /// Allowlisted addresses and `limit_exceptions` (this host, monitoring) are not paced.
    fn for_session(session: &Session) -> Pace {
        let guard = &session.services().guard;
        let limit = if guard.is_limit_exempt(session.remote_ip()) { 0 } else { guard.imap_commands_per_second() };
        Pace { second: tokio::time::Instant::now(), count: 0, limit }
    }

    async fn tick(&mut self) {
        if self.limit == 0 {
            return;
        }
        let now = tokio::time::Instant::now();
        if now >= self.second + Duration::from_secs(1) {
            self.second = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count > self.limit {
            tokio::time::sleep_until(self.second + Duration::from_secs(1)).await;
            self.second = tokio::time::Instant::now();
            self.count = 1;
        }
    }
}

/// Frames commands line by line, reads (or refuses) their literals, and runs each complete
/// command, until the connection ends.
async fn drive(d: &mut Driver, session: &mut Session, acceptor: Option<&rampart_tls::TlsAcceptor>) -> std::io::Result<End> {
    let settings = session.settings().clone();
    let mut cmd: Vec<u8> = Vec::new();
    let mut pace = Pace::for_session(session);
    loop {
        let authenticated = session.is_authenticated();
        let wait = if authenticated { settings.idle_timeout } else { PREAUTH_TIMEOUT.min(settings.idle_timeout) };
        let line = match d.line(settings.max_command_line, wait).await? {
            Line::Full(l) => l,
            Line::TooLong(head) => {
                let tag = parser::tag_of(if cmd.is_empty() { &head } else { &cmd }).map(str::to_string);
                cmd.clear();
                if session.too_big(&mut d.out, tag.as_deref(), "Command line too long") == Next::Close {
                    return Ok(End::Refused);
                }
                continue;
            }
            Line::Eof => return Ok(End::Closed),
            Line::Timeout => {
                session.bye_timeout(&mut d.out);
                return Ok(End::Timeout);
            }
        };
        if cmd.is_empty() && line.is_empty() {
            // RFC 3501 has no empty commands; ignore stray blank lines as other servers do.
            continue;
        }
        cmd.extend_from_slice(&line);
        if let Some((size, sync)) = literal_announcement(&line) {
            // The command goes on after the literal, on the next line.
            if let Some(end) = literal(d, session, &mut cmd, size, sync, wait).await? {
                return Ok(end);
            }
            continue;
        }
        pace.tick().await;
        let next = execute(d, session, std::mem::take(&mut cmd)).await;
        if let Some(end) = follow(d, session, next, acceptor).await? {
            return Ok(end);
        }
        // Replies to pipelined commands are batched until the input runs dry, but never past
        // this: a client that sends many commands and reads nothing must not make the server
        // buffer every answer (the socket's back-pressure then holds it).
        if d.out.len() >= crate::session::FLUSH_AT {
            d.flush().await?;
        }
    }
}

/// The largest literal `cmd` may announce, and the largest the whole command may grow to,
/// in the session's state: a few KiB before login, APPENDLIMIT for an APPEND, the command
/// limit otherwise.
fn literal_limits(settings: &Settings, authenticated: bool, cmd: &[u8]) -> (u64, u64) {
    if !authenticated {
        (settings.max_literal_preauth, settings.max_literal_preauth + settings.max_command_line as u64)
    } else if is_append(cmd) {
        (settings.max_append_size, settings.max_append_size + settings.max_command_size)
    } else {
        (settings.max_command_size, settings.max_command_size)
    }
}

/// The literal of `size` octets announced at the end of `cmd`: refused before a byte of it is
/// read when it is over the limits, streamed to a blob for a large APPEND, else read into
/// `cmd`. Some when the connection ends.
async fn literal(d: &mut Driver, session: &mut Session, cmd: &mut Vec<u8>, size: u64, sync: bool, wait: Duration) -> std::io::Result<Option<End>> {
    let authenticated = session.is_authenticated();
    let (literal_max, total_max) = literal_limits(session.settings(), authenticated, cmd);
    let total = (cmd.len() as u64).saturating_add(size);
    let (staged, staged_bytes) = session.staged_append();
    let append_max = session.settings().max_append_size.saturating_mul(MULTIAPPEND_MAX_FACTOR);
    let too_many = staged >= MULTIAPPEND_MAX_MESSAGES || staged_bytes.saturating_add(size) > append_max;
    if size > literal_max || total > total_max || too_many {
        session.discard_staged_append();
        let tag = parser::tag_of(cmd).map(str::to_string);
        info!(
            event = "literal_refused", proto = "imap", ip = %session_ip(session), size,
            limit = literal_max, authenticated
        );
        *cmd = Vec::new();
        if !sync {
            // RFC 7888 §4: the client sends a non-synchronizing literal regardless;
            // reading it would be the very cost we refuse, so the connection ends.
            d.out.extend_from_slice(b"* BYE [TOOBIG] Literal too large\r\n");
            return Ok(Some(End::Refused));
        }
        if session.too_big(&mut d.out, tag.as_deref(), "Literal too large") == Next::Close {
            return Ok(Some(End::Refused));
        }
        return Ok(None);
    }
    if sync {
        d.out.extend_from_slice(b"+ Ready for literal data\r\n");
        d.flush().await?;
    }
    if authenticated && is_append(cmd) && total > STREAM_APPEND_AT {
        // The message goes straight to a blob file: an APPEND holds at most the blob
        // writer's buffer in memory, whatever its size. The parser sees an empty
        // literal in its place, and the session finds the blob by where it is.
        let staged = d.stream_to_blob(session, size, wait).await?;
        let Some(staged) = staged else { return Ok(Some(End::Closed)) };
        let open = memchr::memrchr(b'{', cmd).unwrap_or(cmd.len());
        cmd.truncate(open);
        cmd.extend_from_slice(b"{0}\r\n");
        session.stage_append(open, staged);
        return Ok(None);
    }
    cmd.extend_from_slice(b"\r\n");
    d.exact(cmd, size, wait).await
}

/// Parses a complete command and runs it; the session answers a parse error (and counts it).
async fn execute(d: &mut Driver, session: &mut Session, cmd: Vec<u8>) -> Next {
    let parsed = parser::parse(&cmd);
    if !matches!(parsed, Ok(parser::Command { kind: parser::Kind::Append { .. }, .. })) {
        // A staged message belongs to an APPEND only; anything else drops (deletes) it.
        session.discard_staged_append();
    }
    match parsed {
        Ok(c) => {
            // The parsed command holds what it needs: the framed bytes (a literal may be
            // large) are freed before it runs.
            drop(cmd);
            // Boxed: the command future holds every handler's state, too much for the
            // stack of a worker thread in debug builds.
            Box::pin(session.command(c, d)).await
        }
        Err(e) => session.parse_error(&mut d.out, &cmd, e),
    }
}

fn session_ip(session: &Session) -> std::net::IpAddr {
    session.remote_ip()
}

/// Carries out what the session asked for after a command.
async fn follow(
    d: &mut Driver,
    session: &mut Session,
    mut next: Next,
    acceptor: Option<&rampart_tls::TlsAcceptor>,
) -> std::io::Result<Option<End>> {
    let settings = session.settings().clone();
    loop {
        match next {
            Next::Continue => return Ok(None),
            Next::Close => {
                return Ok(Some(if session.is_logged_out() { End::Logout } else { End::Refused }));
            }
            Next::StartTls => {
                d.flush().await?;
                // Anything the client sent after STARTTLS but before the handshake came in
                // clear text and must not be executed inside TLS (CVE-2011-0411 family).
                d.buf.clear();
                d.start = 0;
                let Some(acceptor) = acceptor else { return Ok(Some(End::TlsFailed)) };
                let plain = std::mem::replace(&mut d.io, Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())));
                match tls_accept(acceptor, plain, &session.services().guard).await {
                    Ok((tls, cb)) => {
                        d.io = tls;
                        session.tls_started(cb);
                        return Ok(None);
                    }
                    Err(e) => {
                        info!(event = "tls_failed", proto = "imap", listener = settings.listener, ip = %session.remote_ip(), error = %e);
                        return Ok(Some(End::TlsFailed));
                    }
                }
            }
            Next::Compress => {
                d.flush().await?;
                d.compress();
                return Ok(None);
            }
            Next::AuthContinue => {
                let line = match d.line(settings.max_command_line, PREAUTH_TIMEOUT).await? {
                    Line::Full(l) => l,
                    Line::TooLong(_) => b"*".to_vec(),
                    Line::Eof => return Ok(Some(End::Closed)),
                    Line::Timeout => return Ok(Some(End::Timeout)),
                };
                next = Box::pin(session.auth_line(&mut d.out, &line)).await;
            }
            Next::Idle => {
                next = Box::pin(idle(d, session, &settings)).await?;
                if next == Next::Close && !session.is_authenticated() {
                    return Ok(Some(End::Closed));
                }
                if let Next::Close = next {
                    return Ok(Some(End::Timeout));
                }
            }
        }
    }
}

/// RFC 2177 IDLE: report changes as they happen until the client sends DONE.
async fn idle(d: &mut Driver, session: &mut Session, settings: &Settings) -> std::io::Result<Next> {
    d.flush().await?;
    let mut watch = session.watch();
    // RFC 5465 NOTIFY: the other watched mailboxes wake the session too.
    let mut others = session.notify_watches();
    let deadline = tokio::time::Instant::now() + settings.idle_timeout;
    loop {
        if let Some(lf) = memchr(b'\n', d.pending()) {
            let start = d.start;
            d.start += lf + 1;
            let mut line = d.buf[start..start + lf].to_vec();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(session.idle_done(&mut d.out, &line).await);
        }
        if d.pending().len() > settings.max_command_line {
            return Ok(session.idle_done(&mut d.out, b"").await);
        }
        d.compact();
        // An idling client sends only "DONE": thousands of them should not each hold a full
        // read buffer.
        d.buf.shrink_to(IDLE_READ);
        d.buf.reserve(IDLE_READ);
        let changed = async {
            match watch.as_mut() {
                Some(w) => {
                    if w.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let changed = async {
            tokio::select! {
                _ = changed => {}
                _ = any_changed(&mut others) => {}
            }
        };
        tokio::select! {
            read = d.io.read_buf(&mut d.buf) => {
                if read? == 0 {
                    return Ok(Next::Close);
                }
            }
            _ = changed => {
                if !session.idle_changed(&mut d.out).await {
                    return Ok(Next::Close);
                }
                d.flush().await?;
            }
            _ = tokio::time::sleep(IDLE_POLL) => {
                if !session.idle_changed(&mut d.out).await {
                    return Ok(Next::Close);
                }
                d.flush().await?;
            }
            _ = tokio::time::sleep_until(deadline) => {
                session.bye_timeout(&mut d.out);
                return Ok(Next::Close);
            }
        }
    }
}

/// Resolves when any of the receivers sees a change; never when there are none (or all
/// their senders are gone).
async fn any_changed(receivers: &mut [tokio::sync::watch::Receiver<u64>]) {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    type Changed<'a> = Pin<Box<dyn Future<Output = Result<(), tokio::sync::watch::error::RecvError>> + Send + 'a>>;
    let mut waiting: Vec<Option<Changed<'_>>> = receivers.iter_mut().map(|r| Some(Box::pin(r.changed()) as Changed<'_>)).collect();
    std::future::poll_fn(|cx| {
        for slot in waiting.iter_mut() {
            let Some(f) = slot else { continue };
            match f.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(()),
                // The mailbox is gone: its watch never fires again.
                Poll::Ready(Err(_)) => *slot = None,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pace_holds_a_fast_client_to_the_limit() {
        let start = tokio::time::Instant::now();
        let mut pace = Pace { second: start, count: 0, limit: 10 };
        for _ in 0..35 {
            pace.tick().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(4), "{took:?}");
        let mut free = Pace { second: start, count: 0, limit: 0 };
        let before = tokio::time::Instant::now();
        for _ in 0..1000 {
            free.tick().await;
        }
        assert_eq!(before.elapsed(), Duration::ZERO);
    }
}
