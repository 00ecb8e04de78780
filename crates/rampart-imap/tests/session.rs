//! The real session and driver over an in-memory stream, against a real store in a temp dir.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_config::TlsMode;
use rampart_imap::conn;
use rampart_imap::{Services, Session, Settings};
use rampart_store::prelude::*;
use rampart_store::{Delivery, Folder, SqliteStore, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const PASSWORD: &str = "correct horse";

struct Fixture {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    services: Arc<Services>,
}

async fn fixture() -> Fixture {
    fixture_with(true).await
}

/// `summaries`: the store summarizes messages as they are stored, as the server's does;
/// without, IMAP makes the summaries when it first reads the messages.
async fn fixture_with(summaries: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    if summaries {
        store.set_summarizer(Arc::new(rampart_imap::MessageSummarizer));
    }
    store.add_domain("example.test").await.unwrap();
    let hash = rampart_auth::hash_password(PASSWORD, rampart_auth::HashParams::default()).unwrap();
    store.add_account("bob@example.test", &hash).await.unwrap();
    let store_dyn: Arc<dyn Store> = Arc::new(store.clone());
    // Pacing (guard.imap_commands_per_second) has its own unit test; here it would only slow
    // the pipelining tests down.
    let mut config = rampart_config::Config::default();
    config.guard.imap_commands_per_second = 100_000;
    let guard = rampart_guard::Guard::new(&config, store_dyn.clone());
    let auth = rampart_auth::Authenticator::new(
        store_dyn,
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
        store: Arc::new(store.clone()),
        auth,
        guard: guard.clone(),
        hostname: "mx.example.test".into(),
        max_auth_failures: 3,
        failure_delay: Duration::from_millis(10),
        learner: None,
        columns: Arc::new(rampart_imap::ColumnCache::new(64 << 20)),
        user_keys: None,
    });
    Fixture { _dir: dir, store, services }
}

fn settings(tls: TlsMode) -> Settings {
    let mut c = rampart_config::Config::default().listener.imap;
    c.tls = tls;
    c.max_append_size = 100_000;
    Settings::from_config("imap", &c)
}

struct Client {
    io: DuplexStream,
    buf: Vec<u8>,
    task: tokio::task::JoinHandle<conn::End>,
}

impl Client {
    /// A session as on the implicit-TLS port (already "secure"), or plain STARTTLS.
    fn start(f: &Fixture, tls: TlsMode) -> Client {
        Client::start_with(f.services.clone(), tls)
    }

    fn start_with(services: Arc<Services>, tls: TlsMode) -> Client {
        let (client, server) = tokio::io::duplex(1 << 20);
        let settings = Arc::new(settings(tls));
        let session = Session::new(services, settings, "192.0.2.1:1234".parse().unwrap(), tls == TlsMode::Implicit);
        let task = tokio::spawn(conn::run(Box::new(server), session, None));
        Client { io: client, buf: Vec::new(), task }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    async fn read_more(&mut self) -> bool {
        let read = tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf)).await;
        read.expect("server answers").unwrap_or(0) > 0
    }

    /// Everything up to and including the line that starts with `prefix`.
    async fn until(&mut self, prefix: &str) -> String {
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let mut pos = 0;
            for l in text.split_inclusive("\r\n") {
                pos += l.len();
                if l.starts_with(prefix) && l.ends_with("\r\n") {
                    self.buf.drain(..pos);
                    return text[..pos].to_string();
                }
            }
            if !self.read_more().await {
                return String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            }
        }
    }

    async fn cmd(&mut self, tag: &str, rest: &str) -> String {
        self.send(format!("{tag} {rest}\r\n").as_bytes()).await;
        self.until(&format!("{tag} ")).await
    }

    async fn login(f: &Fixture) -> Client {
        Client::login_with(f.services.clone()).await
    }

    async fn login_with(services: Arc<Services>) -> Client {
        let mut c = Client::start_with(services, TlsMode::Implicit);
        c.until("* OK").await;
        let r = c.cmd("l", &format!("LOGIN bob@example.test \"{PASSWORD}\"")).await;
        assert!(r.contains("l OK"), "{r}");
        c
    }
}

async fn deliver(store: &SqliteStore, body: &str) {
    let account = store.account("bob@example.test").await.unwrap().unwrap().id;
    let mut w = store.blob_writer().unwrap();
    w.write(body.as_bytes()).await.unwrap();
    store
        .deliver(Delivery {
            blob: w.finish().await.unwrap(),
            prefix: Vec::new(),
            internal_date: 1_790_000_000,
            targets: vec![Target { account, folder: Folder::Inbox }],
            reference: "R".into(),
            trail: "[]".into(),
            outbound: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn no_login_before_starttls_and_a_preauth_literal_bomb_is_refused_unread() {
    let f = fixture().await;
    let mut c = Client::start(&f, TlsMode::Starttls);
    let greeting = c.until("* OK").await;
    assert!(greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED") && !greeting.contains("AUTH="), "{greeting}");
    let r = c.cmd("a", &format!("LOGIN bob@example.test \"{PASSWORD}\"")).await;
    assert!(r.starts_with("a NO [PRIVACYREQUIRED]"), "{r}");
    let r = c.cmd("b", "AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLnRlc3QAY29ycmVjdCBob3JzZQ==").await;
    assert!(r.starts_with("b NO"), "{r}");
    let r = c.cmd("c", "SELECT INBOX").await;
    assert!(r.starts_with("c BAD"), "{r}");
    // A synchronizing literal of 1 GiB: refused at once, no continuation.
    let r = c.cmd("d", "LOGIN {1073741824}").await;
    assert!(r.starts_with("d BAD [TOOBIG]"), "{r}");
    assert!(!r.contains('+'), "{r}");
    let r = c.cmd("e", "NOOP").await;
    assert!(r.contains("e OK"), "{r}");
    // A non-synchronizing one ends the connection.
    c.send(b"f LOGIN {1073741824+}\r\nxxxx").await;
    let r = c.until("* BYE").await;
    assert!(r.contains("[TOOBIG]"), "{r}");
    assert_eq!(c.task.await.unwrap(), conn::End::Refused);
}

#[tokio::test]
async fn authenticate_plain_after_a_failure() {
    let f = fixture().await;
    let mut c = Client::start(&f, TlsMode::Implicit);
    c.until("* OK").await;
    let r = c.cmd("a", "LOGIN bob@example.test wrong").await;
    assert!(r.starts_with("a NO [AUTHENTICATIONFAILED]"), "{r}");
    // SASL-IR is not used here: the continuation carries the response.
    c.send(b"b AUTHENTICATE PLAIN\r\n").await;
    let r = c.until("+").await;
    assert!(r.starts_with("+"), "{r}");
    let resp = rampart_imap::response::base64_encode(format!("\0bob@example.test\0{PASSWORD}").as_bytes());
    c.send(format!("{resp}\r\n").as_bytes()).await;
    let r = c.until("b ").await;
    assert!(r.starts_with("b OK [CAPABILITY"), "{r}");
    assert!(r.contains("UIDPLUS") && r.contains("MOVE") && r.contains("CONDSTORE"), "{r}");
}

#[tokio::test]
async fn a_failed_commit_reaches_the_client_as_unavailable_without_its_detail() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    // A mailbox command: the store's answer goes through the refusal path first.
    f.store.fail_commits(1);
    let r = c.cmd("a", "CREATE Work").await;
    assert!(r.starts_with("a NO [UNAVAILABLE] "), "{r}");
    assert!(!r.contains("commit") && !r.contains("injected"), "internal detail leaked: {r}");
    assert!(c.cmd("b", "CREATE Work").await.contains("b OK"), "the failed CREATE stored nothing");
    // APPEND: the error goes up to the command loop.
    f.store.fail_commits(1);
    c.send(b"c APPEND INBOX {24+}\r\nSubject: one\r\n\r\nbody 1\r\n\r\n").await;
    let r = c.until("c ").await;
    assert!(r.starts_with("c NO [UNAVAILABLE] "), "{r}");
    assert!(!r.contains("commit") && !r.contains("injected"), "internal detail leaked: {r}");
    assert!(c.cmd("d", "SELECT INBOX").await.contains("* 0 EXISTS"));
    // Errors the client caused keep their precise codes and the store's own words.
    assert!(c.cmd("e", "CREATE Work").await.starts_with("e NO [ALREADYEXISTS] mailbox Work already exists"));
    assert!(c.cmd("f", "DELETE Nowhere").await.starts_with("f NO [NONEXISTENT] mailbox Nowhere does not exist"));
    assert!(c.cmd("g", "DELETE INBOX").await.starts_with("g NO [CANNOT] INBOX cannot be deleted"));
    assert!(c.cmd("h", "RENAME Work Work/Sub").await.starts_with("h NO [CANNOT] cannot rename Work to Work/Sub"));
}

#[tokio::test]
async fn mailbox_commands() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    assert!(c.cmd("a", "CREATE Work/Projects").await.contains("a OK"));
    assert!(c.cmd("b", "CREATE Work").await.contains("b NO [ALREADYEXISTS]"));
    let r = c.cmd("c", "LIST \"\" \"*\"").await;
    assert!(r.contains("* LIST (\\HasChildren) \"/\" Work\r\n"), "{r}");
    assert!(r.contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"), "{r}");
    let r = c.cmd("d", "LIST \"\" %").await;
    assert!(!r.contains("Work/Projects"), "{r}");
    let r = c.cmd("e", "LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES UNSEEN))").await;
    assert!(r.contains("* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n* STATUS Trash (MESSAGES 0 UNSEEN 0)"), "{r}");
    assert!(!r.contains("INBOX"), "{r}");
    assert!(c.cmd("f", "RENAME Work Job").await.contains("f OK"));
    assert!(c.cmd("g", "LIST \"\" Job/*").await.contains("Job/Projects"));
    assert!(c.cmd("h", "DELETE Job").await.contains("h NO"), "has children");
    assert!(c.cmd("i", "DELETE Job/Projects").await.contains("i OK"));
    assert!(c.cmd("j", "UNSUBSCRIBE Job").await.contains("j OK"));
    let r = c.cmd("k", "LSUB \"\" *").await;
    assert!(!r.contains("Job") && r.contains("INBOX"), "{r}");
    let r = c.cmd("l", "GETQUOTAROOT INBOX").await;
    assert!(r.contains("* QUOTAROOT INBOX \"\"") && r.contains("* QUOTA \"\" (STORAGE 0 "), "{r}");
    assert!(c.cmd("m", "CREATE Keep (USE (\\Archive))").await.contains("m OK"));
    assert!(c.cmd("n", "CREATE Bad (USE (\\Bogus))").await.contains("n NO [USEATTR]"));
    assert!(c.cmd("o", "NAMESPACE").await.contains("* NAMESPACE ((\"\" \"/\")) NIL NIL"));
    assert!(c.cmd("p", "FETCH 1 FLAGS").await.starts_with("p BAD"), "no mailbox selected");
}

#[tokio::test]
async fn append_fetch_store_search_expunge() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let msg = "From: Ann <ann@example.test>\r\nSubject: Report\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\nquarterly numbers\r\n";
    c.send(format!("a APPEND INBOX (\\Seen $Work) \"01-Jan-2026 10:00:00 +0000\" {{{}}}\r\n", msg.len()).as_bytes()).await;
    assert!(c.until("+").await.starts_with("+ "));
    c.send(format!("{msg}\r\n").as_bytes()).await;
    let r = c.until("a ").await;
    assert!(r.contains("a OK [APPENDUID "), "{r}");
    // LITERAL+: no continuation needed.
    c.send(b"b APPEND INBOX {24+}\r\nSubject: two\r\n\r\nbody 2\r\n\r\n").await;
    assert!(c.until("b ").await.contains("b OK [APPENDUID"));
    let r = c.cmd("c", "SELECT INBOX").await;
    assert!(r.contains("* 2 EXISTS") && r.contains("[UIDNEXT 3]") && r.contains("$Work"), "{r}");
    assert!(r.contains("* OK [UNSEEN 2]") && r.contains("c OK [READ-WRITE]"), "{r}");
    let r = c.cmd("d", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[TEXT]<0.9>)").await;
    assert!(r.contains("INTERNALDATE \"01-Jan-2026 10:00:00 +0000\""), "{r}");
    assert!(r.contains(&format!("RFC822.SIZE {}", msg.len())), "{r}");
    assert!(r.contains("BODY[HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: Report\r\n\r\n"), "{r}");
    assert!(r.contains("BODY[TEXT]<0> {9}\r\nquarterly"), "{r}");
    let r = c.cmd("e", "SEARCH UNSEEN").await;
    assert!(r.contains("* SEARCH 2\r\n"), "{r}");
    let r = c.cmd("f", "UID SEARCH FROM ann BODY quarterly SENTON 27-Nov-2026").await;
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
    let r = c.cmd("g", "SEARCH RETURN (COUNT MIN) ALL").await;
    assert!(r.contains("* ESEARCH (TAG \"g\") COUNT 2 MIN 1"), "{r}");
    let r = c.cmd("h", "STORE 2 +FLAGS (\\Deleted)").await;
    assert!(r.contains("* 2 FETCH (FLAGS (\\Deleted \\Recent))"), "{r}");
    let r = c.cmd("i", "FETCH 3 FLAGS").await;
    assert!(r.starts_with("i BAD"), "{r}");
    let r = c.cmd("j", "EXPUNGE").await;
    assert!(r.contains("* 2 EXPUNGE\r\n") && r.contains("j OK"), "{r}");
    let r = c.cmd("k", "UID MOVE 1 Archive").await;
    assert!(r.contains("* OK [COPYUID ") && r.contains("* 1 EXPUNGE") && r.contains("k OK"), "{r}");
    let r = c.cmd("l", "STATUS Archive (MESSAGES UNSEEN UIDNEXT)").await;
    assert!(r.contains("* STATUS Archive (MESSAGES 1 UNSEEN 0 UIDNEXT 2)"), "{r}");
    let r = c.cmd("m", "LOGOUT").await;
    assert!(r.contains("* BYE") && r.contains("m OK"), "{r}");
    assert_eq!(c.task.await.unwrap(), conn::End::Logout);
}

#[tokio::test]
async fn an_oversized_append_is_refused_before_it_is_read() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let r = c.cmd("a", "APPEND INBOX {100001}").await;
    assert!(r.starts_with("a BAD [TOOBIG]"), "{r}");
    assert!(c.cmd("b", "NOOP").await.contains("b OK"));
}

#[tokio::test]
async fn concurrent_sessions_see_each_other_at_the_right_moments() {
    let f = fixture().await;
    for i in 0..3 {
        deliver(&f.store, &format!("Subject: {i}\r\n\r\nx\r\n")).await;
    }
    let mut a = Client::login(&f).await;
    let mut b = Client::login(&f).await;
    assert!(a.cmd("a1", "SELECT INBOX").await.contains("* 3 EXISTS"));
    assert!(b.cmd("b1", "SELECT INBOX").await.contains("* 3 EXISTS"));
    assert!(b.cmd("b2", "STORE 1 +FLAGS.SILENT (\\Deleted \\Flagged)").await.contains("b2 OK"));
    assert!(b.cmd("b3", "EXPUNGE").await.contains("* 1 EXPUNGE"));
    deliver(&f.store, "Subject: new\r\n\r\nx\r\n").await;
    // A FETCH may not carry EXPUNGE (RFC 3501 §7.4.1), but may show new mail.
    let r = a.cmd("a2", "FETCH 1:* FLAGS").await;
    assert!(!r.contains("EXPUNGE"), "{r}");
    assert!(r.contains("* 4 EXISTS"), "{r}");
    let r = a.cmd("a3", "NOOP").await;
    assert!(r.contains("* 1 EXPUNGE"), "{r}");
    // Flag changes of the other session arrive as FETCH.
    assert!(b.cmd("b4", "STORE 1 +FLAGS.SILENT ($Important)").await.contains("b4 OK"));
    let r = a.cmd("a4", "NOOP").await;
    assert!(r.contains("FETCH (UID 2 FLAGS ($Important"), "{r}");
    assert!(r.contains("* FLAGS ("), "the new keyword is announced: {r}");
    // .SILENT spares the echo of one's own change, not a change another session made.
    assert!(a.cmd("a6", "STORE 1 +FLAGS.SILENT (\\Answered)").await.contains("a6 OK"));
    let r = b.cmd("b6", "STORE 1 +FLAGS.SILENT (\\Draft)").await;
    assert!(r.contains("\\Answered") && r.contains("\\Draft"), "{r}");
    let r = b.cmd("b7", "STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert!(!r.contains("FETCH"), "{r}");
    // A keyword is announced in FLAGS before any FETCH shows it, for both sessions.
    let r = b.cmd("b5", "STORE 1 +FLAGS ($Fresh)").await;
    assert!(r.find("* FLAGS").unwrap() < r.find("$Fresh)").unwrap(), "{r}");
    let r = a.cmd("a5", "NOOP").await;
    assert!(r.find("* FLAGS").unwrap() < r.find("FETCH").unwrap(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wakes_within_a_second_of_a_delivery() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    c.cmd("s", "SELECT INBOX").await;
    c.send(b"i IDLE\r\n").await;
    assert!(c.until("+ ").await.starts_with("+ idling"));
    let started = Instant::now();
    deliver(&f.store, "Subject: wake\r\n\r\nup\r\n").await;
    let r = c.until("* 1 EXISTS").await;
    let took = started.elapsed();
    assert!(r.contains("* 1 EXISTS"), "{r}");
    assert!(took < Duration::from_secs(1), "IDLE took {took:?}");
    c.send(b"DONE\r\n").await;
    assert!(c.until("i ").await.contains("i OK"));
    // CONDSTORE: the MODSEQ moves with each change.
    let r = c.cmd("m", "FETCH 1 (MODSEQ FLAGS)").await;
    assert!(r.contains("MODSEQ ("), "{r}");
    let r = c.cmd("n", "STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)").await;
    assert!(r.contains("n OK [MODIFIED 1]"), "{r}");
    let _ = f.store.watch_mailbox(1);
}

#[tokio::test]
async fn bad_input_never_panics_and_errors_end_the_session() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    for (i, junk) in ["", "x", "a FETCH", "a UID", "a SELECT {3}", "a SEARCH (((", "\u{1}\u{2}", "a STORE 1 FLAGS \\Bogus"].iter().enumerate() {
        c.send(format!("{junk}\r\n").as_bytes()).await;
        let _ = i;
    }
    let r = c.cmd("z", "NOOP").await;
    assert!(r.contains("z OK") || r.contains("BYE"), "{r}");
    let long = format!("a NOOP {}\r\n", "x".repeat(70_000));
    c.send(long.as_bytes()).await;
    let r = c.until("a ").await;
    assert!(r.contains("a BAD [TOOBIG]"), "{r}");
}

#[tokio::test]
async fn qresync_reports_what_vanished_and_changed() {
    let f = fixture().await;
    for i in 0..4 {
        deliver(&f.store, &format!("Subject: {i}\r\n\r\nx\r\n")).await;
    }
    let mut a = Client::login(&f).await;
    assert!(a.cmd("e", "ENABLE QRESYNC").await.contains("* ENABLED QRESYNC"));
    let r = a.cmd("s", "SELECT INBOX").await;
    let uidvalidity: u32 = r.split("[UIDVALIDITY ").nth(1).unwrap().split(']').next().unwrap().parse().unwrap();
    let modseq: u64 = r.split("[HIGHESTMODSEQ ").nth(1).unwrap().split(']').next().unwrap().parse().unwrap();
    // Another session changes the mailbox while this client is away.
    let mut b = Client::login(&f).await;
    b.cmd("s", "SELECT INBOX").await;
    b.cmd("f", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    b.cmd("d", "STORE 2:3 +FLAGS.SILENT (\\Deleted)").await;
    let r = b.cmd("x", "EXPUNGE").await;
    assert!(r.contains("* 3 EXPUNGE"), "without QRESYNC: EXPUNGE {r}");
    // Re-synchronize in one round trip.
    let r = a.cmd("q", &format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4))")).await;
    assert!(r.contains("* OK [CLOSED]"), "{r}");
    assert!(r.contains("* VANISHED (EARLIER) 2:3\r\n"), "{r}");
    assert!(r.contains("FETCH (UID 1 FLAGS (\\Flagged"), "{r}");
    let r = a.cmd("v", &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)")).await;
    assert!(r.contains("* VANISHED (EARLIER) 2:3\r\n") && r.contains("UID 1 "), "{r}");
    // Live expunges arrive as VANISHED.
    b.cmd("d2", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.cmd("x2", "EXPUNGE").await;
    let r = a.cmd("n", "NOOP").await;
    assert!(r.contains("* VANISHED 1\r\n") && !r.contains("EXPUNGE"), "{r}");
    assert!(a.cmd("bad", "SELECT INBOX (QRESYNC (1 2 3:*) junk)").await.contains("bad BAD"));
}

#[tokio::test]
async fn star_ranges_in_small_and_empty_mailboxes() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    c.cmd("s", "SELECT INBOX").await;
    assert!(c.cmd("a", "FETCH 1:* FLAGS").await.starts_with("a OK"));
    assert!(c.cmd("b", "FETCH 1 FLAGS").await.starts_with("b BAD"));
    deliver(&f.store, "Subject: one\r\n\r\nx\r\n").await;
    assert!(c.cmd("n", "NOOP").await.contains("* 1 EXISTS"));
    let r = c.cmd("c", "FETCH 5:* (UID)").await;
    assert!(r.contains("* 1 FETCH (UID 1)") && r.contains("c OK"), "{r}");
    assert!(c.cmd("d", "UID FETCH 99:* (UID)").await.contains("* 1 FETCH (UID 1)"), "RFC 3501 §6.4.8: * is the last UID");
}

#[tokio::test]
async fn a_large_append_streams_to_a_blob_and_reads_back() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let mut msg = b"Subject: big\r\n\r\n".to_vec();
    while msg.len() < 90_000 {
        msg.extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n");
    }
    c.send(format!("a APPEND INBOX (\\Seen) {{{}}}\r\n", msg.len()).as_bytes()).await;
    assert!(c.until("+").await.starts_with("+ "));
    c.send(&msg).await;
    c.send(b"\r\n").await;
    let r = c.until("a ").await;
    assert!(r.contains("a OK [APPENDUID"), "{r}");
    c.cmd("s", "SELECT INBOX").await;
    let r = c.cmd("f", "FETCH 1 (RFC822.SIZE BODY.PEEK[])").await;
    assert!(r.contains(&format!("RFC822.SIZE {}", msg.len())), "{}", &r[..200]);
    assert!(r.contains(std::str::from_utf8(&msg[..2000]).unwrap()));
    // A staged message never leaks into another command: a bad APPEND drops it.
    c.send(format!("b APPEND Nowhere {{{}}}\r\n", msg.len()).as_bytes()).await;
    c.until("+").await;
    c.send(&msg).await;
    c.send(b"\r\n").await;
    assert!(c.until("b ").await.contains("b NO [TRYCREATE]"));
    assert!(c.cmd("n", "NOOP").await.contains("n OK"));
}

#[tokio::test]
async fn pipelined_commands_do_not_pile_up_replies() {
    let f = fixture().await;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let session = Session::new(f.services.clone(), Arc::new(settings(TlsMode::Implicit)), "192.0.2.1:1".parse().unwrap(), true);
    let task = tokio::spawn(conn::run(Box::new(server), session, None));
    let (mut rd, mut wr) = tokio::io::split(client);
    // 2,000 commands whose answers (~0.8 MB) the client does not read while sending.
    let mut batch = format!("l LOGIN bob@example.test \"{PASSWORD}\"\r\n").into_bytes();
    for i in 0..2000 {
        batch.extend_from_slice(format!("c{i} LIST \"\" *\r\n").as_bytes());
    }
    batch.extend_from_slice(b"z LOGOUT\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(&batch).await.unwrap();
        wr
    });
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut all)).await.unwrap().unwrap();
    let _ = writer.await.unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("c1999 OK") && text.contains("z OK"), "all commands answered");
    assert_eq!(task.await.unwrap(), conn::End::Logout);
}

#[tokio::test]
async fn a_selected_mailbox_deleted_elsewhere_ends_the_session() {
    let f = fixture().await;
    let mut a = Client::login(&f).await;
    let mut b = Client::login(&f).await;
    assert!(a.cmd("c", "CREATE Doomed").await.contains("c OK"));
    assert!(a.cmd("s", "SELECT Doomed").await.contains("s OK"));
    assert!(b.cmd("d", "DELETE Doomed").await.contains("d OK"));
    let r = a.cmd("n", "NOOP").await;
    assert!(r.contains("* BYE Selected mailbox was deleted"), "{r}");
}

/// A CONDSTORE-enabling FETCH in the selected state reports the current HIGHESTMODSEQ once
/// (RFC 7162 §3.1, as Dovecot does); ESEARCH MODSEQ follows the MIN/MAX messages, not every match (RFC 7162 §3.1.5).
#[tokio::test]
async fn condstore_enabled_late_and_esearch_modseq() {
    let f = fixture().await;
    for i in 0..3 {
        deliver(&f.store, &format!("Subject: {i}\r\n\r\nx\r\n")).await;
    }
    let mut c = Client::login(&f).await;
    c.cmd("s", "SELECT INBOX").await;
    let r = c.cmd("f", "FETCH 1 MODSEQ").await;
    assert!(r.contains("* OK [HIGHESTMODSEQ "), "{r}");
    assert!(!c.cmd("f2", "FETCH 1 MODSEQ").await.contains("HIGHESTMODSEQ"));
    let modseq = |r: &str| -> u64 { r.split("MODSEQ (").nth(1).unwrap().split(')').next().unwrap().parse().unwrap() };
    // Message 1 changes first, then 3, then 2: three distinct mod-sequences.
    let m1 = modseq(&c.cmd("a", "STORE 1 +FLAGS (\\Seen)").await);
    let m3 = modseq(&c.cmd("b", "STORE 3 +FLAGS (\\Seen)").await);
    let m2 = modseq(&c.cmd("c", "STORE 2 +FLAGS (\\Seen)").await);
    assert!(m1 < m3 && m3 < m2);
    let r = c.cmd("x", "SEARCH RETURN (MIN) MODSEQ 1").await;
    assert!(r.contains(&format!("MIN 1 MODSEQ {m1}\r\n")), "{r}");
    let r = c.cmd("y", "SEARCH RETURN (MAX) MODSEQ 1").await;
    assert!(r.contains(&format!("MAX 3 MODSEQ {m3}\r\n")), "{r}");
    let r = c.cmd("z", "SEARCH RETURN (MIN MAX) 1,3 MODSEQ 1").await;
    assert!(r.contains(&format!("MIN 1 MAX 3 MODSEQ {m3}\r\n")), "{r}");
    let r = c.cmd("w", "SEARCH RETURN (ALL) MODSEQ 1").await;
    assert!(r.contains(&format!("ALL 1:3 MODSEQ {m2}\r\n")), "{r}");
}

/// Subscriptions are names: CREATE does not subscribe, DELETE does not unsubscribe (RFC 3501
/// §6.3.6), LSUB with `%` returns the level above a deeper subscription as \Noselect
/// (§6.3.9), and LIST (SUBSCRIBED RECURSIVEMATCH) gives CHILDINFO only for descendants that
/// are not listed themselves (RFC 5258 §3.5).
#[tokio::test]
async fn subscriptions_lsub_and_list_subscribed() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    for name in ["Lists/rust", "Lists/go", "Old", "Deep/a/b"] {
        assert!(c.cmd("c", &format!("CREATE {name}")).await.contains("c OK"));
    }
    let r = c.cmd("l", "LSUB \"\" \"*\"").await;
    assert!(!r.contains("Lists") && !r.contains("Old"), "CREATE subscribed: {r}");
    for name in ["Lists/rust", "Old", "Deep/a/b"] {
        assert!(c.cmd("s", &format!("SUBSCRIBE {name}")).await.contains("s OK"));
    }
    assert!(c.cmd("d", "DELETE Old").await.contains("d OK"));
    let r = c.cmd("l", "LSUB \"\" \"%\"").await;
    assert!(r.contains("* LSUB (\\Noselect) \"/\" Lists\r\n"), "{r}");
    assert!(r.contains("* LSUB (\\Noselect) \"/\" Deep\r\n"), "{r}");
    assert!(r.contains("* LSUB () \"/\" Old\r\n"), "the subscription outlives the mailbox: {r}");
    assert!(!r.contains("Lists/rust"), "{r}");
    let r = c.cmd("l", "LSUB \"\" \"Deep/%\"").await;
    assert!(r.contains("* LSUB (\\Noselect) \"/\" Deep/a\r\n") && !r.contains("Deep/a/b"), "{r}");
    let r = c.cmd("x", "LIST (SUBSCRIBED) \"\" \"*\"").await;
    assert!(r.contains("* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Old\r\n"), "{r}");
    assert!(r.contains("\\Subscribed) \"/\" Lists/rust\r\n") && !r.contains("Lists/go"), "{r}");
    let r = c.cmd("y", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\"").await;
    assert!(r.contains("\"/\" Lists (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"), "{r}");
    let r = c.cmd("z", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Lists Lists/rust)").await;
    assert!(!r.contains("CHILDINFO") && r.contains("\"/\" Lists/rust\r\n"), "child listed itself: {r}");
    assert!(c.cmd("u", "UNSUBSCRIBE Old").await.contains("u OK"));
    assert!(!c.cmd("l", "LSUB \"\" \"*\"").await.contains("Old"));
}

/// Delivers `messages` after one that is then expunged, and selects INBOX: UIDs are the
/// sequence numbers + 1, so answers show which of the two a command used.
async fn select_with_uids_apart(f: &Fixture, c: &mut Client, messages: &[&str]) {
    deliver(&f.store, "Subject: gone\r\n\r\nx\r\n").await;
    for m in messages {
        deliver(&f.store, m).await;
    }
    c.cmd("s", "SELECT INBOX").await;
    c.cmd("d", "STORE 1 +FLAGS (\\Deleted)").await;
    assert!(c.cmd("e", "EXPUNGE").await.contains("* 1 EXPUNGE"));
}

/// SORT and UID SORT (RFC 5256): base subjects, Date with INTERNALDATE as fallback, first
/// address, ties by sequence number, REVERSE on one key only, the search criteria; ESORT
/// (RFC 5267 §3) with MIN/MAX in sort order; BADCHARSET; MODSEQ (RFC 7162 §3.1.5).
#[tokio::test]
async fn sort_uid_sort_and_esort() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let caps = c.cmd("c", "CAPABILITY").await;
    assert!(caps.contains(" SORT ") && caps.contains(" SORT=DISPLAY ") && caps.contains(" ESORT "), "{caps}");
    assert!(c.cmd("n", "SORT (DATE) UTF-8 ALL").await.contains("n BAD"), "SORT needs a selected mailbox");
    select_with_uids_apart(&f, &mut c, &[
        "From: Zoe <zoe@example.test>\r\nTo: b@example.test\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\nSubject: Re: [list] beta\r\n\r\n1\r\n",
        "From: amy@example.test, zed@example.test\r\nDate: Fri, 27 Nov 2026 10:00:00 -0500\r\nSubject: =?utf-8?q?Fwd=3A_alpha?=\r\n\r\n22\r\n",
        // No Date: sorts by INTERNALDATE (2026-09-21, deliver's), before the others' dates.
        "From: \"Mo\" <mo@example.test>\r\nSubject: [fwd: ALPHA] (fwd)\r\n\r\n333\r\n",
        "To: a@example.test\r\nDate: Fri, 27 Nov 2026 11:00:00 +0000\r\n\r\n4444\r\n",
    ])
    .await;
    // Base subjects: beta, alpha, ALPHA, "" → "", alpha, ALPHA (a tie: sequence order), beta.
    let r = c.cmd("a", "SORT (SUBJECT) UTF-8 ALL").await;
    assert!(r.contains("* SORT 4 2 3 1\r\n") && r.contains("a OK SORT completed"), "{r}");
    let r = c.cmd("b", "SORT (REVERSE SUBJECT) US-ASCII ALL").await;
    assert!(r.contains("* SORT 1 2 3 4\r\n"), "{r}");
    // Sent times: 3 (internal date), 4 11:00Z, 1 12:00Z, 2 15:00Z.
    let r = c.cmd("f", "UID SORT (DATE) UTF-8 ALL").await;
    assert!(r.contains("* SORT 4 5 2 3\r\n"), "{r}");
    let r = c.cmd("g", "SORT (REVERSE DATE) UTF-8 NOT 4").await;
    assert!(r.contains("* SORT 2 1 3\r\n"), "{r}");
    // First From address's mailbox: "" (none), amy, mo, zoe; ARRIVAL ties keep sequence order.
    let r = c.cmd("h", "SORT (FROM) UTF-8 ALL").await;
    assert!(r.contains("* SORT 4 2 3 1\r\n"), "{r}");
    let r = c.cmd("i", "SORT (DISPLAYFROM) UTF-8 ALL").await;
    assert!(r.contains("* SORT 4 2 3 1\r\n"), "{r}");
    // Sizes 121, 123, 64 and 67 octets; all four arrived at the same time.
    let r = c.cmd("j", "SORT (REVERSE ARRIVAL SIZE) UTF-8 ALL").await;
    assert!(r.contains("* SORT 3 4 1 2\r\n"), "{r}");
    let r = c.cmd("k", "UID SORT (TO REVERSE SIZE) UTF-8 SUBJECT alpha").await;
    assert!(r.contains("* SORT 3 4\r\n"), "{r}");
    let r = c.cmd("l", "SORT (SUBJECT) UTF-8 SUBJECT nothing").await;
    assert!(r.contains("* SORT\r\n"), "{r}");
    // ESORT: MIN and MAX are the first and last in sort order; ALL keeps the order.
    let r = c.cmd("m", "UID SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL").await;
    assert!(r.contains("* ESEARCH (TAG \"m\") UID MIN 5 MAX 2 COUNT 4 ALL 5,3:4,2\r\n"), "{r}");
    let r = c.cmd("o", "SORT RETURN () (REVERSE SIZE) UTF-8 ALL").await;
    assert!(r.contains("* ESEARCH (TAG \"o\") ALL 2,1,4,3\r\n"), "{r}");
    let r = c.cmd("p", "SORT (DATE) KOI8-R ALL").await;
    assert!(r.contains("p NO [BADCHARSET (UTF-8 US-ASCII)]"), "{r}");
    // RFC 7162 §3.1.5: a MODSEQ criterion adds the highest MODSEQ (and enables CONDSTORE).
    let m1: u64 = {
        let r = c.cmd("q", "STORE 1 +FLAGS (\\Seen)").await;
        assert!(!r.contains("MODSEQ"), "{r}");
        let r = c.cmd("r", "SORT (SUBJECT) UTF-8 MODSEQ 1").await;
        assert!(r.contains("* OK [HIGHESTMODSEQ "), "{r}");
        let line = r.lines().find(|l| l.starts_with("* SORT 4 2 3 1 (MODSEQ ")).unwrap_or_else(|| panic!("{r}"));
        line.trim_end_matches(')').rsplit(' ').next().unwrap().parse().unwrap()
    };
    let r = c.cmd("t", "SORT RETURN (MAX) (SUBJECT) UTF-8 MODSEQ 1").await;
    assert!(r.contains(&format!("* ESEARCH (TAG \"t\") MAX 1 MODSEQ {m1}\r\n")), "{r}");
}

/// CONTEXT=SORT (RFC 5267 §4): SORT RETURN (UPDATE) hears ADDTO and REMOVEFROM with the
/// positions in its sorted list, by UID or by message number (where an EXPUNGE already took the
/// message away); CANCELUPDATE ends it.
#[tokio::test]
async fn sort_contexts_report_positions() {
    let f = fixture().await;
    for s in ["c", "a", "e"] {
        deliver(&f.store, &format!("Subject: {s}\r\n\r\nx\r\n")).await;
    }
    let mut c = Client::login(&f).await;
    assert!(c.cmd("c", "CAPABILITY").await.contains(" CONTEXT=SORT "));
    c.cmd("s", "SELECT INBOX").await;
    let r = c.cmd("u", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNDELETED").await;
    assert!(r.contains("* ESEARCH (TAG \"u\") UID ALL 2,1,3\r\n") && r.contains("u OK"), "{r}");
    let r = c.cmd("v", "SORT RETURN (UPDATE COUNT) (REVERSE SUBJECT) UTF-8 UNDELETED").await;
    assert!(r.contains("* ESEARCH (TAG \"v\") COUNT 3\r\n"), "{r}");
    deliver(&f.store, "Subject: b\r\n\r\nx\r\n").await;
    deliver(&f.store, "Subject: d\r\n\r\nx\r\n").await;
    // a b c d e by UID 2 4 1 5 3; reversed by number e d c b a = 3 5 1 4 2.
    let r = c.cmd("n", "NOOP").await;
    assert!(r.contains("* ESEARCH (TAG \"u\") UID ADDTO (2 4 4 5)\r\n"), "{r}");
    assert!(r.contains("* ESEARCH (TAG \"v\") ADDTO (2 5 4 4)\r\n"), "{r}");
    let r = c.cmd("d", "STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.contains("* ESEARCH (TAG \"u\") UID REMOVEFROM (3 1 1 2)\r\n"), "{r}");
    assert!(r.contains("* ESEARCH (TAG \"v\") REMOVEFROM (5 2 3 1)\r\n"), "{r}");
    // The expunged messages left both lists already; the number context hears nothing more.
    let r = c.cmd("x", "EXPUNGE").await;
    assert!(r.contains("* 1 EXPUNGE") && !r.contains("TAG \"v\""), "{r}");
    deliver(&f.store, "Subject: a\r\n\r\nx\r\n").await;
    let r = c.cmd("m", "NOOP").await;
    assert!(r.contains("* ESEARCH (TAG \"u\") UID ADDTO (1 6)\r\n"), "{r}");
    assert!(r.contains("* ESEARCH (TAG \"v\") ADDTO (4 4)\r\n"), "{r}");
    assert!(c.cmd("k", "CANCELUPDATE \"u\" \"v\"").await.contains("k OK"));
    deliver(&f.store, "Subject: f\r\n\r\nx\r\n").await;
    assert!(!c.cmd("o", "NOOP").await.contains("ESEARCH"));
}

/// UTF8=ACCEPT (RFC 6855): advertised; ENABLE turns on UTF-8 mailbox names both ways (the
/// store keeps modified UTF-7, which a client that did not enable still sees) and the APPEND
/// `UTF8 (~{n}...)` form, which is BAD before; UTF-8 headers come back as stored.
#[tokio::test]
async fn utf8_accept_names_and_append() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    assert!(c.cmd("c", "CAPABILITY").await.contains(" UTF8=ACCEPT"));
    let message = "Subject: Caf\u{e9} cr\u{e8}me\r\nFrom: J\u{fc}rgen <j@example.test>\r\n\r\nbody\r\n";
    let utf8_append = |tag: &str| format!("{tag} APPEND INBOX UTF8 (~{{{}+}}\r\n{message})\r\n", message.len());
    c.send(utf8_append("a").as_bytes()).await;
    assert!(c.until("a ").await.starts_with("a BAD"), "UTF8 APPEND needs ENABLE first");
    assert!(c.cmd("e", "ENABLE UTF8=ACCEPT").await.contains("* ENABLED UTF8=ACCEPT\r\n"));
    c.send(utf8_append("b").as_bytes()).await;
    assert!(c.until("b ").await.contains("b OK [APPENDUID"));
    assert!(c.cmd("m", "CREATE \"Caf\u{e9}/\u{65e5}\u{672c}\"").await.contains("m OK"));
    let r = c.cmd("l", "LIST \"\" \"*\"").await;
    assert!(r.contains("Caf\u{e9}/\u{65e5}\u{672c}") && !r.contains("&AOk-"), "{r}");
    let r = c.cmd("s", "SELECT INBOX").await;
    assert!(r.contains("* 1 EXISTS"), "{r}");
    // RFC 6855 §3 with erratum 4029: a charset other than UTF-8 conflicts (BAD, not BADCHARSET).
    assert!(c.cmd("k", "SEARCH CHARSET ISO-8859-1 ALL").await.starts_with("k BAD"));
    assert!(c.cmd("k", "SORT (DATE) KOI8-R ALL").await.starts_with("k BAD"));
    let r = c.cmd("k", "SEARCH CHARSET UTF-8 SUBJECT \"caf\u{e9}\"").await;
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
    let r = c.cmd("h", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE)").await;
    // The header as stored, and ENVELOPE's subject as its raw UTF-8 (a literal).
    assert!(r.contains("Subject: Caf\u{e9} cr\u{e8}me\r\n") && r.contains("{12}\r\nCaf\u{e9} cr\u{e8}me"), "{r}");
    // Another client, which did not enable it, sees the stored modified UTF-7 name.
    let mut d = Client::login(&f).await;
    let r = d.cmd("l", "LIST \"\" \"*\"").await;
    assert!(r.contains("Caf&AOk-/&ZeVnLA-"), "{r}");
}

/// NOTIFY (RFC 5465): `selected` MessageNew with FETCH attributes, a rename as LIST with
/// OLDNAME, MailboxMetadataChange and ServerMetadataChange as unsolicited METADATA.
#[tokio::test]
async fn notify_renames_new_messages_and_metadata() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let mut other = Client::login(&f).await;
    assert!(c.cmd("a", "CREATE Work").await.contains("a OK"));
    c.cmd("s", "SELECT INBOX").await;
    let set = "NOTIFY SET (selected (MessageNew (UID RFC822.SIZE))) (personal (MailboxName MailboxMetadataChange ServerMetadataChange))";
    assert!(c.cmd("n", set).await.contains("n OK"));
    deliver(&f.store, "Subject: new\r\n\r\nx\r\n").await;
    let r = c.cmd("p", "NOOP").await;
    let exists = r.find("* 1 EXISTS").unwrap_or_else(|| panic!("{r}"));
    assert!(r.find("* 1 FETCH (UID 1 RFC822.SIZE 19)\r\n").is_some_and(|at| at > exists), "{r}");
    assert!(!c.cmd("q", "NOOP").await.contains("FETCH"), "told once");
    assert!(other.cmd("r", "RENAME Work Play").await.contains("r OK"));
    let r = c.cmd("t", "NOOP").await;
    assert!(r.contains("* LIST () \"/\" Play (\"OLDNAME\" (Work))\r\n") && !r.contains("NonExistent"), "{r}");
    assert!(other.cmd("u", "SETMETADATA Play (/private/comment \"hi\" /private/a \"b\")").await.contains("u OK"));
    let r = c.cmd("v", "NOOP").await;
    assert!(r.contains("* METADATA \"Play\" /private/a /private/comment\r\n"), "{r}");
    assert!(other.cmd("w", "SETMETADATA \"\" (/private/x \"y\")").await.contains("w OK"));
    let r = c.cmd("x", "NOOP").await;
    assert!(r.contains("* METADATA \"\" /private/x\r\n") && !r.contains("Play"), "{r}");
    // Setting a value again to the same is no change.
    assert!(other.cmd("y", "SETMETADATA \"\" (/private/x \"y\")").await.contains("y OK"));
    assert!(!c.cmd("z", "NOOP").await.contains("METADATA"));
}

/// THREAD and UID THREAD (RFC 5256): REFERENCES (References, In-Reply-To, a missing parent,
/// a "Re:" without references joining its original by subject) and ORDEREDSUBJECT, with
/// search criteria, an empty result, BADCHARSET and unknown algorithms.
#[tokio::test]
async fn thread_and_uid_thread() {
    let f = fixture().await;
    let mut c = Client::login(&f).await;
    let caps = c.cmd("c", "CAPABILITY").await;
    assert!(caps.contains(" THREAD=ORDEREDSUBJECT ") && caps.contains(" THREAD=REFERENCES "), "{caps}");
    assert!(c.cmd("n", "THREAD REFERENCES UTF-8 ALL").await.contains("n BAD"), "THREAD needs a selected mailbox");
    select_with_uids_apart(&f, &mut c, &[
        "Subject: hello\r\nMessage-ID: <a@x>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\n1\r\n",
        "Subject: Re: hello\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\n2\r\n",
        "Subject: Re: hello\r\nMessage-ID: <c@x>\r\nIn-Reply-To: <a@x>\r\nDate: Fri, 27 Nov 2026 11:00:00 +0000\r\n\r\n3\r\n",
        // Its parent is not in the mailbox: the dummy gives way to it.
        "Subject: other\r\nMessage-ID: <d@x>\r\nReferences: <zz@x>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\n\r\n4\r\n",
        // No Date: INTERNALDATE (2026-09-21) is its sent date; no references: joins "other".
        "Subject: Re: other\r\nMessage-ID: <e@x>\r\n\r\n5\r\n",
    ])
    .await;
    let r = c.cmd("a", "THREAD REFERENCES UTF-8 ALL").await;
    assert!(r.contains("* THREAD (4 5)(1 (3)(2))\r\n") && r.contains("a OK THREAD completed"), "{r}");
    let r = c.cmd("b", "UID THREAD REFERENCES US-ASCII ALL").await;
    assert!(r.contains("* THREAD (5 6)(2 (4)(3))\r\n"), "{r}");
    // Without message 1, its two answers hang from a dummy: a thread-list without a number.
    let r = c.cmd("f", "THREAD REFERENCES UTF-8 NOT 1").await;
    assert!(r.contains("* THREAD (4 5)((3)(2))\r\n"), "{r}");
    // ORDEREDSUBJECT: by base subject, then sent date; threads by their first message's date.
    let r = c.cmd("g", "THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert!(r.contains("* THREAD (5 4)(1 (3)(2))\r\n"), "{r}");
    let r = c.cmd("h", "UID THREAD orderedsubject UTF-8 SUBJECT hello").await;
    assert!(r.contains("* THREAD (2 (4)(3))\r\n"), "{r}");
    let r = c.cmd("i", "THREAD REFERENCES UTF-8 SUBJECT nothing").await;
    assert!(r.contains("* THREAD\r\n"), "{r}");
    let r = c.cmd("p", "THREAD REFERENCES KOI8-R ALL").await;
    assert!(r.contains("p NO [BADCHARSET (UTF-8 US-ASCII)]"), "{r}");
    let r = c.cmd("q", "THREAD REFS UTF-8 ALL").await;
    assert!(r.contains("q BAD"), "{r}");
}

/// Messages of every shape for [`summaries_answer_as_the_messages_do`].
const SHAPES: &[&str] = &[
    "From: \"Zoë Ünder\" <zoe@example.test>\r\nTo: Bob <bob@example.test>, c@example.test\r\nCc: list:;\r\n\
     Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and Re: news\r\nDate: Fri, 27 Nov 2026 23:30:00 -0700\r\n\
     Message-ID: <a1@example.test>\r\nX-Other: findme-header\r\nContent-Type: text/plain; charset=utf-8\r\n\
     Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln, quixotically yours=\r\n!\r\n",
    "From: amy@example.test\r\nTo: bob@example.test\r\nSubject: Re: Grüße and Re: news\r\n\
     In-Reply-To: <a1@example.test>\r\nReferences: <a1@example.test>\r\nDate: 26 Nov 2026 10:00:00 +0000\r\n\
     Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/html\r\n\r\n\
     <p>Hello <b>world</b>-wide web, ΟΔΟΣ</p>\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
     U2VjcmV0UGRmV29yZA==\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.test\r\nSubject: inner\r\n\r\n\
     nested-token body\r\n--b1--\r\n",
    "From: d\r\nSubject: no date, a word longer than the index takes: \
     aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n\
     bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb and world\r\n",
    "no header at all, just text: world quixotic\r\n",
    "From: =?iso-8859-1?q?J=F6rg?= <jorg@example.test>\r\nTo: amy@example.test\r\nSubject: [list] Fwd: plan (fwd)\r\n\
     Date: Thu, 26 Nov 2026 09:00:00 +0100\r\nMessage-ID: <b2@example.test>\r\nReferences: <a1@example.test> <gone@example.test>\r\n\r\n\
     C'est l'été, WORLDWIDE news.\r\n",
];

/// The commands [`summaries_answer_as_the_messages_do`] compares.
const ASKED: &[&str] = &[
    "SEARCH FROM zoe", "SEARCH FROM \"zoë\"", "SEARCH FROM \"jörg\"", "SEARCH TO bob", "SEARCH CC list", "SEARCH BCC x",
    "SEARCH SUBJECT \"grüße\"", "SEARCH SUBJECT \"\"", "SEARCH HEADER Message-ID <a1@", "SEARCH HEADER X-Other findme",
    "SEARCH BODY quixotic", "SEARCH BODY xotic", "SEARCH BODY quixotically", "SEARCH BODY \"world\"", "SEARCH BODY \"wide web\"",
    "SEARCH BODY \"ld-wi\"", "SEARCH BODY orld", "SEARCH BODY \"grüße\"", "SEARCH BODY \"köln\"", "SEARCH BODY \"ΟΔΟΣ\"",
    "SEARCH BODY nested-token", "SEARCH BODY SecretPdfWord", "SEARCH BODY \"été\"", "SEARCH BODY bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "SEARCH BODY \"\"", "SEARCH BODY \"--\"", "SEARCH TEXT findme-header", "SEARCH TEXT U2VjcmV0", "SEARCH TEXT inner@example",
    "SEARCH TEXT \"c3=9fe\"", "SEARCH TEXT world", "SEARCH TEXT absentword", "SEARCH OR BODY world TEXT findme",
    "SEARCH NOT BODY world", "SEARCH BODY world NOT FROM amy", "SEARCH SENTBEFORE 27-Nov-2026", "SEARCH SENTON 26-Nov-2026",
    "SEARCH SENTSINCE 28-Nov-2026", "SEARCH NOT SENTON 1-Jan-1970 LARGER 100", "SORT (DATE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL",
    "SORT (FROM REVERSE SIZE) UTF-8 ALL", "SORT (DISPLAYFROM) UTF-8 ALL", "SORT (TO CC) UTF-8 BODY world", "SORT (DISPLAYTO ARRIVAL) UTF-8 ALL",
    "THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL", "FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)",
    "UID FETCH 2:4 (BODYSTRUCTURE FLAGS)", "FETCH 2 (ENVELOPE BODY[HEADER.FIELDS (SUBJECT)])",
];

async fn answers(f: &Fixture) -> Vec<String> {
    for m in SHAPES {
        deliver(&f.store, m).await;
    }
    let mut c = Client::login(f).await;
    c.cmd("s", "EXAMINE INBOX").await;
    let mut out = Vec::new();
    for (i, cmd) in ASKED.iter().enumerate() {
        let r = c.cmd(&format!("t{i}"), cmd).await;
        assert!(r.contains(&format!("t{i} OK")), "{cmd}: {r}");
        out.push(format!("{cmd}: {r}"));
    }
    out
}

/// Every SEARCH, SORT, THREAD and FETCH answered from the summaries and the full-text index
/// is the answer read from the messages: a store that summarized them at delivery, and one
/// that did not (asked twice: the first reads the messages and keeps their summaries, the
/// second reads those).
#[tokio::test]
async fn summaries_answer_as_the_messages_do() {
    let summarized = answers(&fixture_with(true).await).await;
    let f = fixture_with(false).await;
    let read = answers(&f).await;
    let mut c = Client::login(&f).await;
    c.cmd("s", "EXAMINE INBOX").await;
    for ((cmd, a), b) in ASKED.iter().zip(&summarized).zip(&read) {
        assert_eq!(a, b, "{cmd}");
    }
    for (i, (cmd, b)) in ASKED.iter().zip(&read).enumerate() {
        let again = format!("{cmd}: {}", c.cmd(&format!("t{i}"), cmd).await);
        assert_eq!(&again, b, "{cmd}, from the kept summaries");
    }
    // A few answers, so that "the same" is not "the same nothing".
    let find = |cmd: &str| summarized.iter().find(|a| a.starts_with(&format!("{cmd}: "))).unwrap().clone();
    assert!(find("SEARCH BODY xotic").contains("* SEARCH 1\r\n"), "{}", find("SEARCH BODY xotic"));
    assert!(find("SEARCH TEXT findme-header").contains("* SEARCH 1\r\n"));
    assert!(find("SEARCH BODY orld").contains("* SEARCH 2 3 5\r\n"));
    assert!(find("SEARCH BODY \"wide web\"").contains("* SEARCH 2\r\n"));
    assert!(find("SEARCH TEXT \"c3=9fe\"").contains("* SEARCH 1\r\n"));
    assert!(find("SEARCH FROM \"jörg\"").contains("* SEARCH 5\r\n"));
}

/// A message of [`varied`]'s mailbox: senders, recipients, subjects and dates of many shapes
/// (missing, empty, encoded, without a domain, groups, reply and forward markers, invalid
/// dates, zones), chosen by a fixed pseudo-random sequence from `seed`.
fn varied(seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut pick = |n: usize| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) % n as u64) as usize
    };
    const PEOPLE: &[&str] = &[
        "Alice <alice@example.test>", "\"Bob B.\" <bob@example.test>", "carol@example.test", "d", "",
        "=?utf-8?q?Zo=C3=AB?= <zoe@example.test>", "list: amy@example.test, ben@example.test;", "undisclosed:;",
        "\"Émile\" <emile@x.test>", "<bare@x.test>", "ALICE <Alice@Example.Test>", "Mallory <m@evil.test>, alice@example.test",
    ];
    const SUBJECTS: &[&str] = &[
        "Hello", "Re: Hello", "RE: re: hello", "Fwd: [list] Plan", "[list] Plan (fwd)", "", "  spaced   out  ",
        "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Re: [fwd: Budget]", "budget", "Zebra", "árvíztűrő", "Re:", "[x] [y] z",
    ];
    const DATES: &[&str] = &[
        "Fri, 27 Nov 2026 23:30:00 -0700", "27 Nov 2026 10:00:00 +0000", "Thu, 26 Nov 2026 09:00:00 +0100",
        "not a date", "", "1 Jan 1970 00:00:00 +0000", "Sat, 28 Nov 2026 06:30:00 +0530", "31 Dec 2025 23:59:59 -1200",
    ];
    let mut m = String::new();
    for (field, list) in [("From", PEOPLE), ("To", PEOPLE), ("Cc", PEOPLE), ("Bcc", PEOPLE), ("Subject", SUBJECTS), ("Date", DATES)] {
        let i = pick(list.len() + 2);
        if i < list.len() {
            m.push_str(&format!("{field}: {}\r\n", list[i]));
        }
    }
    if pick(3) > 0 {
        m.push_str(&format!("Message-ID: <m{}@example.test>\r\n", pick(20)));
    }
    if pick(3) == 0 {
        m.push_str(&format!("References: <m{}@example.test>\r\n", pick(20)));
    }
    m.push_str("\r\n");
    m.push_str(&"body text ".repeat(1 + pick(40)));
    m.push_str("\r\n");
    m
}

/// Every SORT key, alone, reversed and combined, and the header SEARCH keys, as SORT and
/// SEARCH answer them from the summaries kept at delivery, on the same mailbox after its
/// summaries were thrown away (read from the messages: the full scan), from the summaries that
/// scan kept, and from those the background backfill makes.
#[tokio::test]
async fn sort_and_header_search_answer_as_a_full_scan_does() {
    const ASKED: &[&str] = &[
        "SORT (DATE) UTF-8 ALL", "SORT (REVERSE DATE) UTF-8 ALL", "SORT (ARRIVAL) UTF-8 ALL", "SORT (REVERSE ARRIVAL) UTF-8 ALL",
        "SORT (SIZE) UTF-8 ALL", "SORT (REVERSE SIZE) UTF-8 ALL", "SORT (SUBJECT) UTF-8 ALL", "SORT (REVERSE SUBJECT) UTF-8 ALL",
        "SORT (FROM) UTF-8 ALL", "SORT (TO) UTF-8 ALL", "SORT (CC) UTF-8 ALL", "SORT (DISPLAYFROM) UTF-8 ALL",
        "SORT (DISPLAYTO) UTF-8 ALL", "SORT (REVERSE DISPLAYFROM DATE) UTF-8 ALL", "SORT (SUBJECT REVERSE DATE SIZE) UTF-8 ALL",
        "SORT (FROM TO CC) UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL", "SORT (DATE) UTF-8 FROM alice", "SORT (SUBJECT) UTF-8 NOT TO bob",
        "SORT (SIZE) UTF-8 SENTSINCE 27-Nov-2026", "SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", "SORT (DATE) UTF-8 1:50",
        "SEARCH FROM alice", "SEARCH FROM \"zoë\"", "SEARCH FROM \"\"", "SEARCH TO example", "SEARCH CC list", "SEARCH BCC bob",
        "SEARCH SUBJECT budget", "SEARCH SUBJECT \"re:\"", "SEARCH SUBJECT \"GRÜSSE\"", "SEARCH SUBJECT \"árvíz\"",
        "SEARCH HEADER Message-ID <m1", "SEARCH HEADER Subject plan", "SEARCH OR FROM d TO d", "SEARCH NOT FROM example",
        "SEARCH FROM example SUBJECT hello", "UID SEARCH TO \"émile\"", "SEARCH SENTBEFORE 27-Nov-2026", "SEARCH SENTON 1-Jan-1970",
        "THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL",
    ];
    const N: u64 = 150;
    let f = fixture_with(true).await;
    for i in 0..N {
        deliver(&f.store, &varied(i)).await;
    }
    let mut c = Client::login(&f).await;
    c.cmd("s", "EXAMINE INBOX").await;
    let mut kept = Vec::new();
    for (i, cmd) in ASKED.iter().enumerate() {
        let r = c.cmd(&format!("a{i}"), cmd).await;
        assert!(r.contains(&format!("a{i} OK")), "{cmd}: {r}");
        kept.push(r);
    }
    for (i, cmd) in ASKED.iter().enumerate() {
        f.store.forget_summaries().await.unwrap();
        let scanned = c.cmd(&format!("a{i}"), cmd).await;
        assert_eq!(kept[i], scanned, "{cmd}: from the summaries kept at delivery, and from the messages");
        let again = c.cmd(&format!("a{i}"), cmd).await;
        assert_eq!(again, scanned, "{cmd}: from the summaries the scan kept");
    }
    f.store.forget_summaries().await.unwrap();
    assert_eq!(f.store.backfill_pass(Duration::ZERO).await.unwrap(), N as usize);
    for (i, cmd) in ASKED.iter().enumerate() {
        let backfilled = c.cmd(&format!("a{i}"), cmd).await;
        assert_eq!(kept[i], backfilled, "{cmd}: from the summaries the backfill made");
    }
    // Not "the same nothing".
    let r = c.cmd("z", "SEARCH FROM alice").await;
    assert!(r.split("\r\n").next().unwrap().split(' ').count() > 10, "{r}");
    let r = c.cmd("z", "SORT (SUBJECT) UTF-8 ALL").await;
    assert_eq!(r.split("\r\n").next().unwrap().split(' ').count(), N as usize + 2, "{r}");
}

/// The fixture's services with the column cache off: SORT and SEARCH read the store.
fn uncached(f: &Fixture) -> Arc<Services> {
    let s = &f.services;
    Arc::new(Services {
        store: s.store.clone(),
        auth: s.auth.clone(),
        guard: s.guard.clone(),
        hostname: s.hostname.clone(),
        max_auth_failures: s.max_auth_failures,
        failure_delay: s.failure_delay,
        learner: None,
        columns: Arc::new(rampart_imap::ColumnCache::new(0)),
        user_keys: None,
    })
}

/// SORT, THREAD and SEARCH answer the same from the column cache as from the store, on random
/// mailboxes, as messages arrive, flags change (keys combining them with header criteria) and
/// messages are expunged under the cache.
#[tokio::test]
async fn the_column_cache_answers_as_the_store_does() {
    const ASKED: &[&str] = &[
        "SORT (DATE) UTF-8 ALL", "SORT (REVERSE ARRIVAL) UTF-8 ALL", "SORT (SIZE) UTF-8 LARGER 300", "SORT (SUBJECT DATE) UTF-8 ALL",
        "SORT (REVERSE FROM) UTF-8 ALL", "SORT (DISPLAYFROM TO CC) UTF-8 ALL", "SORT (DISPLAYTO) UTF-8 UNSEEN", "UID SORT (DATE) UTF-8 FLAGGED",
        "SORT (DATE) UTF-8 FROM alice", "SORT (SUBJECT) UTF-8 OR FLAGGED TO bob", "SORT (DATE) UTF-8 SENTSINCE 27-Nov-2026",
        "SEARCH FROM alice", "SEARCH FROM \"zoë\"", "SEARCH FROM \"\"", "SEARCH TO example", "SEARCH CC list", "SEARCH BCC bob",
        "SEARCH SUBJECT \"re:\"", "SEARCH HEADER Message-ID <m1", "SEARCH HEADER X-None x", "SEARCH NOT FROM example",
        "SEARCH FLAGGED FROM example", "SEARCH UNFLAGGED SUBJECT budget", "UID SEARCH SEEN TO \"émile\"", "SEARCH SMALLER 400 CC d",
        "SEARCH SINCE 1-Jan-2026 FROM a", "SEARCH RETURN (MIN MAX COUNT) FROM a", "SEARCH BODY text FROM alice", "SEARCH 5:40 SUBJECT e",
        "THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 FROM a",
    ];
    let f = fixture().await;
    for i in 0..90 {
        deliver(&f.store, &varied(1000 + i)).await;
    }
    let mut cached = Client::login(&f).await;
    let mut plain = Client::login_with(uncached(&f)).await;
    cached.cmd("s", "SELECT INBOX").await;
    plain.cmd("s", "SELECT INBOX").await;
    async fn same(cached: &mut Client, plain: &mut Client, round: &str) {
        cached.cmd("n", "NOOP").await;
        plain.cmd("n", "NOOP").await;
        for (i, cmd) in ASKED.iter().enumerate() {
            let a = cached.cmd(&format!("a{i}"), cmd).await;
            assert!(a.contains(&format!("a{i} OK")), "{cmd}: {a}");
            assert_eq!(a, plain.cmd(&format!("a{i}"), cmd).await, "{round}: {cmd}");
        }
    }
    same(&mut cached, &mut plain, "built").await;
    cached.cmd("f", "STORE 1:30 +FLAGS (\\Flagged)").await;
    cached.cmd("f", "STORE 20:60 +FLAGS (\\Seen)").await;
    for i in 0..40 {
        deliver(&f.store, &varied(2000 + i)).await;
    }
    same(&mut cached, &mut plain, "flags changed, messages arrived").await;
    plain.cmd("d", "STORE 2:100:3 +FLAGS (\\Deleted)").await;
    plain.cmd("e", "EXPUNGE").await;
    deliver(&f.store, &varied(3000)).await;
    same(&mut cached, &mut plain, "expunged").await;
    // Summaries thrown away and made again by the backfill, under the cache.
    f.store.forget_summaries().await.unwrap();
    same(&mut cached, &mut plain, "forgotten").await;
    f.store.backfill_pass(Duration::ZERO).await.unwrap();
    same(&mut cached, &mut plain, "backfilled").await;
    assert!(f.services.columns.bytes() > 0, "the cache was used");
}

/// A message stored encrypted to its user's OpenPGP key with a plaintext search summary
/// (`rampart_imap_proto::summary::encrypted`, here on a clear store that opted in): SEARCH's
/// text criteria are answered from that summary and a hit is final (the stored message is
/// ciphertext, which reading could not confirm); FETCH and SORT describe the stored message.
/// Without the opt-in, SEARCH sees the encrypted message's outer fields only.
#[tokio::test]
async fn searches_over_mail_encrypted_to_a_key_answer_from_the_plaintext_summary() {
    const KEY: &[u8] = include_bytes!("../../rampart-pgp/testdata/alice.pub.asc");
    const REPORT: &str = "From: Sender <sender@remote.test>\r\nTo: alice@example.org\r\nSubject: Quarterly zebrafigure\r\n\
        X-Other: findme\r\nMessage-ID: <r1@remote.test>\r\n\r\nthe quokka numbers are in\r\n";
    const LUNCH: &str = "From: other@remote.test\r\nTo: alice@example.org\r\nSubject: Lunch\r\n\r\nwombat sandwiches\r\n";
    let searches = |opted_in: bool| -> Vec<(&'static str, &'static str)> {
        let (report, lunch, both) = if opted_in { ("* SEARCH 1\r\n", "* SEARCH 2\r\n", "* SEARCH 1 2\r\n") } else { ("* SEARCH\r\n", "* SEARCH\r\n", "* SEARCH 1 2\r\n") };
        vec![
            ("SEARCH SUBJECT zebrafigure", report),
            ("SEARCH BODY quokka", report),
            ("SEARCH BODY \"quokka numbers\"", report),
            ("SEARCH BODY uokk", report),
            ("SEARCH TEXT zebrafigure", report),
            ("SEARCH TEXT quokka", report),
            ("SEARCH HEADER Subject quarterly", report),
            ("SEARCH BODY wombat", lunch),
            ("SEARCH NOT BODY quokka", if opted_in { lunch } else { both }),
            // Outer fields, in both: From and To stay outside the encryption.
            ("SEARCH FROM sender@remote", "* SEARCH 1\r\n"),
            ("SEARCH TO alice", both),
            // Not kept in the summary (nor outside): never a match, rather than a guess.
            ("SEARCH HEADER X-Other findme", "* SEARCH\r\n"),
            ("SEARCH BODY absentword", "* SEARCH\r\n"),
            ("SEARCH BODY \"--\"", "* SEARCH\r\n"),
            // The stored Subject is "...": the plaintext's answers, not the outer one.
            ("SEARCH SUBJECT \"...\"", if opted_in { "* SEARCH\r\n" } else { both }),
        ]
    };
    for opted_in in [true, false] {
        let f = fixture().await;
        f.store.add_domain("example.org").await.unwrap();
        let hash = rampart_auth::hash_password(PASSWORD, rampart_auth::HashParams::default()).unwrap();
        let alice = f.store.add_account("alice@example.org", &hash).await.unwrap();
        let options = rampart_store::PgpOptions { protect_subject: true, publish: false, search: opted_in };
        f.store.pgp_key_set("alice@example.org", rampart_store::NewPgpKey::checked(KEY, "alice@example.org", options).unwrap()).await.unwrap();
        for body in [REPORT, LUNCH] {
            let mut w = f.store.blob_writer().unwrap();
            w.write(body.as_bytes()).await.unwrap();
            let blob = w.finish().await.unwrap();
            let targets = vec![Target { account: alice, folder: Folder::Inbox }];
            let d = Delivery { blob, prefix: Vec::new(), internal_date: 1_790_000_000, targets, reference: "R".into(), trail: "[]".into(), outbound: None };
            f.store.deliver(d).await.unwrap();
        }
        let mut c = Client::start(&f, TlsMode::Implicit);
        c.until("* OK").await;
        assert!(c.cmd("l", &format!("LOGIN alice@example.org \"{PASSWORD}\"")).await.contains("l OK"));
        c.cmd("s", "EXAMINE INBOX").await;
        // Twice: the second answers from the column cache the first built.
        for round in 0..2 {
            for (i, (cmd, want)) in searches(opted_in).iter().enumerate() {
                let r = c.cmd(&format!("t{round}x{i}"), cmd).await;
                assert!(r.starts_with(want), "opted in {opted_in}, round {round}, {cmd}: {r}");
            }
        }
        let fetched = c.cmd("f", "FETCH 1 (ENVELOPE BODY[])").await;
        assert!(fetched.contains("\"...\"") && fetched.contains("multipart/encrypted") && !fetched.contains("quokka"), "{fetched}");
        assert!(c.cmd("o", "SORT (SUBJECT) UTF-8 ALL").await.starts_with("* SORT 1 2\r\n"), "SORT by the stored Subject \"...\"");
    }
}
