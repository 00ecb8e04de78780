//! `rampart store migrate --to postgres --url URL`: the embedded store copied into a
//! PostgreSQL database (the copy, its resumption and its checks are
//! `rampart_store::migrate_sqlite_to_postgres`), with a progress bar and a summary: the rows
//! of every table on both sides and the bodies compared by SHA-256. Exits non-zero when
//! anything differs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use rampart_store::{MigrateProgress, MigrateReport};

/// Where `store migrate` copies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Postgres,
}

/// Connections the copy uses: one writes, one reads progress, one spare.
const POOL: usize = 3;

pub fn run(config: &rampart_config::Config, _to: Target, url: &str, ca_file: Option<PathBuf>) -> anyhow::Result<()> {
    crate::backend::require_sqlite(config, "`rampart store migrate` (it copies the embedded store)")?;
    let ca = ca_file.or_else(|| (!config.store.ca_file.as_os_str().is_empty()).then(|| config.store.ca_file.clone()));
    let data_dir = config.server.data_dir.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} ({eta})").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = rt.block_on(async {
        let pg = rampart_store::PgStore::open(url, POOL, ca.as_deref(), &data_dir.join("spool")).await.context("--url: opening the PostgreSQL database")?;
        let show = |p: MigrateProgress| show(&bar, p);
        rampart_store::migrate_sqlite_to_postgres(&data_dir, &pg, &show).await.context("store migrate")
    });
    bar.finish_and_clear();
    let report = report?;
    print_summary(&report);
    if !report.ok() {
        bail!("the copy differs from the embedded store (see above); run the command again to complete or check it");
    }
    println!("the store in {} is copied to PostgreSQL and verified", data_dir.display());
    Ok(())
}

fn show(bar: &ProgressBar, p: MigrateProgress) {
    let (msg, done, total) = match p {
        MigrateProgress::Table { table, done, total } => (table.to_string(), done, total),
        MigrateProgress::Blobs { done, total, bytes } => (format!("bodies ({} MiB)", bytes >> 20), done, total),
        MigrateProgress::Verify { done, total } => ("verifying bodies".to_string(), done, total),
    };
    bar.set_message(msg);
    bar.set_length(total);
    bar.set_position(done);
}

fn print_summary(report: &MigrateReport) {
    println!("table\tsqlite\tpostgres\tcheck");
    for t in &report.tables {
        let check = if t.source == t.destination { "ok" } else { "MISMATCH" };
        println!("{}\t{}\t{}\t{check}", t.table, t.source, t.destination);
    }
    println!("bodies: {} compared by SHA-256, {} differ", report.blobs_checked, report.blob_mismatches.len());
    for id in report.blob_mismatches.iter().take(20) {
        println!("  differs: {id}");
    }
}
