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
        /// Started as root, the server binds its ports, opens its files and gives the data
        /// directory to this user, then becomes it (and its group), keeping no capabilities.
        /// Started as another user it stays that user. Create it with
        /// `adduser --system --group rampart`.
        pub user: String = "rampart".into(),
        /// The group to run as; empty: the user's primary group.
        pub group: String = String::new(),
        /// Keep running as root when started as root. Off: a server parsing what the internet
        /// sends should not hold root, where one bug would hand over the machine.
        pub allow_root: bool = false,
    }
}

impl Server {
    pub(crate) fn validate(&self, p: &mut Problems) {
        p.at_least_one("server.max_connections", self.max_connections as u64);
        if self.user.is_empty() || self.user == "root" {
            p.add("server.user", "name an unprivileged user (set server.allow_root = true to run as root)".to_string());
        }
        if !is_hostname(&self.hostname) {
            p.add("server.hostname", format!("`{}` is not a host name", self.hostname));
        }
    }
}
