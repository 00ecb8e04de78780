//! Authenticated encryption of a message file, chunk by chunk.
//!
//! Each message file of an encrypted store has its own random [`DataKey`]; each of its
//! compressed chunks ([`crate::codec`]) is sealed on its own with XChaCha20-Poly1305 in the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015; the `aead` crate's
//! `StreamBE32`): the nonce of a chunk is its index and a flag set only on the last chunk.
//! So a reader can open any chunk alone (a partial FETCH seeks as before), and a chunk that
//! was changed, moved to another place, taken from another message (another key) or a file
//! cut short at a chunk boundary (the new last chunk lacks the flag) fails to open.
//!
//! The nonce prefix is fixed (zeros): a data key seals exactly one file, once, so each
//! (key, nonce) pair is used once.

use std::io;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use zeroize::Zeroizing;

use crate::keys::{KEY_LEN, random_key};

/// Bytes a sealed chunk has beyond its plaintext (the Poly1305 tag).
pub const OVERHEAD: usize = 16;

/// The key of one message file.
pub struct DataKey {
    key: Zeroizing<[u8; KEY_LEN]>,
    stream: StreamBE32<XChaCha20Poly1305>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn damaged() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "encrypted blob: a chunk does not open (damaged, moved, cut short or a wrong key)")
}

impl DataKey {
    /// A new random key for a new file.
    pub fn generate() -> DataKey {
        DataKey::from_bytes(random_key())
    }

    pub fn from_bytes(key: Zeroizing<[u8; KEY_LEN]>) -> DataKey {
        let cipher = XChaCha20Poly1305::new((&*key).into());
        let stream = StreamBE32::from_aead(cipher, &Default::default());
        DataKey { key, stream }
    }

    /// The raw key, to be wrapped by a master key.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// Encrypts chunk `index` in place, appending its tag.
    pub fn seal(&self, index: usize, last: bool, chunk: &mut Vec<u8>) -> io::Result<()> {
        let position = u32::try_from(index).map_err(|_| io::Error::other("message too long to seal"))?;
        self.stream.encrypt_in_place(position, last, b"", chunk).map_err(|_| io::Error::other("sealing a chunk failed"))
    }

    /// Decrypts chunk `index` in place, checking its tag and its place.
    pub fn open(&self, index: usize, last: bool, chunk: &mut Vec<u8>) -> io::Result<()> {
        let position = u32::try_from(index).map_err(|_| damaged())?;
        self.stream.decrypt_in_place(position, last, b"", chunk).map_err(|_| damaged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &DataKey, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = c.to_vec();
                key.seal(i, i + 1 == chunks.len(), &mut v).unwrap();
                v
            })
            .collect()
    }

    fn opens(key: &DataKey, index: usize, last: bool, chunk: &[u8]) -> Option<Vec<u8>> {
        let mut v = chunk.to_vec();
        key.open(index, last, &mut v).ok().map(|()| v)
    }

    #[test]
    fn round_trip_and_no_plaintext() {
        let key = DataKey::generate();
        let parts = sealed(&key, &[b"Subject: secret marker", b"second", b"last"]);
        assert!(!parts[0].windows(6).any(|w| w == b"secret"));
        assert_eq!(parts[0].len(), 22 + OVERHEAD);
        assert_eq!(opens(&key, 0, false, &parts[0]).unwrap(), b"Subject: secret marker");
        assert_eq!(opens(&key, 2, true, &parts[2]).unwrap(), b"last");
        // The same key from its bytes (as unwrapped from the database) opens it too.
        let again = DataKey::from_bytes(Zeroizing::new(*key.bytes()));
        assert_eq!(opens(&again, 1, false, &parts[1]).unwrap(), b"second");
    }

    #[test]
    fn tampering_is_detected() {
        let key = DataKey::generate();
        let parts = sealed(&key, &[b"one", b"two"]);
        for i in 0..parts[0].len() {
            let mut bad = parts[0].clone();
            bad[i] ^= 0x20;
            assert!(opens(&key, 0, false, &bad).is_none(), "byte {i}");
        }
        assert!(opens(&key, 0, false, &parts[0][..parts[0].len() - 1]).is_none());
        assert!(opens(&DataKey::generate(), 0, false, &parts[0]).is_none(), "another message's key");
    }

    #[test]
    fn reordering_and_truncation_are_detected() {
        let key = DataKey::generate();
        let parts = sealed(&key, &[b"aaaa", b"bbbb", b"cccc"]);
        // Swapped chunks: each is read at the other's place.
        assert!(opens(&key, 0, false, &parts[1]).is_none());
        assert!(opens(&key, 1, false, &parts[0]).is_none());
        // Cut after chunk 1: the reader expects chunk 1 to be the last, and it is not.
        assert!(opens(&key, 1, true, &parts[1]).is_none());
        // The last chunk read as if more followed (a file extended with a copied chunk).
        assert!(opens(&key, 2, false, &parts[2]).is_none());
        assert!(opens(&key, 2, true, &parts[2]).is_some());
    }
}
