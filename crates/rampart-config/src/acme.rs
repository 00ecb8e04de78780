//! `[acme]`: ordering certificates from an ACME CA (RFC 8555), Let's Encrypt by default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Acme {
        /// The CA's directory URL. Let's Encrypt's staging directory is
        /// "https://acme-staging-v02.api.letsencrypt.org/directory".
        pub directory: String = "https://acme-v02.api.letsencrypt.org/directory".into(),
        /// Contact addresses for the account, like ["mailto:postmaster@example.org"].
        pub contact: Vec<String> = Vec::new(),
        /// How the CA checks that a name is ours: "tls-alpn-01" (RFC 8737, answered on the
        /// https listener, which the CA reaches on port 443) or "http-01" (answered on the
        /// http listener at /.well-known/acme-challenge/, reached on port 80). tls-alpn-01
        /// needs tls.enforce_alpn = true (the default).
        pub challenge: String = "tls-alpn-01".into(),
        /// External account binding, for CAs that want one: the key id and the HMAC key
        /// (base64url) they gave you. Empty: none.
        pub eab_kid: String = String::new(),
        /// The HMAC key of `eab_kid`, base64url as the CA gives it.
        pub eab_hmac_key: String = String::new(),
        /// A PEM file with the root certificate of the CA's own HTTPS server, for a private or
        /// test CA. Empty: the system's roots.
        pub ca_roots: PathBuf = PathBuf::new(),
        /// Key type of ordered certificates: "ecdsa-p256" or "rsa-2048".
        pub key_type: String = "ecdsa-p256".into(),
        /// Names ordered at start and kept renewed (besides `[[tls.sni]]` entries with
        /// `acme = true`, and server.hostname when `tls.acme = true`). Renewal starts when two
        /// thirds of a certificate's lifetime have passed; failures are retried with backoff
        /// and the current certificate stays in use until the new one is stored.
        pub hosts: Vec<String> = Vec::new(),
    }
}

impl Acme {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if !self.directory.starts_with("https://") {
            p.add("acme.directory", "must be an https:// URL");
        }
        if !matches!(self.challenge.as_str(), "tls-alpn-01" | "http-01") {
            p.add("acme.challenge", format!("`{}` is neither tls-alpn-01 nor http-01", self.challenge));
        }
        if !matches!(self.key_type.as_str(), "ecdsa-p256" | "rsa-2048") {
            p.add("acme.key_type", format!("`{}` is neither ecdsa-p256 nor rsa-2048", self.key_type));
        }
        if self.eab_kid.is_empty() != self.eab_hmac_key.is_empty() {
            p.add("acme.eab_kid", "eab_kid and eab_hmac_key go together");
        }
        for c in &self.contact {
            if !c.starts_with("mailto:") {
                p.add("acme.contact", format!("`{c}` is not a mailto: URI"));
            }
        }
        for h in &self.hosts {
            if !crate::is_hostname(h) {
                p.add("acme.hosts", format!("`{h}` is not a host name"));
            }
        }
        if !self.ca_roots.as_os_str().is_empty() {
            p.file_exists("acme.ca_roots", &self.ca_roots);
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if !self.ca_roots.as_os_str().is_empty() {
            fix(&mut self.ca_roots);
        }
    }
}
