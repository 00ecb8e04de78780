//! Sealed summaries of per-user messages (issue 16): a message's [`Summary`] (sort keys,
//! searched headers, ENVELOPE/BODYSTRUCTURE and its words) kept beside the message, encrypted
//! with a key derived from the message's own data key — the one sealed to the user's public
//! key in `blobs.dkey`. So delivery needs no secret (the data key is fresh and known while
//! the message is written), and the summary opens exactly when the message does: while a
//! login of the user holds the secret key.
//!
//! The summary key is HKDF-SHA256(data key, "rampart sealed summary"), so the data key itself
//! seals only the message file (its STREAM nonces never meet ours); the record is zstd
//! compressed then sealed with XChaCha20-Poly1305 under a random nonce, the blob id as
//! associated data (a record moved to another message does not open). No primitive is
//! hand-written.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2_010::Sha256;
use zeroize::Zeroizing;

use crate::keys::KEY_LEN;
use crate::summary::{Summary, WordMatch};

const NONCE_LEN: usize = 24;
/// The first byte of a record: its layout.
const LAYOUT: u8 = 1;

fn summary_key(data_key: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(None, data_key).expand(b"rampart sealed summary", &mut out[..]).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let field = data.get(4..4 + len)?;
    *data = &data[4 + len..];
    Some(field)
}

/// `s` sealed for blob `blob_id` under (a key derived from) its data key.
pub fn seal(data_key: &[u8; KEY_LEN], blob_id: &str, s: &Summary) -> Vec<u8> {
    let mut plain = Zeroizing::new(Vec::with_capacity(s.keys.len() + s.headers.len() + s.fetch.len() + 64));
    plain.push(LAYOUT);
    plain.extend_from_slice(&s.version.to_le_bytes());
    put(&mut plain, &s.keys);
    put(&mut plain, &s.headers);
    put(&mut plain, &s.fetch);
    match &s.words {
        Some(w) => {
            plain.push(1);
            put(&mut plain, w.as_bytes());
        }
        None => plain.push(0),
    }
    // The record's length first, so that opening allocates exactly that (and zeroizes no more).
    let mut packed = Zeroizing::new((plain.len() as u32).to_le_bytes().to_vec());
    packed.extend_from_slice(&Zeroizing::new(zstd::bulk::compress(&plain, 3).expect("zstd compresses a buffer in memory")));
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce[..]);
    let sealed = XChaCha20Poly1305::new((&*summary_key(data_key)).into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &packed, aad: blob_id.as_bytes() })
        .expect("XChaCha20-Poly1305 encrypts any summary");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// The summary [`seal`] sealed for `blob_id`; None when it does not open (another key or
/// blob, damaged) or does not parse.
pub fn open(data_key: &[u8; KEY_LEN], blob_id: &str, data: &[u8]) -> Option<Summary> {
    let (nonce, sealed) = data.split_at_checked(NONCE_LEN)?;
    let packed = Zeroizing::new(
        XChaCha20Poly1305::new((&*summary_key(data_key)).into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: blob_id.as_bytes() })
            .ok()?,
    );
    let (len, compressed) = packed.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let plain = Zeroizing::new(zstd::bulk::decompress(compressed, len).ok()?);
    let (&layout, mut rest) = plain.split_first()?;
    if layout != LAYOUT {
        return None;
    }
    let version = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let keys = take(&mut rest)?.to_vec();
    let headers = take(&mut rest)?.to_vec();
    let fetch = take(&mut rest)?.to_vec();
    let (&has_words, mut rest) = rest.split_first()?;
    let words = match has_words {
        1 => Some(String::from_utf8(take(&mut rest)?.to_vec()).ok()?),
        _ => None,
    };
    Some(Summary { keys, headers, fetch, words, version })
}

/// Whether words (space-separated, as [`Summary::words`]) satisfy every condition. A bare
/// [`WordMatch::OneOf`] list comes from the shared index's vocabulary, which holds no word of
/// a sealed summary: it cannot rule a sealed one out, so it counts as met (the scan then reads
/// the message, as for any candidate); `EndsWith` and `Contains` are matched by their text.
pub fn words_match(words: &str, conditions: &[WordMatch]) -> bool {
    conditions.iter().all(|c| match c {
        WordMatch::Is(w) => words.split(' ').any(|x| x == w),
        WordMatch::StartsWith(w) => words.split(' ').any(|x| x.starts_with(w.as_str())),
        WordMatch::EndsWith { suffix, .. } => words.split(' ').any(|x| x.ends_with(suffix.as_str())),
        WordMatch::Contains { fragment, .. } => words.split(' ').any(|x| x.contains(fragment.as_str())),
        WordMatch::OneOf(_) => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::random_key;

    #[test]
    fn round_trip_bound_to_key_and_blob() {
        let key = random_key();
        let s = Summary { keys: b"k".to_vec(), headers: b"subject\0zebra".to_vec(), fetch: vec![], words: Some("zebra quokka".into()), version: 2 };
        let sealed = seal(&key, "blob1", &s);
        assert!(!sealed.windows(5).any(|w| w == b"zebra"));
        assert_eq!(open(&key, "blob1", &sealed), Some(s.clone()));
        assert_eq!(open(&key, "blob2", &sealed), None, "bound to its blob");
        assert_eq!(open(&random_key(), "blob1", &sealed), None, "another message's key");
        let none = Summary { words: None, ..s };
        assert_eq!(open(&key, "b", &seal(&key, "b", &none)), Some(none));
    }

    #[test]
    fn words_conditions() {
        let words = "the quokka zebra";
        assert!(words_match(words, &[WordMatch::Is("quokka".into()), WordMatch::StartsWith("zeb".into())]));
        assert!(!words_match(words, &[WordMatch::Is("quok".into())]));
        assert!(words_match(words, &[WordMatch::OneOf(vec![])]), "cannot rule out");
        assert!(words_match(words, &[WordMatch::Contains { fragment: "okk".into(), known: vec![] }]));
        assert!(words_match(words, &[WordMatch::EndsWith { suffix: "bra".into(), known: vec![] }]));
        assert!(!words_match(words, &[WordMatch::Contains { fragment: "xyz".into(), known: vec!["xyzzy".into()] }]));
    }
}
