//! `[submission]`: what authenticated users may send, and what their mail reveals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Submission {
        /// Leave the client's IP address and HELO name out of the Received header of submitted
        /// mail, so recipients do not learn where the sender was.
        pub hide_client: bool = false,
        /// Users who may send as addresses they do not own (as MAIL FROM and in From:), none by
        /// default. Patterns: an address, "*@domain" or "*". For example:
        ///   "newsletter@example.org" = ["news@example.org", "*@lists.example.org"]
        pub allowed_senders: BTreeMap<String, Vec<String>> = BTreeMap::new(),
    }
}

impl Submission {
    pub(crate) fn validate(&self, p: &mut Problems) {
        for (user, patterns) in &self.allowed_senders {
            // The user is an address, full of dots: quoted, as TOML writes such a key.
            let key = format!("submission.allowed_senders.{}", crate::quoted_key(user));
            if !user.contains('@') {
                p.add(&key, "the key must be a user's address");
            }
            for pattern in patterns {
                if !(pattern == "*" || pattern.contains('@')) {
                    p.add(&key, format!("`{pattern}` is not an address, *@domain or *"));
                }
            }
        }
    }
}
