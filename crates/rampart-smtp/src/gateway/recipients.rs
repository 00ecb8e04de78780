//! Known recipients of a gateway route, from its `valid_recipients` list and its
//! `recipients_file`: addresses and `*@domain` wildcards, compared without case. The file is
//! read again when its modification time or size changes (checked at each lookup: one stat).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::{info, warn};

/// Addresses and wildcard domains, lowercased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Patterns {
    addresses: HashSet<String>,
    /// Domains of `*@domain` entries, without a trailing dot.
    domains: HashSet<String>,
}

impl Patterns {
    /// Entries one per item; blank items and `#` comments (whole lines or after an entry)
    /// are skipped.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Patterns {
        let mut p = Patterns::default();
        for entry in entries {
            let entry = entry.split('#').next().unwrap_or_default().trim().to_lowercase();
            if entry.is_empty() {
                continue;
            }
            match entry.strip_prefix("*@") {
                Some(domain) => p.domains.insert(domain.trim_end_matches('.').to_string()),
                None => p.addresses.insert(entry.trim_end_matches('.').to_string()),
            };
        }
        p
    }

    pub fn len(&self) -> usize {
        self.addresses.len() + self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `address` (lowercase, `local@domain`) is known: itself, its address without
    /// the sub-address (`base`), or its domain by a wildcard.
    pub fn matches(&self, address: &str, base: Option<&str>) -> bool {
        if self.addresses.contains(address) || base.is_some_and(|b| self.addresses.contains(b)) {
            return true;
        }
        address.rsplit_once('@').is_some_and(|(_, d)| self.domains.contains(d))
    }
}

/// The file's identity for "has it changed": modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// A recipients file and what was last read from it.
#[derive(Debug)]
pub struct RecipientsFile {
    path: PathBuf,
    loaded: Mutex<Option<(Stamp, Arc<Patterns>)>>,
}

impl RecipientsFile {
    pub fn new(path: PathBuf) -> RecipientsFile {
        RecipientsFile { path, loaded: Mutex::new(None) }
    }

    /// The file's entries, read again if it changed. When it cannot be read, the entries read
    /// before stay in use (logged); with none read yet, the error.
    pub fn current(&self) -> Result<Arc<Patterns>, String> {
        let mut loaded = self.loaded.lock().expect("recipients file lock");
        let stamp = std::fs::metadata(&self.path).map(|m| (m.modified().ok(), m.len()));
        if let (Ok(stamp), Some((seen, patterns))) = (&stamp, loaded.as_ref())
            && stamp == seen
        {
            return Ok(patterns.clone());
        }
        let read = stamp.and_then(|stamp| Ok((stamp, std::fs::read_to_string(&self.path)?)));
        match read {
            Ok((stamp, text)) => {
                let patterns = Arc::new(Patterns::parse(text.lines()));
                info!(event = "gateway_recipients_loaded", path = %self.path.display(), entries = patterns.len());
                *loaded = Some((stamp, patterns.clone()));
                Ok(patterns)
            }
            Err(e) => {
                let why = format!("{}: {e}", self.path.display());
                match loaded.as_mut() {
                    Some((seen, patterns)) => {
                        // Logged once per failure, not per recipient: the stamp now says "unreadable".
                        if seen.0.is_some() {
                            warn!(event = "gateway_recipients_unreadable", path = %self.path.display(), error = %e, using = "previous entries");
                            *seen = (None, 0);
                        }
                        Ok(patterns.clone())
                    }
                    None => Err(why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_wildcards() {
        let p = Patterns::parse(["Bob@Corp.test", "  # a comment", "", "*@sales.corp.test.", "carol@corp.test # trailing"]);
        assert_eq!(p.len(), 3);
        assert!(p.matches("bob@corp.test", None));
        assert!(p.matches("carol@corp.test", None));
        assert!(p.matches("bob+news@corp.test", Some("bob@corp.test")));
        assert!(p.matches("anyone@sales.corp.test", None));
        assert!(!p.matches("dave@corp.test", None));
        assert!(!p.matches("anyone@other.sales.corp.test", None));
        assert!(!p.matches("bob@corp.test.evil", None));
        assert!(Patterns::parse([]).is_empty());
    }

    #[test]
    fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rcpts.txt");
        let file = RecipientsFile::new(path.clone());
        assert!(file.current().is_err(), "no file and nothing read yet");
        std::fs::write(&path, "a@corp.test\n").unwrap();
        assert!(file.current().unwrap().matches("a@corp.test", None));
        // A different size is a change even within the file system's time resolution.
        std::fs::write(&path, "a@corp.test\nbb@corp.test\n").unwrap();
        let now = file.current().unwrap();
        assert!(now.matches("bb@corp.test", None) && now.len() == 2);
        // Gone: the last entries stay in use.
        std::fs::remove_file(&path).unwrap();
        assert!(file.current().unwrap().matches("bb@corp.test", None));
        assert!(file.current().unwrap().matches("a@corp.test", None));
        std::fs::write(&path, "c@corp.test\n").unwrap();
        let back = file.current().unwrap();
        assert!(back.matches("c@corp.test", None) && !back.matches("a@corp.test", None));
    }
}
