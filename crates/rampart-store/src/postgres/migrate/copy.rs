//! The copy itself: a blocking thread reads SQLite (one read transaction, rows in primary-key
//! order) and hands batches over a small channel to the PostgreSQL side, which inserts each
//! batch and advances `sqlite_import` in one transaction.

use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use super::{BLOBS, MigrateProgress, Progress, copied};
use crate::codec::CHUNK;
use crate::{PgStore, Result, StoreError};

/// Rows per INSERT: a few hundred amortize the round trip; PostgreSQL allows 65,535
/// parameters a statement, which the widest table stays far below at this count.
const BATCH_ROWS: usize = 500;
/// Bodies per transaction at most, and their bytes: a batch is a few MiB in memory.
const BATCH_BLOBS: usize = 64;
const BATCH_BYTES: usize = 8 << 20;

/// A PostgreSQL column: its name, type (`information_schema` spelling), and whether SQLite
/// has it.
struct Column {
    name: String,
    pg_type: String,
    in_source: bool,
}

/// The destination's columns of `table` (those SQLite lacks must have a default) and its
/// primary key, the order rows are read in.
async fn columns(pg: &PgStore, sqlite: &rusqlite::Connection, table: &str) -> Result<(Vec<Column>, Vec<String>)> {
    let conn = pg.conn().await?;
    let source: Vec<String> = sqlite
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let rows = conn
        .query(
            "SELECT column_name::text, data_type::text, (column_default IS NOT NULL OR is_nullable = 'YES' OR is_identity = 'YES') \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let in_source = source.contains(&name);
        if !in_source && !r.get::<_, bool>(2) {
            return Err(StoreError::io(table, std::io::Error::other(format!("column {name} is not in the SQLite store"))));
        }
        out.push(Column { name, pg_type: r.get(1), in_source });
    }
    let key = conn
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((out.into_iter().filter(|c| c.in_source).collect(), key))
}

/// One SQLite value as the PostgreSQL column's type wants it.
fn param(pg_type: &str, v: Value) -> std::result::Result<Box<dyn ToSql + Sync + Send>, String> {
    Ok(match (pg_type, v) {
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("bigint", Value::Integer(i)) => Box::new(i),
        ("integer", Value::Null) => Box::new(None::<i32>),
        ("integer", Value::Integer(i)) => Box::new(i32::try_from(i).map_err(|e| e.to_string())?),
        ("boolean", Value::Null) => Box::new(None::<bool>),
        ("boolean", Value::Integer(i)) => Box::new(i != 0),
        ("text", Value::Null) => Box::new(None::<String>),
        ("text", Value::Text(s)) => Box::new(s),
        ("text", Value::Blob(b)) => Box::new(String::from_utf8(b).map_err(|e| e.to_string())?),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        ("bytea", Value::Blob(b)) => Box::new(b),
        ("bytea", Value::Text(s)) => Box::new(s.into_bytes()),
        ("double precision", Value::Null) => Box::new(None::<f64>),
        ("double precision", Value::Real(f)) => Box::new(f),
        ("double precision", Value::Integer(i)) => Box::new(i as f64),
        (t, v) => return Err(format!("a {:?} value for a {t} column", v.data_type())),
    })
}

/// Copies `table`'s rows that earlier runs did not. `prefilled`: a table a migration gave
/// a first row, emptied before the first batch.
pub(super) async fn table(pg: &PgStore, db: &Path, table: &'static str, prefilled: bool, progress: Progress<'_>) -> Result<()> {
    let (skip, done) = copied(pg, table).await?;
    if done {
        return Ok(());
    }
    let sqlite = crate::sqlite::open_connection(db, None)?;
    let (cols, key) = columns(pg, &sqlite, table).await?;
    let total: i64 = sqlite.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    drop(sqlite);
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    let select = format!("SELECT {} FROM {table} ORDER BY {}", names.join(", "), key.join(", "));
    let (tx, mut rx) = mpsc::channel::<Vec<Vec<Value>>>(2);
    let reader = read_rows(db.to_path_buf(), select, names.len(), skip as usize, tx);
    let mut conn = pg.conn().await?;
    let mut count = skip;
    progress(MigrateProgress::Table { table, done: count, total: total as u64 });
    while let Some(batch) = rx.recv().await {
        let txn = conn.transaction().await?;
        if prefilled && count == 0 {
            txn.execute(&format!("DELETE FROM {table}"), &[]).await?;
        }
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(batch.len() * cols.len());
        for row in &batch {
            for (c, v) in cols.iter().zip(row) {
                params.push(param(&c.pg_type, v.clone()).map_err(|e| bad_value(table, &c.name, e))?);
            }
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        txn.execute(&insert(table, &names, batch.len()), &refs).await?;
        count += batch.len() as u64;
        advance(&txn, table, count, false).await?;
        txn.commit().await?;
        progress(MigrateProgress::Table { table, done: count, total: total as u64 });
    }
    reader.await.map_err(|e| StoreError::io(table, std::io::Error::other(e.to_string())))??;
    advance(&conn, table, count, true).await
}

fn bad_value(table: &str, column: &str, e: String) -> StoreError {
    StoreError::io(format!("{table}.{column}"), std::io::Error::other(e))
}

/// `INSERT INTO table (columns) VALUES ($1, ...), (...) ON CONFLICT DO NOTHING` for `rows` rows.
fn insert(table: &str, names: &[&str], rows: usize) -> String {
    let n = names.len();
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", (1..=n).map(|c| format!("${}", r * n + c)).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("INSERT INTO {table} ({}) VALUES {} ON CONFLICT DO NOTHING", names.join(", "), values.join(", "))
}

async fn advance(client: &impl deadpool_postgres::GenericClient, table: &str, count: u64, done: bool) -> Result<()> {
    client
        .execute(
            "INSERT INTO sqlite_import (tbl, copied, done) VALUES ($1, $2, $3) \
             ON CONFLICT (tbl) DO UPDATE SET copied = excluded.copied, done = excluded.done",
            &[&table, &(count as i64), &done],
        )
        .await?;
    Ok(())
}

/// The SQLite side: `select`'s rows past the first `skip`, in batches.
fn read_rows(
    db: PathBuf,
    select: String,
    width: usize,
    skip: usize,
    tx: mpsc::Sender<Vec<Vec<Value>>>,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::task::spawn_blocking(move || {
        let conn = crate::sqlite::open_connection(&db, None)?;
        let mut stmt = conn.prepare(&select)?;
        let mut rows = stmt.query([])?;
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut seen = 0usize;
        while let Some(row) = rows.next()? {
            seen += 1;
            if seen <= skip {
                continue;
            }
            batch.push((0..width).map(|i| row.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<_>>>()?);
            if batch.len() == BATCH_ROWS && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    })
}

/// A body as received, with its row: id, refcount.
pub(super) struct Body {
    pub id: String,
    pub refcount: i64,
    pub data: Vec<u8>,
}

/// Reads every body past the first `skip` (by id), decoded, in batches; `tx` gets them.
pub(super) fn read_bodies(db: PathBuf, root: PathBuf, skip: usize, tx: mpsc::Sender<Vec<Body>>) -> tokio::task::JoinHandle<Result<()>> {
    tokio::task::spawn_blocking(move || {
        let conn = crate::sqlite::open_connection(&db, None)?;
        let mut stmt = conn.prepare("SELECT id, refcount FROM blobs ORDER BY id")?;
        let ids: Vec<(String, i64)> = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        let (mut batch, mut bytes) = (Vec::new(), 0usize);
        for (id, refcount) in ids.into_iter().skip(skip) {
            let stored = crate::sqlite::stored_body(&conn, None, &root, &id)?;
            let data = crate::sqlite::read_body(&root, Vec::new(), &id, stored)?;
            bytes += data.len();
            batch.push(Body { id, refcount, data });
            if (batch.len() >= BATCH_BLOBS || bytes >= BATCH_BYTES) && tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Ok(());
            }
            if batch.is_empty() {
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    })
}

/// Copies the `blobs` rows and their bodies as chunks (`codec` 0: as received).
pub(super) async fn blobs(pg: &PgStore, db: &Path, root: &Path, progress: Progress<'_>) -> Result<()> {
    let (skip, done) = copied(pg, BLOBS).await?;
    if done {
        return Ok(());
    }
    let total: i64 = crate::sqlite::open_connection(db, None)?.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))?;
    let (tx, mut rx) = mpsc::channel(2);
    let reader = read_bodies(db.to_path_buf(), root.to_path_buf(), skip as usize, tx);
    let mut conn = pg.conn().await?;
    let (mut count, mut bytes) = (skip, 0u64);
    progress(MigrateProgress::Blobs { done: count, total: total as u64, bytes });
    while let Some(batch) = rx.recv().await {
        let txn = conn.transaction().await?;
        let blob = txn
            .prepare("INSERT INTO blobs (id, size, refcount, codec, dkey) VALUES ($1, $2, $3, 0, NULL) ON CONFLICT DO NOTHING")
            .await?;
        let chunk = txn.prepare("INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING").await?;
        for b in &batch {
            txn.execute(&blob, &[&b.id, &(b.data.len() as i64), &b.refcount]).await?;
            for (seq, part) in b.data.chunks(CHUNK).enumerate() {
                txn.execute(&chunk, &[&b.id, &(seq as i32), &part]).await?;
            }
            bytes += b.data.len() as u64;
        }
        count += batch.len() as u64;
        advance(&txn, BLOBS, count, false).await?;
        txn.commit().await?;
        progress(MigrateProgress::Blobs { done: count, total: total as u64, bytes });
    }
    reader.await.map_err(|e| StoreError::io(BLOBS, std::io::Error::other(e.to_string())))??;
    advance(&conn, BLOBS, count, true).await
}

/// SQLite's word index is not copied (FTS5 has no PostgreSQL twin), so each account's
/// indexed summaries get a `words` row without terms: always a candidate, confirmed by reading
/// the message, until the index learns its words. Without it SEARCH would miss migrated mail.
pub(super) async fn words_unknown(pg: &PgStore) -> Result<()> {
    pg.conn()
        .await?
        .execute(
            "INSERT INTO words (account_id, summary_id, terms) \
             SELECT DISTINCT b.account_id, m.summary, NULL::tsvector FROM messages m \
             JOIN mailboxes b ON b.id = m.mailbox_id JOIN summaries s ON s.id = m.summary \
             WHERE s.indexed ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    Ok(())
}

/// Every identity column continues after the highest id copied.
pub(super) async fn reset_identities(pg: &PgStore) -> Result<()> {
    let conn = pg.conn().await?;
    let rows = conn
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )
        .await?;
    for r in rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        conn.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )
        .await?;
    }
    Ok(())
}
