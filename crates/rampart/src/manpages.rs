//! `rampart man DIR` (hidden): the manual pages, generated from the clap definitions so they
//! never drift from `--help` — `rampart.1` and one page per subcommand (`rampart-user-add.1`).
//! `scripts/package` puts them in the Debian package.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

pub fn write(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(crate::Cli::command(), dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
    let pages = std::fs::read_dir(dir)?.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1"))).count();
    println!("wrote {pages} man pages to {}", dir.display());
    Ok(())
}
