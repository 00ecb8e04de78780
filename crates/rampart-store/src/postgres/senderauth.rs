//! [`SenderAuthStore`] for PostgreSQL: the DKIM signing table and DMARC report data, shared by
//! every node (a key added or activated on one signs on all); the same behaviour as
//! `sqlite::senderauth` (held to it by `crate::role_tests`). Private keys are in the database
//! for the reasons given there.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PgStore, is_unique_violation};
use crate::sqlite::now;
use crate::{DkimKey, DmarcReport, Result, SenderAuthStore, StoreError};

fn dkim_key_from_row(r: &Row) -> DkimKey {
    DkimKey {
        domain: r.get(0),
        selector: r.get(1),
        algorithm: r.get(2),
        private_key: r.get(3),
        public_key: r.get(4),
        active: r.get(5),
        created: r.get(6),
    }
}

fn dmarc_report_from_row(r: &Row) -> DmarcReport {
    DmarcReport {
        org_name: r.get(0),
        report_id: r.get(1),
        domain: r.get(2),
        date_begin: r.get(3),
        date_end: r.get(4),
        messages: r.get(5),
        passed: r.get(6),
        records: r.get(7),
        received: r.get(8),
    }
}

#[async_trait]
impl SenderAuthStore for PgStore {
    async fn add_dkim_key(&self, key: DkimKey) -> Result<bool> {
        let domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // Per domain: two nodes adding a domain's first key at once must not both make theirs
        // the active one.
        txn.execute("SELECT pg_advisory_xact_lock(hashtext('dkim:' || $1))", &[&domain]).await?;
        let has_active = txn
            .query_opt("SELECT 1 FROM dkim_keys WHERE domain = $1 AND algorithm = $2 AND active", &[&domain, &key.algorithm])
            .await?
            .is_some();
        let active = !has_active;
        match txn
            .execute(
                "INSERT INTO dkim_keys (domain, selector, algorithm, private_key, public_key, active, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&domain, &key.selector, &key.algorithm, &key.private_key, &key.public_key, &active, &now()],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Exists(format!("DKIM key {}._domainkey.{domain}", key.selector)));
            }
            Err(e) => return Err(e.into()),
        }
        txn.commit().await?;
        Ok(active)
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>> {
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        const COLUMNS: &str = "SELECT domain, selector, algorithm, private_key, public_key, active, created FROM dkim_keys";
        let conn = self.conn().await?;
        // Two statements: with `$1 IS NULL OR domain = $1` a generic plan can use no index.
        let rows = match &domain {
            Some(d) => conn.query(&format!("{COLUMNS} WHERE domain = $1 ORDER BY created, id"), &[d]).await?,
            None => conn.query(&format!("{COLUMNS} ORDER BY domain, created, id"), &[]).await?,
        };
        Ok(rows.iter().map(dkim_key_from_row).collect())
    }

    async fn activate_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        // One statement: the domain's keys of that algorithm change together.
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE dkim_keys SET active = (selector = $2) WHERE domain = $1 \
                 AND algorithm = (SELECT algorithm FROM dkim_keys WHERE domain = $1 AND selector = $2)",
                &[&domain, &selector],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")));
        }
        Ok(())
    }

    async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        let n = self.conn().await?.execute("DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2", &[&domain, &selector]).await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")));
        }
        Ok(())
    }

    async fn add_dmarc_evaluation(&self, domain: &str, evaluation: &str) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO dmarc_evaluations (domain, evaluation, created) VALUES ($1, $2, $3)",
                &[&domain.to_ascii_lowercase(), &evaluation, &now()],
            )
            .await?;
        Ok(())
    }

    async fn dmarc_evaluations(&self, until: i64) -> Result<Vec<(String, String, i64)>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT domain, evaluation, created FROM dmarc_evaluations WHERE created < $1 ORDER BY id", &[&until])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    async fn delete_dmarc_evaluations(&self, until: i64) -> Result<()> {
        self.conn().await?.execute("DELETE FROM dmarc_evaluations WHERE created < $1", &[&until]).await?;
        Ok(())
    }

    async fn delete_dmarc_evaluations_of(&self, domain: &str, until: i64) -> Result<()> {
        self.conn()
            .await?
            .execute("DELETE FROM dmarc_evaluations WHERE domain = $1 AND created < $2", &[&domain.to_ascii_lowercase(), &until])
            .await?;
        Ok(())
    }

    async fn add_dmarc_report(&self, r: DmarcReport) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO dmarc_reports (org_name, report_id, domain, date_begin, date_end, messages, passed, records, received) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                &[&r.org_name, &r.report_id, &r.domain, &r.date_begin, &r.date_end, &r.messages, &r.passed, &r.records, &now()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn dmarc_reports(&self) -> Result<Vec<DmarcReport>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT org_name, report_id, domain, date_begin, date_end, messages, passed, records, received \
                 FROM dmarc_reports ORDER BY date_begin, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(dmarc_report_from_row).collect())
    }
}
