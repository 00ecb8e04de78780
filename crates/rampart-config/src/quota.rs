//! `[quota]`: sending quotas (fair use) for authenticated users and their domains.

use serde::{Deserialize, Serialize};

use crate::section::Problems;

/// The quota names: the keys of `[quota]` for one user, `domain_` + the name for a domain's
/// total, and what `rampart quota set ADDRESS|DOMAIN KEY VALUE` accepts.
pub const QUOTA_KEYS: [&str; 5] =
    ["messages_per_hour", "messages_per_day", "recipients_per_hour", "recipients_per_day", "external_recipients_per_day"];

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Quota {
        /// Count what each authenticated user and each domain sends and hold it to the limits
        /// below. Past one, MAIL or RCPT gets "451 4.7.1" naming the quota and the client tries
        /// again later. Counted in the store (a restart does not reset them), over the last hour
        /// and the last day in 5-minute steps; 0 turns a limit off. `rampart quota show ADDRESS`
        /// shows the counts; `rampart quota set ADDRESS|DOMAIN KEY VALUE` overrides a limit for
        /// one user or one domain's total; `rampart quota exempt ADDRESS|DOMAIN` exempts a
        /// newsletter sender or a ticket system (never held to quotas, never suspended). All of
        /// them take effect at once, also while the server runs.
        pub enabled: bool = true,
        /// Messages one user may submit per hour.
        pub messages_per_hour: u64 = 200,
        /// Messages one user may submit per day.
        pub messages_per_day: u64 = 1000,
        /// Recipients (local or not) one user may send to per hour.
        pub recipients_per_hour: u64 = 500,
        /// Recipients one user may send to per day.
        pub recipients_per_day: u64 = 1000,
        /// Different recipients outside our domains one user may send to per day.
        pub external_recipients_per_day: u64 = 500,
        /// Messages all users of one domain together may submit per hour.
        pub domain_messages_per_hour: u64 = 2000,
        /// Messages all users of one domain together may submit per day.
        pub domain_messages_per_day: u64 = 10000,
        /// Recipients all users of one domain together may send to per hour.
        pub domain_recipients_per_hour: u64 = 5000,
        /// Recipients all users of one domain together may send to per day.
        pub domain_recipients_per_day: u64 = 20000,
        /// Different recipients outside our domains one domain's users may send to per day.
        pub domain_external_recipients_per_day: u64 = 10000,
    }
}

impl Quota {
    /// The configured limit named `key` (one of [`QUOTA_KEYS`]) for a user, or for a domain's
    /// total. None for an unknown name.
    pub fn limit(&self, key: &str, domain: bool) -> Option<u64> {
        let (user, total) = match key {
            "messages_per_hour" => (self.messages_per_hour, self.domain_messages_per_hour),
            "messages_per_day" => (self.messages_per_day, self.domain_messages_per_day),
            "recipients_per_hour" => (self.recipients_per_hour, self.domain_recipients_per_hour),
            "recipients_per_day" => (self.recipients_per_day, self.domain_recipients_per_day),
            "external_recipients_per_day" => (self.external_recipients_per_day, self.domain_external_recipients_per_day),
            _ => return None,
        };
        Some(if domain { total } else { user })
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        for key in QUOTA_KEYS {
            let (user, total) = (self.limit(key, false).unwrap_or(0), self.limit(key, true).unwrap_or(0));
            // One user alone past the whole domain's limit would never reach their own.
            if user > 0 && total > 0 && user > total {
                p.add(format!("quota.{key}"), format!("is higher than quota.domain_{key}"));
            }
        }
    }
}
