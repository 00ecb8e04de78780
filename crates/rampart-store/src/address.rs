//! The canonical form of a mail address, shared by the CLI, the store and the protocols.
//!
//! Accounts and aliases are stored canonical: `local@domain`, both lowercased, the local part
//! a dot-atom (RFC 5321 §4.1.2), the domain a DNS name without a trailing dot. Anything else
//! (quoted local parts holding `@` or `%`, address literals, source routes) is not canonical
//! and therefore never names a local mailbox — which is exactly what keeps relay tricks such
//! as `"user@remote"@local` or `user%remote@local` from resolving to anything here.

use crate::{AddressProblem, StoreError};

/// Returns `address` in canonical form, or why it is not a valid mailbox address
/// ([`StoreError::InvalidAddress`]).
pub fn canonical(address: &str) -> Result<String, StoreError> {
    let bad = |problem| StoreError::InvalidAddress { address: address.to_string(), problem };
    let (local, domain) = address.rsplit_once('@').ok_or_else(|| bad(AddressProblem::NoAt))?;
    if !is_dot_atom(local) {
        return Err(bad(AddressProblem::LocalPart));
    }
    let domain = canonical_domain(domain).ok_or_else(|| bad(AddressProblem::Domain))?;
    Ok(format!("{}@{}", local.to_lowercase(), domain))
}

/// A domain name lowercased and without a trailing dot, or `None` when it is not a host name.
pub fn canonical_domain(domain: &str) -> Option<String> {
    let domain = domain.to_ascii_lowercase();
    let domain = domain.strip_suffix('.').unwrap_or(&domain);
    is_hostname(domain).then(|| domain.to_string())
}

/// The domain part of a canonical address.
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// RFC 5321 dot-atom; non-ASCII characters are allowed for SMTPUTF8 (RFC 6531).
pub fn is_dot_atom(s: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom.chars().all(|c| c.is_ascii_alphanumeric() || !c.is_ascii() || SPECIALS.contains(c))
        })
        // `%` routes mail through the host named after it on old sendmail setups; we
        // accept it in syntax only because RFC 5321 does, but never create accounts with it.
        && !s.contains('%')
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.contains(|c: char| c.is_ascii_alphabetic())
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Removes a sub-address tag: `bob+lists` → `bob` for delimiter `+`.
pub fn strip_subaddress<'a>(local: &'a str, delimiter: &str) -> &'a str {
    if delimiter.is_empty() {
        return local;
    }
    match local.split_once(delimiter) {
        Some((base, _)) if !base.is_empty() => base,
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lowercases_and_strips_the_root_dot() {
        assert_eq!(canonical("Bob@Example.TEST.").unwrap(), "bob@example.test");
        assert_eq!(canonical("first.last@example.test").unwrap(), "first.last@example.test");
    }

    #[test]
    fn relay_shapes_are_not_canonical() {
        for bad in [
            "user%remote@example.test",
            "\"user@remote\"@example.test",
            "user@[192.0.2.1]",
            "@example.test:user@remote.test",
            "bob@exa mple.test",
            ".bob@example.test",
            "bob.@example.test",
            "bo..b@example.test",
            "bob@example..test",
            "bob@-example.test",
            "bob",
            "bob@192.0.2.1",
        ] {
            assert!(matches!(canonical(bad), Err(StoreError::InvalidAddress { .. })), "{bad}");
        }
    }

    #[test]
    fn subaddress() {
        assert_eq!(strip_subaddress("bob+lists", "+"), "bob");
        assert_eq!(strip_subaddress("+lists", "+"), "+lists");
        assert_eq!(strip_subaddress("bob+lists", ""), "bob+lists");
    }
}
