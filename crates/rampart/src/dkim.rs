//! `rampart dkim ...`: the signing table (domain → selector → key).
//!
//! Rotation: `keygen` with a new selector adds a key that waits while the domain already has
//! an active key of that algorithm; publish its record, wait for DNS, then `activate` it. The
//! old key stops signing but stays in the table and in `dns records`, so mail signed with it
//! keeps verifying; `remove` it after a few days.

use std::path::Path;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_pipeline::dkim::{self, Algorithm};
use rampart_store::prelude::*;
use rampart_store::DkimKey;

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Generate a key for DOMAIN, store it and print the TXT record to publish.
    Keygen {
        domain: String,
        /// The selector (the DNS label before ._domainkey); default ALGORITHM-YYYYMMDD.
        #[arg(long)]
        selector: Option<String>,
        /// rsa (2048-bit RSA-SHA256) or ed25519 (RFC 8463).
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// List keys: domain, selector, algorithm, active or waiting.
    List { domain: Option<String> },
    /// Sign with this key from now on (its domain's other key of the algorithm stops signing).
    Activate { domain: String, selector: String },
    /// Delete a key (unpublish its record afterwards).
    Remove { domain: String, selector: String },
}

/// A DNS label: letters, digits, hyphens; dots separate labels (RFC 6376 §3.1 selectors).
fn valid_selector(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Generates and stores a key; returns it and whether it signs now. The domain must be local,
/// or a gateway domain (`gateway`: its downstream's mail is signed here on the way out).
pub async fn keygen(store: &dyn Store, domain: &str, selector: Option<String>, algorithm: &str, gateway: &dyn Fn(&str) -> bool) -> anyhow::Result<(DkimKey, bool)> {
    let Some(alg) = Algorithm::parse(algorithm) else { bail!("--algorithm: `{algorithm}` is neither rsa nor ed25519") };
    let domain = rampart_store::address::canonical_domain(domain).with_context(|| format!("`{domain}` is not a domain name"))?;
    if !gateway(&domain) && !store.is_local_domain(&domain).await? {
        bail!("{domain} is neither a local nor a gateway domain; add it first (rampart domain add {domain})");
    }
    let selector = selector.unwrap_or_else(|| format!("{}-{}", alg.as_str(), chrono::Utc::now().format("%Y%m%d")));
    if !valid_selector(&selector) {
        bail!("--selector: `{selector}` is not a DNS label");
    }
    let new = dkim::generate(alg)?;
    let key = DkimKey {
        domain: domain.clone(),
        selector,
        algorithm: alg.as_str().into(),
        private_key: new.private_der,
        public_key: new.public,
        active: false,
        created: chrono::Utc::now().timestamp(),
    };
    let active = store.add_dkim_key(key.clone()).await?;
    Ok((key, active))
}

pub fn record_line(k: &DkimKey) -> String {
    let alg = Algorithm::parse(&k.algorithm).unwrap_or(Algorithm::Rsa);
    dkim::zone_line(&k.domain, &k.selector, &dkim::txt_record(alg, &k.public_key))
}

pub fn command(config: &Path, cmd: DkimCommand) -> anyhow::Result<()> {
    let (config, store, rt) = crate::cli::open(config)?;
    rt.block_on(async {
        match cmd {
            DkimCommand::Keygen { domain, selector, algorithm } => {
                let gateway = |d: &str| crate::gateway::is_gateway_domain(&config, d);
                let (key, active) = keygen(&*store, &domain, selector, &algorithm, &gateway).await?;
                println!("; {} key {} for {}: publish this record", key.algorithm, key.selector, key.domain);
                println!("{}", record_line(&key));
                if active {
                    println!("; mail from {} is signed with it from now on", key.domain);
                } else {
                    println!(
                        "; it waits: once the record is published, run `rampart dkim activate {} {}`",
                        key.domain, key.selector
                    );
                }
            }
            DkimCommand::List { domain } => {
                for k in store.dkim_keys(domain.as_deref()).await? {
                    let state = if k.active { "active" } else { "waiting/retired" };
                    println!("{}\t{}\t{}\t{state}", k.domain, k.selector, k.algorithm);
                }
            }
            DkimCommand::Activate { domain, selector } => {
                store.activate_dkim_key(&domain, &selector).await?;
                println!("mail from {domain} is now signed with {selector}; keep the old record published for a few days");
            }
            DkimCommand::Remove { domain, selector } => {
                store.remove_dkim_key(&domain, &selector).await?;
                println!("removed {selector}._domainkey.{domain}; its DNS record can go");
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn selectors() {
        assert!(super::valid_selector("rsa-20261127"));
        assert!(super::valid_selector("a.b"));
        assert!(!super::valid_selector("a b"));
        assert!(!super::valid_selector(""));
    }
}
