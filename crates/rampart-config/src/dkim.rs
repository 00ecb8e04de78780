//! `[dkim]`: DKIM signing of submitted mail and ARC sealing of forwarded mail. The keys are in
//! the store (`rampart dkim keygen`).

use serde::{Deserialize, Serialize};

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dkim {
        /// Sign mail that authenticated users submit when its From domain has keys.
        pub sign: bool = true,
        /// ARC-seal mail that local aliases forward to other servers, with the alias domain's key.
        pub arc_seal: bool = true,
    }
}
