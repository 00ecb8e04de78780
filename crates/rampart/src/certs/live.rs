//! The certificates a running server serves: `[tls]` files plus the store's certificates,
//! rebuilt when the store changes (a CLI command, the web admin, an ACME renewal: noticed
//! within [`POLL`]) and on SIGHUP. Connections keep the certificate their handshake chose;
//! the next handshake sees the new set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_store::certs::Usage;
use rampart_store::prelude::*;
use rampart_tls::{CertSet, CertStore, StoredPair};
use tracing::{info, warn};

/// How often the store's certificate version is read.
const POLL: Duration = Duration::from_secs(2);

pub struct LiveCerts {
    pub certs: Arc<CertStore>,
    store: Arc<dyn Store>,
    tls: Mutex<rampart_config::Tls>,
    version: Mutex<i64>,
}

/// The store's usable certificates (those with a chain), newest first, with their uses.
pub async fn stored_pairs(store: &dyn Store) -> anyhow::Result<Vec<StoredPair>> {
    let uses = store.assignments().await?;
    let mut pairs: Vec<StoredPair> = store
        .certificates()
        .await?
        .into_iter()
        .filter_map(|c| {
            let chain_pem = c.chain_pem?;
            let of = |usage| uses.iter().filter(|a| a.cert_id == c.id && a.usage == usage).map(|a| a.target.clone()).collect();
            Some(StoredPair { id: c.id, chain_pem, key_pem: c.key_pem, names: c.names, hosts: of(Usage::Host), listeners: of(Usage::Listener) })
        })
        .collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.id));
    Ok(pairs)
}

async fn build(tls: &rampart_config::Tls, store: &dyn Store) -> anyhow::Result<CertSet> {
    let pairs = stored_pairs(store).await?;
    let (set, bad) = CertSet::with_stored(tls, &pairs)?;
    for (id, e) in bad {
        warn!(event = "certificate_unusable", id, error = %e);
    }
    Ok(set)
}

impl LiveCerts {
    /// The first set; `[tls]` files that cannot be read stop the start, as before.
    pub async fn start(tls: &rampart_config::Tls, store: Arc<dyn Store>) -> anyhow::Result<Arc<LiveCerts>> {
        let version = store.certificates_version().await?;
        let set = build(tls, store.as_ref()).await?;
        Ok(Arc::new(LiveCerts { certs: CertStore::new(set), store, tls: Mutex::new(tls.clone()), version: Mutex::new(version) }))
    }

    /// Rebuilds from the store and the `[tls]` section last loaded; on error the set in use stays.
    pub async fn rebuild(&self) -> anyhow::Result<()> {
        let version = self.store.certificates_version().await?;
        let tls = self.tls.lock().expect("tls lock").clone();
        self.certs.replace(build(&tls, self.store.as_ref()).await?);
        *self.version.lock().expect("version lock") = version;
        Ok(())
    }

    /// SIGHUP: a new `[tls]` section.
    pub async fn reload(&self, tls: rampart_config::Tls) -> anyhow::Result<()> {
        let previous = std::mem::replace(&mut *self.tls.lock().expect("tls lock"), tls);
        if let Err(e) = self.rebuild().await {
            *self.tls.lock().expect("tls lock") = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Rebuilds whenever the store's certificate version moves.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(now) = self.store.certificates_version().await else { continue };
            if std::mem::replace(&mut *self.version.lock().expect("version lock"), now) == now {
                continue;
            }
            match self.rebuild().await {
                Ok(()) => info!(event = "certificates_reloaded", source = "store"),
                Err(e) => warn!(event = "reload_failed", error = %format!("{e:#}").replace('\n', "; ")),
            }
        }
    }
}
