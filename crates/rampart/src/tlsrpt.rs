//! TLS reports (RFC 8460): the periodic task that sends them from the recorded outbound TLS
//! outcomes, and `rampart tlsrpt ...`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use hickory_resolver::proto::rr::RData;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use mail_auth::report::tlsrpt::{DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport};
use rampart_config::Config;
use rampart_pipeline::Reason;
use rampart_smtp::queue::{Generated, inject};
use rampart_store::prelude::*;
use rampart_store::TlsOutcome;
use tracing::{info, warn};

/// Where the time of the last report run is kept, so a restart neither skips nor repeats one.
const LAST_RUN: &str = "tlsrpt_last_report";

#[derive(Subcommand)]
pub enum TlsRptCommand {
    /// TLS reports other servers sent to `[tlsrpt] report_address`.
    Reports,
    /// Build and queue the TLS reports now, instead of waiting for the daily run.
    SendReports,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn command(config_path: &Path, cmd: TlsRptCommand) -> anyhow::Result<()> {
    let (config, store, rt) = crate::cli::open(config_path)?;
    rt.block_on(async {
        match cmd {
            TlsRptCommand::Reports => {
                let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                for r in store.tls_reports().await? {
                    println!(
                        "{}\t{}\t{}\t{} to {}\tsuccessful={}\tfailed={}",
                        r.domains,
                        r.org_name,
                        r.report_id,
                        date(r.date_begin),
                        date(r.date_end),
                        r.successes,
                        r.failures
                    );
                }
            }
            TlsRptCommand::SendReports => {
                let waiting = store.tls_outcomes(now() + 1).await?.len();
                let sent = run(&config, &*store).await?;
                println!("queued {sent} report(s) from {waiting} session outcome(s)");
            }
        }
        Ok(())
    })
}

/// Runs [`run`] every `[tlsrpt] report_interval`.
pub async fn report_loop(config: Config, store: Arc<dyn Store>, wakeup: Arc<tokio::sync::Notify>) {
    let interval = config.tlsrpt.report_interval;
    let job = {
        let store = store.clone();
        move || {
            let (config, store) = (config.clone(), store.clone());
            async move { run(&config, store.as_ref()).await }
        }
    };
    crate::reportloop::every(store, LAST_RUN, interval, "tlsrpt_reports_failed", wakeup, job).await
}

/// Where `_smtp._tls.DOMAIN` says reports go (RFC 8460 §3).
#[derive(Debug, Default)]
struct Rua {
    mail: Vec<String>,
    https: Vec<String>,
}

/// What `_smtp._tls.DOMAIN` says, or a DNS failure.
async fn rua(resolver: &rampart_smtp::dns::Resolver, domain: &str) -> Result<Rua, String> {
    let name = format!("_smtp._tls.{domain}.");
    match resolver.txt_lookup(name.as_str()).await {
        Ok(lookup) => {
            let mut rua = Rua::default();
            let uris = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(crate::dnscheck::txt_text(t)),
                    _ => None,
                })
                .filter_map(|t| TlsRpt::parse(t.as_bytes()).ok())
                .flat_map(|r| r.rua);
            for u in uris {
                match u {
                    ReportUri::Mail(m) => rua.mail.push(m.trim_start_matches("mailto:").to_string()),
                    ReportUri::Http(h) => rua.https.push(h),
                }
            }
            Ok(rua)
        }
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Rua::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// What a run sends with: the report's sender and organisation, DNS, and the trust anchors for
/// https:// receivers (the same as for MX hosts).
struct Sender {
    host: String,
    from: String,
    org: String,
    resolver: rampart_smtp::dns::Resolver,
    tls: rampart_smtp::client::TlsClient,
}

impl Sender {
    fn new(config: &Config) -> anyhow::Result<Sender> {
        let resolver = rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
        let roots = rampart_smtp::outbound::root_store(config.queue.extra_ca_file.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
        let tls = rampart_smtp::client::TlsClient::new(roots).map_err(|e| anyhow::anyhow!("TLS client: {e}"))?;
        let host = config.server.hostname.clone();
        let from = if config.tlsrpt.report_from.is_empty() { format!("noreply-tlsrpt@{host}") } else { config.tlsrpt.report_from.clone() };
        let org = if config.tlsrpt.org_name.is_empty() { host.clone() } else { config.tlsrpt.org_name.clone() };
        Ok(Sender { host, from, org, resolver, tls })
    }

    /// Sends one domain's report to every rua: queued by mail, POSTed to https:// ones.
    /// Returns how many went out; 0 with an https-only rua means try again next run.
    async fn send(&self, store: &dyn Store, domain: &str, to: &Rua, report: &TlsReport) -> anyhow::Result<usize> {
        let gz = rampart_pipeline::report::gzip(json(report).as_bytes())?;
        let mut sent = 0;
        if !to.mail.is_empty() {
            let mut message = Vec::new();
            report.write_rfc5322_from_bytes(domain, &self.host, self.from.as_str(), to.mail.iter().map(String::as_str), &gz, &mut message)?;
            let id = &report.report_id;
            let generated = Generated { id, sender: &self.from, rcpts: &to.mail, message: &message, reason: Reason::TlsReportSent, is_dsn: false };
            inject(store, &self.host, "", &generated).await?;
            info!(event = "tlsrpt_report_queued", domain = %domain, id = %id, rcpts = to.mail.len(), sessions = session_count(report));
            sent += 1;
        }
        for uri in &to.https {
            match rampart_smtp::sts::post::post_report(&self.tls, &self.resolver, uri, gz.clone()).await {
                Ok(()) => {
                    info!(event = "tlsrpt_report_posted", domain = %domain, id = %report.report_id, uri = %uri, sessions = session_count(report));
                    sent += 1;
                }
                Err(e) => warn!(event = "tlsrpt_post_failed", domain = %domain, uri = %uri, reason = %e),
            }
        }
        Ok(sent)
    }
}

fn session_count(report: &TlsReport) -> u32 {
    report.policies.iter().map(|p| p.summary.total_success + p.summary.total_failure).sum()
}

/// Builds one report per policy domain from the recorded outcomes, sends it to the rua of
/// `_smtp._tls.DOMAIN` (mail and https), and forgets that domain's outcomes. A domain whose
/// record could not be looked up, or whose https receivers all failed (and no mailto), keeps
/// its outcomes for the next run. Returns the number of reports sent.
pub async fn run(config: &Config, store: &dyn Store) -> anyhow::Result<usize> {
    let sender = Sender::new(config)?;
    let end = now();
    let begin = store.state(LAST_RUN).await?.and_then(|v| v.parse::<i64>().ok()).unwrap_or(end - config.tlsrpt.report_interval.as_secs() as i64);
    let mut by_domain: BTreeMap<String, Vec<TlsOutcome>> = BTreeMap::new();
    for o in store.tls_outcomes(end + 1).await? {
        by_domain.entry(o.policy_domain.clone()).or_default().push(o);
    }
    let mut sent = 0;
    for (domain, outcomes) in by_domain {
        let to = match rua(&sender.resolver, &domain).await {
            Ok(to) => to,
            Err(e) => {
                warn!(event = "tlsrpt_report_skipped", domain = %domain, reason = "dns_error", error = %e);
                continue;
            }
        };
        if !to.mail.is_empty() || !to.https.is_empty() {
            let id = rampart_smtp::trace::new_id();
            let first = outcomes.iter().map(|o| o.created).min().unwrap_or(begin);
            let report = build(&sender.org, &sender.from, &id, begin.min(first), end, &domain, &outcomes);
            let n = sender.send(store, &domain, &to, &report).await?;
            sent += n;
            if n == 0 {
                // Only https receivers, none reachable: the outcomes wait for the next run.
                continue;
            }
        }
        store.delete_tls_outcomes_of(&domain, end + 1).await?;
    }
    store.set_state(LAST_RUN, &end.to_string()).await?;
    Ok(sent)
}

/// The report's JSON without the `null`s mail-auth writes for absent optional fields: RFC 8460
/// §4.4 leaves them out, and strict readers refuse a null where a string belongs.
pub fn json(report: &TlsReport) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(report).unwrap_or_default();
    strip(&mut v);
    v.to_string()
}

/// The RFC 8460 §4 report for one policy domain: one `policies` entry per policy the sessions
/// ran under, its success and failure counts, and the failures grouped by kind and host.
pub fn build(org: &str, contact: &str, id: &str, begin: i64, end: i64, domain: &str, outcomes: &[TlsOutcome]) -> TlsReport {
    let mut groups: BTreeMap<(String, String, String), Vec<&TlsOutcome>> = BTreeMap::new();
    for o in outcomes {
        // DANE's records are per MX host (RFC 8460 §4.4 mx-host); MTA-STS's are the policy's.
        let mx = if o.policy_type == "tlsa" { o.mx_host.clone() } else { String::new() };
        groups.entry((o.policy_type.clone(), o.policy_string.clone(), mx)).or_default().push(o);
    }
    let policies = groups.into_iter().map(|((ptype, pstring, mx), list)| policy(domain, &ptype, &pstring, mx, &list)).collect();
    TlsReport {
        organization_name: Some(org.to_string()),
        date_range: DateRange::from_timestamps(begin, end),
        contact_info: Some(contact.to_string()),
        report_id: id.to_string(),
        policies,
    }
}

fn policy(domain: &str, ptype: &str, pstring: &str, mx: String, list: &[&TlsOutcome]) -> Policy {
    let lines: Vec<String> = pstring.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    let mut mx_host: Vec<String> = lines.iter().filter_map(|l| l.strip_prefix("mx: ").map(str::to_string)).collect();
    if !mx.is_empty() {
        mx_host = vec![mx];
    }
    let policy_type = serde_json::from_value(serde_json::Value::String(ptype.into())).unwrap_or(PolicyType::Other);
    let mut failures: BTreeMap<(String, String, String, String), u32> = BTreeMap::new();
    for o in list.iter().filter(|o| o.result != "success") {
        *failures.entry((o.result.clone(), o.mx_host.clone(), o.receiving_ip.clone(), o.detail.clone())).or_default() += 1;
    }
    let success = list.iter().filter(|o| o.result == "success").count() as u32;
    let failure_details = failures
        .into_iter()
        .map(|((result, host, ip, detail), count)| {
            let result_type = serde_json::from_value(serde_json::Value::String(result)).unwrap_or(ResultType::Other);
            let mut f = FailureDetails::new(result_type);
            f.failed_session_count = count;
            if !host.is_empty() {
                f = f.with_receiving_mx_hostname(host);
            }
            if let Ok(ip) = ip.parse() {
                f = f.with_receiving_ip(ip);
            }
            if !detail.is_empty() {
                f.additional_information = Some(detail);
            }
            f
        })
        .collect();
    Policy {
        policy: PolicyDetails { policy_type, policy_string: lines, policy_domain: domain.to_string(), mx_host },
        summary: Summary { total_success: success, total_failure: list.len() as u32 - success },
        failure_details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ptype: &str, result: &str, mx: &str) -> TlsOutcome {
        TlsOutcome {
            policy_domain: "sts.test".into(),
            policy_type: ptype.into(),
            policy_string: if ptype == "sts" { "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400".into() } else { String::new() },
            mx_host: mx.into(),
            receiving_ip: "192.0.2.7".into(),
            result: result.into(),
            detail: if result == "success" { String::new() } else { "why".into() },
            created: 100,
        }
    }

    /// Every field RFC 8460 §4.4 names, with its JSON type; absent optional fields left out.
    #[test]
    fn report_json_has_the_rfc_8460_fields() {
        let outcomes = [
            outcome("sts", "success", "mx.sts.test"),
            outcome("sts", "success", "mx.sts.test"),
            outcome("sts", "certificate-host-mismatch", "mx.sts.test"),
            outcome("sts", "certificate-host-mismatch", "mx.sts.test"),
            outcome("no-policy-found", "starttls-not-supported", "mx.sts.test"),
        ];
        let r = build("Org", "tlsrpt@mx.test", "id-1", 0, 86400, "sts.test", &outcomes);
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["organization-name"], "Org");
        assert_eq!(v["contact-info"], "tlsrpt@mx.test");
        assert_eq!(v["report-id"], "id-1");
        assert_eq!(v["date-range"]["start-datetime"], "1970-01-01T00:00:00Z");
        assert_eq!(v["date-range"]["end-datetime"], "1970-01-02T00:00:00Z");
        let policies = v["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 2);
        let sts = policies.iter().find(|p| p["policy"]["policy-type"] == "sts").unwrap();
        assert_eq!(sts["policy"]["policy-string"], serde_json::json!(["version: STSv1", "mode: enforce", "mx: mx.sts.test", "max_age: 86400"]));
        assert_eq!(sts["policy"]["policy-domain"], "sts.test");
        assert_eq!(sts["policy"]["mx-host"], serde_json::json!(["mx.sts.test"]));
        assert_eq!(sts["summary"]["total-successful-session-count"], 2);
        assert_eq!(sts["summary"]["total-failure-session-count"], 2);
        let f = &sts["failure-details"][0];
        assert_eq!(f["result-type"], "certificate-host-mismatch");
        assert_eq!(f["receiving-mx-hostname"], "mx.sts.test");
        assert_eq!(f["receiving-ip"], "192.0.2.7");
        assert_eq!(f["failed-session-count"], 2);
        assert_eq!(f["additional-information"], "why");
        assert!(f.get("sending-mta-ip").is_none() && f.get("failure-reason-code").is_none(), "absent, not null");
        let none = policies.iter().find(|p| p["policy"]["policy-type"] == "no-policy-found").unwrap();
        assert_eq!(none["failure-details"][0]["result-type"], "starttls-not-supported");
        // mail-auth reads back what we write.
        assert_eq!(TlsReport::parse_json(json(&r).as_bytes()).unwrap().policies.len(), 2);
    }
}
