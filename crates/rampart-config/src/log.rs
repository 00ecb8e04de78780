//! `[log]`: how much the server logs, and where.

use serde::{Deserialize, Serialize};

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Log {
        /// error, warn, info, debug, trace, or a filter like "info,rampart_smtp=debug".
        /// The RUST_LOG environment variable wins when it is set.
        pub level: String = "info".into(),
        /// Also append log lines to this file, e.g. for fail2ban (contrib/fail2ban/); "" for
        /// stderr only.
        pub file: String = String::new(),
    }
}
