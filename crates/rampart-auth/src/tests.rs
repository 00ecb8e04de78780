use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rampart_store::SqliteStore;
use rampart_store::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

#[test]
fn hash_and_verify() {
    let h = hash_password("correct horse battery staple", HashParams::default()).unwrap();
    assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    assert!(verify_password("correct horse battery staple", &h));
    assert!(!verify_password("correct horse battery stapler", &h));
    assert!(!verify_password("x", "not a hash"));
    let again = hash_password("correct horse battery staple", HashParams::default()).unwrap();
    assert_ne!(h, again, "salts must differ");
}

#[test]
fn both_argon2_implementations_agree() {
    // One lane: libsodium. Two lanes: the argon2 crate, in a reused work area.
    let one = hash_password("first password here", HashParams::default()).unwrap();
    let two = hash_password("second password", HashParams { memory_kib: 64, iterations: 1, parallelism: 2 }).unwrap();
    // A foreign but valid PHC string (argon2i, other lengths) must verify too.
    let foreign = "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";
    assert_eq!(sodium::verify("first password here", &one), Some(true));
    assert_eq!(sodium::verify("first password herE", &one), Some(false));
    let mut area = Vec::new();
    for _ in 0..2 {
        assert!(verify_password_in("first password here", &one, &mut area));
        assert!(!verify_password_in("second password", &one, &mut area));
        assert!(verify_password_in("second password", &two, &mut area));
        assert!(!verify_password_in("first password here", &two, &mut area));
        assert!(verify_password_in("password", foreign, &mut area));
        assert!(!verify_password_in("passwore", foreign, &mut area));
    }
    assert_eq!(area.len(), 64, "only the two-lane hash used the work area");
    // The same hash checked by the argon2 crate, for the record.
    let parsed = argon2::password_hash::phc::PasswordHash::new(&one).unwrap();
    assert!(argon2::PasswordVerifier::verify_password(&Argon2::default(), b"first password here", &parsed).is_ok());
}

#[tokio::test(start_paused = true)]
async fn work_areas_are_freed_once_logins_stop() {
    let work = Arc::new(work::WorkAreas::default());
    // An area libsodium's check left ungrown is not worth keeping.
    work.give_back(work.take());
    assert_eq!(work.kept(), 0);
    let mut area = work.take();
    area.push(argon2::Block::default());
    work.give_back(area);
    assert_eq!(work.kept(), 1);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let area = work.take();
    work.give_back(area);
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert_eq!(work.kept(), 1, "a login 8 s ago keeps it");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(work.kept(), 0, "freed 10 s after the last login");
}

#[test]
fn app_passwords_look_right() {
    let p = new_app_password();
    assert_eq!(p.len(), 19);
    assert_eq!(p.split('-').count(), 4);
    assert_ne!(p, new_app_password());
}

const PASSWORD: &str = "correct horse battery staple";

async fn setup(cram: bool) -> (tempfile::TempDir, Arc<Authenticator>, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store.add_domain("example.test").await.unwrap();
    let settings = AuthSettings { cram_md5: cram, hash: HashParams::default(), scram_iterations: 4096, hostname: "mx.example.test".into(), credential_cache: Some(std::time::Duration::from_secs(60)) };
    let auth = Authenticator::new(store.clone(), settings.clone()).unwrap();
    store.add_account_with("bob@example.test", &secrets_for(PASSWORD, &settings).unwrap()).await.unwrap();
    (dir, auth, store)
}

async fn run(auth: &Arc<Authenticator>, mech: Mechanism, cb: Option<Vec<u8>>, responses: &[&[u8]]) -> Step {
    let mut ex = auth.start(mech, cb).unwrap();
    let mut step = ex.step(None).await;
    for r in responses {
        assert!(matches!(step, Step::Challenge(_)), "{step:?}");
        step = ex.step(Some(r)).await;
    }
    step
}

#[tokio::test]
async fn plain_and_login() {
    let (_d, auth, _) = setup(false).await;
    let ok = run(&auth, Mechanism::Plain, None, &[b"\0bob@example.test\0correct horse battery staple"]).await;
    assert!(matches!(ok, Step::Success(ref id) if id.address == "bob@example.test"), "{ok:?}");
    let bad = run(&auth, Mechanism::Plain, None, &[b"\0bob@example.test\0wrong"]).await;
    assert_eq!(bad, Step::Failure(Failure::Credentials { user: Some("bob@example.test".into()) }));
    let proxy = run(&auth, Mechanism::Plain, None, &[b"alice@example.test\0bob@example.test\0correct horse battery staple"]).await;
    assert!(matches!(proxy, Step::Failure(_)));
    let garbage = run(&auth, Mechanism::Plain, None, &[b"no nuls"]).await;
    assert!(matches!(garbage, Step::Failure(Failure::Malformed(_))));
    let login = run(&auth, Mechanism::Login, None, &[b"BOB@example.test", PASSWORD.as_bytes()]).await;
    assert!(matches!(login, Step::Success(_)));
    let unknown = run(&auth, Mechanism::Login, None, &[b"nobody@example.test", PASSWORD.as_bytes()]).await;
    assert!(matches!(unknown, Step::Failure(Failure::Credentials { .. })));
    // SASL-IR: the initial response comes with the first step.
    let mut ex = auth.start(Mechanism::Plain, None).unwrap();
    assert!(matches!(ex.step(Some(b"\0bob@example.test\0correct horse battery staple")).await, Step::Success(_)));
}

#[tokio::test]
async fn app_passwords_work_and_are_named() {
    let (_d, auth, store) = setup(false).await;
    let app = new_app_password();
    store.add_app_password("bob@example.test", "phone", &hash_password(&app, HashParams::default()).unwrap()).await.unwrap();
    let id = auth.verify_password("bob@example.test", &app).await.unwrap();
    assert_eq!(id.app_password.as_deref(), Some("phone"));
    assert!(store.list_app_passwords("bob@example.test").await.unwrap()[0].last_used.is_some());
    store.revoke_app_password("bob@example.test", "phone").await.unwrap();
    assert!(auth.verify_password("bob@example.test", &app).await.is_err());
}

#[tokio::test]
async fn the_account_password_alone_never_takes_an_app_password() {
    let (_d, auth, store) = setup(false).await;
    let app = new_app_password();
    store.add_app_password("bob@example.test", "phone", &hash_password(&app, HashParams::default()).unwrap()).await.unwrap();
    // Verified (and cached) for IMAP a moment ago: still not the account password.
    assert!(auth.verify_password("bob@example.test", &app).await.is_ok());
    let refused = auth.verify_account_password("bob@example.test", &app).await;
    assert_eq!(refused, Err(Failure::Credentials { user: Some("bob@example.test".into()) }));
    let id = auth.verify_account_password("Bob@example.test", PASSWORD).await.unwrap();
    assert_eq!((id.address.as_str(), id.app_password), ("bob@example.test", None));
    assert!(auth.verify_account_password("nobody@example.test", PASSWORD).await.is_err());
    assert!(auth.verify_account_password("bob@example.test", "wrong").await.is_err());
}

#[tokio::test]
async fn cram_md5_only_when_enabled() {
    let (_d, auth, _) = setup(false).await;
    assert!(auth.start(Mechanism::CramMd5, None).is_err());
    let (_d, auth, _) = setup(true).await;
    let mut ex = auth.start(Mechanism::CramMd5, None).unwrap();
    let Step::Challenge(challenge) = ex.step(None).await else { panic!() };
    let mut mac = Hmac::<md5::Md5>::new_from_slice(PASSWORD.as_bytes()).unwrap();
    mac.update(&challenge);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let step = ex.step(Some(format!("bob@example.test {hex}").as_bytes())).await;
    assert!(matches!(step, Step::Success(_)), "{step:?}");
}

/// A SCRAM-SHA-256 client, as RFC 5802 §3 describes it.
fn client_final(password: &str, client_first_bare: &str, server_first: &str, cbind: &[u8]) -> String {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2::<Hmac<Sha256>>(password.as_bytes(), &salt, iterations, &mut salted).unwrap();
    let hmac = |k: &[u8], d: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(k).unwrap();
        m.update(d);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored = Sha256::digest(&client_key);
    let without_proof = format!("c={},r={nonce}", B64.encode(cbind));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hmac(&stored, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
    format!("{without_proof},p={}", B64.encode(proof))
}

async fn scram(auth: &Arc<Authenticator>, mech: Mechanism, server_cb: Option<Vec<u8>>, gs2: &str, client_cb: &[u8], user: &str, pw: &str) -> Step {
    let mut ex = auth.start(mech, server_cb).unwrap();
    let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let first = format!("{gs2}{bare}");
    let step = ex.step(Some(first.as_bytes())).await;
    let Step::Challenge(server_first) = step else { return step };
    let server_first = String::from_utf8(server_first).unwrap();
    let mut cbind = gs2.as_bytes().to_vec();
    cbind.extend_from_slice(client_cb);
    let fin = client_final(pw, &bare, &server_first, &cbind);
    let step = ex.step(Some(fin.as_bytes())).await;
    let Step::Challenge(server_final) = step else { return step };
    assert!(server_final.starts_with(b"v="));
    ex.step(Some(b"")).await
}

#[tokio::test]
async fn scram_sha256_and_plus() {
    let (_d, auth, _) = setup(false).await;
    let ok = scram(&auth, Mechanism::ScramSha256, None, "n,,", b"", "bob@example.test", PASSWORD).await;
    assert!(matches!(ok, Step::Success(ref id) if id.address == "bob@example.test"), "{ok:?}");
    let bad = scram(&auth, Mechanism::ScramSha256, None, "n,,", b"", "bob@example.test", "wrong").await;
    assert!(matches!(bad, Step::Failure(Failure::Credentials { .. })), "{bad:?}");
    let unknown = scram(&auth, Mechanism::ScramSha256, None, "n,,", b"", "nobody@example.test", PASSWORD).await;
    assert!(matches!(unknown, Step::Failure(Failure::Credentials { .. })), "{unknown:?}");

    let exporter = vec![7u8; 32];
    let plus = scram(&auth, Mechanism::ScramSha256Plus, Some(exporter.clone()), "p=tls-exporter,,", &exporter, "bob@example.test", PASSWORD).await;
    assert!(matches!(plus, Step::Success(_)), "{plus:?}");
    // Another connection's binding data (a man in the middle relaying the exchange).
    let mitm = scram(&auth, Mechanism::ScramSha256Plus, Some(exporter.clone()), "p=tls-exporter,,", &[8u8; 32], "bob@example.test", PASSWORD).await;
    assert!(matches!(mitm, Step::Failure(Failure::ChannelBinding { .. })), "{mitm:?}");
    let wrong_type = scram(&auth, Mechanism::ScramSha256Plus, Some(exporter.clone()), "p=tls-unique,,", &exporter, "bob@example.test", PASSWORD).await;
    assert!(matches!(wrong_type, Step::Failure(Failure::ChannelBinding { .. })), "{wrong_type:?}");
    // "y" while the server can bind: PLUS was stripped from the offer, a downgrade.
    let downgrade = scram(&auth, Mechanism::ScramSha256, Some(exporter.clone()), "y,,", b"", "bob@example.test", PASSWORD).await;
    assert!(matches!(downgrade, Step::Failure(Failure::ChannelBinding { .. })), "{downgrade:?}");
    let y_without_tls = scram(&auth, Mechanism::ScramSha256, None, "y,,", b"", "bob@example.test", PASSWORD).await;
    assert!(matches!(y_without_tls, Step::Success(_)), "{y_without_tls:?}");
    assert!(auth.start(Mechanism::ScramSha256Plus, None).is_err());
}

#[tokio::test]
async fn the_credential_cache_follows_the_store() {
    let (_d, auth, store) = setup(false).await;
    let settings = auth.settings().clone();
    let bob = "bob@example.test";
    // Cached after the first success; a wrong password is never a hit.
    assert!(auth.verify_password(bob, PASSWORD).await.is_ok());
    assert!(auth.verify_password("BOB@example.test", PASSWORD).await.is_ok());
    assert!(auth.verify_password(bob, "correct horse battery stapler").await.is_err());
    // A password change (here by another handle on the store, as the CLI would) wins at once.
    store.set_secrets(bob, &secrets_for("tangerine vortex quietly hums", &settings).unwrap()).await.unwrap();
    assert!(auth.verify_password(bob, PASSWORD).await.is_err());
    assert!(auth.verify_password(bob, "tangerine vortex quietly hums").await.is_ok());
    // An app password, used (and cached), then revoked.
    store.add_app_password(bob, "phone", &hash_password("abcd-efgh-ijkl-mnop", settings.hash).unwrap()).await.unwrap();
    let id = auth.verify_password(bob, "abcd-efgh-ijkl-mnop").await.unwrap();
    assert_eq!(id.app_password.as_deref(), Some("phone"));
    assert_eq!(auth.verify_password(bob, "abcd-efgh-ijkl-mnop").await.unwrap().app_password.as_deref(), Some("phone"));
    store.revoke_app_password(bob, "phone").await.unwrap();
    assert!(auth.verify_password(bob, "abcd-efgh-ijkl-mnop").await.is_err());
    // The account removed.
    store.remove_account(bob).await.unwrap();
    assert!(auth.verify_password(bob, "tangerine vortex quietly hums").await.is_err());
}

#[test]
fn the_cost_of_a_stored_hash_is_read_from_it() {
    let params = HashParams { memory_kib: 8192, iterations: 3, parallelism: 1 };
    let stored = hash_password("correct horse battery staple", params).unwrap();
    let cost = argon2id_cost(&stored).unwrap();
    assert_eq!((cost.memory_kib, cost.iterations, cost.parallelism), (8192, 3, 1));
    assert!(argon2id_cost("$argon2i$v=19$m=8192,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_none());
    assert!(argon2id_cost("{PLAIN}secret").is_none());
}
