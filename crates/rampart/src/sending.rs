//! `rampart quota ...` and the suspension commands of `rampart user`: sending quotas, their
//! overrides and exceptions, and suspended accounts. They change the store the running server
//! reads at every MAIL, so they take effect at once.

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_config::{Config, QUOTA_KEYS};
use rampart_smtp::sending::quota::Limits;
use rampart_store::address;
use rampart_store::containment::{Suspension, SuspensionScope};
use rampart_store::quota::Usage;

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// What an address (and its domain) or a domain sent in the last hour and day, against
    /// its limits.
    Show { target: String },
    /// Override a limit for one user, or for a domain's total: KEY is messages_per_hour,
    /// messages_per_day, recipients_per_hour, recipients_per_day or
    /// external_recipients_per_day; VALUE a number (0: no limit) or "default".
    Set { target: String, key: String, value: String },
    /// Never hold an address or a domain to quotas (a newsletter sender, a ticket system);
    /// such accounts are never suspended either.
    Exempt { target: String },
    /// Take an address or a domain off the exception list.
    Unexempt { target: String },
    /// Every override and exception.
    List,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// The domains of gateway routes whose downstream relays out (`relay_from`): their senders
/// are held to quotas without an account here.
fn relay_domains(config: &Config) -> Vec<String> {
    let routes = config.gateway.route.iter().filter(|r| !r.relay_from.is_empty());
    routes.flat_map(|r| r.domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase())).collect()
}

/// An address of an existing account or a local domain, in canonical form; or an address
/// in, or one of, the `relay` domains.
async fn target(store: &dyn rampart_store::Store, relay: &[String], target: &str) -> anyhow::Result<String> {
    if target.contains('@') {
        let address = address::canonical(target)?;
        if relay.iter().any(|d| d == address::domain_of(&address)) {
            return Ok(address);
        }
        store.account(&address).await?.with_context(|| format!("no account {address}"))?;
        return Ok(address);
    }
    let domain = address::canonical_domain(target).with_context(|| format!("`{target}` is neither an address nor a domain"))?;
    if !relay.contains(&domain) && !store.is_local_domain(&domain).await? {
        bail!("{domain} is not a local domain");
    }
    Ok(domain)
}

pub(crate) fn used(u: &Usage) -> [u64; 5] {
    [u.messages_hour, u.messages_day, u.recipients_hour, u.recipients_day, u.external_day]
}

/// One table: each quota's use and limit; limits set by an override are marked.
fn print_usage(prefix: &str, usage: &Usage, limits: &[u64; 5], overridden: &[(String, u64)]) {
    for (i, key) in QUOTA_KEYS.iter().enumerate() {
        let limit = if limits[i] == 0 { "none".to_string() } else { limits[i].to_string() };
        let set = if overridden.iter().any(|(k, _)| k == key) { "  (set)" } else { "" };
        println!("  {:<40} {:>8} / {limit}{set}", format!("{prefix}{key}"), used(usage)[i]);
    }
}

async fn show(store: &dyn rampart_store::Store, config: &Config, target_name: &str) -> anyhow::Result<()> {
    let t = target(store, &relay_domains(config), target_name).await?;
    if !config.quota.enabled {
        println!("(quotas are off: [quota] enabled = false; counts are kept)");
    }
    if t.contains('@') {
        let s = store.quota_status(&t, now()).await?;
        let limits = Limits::new(&config.quota, &s.user_overrides, &s.domain_overrides);
        println!("{t}{}", if s.exempt { " (exempt: no quotas, never suspended)" } else { "" });
        print_usage("", &s.user, &limits.user, &s.user_overrides);
        println!("domain {}", address::domain_of(&t));
        print_usage("domain_", &s.domain, &limits.domain, &s.domain_overrides);
        return Ok(());
    }
    let usage = store.quota_usage(&t, now()).await?;
    let overrides: Vec<(String, u64)> =
        store.quota_overrides().await?.into_iter().filter(|o| o.target == t).map(|o| (o.key, o.value)).collect();
    let exempt = store.quota_exemptions().await?.contains(&t);
    let limits = Limits::new(&config.quota, &[], &overrides);
    println!("domain {t}{}", if exempt { " (exempt: no quotas, never suspended)" } else { "" });
    print_usage("domain_", &usage, &limits.domain, &overrides);
    Ok(())
}

pub async fn quota(store: &dyn rampart_store::Store, config: &Config, cmd: QuotaCommand) -> anyhow::Result<()> {
    match cmd {
        QuotaCommand::Show { target: t } => show(store, config, &t).await?,
        QuotaCommand::Set { target: t, key, value } => {
            let t = target(store, &relay_domains(config), &t).await?;
            if !QUOTA_KEYS.contains(&key.as_str()) {
                bail!("unknown quota {key}; one of: {}", QUOTA_KEYS.join(", "));
            }
            let value = match value.as_str() {
                "default" => None,
                v => Some(v.parse::<u64>().with_context(|| format!("`{v}` is not a number or \"default\""))?),
            };
            store.quota_override(&t, &key, value).await?;
            match value {
                Some(v) => println!("{t}: {key} = {v}{}", if v == 0 { " (no limit)" } else { "" }),
                None => println!("{t}: {key} back to the configured default"),
            }
        }
        QuotaCommand::Exempt { target: t } => {
            let t = target(store, &relay_domains(config), &t).await?;
            let changed = store.quota_exempt(&t, true).await?;
            println!("{t}: {}", if changed { "exempt from sending quotas and containment" } else { "already exempt" });
        }
        QuotaCommand::Unexempt { target: t } => {
            let t = target(store, &relay_domains(config), &t).await?;
            if !store.quota_exempt(&t, false).await? {
                bail!("{t} is not exempt");
            }
            println!("{t}: held to sending quotas again");
        }
        QuotaCommand::List => {
            for t in store.quota_exemptions().await? {
                println!("{t}\texempt");
            }
            for o in store.quota_overrides().await? {
                println!("{}\t{} = {}", o.target, o.key, o.value);
            }
        }
    }
    Ok(())
}

/// `rampart user list`: every account with its sending state.
pub async fn list_users(store: &dyn rampart_store::Store) -> anyhow::Result<()> {
    let suspended = store.suspensions().await?;
    for a in store.list_accounts().await? {
        match suspended.iter().find(|s| s.account == a.address) {
            None => println!("{}\tactive", a.address),
            Some(s) => {
                let what = if s.scope == SuspensionScope::All { "suspended (logins and sending)" } else { "suspended (sending)" };
                println!("{}\t{what} since {}: {}", a.address, date(s.since), s.reason);
            }
        }
    }
    Ok(())
}

/// `rampart user suspend ADDRESS [--sending]`.
pub async fn suspend(store: &dyn rampart_store::Store, address: &str, sending_only: bool) -> anyhow::Result<()> {
    let address = target(store, &[], address).await.and_then(|t| if t.contains('@') { Ok(t) } else { bail!("give an address") })?;
    let scope = if sending_only { SuspensionScope::Sending } else { SuspensionScope::All };
    let s = Suspension { account: address.clone(), scope, reason: "by the administrator".into(), automatic: false, since: now() };
    let done = store.suspend(s).await?;
    let what = if sending_only { "sending of" } else { "logins and sending of" };
    println!("suspended {what} {address}; {} queued message(s) held", done.held);
    Ok(())
}

/// `rampart user resume ADDRESS`: held mail stays held until released or deleted.
pub async fn resume(store: &dyn rampart_store::Store, address: &str) -> anyhow::Result<()> {
    let address = address::canonical(address)?;
    let Some(held) = store.resume(&address, now()).await? else { bail!("{address} is not suspended") };
    println!("resumed {address}");
    if held > 0 {
        println!(
            "{held} queued message(s) still held: `rampart queue release --user {address}` sends them, \
             `rampart queue delete --user {address}` deletes them"
        );
    }
    Ok(())
}
