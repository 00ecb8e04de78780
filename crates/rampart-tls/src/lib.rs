//! TLS for every Rampart listener.
//!
//! - One rustls [`ServerConfig`] (ring provider) per protocol: TLS 1.2 and 1.3 only,
//!   forward-secret ECDHE suites only, the server's suite order wins; a client offering ALPN
//!   must offer the listener's protocol (ALPACA, RFC 9325 §3.4).
//! - Certificates come from PEM files named in `[tls]`; [`CertStore`] picks one by SNI and can
//!   be reloaded (SIGHUP) without touching connections already established: a handshake reads
//!   the certificate set once, new handshakes see the new set.
//! - Certificates from the store ([`StoredPair`]) join them: assigned to a host (served for its
//!   SNI, ECDSA and RSA side by side, chosen by the client's signature schemes), to a listener
//!   (that listener's default), or merely covering a name (served for it when nothing else
//!   is). The binary rebuilds the set when the store changes and on SIGHUP.
//! - ACME TLS-ALPN-01 (RFC 8737): a client offering `acme-tls/1` gets the challenge
//!   certificate of its SNI name, if an order is waiting for one ([`CertStore::set_challenge`]).
//! - [`self_signed`] makes the certificate `rampart init` starts with; [`certs`] makes keys,
//!   self-signed certificates and CSRs and reads certificates; [`acme`] orders them.
#![forbid(unsafe_code)]

pub mod acme;
pub mod admin;
pub use instant_acme::Account as AcmeAccount;
pub mod certs;
mod sni;

pub use sni::{ACME_TLS_ALPN, StoredPair, listener_config};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::server::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {path}: {message}")]
    File { key: String, path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("key generation: {0}")]
    Key(String),
    #[error("{0}")]
    Parse(String),
}

/// The ring provider restricted to forward-secret suites. rustls offers no static-RSA or
/// CBC suites at all; the filter states the policy rather than relying on that.
pub fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(is_forward_secret);
    provider
}

fn is_forward_secret(suite: &SupportedCipherSuite) -> bool {
    match suite {
        // Every TLS 1.3 key exchange is ephemeral (RFC 8446 §2).
        SupportedCipherSuite::Tls13(_) => true,
        SupportedCipherSuite::Tls12(s) => format!("{:?}", s.common.suite).starts_with("TLS_ECDHE_"),
    }
}

/// The certificates a server presents: one default and any number chosen by SNI.
#[derive(Debug)]
pub struct CertSet {
    default: Arc<CertifiedKey>,
    /// SNI names → certificates for them (ECDSA and RSA side by side, the store's first).
    by_name: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Listener name → its own default (assigned in the store).
    listeners: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// Stored certificates not assigned to a host, by the names they cover: served for those
    /// names when no assignment or `[[tls.sni]]` entry names them.
    covering: HashMap<String, Vec<Arc<CertifiedKey>>>,
    /// `tls.refuse_unknown_sni`: no certificate for a name the client asks for is a refusal.
    refuse_unknown: bool,
}

impl CertSet {
    /// Loads every certificate named in `[tls]`; errors name the config key and file.
    pub fn load(config: &rampart_config::Tls) -> Result<CertSet, TlsError> {
        let provider = provider();
        let default = load_pair(&provider, "tls", &config.cert, &config.key)?;
        let mut by_name = HashMap::new();
        for (i, sni) in config.sni.iter().enumerate().filter(|(_, s)| s.has_files()) {
            let key = format!("tls.sni[{i}]");
            let pair = load_pair(&provider, &key, &sni.cert, &sni.key)?;
            by_name.entry(sni.hostname.to_ascii_lowercase()).or_insert_with(Vec::new).push(pair);
        }
        Ok(CertSet {
            default,
            by_name,
            listeners: HashMap::new(),
            covering: HashMap::new(),
            refuse_unknown: config.refuse_unknown_sni,
        })
    }

    /// The certificate for a handshake: by SNI (exact, then a one-label wildcard, RFC 6125
    /// §6.4.3), then the listener's own default, then the server's. Among certificates for
    /// the same name, the first whose key can sign with a scheme the client offers.
    fn pick_for(&self, server_name: Option<&str>, listener: Option<&str>, schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let fallback = || listener.and_then(|l| self.listeners.get(l)).map_or_else(|| self.default.clone(), |c| choose(c, schemes));
        let Some(name) = server_name.map(str::to_ascii_lowercase) else { return Some(fallback()) };
        let wildcard = name.split_once('.').map(|(_, parent)| format!("*.{parent}"));
        for table in [&self.by_name, &self.covering] {
            if let Some(found) = table.get(&name).or_else(|| wildcard.as_ref().and_then(|w| table.get(w))) {
                return Some(choose(found, schemes));
            }
        }
        let chosen = fallback();
        if self.refuse_unknown && !covers(&chosen, &name) && !covers(&self.default, &name) {
            return None;
        }
        Some(chosen)
    }

    #[cfg(test)]
    fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.pick_for(server_name, None, &[])
    }
}

/// The first certificate whose key signs with a scheme the client offers (ECDSA comes first
/// in every list, so clients that can take it get the smaller, faster one); the first when
/// none does or the client said nothing.
fn choose(candidates: &[Arc<CertifiedKey>], schemes: &[rustls::SignatureScheme]) -> Arc<CertifiedKey> {
    candidates
        .iter()
        .find(|c| schemes.is_empty() || c.key.choose_scheme(schemes).is_some())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Whether the certificate is valid for `name` (its SANs, by webpki's rules).
fn covers(key: &CertifiedKey, name: &str) -> bool {
    let Some(der) = key.cert.first() else { return false };
    let Ok(cert) = webpki::EndEntityCert::try_from(der) else { return false };
    let Ok(name) = rustls_pki_types::ServerName::try_from(name) else { return false };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

fn load_pair(provider: &CryptoProvider, key: &str, cert: &Path, private: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_err = |k: &str, path: &Path, message: String| TlsError::File { key: format!("{key}.{k}"), path: path.into(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("cert", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err("cert", cert, "no PEM certificate in the file".into()));
    }
    let der = PrivateKeyDer::from_pem_file(private).map_err(|e| file_err("key", private, e.to_string()))?;
    let pair = CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| file_err("key", private, format!("does not fit the certificate: {e}")))?;
    Ok(Arc::new(pair))
}

/// Picks certificates by SNI from a set that can be swapped while the server runs.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertSet>>,
    /// TLS-ALPN-01 challenge certificates by the name being validated.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    pub fn new(set: CertSet) -> Arc<CertStore> {
        Arc::new(CertStore { current: RwLock::new(Arc::new(set)), challenges: RwLock::new(HashMap::new()) })
    }

    /// Replaces the certificates for new handshakes.
    pub fn replace(&self, set: CertSet) {
        *self.current.write().expect("cert lock") = Arc::new(set);
    }

    /// Serves `key` to `acme-tls/1` handshakes for `name` (None: stops).
    pub fn set_challenge(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let mut map = self.challenges.write().expect("challenge lock");
        match key {
            Some(k) => map.insert(name.to_ascii_lowercase(), k),
            None => map.remove(&name.to_ascii_lowercase()),
        };
    }

    fn challenge(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.challenges.read().expect("challenge lock").get(&name).cloned()
    }

    pub(crate) fn resolve_for(&self, hello: &ClientHello<'_>, listener: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if sni::offers_acme(hello) {
            // RFC 8737 §3: only the challenge certificate answers this protocol.
            return self.challenge(hello);
        }
        let set = self.current.read().expect("cert lock").clone();
        set.pick_for(hello.server_name(), listener, hello.signature_schemes())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_for(&hello, None)
    }
}

/// A listener's certificate resolver: the store's certificates, for clients that either offer
/// no ALPN or offer the listener's protocol. rustls itself treats "no overlap" as "no ALPN"
/// (as OpenSSL and Go do), so the refusal RFC 7301 §3.2 asks for happens here: no certificate,
/// no handshake.
#[derive(Debug)]
struct AlpnGate {
    certs: Arc<CertStore>,
    protocol: Option<Vec<u8>>,
    listener: Option<String>,
}

impl ResolvesServerCert for AlpnGate {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(protocol) = &self.protocol
            && let Some(mut offered) = hello.alpn()
            && !offered.any(|p| p == protocol.as_slice() || p == ACME_TLS_ALPN)
        {
            return None;
        }
        self.certs.resolve_for(&hello, self.listener.as_deref())
    }
}

/// The server configuration of a listener. `alpn` is its protocol's ALPN id (`smtp`, `imap`):
/// a client that offers ALPN without it is refused, one that offers none goes on as before,
/// and the id is confirmed to clients that offer it. None accepts any.
pub fn server_config(certs: Arc<CertStore>, alpn: Option<&str>) -> Result<Arc<ServerConfig>, TlsError> {
    listener_config(certs, None, alpn)
}

/// Protocol version and cipher suite of an established connection, for Received headers
/// and logs, in the names RFC 8446/5246 use (`TLSv1.3`, `TLS13_AES_256_GCM_SHA384`).
pub fn describe(conn: &rustls::ServerConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "unknown".to_string(), |s| format!("{:?}", s.suite()));
    (version, suite)
}

/// The `tls-exporter` channel binding of a connection (RFC 9266): 32 bytes exported with
/// the label `EXPORTER-Channel-Binding` and no context. SCRAM-SHA-256-PLUS binds the
/// authentication to this TLS session, so a relayed exchange fails.
pub fn channel_binding(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None).ok()
}

/// A self-signed ECDSA P-256 certificate for `hostname`, also valid for localhost and the
/// loopback addresses so local clients can verify it. Returns (certificate PEM, key PEM).
pub fn self_signed(hostname: &str) -> Result<(String, String), TlsError> {
    use chrono::Datelike;
    let mut names = vec![hostname.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Rampart self-signed");
    let today = chrono::Utc::now().date_naive();
    params.not_before = rcgen::date_time_ymd(today.year() - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(today.year() + 5, 1, 1);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, host: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self_signed(host).unwrap();
        let c = dir.join(format!("{name}.pem"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn only_forward_secret_suites() {
        let p = provider();
        assert!(!p.cipher_suites.is_empty());
        for s in &p.cipher_suites {
            assert!(is_forward_secret(s), "{:?}", s.suite());
        }
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "default", "mx.example.test");
        let (c2, k2) = write_pair(dir.path(), "other", "mail.other.test");
        let (c3, k3) = write_pair(dir.path(), "wild", "wild.test");
        let config = rampart_config::Tls {
            cert: c,
            key: k,
            sni: vec![
                rampart_config::SniCert { hostname: "Mail.Other.Test".into(), cert: c2, key: k2, acme: false },
                rampart_config::SniCert { hostname: "*.wild.test".into(), cert: c3, key: k3, acme: false },
            ],
            ..Default::default()
        };
        let mut set = CertSet::load(&config).unwrap();
        let pick = |set: &CertSet, name| set.pick(name).expect("a certificate");
        assert!(Arc::ptr_eq(&pick(&set, None), &set.default));
        assert!(Arc::ptr_eq(&pick(&set, Some("mail.other.test")), &set.by_name["mail.other.test"][0]));
        assert!(Arc::ptr_eq(&pick(&set, Some("a.wild.test")), &set.by_name["*.wild.test"][0]));
        assert!(Arc::ptr_eq(&pick(&set, Some("a.b.wild.test")), &set.default));
        // With refuse_unknown_sni, a name no certificate covers gets none; the default's own do.
        set.refuse_unknown = true;
        assert!(set.pick(Some("a.b.wild.test")).is_none());
        assert!(set.pick(Some("mx.example.test")).is_some());
        assert!(set.pick(None).is_some());
    }

    #[test]
    fn errors_name_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = write_pair(dir.path(), "a", "a.test");
        let (_, k2) = write_pair(dir.path(), "b", "b.test");
        let missing = rampart_config::Tls { cert: dir.path().join("nope.pem"), key: k2.clone(), ..Default::default() };
        let e = CertSet::load(&missing).unwrap_err().to_string();
        assert!(e.starts_with("tls.cert: ") && e.contains("nope.pem"), "{e}");
        let mismatched = rampart_config::Tls { cert: c, key: k2, ..Default::default() };
        let e = CertSet::load(&mismatched).unwrap_err().to_string();
        assert!(e.starts_with("tls.key: ") && e.contains("does not fit"), "{e}");
    }
}
