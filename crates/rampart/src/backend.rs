//! The one place where `[store] backend` is chosen, for `rampart serve` and every command.
//!
//! What works through the role traits gets [`Opened::store`] (`Arc<dyn Store>`) and runs on
//! either backend. What exists only for the embedded store — backfilling summaries, encryption
//! at rest (`rampart store encrypt`, `keys rotate` beside a running server, per-user
//! encryption), `rampart backup`/`restore`, import and export through its blob files — asks
//! [`Opened::sqlite`], which refuses on PostgreSQL with "... is not available with backend =
//! postgres" instead of failing later.

use std::sync::Arc;

use anyhow::Context;
use rampart_config::{Config, StoreBackend};
use rampart_store::{SqliteStore, Store};

/// An open store: the roles, and the embedded store when that is the backend.
#[derive(Clone)]
pub struct Opened {
    pub store: Arc<dyn Store>,
    sqlite: Option<Arc<SqliteStore>>,
    postgres: Option<rampart_store::PgStore>,
}

/// The roles, as `store.method()` on what a command opened.
impl std::ops::Deref for Opened {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

impl Opened {
    /// The embedded store, for `what` (a command or feature, as the user knows it), or a
    /// clear refusal on another backend.
    pub fn sqlite(&self, what: &str) -> anyhow::Result<&Arc<SqliteStore>> {
        match &self.sqlite {
            Some(s) => Ok(s),
            None => Err(not_available(what)),
        }
    }

    /// The embedded store when that is the backend, for work that is simply not done on
    /// another (summaries' backfill, master-key reloads).
    pub fn sqlite_if_any(&self) -> Option<&Arc<SqliteStore>> {
        self.sqlite.as_ref()
    }

    /// Gives the store the summarizer of the messages it stores from now on (IMAP's), as
    /// the server does at start.
    pub fn set_summarizer(&self, summarizer: Arc<dyn rampart_store::Summarizer>) {
        if let Some(sqlite) = &self.sqlite {
            sqlite.set_summarizer(summarizer.clone());
        }
        if let Some(pg) = &self.postgres {
            pg.set_summarizer(summarizer);
        }
    }

    pub fn backend(&self) -> &'static str {
        if self.sqlite.is_some() { "sqlite" } else { "postgres" }
    }
}

/// For commands that work on the data directory's files (backup, restore, master keys):
/// refused unless the backend is the embedded store.
pub fn require_sqlite(config: &Config, what: &str) -> anyhow::Result<()> {
    match config.store.backend {
        StoreBackend::Sqlite => Ok(()),
        StoreBackend::Postgres => Err(not_available(what)),
    }
}

fn not_available(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} is not available with backend = postgres (it works on the embedded SQLite store only)")
}

/// How the store is opened: by `rampart serve` (which takes the data directory's lock) or by
/// a command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Server,
    Command,
}

/// Opens the store `[store]` names.
pub async fn open(config: &Config, purpose: Purpose) -> anyhow::Result<Opened> {
    match config.store.backend {
        StoreBackend::Sqlite => {
            let dir = &config.server.data_dir;
            let sqlite = match purpose {
                Purpose::Server => SqliteStore::open_for_server(dir),
                Purpose::Command => SqliteStore::open(dir),
            }
            .with_context(|| format!("server.data_dir: opening the store in {}", dir.display()))?;
            let sqlite = Arc::new(sqlite);
            Ok(Opened { store: sqlite.clone(), sqlite: Some(sqlite), postgres: None })
        }
        StoreBackend::Postgres => {
            let pg = open_postgres(config).await?;
            Ok(Opened { store: Arc::new(pg.clone()), sqlite: None, postgres: Some(pg) })
        }
    }
}

/// The PostgreSQL store at `store.url` (pool of `store.pool_size`, TLS checked against
/// `store.ca_file` when set), its schema brought up to date. Incoming bodies are spooled in
/// `server.data_dir`/spool until their delivery's transaction copies them in.
pub async fn open_postgres(config: &Config) -> anyhow::Result<rampart_store::PgStore> {
    let s = &config.store;
    let ca = (!s.ca_file.as_os_str().is_empty()).then_some(s.ca_file.as_path());
    let spool = config.server.data_dir.join("spool");
    let pg = rampart_store::PgStore::open(&s.url, s.pool_size as usize, ca, &spool).await.context("store.url: opening the PostgreSQL store")?;
    pg.set_queue_lease(config.queue.lease);
    pg.set_node_id(&config.node_id());
    Ok(pg)
}


#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_only_work_is_refused_clearly_on_postgres() {
        let mut config = Config::default();
        assert!(require_sqlite(&config, "`rampart backup`").is_ok());
        config.store.backend = StoreBackend::Postgres;
        let e = require_sqlite(&config, "`rampart backup`").unwrap_err().to_string();
        assert_eq!(e, "`rampart backup` is not available with backend = postgres (it works on the embedded SQLite store only)");
        // The embedded store hands itself out; the refusal is the same words.
        let dir = tempfile::tempdir().unwrap();
        config.store.backend = StoreBackend::Sqlite;
        config.server.data_dir = dir.path().to_path_buf();
        let opened = open(&config, Purpose::Command).await.unwrap();
        assert!(opened.sqlite("backfill").is_ok());
        assert_eq!(opened.backend(), "sqlite");
        let pg = Opened { store: opened.store.clone(), sqlite: None, postgres: None };
        assert!(pg.sqlite("per-user encryption").err().unwrap().to_string().starts_with("per-user encryption is not available with backend = postgres"));
    }
}
