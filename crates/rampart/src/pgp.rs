//! `rampart user pgp`: a user's OpenPGP public key. Mail delivered to the user is stored
//! encrypted to it (PGP/MIME), and the Web Key Directory publishes it. The checks and the
//! store calls are the ones the admin API makes (`rampart_store::NewPgpKey::checked`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_store::{NewPgpKey, PgpKey, PgpOptions, PlainSearch};

#[derive(Subcommand)]
pub enum PgpCommand {
    /// Set (or replace) the user's key, armored or binary (`gpg --export ADDRESS`). It must
    /// have a user ID with the address and an encryption subkey, and be neither revoked nor
    /// expired. From then on, delivered mail that is not already encrypted or signed (PGP/MIME,
    /// S/MIME, inline PGP) is stored as PGP/MIME encrypted to it: the server can no longer read
    /// it. Server-side SEARCH (SUBJECT, FROM, BODY, TEXT...) still finds it where the store
    /// keeps a search summary of the plaintext, made before encrypting, as protected as the
    /// rest: in server-key mode (inside the encrypted database) and for an account in per-user
    /// mode (sealed with the user's key), whatever `--search` says. On a clear store it is
    /// kept only with `--search`; without it SEARCH sees only the outer header fields (From,
    /// To, Cc, Date, Message-ID, Subject unless protected).
    Set {
        address: String,
        #[arg(long)]
        key: PathBuf,
        /// Move Subject (and the other header fields) inside the encrypted part (RFC 9788
        /// header protection); the stored outer Subject is `...`.
        #[arg(long)]
        protect_subject: bool,
        /// Do not publish the key in the Web Key Directory.
        #[arg(long)]
        no_publish: bool,
        /// On a clear store (no `[store.encryption]`, or PostgreSQL): keep a search summary of
        /// each message's plaintext — its header values and words, in clear in the database —
        /// so that server-side SEARCH finds it. Off by default there: it undoes part of what
        /// the key protects on disk. Server-key and per-user mode keep it (protected) anyway.
        #[arg(long)]
        search: bool,
    },
    /// The user's key: fingerprint, algorithms, creation and expiry, user IDs, options.
    Show { address: String },
    /// Remove the key: later mail is stored as received; mail stored before stays encrypted.
    Remove { address: String },
}

pub fn run(config: &Path, cmd: PgpCommand) -> anyhow::Result<()> {
    let (store, rt) = crate::admin::open(config)?;
    rt.block_on(async {
        match cmd {
            PgpCommand::Set { address, key, protect_subject, no_publish, search } => {
                let bytes = std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
                store.account(&address).await?.with_context(|| format!("no account {address}"))?;
                let options = PgpOptions { protect_subject, publish: !no_publish, search };
                let new = NewPgpKey::checked(&bytes, &address, options).map_err(|e| anyhow::anyhow!("key refused: {e}"))?;
                let fingerprint = new.fingerprint.clone();
                store.pgp_key_set(&address, new).await?;
                println!("mail to {address} is now stored encrypted to {fingerprint}");
                if let Some(k) = store.pgp_key(&address).await? {
                    println!("server-side search: {}", store.pgp_plain_search(&k).await?.describe());
                }
            }
            PgpCommand::Show { address } => match store.pgp_key(&address).await? {
                Some(k) => print!("{}", describe(&k, store.pgp_plain_search(&k).await?)),
                None => bail!("{address} has no OpenPGP key"),
            },
            PgpCommand::Remove { address } => {
                if !store.pgp_key_remove(&address).await? {
                    bail!("{address} has no OpenPGP key");
                }
                println!("removed the OpenPGP key of {address}: later mail is stored as received");
            }
        }
        Ok(())
    })
}

/// `show`'s lines, `name: value`.
fn describe(k: &PgpKey, search: PlainSearch) -> String {
    let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default();
    let mut out = format!("address: {}\nfingerprint: {}\n", k.address, k.fingerprint);
    if let Some(info) = k.describe() {
        out.push_str(&format!("algorithm: {}\nencryption subkey: {}\ncreated: {}\n", info.algorithm, info.encryption_algorithm, date(info.created)));
        out.push_str(&format!("expires: {}\n", info.expires.map_or_else(|| "never".to_string(), date)));
        for id in info.user_ids {
            out.push_str(&format!("user id: {id}\n"));
        }
    }
    out.push_str(&format!("protect subject: {}\npublished (WKD): {}\n", yes(k.protect_subject), yes(k.publish)));
    // The opt-in as set, and what holds for this store (server-key and per-user mode keep the
    // search summary whatever it says).
    out.push_str(&format!("search opt-in: {}\nserver-side search: {}\nset: {}\n", yes(k.search), search.describe(), date(k.updated)));
    out
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
