//! Certificate expiry: a gauge per stored certificate (`rampart_certificate_expiry_seconds`),
//! and at 21 and 7 days before expiry a log warning and a mail to the postmaster, each once
//! per certificate (the store remembers which were sent).

use std::sync::Arc;
use std::time::Duration;

use rampart_pipeline::trail::Reason;
use rampart_smtp::queue::{Generated, inject};
use rampart_store::certs::StoredCert;
use rampart_store::prelude::*;
use tracing::{info, warn};

/// Days before expiry at which the postmaster hears about it.
pub const WARN_DAYS: [i64; 2] = [21, 7];
/// How often certificates are checked (and the first check, shortly after start).
const EVERY: Duration = Duration::from_secs(3600);
const FIRST: Duration = Duration::from_secs(3);

pub struct Expiry {
    pub store: Arc<dyn Store>,
    pub hostname: String,
    pub recipient_delimiter: String,
    /// `containment.admin_address`, or empty for postmaster@ the first local domain.
    pub admin: String,
    pub queue_wakeup: Arc<tokio::sync::Notify>,
}

/// The warning due for a certificate now (the smallest threshold reached and not yet sent).
pub fn due(c: &StoredCert, now: i64) -> Option<i64> {
    let left = c.not_after - now;
    WARN_DAYS.iter().rev().copied().find(|d| left <= d * 86400 && !c.warned.contains(d))
}

impl Expiry {
    pub async fn run(self) {
        tokio::time::sleep(FIRST).await;
        loop {
            if let Err(e) = self.check().await {
                warn!(event = "store_error", what = "certificate expiry", error = %e);
            }
            tokio::time::sleep(EVERY).await;
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        for c in self.store.certificates().await?.into_iter().filter(|c| c.chain_pem.is_some()) {
            let names = c.names.join(",");
            metrics::gauge!("rampart_certificate_expiry_seconds", "id" => c.id.to_string(), "names" => names.clone())
                .set((c.not_after - now) as f64);
            let Some(days) = due(&c, now) else { continue };
            // Whole days, rounded up: a certificate made for five days says five.
            let left = ((c.not_after - now).max(0) + 86399) / 86400;
            warn!(event = "certificate_expiring", id = c.id, names = %names, days_left = left, not_after = c.not_after);
            self.mail(&c, left).await?;
            // A threshold passed is sent once; a later one implies the earlier ones.
            for d in WARN_DAYS.iter().filter(|d| **d >= days) {
                self.store.mark_cert_warned(c.id, *d).await?;
            }
        }
        Ok(())
    }

    async fn admin(&self) -> anyhow::Result<String> {
        if !self.admin.is_empty() {
            return Ok(self.admin.clone());
        }
        let domain = self.store.list_domains().await?.into_iter().next().unwrap_or_else(|| self.hostname.clone());
        Ok(format!("postmaster@{domain}"))
    }

    async fn mail(&self, c: &StoredCert, left: i64) -> anyhow::Result<()> {
        let admin = self.admin().await?;
        let id = rampart_smtp::trace::new_id();
        let message = notice(&self.hostname, &id, &admin, c, left);
        let rcpts = [admin.clone()];
        let g = Generated { id: &id, sender: "", rcpts: &rcpts, message: &message, reason: Reason::CertificateExpiry, is_dsn: false };
        let done = inject(self.store.as_ref(), &self.hostname, &self.recipient_delimiter, &g).await?;
        if done.queued {
            self.queue_wakeup.notify_one();
        }
        info!(event = "certificate_expiry_notice", id = %id, cert = c.id, admin = %admin);
        Ok(())
    }
}

fn notice(host: &str, id: &str, admin: &str, c: &StoredCert, left: i64) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc2822();
    let until = chrono::DateTime::from_timestamp(c.not_after, 0).map(|d| d.to_rfc2822()).unwrap_or_default();
    let names = c.names.join(", ");
    let what = if c.source == "acme" {
        "It is ordered by ACME: renewal has failed so far; see the server log (event=acme_failed)."
    } else {
        "Import a renewed certificate (rampart cert import) or order one (rampart cert acme)."
    };
    // RFC 3834 §5: Auto-Submitted, so vacation responders do not answer it.
    format!(
        "From: Mail System <MAILER-DAEMON@{host}>\r\nTo: <{admin}>\r\nSubject: Certificate {cid} expires in {left} days\r\n\
         Date: {now}\r\nMessage-ID: <{id}.certificate@{host}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         The certificate {cid} for {names} (issuer: {issuer}) expires on {until}.\r\n\r\n{what}\r\n",
        cid = c.id,
        issuer = c.issuer,
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_once_each_at_21_and_7_days() {
        let day = 86400;
        let mut c = StoredCert {
            id: 1,
            names: vec!["a.test".into()],
            issuer: String::new(),
            not_before: 0,
            not_after: 100 * day,
            key_type: "ecdsa-p256".into(),
            source: "imported".into(),
            chain_pem: Some(String::new()),
            key_pem: String::new(),
            csr_pem: None,
            created: 0,
            warned: vec![],
        };
        assert_eq!(due(&c, 70 * day), None);
        assert_eq!(due(&c, 80 * day), Some(21));
        c.warned = vec![21];
        assert_eq!(due(&c, 85 * day), None);
        assert_eq!(due(&c, 94 * day), Some(7));
        c.warned = vec![];
        // Imported with five days left: only the 7-day warning.
        assert_eq!(due(&c, 95 * day), Some(7));
    }
}
