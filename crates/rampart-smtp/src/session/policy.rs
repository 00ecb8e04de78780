//! Relay policy and sender ownership.
//!
//! - Without authentication, only names in our local domains that resolve to an account
//!   (directly, by sub-address, or through aliases) are accepted, and known recipients of
//!   gateway domains (`[[gateway.route]]`): the MX role never relays elsewhere, except for a
//!   gateway's downstream sending its own domains' mail out (`relay`).
//!   Anything that is not a canonical local address (quoted local parts, `%` and `!` routing,
//!   address literals, lookalike domains) resolves to nothing and is refused.
//! - An authenticated user may send anywhere, but only as an address they own: their own, a
//!   sub-address of it, an alias delivering to them, or what `submission.allowed_senders` grants.

use std::collections::BTreeMap;

use rampart_auth::Identity;
use rampart_pipeline::{Entry, Outcome, Reason, Stage};
use rampart_store::{AccountId, StoreError, address};
use tracing::warn;

use super::{Connection, Role};
use crate::command::{Domain, ForwardPath};

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

/// A refused recipient: its trail entry, which `decide` answers.
fn refused(result: Outcome, reason: Reason) -> Entry {
    Entry::new(Stage::Recipients, result, reason)
}

impl Connection {
    /// Local accounts and remote addresses a recipient stands for, or why it is refused.
    /// `relay`: the transaction is a downstream relaying out, so any domain is allowed.
    pub(super) async fn resolve_recipient(&self, to: &ForwardPath, relay: bool) -> Result<(Vec<AccountId>, Vec<String>), Entry> {
        let relay_denied = || refused(Outcome::Fail, Reason::RelayDenied);
        let unknown = || refused(Outcome::Fail, Reason::UnknownUser);
        let tempfail = |e: StoreError| {
            warn!(event = "store_error", ip = %self.remote.ip(), error = %e.chain());
            refused(Outcome::TempError, Reason::StoreUnavailable)
        };
        let store = &self.services.store;
        let may_relay = (self.settings.role == Role::Submission && self.user.is_some()) || relay;

        let candidates: Vec<String> = match to {
            ForwardPath::Postmaster => {
                // The postmaster of the first local domain that has one answers for the server.
                let domains = store.list_domains().await.map_err(tempfail)?;
                domains.into_iter().map(|d| format!("postmaster@{d}")).collect()
            }
            ForwardPath::Mailbox(m) => {
                let Domain::Name(domain) = &m.domain else {
                    if may_relay {
                        return Err(refused(Outcome::Fail, Reason::AddressLiteral));
                    }
                    return Err(relay_denied());
                };
                if !store.is_local_domain(domain).await.map_err(tempfail)? {
                    if let Some(route) = self.services.gateway.route_for(domain) {
                        return self.gateway_recipient(route, m, domain).await;
                    }
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
                let Some((local, domain)) = canonical.rsplit_once('@') else { return Err(unknown()) };
                let base = address::strip_subaddress(local, &self.services.recipient_delimiter);
                let mut c = vec![canonical.clone()];
                if base != local {
                    c.push(format!("{base}@{domain}"));
                }
                c
            }
        };
        for candidate in candidates {
            let resolution = store.resolve(&candidate).await.map_err(tempfail)?;
            if !resolution.is_empty() {
                return Ok((resolution.accounts, resolution.remote));
            }
        }
        Err(unknown())
    }

    /// Whether `user` may use `sender` as MAIL FROM or in From:; the refusing entry if not.
    pub(super) async fn sender_allowed(&self, user: &Identity, sender: &str) -> Result<(), Entry> {
        let refuse = || Entry::new(Stage::Sender, Outcome::Fail, Reason::SenderNotOwned).detail(sender);
        let lower = sender.to_lowercase();
        if self.services.senders.permits(&user.address, &lower) {
            return Ok(());
        }
        let Ok(canonical) = address::canonical(sender) else { return Err(refuse()) };
        let Some((local, domain)) = canonical.rsplit_once('@') else { return Err(refuse()) };
        let base = format!("{}@{domain}", address::strip_subaddress(local, &self.services.recipient_delimiter));
        if canonical == user.address || base == user.address {
            return Ok(());
        }
        let aliases = self
            .services
            .store
            .aliases_of(&user.address)
            .await
            .map_err(|e| {
                warn!(event = "store_error", ip = %self.remote.ip(), error = %e.chain());
                Entry::new(Stage::Sender, Outcome::TempError, Reason::StoreUnavailable)
            })?;
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
