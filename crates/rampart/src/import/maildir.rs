//! Reading a Maildir++ tree as Dovecot and Courier write it: the folders, each message's
//! flags from its file name, Dovecot's keyword letters and its UID list. Pure functions over
//! names and file contents; the walking is in [`folders`] and [`messages`].
//!
//! - The root's `cur/` and `new/` are INBOX; `.Name` and `.Parent.Child` are folders (Maildir++
//!   uses `.` as its separator; Rampart's is `/`). Names are IMAP's modified UTF-7 in both.
//! - A file name `BASE:2,FLAGS`: `S` seen, `R` replied, `F` flagged, `T` trashed (\Deleted),
//!   `D` draft, `P` passed (no IMAP flag; `$Forwarded` as Dovecot's clients read it), and
//!   lowercase letters are keywords numbered by `dovecot-keywords` (`a` = 0).
//! - `dovecot-uidlist`: a header `3 V<uidvalidity> N<nextuid> ...`, then `UID [fields] :BASE`
//!   (version 3) or `UID BASE` (version 1).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rampart_store::mail::DELIMITER;

/// One folder of the tree.
#[derive(Debug, PartialEq)]
pub struct Folder {
    /// Rampart's mailbox name (`INBOX`, `Archive/2026`).
    pub name: String,
    pub dir: PathBuf,
}

/// Every folder under `root`, INBOX first, parents before children.
pub fn folders(root: &Path) -> std::io::Result<Vec<Folder>> {
    let mut found = vec![Folder { name: "INBOX".into(), dir: root.to_path_buf() }];
    let mut others = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else { continue };
        if let Some(name) = folder_name(name)
            && entry.path().join("cur").is_dir()
        {
            others.push(Folder { name, dir: entry.path() });
        }
    }
    others.sort_by(|a, b| a.name.cmp(&b.name));
    found.extend(others);
    Ok(found)
}

/// The mailbox name of a Maildir++ folder directory (`.Sent` → `Sent`, `.A.B` → `A/B`);
/// `None` for what is not a folder (`cur`, `..`, `.INBOX` children are kept under INBOX).
pub fn folder_name(dir_name: &str) -> Option<String> {
    let rest = dir_name.strip_prefix('.')?;
    if rest.is_empty() || rest.starts_with('.') || rest.split('.').any(str::is_empty) {
        return None;
    }
    Some(rest.replace('.', &DELIMITER.to_string()))
}

/// One message file.
#[derive(Debug)]
pub struct MessageFile {
    pub path: PathBuf,
    /// The unique part of the name, before `:2,`.
    pub base: String,
    /// IMAP flags and keywords, in IMAP's spelling.
    pub flags: Vec<String>,
}

/// The messages of a folder: `cur/` then `new/`, each sorted by name (which starts with the
/// delivery time, so this is arrival order).
pub fn messages(dir: &Path, keywords: &[String]) -> std::io::Result<Vec<MessageFile>> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else { continue };
        let mut files: Vec<_> = entries.filter_map(Result::ok).filter(|e| e.path().is_file()).collect();
        files.sort_by_key(|e| e.file_name());
        for e in files {
            let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
            let (base, flags) = parse_name(&name, keywords);
            out.push(MessageFile { path: e.path(), base, flags });
        }
    }
    Ok(out)
}

/// `BASE:2,FLAGS` → (BASE, IMAP flags).
pub fn parse_name(name: &str, keywords: &[String]) -> (String, Vec<String>) {
    let Some((base, info)) = name.split_once(":2,") else { return (name.to_string(), Vec::new()) };
    let mut flags = Vec::new();
    for c in info.chars() {
        let flag = match c {
            'S' => "\\Seen".to_string(),
            'R' => "\\Answered".to_string(),
            'F' => "\\Flagged".to_string(),
            'T' => "\\Deleted".to_string(),
            'D' => "\\Draft".to_string(),
            'P' => "$Forwarded".to_string(),
            'a'..='z' => match keywords.get((c as u8 - b'a') as usize) {
                Some(k) if !k.is_empty() => k.clone(),
                _ => continue, // a letter the keywords file does not define
            },
            _ => continue,
        };
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    (base.to_string(), flags)
}

/// `dovecot-keywords`: lines `N NAME`; the result is indexed by N.
pub fn parse_keywords(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((n, name)) = line.split_once(' ') else { continue };
        let Ok(n) = n.parse::<usize>() else { continue };
        if n < 26 && !name.is_empty() {
            if out.len() <= n {
                out.resize(n + 1, String::new());
            }
            out[n] = name.to_string();
        }
    }
    out
}

/// What `dovecot-uidlist` says.
#[derive(Debug, Default, PartialEq)]
pub struct UidList {
    pub uidvalidity: Option<u32>,
    pub next_uid: Option<u32>,
    /// File base name → UID.
    pub uids: HashMap<String, u32>,
}

pub fn parse_uidlist(text: &str) -> UidList {
    let mut lines = text.lines();
    let mut list = UidList::default();
    let Some(header) = lines.next() else { return list };
    let mut fields = header.split(' ');
    let version = fields.next().unwrap_or("");
    for f in fields {
        if let Some(v) = f.strip_prefix('V') {
            list.uidvalidity = v.parse().ok();
        } else if let Some(n) = f.strip_prefix('N') {
            list.next_uid = n.parse().ok();
        }
    }
    if version == "1" {
        // Version 1's header is `1 UIDVALIDITY NEXTUID`.
        let v: Vec<&str> = header.split(' ').collect();
        list.uidvalidity = v.get(1).and_then(|s| s.parse().ok());
        list.next_uid = v.get(2).and_then(|s| s.parse().ok());
    }
    for line in lines {
        let Some((uid, rest)) = line.split_once(' ') else { continue };
        let Ok(uid) = uid.parse::<u32>() else { continue };
        let base = match rest.rfind(" :").map(|i| &rest[i + 2..]).or_else(|| rest.strip_prefix(':')) {
            Some(b) => b,
            None => rest.rsplit(' ').next().unwrap_or(rest),
        };
        let base = base.split_once(":2,").map_or(base, |(b, _)| b);
        list.uids.insert(base.to_string(), uid);
    }
    list
}

/// Line ends as IMAP serves them: a bare LF becomes CRLF (Maildir files are usually stored
/// with LF), a CRLF stays.
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// A message worth storing: a header section that starts with a field. A file that is empty
/// or starts with anything else is reported and skipped.
pub fn looks_like_mail(raw: &[u8]) -> bool {
    let first = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    match first.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => first[..colon].iter().all(|&b| b.is_ascii_graphic()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(folder_name(".Sent").as_deref(), Some("Sent"));
        assert_eq!(folder_name(".Archive.2026").as_deref(), Some("Archive/2026"));
        assert_eq!(folder_name(".&AMk-t&AOk-").as_deref(), Some("&AMk-t&AOk-"));
        for not in ["cur", ".", "..", ".a..b", ".a."] {
            assert_eq!(folder_name(not), None, "{not}");
        }
    }

    #[test]
    fn flags_and_keywords_from_the_name() {
        let kw = parse_keywords("0 $Label1\n1 Work\n3 $Junk\n");
        assert_eq!(kw, ["$Label1", "Work", "", "$Junk"]);
        let (base, flags) = parse_name("1700000000.M1P2.host,S=120,W=123:2,FRSab", &kw);
        assert_eq!(base, "1700000000.M1P2.host,S=120,W=123");
        assert_eq!(flags, ["\\Flagged", "\\Answered", "\\Seen", "$Label1", "Work"]);
        assert_eq!(parse_name("x:2,Tc", &kw).1, ["\\Deleted"], "an undefined letter is dropped");
        assert_eq!(parse_name("1700000000.new", &kw), ("1700000000.new".into(), vec![]));
    }

    #[test]
    fn uidlist_versions() {
        let v3 = parse_uidlist("3 V1700000000 N5 G3085f01b7f11094c501100008c4a11c1\n1 :a.host\n3 W123 S120 :b.host\n4 :c.host:2,S\n");
        assert_eq!(v3.uidvalidity, Some(1_700_000_000));
        assert_eq!(v3.next_uid, Some(5));
        assert_eq!(v3.uids["a.host"], 1);
        assert_eq!(v3.uids["b.host"], 3);
        assert_eq!(v3.uids["c.host"], 4);
        let v1 = parse_uidlist("1 1234 7\n6 old.host\n");
        assert_eq!((v1.uidvalidity, v1.next_uid, v1.uids["old.host"]), (Some(1234), Some(7), 6));
        assert_eq!(parse_uidlist(""), UidList::default());
    }

    #[test]
    fn line_ends_and_sanity() {
        assert_eq!(to_crlf(b"A: b\nc\r\nd"), b"A: b\r\nc\r\nd");
        assert!(looks_like_mail(b"Return-Path: <a@b>\nSubject: x\n\nbody"));
        assert!(!looks_like_mail(b""));
        assert!(!looks_like_mail(b"just text\n"));
        assert!(!looks_like_mail(b": no name\n"));
    }
}
