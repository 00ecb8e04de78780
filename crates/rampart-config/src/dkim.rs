//! `[dkim]`: DKIM signing of submitted mail and ARC sealing of forwarded mail. The keys are in
//! the store (`rampart dkim keygen`).

use serde::{Deserialize, Serialize};

/// Which of OpenSSL's RSA code paths makes DKIM signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpensslRsa {
    /// Time OpenSSL's default and its AVX2 code at start and keep the faster.
    Measure,
    /// OpenSSL's own choice.
    Default,
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dkim {
        /// Sign mail that authenticated users submit when its From domain has keys.
        pub sign: bool = true,
        /// ARC-seal mail that local aliases forward to other servers, with the alias domain's key.
        pub arc_seal: bool = true,
        /// Which of OpenSSL's RSA code paths signs: "measure" times OpenSSL's default and its
        /// AVX2 code when the server starts (a few milliseconds, the process restarting itself
        /// once or twice before it opens anything) and keeps the AVX2 code when it was the faster;
        /// "default" leaves OpenSSL's choice. OpenSSL takes its MULX/ADX code
        /// wherever the CPU has it, the faster on Intel CPUs; on an AMD CPU its AVX2 code signed
        /// 10-20% faster, and signing is most of the CPU outbound mail costs. The signatures are
        /// the same either way. An OPENSSL_ia32cap in the environment is always left alone.
        pub openssl_rsa: OpensslRsa = OpensslRsa::Measure,
    }
}
