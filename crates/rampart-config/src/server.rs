//! `[server]`: the server's name, where its data lives, and its global connection cap.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::is_hostname;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        /// The name used in SMTP banners, EHLO replies and Received headers; publish it as your MX.
        pub hostname: String = "localhost".into(),
        /// The embedded store (SQLite metadata and message files) lives here.
        pub data_dir: PathBuf = "data".into(),
        /// Concurrent connections over all listeners together (each listener has its own cap too).
        pub max_connections: usize = 10_000,
    }
}

impl Server {
    pub(crate) fn validate(&self, p: &mut Problems) {
        p.at_least_one("server.max_connections", self.max_connections as u64);
        if !is_hostname(&self.hostname) {
            p.add("server.hostname", format!("`{}` is not a host name", self.hostname));
        }
    }
}
