//! [`TlsPolicyStore`] for PostgreSQL: cached MTA-STS policies, outbound TLS outcomes, received
//! TLS reports, shared by every node (one node's fetched policy serves all); the same behaviour
//! as `sqlite::tlspolicy` (held to it by `crate::role_tests`).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::PgStore;
use crate::sqlite::now;
use crate::{CachedStsPolicy, Result, TlsOutcome, TlsPolicyStore, TlsReportRecord};

fn outcome(r: &Row) -> TlsOutcome {
    TlsOutcome {
        policy_domain: r.get(0),
        policy_type: r.get(1),
        policy_string: r.get(2),
        mx_host: r.get(3),
        receiving_ip: r.get(4),
        result: r.get(5),
        detail: r.get(6),
        created: r.get(7),
    }
}

fn report(r: &Row) -> TlsReportRecord {
    TlsReportRecord {
        org_name: r.get(0),
        report_id: r.get(1),
        domains: r.get(2),
        date_begin: r.get(3),
        date_end: r.get(4),
        successes: r.get(5),
        failures: r.get(6),
        json: r.get(7),
        received: r.get(8),
    }
}

#[async_trait]
impl TlsPolicyStore for PgStore {
    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT domain, id, policy, fetched, expires FROM mta_sts_policies WHERE domain = $1",
                &[&domain.to_ascii_lowercase()],
            )
            .await?;
        Ok(row.map(|r| CachedStsPolicy { domain: r.get(0), id: r.get(1), policy: r.get(2), fetched: r.get(3), expires: r.get(4) }))
    }

    async fn put_sts_policy(&self, p: CachedStsPolicy) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO mta_sts_policies (domain, id, policy, fetched, expires) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (domain) DO UPDATE SET id = excluded.id, policy = excluded.policy, \
                 fetched = excluded.fetched, expires = excluded.expires",
                &[&p.domain.to_ascii_lowercase(), &p.id, &p.policy, &p.fetched, &p.expires],
            )
            .await?;
        Ok(())
    }

    async fn sts_policies_expiring(&self, before: i64) -> Result<Vec<String>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT domain FROM mta_sts_policies WHERE expires < $1 ORDER BY expires, domain", &[&before])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn add_tls_outcome(&self, o: TlsOutcome) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO tls_outcomes (policy_domain, policy_type, policy_string, mx_host, receiving_ip, result, detail, created) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &o.policy_domain.to_ascii_lowercase(),
                    &o.policy_type,
                    &o.policy_string,
                    &o.mx_host,
                    &o.receiving_ip,
                    &o.result,
                    &o.detail,
                    &now(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn tls_outcomes(&self, until: i64) -> Result<Vec<TlsOutcome>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT policy_domain, policy_type, policy_string, mx_host, receiving_ip, result, detail, created \
                 FROM tls_outcomes WHERE created < $1 ORDER BY policy_domain, id",
                &[&until],
            )
            .await?;
        Ok(rows.iter().map(outcome).collect())
    }

    async fn delete_tls_outcomes_of(&self, domain: &str, until: i64) -> Result<()> {
        self.conn()
            .await?
            .execute("DELETE FROM tls_outcomes WHERE policy_domain = $1 AND created < $2", &[&domain.to_ascii_lowercase(), &until])
            .await?;
        Ok(())
    }

    async fn add_tls_report(&self, r: TlsReportRecord) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO tls_reports (org_name, report_id, domains, date_begin, date_end, successes, failures, json, received) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                &[&r.org_name, &r.report_id, &r.domains, &r.date_begin, &r.date_end, &r.successes, &r.failures, &r.json, &now()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn tls_reports(&self) -> Result<Vec<TlsReportRecord>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT org_name, report_id, domains, date_begin, date_end, successes, failures, json, received \
                 FROM tls_reports ORDER BY date_begin, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(report).collect())
    }
}
