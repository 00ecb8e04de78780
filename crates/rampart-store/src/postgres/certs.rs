//! [`CertificateStore`] for PostgreSQL: certificates with their keys, assignments, ACME
//! accounts and requests; the same behaviour as `sqlite::certs` (held to it by
//! `crate::role_tests`), with what several nodes sharing the database need:
//!
//! - Every change bumps `cert_version` in its own transaction, and every node polls
//!   [`CertificateStore::certificates_version`] (`rampart::certs::live`), so a certificate
//!   added or renewed through one node (or the CLI) is served by all within a poll.
//! - An ACME request (`rampart cert acme`) is worked on by one node: `acme_requests_pending`
//!   claims what it returns (`FOR UPDATE SKIP LOCKED`, then a lease in `claimed_until`), so
//!   a second node polling at the same moment skips it; a node that dies mid-order leaves a
//!   lease that expires after [`ACME_LEASE`], and another node takes the request.
//! - Renewals of the configured names are ordered by the node holding the name's claim
//!   ([`CertificateStore::acme_claim`], a row in `acme_claims` with an expiry), not by every
//!   node at once; the others find the new certificate in the shared store.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::PgStore;
use crate::certs::{Assignment, CertificateStore, StoredCert, Usage};
use crate::sqlite::now;
use crate::{Result, StoreError};

/// How long a claimed ACME request is another node's before it may be taken over: longer than
/// an order takes (challenges, finalization, the CA's queue), short enough that a request
/// whose node died is done the same hour.
pub(crate) const ACME_LEASE: i64 = 15 * 60;

const COLUMNS: &str = "id, names, issuer, not_before, not_after, key_type, source, chain_pem, key_pem, csr_pem, created, warned";

fn from_row(r: &Row) -> StoredCert {
    let names: &str = r.get(1);
    let warned: &str = r.get(11);
    StoredCert {
        id: r.get(0),
        names: names.split_whitespace().map(str::to_string).collect(),
        issuer: r.get(2),
        not_before: r.get(3),
        not_after: r.get(4),
        key_type: r.get(5),
        source: r.get(6),
        chain_pem: r.get(7),
        key_pem: r.get(8),
        csr_pem: r.get(9),
        created: r.get(10),
        warned: warned.split_whitespace().filter_map(|d| d.parse().ok()).collect(),
    }
}

async fn bump(txn: &Transaction<'_>) -> Result<()> {
    txn.execute("UPDATE cert_version SET version = version + 1 WHERE id = 1", &[]).await?;
    Ok(())
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("certificate {id}"))
}

async fn certificate(client: &impl GenericClient, id: i64) -> Result<StoredCert> {
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM certificates WHERE id = $1"), &[&id]).await?;
    row.as_ref().map(from_row).ok_or_else(|| not_found(id))
}

async fn assign(txn: &Transaction<'_>, id: i64, usage: Usage, target: &str) -> Result<()> {
    let cert = certificate(txn, id).await?;
    if cert.chain_pem.is_none() {
        return Err(StoreError::CertificatePending(id));
    }
    // A host may have one certificate per key type; a listener or smart host has one.
    let key_type = if usage == Usage::Host { cert.key_type.as_str() } else { "" };
    if usage != Usage::Host {
        txn.execute("DELETE FROM cert_assignments WHERE usage = $1 AND target = $2", &[&usage.as_str(), &target]).await?;
    }
    txn.execute(
        "INSERT INTO cert_assignments (cert_id, usage, target, key_type) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (usage, target, key_type) DO UPDATE SET cert_id = excluded.cert_id",
        &[&id, &usage.as_str(), &target, &key_type],
    )
    .await?;
    bump(txn).await
}

async fn assignments(client: &impl GenericClient) -> Result<Vec<Assignment>> {
    let rows = client.query("SELECT cert_id, usage, target FROM cert_assignments ORDER BY usage, target, cert_id", &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some(Assignment { cert_id: r.get(0), usage: Usage::parse(r.get(1))?, target: r.get(2) }))
        .collect())
}

fn host_target(target: &str) -> String {
    target.trim_end_matches('.').to_ascii_lowercase()
}

impl PgStore {
    /// Runs `sql` (`$1` the certificate's id) and bumps the version, in one transaction;
    /// `NotFound` when no row changed.
    async fn change_certificate(&self, id: i64, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if txn.execute(sql, params).await? == 0 {
            return Err(not_found(id));
        }
        bump(&txn).await?;
        txn.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl CertificateStore for PgStore {
    async fn add_certificate(&self, c: StoredCert) -> Result<i64> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let id: i64 = txn
            .query_one(
                "INSERT INTO certificates (names, issuer, not_before, not_after, key_type, source, chain_pem, key_pem, csr_pem, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[&c.names.join(" "), &c.issuer, &c.not_before, &c.not_after, &c.key_type, &c.source, &c.chain_pem, &c.key_pem, &c.csr_pem, &now()],
            )
            .await?
            .get(0);
        bump(&txn).await?;
        txn.commit().await?;
        Ok(id)
    }

    async fn complete_certificate(&self, id: i64, chain_pem: &str, issuer: &str, not_before: i64, not_after: i64) -> Result<()> {
        self.change_certificate(
            id,
            "UPDATE certificates SET chain_pem = $2, issuer = $3, not_before = $4, not_after = $5, warned = '' WHERE id = $1",
            &[&id, &chain_pem, &issuer, &not_before, &not_after],
        )
        .await
    }

    async fn certificates(&self) -> Result<Vec<StoredCert>> {
        let rows = self.conn().await?.query(&format!("SELECT {COLUMNS} FROM certificates ORDER BY id"), &[]).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    async fn certificate(&self, id: i64) -> Result<StoredCert> {
        certificate(&self.conn().await?, id).await
    }

    async fn delete_certificate(&self, id: i64) -> Result<()> {
        // Its assignments go with it (ON DELETE CASCADE).
        self.change_certificate(id, "DELETE FROM certificates WHERE id = $1", &[&id]).await
    }

    async fn assign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()> {
        let target = host_target(target);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        assign(&txn, id, usage, &target).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn unassign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()> {
        let target = host_target(target);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let n = txn
            .execute(
                "DELETE FROM cert_assignments WHERE cert_id = $1 AND usage = $2 AND target = $3",
                &[&id, &usage.as_str(), &target],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("certificate {id} for {} {target}", usage.as_str())));
        }
        bump(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn assignments(&self) -> Result<Vec<Assignment>> {
        assignments(&self.conn().await?).await
    }

    async fn replace_certificate(&self, old: i64, new: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // The version row, locked first: two renewals going live at once take turns.
        txn.execute("SELECT version FROM cert_version WHERE id = 1 FOR UPDATE", &[]).await?;
        let moved: Vec<Assignment> = assignments(&txn).await?.into_iter().filter(|a| a.cert_id == old).collect();
        for a in moved {
            txn.execute(
                "DELETE FROM cert_assignments WHERE cert_id = $1 AND usage = $2 AND target = $3",
                &[&old, &a.usage.as_str(), &a.target],
            )
            .await?;
            assign(&txn, new, a.usage, &a.target).await?;
        }
        bump(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn mark_cert_warned(&self, id: i64, days: i64) -> Result<()> {
        self.conn()
            .await?
            .execute("UPDATE certificates SET warned = trim(warned || ' ' || $2) WHERE id = $1", &[&id, &days.to_string()])
            .await?;
        Ok(())
    }

    async fn certificates_version(&self) -> Result<i64> {
        Ok(self.conn().await?.query_one("SELECT version FROM cert_version WHERE id = 1", &[]).await?.get(0))
    }

    async fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let conn = self.conn().await?;
        Ok(conn.query_opt("SELECT credentials FROM acme_accounts WHERE directory = $1", &[&directory]).await?.map(|r| r.get(0)))
    }

    async fn set_acme_account(&self, directory: &str, credentials: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO acme_accounts (directory, credentials, created) VALUES ($1, $2, $3) \
                 ON CONFLICT (directory) DO UPDATE SET credentials = excluded.credentials, created = excluded.created",
                &[&directory, &credentials, &now()],
            )
            .await?;
        Ok(())
    }

    async fn request_acme(&self, names: &[String]) -> Result<i64> {
        let conn = self.conn().await?;
        let row = conn
            .query_one("INSERT INTO acme_requests (names, requested) VALUES ($1, $2) RETURNING id", &[&names.join(" "), &now()])
            .await?;
        Ok(row.get(0))
    }

    async fn acme_requests_pending(&self) -> Result<Vec<(i64, Vec<String>)>> {
        let t = now();
        let rows = self
            .conn()
            .await?
            .query(
                "UPDATE acme_requests SET claimed_until = $1::bigint + $2::bigint WHERE id IN ( \
                     SELECT id FROM acme_requests WHERE finished IS NULL AND claimed_until <= $1 \
                     ORDER BY id FOR UPDATE SKIP LOCKED) \
                 RETURNING id, names",
                &[&t, &ACME_LEASE],
            )
            .await?;
        let mut out: Vec<(i64, Vec<String>)> =
            rows.iter().map(|r| (r.get(0), r.get::<_, &str>(1).split_whitespace().map(str::to_string).collect())).collect();
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    async fn finish_acme_request(&self, id: i64, outcome: std::result::Result<i64, String>) -> Result<()> {
        let (cert, error) = match outcome {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        self.conn()
            .await?
            .execute(
                "UPDATE acme_requests SET finished = $2, cert_id = $3, error = $4 WHERE id = $1",
                &[&id, &now(), &cert, &error],
            )
            .await?;
        Ok(())
    }

    async fn acme_request(&self, id: i64) -> Result<Option<std::result::Result<i64, String>>> {
        let conn = self.conn().await?;
        let row = conn.query_opt("SELECT finished, cert_id, error FROM acme_requests WHERE id = $1", &[&id]).await?;
        let Some(row) = row else { return Err(StoreError::NotFound(format!("ACME request {id}"))) };
        let (finished, cert, error): (Option<i64>, Option<i64>, Option<String>) = (row.get(0), row.get(1), row.get(2));
        Ok(match (finished, cert) {
            (None, _) => None,
            (Some(_), Some(cert)) => Some(Ok(cert)),
            (Some(_), None) => Some(Err(error.unwrap_or_default())),
        })
    }

    async fn acme_claim(&self, name: &str, holder: &str, now: i64, lease: i64) -> Result<bool> {
        // One statement: the row is inserted, or taken over when its lease ran out or it is
        // already ours; a live claim of another node leaves it unchanged (no row returned).
        let row = self
            .conn()
            .await?
            .query_opt(
                "INSERT INTO acme_claims (name, holder, until) VALUES ($1, $2, $3::bigint + $4::bigint) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE acme_claims.until <= $3 OR acme_claims.holder = excluded.holder \
                 RETURNING holder",
                &[&name, &holder, &now, &lease],
            )
            .await?;
        Ok(row.is_some())
    }
}
