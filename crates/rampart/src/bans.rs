//! `rampart ban ...` and `rampart firewall list`: the CLI side of bans and firewall rules (the
//! running server's side is the `rampart-guard` crate).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BanCommand {
    /// Active bans (and, with --all, expired ones still counted as earlier offences).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Ban an address or network (a running server applies it within seconds).
    Add {
        /// An address (bans that host) or a CIDR network.
        net: String,
        /// How long, e.g. "1h", "7days".
        #[arg(long = "for", default_value = "1day")]
        duration: String,
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Lift a ban and forget its history.
    Remove { net: String },
}

#[derive(Subcommand)]
pub enum FirewallCommand {
    /// The allow and deny rules in effect, global and per listener.
    List,
}

pub fn ban(config: &Path, cmd: BanCommand) -> anyhow::Result<()> {
    let (_config, store, rt) = crate::cli::open(config)?;
    let now = chrono::Utc::now().timestamp();
    rt.block_on(async {
        match cmd {
            BanCommand::List { all } => {
                for b in store.bans().await? {
                    if all || b.until > now {
                        let state = if b.until > now { "active" } else { "expired" };
                        println!("{}\t{state}\tuntil {}\toffences {}\t{}", b.net, rampart_guard::fmt_time(b.until), b.offenses, b.reason);
                    }
                }
            }
            BanCommand::Add { net, duration, reason } => {
                let net = rampart_guard::parse_net(&net).map_err(anyhow::Error::msg)?;
                let d: Duration = humantime_duration(&duration)?;
                let ban = rampart_guard::ban_manually(&*store, net, d, &reason).await?;
                println!("banned {} until {}", ban.net, rampart_guard::fmt_time(ban.until));
            }
            BanCommand::Remove { net } => {
                let key = rampart_guard::parse_net(&net).map_err(anyhow::Error::msg)?.to_string();
                if !store.ban_remove(&key).await? {
                    bail!("{key} is not banned");
                }
                println!("lifted the ban on {key}");
            }
        }
        Ok(())
    })
}

fn humantime_duration(s: &str) -> anyhow::Result<Duration> {
    let config = format!("[guard]\nban_time = {s:?}\n");
    let parsed = rampart_config::Config::from_toml(&config, &[], Path::new("/"))
        .map_err(|_| anyhow::anyhow!("--for: `{s}` is not a duration like \"1h\" or \"7days\""))?;
    Ok(parsed.guard.ban_time)
}

pub fn firewall(config: &Path, cmd: FirewallCommand) -> anyhow::Result<()> {
    let config = crate::serve::load_config(config, &[])?;
    match cmd {
        FirewallCommand::List => {
            let show = |scope: &str, kind: &str, list: &[rampart_config::Cidr]| {
                for c in list {
                    println!("{scope}\t{kind}\t{c}");
                }
            };
            let g = &config.guard;
            show("global", "deny", &g.deny);
            show("global", "allow", &g.allow);
            show("global", "allowlist", &g.allowlist);
            show("global", "limit_exceptions", &g.limit_exceptions);
            for (name, allow, deny) in config.listener.firewall_lists() {
                show(name, "deny", deny);
                show(name, "allow", allow);
            }
        }
    }
    Ok(())
}
