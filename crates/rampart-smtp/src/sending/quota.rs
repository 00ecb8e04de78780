//! Sending quotas without I/O: the limits that apply to one user (the config's, with the
//! overrides set for the user and for its domain) and whether one more message or recipient
//! would go past one of them. The session keeps a [`QuotaState`] from MAIL to the end of the
//! transaction, so RCPT asks the store only when a distinct-recipient limit is close.

use rampart_config::{QUOTA_KEYS, Quota};
use rampart_store::quota::{QuotaStatus, Usage};

/// One quota of [`QUOTA_KEYS`], by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    MessagesPerHour = 0,
    MessagesPerDay = 1,
    RecipientsPerHour = 2,
    RecipientsPerDay = 3,
    ExternalPerDay = 4,
}

impl Key {
    fn used(self, u: &Usage) -> u64 {
        match self {
            Key::MessagesPerHour => u.messages_hour,
            Key::MessagesPerDay => u.messages_day,
            Key::RecipientsPerHour => u.recipients_hour,
            Key::RecipientsPerDay => u.recipients_day,
            Key::ExternalPerDay => u.external_day,
        }
    }
}

/// The limits of a user and of its domain, in [`QUOTA_KEYS`] order; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub user: [u64; 5],
    pub domain: [u64; 5],
}

impl Limits {
    /// The config's limits with the overrides of the user and of its domain applied.
    pub fn new(config: &Quota, user_overrides: &[(String, u64)], domain_overrides: &[(String, u64)]) -> Limits {
        let pick = |domain: bool, overrides: &[(String, u64)]| {
            QUOTA_KEYS.map(|k| overrides.iter().find(|(o, _)| o == k).map_or_else(|| config.limit(k, domain).unwrap_or(0), |(_, v)| *v))
        };
        Limits { user: pick(false, user_overrides), domain: pick(true, domain_overrides) }
    }
}

/// A quota a message or recipient would go past: its name (`domain_` + key for the domain's
/// total) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub name: String,
    pub limit: u64,
}

/// What one transaction of a user counts against its quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    pub account: String,
    pub limits: Limits,
    pub user: Usage,
    pub domain: Usage,
    /// External recipients of this transaction that count as new for the day.
    pub new_external: Vec<String>,
    /// A quota refused a recipient of this transaction already: one transaction is one
    /// containment signal, however many recipients it had.
    pub hit: bool,
    /// A gateway downstream's relayed mail: `account` is its envelope sender, no account of
    /// ours, so a refusal is no containment signal.
    pub relay: bool,
}

/// Whether adding `adding` to `used` goes past `limit` (0: no limit).
fn over(limit: u64, used: u64, adding: u64) -> bool {
    limit > 0 && used + adding > limit
}

impl QuotaState {
    pub fn new(config: &Quota, account: &str, status: &QuotaStatus) -> QuotaState {
        QuotaState {
            account: account.to_string(),
            limits: Limits::new(config, &status.user_overrides, &status.domain_overrides),
            user: status.user,
            domain: status.domain,
            new_external: Vec::new(),
            hit: false,
            relay: false,
        }
    }

    /// The first of `keys` that adding `adding` would exceed, the user's before the domain's.
    fn first_over(&self, keys: &[Key], adding: impl Fn(Key) -> u64) -> Option<Exceeded> {
        for (domain, limits, usage) in [(false, &self.limits.user, &self.user), (true, &self.limits.domain, &self.domain)] {
            for &k in keys {
                let limit = limits[k as usize];
                if over(limit, k.used(usage), adding(k)) {
                    let key = QUOTA_KEYS[k as usize];
                    return Some(Exceeded { name: if domain { format!("domain_{key}") } else { key.to_string() }, limit });
                }
            }
        }
        None
    }

    /// At MAIL: one more message, and room for at least one recipient.
    pub fn check_message(&self) -> Option<Exceeded> {
        use Key as K;
        self.first_over(&[K::MessagesPerHour, K::MessagesPerDay, K::RecipientsPerHour, K::RecipientsPerDay], |_| 1)
    }

    /// At RCPT: one more recipient after `so_far` accepted ones.
    pub fn check_recipient(&self, so_far: usize) -> Option<Exceeded> {
        self.first_over(&[Key::RecipientsPerHour, Key::RecipientsPerDay], |_| so_far as u64 + 1)
    }

    /// At RCPT, for an external recipient not counted yet: the distinct-recipient quota it
    /// would exceed if it is new for the day (for the user, `false`, or the domain, `true`).
    pub fn check_external(&self) -> Option<(bool, Exceeded)> {
        let adding = self.new_external.len() as u64 + 1;
        let key = QUOTA_KEYS[Key::ExternalPerDay as usize];
        if over(self.limits.user[Key::ExternalPerDay as usize], self.user.external_day, adding) {
            return Some((false, Exceeded { name: key.to_string(), limit: self.limits.user[Key::ExternalPerDay as usize] }));
        }
        let limit = self.limits.domain[Key::ExternalPerDay as usize];
        over(limit, self.domain.external_day, adding).then(|| (true, Exceeded { name: format!("domain_{key}"), limit }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(user: Usage, domain: Usage, overrides: &[(&str, u64)]) -> QuotaState {
        let status = QuotaStatus {
            user,
            domain,
            user_overrides: overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..QuotaStatus::default()
        };
        QuotaState::new(&Quota::default(), "bob@example.test", &status)
    }

    #[test]
    fn the_n_plus_first_message_is_over() {
        let at = |n| state(Usage { messages_hour: n, messages_day: n, ..Usage::default() }, Usage::default(), &[]);
        assert_eq!(at(199).check_message(), None);
        assert_eq!(at(200).check_message(), Some(Exceeded { name: "messages_per_hour".into(), limit: 200 }));
        // An override replaces the default; 0 is no limit.
        let s = state(Usage { messages_hour: 200, messages_day: 200, ..Usage::default() }, Usage::default(), &[("messages_per_hour", 0)]);
        assert_eq!(s.check_message(), None);
        let s = state(Usage { messages_hour: 3, ..Usage::default() }, Usage::default(), &[("messages_per_hour", 3)]);
        assert_eq!(s.check_message().unwrap().limit, 3);
    }

    #[test]
    fn the_domain_total_counts_everyone() {
        let s = state(Usage::default(), Usage { messages_day: 10_000, ..Usage::default() }, &[]);
        assert_eq!(s.check_message(), Some(Exceeded { name: "domain_messages_per_day".into(), limit: 10_000 }));
    }

    #[test]
    fn recipients_count_what_the_transaction_has() {
        let s = state(Usage { recipients_hour: 498, ..Usage::default() }, Usage::default(), &[]);
        assert_eq!(s.check_recipient(0), None);
        assert_eq!(s.check_recipient(1), None);
        assert_eq!(s.check_recipient(2).unwrap().name, "recipients_per_hour");
        // A full recipient quota refuses at MAIL already.
        let full = state(Usage { recipients_day: 1000, ..Usage::default() }, Usage::default(), &[]);
        assert_eq!(full.check_message().unwrap().name, "recipients_per_day");
    }

    #[test]
    fn distinct_external_recipients() {
        let mut s = state(Usage { external_day: 499, ..Usage::default() }, Usage::default(), &[]);
        assert_eq!(s.check_external(), None);
        s.new_external.push("a@remote.test".into());
        let (domain, e) = s.check_external().unwrap();
        assert!(!domain);
        assert_eq!((e.name.as_str(), e.limit), ("external_recipients_per_day", 500));
        let s = state(Usage::default(), Usage { external_day: 10_000, ..Usage::default() }, &[]);
        assert_eq!(s.check_external().map(|(d, e)| (d, e.name)), Some((true, "domain_external_recipients_per_day".into())));
    }
}
