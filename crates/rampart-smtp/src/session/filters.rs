//! The session's side of the content layer (`[filter]`): client blocklists asked once per
//! connection, started when the client connects so the answers are in by the first RCPT.

use std::sync::Arc;

use rampart_pipeline::lists::{self, List};
use rampart_pipeline::{Dns, Entry, Outcome, Reason, Stage, Trail};
use rampart_filter::bayes::{self, Counts, Model};
use rampart_filter::{MessageView, Urls, rules};
use rampart_store::filter::{GreylistQuery, Greylisting, Scope};
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
    /// clamd, when `filter.antivirus.clamd` names one.
    pub clamd: Option<Arc<rampart_external::Clamd>>,
    /// `[filter.antivirus]`.
    pub antivirus: rampart_config::Antivirus,
    /// `[[filter.milter]]`, in configuration order.
    pub milters: Vec<Arc<rampart_config::Milter>>,
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

/// What the content filters read, computed once from the message: its parsed view, its URLs
/// and domains, and its classifier tokens.
struct Parsed {
    view: MessageView,
    urls: Urls,
    tokens: Vec<u64>,
}

fn parse(raw: &[u8], envelope_domain: Option<String>) -> Parsed {
    let view = MessageView::parse(raw);
    let mut urls = Urls::extract(&view);
    if let Some(d) = envelope_domain.and_then(|d| rampart_filter::urls::registrable(&d))
        && !urls.domains.contains(&d) {
            urls.domains.push(d);
        }
    let tokens = bayes::tokenize(&view, &urls);
    Parsed { view, urls, tokens }
}

impl Connection {
    /// The content filters, cheapest first: the built-in rules, the domain blocklists (one DNS
    /// round trip for all of them), the classifier. Each adds its entries (and scores) to the
    /// trail; `decide` weighs the sum.
    pub(super) async fn content_filters(&self, tx: &Transaction, raw: &[u8], trail: &mut Trail) {
        let filters = &self.services.filters;
        if !filters.spam.enabled {
            return;
        }
        let envelope_domain = tx.sender().rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        let parsed = parse(raw, envelope_domain);
        trail.extend(rules::evaluate(&rules::Input { view: &parsed.view, urls: &parsed.urls, trail }));
        if let (Some(dns), false) = (&filters.dns, filters.domainbl.is_empty()) {
            trail.extend(lists::check_domains(dns, &filters.domainbl, &parsed.urls.domains, filters.max_domain_lookups).await);
        }
        // The classifier learns what users receive; it says nothing about what they send.
        if filters.spam.classifier && self.settings.role == Role::Mx && !tx.relay {
            trail.push(self.classify(tx, &parsed.tokens).await);
        }
    }

    /// The classifier's entry: the recipient's own model when the message is for one account
    /// and that model has learnt enough, else everyone's.
    async fn classify(&self, tx: &Transaction, tokens: &[u64]) -> Entry {
        let store = &self.services.store;
        let min = self.services.filters.spam.min_learned;
        let mut scopes = vec![Scope::Global];
        if let [account] = tx.accounts.as_slice() {
            scopes.insert(0, Scope::Account(*account));
        }
        let mut last = Entry::new(Stage::Bayes, Outcome::Skipped, Reason::BayesUntrained);
        for scope in scopes {
            let stats = match store.token_stats(scope, tokens.to_vec()).await {
                Ok(stats) => stats,
                Err(e) => {
                    warn!(event = "store_error", id = %tx.id, what = "classifier", error = %e.chain());
                    return Entry::new(Stage::Bayes, Outcome::TempError, Reason::BayesUntrained).detail("store unavailable");
                }
            };
            let counts = |c: rampart_store::filter::ClassCounts| Counts { spam: c.spam, ham: c.ham };
            let model = Model::from_parts(counts(stats.messages), stats.tokens.into_iter().map(|(t, c)| (t, counts(c))));
            let verdict = bayes::classify_with(&model, tokens, min);
            let whose = if scope == Scope::Global { "everyone's" } else { "the recipient's" };
            last = verdict.entry();
            last.detail = format!("{}; {whose} model", last.detail);
            if matches!(verdict, bayes::Verdict::Scored { .. }) {
                break;
            }
        }
        last
    }
}

impl Connection {
    /// Streams the message to clamd (never a second copy in memory: from the bytes the checks
    /// already hold, else from the blob file through a small buffer). A virus refuses, or holds
    /// the message when `action = "quarantine"`; clamd down or timing out defers (451) unless
    /// `on_error = "accept"`, which lets it through tagged.
    pub(super) async fn antivirus(&self, tx: &Transaction, blob: &rampart_store::Blob, raw: Option<&[u8]>) -> Option<Entry> {
        use rampart_config::{OnError, VirusAction};
        use rampart_external::Scan;
        let clamd = self.services.filters.clamd.as_ref()?;
        let cfg = &self.services.filters.antivirus;
        let outbound = self.settings.role == Role::Submission || tx.relay;
        if outbound && !cfg.scan_outbound {
            return None;
        }
        let entry = |result, reason| Entry::new(Stage::Antivirus, result, reason);
        let scan = match raw {
            Some(raw) => clamd.scan_bytes(raw).await,
            None => match blob.reader().await {
                Ok(reader) => clamd.scan_reader(reader, blob.size()).await,
                Err(e) => Err(rampart_external::clamd::Error::Source(std::io::Error::other(e.to_string()))),
            },
        };
        Some(match scan {
            Ok(Scan::Clean) => entry(Outcome::Pass, Reason::AntivirusClean),
            Ok(Scan::Virus(name)) => {
                info!(event = "virus_found", ip = %self.remote.ip(), id = %tx.id, signature = %name);
                let result = if cfg.action == VirusAction::Quarantine { Outcome::Neutral } else { Outcome::Fail };
                entry(result, Reason::VirusFound).detail(name)
            }
            Ok(Scan::Skipped { size }) => entry(Outcome::Skipped, Reason::AntivirusSkipped).detail(format!("{size} bytes, over max_size")),
            Err(e) => {
                warn!(event = "antivirus_failed", ip = %self.remote.ip(), id = %tx.id, error = %e);
                match (cfg.on_error, &e) {
                    // clamd's own limit: the stream was cut, so the message is unscanned.
                    (OnError::Accept, _) => entry(Outcome::Skipped, Reason::AntivirusUnavailable).detail(format!("accepted unscanned: {e}")),
                    _ => entry(Outcome::TempError, Reason::AntivirusUnavailable).detail(e.to_string()),
                }
            }
        })
    }
}
