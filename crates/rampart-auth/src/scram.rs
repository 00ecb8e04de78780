//! SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) and its channel-binding variant.
//!
//! Written here on RustCrypto primitives (sha2, hmac, pbkdf2): the SCRAM crates on crates.io
//! are client-oriented or unmaintained, and the server side is a few pure functions.
//! Stored keys use the RFC 5803 form `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// RFC 9266: the channel binding type for TLS 1.3 (and TLS 1.2 with extended master secret).
pub const CHANNEL_BINDING_TYPE: &str = "tls-exporter";
/// RFC 9266 §2: the exporter label; the context is empty and the length 32.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The keys a server keeps for one password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramKeys {
    /// RFC 5802 §3: SaltedPassword = Hi(password, salt, i), and the two keys derived from it.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), salt, iterations, &mut salted)
            .expect("HMAC accepts any key length");
        let client_key = hmac(&salted, b"Client Key");
        ScramKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// The ClientKey of `password` under these keys' salt and iterations (`HMAC(Hi(password,
    /// salt, i), "Client Key")`): what a SCRAM exchange proves knowledge of. Never stored
    /// (only its hash, StoredKey); it unlocks a per-user key (rampart_store::peruser).
    pub fn client_key(&self, password: &str) -> Zeroizing<[u8; 32]> {
        let mut salted = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), &self.salt, self.iterations, &mut salted[..])
            .expect("HMAC accepts any key length");
        Zeroizing::new(hmac(&salted[..], b"Client Key"))
    }

    pub fn generate(password: &str, iterations: u32) -> ScramKeys {
        let salt: [u8; 16] = rand::random();
        ScramKeys::derive(password, &salt, iterations)
    }

    pub fn encode(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    pub fn decode(s: &str) -> Option<ScramKeys> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramKeys {
            iterations: iterations.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }
}

/// How the client answered the channel-binding question in its gs2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gs2Flag {
    /// "n": the client does not support channel binding.
    None,
    /// "y": the client supports it but thinks the server does not.
    SupportedNotUsed,
    /// "p=type": the client uses this binding type.
    Used(String),
}

/// The parts of a client-first-message the server needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub flag: Gs2Flag,
    pub authzid: Option<String>,
    pub username: String,
    pub nonce: String,
    /// "gs2-header": everything before the bare message, echoed in the final `c=`.
    pub gs2_header: String,
    pub bare: String,
}

/// RFC 5802 §5.1 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn printable_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

pub fn parse_client_first(msg: &str) -> Option<ClientFirst> {
    let (flag_part, rest) = msg.split_once(',')?;
    let flag = match flag_part {
        "n" => Gs2Flag::None,
        "y" => Gs2Flag::SupportedNotUsed,
        p => Gs2Flag::Used(p.strip_prefix("p=")?.to_string()),
    };
    let (authz_part, bare) = rest.split_once(',')?;
    let authzid = match authz_part {
        "" => None,
        a => Some(unescape(a.strip_prefix("a=")?)?),
    };
    let gs2_header = msg[..msg.len() - bare.len()].to_string();
    let mut fields = bare.split(',');
    // A leading "m=" is a mandatory extension we do not know: RFC 5802 §5.1 says fail.
    let username = unescape(fields.next()?.strip_prefix("n=")?)?;
    let nonce = fields.next()?.strip_prefix("r=")?.to_string();
    if username.is_empty() || !printable_nonce(&nonce) {
        return None;
    }
    Some(ClientFirst { flag, authzid, username, nonce, gs2_header, bare: bare.to_string() })
}

/// The server-first-message for a client nonce; returns (message, combined nonce).
pub fn server_first(client_nonce: &str, keys: &ScramKeys) -> (String, String) {
    let server_nonce: [u8; 18] = rand::random();
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    (format!("r={nonce},s={},i={}", B64.encode(&keys.salt), keys.iterations), nonce)
}

/// Checks a client-final-message. On success returns the server-final-message (`v=...`) and
/// the ClientKey, recovered as `ClientProof XOR ClientSignature` (RFC 5802 §3): a secret the
/// server never stores, which unlocks a per-user key.
///
/// `expected_cbind` is the exact `c=` payload the client must send: the gs2 header followed by
/// the channel-binding data when a binding is in use.
pub fn verify_client_final(
    msg: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    expected_cbind: &[u8],
    keys: &ScramKeys,
) -> Result<(String, Zeroizing<[u8; 32]>), FinalError> {
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(FinalError::Malformed)?;
    let mut fields = without_proof.split(',');
    let cbind = fields.next().and_then(|f| f.strip_prefix("c=")).ok_or(FinalError::Malformed)?;
    let their_nonce = fields.next().and_then(|f| f.strip_prefix("r=")).ok_or(FinalError::Malformed)?;
    if their_nonce != nonce {
        return Err(FinalError::Malformed);
    }
    let cbind = B64.decode(cbind).map_err(|_| FinalError::Malformed)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(cbind.as_slice(), expected_cbind)) {
        return Err(FinalError::ChannelBinding);
    }
    let proof = B64.decode(proof).map_err(|_| FinalError::Malformed)?;
    if proof.len() != 32 {
        return Err(FinalError::Malformed);
    }
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hmac(&keys.stored_key, auth_message.as_bytes());
    let mut client_key = Zeroizing::new([0u8; 32]);
    for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(client_signature)) {
        *k = p ^ s;
    }
    let stored: [u8; 32] = Sha256::digest(&client_key[..]).into();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&stored[..], &keys.stored_key[..])) {
        return Err(FinalError::Proof);
    }
    let server_signature = hmac(&keys.server_key, auth_message.as_bytes());
    Ok((format!("v={}", B64.encode(server_signature)), client_key))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalError {
    Malformed,
    ChannelBinding,
    Proof,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 test vector: user "user", password "pencil".
    #[test]
    fn rfc7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = ScramKeys::derive("pencil", &salt, 4096);
        let client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let first = parse_client_first(client_first).unwrap();
        assert_eq!(first.username, "user");
        assert_eq!(first.gs2_header, "n,,");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let v = verify_client_final(
            client_final,
            &first.bare,
            server_first,
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            b"n,,",
            &keys,
        )
        .unwrap();
        assert_eq!(v.0, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // The ClientKey the server recovers from the proof is the one the password gives,
        // and what StoredKey is the hash of.
        assert_eq!(*v.1, *keys.client_key("pencil"));
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&v.1[..])), keys.stored_key);
        assert_ne!(*keys.client_key("pencil2"), *v.1);
        let bad = client_final.replace("p=dHzb", "p=eHzb");
        assert!(verify_client_final(&bad, &first.bare, server_first, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", b"n,,", &keys).is_err());
    }

    #[test]
    fn keys_round_trip_and_names_unescape() {
        let k = ScramKeys::generate("secret", 4096);
        assert_eq!(ScramKeys::decode(&k.encode()).unwrap(), k);
        let f = parse_client_first("p=tls-exporter,a=a=3Db,n=x=2Cy,r=abc").unwrap();
        assert_eq!(f.flag, Gs2Flag::Used("tls-exporter".into()));
        assert_eq!(f.authzid.as_deref(), Some("a=b"));
        assert_eq!(f.username, "x,y");
        assert!(parse_client_first("n,,m=ext,n=u,r=abc").is_none());
        assert!(parse_client_first("n,,n=u=ZZ,r=abc").is_none());
    }
}
