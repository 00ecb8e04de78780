//! The session's side of the content layer (`[filter]`): client blocklists asked once per
//! connection, started when the client connects so the answers are in by the first RCPT.

use std::sync::Arc;

use rampart_pipeline::lists::{self, List};
use rampart_pipeline::{Dns, Entry};
use tokio::task::JoinHandle;

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
