//! ACME in the running server: the names to keep certified (`[acme] hosts`, `[[tls.sni]]`
//! entries with `acme = true`, server.hostname with `tls.acme`), ordered at start and again
//! when two thirds of a certificate's lifetime have passed or the CA's ARI window says so
//! (`ari`, whichever comes first); orders asked for by `rampart cert acme` (through the
//! store); retries with backoff. A new certificate takes
//! over the previous one's uses in one store transaction, so the old one serves until then.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rampart_config::Config;
use rampart_store::certs::{StoredCert, Usage};
use rampart_store::prelude::*;
use rampart_tls::acme::{self as tls_acme, Challenge, Http01Tokens, Responders, Settings};
use rampart_tls::certs::{self, KeyType};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::ari::Schedule;
use super::live::LiveCerts;

/// How often the manager looks for requests and due renewals.
const TICK: Duration = Duration::from_secs(2);
/// The first retry after a failure; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// How long a node's claim on ordering a name's certificate lasts (nodes sharing a store,
/// `CertificateStore::acme_claim`): longer than an order takes, so that only one node orders;
/// a node that died holds it no longer than this.
const CLAIM_LEASE: i64 = 15 * 60;

pub struct Manager {
    settings: Settings,
    kind: KeyType,
    store: Arc<dyn Store>,
    live: Arc<LiveCerts>,
    responders: Responders,
    /// Names kept certified, each with the listeners its certificate is the default of.
    wanted: Vec<(String, Vec<&'static str>)>,
    /// `[cluster] node_id`: the holder of this node's ACME claims.
    node: String,
    account: Mutex<Option<rampart_tls::AcmeAccount>>,
}

fn settings(config: &Config) -> anyhow::Result<Settings> {
    let a = &config.acme;
    let eab = if a.eab_kid.is_empty() {
        None
    } else {
        use base64::Engine;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(a.eab_hmac_key.trim_end_matches('='))
            .context("acme.eab_hmac_key: not base64url")?;
        Some((a.eab_kid.clone(), key))
    };
    Ok(Settings {
        directory: a.directory.clone(),
        contact: a.contact.clone(),
        challenge: if a.challenge == "http-01" { Challenge::Http01 } else { Challenge::TlsAlpn01 },
        eab,
        ca_root: (!a.ca_roots.as_os_str().is_empty()).then(|| a.ca_roots.clone()),
    })
}

/// The names the config asks to keep certified.
fn wanted(config: &Config) -> Vec<(String, Vec<&'static str>)> {
    let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
    let mut add = |name: &str, listeners: Vec<&'static str>| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, listeners));
        }
    };
    if config.tls.acme {
        // The server's own name becomes every listener's default (clients without SNI).
        add(&config.server.hostname, super::LISTENERS.to_vec());
    }
    for sni in config.tls.sni.iter().filter(|s| s.acme) {
        add(&sni.hostname, Vec::new());
    }
    for h in &config.acme.hosts {
        add(h, Vec::new());
    }
    out
}

/// When a certificate should be renewed: two thirds into its lifetime.
fn renew_at(c: &StoredCert) -> i64 {
    c.not_before + (c.not_after - c.not_before) * 2 / 3
}

impl Manager {
    pub fn new(config: &Config, store: Arc<dyn Store>, live: Arc<LiveCerts>, http: Arc<Http01Tokens>) -> anyhow::Result<Arc<Manager>> {
        if config.acme.challenge == "tls-alpn-01" && !config.tls.enforce_alpn {
            // The listeners then offer no ALPN list, so `acme-tls/1` cannot be negotiated.
            warn!(event = "acme_config", problem = "tls-alpn-01 needs tls.enforce_alpn = true; use acme.challenge = \"http-01\"");
        }
        Ok(Arc::new(Manager {
            settings: settings(config)?,
            kind: KeyType::parse(&config.acme.key_type).unwrap_or(KeyType::EcdsaP256),
            responders: Responders { tls: live.certs.clone(), http },
            store,
            live,
            wanted: wanted(config),
            node: config.node_id(),
            account: Mutex::new(None),
        }))
    }

    /// The current ACME certificate for `name`: the newest with a chain that covers it.
    async fn current(&self, name: &str) -> anyhow::Result<Option<StoredCert>> {
        let all = self.store.certificates().await?;
        Ok(all.into_iter().rev().find(|c| c.source == "acme" && c.chain_pem.is_some() && c.names.iter().any(|n| n == name)))
    }

    pub async fn run(self: Arc<Self>) {
        // name → (failures so far, not before)
        let mut backoff: HashMap<String, (u32, Instant)> = HashMap::new();
        let mut ari = Schedule::default();
        loop {
            self.requests().await;
            for (name, listeners) in &self.wanted {
                if backoff.get(name).is_some_and(|(_, until)| Instant::now() < *until) {
                    continue;
                }
                let current = match self.current(name).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(event = "store_error", what = "certificates", error = %e);
                        continue;
                    }
                };
                if let Some(c) = &current {
                    let Some(reason) = self.renewal_due(c, &mut ari).await else { continue };
                    info!(event = "acme_renewal_due", id = c.id, names = %name, reason);
                }
                // Nodes sharing the store: the one holding the claim orders, the others find
                // its certificate in the store at a later tick.
                let now = chrono::Utc::now().timestamp();
                match self.store.acme_claim(name, &self.node, now, CLAIM_LEASE).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        warn!(event = "store_error", what = "acme claim", error = %e);
                        continue;
                    }
                }
                let previous = current.as_ref().map(|c| (c.id, c.chain_pem.as_deref().unwrap_or_default()));
                match self.issue(std::slice::from_ref(name), listeners, previous).await {
                    Ok(_) => {
                        backoff.remove(name);
                        if let Some(c) = &current {
                            ari.forget(c.id);
                        }
                    }
                    Err(e) => {
                        let failures = backoff.get(name).map_or(0, |(n, _)| *n) + 1;
                        let wait = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(10)).min(MAX_BACKOFF);
                        warn!(event = "acme_failed", names = %name, attempt = failures, retry_in = wait.as_secs(), error = %format!("{e:#}"));
                        backoff.insert(name.clone(), (failures, Instant::now() + wait));
                    }
                }
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Why `cert` should be renewed now, if it should: two thirds of its lifetime passed, or
    /// the moment chosen in the CA's ARI window (RFC 9773) reached, whichever comes first.
    /// ARI is asked only while the certificate is valid (§4.3.2) and when its Retry-After
    /// allows; its failures only log (`ari::Schedule::record`).
    async fn renewal_due(&self, cert: &StoredCert, ari: &mut Schedule) -> Option<&'static str> {
        let now = chrono::Utc::now().timestamp();
        if now >= renew_at(cert) {
            return Some("lifetime");
        }
        if ari.fetch_due(cert.id)
            && let Some(chain) = cert.chain_pem.as_deref()
        {
            let answer = match self.account().await {
                Ok(account) => tls_acme::renewal_info(&account, chain).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e:#}")),
            };
            ari.record(cert.id, &cert.names.join(","), answer, now);
        }
        ari.due(cert.id, now).then_some("ari")
    }

    /// Orders asked for by `rampart cert acme`.
    async fn requests(&self) {
        let Ok(pending) = self.store.acme_requests_pending().await else { return };
        for (id, names) in pending {
            let previous = match names.first() {
                Some(first) => self.current(first).await.ok().flatten(),
                None => None,
            };
            let previous = previous.as_ref().map(|c| (c.id, c.chain_pem.as_deref().unwrap_or_default()));
            let outcome = self.issue(&names, &[], previous).await.map_err(|e| {
                warn!(event = "acme_failed", names = %names.join(","), attempt = 1, error = %format!("{e:#}"));
                format!("{e:#}")
            });
            if let Err(e) = self.store.finish_acme_request(id, outcome).await {
                warn!(event = "store_error", what = "acme request", error = %e);
            }
        }
    }

    async fn account(&self) -> anyhow::Result<rampart_tls::AcmeAccount> {
        let mut cached = self.account.lock().await;
        if let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        let kept = self.store.acme_account(&self.settings.directory).await?;
        let (account, new) = tls_acme::account(&self.settings, kept.as_deref()).await?;
        if let Some(credentials) = new {
            self.store.set_acme_account(&self.settings.directory, &credentials).await?;
            info!(event = "acme_account_created", directory = %self.settings.directory);
        }
        *cached = Some(account.clone());
        Ok(account)
    }

    /// Orders, stores, and puts the new certificate in the previous one's place (or assigns it
    /// to its names and `listeners`), then rebuilds the live set. `previous`: the id and chain
    /// of the certificate being renewed (named in the order, RFC 9773 §5).
    async fn issue(&self, names: &[String], listeners: &[&'static str], previous: Option<(i64, &str)>) -> anyhow::Result<i64> {
        info!(event = "acme_order", names = %names.join(","), directory = %self.settings.directory);
        let account = self.account().await?;
        let replaces = previous.map(|(_, chain)| chain).filter(|c| !c.is_empty());
        let issued = tls_acme::order(&account, self.settings.challenge, names, &self.responders, self.kind, replaces).await?;
        let info = certs::inspect(&issued.chain_pem)?;
        let id = self
            .store
            .add_certificate(StoredCert {
                id: 0,
                names: info.names.clone(),
                issuer: info.issuer.clone(),
                not_before: info.not_before,
                not_after: info.not_after,
                key_type: self.kind.as_str().into(),
                source: "acme".into(),
                chain_pem: Some(issued.chain_pem),
                key_pem: issued.key_pem,
                csr_pem: None,
                created: 0,
                warned: Vec::new(),
            })
            .await?;
        if let Some((old, _)) = previous {
            self.store.replace_certificate(old, id).await?;
        }
        for name in names {
            self.store.assign_certificate(id, Usage::Host, name).await?;
        }
        for listener in listeners {
            self.store.assign_certificate(id, Usage::Listener, listener).await?;
        }
        self.live.rebuild().await?;
        info!(event = "acme_issued", id, names = %names.join(","), issuer = %info.issuer, not_after = info.not_after);
        Ok(id)
    }
}

/// `rampart cert acme NAME...`: asks the running server and waits for its answer.
pub async fn request(store: &dyn Store, names: &[String], wait: u64) -> anyhow::Result<i64> {
    let id = store.request_acme(names).await?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    while Instant::now() < deadline {
        match store.acme_request(id).await? {
            Some(Ok(cert)) => return Ok(cert),
            Some(Err(e)) => bail!("the order failed: {e}"),
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    Err(anyhow!("no answer in {wait} s: is `rampart serve` running with [acme] configured? The request stays queued for it"))
}
