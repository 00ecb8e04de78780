//! The outbound queue: wiring its runner from the config (queue routes, and gateway routes to
//! their downstreams), and `rampart queue ...`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_config::{Config, DownstreamTls, GatewayRoute, OutboundTls, Route};
use rampart_smtp::client::TlsClient;
use rampart_smtp::outbound::{Outbound, ResolvedRoute};
use rampart_smtp::queue::{Runner, RunnerOptions};
use rampart_store::prelude::*;
use rampart_store::RcptState;

/// The TLS client for outbound connections (queue deliveries, gateway callouts): the
/// system's trust anchors plus `queue.extra_ca_file`.
pub fn tls_client(config: &Config) -> anyhow::Result<TlsClient> {
    let roots = rampart_smtp::outbound::root_store(config.queue.extra_ca_file.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    TlsClient::new(roots).map_err(|e| anyhow::anyhow!("queue TLS: {e}"))
}

/// `tls` with the client certificate of the route at `at`, when it has one.
pub fn with_client_cert(at: &str, tls: &TlsClient, cert: Option<&PathBuf>, key: Option<&PathBuf>) -> anyhow::Result<Option<TlsClient>> {
    use rustls::pki_types::pem::PemObject;
    let (Some(cert), Some(key)) = (cert, key) else { return Ok(None) };
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{at}.client_cert: {}", cert.display()))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).with_context(|| format!("{at}.client_key: {}", key.display()))?;
    Ok(Some(tls.clone().with_client_cert(chain, key)))
}

/// A route with its password read and its client certificate loaded: the route's files, else
/// the certificate the store assigns to its smart host (`rampart cert assign --smart-host`).
fn resolve(at: &str, route: Route, tls: &TlsClient, stored: &crate::certs::ClientCerts) -> anyhow::Result<ResolvedRoute> {
    let password = match (&route.auth_password, &route.auth_password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("{at}.auth_password_file: {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        (None, None) => None,
    };
    let mut route_tls = with_client_cert(at, tls, route.client_cert.as_ref(), route.client_key.as_ref())?;
    if route_tls.is_none()
        && let Some((chain, key)) = route.host.as_ref().and_then(|h| stored.get(&h.to_ascii_lowercase()))
    {
        route_tls = Some(tls.clone().with_client_cert(chain.clone(), key.clone_key()));
    }
    Ok(ResolvedRoute { route, password, tls: route_tls })
}

/// A gateway route as a queue route: its domains go to the downstream as a smart host.
fn downstream_route(g: &GatewayRoute) -> anyhow::Result<Route> {
    let (host, port) = rampart_config::split_host_port(&g.downstream).ok_or_else(|| anyhow::anyhow!("`{}` is not host:port", g.downstream))?;
    Ok(Route {
        domains: g.domains.clone(),
        host: Some(host),
        port: Some(port),
        tls: match g.tls {
            DownstreamTls::Require => OutboundTls::Require,
            DownstreamTls::Opportunistic => OutboundTls::Opportunistic,
        },
        auth_username: g.auth_username.clone(),
        auth_password: None,
        auth_password_file: g.auth_password_file.clone(),
        client_cert: g.client_cert.clone(),
        client_key: g.client_key.clone(),
    })
}

/// Builds the queue runner; every configuration problem names its key. Gateway routes come
/// first: mail for a gateway domain must go to its downstream, never to the domain's MX
/// (which is this server).
pub fn runner(
    config: &Config,
    store: Arc<dyn Store>,
    wakeup: Arc<tokio::sync::Notify>,
    sending: Arc<rampart_smtp::sending::Sending>,
    client_certs: &crate::certs::ClientCerts,
) -> anyhow::Result<Arc<Runner>> {
    let q = &config.queue;
    let resolver = rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
    let tls = tls_client(config)?;
    let mut routes = Vec::new();
    for (i, g) in config.gateway.route.iter().enumerate() {
        let at = format!("gateway.route[{i}]");
        let route = downstream_route(g).with_context(|| format!("{at}.downstream"))?;
        routes.push(resolve(&at, route, &tls, client_certs)?);
    }
    for (i, route) in q.route.iter().enumerate() {
        routes.push(resolve(&format!("queue.route[{i}]"), route.clone(), &tls, client_certs)?);
    }
    let policies = tls_policies(config, store.clone(), &resolver, &tls)?;
    let outbound = Arc::new(Outbound {
        policies,
        resolver,
        hostname: config.server.hostname.clone(),
        remote_port: q.remote_port,
        connect_timeout: q.connect_timeout,
        command_timeout: q.command_timeout,
        routes,
        tls,
    });
    let options = RunnerOptions {
        concurrency: q.concurrency,
        per_domain_concurrency: q.per_domain_concurrency,
        retry_schedule: q.retry_schedule.clone(),
        expiry: q.expiry,
        recipient_delimiter: config.smtp.recipient_delimiter.clone(),
        sending: Some(sending),
    };
    Ok(Runner::new(store, outbound, options, wakeup))
}

/// MTA-STS and TLS-RPT for outbound delivery (`[mta_sts] outbound`, `[tlsrpt] send_reports`),
/// with the background refresh of cached policies.
fn tls_policies(
    config: &Config,
    store: Arc<dyn Store>,
    resolver: &rampart_smtp::dns::Resolver,
    tls: &rampart_smtp::client::TlsClient,
) -> anyhow::Result<Option<Arc<rampart_smtp::sts::TlsPolicies>>> {
    let (apply, record) = (config.mta_sts.outbound, config.tlsrpt.send_reports);
    if !apply && !record {
        return Ok(None);
    }
    let dane = if apply && config.mta_sts.dane {
        let anchor = config.mta_sts.dane_trust_anchor.as_deref();
        let resolver = rampart_smtp::dns::validating_resolver(&config.dns.nameservers, anchor).map_err(|e| anyhow::anyhow!("mta_sts.dane: {e}"))?;
        Some(rampart_smtp::sts::dnssec::Dane::new(resolver, anchor).map_err(|e| anyhow::anyhow!("mta_sts.dane: {e}"))?)
    } else {
        None
    };
    let policies = Arc::new(rampart_smtp::sts::TlsPolicies {
        store,
        resolver: resolver.clone(),
        tls: tls.clone(),
        policy_port: config.mta_sts.policy_port,
        fetch_timeout: config.mta_sts.fetch_timeout,
        apply,
        record,
        dane,
    });
    if apply {
        tokio::spawn(policies.clone().refresh_loop());
    }
    Ok(Some(policies))
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Messages waiting for delivery: id, age, size, sender, and each recipient's state.
    List,
    /// One queued message: its recipients with attempts and last error, then its headers.
    Show { id: String },
    /// Try the pending recipients of a message now.
    Retry { id: String },
    /// Remove a message from the queue without delivering or bouncing it; with --user, every
    /// held message of that user.
    Delete {
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Let held messages (of a suspended account) go: one by ID, or every one of --user. Their
    /// pending recipients are tried at the next queue run.
    Release {
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

pub fn command(config: &Path, cmd: QueueCommand) -> anyhow::Result<()> {
    let (_config, store, rt) = crate::cli::open(config)?;
    rt.block_on(async {
        match cmd {
            QueueCommand::List => {
                for e in store.queue_list().await? {
                    let sender = if e.sender.is_empty() { "<>".to_string() } else { format!("<{}>", e.sender) };
                    let held = if e.held { "\theld" } else { "" };
                    println!("{}\t{}\t{} bytes\tfrom {sender}{held}", e.id, date(e.created), e.size);
                    for r in &e.rcpts {
                        println!("\t{}\t{}\tattempts {}\tnext {}\t{}", r.rcpt, r.state.as_str(), r.attempts, date(r.next_attempt), r.last_error);
                    }
                }
            }
            QueueCommand::Show { id } => {
                let Some(e) = store.queue_entry(&id).await? else { bail!("no queued message {id}") };
                let sender = if e.sender.is_empty() { "<>".to_string() } else { format!("<{}>", e.sender) };
                println!("id: {}\nqueued: {}\nsize: {}\nsender: {sender}\ndsn: {}", e.id, date(e.created), e.size, e.is_dsn);
                if !e.account.is_empty() {
                    println!("user: {}\nheld: {}", e.account, e.held);
                }
                for r in &e.rcpts {
                    let next = if r.state == RcptState::Pending { date(r.next_attempt) } else { "-".into() };
                    println!("recipient: {} state={} attempts={} next={next} last_error={:?}", r.rcpt, r.state.as_str(), r.attempts, r.last_error);
                }
                let message = store.queue_message(&id).await?;
                let end = message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |i| i + 2);
                println!();
                print!("{}", String::from_utf8_lossy(&message[..end]));
            }
            QueueCommand::Retry { id } => {
                store.queue_retry(&id).await?;
                println!("{id}: pending recipients will be tried at the next queue run (within seconds if the server runs)");
            }
            QueueCommand::Delete { id: Some(id), .. } => {
                store.queue_delete(&id).await?;
                println!("deleted {id} from the queue");
            }
            QueueCommand::Delete { id: None, user } => {
                let user = rampart_store::address::canonical(user.as_deref().unwrap_or_default())?;
                let n = store.queue_delete_held(&user).await?;
                println!("deleted {n} held message(s) of {user} from the queue");
            }
            QueueCommand::Release { id, user } => {
                let user = user.as_deref().map(rampart_store::address::canonical).transpose()?;
                let now = chrono::Utc::now().timestamp();
                let n = store.queue_release_held(id.as_deref(), user.as_deref(), now).await?;
                match (n, &id, &user) {
                    (0, Some(id), _) => bail!("{id} is not a held message"),
                    (0, None, Some(user)) => bail!("{user} has no held messages"),
                    _ => println!("released {n} message(s): tried at the next queue run (within seconds if the server runs)"),
                }
            }
        }
        Ok(())
    })
}
