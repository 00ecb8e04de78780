//! [`CertificateStore`] for SQLite: certificates with their keys, assignments, ACME accounts.
//!
//! Keys are kept in the database for the reasons DKIM keys are (`senderauth.rs`): one
//! transaction changes a certificate and where it is used, a backup carries both, and the
//! database file already holds secrets under a mode only the server's user can read.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, now};
use crate::certs::{Assignment, CertificateStore, StoredCert, Usage};
use crate::{Result, StoreError};

const COLUMNS: &str = "id, names, issuer, not_before, not_after, key_type, source, chain_pem, key_pem, csr_pem, created, warned";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCert> {
    let names: String = r.get(1)?;
    let warned: String = r.get(11)?;
    Ok(StoredCert {
        id: r.get(0)?,
        names: names.split_whitespace().map(str::to_string).collect(),
        issuer: r.get(2)?,
        not_before: r.get(3)?,
        not_after: r.get(4)?,
        key_type: r.get(5)?,
        source: r.get(6)?,
        chain_pem: r.get(7)?,
        key_pem: r.get(8)?,
        csr_pem: r.get(9)?,
        created: r.get(10)?,
        warned: warned.split_whitespace().filter_map(|d| d.parse().ok()).collect(),
    })
}

fn bump(conn: &Connection) -> Result<()> {
    conn.execute("UPDATE cert_version SET version = version + 1 WHERE id = 1", [])?;
    Ok(())
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("certificate {id}"))
}

fn certificate(conn: &Connection, id: i64) -> Result<StoredCert> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM certificates WHERE id = ?1"), [id], from_row)
        .optional()?
        .ok_or_else(|| not_found(id))
}

fn assign(conn: &Connection, id: i64, usage: Usage, target: &str) -> Result<()> {
    let cert = certificate(conn, id)?;
    if cert.chain_pem.is_none() {
        return Err(StoreError::CertificatePending(id));
    }
    // A host may have one certificate per key type; a listener or smart host has one.
    let key_type = if usage == Usage::Host { cert.key_type.as_str() } else { "" };
    if usage != Usage::Host {
        conn.execute("DELETE FROM cert_assignments WHERE usage = ?1 AND target = ?2", params![usage.as_str(), target])?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO cert_assignments (cert_id, usage, target, key_type) VALUES (?1, ?2, ?3, ?4)",
        params![id, usage.as_str(), target, key_type],
    )?;
    bump(conn)
}

fn assignments(conn: &Connection) -> Result<Vec<Assignment>> {
    let mut stmt = conn.prepare("SELECT cert_id, usage, target FROM cert_assignments ORDER BY usage, target, cert_id")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(cert_id, usage, target)| Some(Assignment { cert_id, usage: Usage::parse(&usage)?, target }))
        .collect())
}

#[async_trait]
impl CertificateStore for SqliteStore {
    async fn add_certificate(&self, c: StoredCert) -> Result<i64> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO certificates (names, issuer, not_before, not_after, key_type, source, chain_pem, key_pem, csr_pem, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![c.names.join(" "), c.issuer, c.not_before, c.not_after, c.key_type, c.source, c.chain_pem, c.key_pem, c.csr_pem, now()],
            )?;
            let id = conn.last_insert_rowid();
            bump(conn)?;
            Ok(id)
        })
        .await
    }

    async fn complete_certificate(&self, id: i64, chain_pem: &str, issuer: &str, not_before: i64, not_after: i64) -> Result<()> {
        let (chain, issuer) = (chain_pem.to_string(), issuer.to_string());
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE certificates SET chain_pem = ?2, issuer = ?3, not_before = ?4, not_after = ?5, warned = '' WHERE id = ?1",
                params![id, chain, issuer, not_before, not_after],
            )?;
            if n == 0 {
                return Err(not_found(id));
            }
            bump(conn)
        })
        .await
    }

    async fn certificates(&self) -> Result<Vec<StoredCert>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM certificates ORDER BY id"))?;
            Ok(stmt.query_map([], from_row)?.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn certificate(&self, id: i64) -> Result<StoredCert> {
        self.read(move |conn| certificate(conn, id)).await
    }

    async fn delete_certificate(&self, id: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM cert_assignments WHERE cert_id = ?1", [id])?;
            if conn.execute("DELETE FROM certificates WHERE id = ?1", [id])? == 0 {
                return Err(not_found(id));
            }
            bump(conn)
        })
        .await
    }

    async fn assign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()> {
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        self.write(move |conn, _| assign(conn, id, usage, &target)).await
    }

    async fn unassign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()> {
        let target = target.trim_end_matches('.').to_ascii_lowercase();
        self.write(move |conn, _| {
            let n = conn.execute(
                "DELETE FROM cert_assignments WHERE cert_id = ?1 AND usage = ?2 AND target = ?3",
                params![id, usage.as_str(), target],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("certificate {id} for {} {target}", usage.as_str())));
            }
            bump(conn)
        })
        .await
    }

    async fn assignments(&self) -> Result<Vec<Assignment>> {
        self.read(assignments).await
    }

    async fn replace_certificate(&self, old: i64, new: i64) -> Result<()> {
        self.write(move |conn, _| {
            let moved: Vec<Assignment> = assignments(conn)?.into_iter().filter(|a| a.cert_id == old).collect();
            for a in moved {
                conn.execute(
                    "DELETE FROM cert_assignments WHERE cert_id = ?1 AND usage = ?2 AND target = ?3",
                    params![old, a.usage.as_str(), a.target],
                )?;
                assign(conn, new, a.usage, &a.target)?;
            }
            bump(conn)
        })
        .await
    }

    async fn mark_cert_warned(&self, id: i64, days: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("UPDATE certificates SET warned = trim(warned || ' ' || ?2) WHERE id = ?1", params![id, days.to_string()])?;
            Ok(())
        })
        .await
    }

    async fn certificates_version(&self) -> Result<i64> {
        self.read(|conn| Ok(conn.query_row("SELECT version FROM cert_version WHERE id = 1", [], |r| r.get(0))?)).await
    }

    async fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let directory = directory.to_string();
        self.read(move |conn| {
            Ok(conn.query_row("SELECT credentials FROM acme_accounts WHERE directory = ?1", [directory], |r| r.get(0)).optional()?)
        })
        .await
    }

    async fn set_acme_account(&self, directory: &str, credentials: &str) -> Result<()> {
        let (directory, credentials) = (directory.to_string(), credentials.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT OR REPLACE INTO acme_accounts (directory, credentials, created) VALUES (?1, ?2, ?3)",
                params![directory, credentials, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn request_acme(&self, names: &[String]) -> Result<i64> {
        let names = names.join(" ");
        self.write(move |conn, _| {
            conn.execute("INSERT INTO acme_requests (names, requested) VALUES (?1, ?2)", params![names, now()])?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn acme_requests_pending(&self) -> Result<Vec<(i64, Vec<String>)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, names FROM acme_requests WHERE finished IS NULL ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|(id, n)| (id, n.split_whitespace().map(str::to_string).collect())).collect())
        })
        .await
    }

    async fn finish_acme_request(&self, id: i64, outcome: std::result::Result<i64, String>) -> Result<()> {
        let (cert, error) = match outcome {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        self.write(move |conn, _| {
            conn.execute("UPDATE acme_requests SET finished = ?2, cert_id = ?3, error = ?4 WHERE id = ?1", params![id, now(), cert, error])?;
            Ok(())
        })
        .await
    }

    async fn acme_request(&self, id: i64) -> Result<Option<std::result::Result<i64, String>>> {
        self.read(move |conn| {
            let row: Option<(Option<i64>, Option<i64>, Option<String>)> = conn
                .query_row("SELECT finished, cert_id, error FROM acme_requests WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match row {
                None => Err(StoreError::NotFound(format!("ACME request {id}"))),
                Some((None, _, _)) => Ok(None),
                Some((Some(_), Some(cert), _)) => Ok(Some(Ok(cert))),
                Some((Some(_), None, error)) => Ok(Some(Err(error.unwrap_or_default()))),
            }
        })
        .await
    }
}

