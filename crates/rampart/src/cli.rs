//! What every command that works on the store does first.

use std::path::Path;

use anyhow::Context;
use rampart_config::Config;
use rampart_store::SqliteStore;
use tokio::runtime::Runtime;

/// The config (checked, and the master key given to the store), the store, and a runtime
/// for the store's async API on this thread. The one place a command opens the store, so the
/// place where the backend `[store]` names is chosen.
pub fn open(config_path: &Path) -> anyhow::Result<(Config, SqliteStore, Runtime)> {
    let config = crate::serve::load_config(config_path, &[])?;
    let store = SqliteStore::open(&config.server.data_dir)
        .with_context(|| format!("opening the store in {}", config.server.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok((config, store, rt))
}
