//! The web dashboard's view of what only the binary knows: the listeners' certificates, read
//! by the audit's own function, and an account's sending quotas with the limits the SMTP
//! server applies (the config's, with `rampart quota set` overrides), as `rampart quota show`.

use std::sync::Arc;

use rampart_config::{Config, QUOTA_KEYS};
use rampart_smtp::sending::quota::Limits;
use rampart_store::{Store, StoreError};
use rampart_web::{AccountQuota, CertExpiry, QuotaUse};

pub struct Dashboard {
    pub store: Arc<dyn Store>,
    pub config: Config,
}

#[async_trait::async_trait]
impl rampart_web::Dashboard for Dashboard {
    fn certificates(&self) -> Vec<CertExpiry> {
        crate::audit::checks::certificate_files(&self.config)
            .into_iter()
            .map(|f| {
                let file = f.path.display().to_string();
                match f.cert {
                    Ok(c) => CertExpiry { file, not_after: Some(c.not_after), self_signed: c.self_signed, problem: None },
                    Err((problem, _)) => CertExpiry { file, not_after: None, self_signed: false, problem: Some(problem.into()) },
                }
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
}
