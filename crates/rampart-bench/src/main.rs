//! Load generators for `bench/run.py`, the same for Rampart and Dovecot.
//!
//! - `populate`: APPENDs messages to users' INBOXes;
//! - `mix`: N clients loop over a realistic session for a fixed time — LOGIN, SELECT, FETCH
//!   flags, FETCH bodies, STORE flags, APPEND, EXPUNGE, LOGOUT — and report operations per
//!   second and latency percentiles as one JSON line;
//! - `idle`: opens N logged-in connections in IDLE and holds them until killed.
//!
//! All over implicit TLS (993) with certificate checks off: this measures servers, not PKI.
//! `submit` (SMTP submission over STARTTLS, for the outbound benchmark) is in [`submit`].
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

mod submit;

#[derive(Parser)]
struct Cli {
    /// The server's implicit-TLS IMAP address.
    #[arg(long)]
    addr: SocketAddr,
    /// Users are `{prefix}{n}@{domain}` for n in 1..=users.
    #[arg(long, default_value = "user")]
    prefix: String,
    #[arg(long, default_value = "bench.test")]
    domain: String,
    #[arg(long)]
    password: String,
    #[arg(long, default_value_t = 10)]
    users: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Populate {
        #[arg(long, default_value_t = 200)]
        messages: usize,
    },
    Mix {
        #[arg(long, default_value_t = 10)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    Idle {
        #[arg(long)]
        connections: usize,
    },
    /// SMTP submission: `--addr` is a STARTTLS submission port; the sender is user 1.
    Submit {
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        #[arg(long, default_value_t = 10)]
        sessions: usize,
        #[arg(long, default_value = "remote.test")]
        rcpt_domain: String,
        /// Send without AUTH (a server that relays for the client's address).
        #[arg(long)]
        no_login: bool,
    },
}

mod danger {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts any certificate: the benchmark measures servers on loopback, not PKI.
    #[derive(Debug)]
    pub struct NoVerify(pub rustls::crypto::CryptoProvider);

    impl ServerCertVerifier for NoVerify {
        fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

fn connector() -> TlsConnector {
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(danger::NoVerify(provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

struct Client {
    io: TlsStream<TcpStream>,
    buf: Vec<u8>,
    tag: u32,
}

impl Client {
    async fn connect(addr: SocketAddr, tls: &TlsConnector) -> anyhow::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let io = tls.connect("localhost".try_into().expect("valid name"), tcp).await?;
        let mut c = Client { io, buf: Vec::new(), tag: 0 };
        let greeting = c.line().await?;
        if !greeting.starts_with(b"* OK") {
            bail!("greeting: {}", String::from_utf8_lossy(&greeting));
        }
        Ok(c)
    }

    /// One response line, with any literals it announces read into it.
    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let lf = loop {
                if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                    break i;
                }
                let mut chunk = [0u8; 16384];
                let n = self.io.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed");
                }
                self.buf.extend_from_slice(&chunk[..n]);
            };
            let line: Vec<u8> = self.buf.drain(..=lf).collect();
            let literal = literal_size(&line);
            out.extend_from_slice(&line);
            let Some(n) = literal else { return Ok(out) };
            while self.buf.len() < n {
                let mut chunk = [0u8; 65536];
                let k = self.io.read(&mut chunk).await?;
                if k == 0 {
                    bail!("connection closed in a literal");
                }
                self.buf.extend_from_slice(&chunk[..k]);
            }
            out.extend(self.buf.drain(..n));
        }
    }

    /// Sends a command and reads to its tagged response; errors unless OK.
    async fn run(&mut self, command: &str) -> anyhow::Result<()> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.io.write_all(format!("{tag} {command}\r\n").as_bytes()).await?;
        loop {
            let line = self.line().await?;
            if line.starts_with(tag.as_bytes()) {
                let rest = &line[tag.len() + 1..];
                if rest.starts_with(b"OK") {
                    return Ok(());
                }
                bail!("{command}: {}", String::from_utf8_lossy(&line).trim_end());
            }
        }
    }

    async fn append(&mut self, message: &[u8]) -> anyhow::Result<()> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        // LITERAL+ would save a round trip, but not every server has it; wait for "+".
        self.io.write_all(format!("{tag} APPEND INBOX {{{}}}\r\n", message.len()).as_bytes()).await?;
        let cont = self.line().await?;
        if !cont.starts_with(b"+") {
            bail!("APPEND: {}", String::from_utf8_lossy(&cont));
        }
        self.io.write_all(message).await?;
        self.io.write_all(b"\r\n").await?;
        loop {
            let line = self.line().await?;
            if line.starts_with(tag.as_bytes()) {
                if line[tag.len() + 1..].starts_with(b"OK") {
                    return Ok(());
                }
                bail!("APPEND: {}", String::from_utf8_lossy(&line));
            }
        }
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let trimmed = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n"))?;
    let body = trimmed.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.trim_end_matches('+').parse().ok()
}

fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: sender@bench.test\r\nTo: someone@bench.test\r\nSubject: bench message {i}\r\n\
         Message-ID: <{i}.{}@bench.test>\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n",
        rand::random::<u64>()
    )
    .into_bytes();
    while m.len() < 4096 {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    m
}

fn user(cli: &Cli, n: usize) -> String {
    format!("{}{}@{}", cli.prefix, n, cli.domain)
}

async fn login(cli: &Cli, tls: &TlsConnector, n: usize) -> anyhow::Result<Client> {
    let mut c = Client::connect(cli.addr, tls).await?;
    c.run(&format!("LOGIN \"{}\" \"{}\"", user(cli, n), cli.password)).await?;
    Ok(c)
}

/// One pass of the session mix; returns (operation, latency) pairs.
async fn session(cli: &Cli, tls: &TlsConnector, n: usize, round: usize) -> anyhow::Result<Vec<(&'static str, Duration)>> {
    let mut ops = Vec::new();
    let t = Instant::now();
    let mut c = Client::connect(cli.addr, tls).await?;
    c.run(&format!("LOGIN \"{}\" \"{}\"", user(cli, n), cli.password)).await?;
    ops.push(("login", t.elapsed()));
    macro_rules! op {
        ($name:expr, $e:expr) => {{
            let t = Instant::now();
            $e.await?;
            ops.push(($name, t.elapsed()));
        }};
    }
    op!("select", c.run("SELECT INBOX"));
    op!("fetch_flags", c.run("FETCH 1:* (UID FLAGS)"));
    for k in 0..5 {
        let seq = 1 + (round * 7 + k * 13) % 150;
        op!("fetch_body", c.run(&format!("FETCH {seq} (BODY.PEEK[])")));
    }
    op!("store", c.run(&format!("STORE {} +FLAGS (\\Seen)", 1 + round % 150)));
    op!("append", c.append(&message(round)));
    op!("store", c.run("UID STORE * +FLAGS.SILENT (\\Deleted)"));
    op!("expunge", c.run("EXPUNGE"));
    op!("logout", c.run("LOGOUT"));
    Ok(ops)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Arc::new(Cli::parse());
    let tls = connector();
    match cli.command {
        Command::Submit { messages, sessions, ref rcpt_domain, no_login } => {
            let options = submit::Options {
                addr: cli.addr,
                user: user(&cli, 1),
                password: cli.password.clone(),
                login: !no_login,
                messages,
                sessions,
                rcpt_domain: rcpt_domain.clone(),
            };
            submit::run(options, tls).await?;
        }
        Command::Populate { messages } => {
            let mut tasks = Vec::new();
            for n in 1..=cli.users {
                let (cli, tls) = (cli.clone(), tls.clone());
                tasks.push(tokio::spawn(async move {
                    let mut c = login(&cli, &tls, n).await?;
                    for i in 0..messages {
                        c.append(&message(i)).await?;
                    }
                    c.run("LOGOUT").await
                }));
            }
            for t in tasks {
                t.await?.context("populate")?;
            }
        }
        Command::Mix { clients, seconds } => {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for k in 0..clients {
                let (cli, tls) = (cli.clone(), tls.clone());
                tasks.push(tokio::spawn(async move {
                    let mut all = Vec::new();
                    let mut round = k * 1000;
                    while Instant::now() < deadline {
                        all.extend(session(&cli, &tls, 1 + k % cli.users, round).await?);
                        round += 1;
                    }
                    anyhow::Ok(all)
                }));
            }
            let start = Instant::now();
            let mut lat: Vec<Duration> = Vec::new();
            for t in tasks {
                lat.extend(t.await?.context("session mix")?.into_iter().map(|(_, d)| d));
            }
            let elapsed = start.elapsed().as_secs_f64().max(seconds as f64);
            lat.sort();
            println!(
                "{{\"ops\": {}, \"ops_per_sec\": {:.1}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}}}",
                lat.len(),
                lat.len() as f64 / elapsed,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        }
        Command::Idle { connections } => {
            // 64 logins in flight at once: argon2 on the server makes each take a while.
            let gate = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tasks = Vec::with_capacity(connections);
            for i in 0..connections {
                let (cli, tls, gate) = (cli.clone(), tls.clone(), gate.clone());
                tasks.push(tokio::spawn(async move {
                    let _slot = gate.acquire().await?;
                    let mut c = login(&cli, &tls, 1 + i % cli.users).await?;
                    c.run("SELECT INBOX").await?;
                    c.tag += 1;
                    c.io.write_all(format!("b{} IDLE\r\n", c.tag).as_bytes()).await?;
                    let cont = c.line().await?;
                    if !cont.starts_with(b"+") {
                        bail!("IDLE refused: {}", String::from_utf8_lossy(&cont));
                    }
                    anyhow::Ok(c)
                }));
            }
            let mut held = Vec::with_capacity(connections);
            for (i, t) in tasks.into_iter().enumerate() {
                held.push(t.await?.with_context(|| format!("connection {}", i + 1))?);
            }
            println!("{{\"idle\": {}}}", held.len());
            // Hold them until the benchmark kills this process.
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        }
    }
    Ok(())
}
