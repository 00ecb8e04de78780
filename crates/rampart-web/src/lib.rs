//! Rampart's web layer, served on `[listener.https]` (implicit TLS) and `[listener.http]`
//! (a redirect to HTTPS only).
//!
//! - [`accept`] serves an accepted connection: the TLS handshake (the guard's handshake slots
//!   and timeout, as for the mail listeners), then HTTP/1.1 through hyper with a header
//!   timeout and a connection lifetime; the guard has already admitted the client.
//! - [`router`] is the axum application: the JSON API under `/api/v1/` ([`api`]), mail client
//!   autoconfiguration ([`autoconfig`]), the MTA-STS policy ([`mta_sts`]), the Web Key
//!   Directory ([`wkd`]), the pages ([`pages`]),
//!   every response with the security headers of [`headers`].
//! - [`session`] holds logins: random session IDs stored hashed, `__Host-` cookies, idle and
//!   absolute timeouts, CSRF tokens, API tokens; [`login`] checks password and TOTP, counting
//!   failures in the guard like IMAP and SMTP logins.
//! - [`audit`] keeps the dashboard's copy of `rampart audit`'s findings, run in the background.
//! - Each admin action calls the same store and auth code as the CLI command of the same job.

#![forbid(unsafe_code)]

pub mod accept;
pub mod acme;
mod api;
mod audit;
mod autoconfig;
mod dashboard;
mod error;
mod headers;
mod login;
mod mta_sts;
mod openapi;
mod pages;
mod session;
mod wkd;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use rampart_store::{AccountId, Store, StoreError};

pub use accept::{handle_http, handle_https, refuse};
pub use audit::{AuditFinding, Audits, keep_running as run_audits};
pub use dashboard::{AccountQuota, CertExpiry, Dashboard, QuotaUse};
pub use session::SCOPES;

/// The ports mail clients are told to use, as bound (None: that listener is off).
#[derive(Debug, Clone, Copy, Default)]
pub struct MailPorts {
    pub imaps: Option<u16>,
    pub imap: Option<u16>,
    pub submissions: Option<u16>,
    pub submission: Option<u16>,
}

/// Releasing a held message is the CLI's action too (deliver, then learn as ham); the binary
/// supplies it so both share one implementation.
#[async_trait::async_trait]
pub trait Quarantine: Send + Sync {
    /// Delivers a held message to its recipients (or only `account`); returns how many
    /// mailboxes got it.
    async fn release(&self, id: &str, account: Option<AccountId>) -> Result<usize, StoreError>;
}

/// One DNS record a domain needs, as found live.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordCheck {
    pub name: String,
    pub rtype: String,
    pub expected: String,
    pub found: Vec<String>,
    /// `ok`, `missing`, `wrong` or `error` (DNS did not answer).
    pub status: &'static str,
}

/// Checking a domain's records against DNS is `rampart dns check` too; the binary supplies it.
#[async_trait::async_trait]
pub trait DnsCheck: Send + Sync {
    async fn check(&self, domain: &str) -> Result<Vec<RecordCheck>, StoreError>;
}

/// What the web handlers share.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub auth: Arc<rampart_auth::Authenticator>,
    pub guard: Arc<rampart_guard::Guard>,
    /// `[web]`: replaced on SIGHUP.
    pub web: Arc<WebSettings>,
    pub hostname: String,
    pub policy: rampart_auth::PasswordPolicy,
    pub ports: MailPorts,
    pub quarantine: Arc<dyn Quarantine>,
    pub dns: Arc<dyn DnsCheck>,
    pub dashboard: Arc<dyn Dashboard>,
    /// The MTA-STS policy served for every local domain ([`mta_sts`]).
    pub mta_sts: rampart_config::MtaSts,
    /// The audit's last report and the requests for the next run ([`run_audits`]).
    pub audits: Audits,
}

impl Services {
    fn issuer(&self) -> String {
        let web = self.web.get();
        if web.totp_issuer.is_empty() { self.hostname.clone() } else { web.totp_issuer.clone() }
    }
}

/// `[web]` as in force now: SIGHUP replaces it ([`WebSettings::replace`]); a request reads it
/// once where it needs it, so it sees either the old or the new settings.
#[derive(Debug)]
pub struct WebSettings(std::sync::RwLock<Arc<rampart_config::Web>>);

impl WebSettings {
    pub fn new(web: rampart_config::Web) -> WebSettings {
        WebSettings(std::sync::RwLock::new(Arc::new(web)))
    }

    pub fn get(&self) -> Arc<rampart_config::Web> {
        self.0.read().expect("web settings lock").clone()
    }

    pub fn replace(&self, web: rampart_config::Web) {
        *self.0.write().expect("web settings lock") = Arc::new(web);
    }
}

/// A listener's HTTP settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listener: &'static str,
    /// Request headers must arrive within this time.
    pub idle_timeout: std::time::Duration,
    pub max_body_size: usize,
    /// Where `http` redirects to: the https listener's port (None: 443).
    pub https_port: Option<u16>,
}

/// The client's address, put into every request by [`accept`].
#[derive(Debug, Clone, Copy)]
pub struct Client(pub SocketAddr);

/// The application served on the https listener.
pub fn router(services: Arc<Services>, settings: &Settings) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(autoconfig::routes())
        .merge(mta_sts::routes())
        .merge(wkd::routes())
        .merge(pages::routes())
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_size))
        .layer(axum::middleware::from_fn_with_state(body_limits(settings), headers::whole_body))
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(services)
}

/// The application served on the http listener: everything redirects to HTTPS.
pub fn redirect_router(settings: &Settings) -> Router {
    let port = settings.https_port;
    Router::new()
        .fallback(move |req: axum::extract::Request| std::future::ready(headers::to_https(&req, port)))
        .layer(axum::middleware::from_fn_with_state(body_limits(settings), headers::whole_body))
}

fn body_limits(settings: &Settings) -> headers::BodyLimits {
    headers::BodyLimits { max: settings.max_body_size, timeout: settings.idle_timeout }
}

/// Unix seconds now.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
