//! ACME (RFC 8555) orders through instant-acme: the account, one order for a set of names,
//! and the answers to its challenges — TLS-ALPN-01 (RFC 8737) through the listeners' resolver,
//! HTTP-01 through [`Http01Tokens`], which the web layer's HTTP listener serves.
//!
//! What to order and when (renewal, retries) is the binary's; this module runs an order and
//! asks the CA for its suggested renewal window (ARI, RFC 9773).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType, ExternalAccountKey, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use crate::certs::{self, KeyType};
use crate::{CertStore, TlsError};

/// How long the CA may take to validate and to issue before an order counts as failed.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("ACME: {0}")]
    Tls(#[from] TlsError),
    #[error("ACME: {0}")]
    Refused(String),
}

/// Which challenge proves control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// On the HTTPS listener (port 443 for a public CA), RFC 8737.
    TlsAlpn01,
    /// On the HTTP listener (port 80), `/.well-known/acme-challenge/TOKEN`.
    Http01,
}

/// What the `[acme]` section says.
#[derive(Clone)]
pub struct Settings {
    pub directory: String,
    /// `mailto:` URIs.
    pub contact: Vec<String>,
    pub challenge: Challenge,
    /// External account binding: key id and the raw HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// A PEM file with the root of a private or test CA's HTTPS certificate.
    pub ca_root: Option<PathBuf>,
}

/// HTTP-01 answers: token → key authorization, while an order waits for validation.
#[derive(Debug, Default)]
pub struct Http01Tokens(RwLock<HashMap<String, String>>);

impl Http01Tokens {
    pub fn get(&self, token: &str) -> Option<String> {
        self.0.read().expect("http-01 lock").get(token).cloned()
    }

    fn set(&self, token: &str, answer: Option<String>) {
        let mut map = self.0.write().expect("http-01 lock");
        match answer {
            Some(a) => map.insert(token.to_string(), a),
            None => map.remove(token),
        };
    }
}

/// Where challenge answers go: the listeners' resolver and the HTTP listener's tokens.
#[derive(Clone)]
pub struct Responders {
    pub tls: Arc<CertStore>,
    pub http: Arc<Http01Tokens>,
}

/// An issued certificate with its new key.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

fn builder(settings: &Settings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    Ok(match &settings.ca_root {
        Some(root) => Account::builder_with_root(root)?,
        None => Account::builder()?,
    })
}

/// The account for the directory: restored from `kept` (credentials JSON), else created.
/// Returns the credentials to keep when a new account was made.
pub async fn account(settings: &Settings, kept: Option<&str>) -> Result<(Account, Option<String>), AcmeError> {
    if let Some(json) = kept
        && let Ok(credentials) = serde_json::from_str::<AccountCredentials>(json)
    {
        return Ok((builder(settings)?.from_credentials(credentials).await?, None));
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let eab = settings.eab.as_ref().map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
    let (account, credentials) = builder(settings)?.create(&new, settings.directory.clone(), eab.as_ref()).await?;
    let json = serde_json::to_string(&credentials).map_err(|e| AcmeError::Refused(e.to_string()))?;
    Ok((account, Some(json)))
}

/// Removes the challenge answers when the order ends, however it ends.
struct Cleanup<'a> {
    responders: &'a Responders,
    names: Vec<String>,
    tokens: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            self.responders.tls.set_challenge(n, None);
        }
        for t in &self.tokens {
            self.responders.http.set(t, None);
        }
    }
}

/// The CA's suggested renewal window for a certificate (RFC 9773 §4.2), as Unix times, and
/// when to ask again (its Retry-After, §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalWindow {
    pub start: i64,
    pub end: i64,
    pub retry_after: Duration,
}

/// The ARI certificate identifier (RFC 9773 §4.1: the leaf's authority key identifier and
/// serial) of the first certificate in `chain_pem`.
fn identifier(chain_pem: &str) -> Result<CertificateIdentifier<'static>, AcmeError> {
    let chain = certs::parse_chain(chain_pem)?;
    let leaf = chain.first().ok_or_else(|| AcmeError::Refused("empty certificate chain".into()))?;
    CertificateIdentifier::try_from(leaf).map_err(AcmeError::Refused)
}

/// Asks the CA when the certificate in `chain_pem` should be renewed. `Ok(None)` when the
/// CA's directory offers no `renewalInfo` (ARI is optional for a CA).
pub async fn renewal_info(account: &Account, chain_pem: &str) -> Result<Option<RenewalWindow>, AcmeError> {
    let id = identifier(chain_pem)?;
    let (info, retry_after) = match account.renewal_info(&id).await {
        Ok(answer) => answer,
        Err(instant_acme::Error::Unsupported(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let window = &info.suggested_window;
    let (start, end) = (window.start.unix_timestamp(), window.end.unix_timestamp());
    // §4.2: the end must come after the start; anything else is a malformed answer (§4.3.3).
    if end <= start {
        return Err(AcmeError::Refused(format!("renewal window ends ({end}) before it starts ({start})")));
    }
    Ok(Some(RenewalWindow { start, end, retry_after }))
}

/// Creates the order; with `replaces` (the certificate being renewed) it names that
/// certificate (RFC 9773 §5), so the CA may exempt the renewal from rate limits. A CA that
/// refuses or ignores the field (no ARI, `alreadyReplaced`, or one that does not echo it back
/// as §5 requires) gets the plain order instead: `replaces` is a courtesy, never a reason
/// not to renew.
async fn new_order(account: &Account, identifiers: &[Identifier], replaces: Option<&str>) -> Result<instant_acme::Order, AcmeError> {
    if let Some(id) = replaces.and_then(|pem| identifier(pem).ok())
        && let Ok(order) = account.new_order(&NewOrder::new(identifiers).replaces(id)).await
    {
        return Ok(order);
    }
    Ok(account.new_order(&NewOrder::new(identifiers)).await?)
}

/// Orders a certificate for `names` (the first becomes its CN) and waits for it. `replaces`:
/// the chain of the certificate this one renews.
pub async fn order(
    account: &Account,
    challenge: Challenge,
    names: &[String],
    responders: &Responders,
    kind: KeyType,
    replaces: Option<&str>,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = new_order(account, &identifiers, replaces).await?;
    let mut cleanup = Cleanup { responders, names: Vec::new(), tokens: Vec::new() };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(AcmeError::Refused(format!("authorization is {other:?}"))),
        }
        let wanted = match challenge {
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Http01 => ChallengeType::Http01,
        };
        let missing = format!("the CA offers no {wanted:?} challenge");
        let mut handle = authz.challenge(wanted).ok_or(AcmeError::Refused(missing))?;
        let name = handle.identifier().to_string();
        let key_auth = handle.key_authorization();
        match challenge {
            Challenge::TlsAlpn01 => {
                responders.tls.set_challenge(&name, Some(Arc::new(alpn_certificate(&name, key_auth.digest().as_ref())?)));
                cleanup.names.push(name);
            }
            Challenge::Http01 => {
                responders.http.set(&handle.token, Some(key_auth.as_str().to_string()));
                cleanup.tokens.push(handle.token.clone());
            }
        }
        handle.set_ready().await?;
    }
    let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        let problems = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_default();
        return Err(AcmeError::Refused(format!("order is {status:?} {problems}").trim().to_string()));
    }
    drop(cleanup);
    let key = certs::generate_key(kind)?;
    order.finalize_csr(&certs::csr_der(names, &key)?).await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    Ok(Issued { chain_pem, key_pem: key.serialize_pem() })
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge: the name as its only
/// SAN and the key authorization's SHA-256 in the critical acmeIdentifier extension
/// (RFC 8737 §3).
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    // Not through `certs::certified_key`: its key check parses the certificate with webpki,
    // which refuses the critical extension this certificate exists to carry.
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signer = crate::provider().key_provider.load_private_key(der).map_err(|e| TlsError::Parse(e.to_string()))?;
    Ok(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signer))
}
