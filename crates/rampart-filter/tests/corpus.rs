//! The scorer on the labelled corpus in `tests/data/spam-corpus/` (written for the project):
//! rules plus a Bayes model trained by 5-fold cross-validation, each message scored by a
//! model that never saw it (nor another message of its campaign). Prints precision and
//! recall at the junk threshold and asserts sane minimums; `--nocapture` shows the figures.

use std::path::{Path, PathBuf};

use rampart_filter::bayes::{self, Class, Model, Token};
use rampart_filter::rules::{self, Input};
use rampart_filter::{MessageView, Urls, header};
use rampart_pipeline::{Action, Disposition, Entry, Outcome, Policy, Reason, Stage, Trail, decide};

const FOLDS: usize = 5;
/// The corpus is far smaller than a mailbox: each fold trains on ~72 messages per class, so
/// the classifier's minimum is lowered for the test (the server keeps 200).
const MIN_TRAINED: u32 = 50;

struct Sample {
    name: String,
    spam: bool,
    fold: usize,
    tokens: Vec<Token>,
    /// The rules' entries, the authentication results included.
    trail: Trail,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/spam-corpus")
}

/// The campaign of a file: `s012b.eml` → `s012`.
fn campaign(name: &str) -> String {
    let stem = name.trim_end_matches(".eml");
    stem.trim_end_matches(|c: char| c.is_ascii_lowercase() && stem.len() > 4).to_string()
}

fn load(label: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir().join(label))
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())).collect()
}

/// The sender-authentication stages' results, as the messages' Authentication-Results
/// header records them (the SMTP session would have put them in the trail).
fn auth_trail(raw: &[u8]) -> Trail {
    let text = String::from_utf8_lossy(raw);
    let mut trail = Trail::default();
    let Some(start) = text.find("Authentication-Results:") else { return trail };
    let mut value = String::new();
    for (i, line) in text[start..].split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        value.push_str(line.trim());
        value.push(' ');
    }
    for clause in value.split(';').skip(1) {
        let clause = clause.trim();
        let Some((method, rest)) = clause.split_once('=') else { continue };
        let result = rest.split_whitespace().next().unwrap_or("");
        let policy = if clause.contains("p=reject") {
            Some(Disposition::Reject)
        } else if clause.contains("p=quarantine") {
            Some(Disposition::Quarantine)
        } else {
            clause.contains("p=none").then_some(Disposition::None)
        };
        if let Some(mut e) = auth_entry(method, result) {
            e.policy = if method == "dmarc" { policy } else { None };
            trail.push(e);
        }
    }
    trail
}

fn auth_entry(method: &str, result: &str) -> Option<Entry> {
    use Outcome as O;
    use Reason as R;
    let (stage, outcome, reason) = match (method, result) {
        ("iprev", "pass") => (Stage::Iprev, O::Pass, R::IprevConfirmed),
        ("iprev", _) => (Stage::Iprev, O::Fail, R::IprevNoPtr),
        ("spf", "pass") => (Stage::Spf, O::Pass, R::SpfAuthorized),
        ("spf", "fail") => (Stage::Spf, O::Fail, R::SpfNotAuthorized),
        ("spf", "softfail") => (Stage::Spf, O::SoftFail, R::SpfWeaklyNotAuthorized),
        ("spf", _) => (Stage::Spf, O::None, R::SpfNoRecord),
        ("dkim", "pass") => (Stage::Dkim, O::Pass, R::DkimValid),
        ("dkim", "fail") => (Stage::Dkim, O::Fail, R::DkimBadSignature),
        ("dkim", _) => (Stage::Dkim, O::None, R::DkimUnsigned),
        ("dmarc", "pass") => (Stage::Dmarc, O::Pass, R::DmarcAligned),
        ("dmarc", "fail") => (Stage::Dmarc, O::Fail, R::DmarcNotAligned),
        ("dmarc", _) => (Stage::Dmarc, O::None, R::DmarcNoPolicy),
        _ => return None,
    };
    Some(Entry::new(stage, outcome, reason))
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for (label, spam) in [("spam", true), ("ham", false)] {
        let files = load(label);
        let mut campaigns: Vec<String> = files.iter().map(|(n, _)| campaign(n)).collect();
        campaigns.dedup();
        for (name, raw) in files {
            let fold = campaigns.iter().position(|c| *c == campaign(&name)).unwrap() % FOLDS;
            let view = MessageView::parse(&raw);
            let urls = Urls::extract(&view);
            let mut trail = auth_trail(&raw);
            let entries = rules::evaluate(&Input { view: &view, urls: &urls, trail: &trail });
            trail.extend(entries);
            out.push(Sample { name, spam, fold, tokens: bayes::tokenize(&view, &urls), trail });
        }
    }
    out
}

/// Precision and recall of "score at or above `threshold`" as a spam verdict.
#[derive(Default)]
struct Tally {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Tally {
    fn add(&mut self, spam: bool, flagged: bool) {
        match (spam, flagged) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => {}
        }
    }

    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }

    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }

    fn line(&self, what: &str) -> String {
        format!("{what:<34} precision {:.3}  recall {:.3}  (tp {}, fp {}, fn {})", self.precision(), self.recall(), self.tp, self.fp, self.fn_)
    }
}

#[test]
fn precision_and_recall_on_the_corpus() {
    let samples = samples();
    let spam_count = samples.iter().filter(|s| s.spam).count();
    assert!(spam_count >= 80 && samples.len() - spam_count >= 80, "the corpus holds at least 80 of each");
    let policy = Policy::default();
    let (mut rules_only, mut bayes_only, mut combined, mut decided) = (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    let mut worst_ham: f64 = f64::MIN;
    for fold in 0..FOLDS {
        let mut model = Model::new();
        for s in samples.iter().filter(|s| s.fold != fold) {
            model.learn(&s.tokens, if s.spam { Class::Spam } else { Class::Ham });
        }
        for s in samples.iter().filter(|s| s.fold == fold) {
            let verdict = bayes::classify_with(&model, &s.tokens, MIN_TRAINED);
            assert!(matches!(verdict, bayes::Verdict::Scored { .. }), "fold {fold} is trained");
            let bayes_entry = verdict.entry();
            let rules_score = s.trail.score();
            let mut trail = s.trail.clone();
            trail.push(bayes_entry.clone());
            let score = trail.score();
            rules_only.add(s.spam, rules_score >= policy.junk_score);
            bayes_only.add(s.spam, bayes_entry.score.unwrap_or(0.0) >= policy.junk_score);
            combined.add(s.spam, score >= policy.junk_score);
            decided.add(s.spam, decide(&trail, &policy).action != Action::Accept);
            if !s.spam {
                worst_ham = worst_ham.max(score);
            }
            if s.spam != (score >= policy.junk_score) {
                println!("missed {:>4} {:>6.1}  {}", if s.spam { "spam" } else { "ham" }, score, header::value(&trail, policy.junk_score));
                println!("              {}", s.name);
            }
        }
    }
    println!("{} spam, {} ham, {FOLDS}-fold cross-validation (campaigns kept in one fold)", spam_count, samples.len() - spam_count);
    println!("{}", rules_only.line("rules alone, score >= 5"));
    println!("{}", bayes_only.line("Bayes alone, score >= 5"));
    println!("{}", combined.line("rules + Bayes, score >= 5"));
    println!("{}", decided.line("decide(): Junk or worse"));
    println!("highest ham score: {worst_ham:.1}");
    assert!(combined.precision() >= 0.95, "{}", combined.line("combined"));
    // Measured 0.756 (68 of 90). Much of the corpus's spam passes SPF, DKIM and DMARC from
    // its own domains and says little a rule can catch; the classifier learns from ~72
    // messages per class here, and the DNS blocklists that catch much of it in production
    // are not part of this test.
    assert!(combined.recall() >= 0.70, "{}", combined.line("combined"));
    assert!(worst_ham < policy.quarantine_score, "no ham reaches the quarantine");
}

#[test]
fn campaigns_and_auth_header() {
    assert_eq!(campaign("s012b.eml"), "s012");
    assert_eq!(campaign("h004.eml"), "h004");
    let raw = b"Authentication-Results: mx.rampart.test;\r\n\tspf=softfail smtp.mailfrom=x.test;\r\n\tdkim=none;\r\n\tdmarc=fail (p=reject) header.from=x.test\r\nFrom: a@x.test\r\n\r\n";
    let t = auth_trail(raw);
    let got: Vec<_> = t.entries().iter().map(|e| (e.stage, e.result, e.policy)).collect();
    assert_eq!(
        got,
        [(Stage::Spf, Outcome::SoftFail, None), (Stage::Dkim, Outcome::None, None), (Stage::Dmarc, Outcome::Fail, Some(Disposition::Reject))]
    );
}
