//! `rampart quarantine`: messages the pipeline held instead of delivering. They wait in the
//! store (as durably as delivered mail) until released into their recipients' INBOX (and
//! learnt as ham, so the classifier makes the mistake less often), deleted, or expired after
//! `filter.quarantine.retention`.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use rampart_store::quarantine::Held;
use rampart_smtp::queue::Generated;
use rampart_store::{AccountId, Store};

#[derive(Subcommand)]
pub enum QuarantineCommand {
    /// Held messages, newest first: id, date, score, reason, sender, subject, recipients.
    List {
        /// Only those held for this account.
        #[arg(long)]
        user: Option<String>,
    },
    /// One held message: why it was held (its verdict trail), then its headers.
    Show { id: String },
    /// Deliver a held message to its recipients' INBOX (or only to --user's) and learn it as ham.
    Release {
        id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a held message (for everyone, or only for --user).
    Delete {
        id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Send each user with mail held since the last digest a list of it now (the server does
    /// it daily when `filter.quarantine.digest` is on).
    Digest,
}

/// Releases a held message into its recipients' INBOX (or only `account`'s) and learns it as
/// ham; returns how many mailboxes got it. The one implementation behind
/// `rampart quarantine release` and the web's release. A learning failure is logged: the
/// message is delivered by then.
pub async fn release(store: &dyn Store, id: &str, account: Option<AccountId>) -> Result<usize, rampart_store::StoreError> {
    let message = store.held_message(id).await.ok();
    let delivered = store.release(id, account).await?;
    let accounts: Vec<AccountId> = delivered.iter().map(|d| d.account).collect();
    if let Some(message) = message
        && let Err(e) = crate::spam::learn_message(store, &accounts, &message, false).await
    {
        tracing::warn!(event = "learn_failed", id, error = %format!("{e:#}"));
        eprintln!("warning: {id} was released but not learnt: {e:#}");
    }
    Ok(delivered.len())
}

/// [`release`] for the web listener.
pub struct Releaser {
    pub store: std::sync::Arc<dyn Store>,
}

#[async_trait::async_trait]
impl rampart_web::Quarantine for Releaser {
    async fn release(&self, id: &str, account: Option<AccountId>) -> Result<usize, rampart_store::StoreError> {
        release(self.store.as_ref(), id, account).await
    }
}

/// When the last digest went out (server state, unix seconds).
const LAST_DIGEST: &str = "quarantine_last_digest";

/// Sends each user with mail held since the last digest (or the last day) a list of it, into
/// their INBOX; returns how many digests went out.
pub async fn send_digests(store: &dyn Store, hostname: &str) -> anyhow::Result<usize> {
    let now = chrono::Utc::now().timestamp();
    let since = store.state(LAST_DIGEST).await?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(now - 24 * 3600 - 1);
    let mut sent = 0;
    for account in store.list_accounts().await? {
        let held: Vec<Held> = store.held(Some(account.id)).await?.into_iter().filter(|h| h.created > since).collect();
        if held.is_empty() {
            continue;
        }
        let id = format!("digest{now}{}", account.id);
        let message = digest_message(hostname, &account.address, &held);
        let generated = Generated {
            id: &id,
            sender: "",
            rcpts: std::slice::from_ref(&account.address),
            message: message.as_bytes(),
            reason: rampart_pipeline::Reason::QuarantineDigest,
            is_dsn: false,
        };
        rampart_smtp::queue::inject(store, hostname, "", &generated).await?;
        sent += 1;
    }
    store.set_state(LAST_DIGEST, &now.to_string()).await?;
    Ok(sent)
}

fn digest_message(hostname: &str, to: &str, held: &[Held]) -> String {
    let mut body = format!(
        "{} message(s) addressed to you are held in quarantine on {hostname}. They are deleted\r\n\
         when their retention ends; ask your mail administrator to release one you want\r\n\
         (rampart quarantine release ID).\r\n\r\n",
        held.len()
    );
    for h in held {
        body.push_str(&format!("{}  {}  score {}  <{}>  {}\r\n", h.id, date(h.created), score(h), h.sender, h.subject));
    }
    format!(
        "From: Mail quarantine <postmaster@{hostname}>\r\nTo: <{to}>\r\nSubject: {} message(s) held in quarantine\r\n\
         Date: {}\r\nMessage-ID: <digest.{}@{hostname}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        held.len(),
        chrono::Utc::now().to_rfc2822(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn score(h: &Held) -> String {
    h.score.map_or_else(|| "-".to_string(), |s| format!("{s:.1}"))
}

async fn account(store: &dyn rampart_store::Store, user: Option<String>) -> anyhow::Result<Option<AccountId>> {
    let Some(user) = user else { return Ok(None) };
    let Some(a) = store.account(&user).await? else { bail!("no account {user}") };
    Ok(Some(a.id))
}

pub fn command(config: &Path, cmd: QuarantineCommand) -> anyhow::Result<()> {
    let (config, store, rt) = crate::cli::open(config)?;
    // The digest is delivered into INBOXes: summarized as the server's deliveries are.
    store.set_summarizer(std::sync::Arc::new(rampart_imap::MessageSummarizer));
    rt.block_on(async {
        match cmd {
            QuarantineCommand::List { user } => {
                let account = account(&*store, user).await?;
                for h in store.held(account).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t<{}>\t{}\t{}",
                        h.id,
                        date(h.created),
                        score(&h),
                        h.reason,
                        h.sender,
                        h.subject,
                        h.recipients.join(",")
                    );
                }
            }
            QuarantineCommand::Show { id } => {
                let Some(h) = store.held_one(&id).await? else { bail!("no held message {id}") };
                println!("id: {}\nheld: {}\nsize: {}\nsender: <{}>\nsubject: {}", h.id, date(h.created), h.size, h.sender, h.subject);
                println!("recipients: {}\nreason: {}\nscore: {}\ntrail:", h.recipients.join(", "), h.reason, score(&h));
                match rampart_pipeline::Trail::from_json(&h.trail) {
                    Some(t) => print!("{}", t.render()),
                    None => println!("  {}", h.trail),
                }
                let message = store.held_message(&id).await?;
                let end = message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |i| i + 2);
                println!();
                print!("{}", String::from_utf8_lossy(&message[..end]));
            }
            QuarantineCommand::Release { id, user } => {
                let account = account(&*store, user).await?;
                let n = release(&*store, &id, account).await?;
                println!("{id}: released to {n} mailbox(es) and learnt as ham");
            }
            QuarantineCommand::Digest => {
                let sent = send_digests(&*store, &config.server.hostname).await?;
                println!("sent {sent} digest(s)");
            }
            QuarantineCommand::Delete { id, user } => {
                let account = account(&*store, user).await?;
                if !store.delete_held(&id, account).await? {
                    bail!("no held message {id}");
                }
                println!("deleted {id}");
            }
        }
        Ok(())
    })
}
