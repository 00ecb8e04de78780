//! `rampart serve`: load and check the config, open the store, bind every listener, serve.
//!
//! Start-up fails with one clear line naming the key, file or port at fault. All listeners are
//! bound before any is served, so a port already in use stops the server before it accepts
//! anything. SIGHUP reloads certificates (`[tls]`), the guard (every `[guard]` key), the
//! listeners' `allow`/`deny` lists and `[web]`; every other key needs a restart. SIGTERM and SIGINT stop
//! the server (acknowledged mail is already durable, so nothing in flight needs draining).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rampart_config::Config;
use rampart_smtp::session::{AuthLimits, SenderPolicy};
use rampart_smtp::{Role, Services, Settings};
use rampart_store::SqliteStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

/// Authentication settings from the config.
pub fn auth_settings(config: &Config) -> rampart_auth::AuthSettings {
    let a = &config.auth;
    rampart_auth::AuthSettings {
        cram_md5: a.cram_md5,
        hash: rampart_auth::HashParams {
            memory_kib: a.argon2_memory_kib,
            iterations: a.argon2_iterations,
            parallelism: a.argon2_parallelism,
        },
        scram_iterations: a.scram_iterations,
        hostname: config.server.hostname.clone(),
        credential_cache: a.credential_cache.then_some(a.credential_cache_ttl),
    }
}

/// The checker and policy from `[auth_checks]`, `[dkim]` and `[dmarc]`.
/// The content layer's settings and tools, from `[filter]`.
pub fn filters(config: &Config) -> anyhow::Result<rampart_smtp::session::Filters> {
    let f = &config.filter;
    let list = |l: &rampart_config::Dnsbl| rampart_pipeline::lists::List {
        zone: l.zone.clone(),
        score: l.score,
        // Validated as IPv4 addresses by `rampart config check`.
        codes: l.codes.iter().filter_map(|(k, v)| Some((k.parse().ok()?, *v))).collect(),
        reject: l.reject,
    };
    let dns = if f.dnsbl.is_empty() && f.domainbl.is_empty() {
        None
    } else {
        let resolver = rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow!("dns.nameservers: {e}"))?;
        Some(Arc::new(rampart_pipeline::Dns::new(resolver)))
    };
    Ok(rampart_smtp::session::Filters {
        dns,
        dnsbl: f.dnsbl.iter().map(list).collect(),
        domainbl: f.domainbl.iter().map(list).collect(),
        max_domain_lookups: f.max_domain_lookups,
        spam: f.spam.clone(),
        greylist: f.greylist.clone(),
        clamd: rampart_external::Clamd::from_config(&f.antivirus).map_err(|e| anyhow!("filter.antivirus.clamd: {e}"))?.map(Arc::new),
        antivirus: f.antivirus.clone(),
        milters: f.milter.iter().cloned().map(Arc::new).collect(),
    })
}

pub fn sender_auth(config: &Config) -> anyhow::Result<rampart_smtp::session::SenderAuth> {
    use rampart_config::{SpfFail, TempErrorAction};
    let ac = &config.auth_checks;
    let checker = if ac.enabled {
        let resolver =
            rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow!("dns.nameservers: {e}"))?;
        let id = if ac.authserv_id.is_empty() { &config.server.hostname } else { &ac.authserv_id };
        Some(Arc::new(rampart_pipeline::Checker::new(resolver, id, &config.server.hostname, &ac.trusted_arc_sealers)))
    } else {
        None
    };
    let policy = rampart_pipeline::Policy {
        dmarc_reject: ac.dmarc_reject,
        dmarc_quarantine: ac.dmarc_quarantine,
        spf_fail: match ac.spf_fail {
            SpfFail::Accept => rampart_pipeline::SpfFailAction::Accept,
            SpfFail::Tag => rampart_pipeline::SpfFailAction::Tag,
            SpfFail::Reject => rampart_pipeline::SpfFailAction::Reject,
        },
        defer_on_temperror: ac.dns_temperror == TempErrorAction::Defer,
        junk_score: config.filter.spam.junk_score,
        quarantine_score: config.filter.spam.quarantine_score,
        reject_score: config.filter.spam.reject_score,
        outbound: false,
    };
    let report_address = Some(config.dmarc.report_address.as_str())
        .filter(|a| !a.is_empty())
        .map(rampart_store::address::canonical)
        .transpose()
        .map_err(|e| anyhow!("dmarc.report_address: {e}"))?;
    let tlsrpt_address = Some(config.tlsrpt.report_address.as_str())
        .filter(|a| !a.is_empty())
        .map(rampart_store::address::canonical)
        .transpose()
        .map_err(|e| anyhow!("tlsrpt.report_address: {e}"))?;
    let outbound_policy = rampart_pipeline::Policy { outbound: true, reject_score: config.filter.spam.outbound_reject_score, ..policy.clone() };
    Ok(rampart_smtp::session::SenderAuth {
        checker,
        policy,
        outbound_policy,
        iprev: ac.iprev,
        sign: config.dkim.sign,
        arc_seal: config.dkim.arc_seal,
        record_dmarc: config.dmarc.send_reports,
        report_address,
        signing_keys: Default::default(),
        tlsrpt_address,
    })
}

/// Loads the config and refuses it with every problem listed, each naming its key.
pub fn load_config(path: &Path, sets: &[String]) -> anyhow::Result<Config> {
    let config = load_checked(path, sets)?;
    // Every command that opens the store comes through here: the master key is read once,
    // before any of them does (an encrypted store refuses to open without it).
    crate::keys::install(&config)?;
    Ok(config)
}

/// The config, validated; the master key not read (a reload reads it on its own, so that a
/// key it cannot read keeps the old one without holding back the rest of the reload).
fn load_checked(path: &Path, sets: &[String]) -> anyhow::Result<Config> {
    let config = Config::load(path, sets)?;
    let errors = config.validate();
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("{}", list.join("\nerror: "));
    }
    Ok(config)
}

pub fn run(path: &Path, sets: &[String]) -> anyhow::Result<()> {
    let config = load_checked(path, sets)?;
    // While this process has nothing open and no thread: choosing OpenSSL's RSA code may start
    // it again (see rsa_code). Before the master key is read, so that it is read once.
    let rsa = crate::rsa_code::choose(config.dkim.openssl_rsa);
    crate::keys::install(&config)?;
    crate::logging::init(&config.log.level, &config.log.file).with_context(|| format!("log.file: {}", config.log.file))?;
    match &rsa {
        crate::rsa_code::Outcome::Failed(_) => tracing::warn!(event = "dkim_rsa_code", "DKIM signs with {rsa}"),
        _ => tracing::info!(event = "dkim_rsa_code", "DKIM signs with {rsa}"),
    }
    // Before the runtime's threads exist: they inherit no-new-privileges.
    let target = crate::privileges::prepare(&config.server)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(path, sets, config, target))
}

/// What a listener speaks, with its settings.
#[derive(Clone)]
enum Proto {
    Smtp(Arc<Settings>),
    Imap(Arc<rampart_imap::Settings>),
    /// `https` (implicit TLS) or `http` (the redirect), told apart by the listener's name.
    Web(Arc<rampart_web::Settings>),
}

impl Proto {
    fn tls(&self) -> &'static str {
        match self {
            Proto::Smtp(s) => tls_name(s.tls),
            Proto::Imap(s) => tls_name(s.tls),
            Proto::Web(s) if s.listener == "https" => "implicit",
            Proto::Web(_) => "none",
        }
    }
}

fn tls_name(mode: rampart_config::TlsMode) -> &'static str {
    match mode {
        rampart_config::TlsMode::Implicit => "implicit",
        rampart_config::TlsMode::Starttls => "starttls",
    }
}

/// A bound listener waiting to be served.
struct Bound {
    name: &'static str,
    tcp: TcpListener,
    proto: Proto,
    slots: Arc<Semaphore>,
}

/// What the protocol sessions share.
#[derive(Clone)]
struct Shared {
    smtp: Arc<Services>,
    imap: Arc<rampart_imap::Services>,
    /// The https application and the http redirect.
    web: axum::Router,
    redirect: axum::Router,
}

async fn serve(path: &Path, sets: &[String], config: Config, target: Option<crate::privileges::Target>) -> anyhow::Result<()> {
    // Before the store records this process's pid for `keys rotate` to signal: from here a
    // SIGHUP waits for the reload loop instead of ending the process (its default action).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let opened = open_store(&config, target.as_ref()).await?;
    let store: Arc<dyn rampart_store::Store> = opened.store.clone();
    let mail_store: Arc<dyn rampart_store::MailStore> = store.clone();
    // `[tls]` files and the store's certificates, rebuilt when either changes.
    let live = crate::certs::live::LiveCerts::start(&config.tls, store.clone()).await?;
    let cert_store = live.certs.clone();
    let http01 = Arc::new(rampart_tls::acme::Http01Tokens::default());
    let auth = rampart_auth::Authenticator::new(store.clone(), auth_settings(&config))?;
    let guard = rampart_guard::Guard::new(&config, store.clone());
    guard.refresh().await;
    let queue_wakeup = Arc::new(tokio::sync::Notify::new());
    let sender_auth = sender_auth(&config)?;
    let sending = rampart_smtp::sending::Sending::new(
        store.clone(),
        config.quota.clone(),
        config.containment.clone(),
        config.server.hostname.clone(),
        config.smtp.recipient_delimiter.clone(),
        queue_wakeup.clone(),
    );
    let services = Arc::new(Services {
        store: store.clone(),
        hostname: config.server.hostname.clone(),
        recipient_delimiter: config.smtp.recipient_delimiter.clone(),
        auth,
        auth_limits: AuthLimits { max_failures: config.auth.max_failures, failure_delay: config.auth.failure_delay },
        senders: SenderPolicy::new(&config.submission.allowed_senders),
        hide_client: config.submission.hide_client,
        queue_wakeup: queue_wakeup.clone(),
        sender_auth,
        guard: guard.clone(),
        filters: filters(&config)?,
        limit_overrides: config.limits.r#override.clone(),
        gateway: crate::gateway::gateway(&config)?,
        sending: sending.clone(),
    });
    crate::gateway::warn_local_domains(&config, store.as_ref()).await;
    let client_certs = crate::certs::client_certs(store.as_ref()).await?;
    let runner = crate::queue::runner(&config, store.clone(), queue_wakeup, sending.clone(), &client_certs)?;
    // IMAP shares the authenticator and the guard (failure counts, bans) with SMTP.
    let imap_services = Arc::new(rampart_imap::Services {
        store: mail_store.clone(),
        auth: services.auth.clone(),
        guard: guard.clone(),
        hostname: config.server.hostname.clone(),
        max_auth_failures: config.auth.max_failures,
        failure_delay: config.auth.failure_delay,
        learner: (config.filter.spam.enabled && config.filter.spam.classifier && config.filter.spam.learn_from_imap)
            .then(|| Arc::new(crate::spam::ImapLearner { store: store.clone() }) as Arc<dyn rampart_imap::Learner>),
        columns: Arc::new(rampart_imap::ColumnCache::new(usize::try_from(config.store.imap_column_cache).unwrap_or(usize::MAX))),
        user_keys: Some(store.clone() as Arc<dyn rampart_store::UserKeyStore>),
    });
    let (bound, metrics_listeners) = bind_listeners(&config).await?;
    let web_settings = Arc::new(rampart_web::WebSettings::new(config.web.clone()));
    let (web, redirect) = web_apps(&config, &bound, &services, &web_settings)?;
    let redirect = rampart_web::acme::http01(http01.clone()).merge(redirect);
    let shared = Shared { smtp: services, imap: imap_services, web, redirect };
    // Every port is bound and every file open: root is no longer needed.
    if let Some(t) = &target {
        // Where bodies stream in: blobs/tmp of the embedded store, the spool of PostgreSQL's.
        let incoming = match config.store.backend {
            rampart_config::StoreBackend::Sqlite => config.server.data_dir.join("blobs").join("tmp"),
            rampart_config::StoreBackend::Postgres => config.server.data_dir.join("spool").join("tmp"),
        };
        crate::privileges::become_target(t, &config.server.data_dir, &incoming)?;
    }

    let global = Arc::new(Semaphore::new(config.server.max_connections));
    for b in bound {
        let addr = b.tcp.local_addr()?;
        info!(event = "listening", listener = b.name, addr = %addr, tls = %b.proto.tls());
        let shared = shared.clone();
        // One TLS configuration per listener: its own default certificate, and its
        // protocol's ALPN id (tls.enforce_alpn).
        let alpn = match b.proto {
            Proto::Smtp(_) => "smtp",
            Proto::Imap(_) => "imap",
            Proto::Web(_) => "http/1.1",
        };
        let alpn = config.tls.enforce_alpn.then_some(alpn);
        let acceptor = rampart_tls::TlsAcceptor::from(rampart_tls::listener_config(cert_store.clone(), Some(b.name), alpn)?);
        let global = global.clone();
        tokio::spawn(accept_loop(b, shared, acceptor, global));
    }
    if !metrics_listeners.is_empty() {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow!("listener.metrics: {e}"))?;
        for tcp in metrics_listeners {
            info!(event = "listening", listener = "metrics", addr = %tcp.local_addr()?, tls = "none");
            tokio::spawn(crate::metrics::serve(tcp, handle.clone()));
        }
    }
    tokio::spawn(guard.clone().maintain());
    tokio::spawn(sending.upkeep());
    tokio::spawn(runner.run());
    spawn_upkeep(&config, &store, &shared);
    spawn_certificates(&config, &store, &live, http01, &shared)?;
    let node = config.node_id();
    ::metrics::gauge!("rampart_node_info", "node" => node.clone(), "backend" => opened.backend()).set(1.0);
    info!(event = "started", hostname = %config.server.hostname, pid = std::process::id(), node = %node, backend = opened.backend());
    crate::systemd::notify("READY=1\nSTATUS=accepting mail");

    let store = opened.sqlite_if_any().cloned();
    signals(path, sets, hup, Reloaded { certs: live, guard, web: web_settings, store }).await
}

/// Certificates beside the listeners: the store watch, ACME orders and renewals, expiry.
fn spawn_certificates(
    config: &Config,
    store: &Arc<dyn rampart_store::Store>,
    live: &Arc<crate::certs::live::LiveCerts>,
    http01: Arc<rampart_tls::acme::Http01Tokens>,
    shared: &Shared,
) -> anyhow::Result<()> {
    tokio::spawn(live.clone().watch());
    let acme = crate::certs::acme::Manager::new(config, store.clone(), live.clone(), http01)?;
    tokio::spawn(acme.run());
    let expiry = crate::certs::expiry::Expiry {
        store: store.clone(),
        hostname: config.server.hostname.clone(),
        recipient_delimiter: config.smtp.recipient_delimiter.clone(),
        admin: config.containment.admin_address.clone(),
        queue_wakeup: shared.smtp.queue_wakeup.clone(),
    };
    tokio::spawn(expiry.run());
    Ok(())
}

/// The store `[store]` names ([`crate::backend::open`]), given to the service user when the
/// server will drop root, with IMAP's summarizer: every message stored from now on gets its
/// summary (sort keys, searched headers, ENVELOPE/BODYSTRUCTURE, words for the full-text
/// index). The embedded store's own work (master keys, backfill) is done here too, and
/// skipped on PostgreSQL.
async fn open_store(config: &Config, target: Option<&crate::privileges::Target>) -> anyhow::Result<crate::backend::Opened> {
    let opened = crate::backend::open(config, crate::backend::Purpose::Server).await?;
    if let Some(t) = target {
        let mut tls_files = vec![config.tls.cert.as_path(), config.tls.key.as_path()];
        for sni in config.tls.sni.iter().filter(|s| s.has_files()) {
            tls_files.extend([sni.cert.as_path(), sni.key.as_path()]);
        }
        crate::privileges::hand_over(t, &config.server.data_dir, &tls_files)?;
        if config.store.encryption.mode == rampart_config::EncryptionMode::Server {
            crate::privileges::hand_over_key(t, &config.store.encryption.key_file)?;
        }
    }
    if let Some(sqlite) = opened.sqlite_if_any() {
        resume_key_work(config, sqlite)?;
    }
    opened.set_summarizer(Arc::new(rampart_imap::MessageSummarizer));
    if let Some(sqlite) = opened.sqlite_if_any() {
        // Messages stored before summaries existed (or summarized by an older version) get
        // theirs in the background, so SORT and SEARCH need not read them.
        tokio::spawn(SqliteStore::clone(sqlite).backfill());
    }
    Ok(opened)
}

/// Encryption at rest of the embedded store: a rotation left unfinished (the key text still
/// lists the old key), or a conversion begun beside the last run, goes on.
fn resume_key_work(config: &Config, sqlite: &Arc<SqliteStore>) -> anyhow::Result<()> {
    if let Some(keys) = crate::keys::load(config)? {
        if sqlite.conversion_requested() {
            crate::keys::encrypt(sqlite, keys);
        } else if keys.has_old() {
            crate::keys::adopt(sqlite, keys);
        }
    }
    Ok(())
}

/// The periodic work beside the listeners: dashboard counts, quarantine and greylist upkeep,
/// DMARC reports, and the one-time clamd check.
fn spawn_upkeep(config: &Config, store: &Arc<dyn rampart_store::Store>, shared: &Shared) {
    tokio::spawn(crate::stats::flush(store.clone()));
    tokio::spawn(content_upkeep(config.filter.clone(), store.clone(), config.server.hostname.clone()));
    if let Some(clamd) = shared.smtp.filters.clamd.clone() {
        // A clear line at start when clamd is absent: every message would otherwise wait for
        // it and be deferred (or pass unscanned with on_error = "accept").
        tokio::spawn(async move {
            match clamd.ping().await {
                Ok(()) => info!(event = "antivirus_ready", clamd = %clamd.address()),
                Err(e) => warn!(event = "antivirus_unavailable", clamd = %clamd.address(), error = %e),
            }
        });
    }
    if config.dmarc.send_reports {
        tokio::spawn(crate::dmarc::report_loop(config.clone(), store.clone(), shared.smtp.queue_wakeup.clone()));
    }
    if config.tlsrpt.send_reports {
        tokio::spawn(crate::tlsrpt::report_loop(config.clone(), store.clone(), shared.smtp.queue_wakeup.clone()));
    }
}

/// The web applications: the https one (API, autoconfiguration naming the mail ports as
/// bound, pages) and the http redirect (to the https listener's port).
fn web_apps(
    config: &Config,
    bound: &[Bound],
    smtp: &Arc<Services>,
    web_settings: &Arc<rampart_web::WebSettings>,
) -> anyhow::Result<(axum::Router, axum::Router)> {
    let port = |name: &str| bound.iter().find(|b| b.name == name).and_then(|b| b.tcp.local_addr().ok()).map(|a| a.port());
    let ports = rampart_web::MailPorts {
        imaps: port("imaps"),
        imap: port("imap"),
        submissions: port("submissions"),
        submission: port("submission"),
    };
    let settings = |name: &str| {
        bound.iter().find_map(|b| match &b.proto {
            Proto::Web(s) if s.listener == name => Some(s.clone()),
            _ => None,
        })
    };
    let services = Arc::new(rampart_web::Services {
        store: smtp.store.clone(),
        auth: smtp.auth.clone(),
        guard: smtp.guard.clone(),
        web: web_settings.clone(),
        hostname: config.server.hostname.clone(),
        policy: rampart_auth::PasswordPolicy {
            min_length: config.auth.password_min_length,
            min_score: config.auth.password_min_score,
        },
        ports,
        quarantine: Arc::new(crate::quarantine::Releaser { store: smtp.store.clone() }),
        dns: Arc::new(crate::dnscheck::Checker {
            store: smtp.store.clone(),
            config: config.clone(),
            resolver: rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow!("dns.nameservers: {e}"))?,
        }),
        dashboard: Arc::new(crate::webdash::Dashboard { store: smtp.store.clone(), config: config.clone() }),
        mta_sts: config.mta_sts.clone(),
        audits: Default::default(),
    });
    let web = settings("https").map(|s| rampart_web::router(services.clone(), &s)).unwrap_or_default();
    let redirect = settings("http").map(|s| rampart_web::redirect_router(&s)).unwrap_or_default();
    if settings("https").is_some() {
        // The dashboard's audit: at start, every web.audit_interval, and when an admin asks.
        tokio::spawn(rampart_web::run_audits(services.clone()));
        tokio::spawn(session_upkeep(services));
    }
    Ok((web, redirect))
}

/// Every ten minutes: web sessions past their idle or absolute timeout are deleted.
async fn session_upkeep(web: Arc<rampart_web::Services>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp();
        let settings = web.web.get();
        let idle = now - settings.session_idle_timeout.as_secs() as i64;
        let old = now - settings.session_max_age.as_secs() as i64;
        if let Err(e) = web.store.sessions_prune(idle, old).await {
            warn!(event = "store_error", what = "web session expiry", error = %e.chain());
        }
    }
}

/// Hourly: held messages past `filter.quarantine.retention` are deleted, and greylisting
/// forgets what its windows no longer need; daily, when `filter.quarantine.digest` is on,
/// users with newly held mail get a list of it.
async fn content_upkeep(filter: rampart_config::Filter, store: Arc<dyn rampart_store::Store>, hostname: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    let mut last_digest = std::time::Instant::now();
    loop {
        tick.tick().await;
        if filter.quarantine.digest && last_digest.elapsed() >= Duration::from_secs(24 * 3600) {
            last_digest = std::time::Instant::now();
            match crate::quarantine::send_digests(store.as_ref(), &hostname).await {
                Ok(n) => info!(event = "quarantine_digests", count = n),
                Err(e) => warn!(event = "quarantine_digest_failed", error = %format!("{e:#}")),
            }
        }
        let now = chrono::Utc::now().timestamp();
        match store.expire_held(now - filter.quarantine.retention.as_secs() as i64).await {
            Ok(0) => {}
            Ok(n) => info!(event = "quarantine_expired", count = n),
            Err(e) => warn!(event = "store_error", what = "quarantine expiry", error = %e.chain()),
        }
        // Expunged UIDs are remembered for QRESYNC/CONDSTORE clients for 30 days; a client
        // that has not synchronised for longer hears every missing UID as vanished (a superset,
        // RFC 7162 §3.2.10), so the table does not grow with every message ever deleted.
        if let Err(e) = store.prune_expunged(now - 30 * 24 * 3600).await {
            warn!(event = "store_error", what = "expunged pruning", error = %e.chain());
        }
        let g = &filter.greylist;
        if g.enabled
            && let Err(e) = store.greylist_prune(now, g.retry_window.as_secs() as i64, g.expire.as_secs() as i64).await {
                warn!(event = "store_error", what = "greylist pruning", error = %e.chain());
            }
    }
}

/// Binds every listener's addresses before anything is served, so a port in use stops the start
/// with one clear line naming the listener.
async fn bind_listeners(config: &Config) -> anyhow::Result<(Vec<Bound>, Vec<TcpListener>)> {
    let mut bound = Vec::new();
    for (name, listener) in config.smtp_listeners() {
        let role = if name == "smtp" { Role::Mx } else { Role::Submission };
        let settings = Arc::new(Settings::from_config(name, role, listener));
        let slots = Arc::new(Semaphore::new(listener.max_connections));
        for addr in &listener.bind {
            let tcp = bind(*addr).await.map_err(|e| anyhow!("listener.{name}.bind: cannot listen on {addr}: {e}"))?;
            bound.push(Bound { name, tcp, proto: Proto::Smtp(settings.clone()), slots: slots.clone() });
        }
    }
    for (name, listener) in config.imap_listeners() {
        let settings = Arc::new(rampart_imap::Settings::from_config(name, listener));
        let slots = Arc::new(Semaphore::new(listener.max_connections));
        for addr in &listener.bind {
            let tcp = bind(*addr).await.map_err(|e| anyhow!("listener.{name}.bind: cannot listen on {addr}: {e}"))?;
            bound.push(Bound { name, tcp, proto: Proto::Imap(settings.clone()), slots: slots.clone() });
        }
    }
    // https first: the http redirect names its port.
    let mut https_port = None;
    for (name, listener) in config.web_listeners() {
        let settings = Arc::new(rampart_web::Settings {
            listener: name,
            idle_timeout: listener.idle_timeout,
            max_body_size: listener.max_body_size,
            https_port,
        });
        let slots = Arc::new(Semaphore::new(listener.max_connections));
        for addr in &listener.bind {
            let tcp = bind(*addr).await.map_err(|e| anyhow!("listener.{name}.bind: cannot listen on {addr}: {e}"))?;
            if name == "https" && https_port.is_none() {
                https_port = Some(tcp.local_addr()?.port());
            }
            bound.push(Bound { name, tcp, proto: Proto::Web(settings.clone()), slots: slots.clone() });
        }
    }
    let mut metrics_listeners = Vec::new();
    for addr in &config.listener.metrics.bind {
        let tcp = bind(*addr).await.map_err(|e| anyhow!("listener.metrics.bind: cannot listen on {addr}: {e}"))?;
        metrics_listeners.push(tcp);
    }
    Ok((bound, metrics_listeners))
}

/// Binds with SO_REUSEADDR (restart while old connections linger in TIME_WAIT) and, for IPv6,
/// IPV6_V6ONLY so `0.0.0.0:25` and `[::]:25` can both be bound.
async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(b: Bound, shared: Shared, acceptor: rampart_tls::TlsAcceptor, global: Arc<Semaphore>) {
    let guard = shared.smtp.guard.clone();
    loop {
        let (stream, remote): (TcpStream, SocketAddr) = match b.tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning on the error.
                warn!(event = "accept_failed", listener = b.name, error = %e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admission = match guard.admit(b.name, remote.ip()) {
            Ok(a) => a,
            Err(refusal) => {
                let banner = guard.limits().deny_banner;
                tokio::spawn(refuse(stream, b.proto.clone(), shared.clone(), refusal, banner));
                continue;
            }
        };
        let permits = global.clone().try_acquire_owned().and_then(|g| Ok((g, b.slots.clone().try_acquire_owned()?)));
        let Ok(permits) = permits else {
            info!(event = "rate_limited", ip = %remote.ip(), listener = b.name, limit = "listener_connections");
            ::metrics::counter!("rampart_connections_refused_total", "listener" => b.name, "reason" => "listener_connections").increment(1);
            tokio::spawn(refuse(stream, b.proto.clone(), shared.clone(), rampart_guard::Refusal::ListenerConnections, true));
            continue;
        };
        let (shared, proto, acceptor) = (shared.clone(), b.proto.clone(), acceptor.clone());
        tokio::spawn(async move {
            match proto {
                Proto::Smtp(settings) => rampart_smtp::handle(stream, remote, shared.smtp, settings, acceptor, admission.basis()).await,
                Proto::Imap(settings) => rampart_imap::handle(stream, remote, shared.imap, settings, acceptor).await,
                Proto::Web(settings) if settings.listener == "https" => {
                    rampart_web::handle_https(stream, remote, shared.web, settings, acceptor, shared.smtp.guard.clone()).await
                }
                Proto::Web(settings) => rampart_web::handle_http(stream, remote, shared.redirect, settings).await,
            }
            drop((permits, admission));
        });
    }
}

/// Turns a connection away in its protocol's words.
async fn refuse(stream: TcpStream, proto: Proto, shared: Shared, refusal: rampart_guard::Refusal, banner: bool) {
    match proto {
        Proto::Smtp(settings) => rampart_smtp::refuse(stream, &settings, &shared.smtp.hostname, &refusal, banner).await,
        Proto::Imap(settings) => rampart_imap::refuse(stream, &settings, refusal.is_permanent(), banner).await,
        Proto::Web(_) => rampart_web::refuse(stream).await,
    }
}

/// What a SIGHUP reload replaces.
struct Reloaded {
    certs: Arc<crate::certs::live::LiveCerts>,
    guard: Arc<rampart_guard::Guard>,
    web: Arc<rampart_web::WebSettings>,
    /// Its master keys, during `rampart keys rotate` ([`crate::keys::reload`]); the embedded
    /// store only.
    store: Option<Arc<SqliteStore>>,
}

async fn signals(path: &Path, sets: &[String], mut hup: tokio::signal::unix::Signal, live: Reloaded) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                crate::systemd::notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", crate::systemd::monotonic_usec()));
                reload(path, sets, &live).await;
                crate::systemd::notify("READY=1");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!(event = "stopping");
    crate::systemd::notify("STOPPING=1");
    Ok(())
}

/// Re-reads the config: certificates, the guard's rules and limits (firewall lists, rates,
/// ban times, the TLS handshake cap) and `[web]` (sessions' timeouts, 2FA for admins, failure
/// delay, TOTP issuer), and the master keys of an encrypted store. On any error the old ones
/// stay.
async fn reload(path: &Path, sets: &[String], live: &Reloaded) {
    let loaded = match load_checked(path, sets) {
        Ok(c) => live.certs.reload(c.tls.clone()).await.map(|()| c),
        Err(e) => Err(e),
    };
    match loaded {
        Ok(config) => {
            live.guard.reload(&config);
            live.web.replace(config.web.clone());
            if let Some(store) = &live.store {
                crate::keys::reload(&config, store);
            }
            info!(event = "certificates_reloaded");
            info!(event = "firewall_reloaded", deny = config.guard.deny.len(), allow = config.guard.allow.len());
            info!(event = "web_reloaded", require_2fa_for_admins = config.web.require_2fa_for_admins);
        }
        Err(e) => error!(event = "reload_failed", error = %format!("{e:#}").replace('\n', "; ")),
    }
}
