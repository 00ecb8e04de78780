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
    /// database key are rewrapped under it, then the old key is dropped from the file. Run
    /// with the server stopped; a rotation that was interrupted (even by kill -9) goes on
    /// where it stopped when run again. Needs the key in `key_file`.
    Rotate,
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Convert the clear store to an encrypted one in place (`[store.encryption] mode =
    /// "server"` and a master key must be set). Run with the server stopped; an interrupted
    /// conversion goes on where it stopped when run again, and the server refuses to start
    /// until it has finished.
    Encrypt,
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

/// Writes `keys` to `path` atomically, readable by its owner only.
fn write_key_file(path: &Path, keys: &MasterKeys, create_new: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
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
            write_key_file(key_file, &MasterKeys::generate(), true)?;
            println!("wrote the master key to {} (mode 0600); keep a copy apart from the data", key_file.display());
            Ok(())
        }
        KeysCommand::Rotate => rotate(&config),
    }
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

pub fn store_command(path: &Path, command: StoreCommand) -> anyhow::Result<()> {
    let config = crate::serve::load_config(path, &[])?;
    match command {
        StoreCommand::Encrypt => {
            let Some(keys) = load(&config)? else {
                bail!("set [store.encryption] mode = \"server\" (and create a key with `rampart keys generate`) first");
            };
            let data_dir = &config.server.data_dir;
            let done = rampart_store::encrypt_store(data_dir, &keys).with_context(|| format!("the store in {}", data_dir.display()))?;
            println!(
                "the store in {} is encrypted ({}{} message files sealed)",
                data_dir.display(),
                if done.database { "database converted, " } else { "" },
                done.files
            );
            Ok(())
        }
    }
}
