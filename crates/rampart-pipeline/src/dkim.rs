//! DKIM keys and signing (RFC 6376, RFC 8463).
//!
//! Keys live in the store's signing table (domain → selector → key). RSA private keys are
//! kept as PKCS#1 DER, Ed25519 keys as PKCS#8 DER. The TXT record publishes RSA keys as a
//! SubjectPublicKeyInfo (what `openssl rsa -pubout` prints, which every verifier reads) and
//! Ed25519 keys as the raw 32 bytes (RFC 8463 §4.2).
//!
//! mail-auth canonicalizes and hashes; the signature itself is made by OpenSSL (Debian's
//! libcrypto, through the `openssl` crate) for RSA and by ring for Ed25519. RSA-2048 signing
//! was most of the server's CPU on outbound mail, and OpenSSL signs in about 0.4 ms where
//! ring takes 0.7 ms on the same machine (bench/results.md). Parsed keys are kept in a
//! [`KeyCache`] while the stored key stays the same.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Algorithm as Signing, CryptoError, Ed25519Key, Sha256};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

use crate::canon;

/// RSA modulus size for new keys: RFC 8301 §3.2 requires at least 1024 and recommends 2048;
/// larger keys do not fit one 255-byte TXT string and some DNS hosts mangle split records.
pub const RSA_BITS: usize = 2048;

/// The header fields we sign. Each of From, To, Subject and Date is listed twice: the second
/// entry matches no instance, so a field of that name added later breaks the signature
/// (RFC 6376 §8.15 "oversigning"). Fields absent from a message are signed as absent, which
/// equally stops anyone from adding them.
pub const SIGNED_HEADERS: [&str; 18] = [
    "From", "From", "To", "To", "Subject", "Subject", "Date", "Date", "Cc", "Reply-To", "Message-ID", "In-Reply-To",
    "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// rsa-sha256 (RFC 6376 §3.3.1).
    Rsa,
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Some(Algorithm::Rsa),
            "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    #[error("generating the key: {0}")]
    Generate(String),
    #[error("the stored {algorithm} key for {selector}._domainkey.{domain} is unusable: {reason}")]
    BadKey { domain: String, selector: String, algorithm: &'static str, reason: String },
    #[error("signing for {domain}: {reason}")]
    Sign { domain: String, reason: String },
}

/// A private key from the signing table.
#[derive(Clone)]
pub struct SigningKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}._domainkey.{}, {})", self.selector, self.domain, self.algorithm.as_str())
    }
}

impl SigningKey {
    /// The RSA key as ring reads it (ARC sealing, `checks::arc`).
    pub(crate) fn der(&self) -> PrivateKeyDer<'_> {
        PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(self.private_der.as_slice()))
    }

    fn bad(&self, reason: impl ToString) -> DkimKeyError {
        DkimKeyError::BadKey {
            domain: self.domain.clone(),
            selector: self.selector.clone(),
            algorithm: self.algorithm.as_str(),
            reason: reason.to_string(),
        }
    }

    /// Checks that the key loads, so a broken row is found at `keygen`, not at signing time.
    pub fn check(&self) -> Result<(), DkimKeyError> {
        self.load().map(|_| ())
    }

    /// The key ready to sign with.
    fn load(&self) -> Result<Loaded, DkimKeyError> {
        match self.algorithm {
            Algorithm::Rsa => {
                let rsa = Rsa::private_key_from_der(&self.private_der).map_err(|e| self.bad(e))?;
                if !rsa.check_key().map_err(|e| self.bad(e))? {
                    return Err(self.bad("inconsistent RSA key"));
                }
                Ok(Loaded::Rsa(PKey::from_rsa(rsa).map_err(|e| self.bad(e))?))
            }
            Algorithm::Ed25519 => Ok(Loaded::Ed25519(Ed25519Key::from_pkcs8_der(&self.private_der).map_err(|e| self.bad(e))?)),
        }
    }
}

/// A private key parsed for signing.
enum Loaded {
    Rsa(PKey<Private>),
    Ed25519(Ed25519Key),
}

/// A loaded key as mail-auth's signer takes it (shared with the cache).
struct Shared(Arc<Loaded>);

fn crypto_error(e: openssl::error::ErrorStack) -> mail_auth::Error {
    mail_auth::Error::Crypto(CryptoError::Library(e.to_string()))
}

impl mail_auth::common::crypto::SigningKey for Shared {
    type Hasher = Sha256;

    /// `input` is the canonicalized header section mail-auth builds; both algorithms hash it
    /// with SHA-256 themselves (RSASSA-PKCS1-v1_5, RFC 6376 §3.3.1; Ed25519, RFC 8463 §3).
    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        match &*self.0 {
            Loaded::Rsa(key) => {
                let mut data = Vec::with_capacity(512);
                input.write(&mut data);
                let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).map_err(crypto_error)?;
                signer.update(&data).map_err(crypto_error)?;
                signer.sign_to_vec().map_err(crypto_error)
            }
            Loaded::Ed25519(key) => key.sign(input),
        }
    }

    fn algorithm(&self) -> Signing {
        match &*self.0 {
            Loaded::Rsa(_) => Signing::RsaSha256,
            Loaded::Ed25519(key) => key.algorithm(),
        }
    }
}

/// Parsed keys by domain and selector, each with the stored bytes it was parsed from: a
/// rotated key (other bytes under a selector) is parsed again, an unchanged one never.
/// Parsing and checking an RSA key costs about as much as signing with it.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<(String, String), Cached>>,
}

/// A parsed key and the stored bytes it was parsed from.
type Cached = (Vec<u8>, Arc<Loaded>);

impl KeyCache {
    fn get(&self, key: &SigningKey) -> Result<Arc<Loaded>, DkimKeyError> {
        let id = (key.domain.clone(), key.selector.clone());
        // Held while a missing key is parsed: the sessions that arrive together after a start
        // then parse it once. RSA's key check alone costs tens of milliseconds, so ten parallel
        // first messages each parsing it measured as much CPU as a hundred signatures.
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, loaded)) = keys.get(&id)
            && *der == key.private_der
        {
            return Ok(loaded.clone());
        }
        let loaded = Arc::new(key.load()?);
        keys.insert(id, (key.private_der.clone(), loaded.clone()));
        Ok(loaded)
    }

    /// `DKIM-Signature:` headers (with CRLF) for `message` — the prefix and body exactly as
    /// they will be sent — one per key, relaxed/relaxed. CPU-bound (an RSA signature is
    /// about half a millisecond): async callers run it off the runtime's threads.
    pub fn sign(&self, message: &[u8], keys: &[SigningKey]) -> Result<String, DkimKeyError> {
        // See `canon`: sign a copy without trailing whitespace-only lines; the relaxed body
        // hash is the same for the original, which is what goes out.
        let body_offset = memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 4);
        let view = match canon::trimmed_len(message, body_offset) {
            Some(n) => &message[..n],
            None => message,
        };
        let mut out = String::new();
        for key in keys {
            let err = |e: mail_auth::Error| DkimKeyError::Sign { domain: key.domain.clone(), reason: e.to_string() };
            let signature = signer(DkimSigner::from_key(Shared(self.get(key)?)), key).sign(view).map_err(err)?;
            out.push_str(&signature.to_header());
        }
        Ok(out)
    }
}

/// A new key pair: the private half for the store, the public half for DNS.
pub struct NewKey {
    pub private_der: Vec<u8>,
    /// The bytes `p=` carries, before base64.
    pub public: Vec<u8>,
}

pub fn generate(algorithm: Algorithm) -> Result<NewKey, DkimKeyError> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let pair = match algorithm {
        Algorithm::Rsa => DkimKeyPair::generate_rsa(RSA_BITS),
        Algorithm::Ed25519 => DkimKeyPair::generate_ed25519(),
    }
    .map_err(|e| DkimKeyError::Generate(e.to_string()))?;
    let (private_der, public) = pair.into_inner();
    let public = match algorithm {
        Algorithm::Rsa => rsa_spki(&public),
        Algorithm::Ed25519 => public,
    };
    Ok(NewKey { private_der, public })
}

/// DER length octets (X.690 §8.1.3).
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280 §4.1.2.7, RFC 3279 §2.3.1).
pub fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1 rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bits = vec![0u8]; // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// The TXT record value for a public key (RFC 6376 §3.6.1).
pub fn txt_record(algorithm: Algorithm, public: &[u8]) -> String {
    format!("v=DKIM1; k={}; p={}", algorithm.as_str(), B64.encode(public))
}

/// A zone-file line for the record, split into strings of at most 255 bytes (RFC 1035 §3.3).
pub fn zone_line(domain: &str, selector: &str, txt: &str) -> String {
    let parts: Vec<String> = txt.as_bytes().chunks(250).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    format!("{selector}._domainkey.{domain}.\tIN\tTXT\t({})", parts.join(" "))
}

/// [`KeyCache::sign`] without a cache, for one-off signing and tests.
pub fn sign(message: &[u8], keys: &[SigningKey]) -> Result<String, DkimKeyError> {
    KeyCache::default().sign(message, keys)
}

fn signer<T: mail_auth::common::crypto::SigningKey>(
    s: DkimSigner<T, mail_auth::dkim::NeedDomain>,
    key: &SigningKey,
) -> DkimSigner<T, mail_auth::dkim::Done> {
    s.domain(key.domain.clone())
        .selector(key.selector.clone())
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::AuthenticatedMessage;

    fn key(algorithm: Algorithm) -> (SigningKey, NewKey) {
        let new = generate(algorithm).unwrap();
        let k = SigningKey { domain: "example.test".into(), selector: "s1".into(), algorithm, private_der: new.private_der.clone() };
        (k, new)
    }

    #[test]
    fn spki_wraps_pkcs1() {
        let spki = rsa_spki(&[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(spki[0], 0x30);
        assert_eq!(&spki[2..17], &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
        assert_eq!(&spki[17..20], &[0x03, 0x06, 0x00]);
        let mut long = Vec::new();
        der_len(270, &mut long);
        assert_eq!(long, vec![0x82, 0x01, 0x0e]);
    }

    #[test]
    fn ed25519_sign_oversigns_and_parses() {
        let (k, new) = key(Algorithm::Ed25519);
        k.check().unwrap();
        assert_eq!(new.public.len(), 32);
        let msg = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\r\nHi\r\n \r\n";
        let header = sign(msg, &[k]).unwrap();
        assert!(header.starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=s1; d=example.test; c=relaxed/relaxed;"), "{header}");
        let h = header.split("h=").nth(1).unwrap().split(';').next().unwrap().replace(['\r', '\n', '\t', ' '], "");
        for name in ["From", "To", "Subject", "Date"] {
            assert_eq!(h.split(':').filter(|x| x.eq_ignore_ascii_case(name)).count(), 2, "{name} oversigned in {h}");
        }
        // The body hash is the RFC one for "Hi\r\n" (the canon workaround).
        let mut signed = header.into_bytes();
        signed.extend_from_slice(msg);
        let parsed = AuthenticatedMessage::parse(&signed).unwrap();
        assert_eq!(parsed.dkim_headers.len(), 1);
    }

    #[test]
    fn parsed_keys_are_kept_until_the_stored_key_changes() {
        let cache = KeyCache::default();
        let (k, _) = key(Algorithm::Ed25519);
        let first = cache.get(&k).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&k).unwrap()), "parsed once");
        // Rotated: new bytes under the same selector are parsed again.
        let (rotated, _) = key(Algorithm::Ed25519);
        assert!(!Arc::ptr_eq(&first, &cache.get(&rotated).unwrap()));
        let broken = SigningKey { private_der: vec![1, 2, 3], algorithm: Algorithm::Rsa, ..k };
        assert!(matches!(cache.get(&broken), Err(DkimKeyError::BadKey { .. })));
    }

    #[test]
    fn txt_and_zone_line() {
        let txt = txt_record(Algorithm::Rsa, &[1u8; 300]);
        assert!(txt.starts_with("v=DKIM1; k=rsa; p=AQEB"));
        let line = zone_line("example.test", "s1", &txt);
        assert!(line.starts_with("s1._domainkey.example.test.\tIN\tTXT\t(\""));
        assert!(line.split('"').all(|s| s.len() <= 255));
    }
}
