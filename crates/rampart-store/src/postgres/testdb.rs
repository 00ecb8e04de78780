//! A throwaway PostgreSQL for tests: one cluster per test process, one fresh database per test.
//!
//! - The cluster is made on first use (`initdb` into a temporary directory, then `pg_ctl start`
//!   on a free loopback port) and shared by every test of the process; each test gets its own
//!   database ([`database`]: empty; [`migrated`]: a copy of one migrated once), so tests run in
//!   parallel and several test binaries each have their own cluster.
//! - PostgreSQL refuses to run as root: when the tests run as root (CI), the directory is given to
//!   the `postgres` user that Debian's package creates and every PostgreSQL command runs through
//!   `runuser -u postgres --`.
//! - `fsync=off` (tests only: a crash loses a throwaway cluster) keeps `CREATE DATABASE` and
//!   commits fast; `initdb --no-sync` likewise.
//! - A test binary exits without running destructors of statics, and may be killed; so a
//!   watchdog shell in its own session waits for the test process to end, then stops the
//!   server (SIGQUIT: immediate shutdown) and removes the directory. The server never outlives
//!   the tests by more than half a second.
//! - `RAMPART_PG_BIN` names the directory of `initdb`/`pg_ctl`; by default the newest
//!   `/usr/lib/postgresql/*/bin`.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

struct Cluster {
    port: u16,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The URL of a new, empty database in this process's cluster.
pub(crate) async fn database() -> String {
    create("template1").await
}

/// The URL of a new database with the current schema: a copy of one migrated once per process,
/// which is faster than migrating each (a store opened on it finds nothing to do).
pub(crate) async fn migrated() -> String {
    let template = TEMPLATE
        .get_or_init(|| async {
            let url = database().await;
            drop(crate::PgStore::open(&url, 1, None, &spool()).await.expect("migrate the template database"));
            let name = url.rsplit('/').next().expect("a database name").to_string();
            // CREATE DATABASE … TEMPLATE needs the template without sessions: none may connect
            // any more, and the pool's, whose closing may lag, are ended.
            let admin = admin().await;
            admin.batch_execute(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")).await.expect("ALTER DATABASE");
            admin
                .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
                .await
                .expect("end the template's sessions");
            name
        })
        .await;
    create(template).await
}

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// A new spool directory for one store, in the cluster's directory (removed with it by the
/// watchdog).
pub(crate) fn spool() -> PathBuf {
    let base = match CLUSTER.get_or_init(start) {
        Ok(c) => c.dir.join("spools"),
        Err(e) => panic!("test PostgreSQL: {e}"),
    };
    std::fs::create_dir_all(&base).expect("spool base");
    tempfile::Builder::new().prefix("spool-").tempdir_in(&base).expect("spool directory").keep()
}

fn port() -> u16 {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c.port,
        Err(e) => panic!("test PostgreSQL: {e}"),
    }
}

/// A session on the cluster's `postgres` database.
async fn admin() -> tokio_postgres::Client {
    let admin = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", port());
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("connect to test PostgreSQL");
    tokio::spawn(conn);
    client
}

async fn create(template: &str) -> String {
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    let admin = admin().await;
    // A template's last session may take a moment to go after it was ended.
    for attempt in 0.. {
        match admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await {
            Ok(()) => break,
            Err(e) if attempt < 50 && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("CREATE DATABASE: {e}"),
        }
    }
    format!("postgres://postgres@127.0.0.1:{}/{name}", port())
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RAMPART_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (install the postgresql package)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb".into())
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| "running as root needs the `postgres` user (postgresql package)".into())
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL command, as the `postgres` user when we are root.
fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<Cluster, String> {
    let began = Instant::now();
    let bin = bin_dir()?;
    let as_postgres = running_as_root();
    let dir = tempfile::Builder::new().prefix("rampart-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    if as_postgres {
        let (uid, gid) = postgres_user()?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let status = pg_command(&bin, "initdb", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        .status()
        .map_err(|e| format!("initdb: {e}"))?;
    if !status.success() {
        return Err(format!("initdb failed ({status}) in {}", dir.display()));
    }
    // Another process may take the port between our probe and the server's bind: try again.
    let mut port = 0;
    for _ in 0..5 {
        port = free_port()?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        let status = pg_command(&bin, "pg_ctl", as_postgres)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-o", &options, "start"])
            .status()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if status.success() {
            watchdog(&dir, &data)?;
            tracing::debug!(port, ms = began.elapsed().as_millis() as u64, "test PostgreSQL started");
            return Ok(Cluster { port, dir });
        }
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    Err(format!("pg_ctl start failed (last port {port}): {log}"))
}

/// Stops the server and removes `dir` once this process is gone; see the module doc.
fn watchdog(dir: &Path, data: &Path) -> Result<(), String> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
        pm=$(head -n 1 "$2/postmaster.pid" 2>/dev/null)
        if [ -n "$pm" ]; then
            kill -QUIT "$pm" 2>/dev/null
            while kill -0 "$pm" 2>/dev/null; do sleep 0.05; done
        fi
        rm -rf "$3"
    "#;
    Command::new("setsid")
        .args(["sh", "-c", script, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(data)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("watchdog: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn each_test_gets_its_own_database() {
        let (a, b) = (super::database().await, super::database().await);
        assert_ne!(a, b);
        let (client, conn) = tokio_postgres::connect(&a, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = client.query_one("SELECT current_setting('fsync'), current_user", &[]).await.unwrap();
        assert_eq!((row.get::<_, String>(0).as_str(), row.get::<_, String>(1).as_str()), ("off", "postgres"));
    }
}
