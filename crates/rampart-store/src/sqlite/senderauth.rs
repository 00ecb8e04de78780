//! [`SenderAuthStore`] for SQLite: the DKIM signing table and DMARC report data.
//!
//! Private keys are kept in the database (not in files): the signing table and its keys
//! change in one transaction, a backup of the data directory carries both, and the database
//! already holds secrets of the same weight (password hashes), under the same file mode.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, is_unique_violation, now};
use crate::{DkimKey, DmarcReport, Result, SenderAuthStore, StoreError};

fn add_dkim_key(conn: &Connection, key: &DkimKey) -> Result<bool> {
    let domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
    let has_active: Option<i64> = conn
        .query_row("SELECT id FROM dkim_keys WHERE domain = ?1 AND algorithm = ?2 AND active = 1", params![domain, key.algorithm], |r| r.get(0))
        .optional()?;
    let active = has_active.is_none();
    match conn.execute(
        "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, public_key, active, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![domain, key.selector, key.algorithm, key.private_key, key.public_key, active, now()],
    ) {
        Ok(_) => Ok(active),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("DKIM key {}._domainkey.{domain}", key.selector))),
        Err(e) => Err(e.into()),
    }
}

/// One domain's keys: through the (domain, selector) index. A single statement for both cases
/// (`?1 IS NULL OR domain = ?1`) could use no index, and every signed message read every
/// domain's keys.
pub(super) const DKIM_KEYS_OF: &str = "SELECT domain, selector, algorithm, private_key, public_key, active, created \
     FROM dkim_keys WHERE domain = ?1 ORDER BY created, id";
const DKIM_KEYS_ALL: &str = "SELECT domain, selector, algorithm, private_key, public_key, active, created \
     FROM dkim_keys ORDER BY domain, created, id";

fn dkim_keys(conn: &Connection, domain: Option<&str>) -> Result<Vec<DkimKey>> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(DkimKey {
            domain: r.get(0)?,
            selector: r.get(1)?,
            algorithm: r.get(2)?,
            private_key: r.get(3)?,
            public_key: r.get(4)?,
            active: r.get(5)?,
            created: r.get(6)?,
        })
    };
    let rows = match domain {
        Some(d) => conn.prepare_cached(DKIM_KEYS_OF)?.query_map([d], row)?.collect::<rusqlite::Result<_>>()?,
        None => conn.prepare_cached(DKIM_KEYS_ALL)?.query_map([], row)?.collect::<rusqlite::Result<_>>()?,
    };
    Ok(rows)
}

fn activate_dkim_key(conn: &Connection, domain: &str, selector: &str) -> Result<()> {
    let algorithm: String = conn
        .query_row("SELECT algorithm FROM dkim_keys WHERE domain = ?1 AND selector = ?2", params![domain, selector], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")))?;
    conn.execute("UPDATE dkim_keys SET active = (selector = ?3) WHERE domain = ?1 AND algorithm = ?2", params![domain, algorithm, selector])?;
    Ok(())
}

fn add_dmarc_report(conn: &Connection, r: &DmarcReport) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO dmarc_reports (org_name, report_id, domain, date_begin, date_end, messages, passed, records, received) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![r.org_name, r.report_id, r.domain, r.date_begin, r.date_end, r.messages, r.passed, r.records, now()],
    )?;
    Ok(n == 1)
}

fn dmarc_reports(conn: &Connection) -> Result<Vec<DmarcReport>> {
    let mut stmt = conn.prepare(
        "SELECT org_name, report_id, domain, date_begin, date_end, messages, passed, records, received FROM dmarc_reports ORDER BY date_begin, id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DmarcReport {
                org_name: r.get(0)?,
                report_id: r.get(1)?,
                domain: r.get(2)?,
                date_begin: r.get(3)?,
                date_end: r.get(4)?,
                messages: r.get(5)?,
                passed: r.get(6)?,
                records: r.get(7)?,
                received: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

#[async_trait]
impl SenderAuthStore for SqliteStore {
    async fn add_dkim_key(&self, key: DkimKey) -> Result<bool> {
        self.write(move |conn, _| add_dkim_key(conn, &key)).await
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>> {
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        self.read_now(|conn| dkim_keys(conn, domain.as_deref()))
    }

    async fn activate_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let (domain, selector) = (domain.to_ascii_lowercase(), selector.to_string());
        self.write(move |conn, _| activate_dkim_key(conn, &domain, &selector)).await
    }

    async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let (domain, selector) = (domain.to_ascii_lowercase(), selector.to_string());
        self.write(move |conn, _| {
            let n = conn.execute("DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2", params![domain, selector])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn add_dmarc_evaluation(&self, domain: &str, evaluation: &str) -> Result<()> {
        let (domain, evaluation) = (domain.to_ascii_lowercase(), evaluation.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO dmarc_evaluations (domain, evaluation, created) VALUES (?1, ?2, ?3)",
                params![domain, evaluation, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn dmarc_evaluations(&self, until: i64) -> Result<Vec<(String, String, i64)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT domain, evaluation, created FROM dmarc_evaluations WHERE created < ?1 ORDER BY id")?;
            let rows = stmt.query_map([until], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_dmarc_evaluations(&self, until: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM dmarc_evaluations WHERE created < ?1", [until])?;
            Ok(())
        })
        .await
    }

    async fn delete_dmarc_evaluations_of(&self, domain: &str, until: i64) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM dmarc_evaluations WHERE domain = ?1 AND created < ?2", params![domain, until])?;
            Ok(())
        })
        .await
    }

    async fn add_dmarc_report(&self, report: DmarcReport) -> Result<bool> {
        self.write(move |conn, _| add_dmarc_report(conn, &report)).await
    }

    async fn dmarc_reports(&self) -> Result<Vec<DmarcReport>> {
        self.read(dmarc_reports).await
    }
}
