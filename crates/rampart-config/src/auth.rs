//! `[auth]`: SASL mechanisms, password policy, password hashing cost, failed-login pacing and
//! the verified-credential cache.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Auth {
        /// Offer CRAM-MD5. Off: it needs a password-equivalent secret stored on the server (only
        /// passwords set while it is on get one), and it hides nothing TLS does not already
        /// protect. DIGEST-MD5 is never offered (RFC 6331 made it historic).
        pub cram_md5: bool = false,
        /// Shortest password `user add` and `user passwd` accept, in characters. Passwords
        /// containing the user's name or domain, or in a list of common passwords, are refused too.
        pub password_min_length: usize = 12,
        /// Lowest zxcvbn strength score (0-4) a new password needs.
        pub password_min_score: u8 = 3,
        /// `rampart audit` reports passwords not changed for this many days (and, while this is
        /// on, passwords set before Rampart recorded the date). 0: off, the default — NIST SP
        /// 800-63B advises against forced periodic changes, which push users to predictable
        /// variations; set it where your own policy requires a maximum age.
        pub password_max_age_days: u32 = 0,
        /// argon2id memory cost in KiB (OWASP minimum: 19 MiB). Old hashes keep their own cost.
        pub argon2_memory_kib: u32 = 19456,
        /// argon2id passes (OWASP minimum: 2).
        pub argon2_iterations: u32 = 2,
        /// argon2id lanes (OWASP minimum: 1).
        pub argon2_parallelism: u32 = 1,
        /// PBKDF2 rounds for SCRAM-SHA-256 keys (RFC 7677 asks for at least 4096).
        pub scram_iterations: u32 = 4096,
        /// Failed authentications in one session before it is closed.
        pub max_failures: u32 = 3,
        /// Pause before each failure reply, multiplied by the number of failures so far.
        #[serde(with = "duration")]
        pub failure_delay: Duration = Duration::from_secs(1),
        /// Remember a password for `credential_cache_ttl` after argon2 accepted it (in memory,
        /// as a keyed hash), so a client that reconnects often costs a hash, not an argon2 run.
        /// A password change, a revoked app password or a removed account takes effect at the
        /// next login all the same. Trade-off: someone who can read the server's memory could
        /// test guesses against a cached entry at hash speed instead of argon2 speed. Off:
        /// every login pays argon2.
        pub credential_cache: bool = true,
        /// How long a verified password stays in the credential cache.
        #[serde(with = "duration")]
        pub credential_cache_ttl: Duration = Duration::from_secs(3600),
    }
}

impl Auth {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.password_min_length < 8 {
            p.add("auth.password_min_length", "must be at least 8");
        }
        if self.password_min_score > 4 {
            p.add("auth.password_min_score", "is a zxcvbn score from 0 to 4");
        }
        p.at_least_one("auth.argon2_iterations", self.argon2_iterations.into());
        p.at_least_one("auth.argon2_parallelism", self.argon2_parallelism.into());
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1) {
            p.add("auth.argon2_memory_kib", "argon2 needs at least 8 KiB per lane (argon2_parallelism)");
        }
        if self.scram_iterations < 4096 {
            p.add("auth.scram_iterations", "must be at least 4096 (RFC 7677)");
        }
        p.at_least_one("auth.max_failures", self.max_failures.into());
    }
}
