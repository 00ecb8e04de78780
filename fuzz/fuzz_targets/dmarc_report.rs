//! Received DMARC aggregate reports: any mail parses or is refused without a panic (gzip
//! and zip attachments included, within `MAX_REPORT_SIZE`), the counts add up, the records
//! are JSON, and the rule for keeping a report answers for every report parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_pipeline::report::{accept_received, parse_received};
use rampart_pipeline::{Entry, Outcome, Reason, Stage, Trail};

fuzz_target!(|data: &[u8]| {
    let Some(report) = parse_received(data) else { return };
    assert!(0 <= report.passed && report.passed <= report.messages);
    assert!(serde_json::from_str::<serde_json::Value>(&report.records).is_ok(), "records are not JSON");
    let ours = ["example.test".to_string()];
    let mut trail = Trail::default();
    let refused = accept_received(&trail, &report, &ours);
    assert!(refused.is_err(), "kept without a DMARC pass");
    trail.push(Entry::new(Stage::Dmarc, Outcome::Pass, Reason::DmarcAligned));
    let kept = accept_received(&trail, &report, &ours).is_ok();
    let domain = report.domain.trim_end_matches('.').to_ascii_lowercase();
    assert_eq!(kept, domain == "example.test" || domain.ends_with(".example.test"), "{domain}");
});
