//! `rampart import maildir|mbox` and `rampart export maildir`: moving mailboxes in from
//! Dovecot, Courier or any mbox writer, and out again.
//!
//! Imports are resumable and never fatal for one message: run again after an interruption and
//! what is already there is skipped — by UID where a `dovecot-uidlist` gave them (UIDs are kept,
//! so clients do not fetch everything again), else by internal date, size and content. A file
//! that is not a message is reported and skipped. Messages are stored through the same APPEND
//! path IMAP uses, so each is durable when counted.

pub mod export;
mod maildir;
mod mbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rampart_store::MailboxId;

pub use export::ExportCommand;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// A Maildir++ tree (Dovecot, Courier): INBOX, its folders, flags, Dovecot keywords, dates
    /// from the files' times, and UIDs when dovecot-uidlist is there.
    Maildir {
        path: PathBuf,
        #[arg(long)]
        user: String,
    },
    /// An mbox file into one mailbox (created if missing).
    Mbox {
        file: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
}

pub fn import(config: &Path, cmd: ImportCommand) -> anyhow::Result<()> {
    let (store, rt) = crate::admin::open(config)?;
    // Imported mail gets its IMAP summary and word index as delivered mail does, so the first
    // SEARCH or SORT of a large imported mailbox need not read it all.
    store.set_summarizer(std::sync::Arc::new(rampart_imap::MessageSummarizer));
    rt.block_on(async {
        let totals = match cmd {
            ImportCommand::Maildir { path, user } => import_maildir(&*store, &path, &user).await?,
            ImportCommand::Mbox { file, user, mailbox } => import_mbox(&*store, &file, &user, &mailbox).await?,
        };
        println!("imported {}, already there {}, skipped {}", totals.imported, totals.present, totals.skipped);
        Ok(())
    })
}

#[derive(Default)]
struct Totals {
    imported: u64,
    present: u64,
    skipped: u64,
}

/// Where one mailbox's messages go, and what it already holds.
struct Target {
    id: MailboxId,
    /// (internal date, size) → UIDs of messages already there, to recognise a rerun.
    present: HashMap<(i64, u64), Vec<u32>>,
    uidnext: u32,
}

async fn target(store: &dyn rampart_store::Store, account: i64, name: &str) -> anyhow::Result<Target> {
    let boxes = store.mailboxes(account).await?;
    let id = match boxes.iter().find(|b| b.name.eq_ignore_ascii_case(name)) {
        Some(b) => b.id,
        None => store.create_mailbox(account, name, None).await.with_context(|| format!("creating {name}"))?,
    };
    let mut present: HashMap<(i64, u64), Vec<u32>> = HashMap::new();
    for m in store.list_messages(id).await? {
        present.entry((m.internal_date, m.size)).or_default().push(m.uid);
    }
    let uidnext = store.mailboxes(account).await?.iter().find(|b| b.id == id).map_or(1, |b| b.uidnext);
    Ok(Target { id, present, uidnext })
}

impl Target {
    /// Whether an identical message with this date is already stored.
    async fn holds(&self, store: &dyn rampart_store::Store, date: i64, raw: &[u8]) -> anyhow::Result<bool> {
        for &uid in self.present.get(&(date, raw.len() as u64)).into_iter().flatten() {
            if store.read_message(self.id, uid).await? == raw {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn append(&mut self, store: &dyn rampart_store::Store, raw: &[u8], flags: &[String], date: i64) -> anyhow::Result<u32> {
        let mut w = store.blob_writer()?;
        w.write(raw).await?;
        let blob = w.finish().await?;
        let t = store.append(self.id, blob, flags.join(" "), date).await?;
        let uid = t.uids.first().map_or(0, |u| u.1);
        self.present.entry((date, raw.len() as u64)).or_default().push(uid);
        self.uidnext = uid + 1;
        Ok(uid)
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    // Drawn only on a terminal; scripts and logs get the summary line alone.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:20} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn report_skip(bar: &ProgressBar, path: &Path, why: &str, totals: &mut Totals) {
    bar.suspend(|| eprintln!("skipped {}: {why}", path.display()));
    totals.skipped += 1;
}

async fn import_maildir(store: &dyn rampart_store::Store, root: &Path, user: &str) -> anyhow::Result<Totals> {
    let account = store.account(user).await?.with_context(|| format!("no account {user}"))?;
    let keywords = std::fs::read_to_string(root.join("dovecot-keywords")).map(|t| maildir::parse_keywords(&t));
    let mut totals = Totals::default();
    for folder in maildir::folders(root).with_context(|| format!("reading {}", root.display()))? {
        // Dovecot keeps keywords and UIDs per folder.
        let keywords = std::fs::read_to_string(folder.dir.join("dovecot-keywords"))
            .map(|t| maildir::parse_keywords(&t))
            .or_else(|_| keywords.as_ref().map(Clone::clone).map_err(|_| ()))
            .unwrap_or_default();
        let uidlist = std::fs::read_to_string(folder.dir.join("dovecot-uidlist")).map(|t| maildir::parse_uidlist(&t)).ok();
        let mut files = maildir::messages(&folder.dir, &keywords)?;
        if let Some(list) = &uidlist {
            // Kept UIDs must be stored in ascending order; files Dovecot had not listed yet
            // (still in new/) come after them.
            files.sort_by_key(|f| list.uids.get(&f.base).copied().unwrap_or(u32::MAX));
        }
        let mut target = target(store, account.id, &folder.name).await?;
        if let Some(list) = &uidlist {
            store.set_next_uid(target.id, list.uidvalidity, target.uidnext).await?;
        }
        let bar = progress(files.len() as u64, &folder.name);
        for file in files {
            bar.inc(1);
            let uid = uidlist.as_ref().and_then(|l| l.uids.get(&file.base).copied());
            if uid.is_some_and(|u| u < target.uidnext) {
                totals.present += 1; // kept UIDs: a rerun starts where the last run stopped
                continue;
            }
            let raw = match std::fs::read(&file.path) {
                Ok(r) if maildir::looks_like_mail(&r) => maildir::to_crlf(&r),
                Ok(_) => {
                    report_skip(&bar, &file.path, "not a message", &mut totals);
                    continue;
                }
                Err(e) => {
                    report_skip(&bar, &file.path, &e.to_string(), &mut totals);
                    continue;
                }
            };
            let date = mtime(&file.path);
            if uid.is_none() && target.holds(store, date, &raw).await? {
                totals.present += 1;
                continue;
            }
            if let Some(uid) = uid {
                store.set_next_uid(target.id, None, uid).await?;
            }
            target.append(store, &raw, &file.flags, date).await?;
            totals.imported += 1;
        }
        if let Some(next) = uidlist.as_ref().and_then(|l| l.next_uid) {
            store.set_next_uid(target.id, None, next).await?;
        }
        bar.finish_and_clear();
    }
    import_subscriptions(store, account.id, root).await?;
    Ok(totals)
}

/// Dovecot's `subscriptions` file: one name per line (version 2 files start with a `V` line and
/// separate levels with tabs).
async fn import_subscriptions(store: &dyn rampart_store::Store, account: i64, root: &Path) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(root.join("subscriptions")) else { return Ok(()) };
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with("V\t") && *l != "V") {
        let name = line.replace(['\t', '.'], &rampart_store::mail::DELIMITER.to_string());
        store.set_subscribed(account, &name, true).await?;
    }
    Ok(())
}

fn mtime(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |d| d.as_secs() as i64)
}

async fn import_mbox(store: &dyn rampart_store::Store, file: &Path, user: &str, mailbox: &str) -> anyhow::Result<Totals> {
    let account = store.account(user).await?.with_context(|| format!("no account {user}"))?;
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let bar = progress(f.metadata()?.len(), mailbox);
    let mut reader = mbox::Reader::new(std::io::BufReader::new(ProgressRead { inner: f, bar: bar.clone() }));
    let mut target = target(store, account.id, mailbox).await?;
    let mut totals = Totals::default();
    let fallback = mtime(file);
    let mut n = 0;
    while let Some(m) = reader.next_message()? {
        n += 1;
        if !maildir::looks_like_mail(&m.raw) {
            report_skip(&bar, &file.with_extension(format!("message-{n}")), "not a message", &mut totals);
            continue;
        }
        let date = m.date.unwrap_or(fallback);
        if target.holds(store, date, &m.raw).await? {
            totals.present += 1;
            continue;
        }
        target.append(store, &m.raw, &m.flags, date).await?;
        totals.imported += 1;
    }
    bar.finish_and_clear();
    Ok(totals)
}

/// Advances the progress bar by the bytes read.
struct ProgressRead<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: std::io::Read> std::io::Read for ProgressRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
