//! `[store.encryption]`: encryption at rest of the stored mail.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Encryption {
        /// "off": mail is stored compressed but readable by whoever reads the data directory.
        /// "server": the database (headers, summaries, the search index, small messages, the
        /// queue and the quarantine, its WAL included) is encrypted with SQLCipher and each
        /// message file with its own key (XChaCha20-Poly1305 per 256 KiB chunk), all wrapped by
        /// the master key. The server refuses to start without the right key, and never starts
        /// in clear over an encrypted store. An existing clear store is converted by `rampart
        /// store encrypt` (with the server running — it converts while it serves — or not).
        pub mode: EncryptionMode = EncryptionMode::Off,
        /// The master key file, made by `rampart keys generate` (mode 0600). Relative to the
        /// config file's directory, and outside `data_dir` by default: a copy of the data
        /// alone reveals nothing. Back it up apart from the data: without it the mail is
        /// lost. Used when neither the variable below nor a systemd credential gives the key.
        pub key_file: PathBuf = "master.key".into(),
        /// An environment variable that holds the key text instead (the content of a key file);
        /// it wins over `key_file` when set. Empty: no variable is read.
        pub key_env: String = "RAMPART_MASTER_KEY".into(),
        /// The name of a systemd credential (`LoadCredentialEncrypted=NAME:...` in the unit;
        /// read from `$CREDENTIALS_DIRECTORY/NAME`) that holds the key text; it wins over
        /// `key_file` when present. Empty: none is read.
        pub credential: String = "rampart-master-key".into(),
    }
}

/// How stored mail is protected; see [`Encryption::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMode {
    Off,
    Server,
}

impl Encryption {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.mode == EncryptionMode::Server && self.key_file.as_os_str().is_empty() && self.key_env.is_empty() && self.credential.is_empty() {
            p.add("store.encryption.key_file", "mode = \"server\" needs a key: set key_file, key_env or credential".to_string());
        }
        if self.credential.contains('/') {
            p.add("store.encryption.credential", "a credential name, not a path".to_string());
        }
    }
}
