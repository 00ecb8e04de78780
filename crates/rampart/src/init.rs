//! `rampart init`: a working configuration in one step.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};

/// Creates `path` with `contents` and `mode`; fails if it exists.
fn create_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// `store_url`: a PostgreSQL database for the store (`[store] backend = "postgres"`), which
/// may already hold the store of other nodes; None for the embedded store.
pub fn run(dir: &Path, hostname: &str, domain: &str, encrypt: bool, store_url: Option<&str>) -> anyhow::Result<()> {
    if encrypt && store_url.is_some() {
        bail!("--encrypt: encryption at rest is not available with the PostgreSQL store (--store-url)");
    }
    if !rampart_config::is_hostname(hostname) {
        bail!("--hostname: `{hostname}` is not a host name");
    }
    let Some(domain) = rampart_store::address::canonical_domain(domain) else {
        bail!("--domain: `{domain}` is not a domain name");
    };
    let config_path = dir.join("rampart.toml");
    if config_path.exists() {
        bail!("{} already exists; refusing to overwrite it", config_path.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let tls_dir = dir.join("tls");
    fs::create_dir_all(&tls_dir).with_context(|| format!("creating {}", tls_dir.display()))?;
    fs::set_permissions(&tls_dir, fs::Permissions::from_mode(0o700))?;
    let (cert_path, key_path) = (tls_dir.join("cert.pem"), tls_dir.join("key.pem"));
    if key_path.exists() || cert_path.exists() {
        println!("keeping the existing certificate in {}", tls_dir.display());
    } else {
        let (cert, key) = rampart_tls::self_signed(hostname)?;
        create_file(&key_path, &key, 0o600)?;
        create_file(&cert_path, &cert, 0o644)?;
    }

    let mut template = rampart_config::template(hostname);
    if encrypt {
        // Before the config names it: a config in server mode without its key would not start.
        crate::keys::generate(&dir.join(rampart_config::Encryption::default().key_file))?;
        template = server_mode(&template)?;
    }
    if let Some(url) = store_url {
        template = postgres_store(&template, url)?;
    }
    // Written last of the files: its existence is what marks the directory as initialized.
    create_file(&config_path, &template, 0o640)?;
    let config = crate::serve::load_config(&config_path, &[])?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let keys = rt.block_on(async {
        let store = crate::backend::open(&config, crate::backend::Purpose::Command)
            .await
            .with_context(|| format!("creating the store in {}", config.server.data_dir.display()))?;
        match store.add_domain(&domain).await {
            Ok(()) | Err(rampart_store::StoreError::Exists(_)) => {}
            Err(e) => return Err(anyhow::Error::from(e)),
        }
        // A first RSA key, so mail is DKIM-signed as soon as its record is published.
        if store.dkim_keys(Some(&domain)).await?.is_empty() {
            crate::dkim::keygen(&*store, &domain, Some("rsa-1".into()), "rsa", &|_| false).await?;
        }
        Ok(store.dkim_keys(Some(&domain)).await?)
    })?;

    let service_user = open_to_service_group(dir, &[&tls_dir, &key_path, &cert_path, &config_path], &config.server)?;

    println!("wrote {}", config_path.display());
    println!("wrote a self-signed certificate for {hostname} in {}", tls_dir.display());
    println!("created the store in {} with domain {domain}", config.server.data_dir.display());
    if encrypt {
        println!(
            "the store is encrypted at rest; its master key is {} — back it up apart from the data: without it the mail cannot be read",
            config.store.encryption.key_file.display()
        );
    }
    println!();
    print!("{}", crate::records::zone(&domain, &crate::records::Inputs::from_config(&config, &keys)));
    println!();
    println!("next: rampart user add postmaster@{domain} --password-stdin --config {}", config_path.display());
    println!("      rampart serve --config {}", config_path.display());
    if let Some(note) = service_user {
        println!("{note}");
    }
    Ok(())
}

/// The template with `[store] backend = "postgres"` and `url`.
fn postgres_store(template: &str, url: &str) -> anyhow::Result<String> {
    let section = template.find("\n[store]\n").context("the template has [store]")?;
    let (head, rest) = template.split_at(section);
    // A TOML basic string: backslashes and quotes escaped, no control characters in a URL.
    if url.chars().any(char::is_control) {
        bail!("--store-url: control characters in the URL");
    }
    let quoted = format!("\"{}\"", url.replace('\\', "\\\\").replace('"', "\\\""));
    let rest = rest.replacen("\nbackend = \"sqlite\"\n", "\nbackend = \"postgres\"\n", 1).replacen("\nurl = \"\"\n", &format!("\nurl = {quoted}\n"), 1);
    Ok(format!("{head}{rest}"))
}

/// The template with `[store.encryption] mode = "server"`.
fn server_mode(template: &str) -> anyhow::Result<String> {
    let section = template.find("\n[store.encryption]\n").context("the template has [store.encryption]")?;
    let at = section + template[section..].find("\nmode = \"off\"\n").context("[store.encryption] has mode")?;
    Ok(format!("{}\nmode = \"server\"\n{}", &template[..at], &template[at + "\nmode = \"off\"\n".len()..]))
}

/// Run as root, `serve` becomes `[server] user` after start: it must still reach its
/// directory, reread its config and certificates on SIGHUP. When that user exists, the
/// directory and those files go to its group (read only; the data directory itself is handed
/// over by `serve`). Returns a note to print when the user does not exist yet.
fn open_to_service_group(dir: &Path, files: &[&Path], server: &rampart_config::Server) -> anyhow::Result<Option<String>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let Some(gid) = crate::privileges::primary_group(&server.user)? else {
        return Ok(Some(format!(
            "note: run as root, rampart serve switches to the user `{0}`; create it first \
             (adduser --system --group {0}) or set server.allow_root = true",
            server.user
        )));
    };
    for path in std::iter::once(dir).chain(files.iter().copied()) {
        std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| format!("chgrp {}", path.display()))?;
        let mode = if path.is_dir() { 0o750 } else { 0o640 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(None)
}
