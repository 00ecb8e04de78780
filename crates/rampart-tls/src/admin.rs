//! The certificate store's administrative actions, one implementation for the CLI
//! (`rampart cert ...`) and the web admin: import (or complete a CSR), self-signed, CSR,
//! assign with its checks, and the client certificates of smart hosts.

use std::collections::HashMap;

use rampart_store::certs::{Assignment, StoredCert, Usage};
use rampart_store::{Store, StoreError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;
use crate::certs::{self, KeyType};

/// The listeners a certificate can be assigned to (`rampart_config::Listeners`' names).
pub const LISTENERS: [&str; 7] = ["smtp", "submission", "submissions", "imap", "imaps", "https", "http"];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A request the caller can fix; the text says how.
    #[error("{0}")]
    Invalid(String),
}

/// Host names (or `*.` wildcards, or addresses), lowercased; the first bad one is an error.
pub fn names(list: &[String]) -> Result<Vec<String>, AdminError> {
    if list.is_empty() {
        return Err(AdminError::Invalid("at least one name".into()));
    }
    list.iter()
        .map(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            let ok = rampart_config::is_hostname(n.trim_start_matches("*.")) || n.parse::<std::net::IpAddr>().is_ok();
            if ok { Ok(n) } else { Err(AdminError::Invalid(format!("`{n}` is neither a host name nor an address"))) }
        })
        .collect()
}

pub fn key_type(s: &str) -> Result<KeyType, AdminError> {
    KeyType::parse(s).ok_or_else(|| AdminError::Invalid(format!("key type `{s}` is neither ecdsa-p256 nor rsa-2048")))
}

/// Stores a certificate with its key; both are checked to fit. Returns its id.
pub async fn import(store: &dyn Store, chain_pem: &str, key_pem: &str) -> Result<i64, AdminError> {
    import_as(store, chain_pem, key_pem, "imported").await
}

async fn import_as(store: &dyn Store, chain_pem: &str, key_pem: &str, source: &str) -> Result<i64, AdminError> {
    certs::certified_key(chain_pem, key_pem)?;
    let info = certs::inspect(chain_pem)?;
    let key_pem = certs::normalize_key(key_pem)?;
    let entry = StoredCert {
        id: 0,
        names: info.names,
        issuer: info.issuer,
        not_before: info.not_before,
        not_after: info.not_after,
        key_type: certs::key_type(&key_pem)?,
        source: source.into(),
        chain_pem: Some(chain_pem.to_string()),
        key_pem,
        csr_pem: None,
        created: 0,
        warned: Vec::new(),
    };
    Ok(store.add_certificate(entry).await?)
}

/// Completes the pending CSR whose key the certificate matches. Returns its id.
pub async fn complete(store: &dyn Store, chain_pem: &str) -> Result<i64, AdminError> {
    let info = certs::inspect(chain_pem)?;
    for pending in store.certificates().await?.into_iter().filter(|c| c.chain_pem.is_none()) {
        if certs::certified_key(chain_pem, &pending.key_pem).is_ok() {
            store.complete_certificate(pending.id, chain_pem, &info.issuer, info.not_before, info.not_after).await?;
            return Ok(pending.id);
        }
    }
    Err(AdminError::Invalid("no pending CSR has the key of this certificate; give its key".into()))
}

/// Makes and stores a self-signed certificate. Returns its id.
pub async fn self_signed(store: &dyn Store, names: &[String], kind: KeyType, days: i64) -> Result<i64, AdminError> {
    if !(1..=3650).contains(&days) {
        return Err(AdminError::Invalid("days: 1 to 3650".into()));
    }
    let (chain, key) = certs::self_signed_for(names, kind, days)?;
    import_as(store, &chain, &key, "self-signed").await
}

/// Makes a key and a request; the key waits in the store. Returns (id, request PEM).
pub async fn csr(store: &dyn Store, names: &[String], kind: KeyType) -> Result<(i64, String), AdminError> {
    let (request, key) = certs::csr(names, kind)?;
    let entry = StoredCert {
        id: 0,
        names: names.to_vec(),
        issuer: String::new(),
        not_before: 0,
        not_after: 0,
        key_type: kind.as_str().into(),
        source: "csr".into(),
        chain_pem: None,
        key_pem: key,
        csr_pem: Some(request.clone()),
        created: 0,
        warned: Vec::new(),
    };
    Ok((store.add_certificate(entry).await?, request))
}

/// Checks the target's name, then assigns.
pub async fn assign(store: &dyn Store, id: i64, usage: Usage, target: &str) -> Result<(), AdminError> {
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    match usage {
        Usage::Listener if !LISTENERS.contains(&target.as_str()) => {
            return Err(AdminError::Invalid(format!("listener `{target}` is not one of {}", LISTENERS.join(", "))));
        }
        Usage::Host | Usage::SmartHost if !rampart_config::is_hostname(target.trim_start_matches("*.")) => {
            return Err(AdminError::Invalid(format!("`{target}` is not a host name")));
        }
        _ => {}
    }
    Ok(store.assign_certificate(id, usage, &target).await?)
}

/// `listener smtp, host mail.example.org`: where a certificate is used.
pub fn uses(id: i64, all: &[Assignment]) -> Vec<String> {
    all.iter().filter(|a| a.cert_id == id).map(|a| format!("{} {}", a.usage.as_str(), a.target)).collect()
}

/// Client certificates for smart hosts by host name: (chain, key).
pub type ClientCerts = HashMap<String, (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>;

/// The store's smart-host assignments, loaded.
pub async fn client_certs(store: &dyn Store) -> Result<ClientCerts, AdminError> {
    let mut out = ClientCerts::new();
    for a in store.assignments().await?.into_iter().filter(|a| a.usage == Usage::SmartHost) {
        let c = store.certificate(a.cert_id).await?;
        let Some(chain) = c.chain_pem else { continue };
        let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes())
            .map_err(|e| TlsError::Parse(format!("certificate {}: its key: {e}", c.id)))?;
        out.insert(a.target, (certs::parse_chain(&chain)?, key));
    }
    Ok(out)
}
