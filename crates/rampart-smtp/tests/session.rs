//! The real session and driver over an in-memory stream, against a real store in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use rampart_config::TlsMode;
use rampart_smtp::conn;
use rampart_smtp::session::{AuthLimits, Role, SenderPolicy, Services, Session, Settings};
use rampart_store::SqliteStore;
use rampart_store::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    services: Arc<Services>,
}

async fn fixture() -> Fixture {
    fixture_with(Default::default(), Default::default()).await
}

async fn fixture_with(gateway: rampart_smtp::gateway::Gateway, policy: rampart_pipeline::Policy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    store.add_account("bob@example.test", "x").await.unwrap();
    store.add_account("alice@example.test", "x").await.unwrap();
    store.add_alias("info@example.test", "bob@example.test").await.unwrap();
    store.add_alias("postmaster@example.test", "alice@example.test").await.unwrap();
    let store_dyn: Arc<dyn Store> = Arc::new(store.clone());
    let auth = rampart_auth::Authenticator::new(
        store_dyn.clone(),
        rampart_auth::AuthSettings {
            cram_md5: false,
            hash: rampart_auth::HashParams::default(),
            scram_iterations: 4096,
            hostname: "mx.example.test".into(),
            credential_cache: None,
        },
    )
    .unwrap();
    let services = Arc::new(Services {
        store: store_dyn.clone(),
        hostname: "mx.example.test".into(),
        recipient_delimiter: "+".into(),
        auth,
        auth_limits: AuthLimits { max_failures: 3, failure_delay: Duration::from_millis(10) },
        senders: SenderPolicy::default(),
        hide_client: false,
        queue_wakeup: Arc::new(tokio::sync::Notify::new()),
        sender_auth: rampart_smtp::session::SenderAuth {
            policy,
            outbound_policy: rampart_pipeline::Policy { outbound: true, reject_score: 10.0, ..Default::default() },
            ..Default::default()
        },
        filters: Default::default(),
        limit_overrides: Vec::new(),
        gateway,
        guard: rampart_guard::Guard::new(&rampart_config::Config::default(), store_dyn.clone()),
        sending: rampart_smtp::sending::Sending::new(
            store_dyn.clone(),
            Default::default(),
            Default::default(),
            "mx.example.test".into(),
            "+".into(),
            Arc::new(tokio::sync::Notify::new()),
        ),
    });
    Fixture { _dir: dir, store, services }
}

fn settings() -> Settings {
    let mut c = rampart_config::Config::default().listener.smtp;
    c.max_message_size = 100_000;
    c.max_recipients = 3;
    c.max_errors = 5;
    c.max_command_line = 512;
    c.max_data_line = 1000;
    // The pregreet wait has its own end-to-end test; here it would only slow every session.
    c.pregreet_wait = Duration::ZERO;
    Settings::from_config("smtp", Role::Mx, &c)
}

struct Client {
    io: DuplexStream,
    buf: Vec<u8>,
    task: tokio::task::JoinHandle<conn::End>,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads one complete (possibly multi-line) reply; None at EOF.
    async fn reply(&mut self) -> Option<String> {
        loop {
            if let Some(end) = complete_reply(&self.buf) {
                let text = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
                return Some(text);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut chunk)).await.unwrap().unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.unwrap()
    }
}

/// Byte length of the first complete reply in `buf`.
fn complete_reply(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while let Some(lf) = buf[pos..].iter().position(|&b| b == b'\n') {
        let line = &buf[pos..pos + lf + 1];
        pos += lf + 1;
        if line.len() >= 4 && line[3] == b' ' {
            return Some(pos);
        }
    }
    None
}

async fn connect(f: &Fixture, settings: Settings) -> Client {
    connect_from(f, settings, "192.0.2.7:40000").await
}

async fn connect_from(f: &Fixture, settings: Settings, remote: &str) -> Client {
    let (client, server) = tokio::io::duplex(1 << 20);
    let connect = rampart_smtp::accept::admitted(rampart_guard::Basis::Admitted);
    let session = Session::new(f.services.clone(), Arc::new(settings), remote.parse().unwrap(), connect);
    let task = tokio::spawn(conn::run(Box::new(server), session, None));
    let mut c = Client { io: client, buf: Vec::new(), task };
    let greeting = c.reply().await.unwrap();
    assert!(greeting.starts_with("220 mx.example.test"), "{greeting}");
    c
}

async fn inbox_count(f: &Fixture, who: &str) -> u32 {
    let account = f.store.account(who).await.unwrap().unwrap();
    let boxes = f.store.mailboxes(account.id).await.unwrap();
    boxes.iter().find(|b| b.name == "INBOX").unwrap().uidnext - 1
}

#[tokio::test]
async fn a_message_is_delivered_with_trace_headers() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    let ehlo = c.cmd("EHLO client.example").await;
    for ext in ["PIPELINING", "SIZE 100000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"] {
        assert!(ehlo.contains(ext), "{ext} missing from {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"));
    assert!(c.cmd("MAIL FROM:<sender@remote.test>").await.starts_with("250 2.1.0"));
    assert!(c.cmd("RCPT TO:<Bob@Example.Test>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: hi\r\n\r\n..dotted\r\nbody\r\n.\r\n").await;
    let done = c.reply().await.unwrap();
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    let id = done.trim().rsplit(' ').next().unwrap().to_string();
    assert!(c.cmd("QUIT").await.starts_with("221"));
    assert_eq!(c.task.await.unwrap(), conn::End::Quit);

    let found = f.store.messages_by_reference(&id).await.unwrap();
    assert_eq!(found.len(), 1);
    let bob = f.store.account("bob@example.test").await.unwrap().unwrap();
    let inbox = f.store.mailboxes(bob.id).await.unwrap()[0].id;
    let text = String::from_utf8(f.store.read_message(inbox, 1).await.unwrap()).unwrap();
    assert!(text.starts_with("Return-Path: <sender@remote.test>\r\nReceived: from client.example ([192.0.2.7])\r\n"), "{text}");
    assert!(text.contains(&format!("with ESMTP id {id}")));
    assert!(text.contains("for <Bob@Example.Test>;"));
    assert!(text.ends_with("Subject: hi\r\n\r\n.dotted\r\nbody\r\n"), "{text}");
}

#[tokio::test]
async fn pipelined_transactions_get_replies_in_order() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO client.example").await;
    c.send(
        b"MAIL FROM:<>\r\nRCPT TO:<bob+tag@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<info@example.test>\r\nDATA\r\n",
    )
    .await;
    assert!(c.reply().await.unwrap().starts_with("250 2.1.0"));
    assert!(c.reply().await.unwrap().starts_with("250 2.1.5"));
    assert!(c.reply().await.unwrap().starts_with("550 5.1.1"));
    assert!(c.reply().await.unwrap().starts_with("250 2.1.5"));
    assert!(c.reply().await.unwrap().starts_with("354"));
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\nRSET\r\nNOOP\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0 Ok: queued"));
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    // bob+tag and the alias info@ both land in bob's INBOX, once.
    assert_eq!(inbox_count(&f, "bob@example.test").await, 1);
}

#[tokio::test]
async fn talking_before_the_reply_is_refused() {
    // Message data right behind DATA, before the 354 (RFC 2920 §3.1).
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO client.example").await;
    c.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.1.0"));
    assert!(c.reply().await.unwrap().starts_with("250 2.1.5"));
    assert!(c.reply().await.unwrap().starts_with("554 5.5.0"));
    assert!(c.reply().await.is_none());
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
    // A command right behind EHLO.
    let mut c = connect(&f, settings()).await;
    c.send(b"EHLO client.example\r\nMAIL FROM:<a@b.test>\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("554 5.5.0"));
    assert!(c.reply().await.is_none());
    // A command right behind BDAT LAST: the message is not stored either.
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    c.send(b"BDAT 5 LAST\r\nhelloQUIT\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("554 5.5.0"));
    assert!(c.reply().await.is_none());
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
}

#[tokio::test]
async fn relay_and_sequence_refusals() {
    let f = fixture().await;
    let mut s = settings();
    s.max_errors = 20;
    let mut c = connect(&f, s).await;
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("503 5.5.1"));
    c.cmd("EHLO client.example").await;
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("503 5.5.1"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1"));
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("503 5.5.1"));
    for rcpt in [
        "user@remote.test",
        "user@example.test.remote.test",
        "user@[127.0.0.1]",
        "@example.test:user@remote.test",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with("554 5.7.1"), "{rcpt}: {r}");
    }
    for rcpt in ["user%remote.test@example.test", "\"user@remote.test\"@example.test", "remote.test!user@example.test"] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(r.starts_with("550 5.1.1"), "{rcpt}: {r}");
    }
    assert!(c.cmd("DATA").await.starts_with("554 5.5.1"));
    assert!(c.cmd("RCPT TO:<postmaster>").await.starts_with("250"));
    assert!(c.cmd("VRFY bob").await.starts_with("252"));
    assert!(c.cmd("AUTH PLAIN").await.starts_with("503"));
}

#[tokio::test]
async fn recipient_and_size_limits() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO client.example").await;
    assert!(c.cmd("MAIL FROM:<a@b.test> SIZE=100001").await.starts_with("552 5.3.4"));
    assert!(c.cmd("MAIL FROM:<a@b.test> SIZE=1000").await.starts_with("250"));
    for _ in 0..3 {
        assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("250"));
    }
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..120 {
        c.send(line.as_bytes()).await;
    }
    c.send(b".\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("552 5.3.4"));
    // The session goes on after a refused message.
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
}

#[tokio::test]
async fn long_lines_are_refused() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    let long = format!("NOOP {}", "a".repeat(600));
    assert!(c.cmd(&long).await.starts_with("500 5.5.2"));
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    c.cmd("DATA").await;
    c.send(format!("{}\r\n.\r\n", "y".repeat(2000)).as_bytes()).await;
    assert!(c.reply().await.unwrap().starts_with("554 5.6.0"));
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    for _ in 0..4 {
        assert!(c.cmd("BOGUS").await.starts_with("500 5.5.2"));
    }
    assert!(c.cmd("BOGUS").await.starts_with("421 4.7.0"));
    assert!(c.reply().await.is_none());
}

#[tokio::test]
async fn smuggling_variants_deliver_nothing() {
    let variants: [&[u8]; 6] = [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\r\n\x00.\r\n"];
    for v in variants {
        let f = fixture().await;
        let mut c = connect(&f, settings()).await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<a@remote.test>").await;
        c.cmd("RCPT TO:<bob@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        let mut attack = b"Subject: first\r\n\r\nfirst".to_vec();
        attack.extend_from_slice(v);
        attack.extend_from_slice(b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
        c.send(&attack).await;
        let r = c.reply().await.unwrap();
        assert!(r.starts_with('5'), "{v:?}: {r}");
        assert!(c.reply().await.is_none(), "{v:?}: session should be closed");
        assert_eq!(inbox_count(&f, "bob@example.test").await, 0, "{v:?}");
        assert_eq!(inbox_count(&f, "alice@example.test").await, 0, "{v:?}");
    }
}

#[tokio::test]
async fn bare_lf_in_a_command_closes() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    c.send(b"EHLO client.example\nMAIL FROM:<a@b.test>\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("500 5.5.2"));
    assert!(c.reply().await.is_none());
}

#[tokio::test]
async fn bdat_chunks() {
    let f = fixture().await;
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO client.example").await;
    // BDAT before a transaction: the chunk is still read and discarded.
    c.send(b"BDAT 5\r\nhello").await;
    assert!(c.reply().await.unwrap().starts_with("503"));
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    let part1 = b"Subject: chunked\r\n\r\nfirst ";
    let part2 = b"half\r\n.not-stuffed\r\n";
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes()).await;
    c.send(part1).await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    c.send(format!("BDAT {} LAST\r\n", part2.len()).as_bytes()).await;
    c.send(part2).await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0 Ok: queued"));
    let bob = f.store.account("bob@example.test").await.unwrap().unwrap();
    let inbox = f.store.mailboxes(bob.id).await.unwrap()[0].id;
    let text = f.store.read_message(inbox, 1).await.unwrap();
    assert!(text.ends_with(b"Subject: chunked\r\n\r\nfirst half\r\n.not-stuffed\r\n"));

    // A bare LF inside a chunk refuses the message but the framing keeps the session usable.
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    c.send(b"BDAT 6 LAST\r\nbad\nx\r").await;
    assert!(c.reply().await.unwrap().starts_with("500 5.5.2"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert_eq!(inbox_count(&f, "bob@example.test").await, 1);
}

#[tokio::test]
async fn each_phase_allows_its_commands() {
    let f = fixture().await;
    let mut s = settings();
    s.max_errors = 20;
    let mut c = connect(&f, s).await;
    // Connected: BDAT without EHLO is refused and its bytes discarded.
    c.send(b"BDAT 3\r\nabc").await;
    assert!(c.reply().await.unwrap().starts_with("503 5.5.1 BDAT needs EHLO"));
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    // Chunking: no more RCPT or DATA, no nested MAIL.
    c.send(b"BDAT 20\r\nSubject: x\r\n\r\nbody\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0 20 octets"));
    assert!(c.cmd("RCPT TO:<alice@example.test>").await.starts_with("503 5.5.1 RCPT after BDAT"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1 DATA after BDAT"));
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("503 5.5.1 Nested MAIL"));
    // RSET drops the chunks; the greeting stays, so a new transaction may start at once.
    assert!(c.cmd("RSET").await.starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@b.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("250"));
    // EHLO in the middle of a transaction resets it too (RFC 5321 §4.1.4).
    c.cmd("EHLO client.example").await;
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("503 5.5.1 Need MAIL"));
    assert!(c.cmd("AUTH PLAIN").await.starts_with("503 5.5.1 AUTH is not available"));
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
}

#[tokio::test]
async fn idle_timeout_says_421() {
    let f = fixture().await;
    let mut s = settings();
    s.idle_timeout = Duration::from_millis(200);
    let mut c = connect(&f, s).await;
    let r = c.reply().await.unwrap();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert_eq!(c.task.await.unwrap(), conn::End::Timeout);
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext_and_resets() {
    let f = fixture().await;
    let (cert_pem, key_pem) = rampart_tls::self_signed("mx.example.test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("k.pem"), &key_pem).unwrap();
    let certs = rampart_tls::CertSet::load(&rampart_config::Tls {
        cert: dir.path().join("c.pem"),
        key: dir.path().join("k.pem"),
        ..Default::default()
    })
    .unwrap();
    let acceptor = rampart_tls::TlsAcceptor::from(rampart_tls::server_config(rampart_tls::CertStore::new(certs), Some("smtp")).unwrap());

    let (mut client, server) = tokio::io::duplex(1 << 16);
    let connect = rampart_smtp::accept::admitted(rampart_guard::Basis::Admitted);
    let session = Session::new(f.services.clone(), Arc::new(settings()), "192.0.2.7:40000".parse().unwrap(), connect);
    let task = tokio::spawn(conn::run(Box::new(server), session, Some(acceptor)));
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"220 "));
    client.write_all(b"EHLO c\r\n").await.unwrap();
    let n = client.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STARTTLS"));
    // The injected MAIL would run inside TLS on a vulnerable server.
    client.write_all(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n").await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        let n = client.read(&mut buf).await.unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"220 2.0.0"), "{}", String::from_utf8_lossy(&got));

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect("mx.example.test".try_into().unwrap(), client).await.unwrap();
    let c = Client { io: tokio::io::duplex(1).0, buf: Vec::new(), task };
    let (mut r, mut w) = tokio::io::split(tls);
    // No reply to the injected MAIL arrives, and MAIL now needs a fresh EHLO.
    w.write_all(b"MAIL FROM:<a@b.test>\r\n").await.unwrap();
    let n = r.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("503 5.5.1"), "{text}");
    w.write_all(b"EHLO c\r\n").await.unwrap();
    let n = r.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("250-") && !text.contains("STARTTLS"), "{text}");
    w.write_all(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n").await.unwrap();
    let mut got = String::new();
    while !got.contains("354") {
        let n = r.read(&mut buf).await.unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    w.write_all(b"Subject: tls\r\n\r\nsecret\r\n.\r\nQUIT\r\n").await.unwrap();
    let mut got = String::new();
    while !got.contains("221") {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("250 2.0.0 Ok: queued"), "{got}");
    let bob = f.store.account("bob@example.test").await.unwrap().unwrap();
    let inbox = f.store.mailboxes(bob.id).await.unwrap()[0].id;
    let text = String::from_utf8(f.store.read_message(inbox, 1).await.unwrap()).unwrap();
    assert!(text.contains("(using TLSv1.3 with cipher TLS13_"), "{text}");
    assert!(text.contains("with ESMTPS id"), "{text}");
    c.task.abort();
}

#[tokio::test]
async fn implicit_listener_has_no_starttls() {
    let f = fixture().await;
    let mut s = settings();
    s.tls = TlsMode::Implicit;
    let mut c = connect(&f, s).await;
    assert!(!c.cmd("EHLO c").await.contains("STARTTLS"));
    assert!(c.cmd("STARTTLS").await.starts_with("502"));
}

/// A gateway route for corp.test with a static list; 192.0.2.7 is its downstream.
fn corp_gateway() -> rampart_smtp::gateway::Gateway {
    let text = "[[gateway.route]]\ndomains = [\"corp.test\", \"sales.corp.test\"]\ndownstream = \"127.0.0.1:25\"\n\
        valid_recipients = [\"carol@corp.test\", \"*@sales.corp.test\"]\nrelay_from = [\"192.0.2.7\"]\n";
    let config = rampart_config::Config::from_toml(text, &[], std::path::Path::new("/")).unwrap();
    let route = rampart_smtp::gateway::Route::new(&config.gateway.route[0], None);
    rampart_smtp::gateway::Gateway::new(vec![route])
}

#[tokio::test]
async fn gateway_recipients_are_checked_and_queued_with_our_verdict() {
    let f = fixture_with(corp_gateway(), Default::default()).await;
    let mut s = settings();
    s.limits.max_recipients = 10;
    let mut c = connect_from(&f, s, "198.51.100.9:40000").await;
    c.cmd("EHLO client.example").await;
    assert!(c.cmd("MAIL FROM:<someone@remote.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<Carol@corp.test>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("RCPT TO:<dave@corp.test>").await.starts_with("550 5.1.1"));
    assert!(c.cmd("RCPT TO:<\"carol\"@corp.test>").await.starts_with("550 5.1.1"));
    assert!(c.cmd("RCPT TO:<anyone@sales.corp.test>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("250 2.1.5"));
    // Not the downstream: no relaying anywhere else.
    assert!(c.cmd("RCPT TO:<x@far.test>").await.starts_with("554 5.7.1"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: for corp\r\nX-Rampart-Trail: accept; forged\r\n\r\nhello\r\n.\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    assert_eq!(inbox_count(&f, "bob@example.test").await, 1);
    let queued = f.store.queue_list().await.unwrap();
    assert_eq!(queued.len(), 1);
    let mut rcpts: Vec<&str> = queued[0].rcpts.iter().map(|r| r.rcpt.as_str()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["Carol@corp.test", "anyone@sales.corp.test"]);
    let text = String::from_utf8(f.store.queue_message(&queued[0].id).await.unwrap()).unwrap();
    assert!(text.contains("Received: from client.example ([198.51.100.9])"), "{text}");
    assert!(text.contains("X-Rampart-Trail: accept; reason=accepted; score="), "{text}");
    assert!(text.contains("recipients:pass:queued_to_downstream"), "{text}");
    // The sender's own copy of our header is gone.
    assert!(!text.contains("forged"), "{text}");
}

#[tokio::test]
async fn a_downstream_relays_only_its_own_domains_mail() {
    let f = fixture_with(corp_gateway(), Default::default()).await;
    let mut c = connect(&f, settings()).await;
    c.cmd("EHLO downstream.corp.test").await;
    assert!(c.cmd("MAIL FROM:<carol@corp.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<friend@far.test>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"From: carol@corp.test\r\nSubject: out\r\n\r\nhello\r\n.\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    // Its mail is scanned as submitted mail is: spam is refused, never held or sent on.
    c.cmd("MAIL FROM:<carol@corp.test>").await;
    c.cmd("RCPT TO:<friend@far.test>").await;
    c.cmd("DATA").await;
    c.send(b"From: carol@corp.test\r\nSubject: out\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n.\r\n").await;
    let refused = c.reply().await.unwrap();
    assert!(refused.starts_with("554 5.7.1 Message refused: it looks like spam"), "{refused}");
    // Its bounces (the null sender) go out too.
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<friend@far.test>").await.starts_with("250 2.1.5"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    // Another domain's sender from the same client is ordinary inbound mail.
    assert!(c.cmd("MAIL FROM:<ceo@bank.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<friend@far.test>").await.starts_with("554 5.7.1"));
    let queued = f.store.queue_list().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].rcpts[0].rcpt, "friend@far.test");
    let trail = f.store.queue_message(&queued[0].id).await.unwrap();
    assert!(!String::from_utf8(trail).unwrap().contains("X-Rampart-Trail"));
}

#[tokio::test]
async fn a_quarantine_verdict_is_relayed_to_the_downstream_as_junk() {
    // Two points (no Date, no Message-ID) are past these thresholds.
    let policy = rampart_pipeline::Policy { junk_score: 0.5, quarantine_score: 1.0, reject_score: 50.0, ..Default::default() };
    let f = fixture_with(corp_gateway(), policy).await;
    let mut c = connect_from(&f, settings(), "198.51.100.9:40000").await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<someone@remote.test>").await;
    assert!(c.cmd("RCPT TO:<carol@corp.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: dubious\r\n\r\nhello\r\n.\r\n").await;
    assert!(c.reply().await.unwrap().starts_with("250 2.0.0"));
    // Nothing held: the downstream's copy is tagged, the local one goes to Junk with it.
    let queued = f.store.queue_list().await.unwrap();
    let text = String::from_utf8(f.store.queue_message(&queued[0].id).await.unwrap()).unwrap();
    assert!(text.contains("X-Rampart-Trail: junk; reason=spam_score_quarantine;"), "{text}");
    assert_eq!(inbox_count(&f, "bob@example.test").await, 0);
    assert!(f.store.held(None).await.unwrap().is_empty());
}
