//! The check after the copy: the rows of every table counted on both sides, and every body's
//! SHA-256 as SQLite gives it against that of its chunks joined in PostgreSQL (computed
//! there, so the bodies need not travel back).

use std::path::Path;

use sha2_010::{Digest, Sha256};
use tokio::sync::mpsc;

use super::copy::read_bodies;
use super::{BLOBS, MigrateProgress, MigrateReport, Progress, TABLES, TableCount};
use crate::{PgStore, Result, StoreError};

pub(super) async fn verify(pg: &PgStore, db: &Path, root: &Path, progress: Progress<'_>) -> Result<MigrateReport> {
    let mut report = MigrateReport::default();
    let sqlite = crate::sqlite::open_connection(db, None)?;
    let conn = pg.conn().await?;
    for &table in TABLES {
        let source: i64 = sqlite.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        let destination: i64 = conn.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await?.get(0);
        report.tables.push(TableCount { table, source, destination });
    }
    let total = report.tables.iter().find(|t| t.table == BLOBS).map_or(0, |t| t.source as u64);
    drop(sqlite);
    let (tx, mut rx) = mpsc::channel(2);
    let reader = read_bodies(db.to_path_buf(), root.to_path_buf(), 0, tx);
    progress(MigrateProgress::Verify { done: 0, total });
    while let Some(batch) = rx.recv().await {
        let ids: Vec<&str> = batch.iter().map(|b| b.id.as_str()).collect();
        let rows = conn
            .query(
                "SELECT blob_id, encode(sha256(string_agg(data, ''::bytea ORDER BY seq)), 'hex') FROM blob_chunks \
                 WHERE blob_id = ANY($1) GROUP BY blob_id",
                &[&ids],
            )
            .await?;
        let theirs: std::collections::HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for b in &batch {
            let ours = hex(&Sha256::digest(&b.data));
            // An empty body has no chunks: its checksum is that of nothing.
            let found = theirs.get(&b.id).cloned().or_else(|| b.data.is_empty().then(|| ours.clone()));
            if found.as_deref() != Some(ours.as_str()) {
                report.blob_mismatches.push(b.id.clone());
            }
            report.blobs_checked += 1;
        }
        progress(MigrateProgress::Verify { done: report.blobs_checked, total });
    }
    reader.await.map_err(|e| StoreError::io(BLOBS, std::io::Error::other(e.to_string())))??;
    Ok(report)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
