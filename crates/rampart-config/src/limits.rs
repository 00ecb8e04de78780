//! `[limits]`: exceptions to the listeners' message limits for particular senders — a mailing
//! list host that needs more recipients, a scanner that sends large reports. The limits
//! themselves are per listener (`[listener.NAME]`).

use serde::{Deserialize, Serialize};

use crate::is_hostname;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        /// Overrides for senders: `match` is an address or a domain, compared with the
        /// authenticated user on submission and with the envelope sender on the MX (where it is
        /// only a claim: prefer raising limits for authenticated senders). The first match wins;
        /// its keys replace the listener's. None by default; for example:
        ///   [[limits.override]]
        ///   match = "lists.example.org"
        ///   max_recipients = 5000
        ///   [[limits.override]]
        ///   match = "scanner@example.org"
        ///   max_message_size = 104857600
        ///   max_attachment_size = 104857600
        pub r#override: Vec<LimitOverride> = Vec::new(),
    }
}

/// One `[[limits.override]]`: the keys it sets replace the listener's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    #[serde(rename = "match")]
    pub matches: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_fields: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_received: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mime_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mime_parts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_part_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attachment_size: Option<u64>,
}

impl LimitOverride {
    /// Whether `sender` (an address, lowercase) is this override's address or in its domain.
    pub fn applies_to(&self, sender: &str) -> bool {
        let m = self.matches.to_ascii_lowercase();
        if m.contains('@') {
            return sender == m;
        }
        sender.rsplit_once('@').is_some_and(|(_, d)| d.trim_end_matches('.') == m)
    }
}

impl Limits {
    pub(crate) fn validate(&self, p: &mut Problems) {
        for (i, o) in self.r#override.iter().enumerate() {
            let key = format!("limits.override[{i}].match");
            let domain = o.matches.rsplit_once('@').map_or(o.matches.as_str(), |(_, d)| d);
            if o.matches.is_empty() || !is_hostname(domain) {
                p.add(key, format!("`{}` is neither an address nor a domain", o.matches));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_addresses_and_domains() {
        let o = |m: &str| LimitOverride { matches: m.into(), ..Default::default() };
        assert!(o("lists.example.org").applies_to("news@lists.example.org"));
        assert!(!o("lists.example.org").applies_to("news@example.org"));
        assert!(o("Scanner@Example.org").applies_to("scanner@example.org"));
        assert!(!o("scanner@example.org").applies_to("other@example.org"));
    }
}
