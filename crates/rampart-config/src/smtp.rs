//! `[smtp]`: SMTP behaviour shared by every SMTP listener.

use serde::{Deserialize, Serialize};

use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Smtp {
        /// "user+tag@domain" is delivered to "user@domain". Empty turns sub-addressing off.
        pub recipient_delimiter: String = "+".into(),
    }
}

impl Smtp {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.recipient_delimiter.chars().count() > 1 {
            p.add("smtp.recipient_delimiter", "must be one character or empty");
        }
    }
}
