//! Certificates from the store joining the configured ones, per listener and per host, and
//! the listener's rustls configuration with its ALPN rules (`acme-tls/1` included).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

use crate::{AlpnGate, CertSet, CertStore, TlsError, certs, provider};

/// The ALPN protocol of TLS-ALPN-01 challenges (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A certificate from the store with where it is used.
#[derive(Clone)]
pub struct StoredPair {
    pub id: i64,
    pub chain_pem: String,
    pub key_pem: String,
    /// The names the certificate is for (its SANs).
    pub names: Vec<String>,
    /// Hosts it is assigned to (SNI names).
    pub hosts: Vec<String>,
    /// Listeners it is the default of.
    pub listeners: Vec<String>,
}

impl std::fmt::Debug for StoredPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredPair({} {:?})", self.id, self.names)
    }
}

pub(crate) fn offers_acme(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
}

/// ECDSA first, so a client offering both gets the ECDSA certificate.
fn ecdsa_first(list: &mut [Arc<CertifiedKey>]) {
    list.sort_by_key(|c| c.key.algorithm() != rustls::SignatureAlgorithm::ECDSA);
}

impl CertSet {
    /// The configured certificates with the store's: a stored certificate assigned to a host
    /// comes before a `[[tls.sni]]` file for it. Stored entries that cannot be used (a key
    /// that does not fit) are left out and returned with their error, so one bad entry does not
    /// take the others down.
    pub fn with_stored(config: &rampart_config::Tls, stored: &[StoredPair]) -> Result<(CertSet, Vec<(i64, TlsError)>), TlsError> {
        let mut set = CertSet::load(config)?;
        let mut bad = Vec::new();
        let mut hosts: HashMap<String, Vec<Arc<CertifiedKey>>> = HashMap::new();
        for entry in stored {
            let key = match certs::certified_key(&entry.chain_pem, &entry.key_pem) {
                Ok(k) => Arc::new(k),
                Err(e) => {
                    bad.push((entry.id, e));
                    continue;
                }
            };
            for host in &entry.hosts {
                hosts.entry(host.to_ascii_lowercase()).or_default().push(key.clone());
            }
            for listener in &entry.listeners {
                set.listeners.entry(listener.clone()).or_default().push(key.clone());
            }
            for name in &entry.names {
                set.covering.entry(name.to_ascii_lowercase()).or_default().push(key.clone());
            }
        }
        for (host, mut list) in hosts {
            if let Some(configured) = set.by_name.remove(&host) {
                list.extend(configured);
            }
            set.by_name.insert(host, list);
        }
        for list in set.by_name.values_mut().chain(set.listeners.values_mut()).chain(set.covering.values_mut()) {
            ecdsa_first(list);
        }
        Ok((set, bad))
    }
}

/// The server configuration of one listener: its own default certificate (from the store)
/// when it has one, else the server's. `alpn` as for [`crate::server_config`]; with it,
/// `acme-tls/1` is accepted (and negotiated) too, for TLS-ALPN-01 validation.
pub fn listener_config(certs: Arc<CertStore>, listener: Option<&str>, alpn: Option<&str>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth();
    let gate = AlpnGate { certs, protocol: alpn.map(|id| id.as_bytes().to_vec()), listener: listener.map(str::to_string) };
    let mut config = builder.with_cert_resolver(Arc::new(gate));
    config.ignore_client_order = true;
    if let Some(id) = alpn {
        config.alpn_protocols.push(id.as_bytes().to_vec());
        // Last, so an ordinary client offering both never gets it. Only beside the listener's
        // own id: rustls refuses a client whose ALPN list shares nothing with a non-empty
        // server list, so without enforce_alpn (no list) it would refuse every ALPN client.
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{KeyType, self_signed_for};
    use rustls::SignatureScheme;

    fn pair(id: i64, name: &str, kind: KeyType, hosts: &[&str], listeners: &[&str]) -> StoredPair {
        let (chain_pem, key_pem) = self_signed_for(&[name.to_string()], kind, 30).unwrap();
        StoredPair {
            id,
            chain_pem,
            key_pem,
            names: vec![name.to_string()],
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            listeners: listeners.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn stored_hosts_listeners_and_key_types() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = crate::self_signed("mx.example.test").unwrap();
        std::fs::write(dir.path().join("c.pem"), c).unwrap();
        std::fs::write(dir.path().join("k.pem"), k).unwrap();
        let config = rampart_config::Tls { cert: dir.path().join("c.pem"), key: dir.path().join("k.pem"), ..Default::default() };
        let mut broken = pair(9, "broken.test", KeyType::EcdsaP256, &["broken.test"], &[]);
        broken.key_pem = pair(10, "x.test", KeyType::EcdsaP256, &[], &[]).key_pem;
        let stored = [
            pair(1, "mail.example.test", KeyType::Rsa2048, &["mail.example.test"], &[]),
            pair(2, "mail.example.test", KeyType::EcdsaP256, &["mail.example.test"], &[]),
            pair(3, "submit.example.test", KeyType::EcdsaP256, &[], &["submissions"]),
            pair(4, "other.example.test", KeyType::EcdsaP256, &[], &[]),
            broken,
        ];
        let (set, bad) = CertSet::with_stored(&config, &stored).unwrap();
        assert_eq!(bad.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [9]);
        let ecdsa = [SignatureScheme::ECDSA_NISTP256_SHA256, SignatureScheme::RSA_PSS_SHA256];
        let rsa_only = [SignatureScheme::RSA_PSS_SHA256, SignatureScheme::RSA_PKCS1_SHA256];
        let alg = |name, listener, schemes: &[SignatureScheme]| set.pick_for(name, listener, schemes).unwrap().key.algorithm();
        assert_eq!(alg(Some("mail.example.test"), None, &ecdsa), rustls::SignatureAlgorithm::ECDSA);
        assert_eq!(alg(Some("mail.example.test"), None, &rsa_only), rustls::SignatureAlgorithm::RSA);
        // A listener's own default; a stored certificate covering a name; the server default.
        let submit = set.pick_for(None, Some("submissions"), &ecdsa).unwrap();
        assert!(Arc::ptr_eq(&submit, &set.listeners["submissions"][0]));
        let other = set.pick_for(Some("other.example.test"), Some("smtp"), &ecdsa).unwrap();
        assert!(Arc::ptr_eq(&other, &set.covering["other.example.test"][0]));
        assert!(Arc::ptr_eq(&set.pick_for(Some("unknown.test"), Some("smtp"), &ecdsa).unwrap(), &set.default));
    }
}
