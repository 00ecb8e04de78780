//! The milter session against a real filter: Debian's rspamd, its proxy worker alone in
//! milter mode (self-scanning: no normal worker, no controller, no redis, rbl and fuzzy_check
//! off, DNS pointed at a closed local port so lookups fail at once).
//!
//! Start cost: rspamd compiles its hyperscan databases on the first start (~25 s on 2 cores)
//! and caches them in its DB directory, kept in cargo's per-target temporary directory; every
//! later start takes about 1.5 s. A missing rspamd fails the test with what to run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_config::{AppliesTo, Milter, OnError};
use rampart_external::milter::codec::Protocol;
use rampart_external::milter::{Macros, MilterSession, Modification, Peer, Step, Verdict, content};

struct Rspamd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Rspamd {
    async fn start() -> Rspamd {
        let bin = ["/usr/bin/rspamd", "/usr/local/bin/rspamd"].into_iter().map(Path::new).find(|p| p.exists());
        let bin = bin.unwrap_or_else(|| panic!("rspamd is not installed (Debian package rspamd): run scripts/setup"));
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let local = dir.path().join("local");
        write_config(&local, port);
        let db = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rspamd-db");
        std::fs::create_dir_all(&db).unwrap();
        let var = |name: &str, p: &Path| format!("--var={name}={}", p.display());
        let child = Command::new(bin)
            .args(["-f", "-i", "-c", "/etc/rspamd/rspamd.conf"])
            .arg(var("LOCAL_CONFDIR", &local))
            .arg(var("DBDIR", &db))
            .arg(var("RUNDIR", dir.path()))
            .arg(var("LOGDIR", dir.path()))
            .stdout(std::fs::File::create(dir.path().join("rspamd.out")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rspamd");
        let r = Rspamd { child, dir, port };
        r.wait_listening().await;
        r
    }

    async fn wait_listening(&self) {
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if start.elapsed() > Duration::from_secs(180) {
                let out = std::fs::read_to_string(self.dir.path().join("rspamd.out")).unwrap_or_default();
                panic!("rspamd's proxy did not listen within 180 s; its output:\n{out}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Rspamd {
    /// SIGTERM first, so the main process stops its workers; SIGKILL if it lingers.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(local: &Path, port: u16) {
    let (local_d, override_d) = (local.join("local.d"), local.join("override.d"));
    std::fs::create_dir_all(&local_d).unwrap();
    std::fs::create_dir_all(&override_d).unwrap();
    let files = [
        (override_d.join("worker-proxy.inc"), format!(
            "bind_socket = \"127.0.0.1:{port}\";\nmilter = yes;\ntimeout = 120s;\nupstream \"local\" {{ default = yes; self_scan = yes; }}\n"
        )),
        // The other workers off, and off the standard ports should they start anyway.
        (override_d.join("worker-normal.inc"), "count = -1;\nbind_socket = \"127.0.0.1:1\";\n".into()),
        (override_d.join("worker-controller.inc"), "count = -1;\nbind_socket = \"127.0.0.1:1\";\n".into()),
        (override_d.join("logging.inc"), "type = \"console\";\nlevel = \"warning\";\n".into()),
        (local_d.join("options.inc"), "dns { nameserver = [\"127.0.0.1:9\"]; timeout = 0.1s; retransmits = 0; }\n".into()),
        (local_d.join("rbl.conf"), "enabled = false;\n".into()),
        (local_d.join("fuzzy_check.conf"), "enabled = false;\n".into()),
        (local_d.join("milter_headers.conf"), "extended_spam_headers = true;\n".into()),
    ];
    for (path, text) in files {
        std::fs::write(path, text).unwrap();
    }
}

fn cfg(port: u16) -> Milter {
    Milter {
        name: "rspamd".into(),
        address: format!("127.0.0.1:{port}"),
        stages: rampart_config::MILTER_STAGES.iter().map(|s| s.to_string()).collect(),
        on_error: OnError::Tempfail,
        applies_to: AppliesTo::Mx,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(30),
        eom_timeout: Duration::from_secs(60),
    }
}

/// One message through a new session, from connect to end of message.
async fn scan(port: u16, queue_id: &str, body: &str) -> (MilterSession, rampart_external::milter::Eom) {
    let mut s = MilterSession::open(&cfg(port)).await.unwrap();
    let mut m = Macros::new();
    m.set("j", "mx.example.org").set("i", queue_id).set("client_addr", "192.0.2.7");
    let steps = [
        s.connect(&m, "client.example", Peer::Inet("192.0.2.7:40000".parse().unwrap())).await.unwrap(),
        s.helo(&m, "client.example").await.unwrap(),
        s.mail(&m, "<a@example.org>", &[]).await.unwrap(),
        s.rcpt(&m, "<b@example.net>", &[]).await.unwrap(),
        s.data(&m).await.unwrap(),
    ];
    assert!(steps.iter().all(|s| *s == Step::Continue), "{steps:?}");
    let message = format!(
        "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: lunch\r\nMessage-ID: <{queue_id}@example.org>\r\n\
         Date: Mon, 30 Nov 2026 12:00:00 +0000\r\n\r\n{body}"
    );
    let (fields, body) = content::split(message.as_bytes());
    for (name, value) in fields {
        assert_eq!(s.header(name, value).await.unwrap(), Step::Continue);
    }
    assert_eq!(s.eoh(&m).await.unwrap(), Step::Continue);
    assert_eq!(s.body(body).await.unwrap(), Step::Continue);
    let eom = s.eom(&m).await.unwrap();
    (s, eom)
}

#[tokio::test]
async fn rspamd_adds_headers_to_clean_mail_and_rejects_gtube() {
    let rspamd = Rspamd::start().await;

    let (s, eom) = scan(rspamd.port, "4QTEST1", "Shall we meet for lunch on Tuesday?\r\n").await;
    // rspamd answers nothing before end of message: it negotiates "no reply" for every step.
    assert!(s.negotiated().1.contains(Protocol::NR_RCPT), "{:?}", s.negotiated());
    assert_eq!(eom.verdict, Verdict::Accept, "{eom:?}");
    let header = |name: &str| {
        eom.modifications.iter().find_map(|m| match m {
            Modification::AddHeader { name: n, value } if n == name => Some(String::from_utf8_lossy(value).into_owned()),
            _ => None,
        })
    };
    // The queue id reached it as the `i` macro.
    assert_eq!(header("X-Rspamd-Queue-Id").as_deref(), Some("4QTEST1"), "{eom:?}");
    assert!(header("X-Spamd-Result").is_some_and(|v| v.starts_with("default: False")), "{eom:?}");
    s.quit().await.unwrap();

    let gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let (s, eom) = scan(rspamd.port, "4QTEST2", gtube).await;
    let Verdict::Reject(Some(reply)) = &eom.verdict else { panic!("{eom:?}") };
    assert_eq!(reply.code, 554);
    assert!(reply.lines[0].starts_with("5.7.1 "), "{reply:?}");
    s.quit().await.unwrap();
}
