//! Teaching the classifier: `rampart spam learn`, a quarantine release (ham), and what users
//! move into or out of Junk over IMAP (the [`ImapLearner`] the IMAP session calls). Every
//! lesson counts for the accounts it concerns and globally; a message learnt twice as the same
//! class counts once, and learnt as the other class moves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_filter::{MessageView, Urls, bayes};
use rampart_store::filter::{ClassCounts, Lesson, Scope};
use rampart_store::prelude::*;
use rampart_store::{AccountId, MailboxId};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

#[derive(Subcommand)]
pub enum SpamCommand {
    /// Learn messages (RFC 5322 files) as spam or as ham, for one user and globally.
    Learn {
        #[arg(long, conflicts_with = "ham", required_unless_present = "ham")]
        spam: bool,
        #[arg(long)]
        ham: bool,
        /// Learn for this account too (and globally); without it, globally only.
        #[arg(long)]
        user: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// How many messages the classifier has learnt, globally or for one user.
    Stats {
        #[arg(long)]
        user: Option<String>,
    },
}

/// The classifier's tokens of a message and its fingerprint: the SHA-256 of the message, so
/// the same message learnt again (moved back and forth) is recognised.
fn tokens(raw: &[u8]) -> (String, Vec<u64>) {
    let view = MessageView::parse(raw);
    let urls = Urls::extract(&view);
    let fingerprint = Sha256::digest(raw).iter().map(|b| format!("{b:02x}")).collect();
    (fingerprint, bayes::tokenize(&view, &urls))
}

/// Learns one message for `accounts` and globally; returns how many scopes changed.
pub async fn learn_message(store: &dyn FilterStore, accounts: &[AccountId], raw: &[u8], spam: bool) -> anyhow::Result<usize> {
    let raw = raw.to_vec();
    let (message, tokens) = tokio::task::spawn_blocking(move || tokens(&raw)).await?;
    let mut scopes: Vec<Scope> = accounts.iter().map(|a| Scope::Account(*a)).collect();
    scopes.push(Scope::Global);
    Ok(store.learn(Lesson { scopes, message, tokens, spam }).await?)
}

fn counts(c: ClassCounts) -> String {
    format!("{} spam, {} ham", c.spam, c.ham)
}

pub fn command(config: &Path, cmd: SpamCommand) -> anyhow::Result<()> {
    let (_config, store, rt) = crate::cli::open(config)?;
    rt.block_on(async {
        let account = |user: Option<String>| {
            let store = store.clone();
            async move {
                let Some(user) = user else { return anyhow::Ok(None) };
                let Some(a) = store.account(&user).await? else { bail!("no account {user}") };
                Ok(Some(a.id))
            }
        };
        match cmd {
            SpamCommand::Learn { spam, ham: _, user, files } => {
                let accounts: Vec<AccountId> = account(user).await?.into_iter().collect();
                let (mut learnt, mut known) = (0, 0);
                for file in &files {
                    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    if learn_message(&*store, &accounts, &raw, spam).await? > 0 {
                        learnt += 1;
                    } else {
                        known += 1;
                    }
                }
                let class = if spam { "spam" } else { "ham" };
                println!("learnt {learnt} message(s) as {class}; {known} already learnt as {class}");
            }
            SpamCommand::Stats { user } => {
                let scope = account(user).await?.map_or(Scope::Global, Scope::Account);
                println!("learnt: {}", counts(store.learnt(scope).await?));
            }
        }
        Ok(())
    })
}

/// Learns what users move into Junk (spam) and out of it (ham), in the background: the IMAP
/// command does not wait for the classifier.
pub struct ImapLearner {
    pub store: Arc<dyn rampart_store::Store>,
}

impl rampart_imap::Learner for ImapLearner {
    fn learn(&self, account: AccountId, messages: Vec<(MailboxId, u32)>, spam: bool) {
        let store = self.store.clone();
        tokio::spawn(async move {
            for (mailbox, uid) in messages {
                let raw = match store.read_message(mailbox, uid).await {
                    Ok(raw) => raw,
                    // Expunged in the meantime: nothing to learn.
                    Err(_) => continue,
                };
                match learn_message(store.as_ref(), &[account], &raw, spam).await {
                    Ok(n) if n > 0 => info!(event = "classifier_learnt", account, class = if spam { "spam" } else { "ham" }),
                    Ok(_) => {}
                    Err(e) => warn!(event = "classifier_learn_failed", account, error = %e),
                }
            }
        });
    }
}
