//! `rampart export maildir PATH --user ADDRESS`: an account's mailboxes as a Maildir++ tree
//! that Dovecot (or `rampart import maildir`) reads back with the same flags, keywords,
//! internal dates (file times), UIDVALIDITY and UIDs (`dovecot-uidlist`), and subscriptions.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_store::mail::DELIMITER;
use rampart_store::Mailbox;

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Write every mailbox of an account into a new Maildir++ tree at PATH.
    Maildir {
        path: PathBuf,
        #[arg(long)]
        user: String,
    },
}

pub fn export(config: &Path, cmd: ExportCommand) -> anyhow::Result<()> {
    let ExportCommand::Maildir { path, user } = cmd;
    let (store, rt) = crate::admin::open(config)?;
    rt.block_on(async {
        let account = store.account(&user).await?.with_context(|| format!("no account {user}"))?;
        std::fs::create_dir_all(&path)?;
        if std::fs::read_dir(&path)?.next().is_some() {
            bail!("{} is not empty", path.display());
        }
        let mut count = 0;
        for mailbox in store.mailboxes(account.id).await? {
            count += export_mailbox(&*store, &path, &mailbox).await?;
        }
        let subscribed: Vec<String> =
            store.subscriptions(account.id).await?.iter().map(|n| n.replace(DELIMITER, ".")).collect();
        std::fs::write(path.join("subscriptions"), subscribed.iter().map(|n| format!("{n}\n")).collect::<String>())?;
        println!("exported {count} messages to {}", path.display());
        Ok(())
    })
}

async fn export_mailbox(store: &dyn rampart_store::Store, root: &Path, mailbox: &Mailbox) -> anyhow::Result<u64> {
    let dir = if mailbox.name.eq_ignore_ascii_case("INBOX") {
        root.to_path_buf()
    } else {
        root.join(format!(".{}", mailbox.name.replace(DELIMITER, ".")))
    };
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let messages = store.list_messages(mailbox.id).await?;
    let bar = super::progress(messages.len() as u64, &mailbox.name);
    let mut keywords: Vec<String> = Vec::new();
    let mut uidlist = format!("3 V{} N{}\n", mailbox.uidvalidity, mailbox.uidnext);
    for m in &messages {
        bar.inc(1);
        let base = format!("{}.R{}V{}.rampart", m.internal_date, m.uid, mailbox.uidvalidity);
        let name = format!("{base}:2,{}", letters(&m.flags, &mut keywords));
        let path = dir.join("cur").join(&name);
        let raw = store.read_message(mailbox.id, m.uid).await?;
        let mut f = std::fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        f.write_all(&raw)?;
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.internal_date.max(0) as u64);
        f.set_modified(when)?;
        uidlist.push_str(&format!("{} :{base}\n", m.uid));
    }
    bar.finish_and_clear();
    std::fs::write(dir.join("dovecot-uidlist"), uidlist)?;
    let kw: String = keywords.iter().enumerate().map(|(i, k)| format!("{i} {k}\n")).collect();
    std::fs::write(dir.join("dovecot-keywords"), kw)?;
    Ok(messages.len() as u64)
}

/// The Maildir info letters for IMAP flags, in the ASCII order Maildir requires; keywords get
/// letters `a`..`z` in the order first seen (26 at most per folder — Dovecot's own limit —
/// others are left out of the name).
fn letters(flags: &str, keywords: &mut Vec<String>) -> String {
    let mut out: Vec<char> = Vec::new();
    for flag in flags.split_whitespace() {
        let c = match flag.to_ascii_lowercase().as_str() {
            "\\seen" => 'S',
            "\\answered" => 'R',
            "\\flagged" => 'F',
            "\\deleted" => 'T',
            "\\draft" => 'D',
            "$forwarded" => 'P',
            f if f.starts_with('\\') => continue, // \Recent is not stored
            _ => {
                let i = match keywords.iter().position(|k| k == flag) {
                    Some(i) => i,
                    None if keywords.len() < 26 => {
                        keywords.push(flag.to_string());
                        keywords.len() - 1
                    }
                    None => continue,
                };
                (b'a' + i as u8) as char
            }
        };
        out.push(c);
    }
    out.sort_unstable();
    out.dedup();
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_to_letters_and_back() {
        let mut kw = Vec::new();
        assert_eq!(letters("\\Seen \\Flagged Work $Forwarded \\Recent", &mut kw), "FPSa");
        assert_eq!(letters("Later Work", &mut kw), "ab");
        assert_eq!(kw, ["Work", "Later"]);
        let (_, back) = super::super::maildir::parse_name("x:2,FPSa", &kw);
        assert_eq!(back, ["\\Flagged", "$Forwarded", "\\Seen", "Work"]);
    }
}
