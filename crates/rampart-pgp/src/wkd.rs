//! Web Key Directory names (draft-koch-openpgpkey-webkey-service §3.1): a key is published
//! under the z-base-32 form of the SHA-1 of the lowercased local part.

use sha1::{Digest, Sha1};

/// The `hu` name of `local` (the part before the `@`): 32 z-base-32 characters.
pub fn hashed_local(local: &str) -> String {
    // §3.1: "mapping all upper-case ASCII characters to lower-case characters" only.
    let digest = Sha1::digest(local.to_ascii_lowercase().as_bytes());
    base32::encode(base32::Alphabet::Z, &digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drafts_example() {
        // §3.1's example: Joe.Doe@Example.ORG.
        assert_eq!(hashed_local("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
    }
}
