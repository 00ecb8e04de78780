//! Administration commands on the store named by the config file. They work while the server
//! runs: SQLite in WAL mode lets both write, and the server reads domains, accounts and
//! aliases from the store on every lookup rather than caching them.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DomainCommand {
    /// Accept mail for a domain.
    Add { name: String },
    /// List local domains.
    List,
    /// Stop accepting mail for a domain (it must have no accounts or aliases left).
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account (and its default mailboxes).
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts with their state: active, or suspended (since when and why).
    List,
    /// Suspend an account: every login and its sending, or with --sending only its sending
    /// (IMAP keeps working). Its queued mail is held until released or deleted.
    Suspend {
        address: String,
        #[arg(long)]
        sending: bool,
    },
    /// End a suspension; held mail stays held (`rampart queue release|delete`).
    #[command(visible_alias = "unsuspend")]
    Resume { address: String },
    /// One account: its role, suspension, two-factor state and number of app passwords.
    Show { address: String },
    /// Delete an account with all its mail.
    Remove { address: String },
    /// Set a new password.
    Passwd {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Passwords for single mail clients, usable for SMTP and IMAP instead of the password.
    AppPassword {
        #[command(subcommand)]
        command: AppPasswordCommand,
    },
    /// Set what the account may do on the web: `admin` manages everything, `user` only its
    /// own account.
    Role {
        address: String,
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
    /// The second factor of web logins (TOTP, RFC 6238).
    Totp {
        #[command(subcommand)]
        command: TotpCommand,
    },
    /// End every web session of the account (log out everywhere).
    Logout { address: String },
    /// Where the account logged in from: network, protocol, first and last time, count.
    Logins { address: String },
    /// The user's OpenPGP public key: delivered mail is stored encrypted to it, and the Web
    /// Key Directory publishes it.
    Pgp {
        #[command(subcommand)]
        command: crate::pgp::PgpCommand,
    },
    /// Per-user encryption: the account's mail is readable only while its user is logged in;
    /// administrators cannot read it.
    Encryption {
        #[command(subcommand)]
        command: crate::userenc::EncryptionCommand,
    },
}

#[derive(Subcommand)]
pub enum TotpCommand {
    /// Set up TOTP now: prints the otpauth:// URI (for an authenticator app) and 10 one-time
    /// recovery codes, each shown once.
    Enroll { address: String },
    /// Turn TOTP off (the recovery codes go too).
    Disable { address: String },
    /// New recovery codes in place of the old ones, printed once.
    RecoveryCodes { address: String },
}

#[derive(Subcommand)]
pub enum AppPasswordCommand {
    /// Create one and print it once; only its hash is kept.
    Add {
        address: String,
        /// What it is for, e.g. "phone".
        #[arg(long)]
        name: String,
        /// For an account with per-user encryption: the user's password on standard input,
        /// which opens the key so that the app password can open it too.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List an account's app passwords (names and dates, never the passwords).
    List { address: String },
    /// Revoke one by name.
    Revoke {
        address: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ApiTokenCommand {
    /// Create a token for automation (`Authorization: Bearer TOKEN` on /api/v1/); it acts as an
    /// admin within its scopes. Printed once; only its hash is kept.
    Add {
        #[arg(long)]
        name: String,
        /// Limit it to these areas (repeatable): domains (and DKIM keys), users (and message
        /// trails), aliases, quarantine, spam, bans, queue, stats. Without any: all of them.
        #[arg(long = "scope", value_parser = rampart_web::SCOPES)]
        scopes: Vec<String>,
    },
    /// List tokens: name, scopes, created, last used (never the token).
    List,
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

pub fn api_token(config: &Path, cmd: ApiTokenCommand) -> anyhow::Result<()> {
    let (store, rt) = open(config)?;
    let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
    rt.block_on(async {
        match cmd {
            ApiTokenCommand::Add { name, scopes } => {
                let token = rampart_auth::totp::random_token(32);
                store.api_token_add(&name, &rampart_auth::totp::token_hash(&token), &scopes).await?;
                println!("API token {name} (shown once; send it as Authorization: Bearer):");
                println!("{token}");
            }
            ApiTokenCommand::List => {
                for t in store.api_tokens().await? {
                    let scopes = if t.scopes.is_empty() { "all".to_string() } else { t.scopes.join(",") };
                    let used = t.last_used.map_or_else(|| "never".to_string(), date);
                    println!("{}\t{scopes}\tcreated {}\tlast used {used}", t.name, date(t.created));
                }
            }
            ApiTokenCommand::Revoke { name } => {
                store.api_token_revoke(&name).await?;
                println!("revoked API token {name}");
            }
        }
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Deliver mail for ALIAS to TARGET (repeat to add more targets).
    Add { alias: String, target: String },
    /// List aliases as `alias -> target`.
    List,
    /// Remove an alias, or only one of its targets.
    Remove { alias: String, target: Option<String> },
}

#[derive(Subcommand)]
pub enum MessageCommand {
    /// Show why a message was accepted: its verdict trail. ID is the id in the Received header
    /// and in the server's log lines.
    Why { id: String },
    /// Stored messages, newest first: id, received, mailbox, size, verdict (tab-separated).
    Search {
        /// Only this account's.
        #[arg(long)]
        address: Option<String>,
        /// Received at or after: 2026-11-30 or 2026-11-30T08:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// Received before.
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// List a mailbox: uid, id, size, Message-ID and Subject, tab-separated.
    List {
        address: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// Print one message as stored, trace headers included.
    Show {
        address: String,
        uid: u32,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
}

/// The mailbox `name` of `address`, or an error naming what is missing.
async fn find_mailbox(store: &dyn rampart_store::Store, address: &str, name: &str) -> anyhow::Result<rampart_store::MailboxId> {
    let account = store.account(address).await?.with_context(|| format!("no account {address}"))?;
    let boxes = store.mailboxes(account.id).await?;
    let b = boxes.iter().find(|b| b.name.eq_ignore_ascii_case(name)).with_context(|| format!("{address} has no mailbox {name}"))?;
    Ok(b.id)
}

/// The unfolded value of the first header `name` in the message's header section.
fn header(message: &[u8], name: &str) -> String {
    let head_end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line.trim_end()),
            Some(_) => break,
            None => {
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case(name) {
                        value = Some(v.trim().to_string());
                    }
            }
        }
    }
    value.unwrap_or_default()
}

/// A date (`2026-11-30`, midnight UTC) or an RFC 3339 time, as unix seconds.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("`{s}` is not a date (2026-11-30) or an RFC 3339 time"))?;
    Ok(day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc().timestamp())
}

pub(crate) fn open(config: &Path) -> anyhow::Result<(crate::backend::Opened, tokio::runtime::Runtime)> {
    let (_, store, rt) = crate::cli::open(config)?;
    Ok((store, rt))
}


/// The password's secrets after the configured policy accepted it.
pub(crate) fn checked_secrets(config: &rampart_config::Config, address: &str, password: &str) -> anyhow::Result<rampart_store::Secrets> {
    let address = rampart_store::address::canonical(address)?;
    let policy = rampart_auth::PasswordPolicy {
        min_length: config.auth.password_min_length,
        min_score: config.auth.password_min_score,
    };
    if let Err(why) = policy.check(password, &address) {
        bail!("password refused: {why}");
    }
    Ok(rampart_auth::secrets_for(password, &crate::serve::auth_settings(config))?)
}

pub(crate) fn read_password(flag: bool) -> anyhow::Result<String> {
    if !flag {
        bail!("give the password on standard input with --password-stdin");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password.to_string())
}

pub fn domain(config: &Path, cmd: DomainCommand) -> anyhow::Result<()> {
    let (store, rt) = open(config)?;
    rt.block_on(async {
        match cmd {
            DomainCommand::Add { name } => {
                store.add_domain(&name).await?;
                println!("added domain {}", name.to_ascii_lowercase());
            }
            DomainCommand::List => {
                for d in store.list_domains().await? {
                    println!("{d}");
                }
            }
            DomainCommand::Remove { name } => {
                store.remove_domain(&name).await?;
                println!("removed domain {}", name.to_ascii_lowercase());
            }
        }
        Ok(())
    })
}

pub fn user(config: &Path, cmd: UserCommand) -> anyhow::Result<()> {
    if let UserCommand::Pgp { command } = cmd {
        return crate::pgp::run(config, command);
    }
    let (config, store, rt) = crate::cli::open(config)?;
    rt.block_on(async {
        match cmd {
            UserCommand::Add { address, password_stdin } => {
                let password = read_password(password_stdin)?;
                let secrets = checked_secrets(&config, &address, &password)?;
                store.add_account_with(&address, &secrets).await?;
                println!("added user {}", rampart_store::address::canonical(&address)?);
            }
            UserCommand::List => crate::sending::list_users(&*store).await?,
            // A whole-account suspension refuses every login (IMAP and SMTP with CONTACTADMIN /
            // 525, the web with account_suspended) and ends its web sessions; --sending stops
            // only the sending. The web API's suspension (no credentials at all) is lifted by
            // `resume` too.
            UserCommand::Suspend { address, sending } => {
                crate::sending::suspend(&*store, &address, sending).await?;
                if !sending && let Some(a) = store.account(&address).await? {
                    store.sessions_remove(a.id, None).await?;
                }
            }
            UserCommand::Resume { address } => {
                let web_suspended = store.web_account(&address).await?.is_some_and(|a| a.suspended);
                store.set_suspended(&address, false).await?;
                match crate::sending::resume(&*store, &address).await {
                    Ok(()) => {}
                    // Suspended from the web only: lifting that was the whole job.
                    Err(_) if web_suspended => println!("resumed {address}"),
                    Err(e) => return Err(e),
                }
            }
            UserCommand::Show { address } => show_user(&*store, &address).await?,
            UserCommand::Remove { address } => {
                store.remove_account(&address).await?;
                println!("removed user {address}");
            }
            UserCommand::Passwd { address, password_stdin } => {
                let password = read_password(password_stdin)?;
                let secrets = checked_secrets(&config, &address, &password)?;
                store.set_secrets(&address, &secrets).await?;
                // A reset is what follows a compromise: whoever held a web session loses it.
                if let Some(a) = store.account(&address).await? {
                    store.sessions_remove(a.id, None).await?;
                    // The old password's wrap of a per-user key cannot be remade without the
                    // old password: it goes, and the recovery code opens the mail again.
                    if store.has_user_key(a.id).await? {
                        store.remove_user_key_wrap(a.id, rampart_store::userkey::PASSWORD).await?;
                        println!("{address} has per-user encryption: its mail now needs the recovery code (`rampart user encryption recover {address} --recovery-code CODE --password-stdin`)");
                    }
                }
                println!("changed the password of {address}");
            }
            UserCommand::AppPassword { command: AppPasswordCommand::Add { address, name, password_stdin } } => {
                let password = rampart_auth::new_app_password();
                let params = crate::serve::auth_settings(&config).hash;
                // Per-user encryption exists on the embedded store only: elsewhere no key to wrap.
                let opener = match store.sqlite_if_any() {
                    Some(sqlite) => crate::userenc::app_password_opener(sqlite, &address, password_stdin).await?,
                    None => None,
                };
                store.add_app_password(&address, &name, &rampart_auth::hash_password(&password, params)?).await?;
                if let Some((account, opener)) = opener {
                    crate::userenc::wrap_app_password(store.sqlite("per-user encryption")?, &address, account, &name, &password, opener).await?;
                }
                println!("app password {name} for {address} (shown once, use it instead of the password in one mail client):");
                println!("{password}");
            }
            UserCommand::AppPassword { command: AppPasswordCommand::List { address } } => {
                let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                for a in store.list_app_passwords(&address).await? {
                    let used = a.last_used.map_or_else(|| "never".to_string(), date);
                    println!("{}\tcreated {}\tlast used {used}", a.name, date(a.created));
                }
            }
            UserCommand::AppPassword { command: AppPasswordCommand::Revoke { address, name } } => {
                let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
                let id = store.list_app_passwords(&address).await?.into_iter().find(|a| a.name == name).map(|a| a.id);
                store.revoke_app_password(&address, &name).await?;
                if let Some(id) = id {
                    store.remove_user_key_wrap(account.id, &rampart_store::userkey::app_wrap(id)).await?;
                }
                println!("revoked app password {name} of {address}");
            }
            UserCommand::Role { address, role } => {
                let role = rampart_store::Role::parse(&role).context("the role is admin or user")?;
                store.set_role(&address, role).await?;
                println!("{address} is now {}", role.name());
            }
            UserCommand::Totp { command } => totp(&*store, &config, command).await?,
            UserCommand::Logins { address } => {
                let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                let address = rampart_store::address::canonical(&address)?;
                for l in store.login_history(&address).await? {
                    println!("{}\t{}\tfirst {}\tlast {}\t{} login(s)", l.net, l.proto, date(l.first_seen), date(l.last_seen), l.logins);
                }
            }
            UserCommand::Logout { address } => {
                let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
                let n = store.sessions_remove(account.id, None).await?;
                println!("ended {n} web session(s) of {address}");
            }
            UserCommand::Encryption { command } => {
                crate::userenc::run(store.sqlite("per-user encryption (`rampart user encryption`)")?, &config, command).await?
            }
            UserCommand::Pgp { .. } => unreachable!("handled before the store is opened"),
        }
        Ok(())
    })
}

async fn totp(store: &dyn rampart_store::Store, config: &rampart_config::Config, cmd: TotpCommand) -> anyhow::Result<()> {
    match cmd {
        TotpCommand::Enroll { address } => {
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            let (secret, codes) = rampart_auth::totp::enroll_now(store, account.id).await?;
            let issuer = if config.web.totp_issuer.is_empty() { &config.server.hostname } else { &config.web.totp_issuer };
            let uri = rampart_auth::totp::uri(&secret, &account.address, issuer).context("building the otpauth URI")?;
            println!("TOTP for {} (shown once; add it to an authenticator app):", account.address);
            println!("{uri}");
            println!("recovery codes (each works once instead of a TOTP code):");
            for c in codes {
                println!("{c}");
            }
        }
        TotpCommand::RecoveryCodes { address } => {
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            let codes = rampart_auth::totp::renew_recovery_codes(store, account.id).await?;
            println!("new recovery codes for {} (the old ones no longer work):", account.address);
            for c in codes {
                println!("{c}");
            }
        }
        TotpCommand::Disable { address } => {
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            if !store.totp_remove(account.id).await? {
                bail!("{address} has no TOTP");
            }
            store.sessions_remove(account.id, None).await?;
            println!("TOTP of {address} is off");
        }
    }
    Ok(())
}

/// `rampart user show ADDRESS`: role, suspension, second factor and app passwords.
async fn show_user(store: &dyn rampart_store::Store, address: &str) -> anyhow::Result<()> {
    let a = store.web_account(address).await?.with_context(|| format!("no account {address}"))?;
    let created = chrono::DateTime::from_timestamp(a.account.created, 0).map(|d| d.to_rfc3339()).unwrap_or_default();
    let totp = if a.totp {
        format!("on ({} recovery codes left)", store.recovery_codes_left(a.account.id).await?)
    } else {
        "off".to_string()
    };
    let apps = store.list_app_passwords(&a.account.address).await?;
    println!(
        "address: {}\nrole: {}\nsuspended: {}\ntotp: {totp}\napp passwords: {}\ncreated: {created}",
        a.account.address,
        a.role.name(),
        if a.suspended { "yes" } else { "no" },
        apps.len()
    );
    Ok(())
}

pub fn alias(config: &Path, cmd: AliasCommand) -> anyhow::Result<()> {
    let (store, rt) = open(config)?;
    rt.block_on(async {
        match cmd {
            AliasCommand::Add { alias, target } => {
                store.add_alias(&alias, &target).await?;
                println!("added alias {alias} -> {target}");
            }
            AliasCommand::List => {
                for a in store.list_aliases().await? {
                    println!("{} -> {}", a.address, a.target);
                }
            }
            AliasCommand::Remove { alias, target } => {
                store.remove_alias(&alias, target.as_deref()).await?;
                println!("removed alias {alias}");
            }
        }
        Ok(())
    })
}

pub fn message(config: &Path, cmd: MessageCommand) -> anyhow::Result<()> {
    let (store, rt) = open(config)?;
    rt.block_on(async {
        match cmd {
            MessageCommand::Why { id } => {
                let found = store.messages_by_reference(&id).await?;
                if found.is_empty() {
                    bail!("no stored message has id {id}");
                }
                for m in found {
                    let when = chrono::DateTime::from_timestamp(m.internal_date, 0).map(|d| d.to_rfc3339()).unwrap_or_default();
                    println!("message {} in {} (uid {}, {} bytes, received {when})", m.reference, m.mailbox, m.uid, m.size);
                    match rampart_pipeline::Trail::from_json(&m.trail) {
                        Some(trail) => {
                            if let Some(d) = trail.find(rampart_pipeline::Stage::Decision) {
                                println!("verdict: {} ({})", d.detail, d.reason.name());
                            }
                            print!("{}", trail.render());
                        }
                        // Messages stored before the typed trail: shown as stored.
                        None => println!("{}", m.trail),
                    }
                }
            }
            MessageCommand::Search { address, since, until, limit } => {
                let since = since.as_deref().map(parse_time).transpose()?.unwrap_or(0);
                let until = until.as_deref().map(parse_time).transpose()?.unwrap_or(i64::MAX);
                for m in store.messages_search(address.as_deref(), since, until, limit).await? {
                    let when = chrono::DateTime::from_timestamp(m.internal_date, 0).map(|d| d.to_rfc3339()).unwrap_or_default();
                    let verdict = rampart_pipeline::Trail::from_json(&m.trail)
                        .and_then(|t| t.find(rampart_pipeline::Stage::Decision).map(|d| d.detail.clone()))
                        .unwrap_or_else(|| "-".into());
                    println!("{}\t{when}\t{}\t{}\t{verdict}", m.reference, m.mailbox, m.size);
                }
            }
            MessageCommand::List { address, mailbox } => {
                let id = find_mailbox(&*store, &address, &mailbox).await?;
                for m in store.list_messages(id).await? {
                    let text = store.read_message(id, m.uid).await?;
                    let (mid, subject) = (header(&text, "Message-ID"), header(&text, "Subject"));
                    println!("{}\t{}\t{}\t{mid}\t{subject}", m.uid, m.reference, m.size);
                }
            }
            MessageCommand::Show { address, uid, mailbox } => {
                let id = find_mailbox(&*store, &address, &mailbox).await?;
                let text = store.read_message(id, uid).await?;
                use std::io::Write;
                std::io::stdout().write_all(&text)?;
            }
        }
        Ok(())
    })
}
