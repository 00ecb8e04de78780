//! Certificates: `rampart cert ...` and the operations behind it (shared with the web admin),
//! the live certificate set of a running server ([`live`]), ACME ordering and renewal
//! ([`acme`]) and expiry warnings ([`expiry`]).
//!
//! Certificates and keys live in the store; `[tls]` files still work beside them. No command
//! prints a private key.

pub mod acme;
pub mod expiry;
pub mod live;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_store::certs::{Assignment, StoredCert, Usage};
use rampart_store::prelude::*;
use rampart_store::SqliteStore;
use rampart_tls::certs::{self, KeyType};

/// The listeners a certificate can be assigned to (`rampart_config::Listeners`' names).
pub const LISTENERS: [&str; 7] = ["smtp", "submission", "submissions", "imap", "imaps", "https", "http"];

#[derive(Subcommand)]
pub enum CertCommand {
    /// Every certificate: id, key type, expiry, names, where used.
    List,
    /// One certificate: names, issuer, validity, key type, uses (a pending CSR: its request).
    Show { id: i64 },
    /// Store a certificate with its key; without --key, the certificate completes the pending
    /// CSR whose key it matches.
    Import {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Make and store a self-signed certificate for NAME...
    SelfSigned {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: String,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Make a key and print a PKCS#10 request for NAME...; the key waits in the store for
    /// `rampart cert import --cert FILE` with the CA's answer.
    Csr {
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: String,
    },
    /// Delete a certificate (and its uses).
    Delete { id: i64 },
    /// Use a certificate: as a listener's default, for a host name (SNI), or as the client
    /// certificate toward a smart host (a [[queue.route]] host; read at start).
    Assign {
        id: i64,
        #[command(flatten)]
        target: Target,
    },
    /// Stop using a certificate somewhere.
    Unassign {
        id: i64,
        #[command(flatten)]
        target: Target,
    },
    /// Order a certificate for NAME... from the [acme] CA now (through the running server,
    /// which answers the CA's challenges) and wait for it.
    Acme {
        #[arg(required = true)]
        names: Vec<String>,
        /// Seconds to wait for the server.
        #[arg(long, default_value_t = 180)]
        wait: u64,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    #[arg(long)]
    listener: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    smart_host: Option<String>,
}

impl Target {
    fn parts(&self) -> (Usage, &str) {
        match (&self.listener, &self.host, &self.smart_host) {
            (Some(l), _, _) => (Usage::Listener, l),
            (_, Some(h), _) => (Usage::Host, h),
            (_, _, Some(s)) => (Usage::SmartHost, s),
            // clap's group makes one of them required.
            _ => (Usage::Host, ""),
        }
    }
}

fn key_type(s: &str) -> anyhow::Result<KeyType> {
    KeyType::parse(s).with_context(|| format!("--key-type: `{s}` is neither ecdsa-p256 nor rsa-2048"))
}

fn names(list: &[String]) -> anyhow::Result<Vec<String>> {
    list.iter()
        .map(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            let ok = rampart_config::is_hostname(n.trim_start_matches("*.")) || n.parse::<std::net::IpAddr>().is_ok();
            if ok { Ok(n) } else { bail!("`{n}` is neither a host name nor an address") }
        })
        .collect()
}

/// Stores a certificate with its key; both are checked to fit. Returns its id.
pub async fn import(store: &dyn Store, chain_pem: &str, key_pem: &str) -> anyhow::Result<i64> {
    import_as(store, chain_pem, key_pem, "imported").await
}

async fn import_as(store: &dyn Store, chain_pem: &str, key_pem: &str, source: &str) -> anyhow::Result<i64> {
    certs::certified_key(chain_pem, key_pem)?;
    let info = certs::inspect(chain_pem)?;
    let key_pem = certs::normalize_key(key_pem)?;
    let entry = StoredCert {
        id: 0,
        names: info.names,
        issuer: info.issuer,
        not_before: info.not_before,
        not_after: info.not_after,
        key_type: certs::key_type(&key_pem)?,
        source: source.into(),
        chain_pem: Some(chain_pem.to_string()),
        key_pem,
        csr_pem: None,
        created: 0,
        warned: Vec::new(),
    };
    Ok(store.add_certificate(entry).await?)
}

/// Completes the pending CSR whose key the certificate matches. Returns its id.
pub async fn complete(store: &dyn Store, chain_pem: &str) -> anyhow::Result<i64> {
    let info = certs::inspect(chain_pem)?;
    for pending in store.certificates().await?.into_iter().filter(|c| c.chain_pem.is_none()) {
        if certs::certified_key(chain_pem, &pending.key_pem).is_ok() {
            store.complete_certificate(pending.id, chain_pem, &info.issuer, info.not_before, info.not_after).await?;
            return Ok(pending.id);
        }
    }
    bail!("no pending CSR has the key of this certificate; give its --key")
}

/// Makes and stores a self-signed certificate. Returns its id.
pub async fn self_signed(store: &dyn Store, names: &[String], kind: KeyType, days: i64) -> anyhow::Result<i64> {
    let (chain, key) = certs::self_signed_for(names, kind, days)?;
    import_as(store, &chain, &key, "self-signed").await
}

/// Makes a key and a request; the key waits in the store. Returns (id, request PEM).
pub async fn csr(store: &dyn Store, names: &[String], kind: KeyType) -> anyhow::Result<(i64, String)> {
    let (request, key) = certs::csr(names, kind)?;
    let entry = StoredCert {
        id: 0,
        names: names.to_vec(),
        issuer: String::new(),
        not_before: 0,
        not_after: 0,
        key_type: kind.as_str().into(),
        source: "csr".into(),
        chain_pem: None,
        key_pem: key,
        csr_pem: Some(request.clone()),
        created: 0,
        warned: Vec::new(),
    };
    Ok((store.add_certificate(entry).await?, request))
}

/// Checks the target's name, then assigns.
pub async fn assign(store: &dyn Store, id: i64, usage: Usage, target: &str) -> anyhow::Result<()> {
    match usage {
        Usage::Listener if !LISTENERS.contains(&target) => bail!("--listener: `{target}` is not one of {}", LISTENERS.join(", ")),
        Usage::Host | Usage::SmartHost if !rampart_config::is_hostname(target.trim_start_matches("*.")) => {
            bail!("`{target}` is not a host name")
        }
        _ => {}
    }
    Ok(store.assign_certificate(id, usage, target).await?)
}

/// Client certificates for smart hosts by host name: (chain, key).
pub type ClientCerts = std::collections::HashMap<String, (Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>;

/// The store's smart-host assignments, loaded (read at start, as the queue's routes are).
pub async fn client_certs(store: &dyn Store) -> anyhow::Result<ClientCerts> {
    use rustls::pki_types::pem::PemObject;
    let mut out = ClientCerts::new();
    for a in store.assignments().await?.into_iter().filter(|a| a.usage == Usage::SmartHost) {
        let c = store.certificate(a.cert_id).await?;
        let Some(chain) = c.chain_pem else { continue };
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
            .with_context(|| format!("certificate {}: its key", c.id))?;
        out.insert(a.target, (certs::parse_chain(&chain)?, key));
    }
    Ok(out)
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

/// `listener smtp, host mail.example.org`: where a certificate is used.
pub fn uses(id: i64, all: &[Assignment]) -> String {
    let list: Vec<String> = all.iter().filter(|a| a.cert_id == id).map(|a| format!("{} {}", a.usage.as_str(), a.target)).collect();
    if list.is_empty() { "-".into() } else { list.join(", ") }
}

fn list_line(c: &StoredCert, all: &[Assignment]) -> String {
    let expiry = if c.chain_pem.is_some() { date(c.not_after) } else { "pending CSR".into() };
    format!("{}\t{}\t{}\t{}\t{}\t{}", c.id, c.key_type, c.source, expiry, c.names.join(","), uses(c.id, all))
}

fn show(c: &StoredCert, all: &[Assignment]) -> String {
    let mut out = format!("id: {}\nnames: {}\nkey type: {}\nsource: {}\n", c.id, c.names.join(", "), c.key_type, c.source);
    match &c.chain_pem {
        Some(_) => out += &format!("issuer: {}\nnot before: {}\nnot after: {}\n", c.issuer, date(c.not_before), date(c.not_after)),
        None => out += "status: waiting for the CA's certificate (rampart cert import --cert FILE)\n",
    }
    out += &format!("used by: {}\n", uses(c.id, all));
    if c.chain_pem.is_none()
        && let Some(csr) = &c.csr_pem
    {
        out += csr;
    }
    out
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("--{what}: {}", path.display()))
}

pub fn command(config: &Path, cmd: CertCommand) -> anyhow::Result<()> {
    let config = crate::serve::load_config(config, &[])?;
    let store = SqliteStore::open(&config.server.data_dir)
        .with_context(|| format!("opening the store in {}", config.server.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(&store, cmd))
}

async fn run(store: &SqliteStore, cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::List => {
            let all = store.assignments().await?;
            for c in store.certificates().await? {
                println!("{}", list_line(&c, &all));
            }
        }
        CertCommand::Show { id } => print!("{}", show(&store.certificate(id).await?, &store.assignments().await?)),
        CertCommand::Import { cert, key } => {
            let chain = read(&cert, "cert")?;
            let id = match key {
                Some(k) => import(store, &chain, &read(&k, "key")?).await?,
                None => complete(store, &chain).await?,
            };
            println!("{id}");
        }
        CertCommand::SelfSigned { names: n, key_type: k, days } => println!("{}", self_signed(store, &names(&n)?, key_type(&k)?, days).await?),
        CertCommand::Csr { names: n, key_type: k } => {
            let (id, request) = csr(store, &names(&n)?, key_type(&k)?).await?;
            eprintln!("certificate {id}: the key is kept; import the CA's answer with rampart cert import --cert FILE");
            print!("{request}");
        }
        CertCommand::Delete { id } => store.delete_certificate(id).await?,
        CertCommand::Assign { id, target } => {
            let (usage, name) = target.parts();
            assign(store, id, usage, &name.trim_end_matches('.').to_ascii_lowercase()).await?;
        }
        CertCommand::Unassign { id, target } => {
            let (usage, name) = target.parts();
            store.unassign_certificate(id, usage, name).await?;
        }
        CertCommand::Acme { names: n, wait } => println!("{}", acme::request(store, &names(&n)?, wait).await?),
    }
    Ok(())
}
