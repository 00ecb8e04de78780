//! DMARC aggregate reports: the periodic task that sends them, and `rampart dmarc ...`.

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use rampart_config::Config;
use rampart_pipeline::{Checker, Reason};
use rampart_pipeline::report::{self, Reporter};
use rampart_smtp::queue::{Generated, inject};
use rampart_store::prelude::*;
use tracing::{info, warn};

/// Where the time of the last report run is kept, so a restart neither skips nor repeats one.
const LAST_RUN: &str = "dmarc_last_report";

#[derive(Subcommand)]
pub enum DmarcCommand {
    /// Aggregate reports other domains sent to `[dmarc] report_address`.
    Reports,
    /// Build and queue the aggregate reports now, instead of waiting for the daily run.
    SendReports,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn command(config_path: &Path, cmd: DmarcCommand) -> anyhow::Result<()> {
    let (config, store, rt) = crate::cli::open(config_path)?;
    rt.block_on(async {
        match cmd {
            DmarcCommand::Reports => {
                let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                for r in store.dmarc_reports().await? {
                    println!(
                        "{}\t{}\t{}\t{} to {}\tmessages={}\tpassed={}\tfailed={}",
                        r.domain,
                        r.org_name,
                        r.report_id,
                        date(r.date_begin),
                        date(r.date_end),
                        r.messages,
                        r.passed,
                        r.messages - r.passed
                    );
                }
            }
            DmarcCommand::SendReports => {
                let waiting = store.dmarc_evaluations(now() + 1).await?.len();
                let sent = run(&config, &*store).await?;
                println!("queued {sent} report(s) from {waiting} evaluation(s)");
            }
        }
        Ok(())
    })
}

/// Runs [`run`] every `[dmarc] report_interval`.
pub async fn report_loop(config: Config, store: Arc<dyn Store>, wakeup: Arc<tokio::sync::Notify>) {
    let interval = config.dmarc.report_interval;
    let job = {
        let store = store.clone();
        move || {
            let (config, store) = (config.clone(), store.clone());
            async move { run(&config, store.as_ref()).await }
        }
    };
    crate::reportloop::every(store, LAST_RUN, interval, "dmarc_reports_failed", wakeup, job).await
}

/// Builds one report per domain from the stored evaluations, queues it to the authorized
/// `rua` addresses, and forgets that domain's evaluations. Returns the number of reports queued.
pub async fn run(config: &Config, store: &dyn Store) -> anyhow::Result<usize> {
    let resolver = rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
    let checker = Checker::new(resolver, &config.server.hostname, &config.server.hostname, &[]);
    run_with(config, store, &checker).await
}

/// [`run`] with the DNS of `checker`. A domain whose `rua` authorization could not be looked
/// up (DNS error) keeps its evaluations for the next run; every other domain's are forgotten
/// once its report is queued or nobody may receive it.
async fn run_with(config: &Config, store: &dyn Store, checker: &Checker) -> anyhow::Result<usize> {
    let end = now();
    let last = store.state(LAST_RUN).await?.and_then(|v| v.parse::<i64>().ok());
    let last = last.unwrap_or(end - config.dmarc.report_interval.as_secs() as i64);
    let host = &config.server.hostname;
    let from = if config.dmarc.report_from.is_empty() { format!("noreply-dmarc@{host}") } else { config.dmarc.report_from.clone() };
    let org = if config.dmarc.org_name.is_empty() { host.clone() } else { config.dmarc.org_name.clone() };
    let mut sent = 0;
    for (domain, batch) in report::by_domain(store.dmarc_evaluations(end + 1).await?) {
        let evals = &batch.evaluations;
        let mut rua: Vec<String> = evals.iter().flat_map(|e| e.published.rua.clone()).collect();
        rua.sort();
        rua.dedup();
        let Ok(to) = checker.authorized_rua(&domain, &rua).await else {
            warn!(event = "dmarc_report_skipped", domain = %domain, reason = "dns_error");
            continue;
        };
        if to.len() < rua.len() {
            info!(event = "dmarc_rua_unauthorized", domain = %domain, refused = rua.len() - to.len());
        }
        if !to.is_empty() {
            let id = rampart_smtp::trace::new_id();
            // Evaluations kept from a run that skipped this domain are in this report too.
            let reporter = Reporter { org_name: &org, email: &from, report_id: &id, begin: last.min(batch.first), end };
            let xml = report::aggregate_xml(&reporter, evals);
            let gz = report::gzip(xml.as_bytes())?;
            let message = report::report_message(&reporter, host, &domain, &to, &gz);
            queue_report(store, host, &id, &from, &to, &message).await?;
            info!(event = "dmarc_report_queued", domain = %domain, id = %id, rcpts = to.len(), records = evals.len());
            sent += 1;
        }
        store.delete_dmarc_evaluations_of(&domain, end + 1).await?;
    }
    store.set_state(LAST_RUN, &end.to_string()).await?;
    Ok(sent)
}

/// Stores the report for local recipients and queues it for the others, in one transaction.
async fn queue_report(store: &dyn Store, host: &str, id: &str, from: &str, to: &[String], message: &[u8]) -> anyhow::Result<()> {
    let generated = Generated { id, sender: from, rcpts: to, message, reason: Reason::DmarcReportSent, is_dsn: false };
    inject(store, host, "", &generated).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_store::SqliteStore;
    use rampart_pipeline::Dns;

    /// A stored evaluation of `domain` asking for reports at `rua`.
    fn evaluation(domain: &str, rua: &str) -> String {
        serde_json::json!({
            "source_ip": "192.0.2.1", "header_from": domain, "envelope_from": domain, "envelope_to": "example.test",
            "disposition": "reject", "dkim_aligned": false, "spf_aligned": false, "dkim": [],
            "spf_domain": domain, "spf_result": "fail",
            "published": {"domain": domain, "adkim": "r", "aspf": "r", "p": "reject", "sp": "reject", "pct": 100, "fo": "0", "rua": [rua]},
        })
        .to_string()
    }

    fn checker() -> Checker {
        Checker::new(Dns::offline(), "mx.example.test", "mx.example.test", &[])
    }

    async fn waiting(store: &SqliteStore) -> Vec<String> {
        store.dmarc_evaluations(now() + 10).await.unwrap().into_iter().map(|(d, _, _)| d).collect()
    }

    /// A DNS error for one domain's `rua` authorization keeps that domain's evaluations for
    /// the next run; the others are reported (or, with nobody authorized, dropped) and forgotten.
    #[tokio::test]
    async fn a_dns_error_keeps_only_that_domains_evaluations() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.add_domain("example.test").await.unwrap();
        for (domain, rua) in [("own.test", "agg@own.test"), ("own.test", "agg@own.test"), ("far.test", "agg@reports.test"), ("nobody.test", "agg@elsewhere.test")] {
            store.add_dmarc_evaluation(domain, &evaluation(domain, rua)).await.unwrap();
        }
        let config = Config::default();
        let checker = checker();
        checker.dns().put_txt_failure("far.test._report._dmarc.reports.test");

        assert_eq!(run_with(&config, &store, &checker).await.unwrap(), 1);
        let queued = store.queue_list().await.unwrap();
        assert_eq!(queued.iter().flat_map(|q| q.rcpts.iter().map(|r| r.rcpt.as_str())).collect::<Vec<_>>(), ["agg@own.test"]);
        assert_eq!(waiting(&store).await, ["far.test"]);

        // DNS answers at the next run: the kept evaluations are reported then.
        let checker = self::checker();
        checker.dns().put_txt("far.test._report._dmarc.reports.test", "v=DMARC1");
        assert_eq!(run_with(&config, &store, &checker).await.unwrap(), 1);
        assert!(waiting(&store).await.is_empty());
        let queued = store.queue_list().await.unwrap();
        assert_eq!(queued.len(), 2);
        assert!(queued.iter().any(|q| q.rcpts.iter().any(|r| r.rcpt == "agg@reports.test")));
    }
}
