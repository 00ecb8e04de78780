//! The DKIM signing table and DMARC report data.
//!
//! Private keys are kept in the database (not in files): the signing table and its keys
//! change in one transaction, a backup of the data directory carries both, and the database
//! already holds secrets of the same weight (password hashes), under the same file mode.

use rusqlite::{Connection, OptionalExtension, params};

use super::{is_unique_violation, now};
use crate::{DkimKey, DmarcReport, Result, StoreError};

pub fn add_dkim_key(conn: &Connection, key: &DkimKey) -> Result<bool> {
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

pub fn dkim_keys(conn: &Connection, domain: Option<&str>) -> Result<Vec<DkimKey>> {
    let mut stmt = conn.prepare(
        "SELECT domain, selector, algorithm, private_key, public_key, active, created FROM dkim_keys \
         WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, created, id",
    )?;
    let rows = stmt
        .query_map([domain], |r| {
            Ok(DkimKey {
                domain: r.get(0)?,
                selector: r.get(1)?,
                algorithm: r.get(2)?,
                private_key: r.get(3)?,
                public_key: r.get(4)?,
                active: r.get(5)?,
                created: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn activate_dkim_key(conn: &Connection, domain: &str, selector: &str) -> Result<()> {
    let algorithm: String = conn
        .query_row("SELECT algorithm FROM dkim_keys WHERE domain = ?1 AND selector = ?2", params![domain, selector], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")))?;
    conn.execute("UPDATE dkim_keys SET active = (selector = ?3) WHERE domain = ?1 AND algorithm = ?2", params![domain, algorithm, selector])?;
    Ok(())
}

pub fn add_dmarc_report(conn: &Connection, r: &DmarcReport) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO dmarc_reports (org_name, report_id, domain, date_begin, date_end, messages, passed, records, received) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![r.org_name, r.report_id, r.domain, r.date_begin, r.date_end, r.messages, r.passed, r.records, now()],
    )?;
    Ok(n == 1)
}

pub fn dmarc_reports(conn: &Connection) -> Result<Vec<DmarcReport>> {
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
