//! Milter macros: named values the MTA sends before a command (`SMFIC_MACRO`), such as `j` (our
//! host name), `i` (the queue id) or `{auth_authen}` (the authenticated user).
//!
//! The caller keeps one [`Macros`] per SMTP connection, shared by all its milters, and sets each
//! value when it becomes known; each session sends, before each command, the values of the
//! names that stage asks for — [`default_names`] (Postfix's defaults plus the client address),
//! or the list a filter sent in its OPTNEG answer (`smfi_setsymlist`). A name not set is not
//! sent. `{mail_addr}` and `{rcpt_addr}` are filled in by the session from MAIL and RCPT.

use std::collections::BTreeMap;

use super::codec::MacroStage;

/// Macro values by name. Names are kept as milters write them: one letter bare (`j`, `i`),
/// longer names in braces (`{daemon_name}`); `set("daemon_name", ..)` adds the braces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Macros {
    values: BTreeMap<String, String>,
}

impl Macros {
    pub fn new() -> Self {
        Macros::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(canonical(name), value.into());
        self
    }

    pub fn remove(&mut self, name: &str) {
        self.values.remove(&canonical(name));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&canonical(name)).map(String::as_str)
    }
}

/// `x` stays `x`, `{x}` stays, `long` becomes `{long}` — the form sendmail's `macid` reads.
pub fn canonical(name: &str) -> String {
    if name.chars().count() <= 1 || (name.starts_with('{') && name.ends_with('}')) {
        name.to_string()
    } else {
        format!("{{{name}}}")
    }
}

/// What each stage sends unless the filter asked for other names: Postfix's `milter_*_macros`
/// defaults, plus `{client_addr}`/`{client_name}`/`{client_port}` at connect, which most
/// filters read.
pub fn default_names(stage: MacroStage) -> &'static [&'static str] {
    match stage {
        MacroStage::Connect => &["j", "{daemon_name}", "{daemon_addr}", "v", "_", "{client_addr}", "{client_name}", "{client_port}"],
        MacroStage::Helo => &["{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"],
        MacroStage::Mail => &["i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"],
        MacroStage::Rcpt => &["{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"],
        MacroStage::Data | MacroStage::Eoh | MacroStage::Eom => &["i"],
    }
}

/// The names to send at each stage, indexed by [`MacroStage`].
#[derive(Debug, Clone)]
pub(crate) struct Wanted([Vec<String>; 7]);

impl Default for Wanted {
    fn default() -> Self {
        Wanted(MacroStage::ALL.map(|s| default_names(s).iter().map(|n| n.to_string()).collect()))
    }
}

impl Wanted {
    /// A filter's own list for a stage replaces ours (as in sendmail).
    pub(crate) fn replace(&mut self, stage: MacroStage, names: &[String]) {
        self.0[stage as usize] = names.iter().map(|n| canonical(n)).collect();
    }

    /// The (name, value) pairs to send at `stage`; `extra` are values the session knows
    /// (`{mail_addr}`, `{rcpt_addr}`), used where the caller set no value.
    pub(crate) fn pairs<'a>(&'a self, stage: MacroStage, macros: &'a Macros, extra: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        self.0[stage as usize]
            .iter()
            .filter_map(|name| {
                let value = macros.values.get(name).map(String::as_str);
                let value = value.or_else(|| extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v));
                value.map(|v| (name.as_str(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_and_stages_send_what_is_set() {
        let mut m = Macros::new();
        m.set("j", "mx.example.org").set("daemon_name", "smtp").set("{auth_authen}", "bob").set("i", "4Q2M");
        assert_eq!(m.get("{daemon_name}"), Some("smtp"));
        assert_eq!(m.get("auth_authen"), Some("bob"));
        let w = Wanted::default();
        assert_eq!(w.pairs(MacroStage::Connect, &m, &[]), vec![("j", "mx.example.org"), ("{daemon_name}", "smtp")]);
        let extra = [("{mail_addr}", "a@example.net")];
        assert_eq!(
            w.pairs(MacroStage::Mail, &m, &extra),
            vec![("i", "4Q2M"), ("{auth_authen}", "bob"), ("{mail_addr}", "a@example.net")]
        );
        assert!(w.pairs(MacroStage::Helo, &m, &[]).is_empty());
        m.remove("i");
        assert!(w.pairs(MacroStage::Eom, &m, &[]).is_empty());
    }

    #[test]
    fn a_filters_symbol_list_replaces_the_default() {
        let mut m = Macros::new();
        m.set("j", "mx").set("{client_addr}", "192.0.2.1");
        let mut w = Wanted::default();
        w.replace(MacroStage::Connect, &["client_addr".to_string()]);
        assert_eq!(w.pairs(MacroStage::Connect, &m, &[]), vec![("{client_addr}", "192.0.2.1")]);
    }
}
