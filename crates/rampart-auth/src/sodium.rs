//! argon2 verification by libsodium.
//!
//! Logins are dominated by argon2. libsodium's implementation (hand-written SSSE3/AVX2/AVX-512
//! block functions, chosen at run time) checks a default-cost hash in about 12 ms on our
//! bench machine where the argon2 crate takes about 17 ms, which is the difference between
//! 1.5× and 1.7× Dovecot's IMAP session throughput (bench/results.md). Dovecot uses the same
//! library for the same job.

use std::ffi::CString;
use std::sync::OnceLock;

/// `Some(true)` if the password matches, `Some(false)` if not, `None` if libsodium could not
/// be initialised (the caller falls back to the argon2 crate).
pub(crate) fn verify(password: &str, stored: &str) -> Option<bool> {
    // SAFETY: sodium_init is thread-safe and may be called more than once.
    static READY: OnceLock<bool> = OnceLock::new();
    if !*READY.get_or_init(|| unsafe { libsodium_sys::sodium_init() } >= 0) {
        return None;
    }
    let stored = CString::new(stored).ok()?;
    // SAFETY: `stored` is NUL-terminated and outlives the call; the password is passed with
    // its length and only read. The generic verifier picks argon2i or argon2id from the prefix.
    let r = unsafe {
        libsodium_sys::crypto_pwhash_str_verify(stored.as_ptr(), password.as_ptr().cast(), password.len() as u64)
    };
    Some(r == 0)
}
