//! The certificates the server presents, as the audit and the web dashboard see them: the
//! `[tls]` files and the store's certificates (every one with a chain is served, for its
//! names and wherever it is assigned), each with its expiry and whether it is self-signed, or
//! why it cannot be used. One list for both, so they never disagree.

use rampart_config::Config;
use rampart_store::prelude::*;

use super::{Finding, Severity};

/// One certificate the server presents.
pub struct Presented {
    /// What to call it: the file's path, or `certificate #ID` for the store's.
    pub label: String,
    /// The store's id; None for a `[tls]` file.
    pub id: Option<i64>,
    /// The store's names for it (its SANs); empty for a file.
    pub names: Vec<String>,
    /// Where the store assigns it: `listener smtp`, `host mail.example.org`, `smart-host relay`.
    pub used_by: Vec<String>,
    /// Its dates, or the finding's problem and fix when it cannot be used.
    pub cert: Result<CertDates, (&'static str, &'static str)>,
}

pub struct CertDates {
    /// Unix seconds.
    pub not_after: i64,
    pub self_signed: bool,
}

/// `tls.cert`, every `tls.sni` certificate, then the store's certificates, newest first.
pub async fn presented(config: &Config, store: &dyn Store) -> anyhow::Result<Vec<Presented>> {
    let mut files = vec![config.tls.cert.clone()];
    files.extend(config.tls.sni.iter().filter(|s| s.has_files()).map(|s| s.cert.clone()));
    let mut out: Vec<Presented> = files
        .into_iter()
        .map(|path| {
            let cert = std::fs::read(&path).map_err(|_| ("the certificate file cannot be read", "check tls.cert / tls.sni paths")).and_then(|pem| dates(&pem));
            Presented { label: path.display().to_string(), id: None, names: Vec::new(), used_by: Vec::new(), cert }
        })
        .collect();
    let uses = store.assignments().await?;
    let mut stored: Vec<_> = store.certificates().await?.into_iter().filter(|c| c.chain_pem.is_some()).collect();
    stored.sort_by_key(|c| std::cmp::Reverse(c.id));
    for c in stored {
        let used_by = uses.iter().filter(|a| a.cert_id == c.id).map(|a| format!("{} {}", a.usage.as_str(), a.target)).collect();
        let cert = dates(c.chain_pem.as_deref().unwrap_or_default().as_bytes());
        out.push(Presented { label: format!("certificate #{}", c.id), id: Some(c.id), names: c.names, used_by, cert });
    }
    Ok(out)
}

/// The leaf (first) certificate of a PEM chain: expiry and whether it signed itself.
fn dates(pem: &[u8]) -> Result<CertDates, (&'static str, &'static str)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| ("not a PEM certificate", "replace it"))?;
    let cert = pem.parse_x509().map_err(|_| ("the certificate does not parse", "replace it"))?;
    Ok(CertDates { not_after: cert.validity().not_after.timestamp(), self_signed: cert.issuer() == cert.subject() })
}

/// Expiry and issuer of every certificate the server presents.
pub fn certificates(certs: &[Presented]) -> Vec<Finding> {
    let now = chrono::Utc::now().timestamp();
    let mut out = Vec::new();
    for p in certs {
        let subject = match p.names.is_empty() {
            true => p.label.clone(),
            false => format!("{} ({})", p.label, p.names.join(", ")),
        };
        let cert = match &p.cert {
            Ok(cert) => cert,
            Err((problem, fix)) => {
                out.push(Finding::new(Severity::High, "tls", subject, *problem, *fix));
                continue;
            }
        };
        let left = (cert.not_after - now) / 86_400;
        let renew = "renew it (ACME renews by itself once configured)";
        if left < 0 {
            out.push(Finding::new(Severity::High, "tls", &subject, "the certificate has expired", renew));
        } else if left < 14 {
            out.push(Finding::new(Severity::Medium, "tls", &subject, format!("the certificate expires in {left} days"), renew));
        } else if left < 30 {
            out.push(Finding::new(Severity::Low, "tls", &subject, format!("the certificate expires in {left} days"), renew));
        }
        if cert.self_signed {
            out.push(Finding::new(Severity::Medium, "tls", &subject, "self-signed: mail clients warn, and senders enforcing MTA-STS will not deliver", "use a certificate from a public CA (ACME) or import one"));
        }
    }
    out
}
