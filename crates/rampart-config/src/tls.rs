//! `[tls]`: the certificates served to clients, chosen by SNI.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::is_hostname;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tls {
        /// Certificate chain (PEM) served to clients that ask for no other name.
        /// `rampart init` wrote a self-signed certificate; replace it with one from a public CA.
        pub cert: PathBuf = "tls/cert.pem".into(),
        /// Private key (PEM: PKCS#8, SEC1 or PKCS#1) of `cert`.
        pub key: PathBuf = "tls/key.pem".into(),
        /// More certificates chosen by SNI, one table per host name ("*.example.org" matches one
        /// label). None by default; to add some, replace `sni = []` with tables like this one:
        ///   [[tls.sni]]
        ///   hostname = "mail.example.org"
        ///   cert = "tls/mail.example.org.pem"
        ///   key = "tls/mail.example.org.key"
        pub sni: Vec<SniCert> = Vec::new(),
        /// When a client offers ALPN (RFC 7301), accept only the listener's own protocol
        /// ("smtp" or "imap") and refuse the handshake otherwise: a web client sent to a mail
        /// port by an attacker cannot then be served (the ALPACA cross-protocol attack, RFC 9325
        /// §3.4). Clients that offer no ALPN, as most mail clients, are unaffected.
        pub enforce_alpn: bool = true,
        /// Refuse handshakes whose SNI names a host no certificate here is for. Off by default:
        /// clients that connect by an address or another name of the host would be refused.
        /// Reloaded by SIGHUP with the certificates.
        pub refuse_unknown_sni: bool = false,
        /// Order the certificate for server.hostname from the `[acme]` CA and keep it renewed;
        /// it replaces `cert` once issued (cert stays the fallback).
        pub acme: bool = false,
    }
}

/// A certificate served when the client asks for `hostname`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    pub hostname: String,
    /// Files of the certificate; left out with `acme = true`.
    #[serde(default)]
    pub cert: PathBuf,
    #[serde(default)]
    pub key: PathBuf,
    /// Order this host's certificate from the `[acme]` CA and keep it renewed.
    #[serde(default)]
    pub acme: bool,
}

impl SniCert {
    /// Whether the entry names files (an ACME-only entry does not).
    pub fn has_files(&self) -> bool {
        !self.cert.as_os_str().is_empty() || !self.key.as_os_str().is_empty()
    }
}

impl Tls {
    pub(crate) fn validate(&self, p: &mut Problems) {
        p.file_exists("tls.cert", &self.cert);
        p.file_exists("tls.key", &self.key);
        for (i, sni) in self.sni.iter().enumerate() {
            if !is_hostname(sni.hostname.trim_start_matches("*.")) {
                p.add(format!("tls.sni[{i}].hostname"), format!("`{}` is not a host name", sni.hostname));
            }
            if sni.acme && !sni.has_files() {
                continue;
            }
            p.file_exists(format!("tls.sni[{i}].cert"), &sni.cert);
            p.file_exists(format!("tls.sni[{i}].key"), &sni.key);
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        fix(&mut self.cert);
        fix(&mut self.key);
        for sni in self.sni.iter_mut().filter(|s| s.has_files()) {
            fix(&mut sni.cert);
            fix(&mut sni.key);
        }
    }
}
