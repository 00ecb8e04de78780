//! The `X-Spam-Status` header, in SpamAssassin's form so mail programs' filters and users'
//! rules that know it keep working: `Yes|No, score=12.3 required=5.0 tests=NAME,NAME`.
//!
//! Tests are every trail entry that carries a score: a rule by its name, GTUBE as `GTUBE`,
//! other findings by their reason in capitals (`BAYES_SPAM`, `DNSBL_LISTED`), a blocklist's
//! zone after it (`DNSBL_LISTED(zen.example)`), sorted as SpamAssassin sorts them.

use rampart_pipeline::{Reason, Trail};

/// The header's name.
pub const NAME: &str = "X-Spam-Status";
/// Folded lines stay within RFC 5322 §2.1.1's recommended 78 characters.
const LINE: usize = 78;

/// The whole header field, folded, ending in CRLF. `required` is the junk threshold.
///
/// Folds go where a space is (kept: unfolding gives the value back exactly) or after a
/// comma of the tests list (a tab is added there, as SpamAssassin does; readers split the
/// list on commas and white space).
pub fn field(trail: &Trail, required: f64) -> String {
    let value = value(trail, required);
    let mut out = format!("{NAME}:");
    let mut len = out.len();
    for (i, word) in value.split(' ').enumerate() {
        for (j, piece) in word.split_inclusive(',').enumerate() {
            let glue = if j == 0 { " " } else { "" };
            if i > 0 && len + glue.len() + piece.len() > LINE {
                out.push_str(if j == 0 { "\r\n " } else { "\r\n\t" });
                len = 1;
            } else {
                out.push_str(glue);
                len += glue.len();
            }
            out.push_str(piece);
            len += piece.len();
        }
    }
    out.push_str("\r\n");
    out
}

/// The value unfolded: `Yes, score=12.3 required=5.0 tests=A,B`.
pub fn value(trail: &Trail, required: f64) -> String {
    let score = trail.score();
    let verdict = if score >= required { "Yes" } else { "No" };
    // Adding +0.0 turns a negative zero (an empty sum, or -0.04 rounded) into "0.0".
    let score = (score * 10.0).round() / 10.0 + 0.0;
    let tests = tests(trail);
    let tests = if tests.is_empty() { "none".to_string() } else { tests.join(",") };
    format!("{verdict}, score={score:.1} required={required:.1} tests={tests}")
}

/// The names of the scored findings, sorted, each once.
pub fn tests(trail: &Trail) -> Vec<String> {
    let mut names: Vec<String> = trail
        .entries()
        .iter()
        .filter(|e| e.score.is_some())
        .map(|e| match e.reason {
            Reason::RuleMatched | Reason::Gtube if !e.detail.is_empty() => e.detail.clone(),
            Reason::DnsblListed | Reason::DomainblListed => {
                format!("{}({})", e.reason.name().to_ascii_uppercase(), e.domain.as_deref().unwrap_or(""))
            }
            r => r.name().to_ascii_uppercase(),
        })
        // Header-safe: no spaces, commas or line breaks from a detail.
        .map(|n| n.chars().filter(|c| c.is_ascii_graphic() && *c != ',').collect())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_pipeline::{Entry, Outcome, Stage};

    fn rule(name: &str, score: f64) -> Entry {
        Entry::new(Stage::Rules, Outcome::Neutral, Reason::RuleMatched).detail(name).score(score)
    }

    #[test]
    fn values() {
        let cases: Vec<(Vec<Entry>, f64, &str)> = vec![
            (vec![], 5.0, "No, score=0.0 required=5.0 tests=none"),
            (vec![Entry::new(Stage::Spf, Outcome::Pass, Reason::SpfAuthorized)], 5.0, "No, score=0.0 required=5.0 tests=none"),
            (vec![rule("SUBJ_ALL_CAPS", 1.5), rule("MISSING_MID", 1.0)], 5.0, "No, score=2.5 required=5.0 tests=MISSING_MID,SUBJ_ALL_CAPS"),
            (
                vec![
                    rule("LINK_TEXT_MISMATCH", 3.0),
                    Entry::new(Stage::Bayes, Outcome::Neutral, Reason::BayesSpam).detail("p=0.999").score(5.0),
                    Entry::new(Stage::Dnsbl, Outcome::Neutral, Reason::DnsblListed).domain("zen.example").score(4.3),
                ],
                5.0,
                "Yes, score=12.3 required=5.0 tests=BAYES_SPAM,DNSBL_LISTED(zen.example),LINK_TEXT_MISMATCH",
            ),
            (vec![rule("X", -0.04)], 5.0, "No, score=0.0 required=5.0 tests=X"),
            (vec![rule("DKIM_DMARC_PASS", -1.0)], 5.0, "No, score=-1.0 required=5.0 tests=DKIM_DMARC_PASS"),
            (vec![Entry::new(Stage::Rules, Outcome::Neutral, Reason::Gtube).detail("GTUBE").score(1000.0)], 5.0, "Yes, score=1000.0 required=5.0 tests=GTUBE"),
            (vec![rule("A B,\r\nC", 1.0), rule("A B,\r\nC", 1.0)], 2.0, "Yes, score=2.0 required=2.0 tests=ABC"),
        ];
        for (entries, required, want) in cases {
            assert_eq!(value(&Trail(entries), required), want);
        }
    }

    #[test]
    fn folding() {
        let names = ["SPOOF_DISPLAY_NAME", "LINK_TEXT_MISMATCH", "EXECUTABLE_ATTACHMENT", "DOUBLE_EXT_EXECUTABLE", "HTML_HIDDEN_TEXT", "MIME_HTML_ONLY", "URI_OBFUSCATED"];
        let trail = Trail(names.iter().map(|n| rule(n, 1.0)).collect());
        let f = field(&trail, 5.0);
        assert!(f.starts_with("X-Spam-Status: Yes, score=7.0 required=5.0 tests="), "{f}");
        assert!(f.ends_with("URI_OBFUSCATED\r\n"), "{f}");
        for line in f.trim_end().split("\r\n") {
            assert!(line.len() <= LINE, "{line:?}");
        }
        let lines: Vec<&str> = f.trim_end().split("\r\n").collect();
        assert!(lines.len() > 1 && lines[1..].iter().all(|l| l.starts_with('\t')), "{f}");
        // Unfolding (RFC 5322 §2.2.3: remove each CRLF before white space) gives the value
        // back, with a tab after the commas where a fold was.
        let unfolded = f.trim_end().replace("\r\n", "").replace(",\t", ",");
        assert_eq!(unfolded, format!("X-Spam-Status: {}", value(&trail, 5.0)));
        let short = field(&Trail::default(), 5.0);
        assert_eq!(short, "X-Spam-Status: No, score=0.0 required=5.0 tests=none\r\n");
    }
}
