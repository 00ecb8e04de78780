//! Making and reading certificates: keys (ECDSA P-256 by ring through rcgen, RSA 2048 by the
//! `rsa` crate since ring cannot generate RSA keys), self-signed certificates, PKCS#10
//! requests, and what a PEM chain says about itself (names, issuer, validity) via x509-parser.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::TlsError;

/// The key types `rampart cert` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    Rsa2048,
}

impl KeyType {
    pub fn parse(s: &str) -> Option<KeyType> {
        match s {
            "ecdsa-p256" => Some(KeyType::EcdsaP256),
            "rsa-2048" => Some(KeyType::Rsa2048),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }
}

/// A new key pair; its PEM is PKCS#8.
pub fn generate_key(kind: KeyType) -> Result<rcgen::KeyPair, TlsError> {
    match kind {
        KeyType::EcdsaP256 => Ok(rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        KeyType::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|e| TlsError::Key(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| TlsError::Key(e.to_string()))?;
            let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
            Ok(rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)?)
        }
    }
}

fn params(names: &[String]) -> Result<rcgen::CertificateParams, TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = names.first() {
        params.distinguished_name.push(rcgen::DnType::CommonName, first.as_str());
    }
    Ok(params)
}

/// A self-signed certificate for `names`, valid from yesterday for `days`: (chain PEM, key PEM).
pub fn self_signed_for(names: &[String], kind: KeyType, days: i64) -> Result<(String, String), TlsError> {
    let mut params = params(names)?;
    let now = time_now();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
    let key = generate_key(kind)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(chrono::Utc::now().timestamp()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A PKCS#10 request for `names` with a new key: (CSR PEM, key PEM).
pub fn csr(names: &[String], kind: KeyType) -> Result<(String, String), TlsError> {
    let key = generate_key(kind)?;
    let request = params(names)?.serialize_request(&key)?;
    Ok((request.pem()?, key.serialize_pem()))
}

/// A request's DER for `names` signed by an existing key (ACME finalization).
pub fn csr_der(names: &[String], key: &rcgen::KeyPair) -> Result<Vec<u8>, TlsError> {
    Ok(params(names)?.serialize_request(key)?.der().to_vec())
}

/// What a certificate chain says about its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names and IP addresses of the SAN extension (the CN when there is none).
    pub names: Vec<String>,
    pub issuer: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
}

/// The chain of a PEM text, leaf first.
pub fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Parse(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Parse("no PEM certificate".into()));
    }
    Ok(chain)
}

/// Reads the leaf of a PEM chain.
pub fn inspect(pem: &str) -> Result<CertInfo, TlsError> {
    let chain = parse_chain(pem)?;
    let (_, cert) = X509Certificate::from_der(&chain[0]).map_err(|e| TlsError::Parse(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => names.extend(ip_text(ip)),
                _ => {}
            }
        }
    }
    if names.is_empty()
        && let Some(cn) = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok())
    {
        names.push(cn.to_ascii_lowercase());
    }
    Ok(CertInfo {
        names,
        issuer: cert.issuer().to_string(),
        subject: cert.subject().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        self_signed: cert.issuer() == cert.subject(),
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// The key type of a PEM private key, as `KeyType` names it (other sizes by their bits).
pub fn key_type(key_pem: &str) -> Result<String, TlsError> {
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Parse(format!("private key: {e}")))?;
    let key = crate::provider().key_provider.load_private_key(der).map_err(|e| TlsError::Parse(format!("private key: {e}")))?;
    Ok(match key.algorithm() {
        rustls::SignatureAlgorithm::ECDSA => "ecdsa-p256".to_string(),
        rustls::SignatureAlgorithm::RSA => rsa_bits(key_pem).map_or_else(|| "rsa".to_string(), |b| format!("rsa-{b}")),
        rustls::SignatureAlgorithm::ED25519 => "ed25519".to_string(),
        other => format!("{other:?}").to_ascii_lowercase(),
    })
}

fn rsa_bits(key_pem: &str) -> Option<usize> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem)).ok()?;
    Some(key.size() * 8)
}

/// The certificate and key ready to serve; fails when the key does not fit the certificate.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, TlsError> {
    let chain = parse_chain(chain_pem)?;
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Parse(format!("private key: {e}")))?;
    CertifiedKey::from_der(chain, der, &crate::provider()).map_err(|e| TlsError::Parse(format!("the key does not fit the certificate: {e}")))
}

/// The key as PKCS#8 PEM, whatever PEM form it came in (PKCS#1 and SEC1 keys are converted,
/// so the store holds one form).
pub fn normalize_key(key_pem: &str) -> Result<String, TlsError> {
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Parse(format!("private key: {e}")))?;
    match der {
        PrivateKeyDer::Pkcs8(_) => Ok(key_pem.to_string()),
        PrivateKeyDer::Pkcs1(_) => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(key_pem).map_err(|e| TlsError::Parse(e.to_string()))?;
            Ok(key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| TlsError::Parse(e.to_string()))?.to_string())
        }
        // SEC1 EC keys: served as they are (rustls loads them); kept in their own form.
        _ => Ok(key_pem.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_csr_round_trip() {
        let names = vec!["mail.example.test".to_string(), "127.0.0.1".to_string()];
        for kind in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let (chain, key) = self_signed_for(&names, kind, 30).unwrap();
            let info = inspect(&chain).unwrap();
            assert_eq!(info.names, names);
            assert!(info.self_signed);
            assert!(info.not_after - info.not_before >= 30 * 86400);
            assert_eq!(key_type(&key).unwrap(), kind.as_str());
            certified_key(&chain, &key).unwrap();
            let (request, key) = csr(&names, kind).unwrap();
            assert!(request.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
            assert_eq!(key_type(&key).unwrap(), kind.as_str());
        }
        let (chain, _) = self_signed_for(&names, KeyType::EcdsaP256, 30).unwrap();
        let (_, other) = self_signed_for(&names, KeyType::EcdsaP256, 30).unwrap();
        assert!(certified_key(&chain, &other).is_err());
    }
}
