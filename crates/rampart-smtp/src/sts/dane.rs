//! DANE for SMTP (RFC 7672): matching a server's certificate chain against its TLSA records
//! (RFC 6698 §2), and the rustls verifier that applies the match in the handshake.
//!
//! - DANE-EE(3): the end-entity certificate (or its public key) matches; no name or expiry
//!   check (RFC 7672 §3.1.1).
//! - DANE-TA(2): a certificate the server presents matches and is the trust anchor the chain
//!   must validate to, with the MX host name checked (§3.1.2).
//! - PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (§3.1.3), like unknown selectors and
//!   matching types. With no usable record TLS is still mandatory but unauthenticated (§2.2).
//!
//! [`super::dnssec`] finds the records.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;

impl Tlsa {
    /// Whether RFC 7672 lets an SMTP client use this record.
    pub fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE) && self.selector <= 1 && self.matching <= 2
    }

    /// Presentation form, for TLS reports' policy-string (RFC 8460 §4.4).
    pub fn text(&self) -> String {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {} {} {hex}", self.usage, self.selector, self.matching)
    }

    /// Whether the record matches a certificate (DER).
    fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert.to_vec(),
            1 => match spki(cert) {
                Some(s) => s,
                None => return false,
            },
            _ => return false,
        };
        let digest = match self.matching {
            0 => selected,
            1 => sha2::Sha256::digest(&selected).to_vec(),
            2 => sha2::Sha512::digest(&selected).to_vec(),
            _ => return false,
        };
        digest == self.data
    }
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn spki(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

/// Why a chain did not match the records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaneError {
    #[error("no TLSA record matches the certificate chain")]
    NoMatch,
    #[error("the chain does not validate to the DANE-TA trust anchor: {0}")]
    TrustAnchor(String),
}

/// Checks a presented chain (end entity first) against the usable records.
pub fn check(
    records: &[Tlsa],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    host: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), DaneError> {
    let usable: Vec<&Tlsa> = records.iter().filter(|r| r.usable()).collect();
    if usable.iter().any(|r| r.usage == DANE_EE && r.matches(end_entity)) {
        return Ok(());
    }
    let mut last = DaneError::NoMatch;
    for anchor in intermediates.iter().filter(|c| usable.iter().any(|r| r.usage == DANE_TA && r.matches(c))) {
        match validates_to(anchor, end_entity, intermediates, host, now) {
            Ok(()) => return Ok(()),
            Err(e) => last = DaneError::TrustAnchor(e),
        }
    }
    Err(last)
}

/// Whether the chain validates (webpki, with the name check) with `anchor` as its only root.
fn validates_to(
    anchor: &CertificateDer<'_>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    host: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(anchor.clone().into_owned()).map_err(|e| e.to_string())?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::new(rampart_tls::provider()))
        .build()
        .map_err(|e| e.to_string())?;
    verifier.verify_server_cert(end_entity, intermediates, host, &[], now).map(|_| ()).map_err(|e| e.to_string())
}

/// A rustls verifier that accepts a chain exactly when it matches the TLSA records.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Vec<Tlsa>,
    /// Another name a DANE-TA chain may be issued for: the TLSA base domain when it is the
    /// end of the MX host's CNAME chain (RFC 7672 §3.2.2).
    alias: Option<ServerName<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DaneVerifier {
    pub fn new(records: Vec<Tlsa>) -> DaneVerifier {
        DaneVerifier { records, alias: None, provider: Arc::new(rampart_tls::provider()) }
    }

    pub fn also_named(self, alias: Option<String>) -> DaneVerifier {
        DaneVerifier { alias: alias.and_then(|a| ServerName::try_from(a).ok()), ..self }
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut outcome = check(&self.records, end_entity, intermediates, server_name, now);
        if let (Err(DaneError::TrustAnchor(_)), Some(alias)) = (&outcome, &self.alias) {
            outcome = check(&self.records, end_entity, intermediates, alias, now);
        }
        outcome
            .map(|()| ServerCertVerified::assertion())
            .map_err(|e| rustls::Error::General(format!("DANE: {e}")))
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    struct Chain {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    }

    fn chain(name: &str) -> Chain {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![name.to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        Chain { ca: ca.der().clone(), leaf: leaf.der().clone(), key }
    }

    fn record(usage: u8, selector: u8, matching: u8, cert: &[u8]) -> Tlsa {
        let selected = if selector == 0 { cert.to_vec() } else { spki(cert).unwrap() };
        let data = match matching {
            0 => selected,
            1 => sha2::Sha256::digest(&selected).to_vec(),
            _ => sha2::Sha512::digest(&selected).to_vec(),
        };
        Tlsa { usage, selector, matching, data }
    }

    fn name(n: &str) -> ServerName<'static> {
        ServerName::try_from(n.to_string()).unwrap()
    }

    #[test]
    fn dane_ee_matches_the_end_entity_in_every_form() {
        let c = chain("mx.dane.test");
        let now = UnixTime::now();
        for (selector, matching) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)] {
            let r = record(DANE_EE, selector, matching, &c.leaf);
            // No name check under DANE-EE: any name is fine.
            assert_eq!(check(&[r], &c.leaf, &[], &name("other.test"), now), Ok(()), "3 {selector} {matching}");
        }
        let other = chain("mx.dane.test");
        assert_eq!(check(&[record(DANE_EE, 1, 1, &other.leaf)], &c.leaf, &[], &name("mx.dane.test"), now), Err(DaneError::NoMatch));
    }

    #[test]
    fn dane_ta_needs_the_chain_to_validate_for_the_name() {
        let c = chain("mx.dane.test");
        let now = UnixTime::now();
        let ta = record(DANE_TA, 1, 1, &c.ca);
        assert_eq!(check(std::slice::from_ref(&ta), &c.leaf, std::slice::from_ref(&c.ca), &name("mx.dane.test"), now), Ok(()));
        assert!(matches!(
            check(std::slice::from_ref(&ta), &c.leaf, std::slice::from_ref(&c.ca), &name("mx.other.test"), now),
            Err(DaneError::TrustAnchor(_))
        ));
        // The anchor must be presented (RFC 7672 §3.1.2: servers include it in the chain).
        assert_eq!(check(&[ta], &c.leaf, &[], &name("mx.dane.test"), now), Err(DaneError::NoMatch));
    }

    #[test]
    fn dane_ta_accepts_the_expanded_name_too() {
        // The MX host mx.dane.test is a CNAME to target.dane.test, where the records were found
        // (RFC 7672 §3.2.2): a chain issued for either name validates, no other.
        let c = chain("target.dane.test");
        let ta = record(DANE_TA, 1, 1, &c.ca);
        let now = UnixTime::now();
        let verify = |v: &DaneVerifier| v.verify_server_cert(&c.leaf, std::slice::from_ref(&c.ca), &name("mx.dane.test"), &[], now);
        assert!(verify(&DaneVerifier::new(vec![ta.clone()])).is_err());
        assert!(verify(&DaneVerifier::new(vec![ta.clone()]).also_named(Some("target.dane.test".into()))).is_ok());
        assert!(verify(&DaneVerifier::new(vec![ta]).also_named(Some("other.dane.test".into()))).is_err());
    }

    #[test]
    fn pkix_usages_are_unusable() {
        let c = chain("mx.dane.test");
        for usage in [0, 1] {
            let r = record(usage, 0, 1, &c.leaf);
            assert!(!r.usable());
            assert_eq!(check(&[r], &c.leaf, &[], &name("mx.dane.test"), UnixTime::now()), Err(DaneError::NoMatch));
        }
        assert_eq!(record(3, 1, 1, &c.leaf).text().split(' ').take(3).collect::<Vec<_>>(), ["3", "1", "1"]);
    }

    /// A real handshake: the client with DANE records against a server presenting `c`'s chain.
    async fn handshake(c: &Chain, records: Vec<Tlsa>) -> Result<crate::client::TlsOutcome, crate::client::ClientError> {
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rampart_tls::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c.leaf.clone(), c.ca.clone()], c.key.clone_key())
            .unwrap();
        let (client_io, server_io) = tokio::io::duplex(16384);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        tokio::spawn(async move {
            if let Ok(mut s) = acceptor.accept(server_io).await {
                use tokio::io::AsyncReadExt;
                let _ = s.read(&mut [0u8; 1]).await;
            }
        });
        // The system's trust anchors do not know the test CA: only the TLSA records can make the
        // chain acceptable.
        let client = crate::client::TlsClient::new(crate::outbound::root_store(None).unwrap()).unwrap().with_dane(records, None);
        client.handshake(Box::new(client_io), "mx.dane.test", true, std::time::Duration::from_secs(5)).await.map(|(_, o)| o)
    }

    #[tokio::test]
    async fn handshakes_succeed_only_when_the_records_match() {
        let c = chain("mx.dane.test");
        let other = chain("mx.dane.test");
        let ok = handshake(&c, vec![record(DANE_EE, 1, 1, &c.leaf)]).await.unwrap();
        assert_eq!(ok.unverified, None);
        assert!(handshake(&c, vec![record(DANE_TA, 0, 2, &c.ca)]).await.is_ok());
        let refused = handshake(&c, vec![record(DANE_EE, 1, 1, &other.leaf), record(DANE_TA, 1, 1, &other.ca)]).await;
        assert!(matches!(refused, Err(crate::client::ClientError::Tls(ref e)) if e.contains("DANE")), "{refused:?}");
    }
}
