//! The clamd client against a real clamd (Debian's clamav-daemon), started by each test in a
//! temporary directory with only a custom EICAR signature — offline, in well under a second.
//! A missing clamd fails the test with what to run, rather than skipping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_external::clamd::{Clamd, Error, Scan};
use rampart_external::net::Address;

/// The EICAR test file, in two pieces so this source file itself is not "infected".
fn eicar() -> Vec<u8> {
    let e = [&br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-"[..], b"ANTIVIRUS-TEST-FILE!$H+H*"].concat();
    assert_eq!(e.len(), 68);
    e
}

/// EICAR in base64, as a mail client attaches it.
const EICAR_BASE64: &str = "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=";

/// Whole-file MD5 of EICAR, its size and our name for it (clamd adds `.UNOFFICIAL`).
const EICAR_HDB: &str = "44d88612fea8a8f36de82e1278abb02f:68:Test.EICAR\n";

struct ClamdProcess {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl ClamdProcess {
    async fn start(stream_max_length: &str) -> ClamdProcess {
        let bin = clamd_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(dir.path().join("eicar.hdb"), EICAR_HDB).unwrap();
        let conf = format!(
            "Foreground yes\nDatabaseDirectory {d}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLocalSocket {d}/clamd.sock\n\
             StreamMaxLength {stream_max_length}\nLogFile {d}/clamd.log\nTemporaryDirectory {d}\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("clamd.conf"), conf).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(dir.path().join("clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let p = ClamdProcess { child, dir, port };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        let c = self.tcp();
        while c.ping().await.is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                let log = std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default();
                panic!("clamd did not answer PING within 20 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tcp(&self) -> Clamd {
        Clamd::new(Address::Tcp(format!("127.0.0.1:{}", self.port)), Duration::from_secs(10), 25 << 20)
    }

    fn unix(&self) -> Clamd {
        Clamd::new(Address::Unix(self.dir.path().join("clamd.sock")), Duration::from_secs(10), 25 << 20)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ClamdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clamd_binary() -> PathBuf {
    let found = ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"].into_iter().map(Path::new).find(|p| p.exists());
    match found {
        Some(p) => p.to_path_buf(),
        None => panic!("clamd is not installed (Debian packages clamav-daemon and clamdscan): run scripts/setup"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn message(body: &str) -> Vec<u8> {
    format!("From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: test\r\n\r\n{body}").into_bytes()
}

/// A multipart message: `filler` bytes of text, then EICAR as a base64 attachment.
fn with_attachment(filler: usize) -> Vec<u8> {
    let text = "All work and no play makes Jack a dull boy.\r\n".repeat(filler / 45 + 1);
    format!(
        "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n{text}\
         --b1\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n{EICAR_BASE64}\r\n--b1--\r\n"
    )
    .into_bytes()
}

fn is_eicar(scan: &Scan) -> bool {
    matches!(scan, Scan::Virus(name) if name.starts_with("Test.EICAR"))
}

#[tokio::test]
async fn ping_and_version() {
    let clamd = ClamdProcess::start("25M").await;
    clamd.tcp().ping().await.unwrap();
    clamd.unix().ping().await.unwrap();
    let version = clamd.tcp().version().await.unwrap();
    assert!(version.starts_with("ClamAV "), "{version}");
}

#[tokio::test]
async fn a_clean_message_is_clean_over_tcp_and_unix_socket() {
    let clamd = ClamdProcess::start("25M").await;
    let m = message("Hello,\r\nsee you tomorrow.\r\n");
    assert_eq!(clamd.tcp().scan_bytes(&m).await.unwrap(), Scan::Clean);
    assert_eq!(clamd.unix().scan_bytes(&m).await.unwrap(), Scan::Clean);
    assert_eq!(clamd.unix().scan_reader(&m[..], m.len() as u64).await.unwrap(), Scan::Clean);
}

#[tokio::test]
async fn eicar_raw_is_found() {
    let clamd = ClamdProcess::start("25M").await;
    let scan = clamd.tcp().scan_bytes(&eicar()).await.unwrap();
    assert!(is_eicar(&scan), "{scan:?}");
    let scan = clamd.unix().scan_reader(&eicar()[..], 68).await.unwrap();
    assert!(is_eicar(&scan), "{scan:?}");
}

/// A base64 attachment after 300 KiB of text: several chunks, read from a file.
#[tokio::test]
async fn eicar_as_a_base64_attachment_is_found() {
    let clamd = ClamdProcess::start("25M").await;
    let m = with_attachment(300 * 1024);
    let file = clamd.dir.path().join("message.eml");
    std::fs::write(&file, &m).unwrap();
    let f = tokio::fs::File::open(&file).await.unwrap();
    let scan = clamd.tcp().scan_reader(f, m.len() as u64).await.unwrap();
    assert!(is_eicar(&scan), "{scan:?}");
    let scan = clamd.unix().scan_bytes(&with_attachment(10)).await.unwrap();
    assert!(is_eicar(&scan), "{scan:?}");
}

/// clamd refuses a stream past StreamMaxLength: a typed error, never "clean". Small enough to
/// sit in socket buffers (clamd answers after the end) and large enough that clamd answers
/// and closes while we are still sending.
#[tokio::test]
async fn a_stream_over_stream_max_length_is_a_typed_error() {
    let clamd = ClamdProcess::start("1M").await;
    let two_mib = message(&"x".repeat(2 << 20));
    let r = clamd.tcp().scan_bytes(&two_mib).await;
    assert!(matches!(r, Err(Error::SizeLimitExceeded { .. })), "{r:?}");
    let eight_mib = message(&"y".repeat(8 << 20));
    let r = clamd.tcp().scan_bytes(&eight_mib).await;
    assert!(matches!(r, Err(Error::SizeLimitExceeded { .. })), "{r:?}");
    let file = clamd.dir.path().join("big.eml");
    std::fs::write(&file, &eight_mib).unwrap();
    let f = tokio::fs::File::open(&file).await.unwrap();
    let r = clamd.unix().scan_reader(f, eight_mib.len() as u64).await;
    assert!(matches!(r, Err(Error::SizeLimitExceeded { .. })), "{r:?}");
    // Still serving: the refusal closed only that connection.
    assert_eq!(clamd.tcp().scan_bytes(&message("hi\r\n")).await.unwrap(), Scan::Clean);
}

#[tokio::test]
async fn a_message_over_max_size_is_skipped_without_asking() {
    let clamd = ClamdProcess::start("25M").await;
    let small = Clamd::new(Address::Tcp(format!("127.0.0.1:{}", clamd.port)), Duration::from_secs(5), 1000);
    let m = with_attachment(2000);
    assert_eq!(small.scan_bytes(&m).await.unwrap(), Scan::Skipped { size: m.len() as u64 });
    // Skipped even where nothing listens: no connection is made.
    let nowhere = Clamd::new(Address::Tcp(format!("127.0.0.1:{}", free_port())), Duration::from_secs(5), 10);
    assert_eq!(nowhere.scan_reader(&m[..], m.len() as u64).await.unwrap(), Scan::Skipped { size: m.len() as u64 });
}

#[tokio::test]
async fn a_stopped_clamd_is_a_typed_error() {
    let mut clamd = ClamdProcess::start("25M").await;
    let (tcp, unix) = (clamd.tcp(), clamd.unix());
    tcp.ping().await.unwrap();
    clamd.stop();
    let r = tcp.scan_bytes(&message("hi\r\n")).await;
    assert!(matches!(r, Err(Error::Unreachable { .. })), "{r:?}");
    let e = unix.ping().await.unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("is clamd running?"), "{e}");
}

/// Something that accepts and never answers: the configured timeout ends the wait.
#[tokio::test]
async fn a_clamd_that_hangs_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let c = Clamd::new(Address::Tcp(addr.to_string()), Duration::from_millis(300), 1 << 20);
    let start = Instant::now();
    let r = c.scan_bytes(&message("hi\r\n")).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(matches!(c.ping().await, Err(Error::Timeout { .. })));
}
