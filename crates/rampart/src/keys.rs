//! Encryption at rest from the command line: where the master key comes from, `rampart keys
//! generate|rotate` and `rampart store encrypt`.
//!
//! The master key text is read from the first of these that exists: the environment variable
//! `store.encryption.key_env`, the systemd credential `store.encryption.credential`
//! (`$CREDENTIALS_DIRECTORY/NAME`), the file `store.encryption.key_file`. [`install`] reads it
//! once, before any command opens the store, and hands it to the store for the whole process;
//! with `mode = "off"` it hands none, and the store then refuses an encrypted data directory.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_config::{Config, Encryption, EncryptionMode};
use rampart_store::keys::MasterKeys;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create the master key file named by `store.encryption.key_file` (mode 0600). Refuses to
    /// overwrite one. Keep a copy apart from the data: without it the mail cannot be read.
    Generate,
    /// Replace the master key: a new key is added to the key file, every data key and the
    /// database key are rewrapped under it, then the old key is dropped from the file. With
    /// the server running, the server does the rewrapping: this sends it SIGHUP, waits until
    /// it has rewrapped everything, then drops the old key and signals it again. A rotation
    /// that was interrupted (even by kill -9 of either) goes on where it stopped when run
    /// again. Needs the key in `key_file`.
    Rotate,
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Convert the clear store to an encrypted one in place (`[store.encryption] mode =
    /// "server"` and a master key must be set). With the server running, the server converts
    /// it while it serves: this asks it (SIGHUP) and waits until it has finished. An
    /// interrupted conversion goes on where it stopped when run again, or when the server
    /// starts again.
    Encrypt,
    /// Copy this embedded store into an empty PostgreSQL database (`[store] backend =
    /// "postgres"`): every table, and every message body into the database. Stop the server
    /// first. Run again after an interruption: it goes on where it stopped. Verified at the
    /// end (rows per table, SHA-256 per body); exits non-zero on a difference. A store
    /// encrypted at rest is refused (PostgreSQL has no encryption at rest yet).
    Migrate {
        /// The backend to copy to.
        #[arg(long, value_enum)]
        to: crate::migrate::Target,
        /// The database, as a URL (`postgres://rampart@db.example.org/rampart`) or `key=value` words.
        #[arg(long)]
        url: String,
        /// CA certificates (PEM) the database's TLS certificate must chain to; default:
        /// `store.ca_file`, else the system's roots.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

/// Where the master key was read from.
enum Source {
    Env(String),
    Credential(PathBuf),
    File(PathBuf),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Env(v) => format!("the environment variable {v}"),
            Source::Credential(p) | Source::File(p) => p.display().to_string(),
        }
    }
}

/// The key text and where it came from, or an error saying every place that was looked at.
fn read_key_text(enc: &Encryption) -> anyhow::Result<(zeroize::Zeroizing<String>, Source)> {
    if !enc.key_env.is_empty()
        && let Ok(text) = std::env::var(&enc.key_env)
    {
        return Ok((text.into(), Source::Env(enc.key_env.clone())));
    }
    if !enc.credential.is_empty()
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let path = Path::new(&dir).join(&enc.credential);
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading the credential {}", path.display()))?;
            return Ok((text.into(), Source::Credential(path)));
        }
    }
    let path = &enc.key_file;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => bail!(
            "store.encryption.key_file: {} can be read by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "store.encryption: mode = \"server\" but there is no master key: {} does not exist (create it with `rampart keys generate`), ${} is not set{}",
            path.display(),
            enc.key_env,
            if enc.credential.is_empty() { String::new() } else { format!(", and no systemd credential {}", enc.credential) }
        ),
        Err(e) => return Err(e).with_context(|| format!("store.encryption.key_file: {}", path.display())),
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("store.encryption.key_file: reading {}", path.display()))?;
    Ok((text.into(), Source::File(path.clone())))
}

fn parse(text: &str, source: &Source) -> anyhow::Result<MasterKeys> {
    MasterKeys::parse(text).with_context(|| format!("the master key in {}", source.describe()))
}

/// The master keys of `config`: None with `mode = "off"`.
pub fn load(config: &Config) -> anyhow::Result<Option<Arc<MasterKeys>>> {
    let enc = &config.store.encryption;
    if enc.mode == EncryptionMode::Off {
        return Ok(None);
    }
    let (text, source) = read_key_text(enc)?;
    Ok(Some(Arc::new(parse(&text, &source)?)))
}

/// Reads the master keys of `config` and gives them to the store for this process.
pub fn install(config: &Config) -> anyhow::Result<()> {
    rampart_store::set_master_keys(load(config)?);
    Ok(())
}

/// `config check`'s part: the key is there and opens the store (when one exists), and the
/// store's state matches the mode. Returns the problems found.
pub fn check(config: &Config) -> Vec<String> {
    let data_dir = &config.server.data_dir;
    let marker = match rampart_store::storekey::StoreKey::read(data_dir) {
        Ok(m) => m,
        Err(e) => return vec![format!("store.encryption: {}", e.chain())],
    };
    let keys = match load(config) {
        Ok(k) => k,
        Err(e) => return vec![format!("{e:#}")],
    };
    match (keys, marker) {
        (None, Some(_)) => vec![format!("store.encryption.mode: the store in {} is encrypted; set mode = \"server\" and its key", data_dir.display())],
        (Some(_), None) if data_dir.join("rampart.db").exists() => {
            vec![format!("store.encryption.mode: the store in {} is not encrypted yet; run `rampart store encrypt`", data_dir.display())]
        }
        (Some(keys), Some(marker)) => match marker.db_key(&keys) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("store.encryption: {}", e.chain())],
        },
        _ => Vec::new(),
    }
}

/// Writes `keys` to `path` atomically, readable by its owner only: the owner of the file it
/// replaces (the server's user, which must read it again at a reload), or ours for a new one.
fn write_key_file(path: &Path, keys: &MasterKeys, create_new: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    if let Ok(old) = std::fs::metadata(path) {
        let mine = f.metadata()?;
        if (old.uid(), old.gid()) != (mine.uid(), mine.gid()) {
            std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid())).with_context(|| format!("chown {}", tmp.display()))?;
        }
    }
    f.write_all(keys.to_text().as_bytes())?;
    f.sync_all()?;
    drop(f);
    if create_new && path.exists() {
        let _ = std::fs::remove_file(&tmp);
        bail!("{} exists; it is not overwritten (losing a master key loses the mail it protects)", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync {}", dir.display()))?;
    }
    Ok(())
}

pub fn keys_command(path: &Path, command: KeysCommand) -> anyhow::Result<()> {
    let config = Config::load(path, &[])?;
    let key_file = &config.store.encryption.key_file;
    match command {
        KeysCommand::Generate => {
            generate(key_file)?;
            println!("wrote the master key to {} (mode 0600); keep a copy apart from the data", key_file.display());
            Ok(())
        }
        KeysCommand::Rotate => {
            crate::backend::require_sqlite(&config, "`rampart keys rotate` (encryption at rest)")?;
            rotate(&config)
        }
    }
}

/// A new master key file at `path`; refuses to overwrite one.
pub fn generate(path: &Path) -> anyhow::Result<()> {
    write_key_file(path, &MasterKeys::generate(), true)
}

fn rotate(config: &Config) -> anyhow::Result<()> {
    let enc = &config.store.encryption;
    if enc.mode == EncryptionMode::Off {
        bail!("store.encryption.mode is \"off\": there is no key to rotate");
    }
    let (text, source) = read_key_text(enc)?;
    let Source::File(key_file) = &source else {
        bail!("the master key comes from {}; `keys rotate` rewrites key_file, so give the key that way", source.describe());
    };
    let data_dir = &config.server.data_dir;
    let mut keys = parse(&text, &source)?;
    if rampart_store::running_server(data_dir)?.is_some() {
        return rotate_online(data_dir, key_file, keys);
    }
    if !keys.has_old() {
        // Before the key file changes: the store opens with this key and no server holds it.
        rampart_store::rotate_keys(data_dir, &keys).with_context(|| format!("the store in {}", data_dir.display()))?;
        keys = keys.with_new_current();
        write_key_file(key_file, &keys, false)?;
    }
    let done = rampart_store::rotate_keys(data_dir, &keys).with_context(|| format!("the store in {}", data_dir.display()))?;
    write_key_file(key_file, &keys.current_only(), false)?;
    println!("rotated: master key {:08x}, {} data keys rewrapped", keys.current().id, done.files);
    Ok(())
}

/// How often the command looks at a running server's progress, and tells it.
const POLL: std::time::Duration = std::time::Duration::from_millis(200);
const REPORT_EVERY: u32 = 50;

/// The rotation beside a running server (`rampart_store::sqlite::rotation` has the steps).
fn rotate_online(data_dir: &Path, key_file: &Path, mut keys: MasterKeys) -> anyhow::Result<()> {
    if !keys.has_old() {
        keys = keys.with_new_current();
        write_key_file(key_file, &keys, false)?;
    }
    let current = keys.current().id;
    let keys = Arc::new(keys);
    let store = rampart_store::SqliteStore::open_with_keys(data_dir, Some(keys.clone()))
        .with_context(|| format!("the store in {}", data_dir.display()))?;
    signal_server(data_dir)?;
    println!("the server is running: it rewraps the data keys under master key {current:08x}");
    let mut polls = 0u32;
    loop {
        let marker = rampart_store::storekey::StoreKey::read(data_dir)?;
        // The server rewraps `store.key` when it takes the keys: until then it may still wrap
        // new data keys with the old one, and the count below would mean nothing.
        if marker.as_ref().and_then(|m| m.wrapped_by()) == Some(current) {
            let left = store.stale_wraps()?;
            if left == 0 {
                break;
            }
            if polls.is_multiple_of(REPORT_EVERY) {
                println!("{left} data keys left to rewrap");
            }
        } else if polls.is_multiple_of(REPORT_EVERY) && polls > 0 {
            println!("waiting for the server to reload its key (SIGHUP; see its log for reload errors)");
        }
        // A server restarted meanwhile has another pid, and a signal lost is harmless to repeat.
        if polls % REPORT_EVERY == REPORT_EVERY - 1 {
            signal_server(data_dir)?;
        }
        polls += 1;
        std::thread::sleep(POLL);
    }
    drop(store);
    write_key_file(key_file, &keys.current_only(), false)?;
    signal_server(data_dir)?;
    println!("rotated beside the running server: master key {current:08x}; the old key is gone from {}", key_file.display());
    Ok(())
}

/// `store encrypt` beside a running server (`rampart_store::sqlite::online` has the steps):
/// `store.key` in state `encrypting`, SIGHUP, then waiting for state `ready`. The command
/// holds no connection to the database meanwhile: the server can leave WAL mode only when no
/// other process has the database open.
fn encrypt_online(data_dir: &Path, keys: &MasterKeys) -> anyhow::Result<()> {
    use rampart_store::storekey::{State, StoreKey};
    match StoreKey::read(data_dir)? {
        Some(m) if m.state == State::Ready => {
            println!("the store in {} is encrypted already", data_dir.display());
            return Ok(());
        }
        // Begun before: the server goes on with the key it wraps.
        Some(m) => {
            m.db_key(keys).context("store.key was written under another master key")?;
        }
        None => StoreKey::create(keys, State::Encrypting).0.write(data_dir)?,
    }
    signal_server(data_dir)?;
    println!("the server is running: it converts the store and seals the message files (its log says how far)");
    let mut polls = 0u32;
    while StoreKey::read(data_dir)?.is_none_or(|m| m.state != State::Ready) {
        if polls % REPORT_EVERY == REPORT_EVERY - 1 {
            println!("waiting for the server (SIGHUP; a server still configured with mode = \"off\" does not convert)");
            signal_server(data_dir)?;
        }
        polls += 1;
        std::thread::sleep(POLL);
    }
    println!("the store in {} is encrypted (converted by the running server)", data_dir.display());
    Ok(())
}

/// Sends SIGHUP to the server on `data_dir`: it rereads its config and key. Fine when no
/// server runs any more (one started later reads the key file anyway).
fn signal_server(data_dir: &Path) -> anyhow::Result<()> {
    let Some(pid) = rampart_store::running_server(data_dir)? else { return Ok(()) };
    let pid = libc::pid_t::try_from(pid).context("the pid in rampart.lock")?;
    // SAFETY: kill(2) has no memory preconditions; the pid is the lock holder's own record.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("could not signal the server (pid {pid}): {e}; reload it (systemctl reload rampart) and run this again");
    }
    Ok(())
}

/// A running server's reload of its master keys (SIGHUP): adopts them when they differ from
/// those it has. An unreadable or wrong key is logged and the old keys stay.
pub fn reload(config: &Config, store: &rampart_store::SqliteStore) {
    match load(config) {
        // `rampart store encrypt` beside the server asked for the conversion.
        Ok(Some(keys)) if !store.is_encrypted() && store.conversion_requested() => encrypt(store, keys),
        // A clear store has no keys to replace (`store encrypt` converts it with the server
        // stopped).
        Ok(Some(keys)) if store.is_encrypted() && !store.has_master_keys(&keys) => adopt(store, keys),
        Ok(_) => {}
        Err(e) => tracing::error!(event = "master_key_reload_failed", error = %format!("{e:#}").replace('\n', "; ")),
    }
}

/// Converts the running server's clear store in the background (`store encrypt` beside it),
/// or finishes a conversion found under way at start.
pub fn encrypt(store: &rampart_store::SqliteStore, keys: Arc<MasterKeys>) {
    let store = store.clone();
    tokio::spawn(async move {
        match store.encrypt_online(keys.clone()).await {
            Ok(Some(n)) => {
                rampart_store::set_master_keys(Some(keys));
                tracing::info!(event = "store_encrypted", files = n);
            }
            // One is running already (a repeated SIGHUP).
            Ok(None) => {}
            Err(e) => tracing::error!(event = "store_encrypt_failed", error = %e.chain()),
        }
    });
}

/// Gives the store `keys` and, when they list an old key, rewraps in the background what the
/// old key wrapped.
pub fn adopt(store: &rampart_store::SqliteStore, keys: Arc<MasterKeys>) {
    let current = format!("{:08x}", keys.current().id);
    let old = keys.has_old();
    if let Err(e) = store.adopt_master_keys(keys.clone()) {
        tracing::error!(event = "master_key_reload_failed", error = %e.chain());
        return;
    }
    // Whatever else this process opens from now on (a backup) opens with them too.
    rampart_store::set_master_keys(Some(keys));
    tracing::info!(event = "master_key_reloaded", current = %current, old = old);
    if old {
        let store = store.clone();
        tokio::spawn(async move {
            match store.rewrap_data_keys().await {
                Ok(n) => tracing::info!(event = "master_key_rewrapped", current = %current, count = n),
                Err(e) => tracing::error!(event = "master_key_rewrap_failed", error = %e.chain()),
            }
        });
    }
}

pub fn store_command(path: &Path, command: StoreCommand) -> anyhow::Result<()> {
    let config = crate::serve::load_config(path, &[])?;
    match command {
        StoreCommand::Encrypt => {
            crate::backend::require_sqlite(&config, "`rampart store encrypt` (encryption at rest)")?;
            let Some(keys) = load(&config)? else {
                bail!("set [store.encryption] mode = \"server\" (and create a key with `rampart keys generate`) first");
            };
            let data_dir = &config.server.data_dir;
            if rampart_store::running_server(data_dir)?.is_some() {
                return encrypt_online(data_dir, &keys);
            }
            let done = rampart_store::encrypt_store(data_dir, &keys).with_context(|| format!("the store in {}", data_dir.display()))?;
            println!(
                "the store in {} is encrypted ({}{} message files sealed)",
                data_dir.display(),
                if done.database { "database converted, " } else { "" },
                done.files
            );
            Ok(())
        }
        StoreCommand::Migrate { to, url, ca_file } => crate::migrate::run(&config, to, &url, ca_file),
    }
}
