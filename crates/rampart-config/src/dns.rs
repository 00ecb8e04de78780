//! `[dns]`: which resolvers the server asks.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dns {
        /// Resolvers as "IP:PORT". Empty means the system resolver (/etc/resolv.conf).
        pub nameservers: Vec<SocketAddr> = Vec::new(),
    }
}
