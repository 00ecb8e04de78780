//! Relay policy and sender ownership.
//!
//! - Without authentication, only names in our local domains that resolve to an account
//!   (directly, by sub-address, or through aliases) are accepted: the MX role can never relay.
//!   Anything that is not a canonical local address (quoted local parts, `%` and `!` routing,
//!   address literals, lookalike domains) resolves to nothing and is refused.
//! - An authenticated user may send anywhere, but only as an address they own: their own, a
//!   sub-address of it, an alias delivering to them, or what `submission.allowed_senders` grants.

use std::collections::BTreeMap;

use rampart_auth::Identity;
use rampart_store::{AccountId, address};

use super::{Role, Session};
use crate::command::{Domain, ForwardPath};
use crate::reply::Reply;

/// Exceptions to sender ownership, from `[submission.allowed_senders]`.
#[derive(Debug, Clone, Default)]
pub struct SenderPolicy {
    /// Canonical user address → patterns: an address, `*@domain` or `*`.
    pub allowed: BTreeMap<String, Vec<String>>,
}

impl SenderPolicy {
    pub fn new(allowed: &BTreeMap<String, Vec<String>>) -> SenderPolicy {
        let allowed = allowed
            .iter()
            .map(|(user, patterns)| (user.to_lowercase(), patterns.iter().map(|p| p.to_lowercase()).collect()))
            .collect();
        SenderPolicy { allowed }
    }

    /// `sender` is lowercase.
    fn permits(&self, user: &str, sender: &str) -> bool {
        let Some(patterns) = self.allowed.get(user) else { return false };
        patterns.iter().any(|p| match p.strip_prefix("*@") {
            _ if p == "*" => true,
            Some(domain) => sender.rsplit_once('@').is_some_and(|(_, d)| d.trim_end_matches('.') == domain),
            None => p == sender,
        })
    }
}

type Refusal = (&'static str, Reply);

impl Session {
    /// Local accounts and remote addresses a recipient stands for, or why it is refused.
    pub(super) async fn resolve_recipient(&self, to: &ForwardPath) -> Result<(Vec<AccountId>, Vec<String>), Refusal> {
        let relay_denied = || ("relay_denied", Reply::new(554, "5.7.1", "Relay access denied"));
        let unknown = || ("unknown_user", Reply::new(550, "5.1.1", "Recipient address rejected: user unknown"));
        let tempfail = || ("store_unavailable", Reply::new(451, "4.3.0", "Temporary lookup failure, try again later"));
        let store = &self.services.store;
        let may_relay = self.settings.role == Role::Submission && self.user.is_some();

        let candidates: Vec<String> = match to {
            ForwardPath::Postmaster => {
                // The postmaster of the first local domain that has one answers for the server.
                let domains = store.list_domains().await.map_err(|_| tempfail())?;
                domains.into_iter().map(|d| format!("postmaster@{d}")).collect()
            }
            ForwardPath::Mailbox(m) => {
                let Domain::Name(domain) = &m.domain else {
                    if may_relay {
                        return Err(("address_literal", Reply::new(553, "5.1.3", "Address literals are not accepted")));
                    }
                    return Err(relay_denied());
                };
                if !store.is_local_domain(domain).await.map_err(|_| tempfail())? {
                    if may_relay {
                        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                        let local = m.to_string().rsplit_once('@').map(|(l, _)| l.to_string()).unwrap_or_default();
                        return Ok((Vec::new(), vec![format!("{local}@{domain}")]));
                    }
                    return Err(relay_denied());
                }
                let Ok(canonical) = address::canonical(&format!("{}@{}", m.local, domain)) else {
                    return Err(unknown());
                };
                let (local, domain) = canonical.rsplit_once('@').expect("canonical addresses have an @");
                let base = address::strip_subaddress(local, &self.services.recipient_delimiter);
                let mut c = vec![canonical.clone()];
                if base != local {
                    c.push(format!("{base}@{domain}"));
                }
                c
            }
        };
        for candidate in candidates {
            let resolution = store.resolve(&candidate).await.map_err(|_| tempfail())?;
            if !resolution.is_empty() {
                return Ok((resolution.accounts, resolution.remote));
            }
        }
        Err(unknown())
    }

    /// Whether `user` may use `sender` as MAIL FROM or in From:.
    pub(super) async fn sender_allowed(&self, user: &Identity, sender: &str) -> Result<(), Reply> {
        let refuse = || Reply::new(553, "5.7.1", format!("Sender address <{sender}> is not yours"));
        let lower = sender.to_lowercase();
        if self.services.senders.permits(&user.address, &lower) {
            return Ok(());
        }
        let Ok(canonical) = address::canonical(sender) else { return Err(refuse()) };
        let (local, domain) = canonical.rsplit_once('@').expect("canonical addresses have an @");
        let base = format!("{}@{domain}", address::strip_subaddress(local, &self.services.recipient_delimiter));
        if canonical == user.address || base == user.address {
            return Ok(());
        }
        let aliases = self
            .services
            .store
            .aliases_of(&user.address)
            .await
            .map_err(|_| Reply::new(451, "4.3.0", "Temporary lookup failure, try again later"))?;
        if aliases.iter().any(|a| *a == canonical || *a == base) {
            return Ok(());
        }
        Err(refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_patterns() {
        let mut m = BTreeMap::new();
        m.insert("News@Example.test".to_string(), vec!["*@lists.example.test".to_string(), "info@example.test".to_string()]);
        m.insert("admin@example.test".to_string(), vec!["*".to_string()]);
        let p = SenderPolicy::new(&m);
        assert!(p.permits("news@example.test", "anything@lists.example.test"));
        assert!(p.permits("news@example.test", "info@example.test"));
        assert!(!p.permits("news@example.test", "ceo@example.test"));
        assert!(p.permits("admin@example.test", "whoever@anywhere.test"));
        assert!(!p.permits("bob@example.test", "info@example.test"));
    }
}
