//! `[cluster]`: this node's name among several Rampart nodes sharing one store (issue 18).

use serde::{Deserialize, Serialize};

use crate::section::Problems;

/// The longest node name: it is written beside every lease a node takes (queue entries, ACME
/// orders) and into log lines and metric labels, so it stays short.
const MAX_NODE_ID: usize = 64;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cluster {
        /// This node's name among the nodes that share one `[store]` (backend = "postgres"):
        /// the owner recorded with the queue entries and ACME orders it works on, logged at
        /// start (`event=started node=...`) and the `node` label of its metrics. Letters,
        /// digits, `.`, `_` and `-`, at most 64. "" (the default): this machine's host name
        /// (/proc/sys/kernel/hostname), else `server.hostname`. Give each node its own.
        pub node_id: String = String::new(),
    }
}

impl Cluster {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if !self.node_id.is_empty() && !valid_node_id(&self.node_id) {
            p.add(
                "cluster.node_id",
                format!("`{}`: use letters, digits, `.`, `_` and `-`, at most {MAX_NODE_ID}", self.node_id),
            );
        }
    }
}

fn valid_node_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NODE_ID && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl crate::Config {
    /// This node's name: `cluster.node_id`, or the machine's host name when it is empty, or
    /// `server.hostname` when that cannot be read (or is not a valid node name).
    pub fn node_id(&self) -> String {
        if !self.cluster.node_id.is_empty() {
            return self.cluster.node_id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| valid_node_id(h))
            .unwrap_or_else(|| self.server.hostname.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_node_id;

    #[test]
    fn node_ids() {
        assert!(valid_node_id("mx-1.example_org"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id("a b"));
        assert!(!valid_node_id(&"a".repeat(65)));
    }
}
