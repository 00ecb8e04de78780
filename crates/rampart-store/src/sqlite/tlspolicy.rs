//! [`TlsPolicyStore`] for SQLite: cached MTA-STS policies, outbound TLS outcomes, received TLS
//! reports.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, now};
use crate::{CachedStsPolicy, Result, TlsOutcome, TlsPolicyStore, TlsReportRecord};

fn outcome(r: &Row<'_>) -> rusqlite::Result<TlsOutcome> {
    Ok(TlsOutcome {
        policy_domain: r.get(0)?,
        policy_type: r.get(1)?,
        policy_string: r.get(2)?,
        mx_host: r.get(3)?,
        receiving_ip: r.get(4)?,
        result: r.get(5)?,
        detail: r.get(6)?,
        created: r.get(7)?,
    })
}

fn report(r: &Row<'_>) -> rusqlite::Result<TlsReportRecord> {
    Ok(TlsReportRecord {
        org_name: r.get(0)?,
        report_id: r.get(1)?,
        domains: r.get(2)?,
        date_begin: r.get(3)?,
        date_end: r.get(4)?,
        successes: r.get(5)?,
        failures: r.get(6)?,
        json: r.get(7)?,
        received: r.get(8)?,
    })
}

#[async_trait]
impl TlsPolicyStore for SqliteStore {
    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>> {
        let domain = domain.to_ascii_lowercase();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT domain, id, policy, fetched, expires FROM mta_sts_policies WHERE domain = ?1", [domain], |r| {
                    Ok(CachedStsPolicy { domain: r.get(0)?, id: r.get(1)?, policy: r.get(2)?, fetched: r.get(3)?, expires: r.get(4)? })
                })
                .optional()?)
        })
        .await
    }

    async fn put_sts_policy(&self, p: CachedStsPolicy) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT OR REPLACE INTO mta_sts_policies (domain, id, policy, fetched, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.domain.to_ascii_lowercase(), p.id, p.policy, p.fetched, p.expires],
            )?;
            Ok(())
        })
        .await
    }

    async fn sts_policies_expiring(&self, before: i64) -> Result<Vec<String>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT domain FROM mta_sts_policies WHERE expires < ?1 ORDER BY expires")?;
            let rows = stmt.query_map([before], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn add_tls_outcome(&self, o: TlsOutcome) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO tls_outcomes (policy_domain, policy_type, policy_string, mx_host, receiving_ip, result, detail, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![o.policy_domain.to_ascii_lowercase(), o.policy_type, o.policy_string, o.mx_host, o.receiving_ip, o.result, o.detail, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn tls_outcomes(&self, until: i64) -> Result<Vec<TlsOutcome>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT policy_domain, policy_type, policy_string, mx_host, receiving_ip, result, detail, created \
                 FROM tls_outcomes WHERE created < ?1 ORDER BY policy_domain, id",
            )?;
            let rows = stmt.query_map([until], outcome)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_tls_outcomes_of(&self, domain: &str, until: i64) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM tls_outcomes WHERE policy_domain = ?1 AND created < ?2", params![domain, until])?;
            Ok(())
        })
        .await
    }

    async fn add_tls_report(&self, r: TlsReportRecord) -> Result<bool> {
        self.write(move |conn, _| {
            let n = conn.execute(
                "INSERT OR IGNORE INTO tls_reports (org_name, report_id, domains, date_begin, date_end, successes, failures, json, received) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![r.org_name, r.report_id, r.domains, r.date_begin, r.date_end, r.successes, r.failures, r.json, now()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn tls_reports(&self) -> Result<Vec<TlsReportRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT org_name, report_id, domains, date_begin, date_end, successes, failures, json, received \
                 FROM tls_reports ORDER BY date_begin, id",
            )?;
            let rows = stmt.query_map([], report)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn policies_outcomes_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.sts_policy("a.test").await.unwrap(), None);
        let p = CachedStsPolicy { domain: "A.test".into(), id: "1".into(), policy: "version: STSv1".into(), fetched: 10, expires: 100 };
        store.put_sts_policy(p.clone()).await.unwrap();
        store.put_sts_policy(CachedStsPolicy { id: "2".into(), ..p.clone() }).await.unwrap();
        let got = store.sts_policy("a.TEST").await.unwrap().unwrap();
        assert_eq!((got.domain.as_str(), got.id.as_str()), ("a.test", "2"));
        assert_eq!(store.sts_policies_expiring(101).await.unwrap(), vec!["a.test".to_string()]);
        assert!(store.sts_policies_expiring(100).await.unwrap().is_empty());

        let o = TlsOutcome {
            policy_domain: "a.test".into(),
            policy_type: "sts".into(),
            policy_string: "version: STSv1".into(),
            mx_host: "mx.a.test".into(),
            receiving_ip: "192.0.2.1".into(),
            result: "success".into(),
            detail: String::new(),
            created: 0,
        };
        store.add_tls_outcome(o.clone()).await.unwrap();
        store.add_tls_outcome(TlsOutcome { policy_domain: "b.test".into(), ..o }).await.unwrap();
        let far = now() + 10;
        assert_eq!(store.tls_outcomes(far).await.unwrap().len(), 2);
        store.delete_tls_outcomes_of("A.test", far).await.unwrap();
        let left = store.tls_outcomes(far).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].policy_domain, "b.test");

        let r = TlsReportRecord {
            org_name: "Org".into(),
            report_id: "r1".into(),
            domains: "a.test".into(),
            date_begin: 1,
            date_end: 2,
            successes: 3,
            failures: 1,
            json: "{}".into(),
            received: 0,
        };
        assert!(store.add_tls_report(r.clone()).await.unwrap());
        assert!(!store.add_tls_report(r).await.unwrap(), "the same report twice is stored once");
        assert_eq!(store.tls_reports().await.unwrap().len(), 1);
    }
}
