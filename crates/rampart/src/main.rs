//! The `rampart` binary: command line, wiring, and `serve`.
//!
//! - [`init`] writes a new config, a self-signed certificate and the store;
//! - [`serve`] binds every listener and runs the server;
//! - [`admin`] changes domains, users and aliases in the store, with or without a running
//!   server (SQLite WAL lets the CLI and the server share it);
//! - [`records`] prints the DNS records a domain needs;
//! - [`dkim`] manages the DKIM signing table; [`dmarc`] sends and lists DMARC reports;
//!   [`tlsrpt`] sends and lists TLS reports;
//! - [`bans`] lists, adds and lifts bans and shows the firewall rules (the running server's
//!   side of both is the `rampart-guard` crate);
//! - [`quarantine`] lists, shows, releases and deletes held messages; [`spam`] teaches the
//!   classifier (from files, released mail, and users' moves into and out of Junk);
//! - [`gateway`] builds the gateway routes and their callouts (delivery to a downstream is a
//!   queue route, built by [`queue`]);
//! - [`import`] brings mailboxes in from Maildir++ and mbox, and exports Maildir++;
//! - [`audit`] checks the live setup and says what to fix;
//! - [`manpages`] writes the man pages from these clap definitions (hidden `rampart man DIR`);
//! - [`keys`] reads the master key of an encrypted store, and is `rampart keys
//!   generate|rotate` and `rampart store encrypt`;
//! - [`backup`] copies the data directory while the server runs, verifies and restores copies;
//! - [`sending`] shows and overrides sending quotas, their exceptions, and suspends and
//!   resumes accounts (the running server's side is `rampart_smtp::sending`);
//! - [`logging`] formats log lines as stable key=value fields; [`stats`] counts some of them
//!   per hour for the web dashboard;
//! - the web listeners (`https`, `http`) are the `rampart-web` crate, wired in [`serve`];
//!   `rampart user role|totp|logins|logout` and `rampart api-token` are its CLI side.

mod admin;
mod audit;
mod backup;
mod backend;
mod bans;
mod certs;
mod cli;
mod dkim;
mod dmarc;
mod tlsrpt;
mod dnscheck;
mod gateway;
mod import;
mod init;
mod keys;
mod logging;
mod manpages;
mod metrics;
mod migrate;
mod pgp;
mod userenc;
mod quarantine;
mod privileges;
mod queue;
mod records;
mod reportloop;
mod rsa_code;
mod sending;
mod serve;
mod spam;
mod stats;
mod systemd;
mod webdash;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rampart", version, about = "A secure mail server in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The configuration file (every command but `init` uses it).
    #[arg(long, short = 'c', global = true, default_value = "rampart.toml", env = "RAMPART_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new configuration, a self-signed certificate and the store, and print the DNS
    /// records to publish. Refuses to overwrite an existing configuration.
    Init {
        /// Directory for rampart.toml, tls/ and data/ (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// This server's host name, the target of the MX record.
        #[arg(long)]
        hostname: String,
        /// The first mail domain to accept mail for.
        #[arg(long)]
        domain: String,
        /// Store mail encrypted at rest from the start (`[store.encryption] mode = "server"`):
        /// a master key is written to DIR/master.key (mode 0600, beside the data directory, not
        /// in it). Back it up apart from the data: without it the mail cannot be read.
        #[arg(long)]
        encrypt: bool,
        /// Keep the store in this PostgreSQL database (`[store] backend = "postgres"`), e.g.
        /// `postgres://rampart@db.example.org/rampart`; a database other nodes already use is
        /// joined (the domain and its DKIM key are added only if missing).
        #[arg(long, value_name = "URL")]
        store_url: Option<String>,
    },
    /// Run the server.
    Serve {
        /// Override a config key: --set 'listener.smtp.bind=["127.0.0.1:2525"]'. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Mail domains this server accepts mail for.
    Domain {
        #[command(subcommand)]
        command: admin::DomainCommand,
    },
    /// Mail accounts.
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Addresses that deliver to other addresses.
    Alias {
        #[command(subcommand)]
        command: admin::AliasCommand,
    },
    /// Banned addresses and networks.
    Ban {
        #[command(subcommand)]
        command: bans::BanCommand,
    },
    /// Firewall rules from the configuration.
    Firewall {
        #[command(subcommand)]
        command: bans::FirewallCommand,
    },
    /// Sending quotas of users and domains: usage, overrides, exceptions.
    Quota {
        #[command(subcommand)]
        command: sending::QuotaCommand,
    },
    /// The outbound queue.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// Stored messages.
    Message {
        #[command(subcommand)]
        command: admin::MessageCommand,
    },
    /// Certificates: the store's certificates and keys, CSRs, where each is used, ACME.
    Cert {
        #[command(subcommand)]
        command: certs::CertCommand,
    },
    /// DKIM keys: the signing table.
    Dkim {
        #[command(subcommand)]
        command: dkim::DkimCommand,
    },
    /// DMARC aggregate reports.
    Dmarc {
        #[command(subcommand)]
        command: dmarc::DmarcCommand,
    },
    /// TLS reports (RFC 8460): those received, and sending ours now.
    Tlsrpt {
        #[command(subcommand)]
        command: tlsrpt::TlsRptCommand,
    },
    /// Messages held instead of delivered (spam above `filter.spam.quarantine_score`).
    Quarantine {
        #[command(subcommand)]
        command: quarantine::QuarantineCommand,
    },
    /// The spam classifier: teach it, see what it has learnt.
    Spam {
        #[command(subcommand)]
        command: spam::SpamCommand,
    },
    /// Bring mailboxes in from a Maildir++ tree (Dovecot, Courier) or an mbox file.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// Write an account's mailboxes out as a Maildir++ tree.
    Export {
        #[command(subcommand)]
        command: import::ExportCommand,
    },
    /// Check the live setup (DNS, certificates, relay, configuration, passwords, backups) and
    /// print each finding with its fix; exits non-zero when one is high.
    Audit(audit::AuditArgs),
    /// A consistent copy of the data directory, taken while the server runs; `backup verify
    /// DIR` checks one.
    Backup(backup::BackupArgs),
    /// Restore a backup into the configured data directory, which must be empty.
    Restore {
        /// The backup's directory, as `rampart backup` wrote it.
        dir: PathBuf,
    },
    /// Tokens for the JSON API (/api/v1/), for automation.
    ApiToken {
        #[command(subcommand)]
        command: admin::ApiTokenCommand,
    },
    /// The master key of an encrypted store (`[store.encryption] mode = "server"`).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The store as a whole: converting a clear store to an encrypted one, copying it to
    /// PostgreSQL.
    Store {
        #[command(subcommand)]
        command: keys::StoreCommand,
    },
    /// DNS records to publish.
    Dns {
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Write the manual pages (rampart.1 and one per subcommand) into DIR, for packaging.
    #[command(hide = true)]
    Man {
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration; every error names its key.
    Check {
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Print the documented default configuration that `init` writes (for scripts/package).
    #[command(hide = true)]
    Template {
        #[arg(long, default_value = "localhost")]
        hostname: String,
    },
}

#[derive(Subcommand)]
enum DnsCommand {
    /// Print the records DOMAIN needs as a zone-file snippet.
    Records { domain: String },
    /// Look each of those records up and say whether it is published: ok, missing or wrong.
    Check { domain: String },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Mail, keys and the database are nobody else's business.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o027) };
    // glibc raises its mmap threshold after freeing a large block, after which argon2's 19 MiB
    // work areas are recycled inside per-thread arenas and never returned: with many blocking
    // threads that grew the server by gigabytes. A fixed threshold keeps large blocks mmapped
    // (returned on free), and fewer arenas bound fragmentation across threads.
    // SAFETY: mallopt only tunes the allocator, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
    let config = cli.config;
    let result = match cli.command {
        Command::Init { dir, hostname, domain, encrypt, store_url } => init::run(&dir, &hostname, &domain, encrypt, store_url.as_deref()),
        Command::Serve { sets } => serve::run(&config, &sets),
        Command::Config { command: ConfigCommand::Check { sets } } => config_check(&config, &sets),
        Command::Config { command: ConfigCommand::Template { hostname } } => {
            print!("{}", rampart_config::template(&hostname));
            Ok(())
        }
        Command::Domain { command } => admin::domain(&config, command),
        Command::User { command } => admin::user(&config, command),
        Command::Alias { command } => admin::alias(&config, command),
        Command::Message { command } => admin::message(&config, command),
        Command::Queue { command } => queue::command(&config, command),
        Command::Quota { command } => quota(&config, command),
        Command::Cert { command } => certs::command(&config, command),
        Command::Dkim { command } => dkim::command(&config, command),
        Command::Dmarc { command } => dmarc::command(&config, command),
        Command::Tlsrpt { command } => tlsrpt::command(&config, command),
        Command::Quarantine { command } => quarantine::command(&config, command),
        Command::Spam { command } => spam::command(&config, command),
        Command::Import { command } => import::import(&config, command),
        Command::Export { command } => import::export::export(&config, command),
        Command::Audit(args) => audit::command(&config, args),
        Command::Backup(args) => backup::command(&config, args),
        Command::Restore { dir } => backup::restore(&config, &dir),
        Command::Dns { command: DnsCommand::Records { domain } } => dns_records(&config, &domain),
        Command::Dns { command: DnsCommand::Check { domain } } => dns_check(&config, &domain),
        Command::Ban { command } => bans::ban(&config, command),
        Command::ApiToken { command } => admin::api_token(&config, command),
        Command::Firewall { command } => bans::firewall(&config, command),
        Command::Man { dir } => manpages::write(&dir),
        Command::Keys { command } => keys::keys_command(&config, command),
        Command::Store { command } => keys::store_command(&config, command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dns_records(config: &std::path::Path, domain: &str) -> anyhow::Result<()> {
    let (c, store, rt) = cli::open(config)?;
    let keys = rt.block_on(store.dkim_keys(Some(&domain.trim_end_matches('.').to_ascii_lowercase())))?;
    print!("{}", records::zone(domain, &records::Inputs::from_config(&c, &keys)));
    Ok(())
}

fn quota(config: &std::path::Path, cmd: sending::QuotaCommand) -> anyhow::Result<()> {
    let (c, store, rt) = cli::open(config)?;
    rt.block_on(sending::quota(&*store, &c, cmd))
}

fn dns_check(config: &std::path::Path, domain: &str) -> anyhow::Result<()> {
    let (c, store, rt) = cli::open(config)?;
    let resolver = rampart_smtp::dns::resolver(&c.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
    let checks = rt.block_on(dnscheck::check(&*store, &c, &resolver, domain))?;
    let mut bad = 0;
    for r in &checks {
        println!("{}\t{}\t{}\t{}", r.status, r.rtype, r.name, r.expected);
        if r.status != "ok" {
            bad += 1;
            for f in &r.found {
                println!("\tfound: {f}");
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} of {} records are not published as they should be", checks.len());
    }
    Ok(())
}

fn config_check(path: &std::path::Path, sets: &[String]) -> anyhow::Result<()> {
    let config = rampart_config::Config::load(path, sets)?;
    let mut errors: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    if errors.is_empty() {
        errors = keys::check(&config);
    }
    if errors.is_empty() {
        println!("{}: ok", path.display());
        return Ok(());
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    anyhow::bail!("{}: {} problem(s)", path.display(), errors.len())
}
