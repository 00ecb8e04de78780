//! The web dashboard's view of what only the binary knows: the certificates the server
//! presents (`[tls]` files and the store's), read by the audit's own function, an account's
//! sending quotas with the limits the SMTP server applies (the config's, with `rampart quota
//! set` overrides), as `rampart quota show`, and `rampart audit`'s findings from its own
//! functions.
//!
//! The server's audit leaves out the open-relay attempt: run every few hours it would speak
//! SMTP to the server's own MX listener, logging a relay refusal from 127.0.0.1 each time (a
//! security event that fail2ban and the refusal counts read), and a loopback `relay_from`
//! would make it a false alarm. `rampart audit` still makes it; the page says so.

use std::sync::Arc;

use rampart_config::{Config, QUOTA_KEYS};
use rampart_smtp::sending::quota::Limits;
use rampart_store::{Store, StoreError};
use rampart_web::{AccountQuota, AuditFinding, CertExpiry, QuotaUse};
use tracing::warn;

pub struct Dashboard {
    pub store: Arc<dyn Store>,
    pub config: Config,
}

#[async_trait::async_trait]
impl rampart_web::Dashboard for Dashboard {
    async fn certificates(&self) -> Vec<CertExpiry> {
        let presented = match crate::audit::certs::presented(&self.config, self.store.as_ref()).await {
            Ok(p) => p,
            Err(e) => {
                warn!(event = "certificates_unreadable", error = %format!("{e:#}").replace('\n', "; "));
                return Vec::new();
            }
        };
        presented
            .into_iter()
            .map(|p| {
                let (not_after, self_signed, problem) = match p.cert {
                    Ok(c) => (Some(c.not_after), c.self_signed, None),
                    Err((problem, _)) => (None, false, Some(problem.into())),
                };
                CertExpiry { file: p.label, id: p.id, names: p.names, used_by: p.used_by, not_after, self_signed, problem }
            })
            .collect()
    }

    async fn quota(&self, address: &str) -> Result<AccountQuota, StoreError> {
        let s = self.store.quota_status(address, chrono::Utc::now().timestamp()).await?;
        let limits = Limits::new(&self.config.quota, &s.user_overrides, &s.domain_overrides);
        let used = crate::sending::used(&s.user);
        let quotas = QUOTA_KEYS.iter().enumerate().map(|(i, key)| QuotaUse { key, used: used[i], limit: limits.user[i] }).collect();
        Ok(AccountQuota { enabled: self.config.quota.enabled, exempt: s.exempt, quotas })
    }

    async fn audit(&self) -> Option<Vec<AuditFinding>> {
        let setup = match crate::audit::setup(self.store.as_ref(), self.config.clone(), None).await {
            Ok(setup) => setup,
            Err(e) => {
                warn!(event = "audit_failed", error = %format!("{e:#}").replace('\n', "; "));
                return None;
            }
        };
        let findings = crate::audit::run(&setup, None, crate::audit::BACKUP_MAX_AGE_DAYS).await;
        Some(findings.iter().map(crate::audit::Finding::to_web).collect())
    }
}
