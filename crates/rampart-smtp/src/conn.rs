//! The connection driver: bytes in and out, the TLS upgrade and timeouts around a [`Session`].
//!
//! It works on any `AsyncRead + AsyncWrite` stream, so tests run the real driver over an
//! in-memory pipe. Replies are batched and flushed only when no complete command is left in
//! the input buffer, which is what PIPELINING (RFC 2920) asks of a server.

use std::time::Duration;

use memchr::memchr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::reply::Reply;
use crate::session::{Next, Session, TlsInfo};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts TLS on `io` and describes the result. The guard bounds how many handshakes run at
/// once and how long each may take: a handshake costs the server far more than the client.
pub async fn tls_accept(
    acceptor: &rampart_tls::TlsAcceptor,
    io: Box<dyn Io>,
    guard: &rampart_guard::Guard,
) -> std::io::Result<(Box<dyn Io>, TlsInfo)> {
    let busy = || std::io::Error::new(std::io::ErrorKind::TimedOut, "too many TLS handshakes in progress");
    let _permit = guard.handshake_permit().await.ok_or_else(busy)?;
    let stream = tokio::time::timeout(guard.handshake_timeout(), acceptor.accept(io))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let (version, cipher) = rampart_tls::describe(stream.get_ref().1);
    let channel_binding = rampart_tls::channel_binding(stream.get_ref().1);
    Ok((Box::new(stream), TlsInfo { version, cipher, channel_binding }))
}

enum Read {
    Data,
    Eof,
    Timeout,
}

struct Driver {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    start: usize,
    out: Vec<u8>,
    deadline: Instant,
    idle: Duration,
    /// When the command line now arriving must be complete (slow-loris defence).
    line_deadline: Option<Instant>,
}

impl Driver {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.io.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Flushes replies, then waits for more input within the idle and session limits.
    async fn read_more(&mut self) -> std::io::Result<Read> {
        self.flush().await?;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let now = Instant::now();
        let deadline = self.line_deadline.map_or(self.deadline, |l| l.min(self.deadline));
        if now >= deadline {
            return Ok(Read::Timeout);
        }
        let wait = self.idle.min(deadline - now);
        self.buf.reserve(READ_CHUNK);
        match tokio::time::timeout(wait, self.io.read_buf(&mut self.buf)).await {
            Err(_) => Ok(Read::Timeout),
            Ok(Ok(0)) => Ok(Read::Eof),
            Ok(Ok(_)) => Ok(Read::Data),
            Ok(Err(e)) => Err(e),
        }
    }
}

/// Why a connection ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    Closed,
    Timeout,
    Refused,
    TlsFailed,
    IoError,
}

/// Runs a session on a connected stream until it ends. `acceptor` is needed for STARTTLS.
pub async fn run(io: Box<dyn Io>, mut session: Session, acceptor: Option<rampart_tls::TlsAcceptor>) -> End {
    let guard = session.services().guard.clone();
    let settings = session.settings().clone();
    let mut d = Driver {
        io,
        buf: Vec::with_capacity(READ_CHUNK),
        start: 0,
        out: Vec::new(),
        deadline: Instant::now() + settings.session_timeout,
        idle: settings.idle_timeout,
        line_deadline: None,
    };
    if let Some(wait) = session.pregreet_wait() {
        // RFC 5321 §4.3.1: the client waits for the greeting. Whoever talks first is a bot.
        let talked = match tokio::time::timeout(wait, d.io.read_buf(&mut d.buf)).await {
            Err(_) => false,
            Ok(Ok(0)) => return End::Closed,
            Ok(Ok(_)) => true,
            Ok(Err(_)) => return End::IoError,
        };
        if let Some(Next::Close(reply)) = session.pregreet_result(talked).await {
            d.queue(&reply);
            let _ = d.flush().await;
            return End::Refused;
        }
    }
    let greeting = session.greeting();
    d.queue(&greeting);
    match drive(&mut d, &mut session, acceptor.as_ref(), &guard).await {
        Ok(end) => {
            let _ = d.flush().await;
            if end == End::Timeout {
                let _ = d.io.shutdown().await;
            }
            end
        }
        Err(e) => {
            debug!(error = %e, "connection i/o error");
            End::IoError
        }
    }
}

async fn drive(
    d: &mut Driver,
    session: &mut Session,
    acceptor: Option<&rampart_tls::TlsAcceptor>,
    guard: &rampart_guard::Guard,
) -> std::io::Result<End> {
    // After an over-long line, input is dropped up to the next LF.
    let mut skipping = false;
    loop {
        let next = match next_command(d, session, &mut skipping).await? {
            Ok(next) => next,
            Err(end) => return Ok(end),
        };
        // BDAT's chunk follows at once by design; its sync point is checked after the chunk.
        let next = if matches!(next, Next::Bdat { .. }) { next } else { in_sync(d, session, next) };
        let end = match next {
            Next::StartTls(reply) => starttls(d, session, acceptor, guard, reply).await?,
            Next::Data(reply) => receive_data(d, session, reply).await?,
            Next::Bdat { size } => match read_chunk(d, session, size, true).await? {
                Some(end) => Some(end),
                None => {
                    let next = match session.take_sync_point() {
                        Some(after) if !d.pending().is_empty() => session.pipelining_violation(after),
                        _ => session.bdat_end().await,
                    };
                    act(d, next)
                }
            },
            Next::BdatDiscard { size, reply } => {
                let end = read_chunk(d, session, size, false).await?;
                if end.is_none() {
                    d.queue(&reply);
                }
                end
            }
            other => act(d, other),
        };
        if let Some(end) = end {
            return Ok(end);
        }
    }
}

/// `next`, unless the client sent more input before the reply it had to wait for.
fn in_sync(d: &Driver, session: &mut Session, next: Next) -> Next {
    match session.take_sync_point() {
        Some(after) if !d.pending().is_empty() => session.pipelining_violation(after),
        _ => next,
    }
}

/// Reads the next command line and runs it: what the session says to do next, or how the
/// connection ended while waiting. Lines must end in CRLF with no bare CR or LF inside.
async fn next_command(d: &mut Driver, session: &mut Session, skipping: &mut bool) -> std::io::Result<Result<Next, End>> {
    let max_line = session.settings().max_command_line;
    let line_timeout = session.settings().line_timeout;
    loop {
        let Some(lf) = memchr(b'\n', d.pending()) else {
            if !d.pending().is_empty() && d.line_deadline.is_none() {
                d.line_deadline = Some(Instant::now() + line_timeout);
            }
            if *skipping {
                d.start = d.buf.len();
            } else if d.pending().len() >= max_line {
                d.start = d.buf.len();
                *skipping = true;
                if let Some(end) = act(d, session.line_too_long()) {
                    return Ok(Err(end));
                }
            }
            match d.read_more().await? {
                Read::Data => continue,
                Read::Eof => return Ok(Err(End::Closed)),
                Read::Timeout => return Ok(Err(timeout(d, session))),
            }
        };
        let line_start = d.start;
        d.start += lf + 1;
        d.line_deadline = None;
        if *skipping {
            *skipping = false;
            continue;
        }
        let line = &d.buf[line_start..line_start + lf + 1];
        let next = if line.len() > max_line {
            session.line_too_long()
        } else if line.len() < 2 || line[line.len() - 2] != b'\r' || memchr(b'\r', &line[..line.len() - 2]).is_some() {
            session.bad_line_ending()
        } else {
            session.command(&line[..line.len() - 2]).await
        };
        return Ok(Ok(next));
    }
}

/// STARTTLS accepted: the reply goes out in clear, then the handshake.
async fn starttls(
    d: &mut Driver,
    session: &mut Session,
    acceptor: Option<&rampart_tls::TlsAcceptor>,
    guard: &rampart_guard::Guard,
    reply: Reply,
) -> std::io::Result<Option<End>> {
    d.queue(&reply);
    d.flush().await?;
    // CVE-2011-0411: anything the client sent after STARTTLS but before the handshake was
    // sent in clear text and must not be executed inside TLS.
    d.buf.clear();
    d.start = 0;
    let Some(acceptor) = acceptor else { return Ok(Some(End::TlsFailed)) };
    let plain = std::mem::replace(&mut d.io, Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())));
    match tls_accept(acceptor, plain, guard).await {
        Ok((tls, info)) => {
            d.io = tls;
            session.tls_started(info);
            Ok(None)
        }
        Err(e) => {
            info!(event = "tls_failed", listener = session.settings().listener, error = %e);
            Ok(Some(End::TlsFailed))
        }
    }
}

/// After DATA's 354: content until the session sees CRLF.CRLF, then its reply.
async fn receive_data(d: &mut Driver, session: &mut Session, reply: Reply) -> std::io::Result<Option<End>> {
    d.queue(&reply);
    d.line_deadline = None;
    let next = loop {
        match session.data(d.pending()).await {
            Ok(fed) => {
                d.start += fed.consumed;
                if fed.done {
                    break session.data_end().await;
                }
            }
            Err(next) => break next,
        }
        match d.read_more().await? {
            Read::Data => {}
            Read::Eof => return Ok(Some(End::Closed)),
            Read::Timeout => return Ok(Some(timeout(d, session))),
        }
    };
    Ok(act(d, next))
}

/// Queues a reply; returns how the connection ends if it does.
fn act(d: &mut Driver, next: Next) -> Option<End> {
    match next {
        Next::Reply(r) => {
            d.queue(&r);
            None
        }
        Next::Close(r) => {
            d.queue(&r);
            Some(if r.code == 221 { End::Quit } else { End::Refused })
        }
        other => unreachable!("act() handles replies only, got {other:?}"),
    }
}

fn timeout(d: &mut Driver, session: &Session) -> End {
    d.queue(&session.timeout_reply());
    End::Timeout
}

/// Reads exactly `size` bytes of a BDAT chunk, feeding them to the session when `keep`.
async fn read_chunk(d: &mut Driver, session: &mut Session, size: u64, keep: bool) -> std::io::Result<Option<End>> {
    let mut left = size;
    loop {
        let n = (d.pending().len() as u64).min(left) as usize;
        if n > 0 {
            if keep {
                let start = d.start;
                let chunk = &d.buf[start..start + n];
                session.bdat_data(chunk).await;
            }
            d.start += n;
            left -= n as u64;
        }
        if left == 0 {
            return Ok(None);
        }
        match d.read_more().await? {
            Read::Data => {}
            Read::Eof => return Ok(Some(End::Closed)),
            Read::Timeout => return Ok(Some(timeout(d, session))),
        }
    }
}
