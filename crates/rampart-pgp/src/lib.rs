//! OpenPGP for end-to-end users (issue 16), without I/O: a user's public key checked and
//! described ([`key`]), mail that must stay as it is recognised ([`detect`]), delivered mail
//! wrapped as PGP/MIME (RFC 3156) encrypted to the key, Subject optionally protected
//! ([`mime`]), and the Web Key Directory's names ([`wkd`]). The cryptography is rPGP's.
#![forbid(unsafe_code)]

pub mod detect;
pub mod key;
pub mod mime;
pub mod wkd;

pub use detect::{Protection, protection};
pub use key::{KeyError, KeyInfo, UserKey};
pub use mime::{EncryptError, encrypt};
