//! `rampart user encryption`: per-user encryption of an account's mail (issue 16). Mail is
//! delivered sealed to the user's public key; the secret key is wrapped by the user's
//! password (its SCRAM ClientKey), each app password made afterwards and a recovery code
//! shown once, and is unwrapped only by the user's logins. An administrator — this command
//! included — cannot read such mail.

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_auth::scram::ScramKeys;
use rampart_store::prelude::*;
use rampart_store::userkey::{PASSWORD, RECOVERY};
use rampart_store::{AccountId, SqliteStore};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum EncryptionCommand {
    /// Turn per-user encryption on: needs the user's password (first line of standard input
    /// with --password-stdin) and prints the recovery code, once. The mail already stored is
    /// sealed for the user too, then mail delivered; all of it is readable only while the user
    /// is logged in. App passwords made before do not unlock it (make new ones).
    Enable {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Whether the account is in per-user mode, its wraps, and whether a login holds its key.
    Status { address: String },
    /// Seal the messages stored before per-user encryption was turned on (`enable` does it;
    /// this finishes an interrupted run).
    Convert { address: String },
    /// After an administrator reset the password: set a new one (standard input) and open
    /// the mail again with the recovery code.
    Recover {
        address: String,
        #[arg(long)]
        recovery_code: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The account's id and the ClientKey of `password` under its stored SCRAM keys, after
/// checking the password against its argon2id hash.
async fn password_key(store: &SqliteStore, address: &str, password: &str) -> anyhow::Result<(AccountId, Zeroizing<[u8; 32]>)> {
    let creds = store.credentials(address).await?.with_context(|| format!("no account {address}"))?;
    if !rampart_auth::verify_password(password, &creds.account.password_hash) {
        bail!("the password of {address} is not this one");
    }
    let keys = creds.scram_sha256.as_deref().and_then(ScramKeys::decode).context("the account has no SCRAM keys: set its password again first")?;
    Ok((creds.account.id, keys.client_key(password)))
}

pub async fn run(store: &SqliteStore, config: &rampart_config::Config, cmd: EncryptionCommand) -> anyhow::Result<()> {
    match cmd {
        EncryptionCommand::Enable { address, password_stdin } => {
            let password = Zeroizing::new(crate::admin::read_password(password_stdin)?);
            let (account, key) = password_key(store, &address, &password).await?;
            let code = store.enable_user_key(account, key).await?;
            let converted = store.convert_user_messages(account).await;
            println!("per-user encryption is on for {address}: its mail is readable only while the user is logged in.");
            match &converted {
                Ok(n) => println!("{n} messages stored before sealed for the user"),
                Err(_) => println!("the mail stored before is not all sealed yet: run `rampart user encryption convert {address}`"),
            }
            // Last, and whatever happened above: it is shown this once.
            println!("Recovery code (shown once; without it, mail is lost if the password is reset):");
            println!("{}", code.as_str());
            converted?;
        }
        EncryptionCommand::Convert { address } => {
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            let n = store.convert_user_messages(account.id).await?;
            println!("{n} messages of {address} sealed for the user");
        }
        EncryptionCommand::Status { address } => {
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            match store.user_key_status(account.id).await? {
                None => println!("{address}: per-user encryption off"),
                Some(s) => {
                    let date = chrono::DateTime::from_timestamp(s.enabled, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                    println!("{address}: per-user encryption on since {date}");
                    println!("wraps: {}", s.wraps.join(" "));
                    if !s.wraps.iter().any(|w| w == PASSWORD) {
                        println!("the password does not open the mail (reset by an administrator): run `rampart user encryption recover`");
                    }
                    println!("messages stored before it was turned on (not encrypted for the user): {}", s.unconverted);
                }
            }
        }
        EncryptionCommand::Recover { address, recovery_code, password_stdin } => {
            let password = Zeroizing::new(crate::admin::read_password(password_stdin)?);
            let secrets = crate::admin::checked_secrets(config, &address, &password)?;
            let account = store.account(&address).await?.with_context(|| format!("no account {address}"))?;
            store.user_key_status(account.id).await?.with_context(|| format!("{address} is not in per-user mode"))?;
            // The recovery wrap must open before anything changes.
            let keys = secrets.scram_sha256.as_deref().and_then(ScramKeys::decode).context("no SCRAM keys")?;
            let opener = (RECOVERY.to_string(), rampart_store::peruser::unlock_from_text(&recovery_code));
            store.add_user_key_wrap(account.id, PASSWORD, keys.client_key(&password), Some(opener)).await.context("the recovery code does not open the key")?;
            store.set_secrets(&address, &secrets).await?;
            println!("the new password of {address} opens its mail again");
        }
    }
    Ok(())
}

/// For an app password about to be made for a per-user account: the account and what opens
/// its key (the user's password, read from standard input). None for other accounts.
pub async fn app_password_opener(store: &SqliteStore, address: &str, password_stdin: bool) -> anyhow::Result<Option<(AccountId, (String, Zeroizing<[u8; 32]>))>> {
    let account = store.account(address).await?.with_context(|| format!("no account {address}"))?;
    if !store.has_user_key(account.id).await? {
        return Ok(None);
    }
    if !password_stdin {
        bail!("{address} has per-user encryption: give the user's password with --password-stdin, so that the app password can open the mail");
    }
    let password = Zeroizing::new(crate::admin::read_password(true)?);
    let (account, key) = password_key(store, address, &password).await?;
    Ok(Some((account, (PASSWORD.to_string(), key))))
}

/// Adds the wrap of the app password `name` just made.
pub async fn wrap_app_password(store: &SqliteStore, address: &str, account: AccountId, name: &str, password: &str, opener: (String, Zeroizing<[u8; 32]>)) -> anyhow::Result<()> {
    let id = store.list_app_passwords(address).await?.into_iter().find(|a| a.name == name).map(|a| a.id).context("the app password just made is gone")?;
    let key = rampart_store::peruser::unlock_from_text(password);
    store.add_user_key_wrap(account, &rampart_store::userkey::app_wrap(id), key, Some(opener)).await?;
    Ok(())
}
