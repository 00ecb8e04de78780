//! Certificates: `rampart cert ...` and the operations behind it (shared with the web admin),
//! the live certificate set of a running server ([`live`]), ACME ordering and renewal
//! ([`acme`], with the CA's renewal windows in [`ari`]) and expiry warnings ([`expiry`]).
//!
//! Certificates and keys live in the store; `[tls]` files still work beside them. No command
//! prints a private key.

pub mod acme;
pub mod ari;
pub mod expiry;
pub mod live;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use rampart_store::certs::{Assignment, StoredCert, Usage};
use rampart_tls::admin::{self, names};
use rampart_tls::certs::KeyType;

pub use rampart_tls::admin::{ClientCerts, LISTENERS, client_certs};

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

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

/// `listener smtp, host mail.example.org`: where a certificate is used.
fn uses(id: i64, all: &[Assignment]) -> String {
    let list = admin::uses(id, all);
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
    let (_config, store, rt) = crate::cli::open(config)?;
    rt.block_on(run(&*store, cmd))
}

async fn run(store: &dyn rampart_store::Store, cmd: CertCommand) -> anyhow::Result<()> {
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
                Some(k) => admin::import(store, &chain, &read(&k, "key")?).await?,
                None => admin::complete(store, &chain).await?,
            };
            println!("{id}");
        }
        CertCommand::SelfSigned { names: n, key_type: k, days } => println!("{}", admin::self_signed(store, &names(&n)?, key_type(&k)?, days).await?),
        CertCommand::Csr { names: n, key_type: k } => {
            let (id, request) = admin::csr(store, &names(&n)?, key_type(&k)?).await?;
            eprintln!("certificate {id}: the key is kept; import the CA's answer with rampart cert import --cert FILE");
            print!("{request}");
        }
        CertCommand::Delete { id } => store.delete_certificate(id).await?,
        CertCommand::Assign { id, target } => {
            let (usage, name) = target.parts();
            admin::assign(store, id, usage, name).await?;
        }
        CertCommand::Unassign { id, target } => {
            let (usage, name) = target.parts();
            store.unassign_certificate(id, usage, name).await?;
        }
        CertCommand::Acme { names: n, wait } => println!("{}", acme::request(store, &names(&n)?, wait).await?),
    }
    Ok(())
}
