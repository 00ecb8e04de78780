//! What every command that works on the store does first.

use std::path::Path;

use rampart_config::Config;
use tokio::runtime::Runtime;

use crate::backend::{Opened, Purpose};

/// The config (checked, and the master key given to the store), the store `[store]` names
/// ([`crate::backend::open`]), and a runtime for the store's async API on this thread.
pub fn open(config_path: &Path) -> anyhow::Result<(Config, Opened, Runtime)> {
    let config = crate::serve::load_config(config_path, &[])?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = rt.block_on(crate::backend::open(&config, Purpose::Command))?;
    Ok((config, store, rt))
}
