//! The session's side of the content layer (`[filter]`): client blocklists asked once per
//! connection, started when the client connects so the answers are in by the first RCPT.

use std::sync::Arc;

use rampart_pipeline::lists::{self, List};
use rampart_pipeline::{Dns, Entry, Outcome, Reason, Stage, Trail};
use rampart_store::filter::{GreylistQuery, Greylisting};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::state::Transaction;
use super::{Connection, Role};

/// The content layer's settings and tools, from `[filter]`.
#[derive(Default)]
pub struct Filters {
    /// DNS for the blocklists; None when no list is configured.
    pub dns: Option<Arc<Dns>>,
    /// Client address lists (`[[filter.dnsbl]]`).
    pub dnsbl: Vec<List>,
    /// Domain lists (`[[filter.domainbl]]`).
    pub domainbl: Vec<List>,
    pub max_domain_lookups: usize,
    /// `[filter.spam]`: the scorer and its classifier.
    pub spam: rampart_config::Spam,
    /// `[filter.greylist]`.
    pub greylist: rampart_config::Greylist,
}

/// What the client lists say about this connection's client.
#[derive(Default)]
pub(super) enum Listings {
    /// Not asked: no lists, or not the MX.
    #[default]
    NotAsked,
    Pending(JoinHandle<Vec<Entry>>),
    Known(Vec<Entry>),
}

impl Connection {
    /// Starts the client-list lookups on the MX, so they run while the client is greeted and
    /// says EHLO; submission clients authenticate instead.
    pub(super) fn start_listings(&mut self) {
        let filters = &self.services.filters;
        let (Some(dns), false) = (filters.dns.clone(), filters.dnsbl.is_empty()) else { return };
        if self.settings.role != Role::Mx {
            return;
        }
        let (lists, ip) = (filters.dnsbl.clone(), self.remote.ip());
        self.listings = Listings::Pending(tokio::spawn(async move { lists::check_client(&dns, &lists, ip).await }));
    }

    /// The client-list entries, waiting for the lookups the first time.
    pub(super) async fn listings(&mut self) -> &[Entry] {
        if let Listings::Pending(task) = &mut self.listings {
            // A lookup task that panicked says nothing about the client.
            self.listings = Listings::Known(task.await.unwrap_or_default());
        }
        match &self.listings {
            Listings::Known(entries) => entries,
            _ => &[],
        }
    }

    /// The entries known so far, for a message's trail (the lookups finished by the first RCPT).
    pub(super) fn known_listings(&self) -> &[Entry] {
        match &self.listings {
            Listings::Known(entries) => entries,
            _ => &[],
        }
    }
}

/// The domain a message's sender proved it speaks for: the DMARC-aligned From domain, else the
/// SPF-authorized MAIL FROM domain. Greylisting lets such domains with a good history through.
pub(super) fn authenticated_domain(trail: &Trail) -> Option<String> {
    let passed = |stage| trail.entries().iter().find(|e| e.stage == stage && e.result == Outcome::Pass).and_then(|e| e.domain.clone());
    passed(Stage::Dmarc).or_else(|| passed(Stage::Spf))
}

impl Connection {
    /// Greylisting (MX, when on): a new (network, sender, recipient) triplet waits `delay`
    /// before its retry is accepted. A store failure lets the message through rather than
    /// deferring every sender; it is logged.
    pub(super) async fn greylist(&self, tx: &Transaction, trail: &Trail) -> Entry {
        let g = &self.services.filters.greylist;
        let ip = rampart_guard::canonical_ip(self.remote.ip());
        let entry = |result, reason| Entry::new(Stage::Greylist, result, reason);
        if g.allowlist.iter().any(|c| c.contains(&ip)) {
            return entry(Outcome::Pass, Reason::GreylistExempt).detail("allowlisted");
        }
        let net = rampart_guard::wide_net(ip).to_string();
        let sender = tx.sender().to_ascii_lowercase();
        let query = GreylistQuery {
            triplets: tx.rcpts.iter().map(|r| format!("{net} {sender} {}", r.trim_matches(['<', '>']).to_ascii_lowercase())).collect(),
            net,
            authenticated_domain: authenticated_domain(trail),
            now: chrono::Utc::now().timestamp(),
            delay: g.delay.as_secs() as i64,
            retry_window: g.retry_window.as_secs() as i64,
            expire: g.expire.as_secs() as i64,
            good_history: g.good_history,
        };
        match self.services.store.greylist(query).await {
            Ok(Greylisting::Passed) => entry(Outcome::Pass, Reason::GreylistPassed),
            Ok(Greylisting::KnownClient) => entry(Outcome::Pass, Reason::GreylistPassed).detail("known client"),
            Ok(Greylisting::GoodDomain) => entry(Outcome::Pass, Reason::GreylistExempt).detail("domain with a good history"),
            Ok(Greylisting::Deferred { retry_after }) => {
                info!(event = "greylisted", ip = %self.remote.ip(), id = %tx.id, from = %format!("<{}>", tx.from), retry_after);
                entry(Outcome::TempError, Reason::Greylisted).detail(format!("retry after {}", retry_after))
            }
            Err(e) => {
                warn!(event = "store_error", ip = %self.remote.ip(), id = %tx.id, what = "greylist", error = %e.chain());
                entry(Outcome::Skipped, Reason::GreylistPassed).detail("store unavailable")
            }
        }
    }
}
