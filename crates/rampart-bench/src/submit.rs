//! `submit`: N messages over S SMTP sessions (STARTTLS, AUTH PLAIN unless told not to,
//! MAIL/RCPT/DATA pipelined as RFC 2920 allows), for the outbound benchmark: the server queues
//! them for a remote domain. Prints when the first and the last message were accepted, as
//! Unix times, so the benchmark can time delivery from the first acceptance.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_rustls::TlsConnector;

pub struct Options {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub login: bool,
    pub messages: usize,
    pub sessions: usize,
    pub rcpt_domain: String,
}

struct Smtp<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    /// One complete reply: its code and text.
    async fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        loop {
            // A reply ends at a line whose code is followed by a space.
            let mut start = 0;
            while let Some(lf) = memchr::memchr(b'\n', &self.buf[start..]) {
                let line = &self.buf[start..start + lf + 1];
                if line.len() >= 4 && line[3] == b' ' {
                    let code = std::str::from_utf8(&line[..3])?.parse()?;
                    let text = String::from_utf8_lossy(&self.buf[..start + lf + 1]).into_owned();
                    self.buf.drain(..start + lf + 1);
                    return Ok((code, text));
                }
                start += lf + 1;
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<()> {
        let (got, text) = self.reply().await?;
        if got != code {
            bail!("{what}: {}", text.trim_end());
        }
        Ok(())
    }

    async fn command(&mut self, line: &str, code: u16) -> anyhow::Result<()> {
        self.io.write_all(format!("{line}\r\n").as_bytes()).await?;
        self.expect(code, line.split(' ').next().unwrap_or(line)).await
    }
}

fn message(n: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: outbound {n}\r\nMessage-ID: <{n}.{}@bench.test>\r\n\
         Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n",
        rand::random::<u64>()
    )
    .into_bytes();
    while m.len() < 4096 {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    m.extend_from_slice(b".\r\n");
    m
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// One session: messages `first..first + count`; returns when its first and last were accepted.
/// It connects, starts TLS and logs in, then waits at `ready` until every session has: the
/// clock starts at the first acceptance, and a session still doing its handshake and login
/// (an argon2id verification, ~20 ms of CPU by design) would otherwise spend a connection's
/// one-time cost inside the window that measures relaying.
async fn session(o: &Options, tls: &TlsConnector, ready: &Barrier, first: usize, count: usize) -> anyhow::Result<(f64, f64)> {
    let setup = async {
        let tcp = TcpStream::connect(o.addr).await?;
        tcp.set_nodelay(true)?;
        let mut plain = Smtp { io: tcp, buf: Vec::new() };
        plain.expect(220, "greeting").await?;
        plain.command("EHLO client.bench.test", 250).await?;
        plain.command("STARTTLS", 220).await?;
        let io = tls.connect("localhost".try_into().expect("valid name"), plain.io).await?;
        let mut c = Smtp { io, buf: Vec::new() };
        c.command("EHLO client.bench.test", 250).await?;
        if o.login {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", o.user, o.password));
            c.command(&format!("AUTH PLAIN {token}"), 235).await?;
        }
        anyhow::Ok(c)
    }
    .await;
    // Waited for even by a session that failed, so that the others are not left waiting.
    ready.wait().await;
    let mut c = setup?;
    let (mut first_at, mut last_at) = (0.0, 0.0);
    for n in first..first + count {
        let to = format!("sink{}@{}", n % 10, o.rcpt_domain);
        c.io.write_all(format!("MAIL FROM:<{}>\r\nRCPT TO:<{to}>\r\nDATA\r\n", o.user).as_bytes()).await?;
        c.expect(250, "MAIL").await?;
        c.expect(250, "RCPT").await?;
        c.expect(354, "DATA").await?;
        c.io.write_all(&message(n, &o.user, &to)).await?;
        c.expect(250, "end of data").await?;
        last_at = unix_now();
        if n == first {
            first_at = last_at;
        }
    }
    c.command("QUIT", 221).await?;
    Ok((first_at, last_at))
}

pub async fn run(o: Options, tls: TlsConnector) -> anyhow::Result<()> {
    let o = std::sync::Arc::new(o);
    let mut tasks = Vec::new();
    let mut first = 0;
    let ready = std::sync::Arc::new(Barrier::new(o.sessions));
    for s in 0..o.sessions {
        let count = o.messages / o.sessions + usize::from(s < o.messages % o.sessions);
        let (o, tls, ready) = (o.clone(), tls.clone(), ready.clone());
        tasks.push(tokio::spawn(async move { session(&o, &tls, &ready, first, count).await }));
        first += count;
    }
    let (mut first_at, mut last_at) = (f64::MAX, 0.0f64);
    for t in tasks {
        let (f, l) = t.await?.context("submission session")?;
        first_at = first_at.min(f);
        last_at = last_at.max(l);
    }
    println!("{{\"first\": {first_at:.6}, \"last\": {last_at:.6}, \"messages\": {}}}", o.messages);
    Ok(())
}
