//! The outbound queue: wiring its runner from the config, and `rampart queue ...`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart_config::Config;
use rampart_smtp::outbound::{Outbound, ResolvedRoute};
use rampart_smtp::queue::{Runner, RunnerOptions};
use rampart_store::prelude::*;
use rampart_store::{RcptState, SqliteStore};

/// Builds the queue runner; every configuration problem names its key.
pub fn runner(config: &Config, store: Arc<dyn Store>, wakeup: Arc<tokio::sync::Notify>) -> anyhow::Result<Arc<Runner>> {
    use rustls::pki_types::pem::PemObject;
    let q = &config.queue;
    let resolver = rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
    let roots = rampart_smtp::outbound::root_store(q.extra_ca_file.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let tls = rampart_smtp::client::TlsClient::new(roots).map_err(|e| anyhow::anyhow!("queue TLS: {e}"))?;
    let mut routes = Vec::new();
    for (i, route) in q.route.iter().enumerate() {
        let password = match (&route.auth_password, &route.auth_password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("queue.route[{i}].auth_password_file: {}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
        };
        let route_tls = match (&route.client_cert, &route.client_key) {
            (Some(cert), Some(key)) => {
                let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("queue.route[{i}].client_cert: {}", cert.display()))?;
                let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                    .with_context(|| format!("queue.route[{i}].client_key: {}", key.display()))?;
                Some(tls.clone().with_client_cert(chain, key))
            }
            _ => None,
        };
        routes.push(ResolvedRoute { route: route.clone(), password, tls: route_tls });
    }
    let outbound = Arc::new(Outbound {
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
    };
    Ok(Runner::new(store, outbound, options, wakeup))
}

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Messages waiting for delivery: id, age, size, sender, and each recipient's state.
    List,
    /// One queued message: its recipients with attempts and last error, then its headers.
    Show { id: String },
    /// Try the pending recipients of a message now.
    Retry { id: String },
    /// Remove a message from the queue without delivering or bouncing it.
    Delete { id: String },
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

pub fn command(config: &Path, cmd: QueueCommand) -> anyhow::Result<()> {
    let config = crate::serve::load_config(config, &[])?;
    let store = SqliteStore::open(&config.server.data_dir)
        .with_context(|| format!("opening the store in {}", config.server.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        match cmd {
            QueueCommand::List => {
                for e in store.queue_list().await? {
                    let sender = if e.sender.is_empty() { "<>".to_string() } else { format!("<{}>", e.sender) };
                    println!("{}\t{}\t{} bytes\tfrom {sender}", e.id, date(e.created), e.size);
                    for r in &e.rcpts {
                        println!("\t{}\t{}\tattempts {}\tnext {}\t{}", r.rcpt, r.state.as_str(), r.attempts, date(r.next_attempt), r.last_error);
                    }
                }
            }
            QueueCommand::Show { id } => {
                let Some(e) = store.queue_entry(&id).await? else { bail!("no queued message {id}") };
                let sender = if e.sender.is_empty() { "<>".to_string() } else { format!("<{}>", e.sender) };
                println!("id: {}\nqueued: {}\nsize: {}\nsender: {sender}\ndsn: {}", e.id, date(e.created), e.size, e.is_dsn);
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
            QueueCommand::Delete { id } => {
                store.queue_delete(&id).await?;
                println!("deleted {id} from the queue");
            }
        }
        Ok(())
    })
}
