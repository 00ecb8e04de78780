//! The config file `rampart init` writes: every key with its default and why.
//!
//! Nothing here is written twice: the values are `Config::default()` serialized, the comments
//! are the `///` docs of each key as declared with [`section!`](crate::section). Each
//! `[section]` header is followed by `# ` comment lines and `key = value` lines (tests and users
//! edit the file by that shape). A key whose default is "none" (an `Option`) is shown only in
//! its comment; a struct used by several tables (the listeners) is documented at its first.

use crate::section::{Key, Section};
use crate::{Config, Guard, ImapListener, Listeners, MetricsListener, SmtpListener};

const HEADER: &str = "\
# Rampart configuration. Every key is shown with its default value.
# Relative paths are relative to the directory of this file.
# Check a change with:  rampart config check --config rampart.toml
# Override a key at start with:  rampart serve --set 'listener.smtp.bind=[\"127.0.0.1:2525\"]'
# SIGHUP to `rampart serve` re-reads this file for the [tls] certificates, every [guard] key,
# the listeners' allow and deny lists and every [web] key, without dropping connections; a file with an error
# is refused whole and the running settings stay. Every other key takes effect at the next start.
";

/// The documented configuration for a server called `hostname`.
pub fn template(hostname: &str) -> String {
    let mut config = Config::default();
    config.server.hostname = hostname.to_string();
    let mut out = Renderer { text: HEADER.to_string(), documented: Vec::new() };
    out.table("", &config.to_toml());
    out.text
}

/// The declared keys of the table at `path`, and the struct they belong to; `None` for a map
/// whose keys are data (`submission.allowed_senders`).
pub(crate) fn keys_of(path: &str) -> Option<(&'static str, &'static [Key])> {
    Some(match path {
        "" => ("Config", Config::KEYS),
        "server" => ("Server", crate::Server::KEYS),
        "tls" => ("Tls", crate::Tls::KEYS),
        "acme" => ("Acme", crate::Acme::KEYS),
        "listener" => ("Listeners", Listeners::KEYS),
        "listener.smtp" | "listener.submission" | "listener.submissions" => ("SmtpListener", SmtpListener::KEYS),
        "listener.imap" | "listener.imaps" => ("ImapListener", ImapListener::KEYS),
        "listener.https" | "listener.http" => ("WebListener", crate::WebListener::KEYS),
        "listener.metrics" => ("MetricsListener", MetricsListener::KEYS),
        "guard" => ("Guard", Guard::KEYS),
        "smtp" => ("Smtp", crate::Smtp::KEYS),
        "auth" => ("Auth", crate::Auth::KEYS),
        "submission" => ("Submission", crate::Submission::KEYS),
        "quota" => ("Quota", crate::Quota::KEYS),
        "containment" => ("Containment", crate::Containment::KEYS),
        "queue" => ("Queue", crate::Queue::KEYS),
        "store" => ("Store", crate::Store::KEYS),
        "store.encryption" => ("Encryption", crate::Encryption::KEYS),
        "cluster" => ("Cluster", crate::Cluster::KEYS),
        "dns" => ("Dns", crate::Dns::KEYS),
        "auth_checks" => ("AuthChecks", crate::AuthChecks::KEYS),
        "dkim" => ("Dkim", crate::Dkim::KEYS),
        "dmarc" => ("Dmarc", crate::Dmarc::KEYS),
        "log" => ("Log", crate::Log::KEYS),
        "web" => ("Web", crate::Web::KEYS),
        "filter" => ("Filter", crate::Filter::KEYS),
        "limits" => ("Limits", crate::Limits::KEYS),
        "filter.spam" => ("Spam", crate::Spam::KEYS),
        "filter.greylist" => ("Greylist", crate::Greylist::KEYS),
        "filter.quarantine" => ("Quarantine", crate::Quarantine::KEYS),
        "filter.antivirus" => ("Antivirus", crate::Antivirus::KEYS),
        "gateway" => ("Gateway", crate::Gateway::KEYS),
        "mta_sts" => ("MtaSts", crate::MtaSts::KEYS),
        "tlsrpt" => ("TlsRpt", crate::TlsRpt::KEYS),
        _ => return None,
    })
}

struct Renderer {
    text: String,
    /// Structs whose keys were documented already.
    documented: Vec<&'static str>,
}

impl Renderer {
    /// Writes the table at `path`: its header (when it has keys of its own, or none at all),
    /// its keys, then its sub-tables, each after its own doc (TOML wants sub-tables last).
    fn table(&mut self, path: &str, table: &toml::Table) {
        let has_values = table.values().any(|v| !v.is_table());
        if !path.is_empty() && (has_values || table.is_empty()) {
            self.text.push_str(&format!("[{path}]\n"));
        }
        let Some((name, keys)) = keys_of(path) else {
            // A map: its entries as they are.
            for (k, v) in table {
                self.text.push_str(&format!("{} = {v}\n", crate::quoted_key(k)));
            }
            return;
        };
        let first = !self.documented.contains(&name);
        self.documented.push(name);
        for key in keys {
            match table.get(key.name) {
                Some(toml::Value::Table(_)) => {}
                Some(value) => {
                    if first {
                        self.comment(key.doc);
                    }
                    self.text.push_str(&format!("{} = {value}\n", key.name));
                }
                // No value: the default is "none", and the doc shows how to set one.
                None if first => self.comment(key.doc),
                None => {}
            }
        }
        for key in keys {
            if let Some(toml::Value::Table(sub)) = table.get(key.name) {
                let sub_path = if path.is_empty() { key.name.to_string() } else { format!("{path}.{}", key.name) };
                self.text.push('\n');
                self.comment(key.doc);
                self.table(&sub_path, sub);
            }
        }
    }

    /// `///` lines as `# ` comment lines.
    fn comment(&mut self, doc: &str) {
        for line in doc.lines() {
            let line = line.strip_prefix(' ').unwrap_or(line);
            if line.is_empty() {
                self.text.push_str("#\n");
            } else {
                self.text.push_str(&format!("# {line}\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn rendered() -> String {
        template("mx.example.test")
    }

    #[test]
    fn template_parses_to_the_defaults() {
        let c = Config::from_toml(&rendered(), &[], Path::new("/etc/rampart")).unwrap();
        let mut expected = Config::default();
        expected.server.hostname = "mx.example.test".into();
        expected.resolve_paths(Path::new("/etc/rampart"));
        assert_eq!(c, expected);
    }

    /// The lines of `[section]` in the template, up to the next header.
    fn section_lines<'a>(text: &'a str, section: &str) -> Vec<&'a str> {
        let header = format!("[{section}]");
        text.lines()
            .skip_while(|l| l.trim() != header)
            .skip(1)
            .take_while(|l| !(l.starts_with('[') && l.ends_with(']')))
            .collect()
    }

    /// Walks every table of the default config and checks that each of its keys is declared,
    /// documented, and written in the template under its section: `key = value`, or for a
    /// default of "none" `# key = ...` in its comment, or a `[section.key]` header.
    #[test]
    fn every_key_is_in_the_template_with_its_docs() {
        let text = rendered();
        let mut config = Config::default();
        config.server.hostname = "mx.example.test".into();
        let mut tables = vec![(String::new(), config.to_toml())];
        let mut checked = 0;
        while let Some((path, table)) = tables.pop() {
            let Some((name, keys)) = keys_of(&path) else {
                assert_eq!(path, "submission.allowed_senders", "table {path} has no declared keys");
                continue;
            };
            let declared: Vec<&str> = keys.iter().map(|k| k.name).collect();
            for k in table.keys() {
                assert!(declared.contains(&k.as_str()), "{path}.{k} is serialized but not declared in {name}");
            }
            let lines = section_lines(&text, &path);
            for key in keys {
                assert!(!key.doc.trim().is_empty(), "{name}.{} has no documentation", key.name);
                let full = if path.is_empty() { key.name.to_string() } else { format!("{path}.{}", key.name) };
                match table.get(key.name) {
                    Some(toml::Value::Table(sub)) => tables.push((full, sub.clone())),
                    Some(value) => {
                        let line = format!("{} = {value}", key.name);
                        assert!(lines.contains(&line.as_str()), "`{line}` missing under [{path}]");
                    }
                    None => {
                        let commented = format!("{} = ", key.name);
                        let shown = text.lines().any(|l| l.strip_prefix('#').is_some_and(|l| l.trim_start().starts_with(&commented)));
                        assert!(shown, "{full} is not shown");
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 150, "only {checked} keys checked");
    }

    #[test]
    fn the_shape_tests_and_users_rely_on() {
        let text = rendered();
        for line in ["[server]", "hostname = \"mx.example.test\"", "[listener.smtp]", "[listener.submissions]",
            "[listener.imaps]", "[listener.metrics]", "[submission.allowed_senders]", "[guard]",
            "max_ban_time = \"7days\"", "known_login_ttl = \"90days\"", "pregreet_wait = \"3s\"",
            "retry_schedule = [\"5m\", \"10m\", \"30m\", \"1h\", \"2h\", \"4h\"]"]
        {
            assert!(text.lines().any(|l| l == line), "{line}");
        }
        // The listener keys are explained once, at [listener.smtp] and [listener.imap].
        let smtp = section_lines(&text, "listener.smtp");
        assert!(smtp.iter().any(|l| l.starts_with("# Hold the greeting")));
        let submission = section_lines(&text, "listener.submission");
        assert!(!submission.iter().any(|l| l.starts_with("# Hold the greeting")));
        assert!(!text.contains("@HOSTNAME@") && !text.contains("months"));
    }

    /// Writes the rendered template to $RAMPART_TEMPLATE_OUT, to read it whole.
    #[test]
    fn write_for_review() {
        if let Some(path) = std::env::var_os("RAMPART_TEMPLATE_OUT") {
            std::fs::write(path, rendered()).unwrap();
        }
    }

    #[test]
    fn reloadable_keys_say_so() {
        let text = rendered();
        assert!(text.contains("SIGHUP reloads every key of this section"));
        assert!(section_lines(&text, "listener.smtp").iter().any(|l| l.contains("Reloaded by SIGHUP")));
    }
}
