//! The statistical classifier: a tokenizer that turns a message into a set of 64-bit token
//! hashes, a [`Model`] of counts per token the store loads and saves (per user and global),
//! and [`classify`], Gary Robinson's per-token probabilities combined with Fisher's
//! chi-square method as SpamBayes and bogofilter do.
//!
//! Written here: the crates.io classifiers did not fit. `bayespam` keeps whole-string keys in
//! a JSON file, has no message counts and no unlearning, and combines with Graham's naive
//! product; `linfa-bayes` fits dense feature matrices (ndarray) in batches, not sparse
//! per-user counts kept in a database and updated one message at a time.

use std::collections::HashMap;

use rampart_pipeline::{Entry, Outcome, Reason, Stage};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::message::MessageView;
use crate::urls::{UrlHost, Urls};

/// A token: a word (or header fact) hashed with xxh3, seeded by where it came from, so
/// "free" in a Subject and "free" in a body are different tokens. Fixed size for the store;
/// xxh3 is a specified hash, so stored tokens stay valid across builds.
pub type Token = u64;

/// Messages of each class the model must have learnt before it scores (SpamBayes and
/// bogofilter both give unreliable verdicts on a few dozen).
pub const MIN_TRAINED: u32 = 200;
/// Shortest and longest words kept; longer ones become a "long word" token by first
/// character and length, as SpamBayes does (long strings are mostly encoded junk).
const MIN_WORD: usize = 3;
const MAX_WORD: usize = 24;
/// Word tokens read per message; text is already capped by the message view.
const MAX_WORDS: usize = 20_000;
/// Robinson's prior: how strongly a token's probability is pulled toward 0.5 when seen
/// rarely (`s`), and the probability of a token never seen (`x`). SpamBayes' defaults.
const PRIOR_STRENGTH: f64 = 0.45;
const PRIOR_PROB: f64 = 0.5;
/// Tokens whose probability is within this of 0.5 say nothing and are left out.
const MIN_PROB_STRENGTH: f64 = 0.1;
/// The most extreme tokens combined per message.
const MAX_CLUES: usize = 150;
/// Probability at or below which a message is ham, at or above which it is spam
/// (SpamBayes' ham_cutoff and spam_cutoff).
pub const HAM_CUTOFF: f64 = 0.20;
pub const SPAM_CUTOFF: f64 = 0.90;

/// Where a token came from: the hash seed. The numbers are stored meaning (the store keeps
/// the hashes): never renumber, only add.
#[derive(Clone, Copy)]
enum Kind {
    Body = 1,
    Subject = 2,
    LongWord = 3,
    UrlDomain = 4,
    UrlHost = 5,
    FromDomain = 6,
    ReplyTo = 7,
    Mailer = 8,
    ContentType = 9,
    Attachment = 10,
    Fact = 11,
    UrlPath = 12,
    FromName = 13,
}

/// Spam or ham.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Spam,
    Ham,
}

/// Counts of messages (or of messages containing a token) per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

impl Counts {
    fn add(&mut self, class: Class, n: i64) {
        let c = match class {
            Class::Spam => &mut self.spam,
            Class::Ham => &mut self.ham,
        };
        *c = (i64::from(*c) + n).clamp(0, i64::from(u32::MAX)) as u32;
    }
}

/// What [`classify`] needs from a model: the store may answer from a full [`Model`] or
/// from only the rows of the message's tokens.
pub trait TokenCounts {
    /// Messages learnt of each class.
    fn messages(&self) -> Counts;
    /// Learnt messages of each class that contained `token`.
    fn token(&self, token: Token) -> Counts;
}

/// Token counts: what the store keeps per user (and globally).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    messages: Counts,
    tokens: HashMap<Token, Counts>,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// A model as the store saved it.
    pub fn from_parts(messages: Counts, tokens: impl IntoIterator<Item = (Token, Counts)>) -> Model {
        Model { messages, tokens: tokens.into_iter().collect() }
    }

    /// Every token with its counts, for saving.
    pub fn tokens(&self) -> impl Iterator<Item = (Token, Counts)> + '_ {
        self.tokens.iter().map(|(t, c)| (*t, *c))
    }

    /// Distinct tokens known.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Learns one message of `class` from its tokens (as [`tokenize`] gives them: each once).
    pub fn learn(&mut self, tokens: &[Token], class: Class) {
        self.messages.add(class, 1);
        for t in tokens {
            self.tokens.entry(*t).or_default().add(class, 1);
        }
    }

    /// Takes back a message learnt as `class` (a user moved it out of Junk, or back in).
    pub fn unlearn(&mut self, tokens: &[Token], class: Class) {
        self.messages.add(class, -1);
        for t in tokens {
            if let Some(c) = self.tokens.get_mut(t) {
                c.add(class, -1);
                if *c == Counts::default() {
                    self.tokens.remove(t);
                }
            }
        }
    }
}

impl TokenCounts for Model {
    fn messages(&self) -> Counts {
        self.messages
    }

    fn token(&self, token: Token) -> Counts {
        self.tokens.get(&token).copied().unwrap_or_default()
    }
}

/// The classifier's answer for one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Fewer than `needed` messages of a class learnt: no opinion yet.
    Untrained { learnt: Counts, needed: u32 },
    /// The spam probability (0 ham … 1 spam) and how many tokens decided it.
    Scored { probability: f64, clues: usize },
}

impl Verdict {
    /// The trail entry: stage `bayes`, a reason by band, the score it adds.
    pub fn entry(&self) -> Entry {
        match *self {
            Verdict::Untrained { learnt, needed } => Entry::new(Stage::Bayes, Outcome::Skipped, Reason::BayesUntrained)
                .detail(format!("learnt {} spam and {} ham; scores from {needed} of each", learnt.spam, learnt.ham)),
            Verdict::Scored { probability: p, clues } => {
                let (result, reason) = if p >= SPAM_CUTOFF {
                    (Outcome::Neutral, Reason::BayesSpam)
                } else if p <= HAM_CUTOFF {
                    (Outcome::Pass, Reason::BayesHam)
                } else {
                    (Outcome::Neutral, Reason::BayesUncertain)
                };
                Entry::new(Stage::Bayes, result, reason).detail(format!("p={p:.3} clues={clues}")).score(score(p))
            }
        }
    }
}

/// The score for a spam probability: piecewise linear through these points, so a sure ham
/// takes 2 points off, an undecided message adds little, and a sure spam adds 5 (Junk by
/// itself at the default threshold).
const SCORE_CURVE: &[(f64, f64)] = &[(0.0, -2.0), (HAM_CUTOFF, -1.0), (0.5, 0.0), (SPAM_CUTOFF, 3.0), (0.99, 5.0), (1.0, 5.0)];

pub fn score(p: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    for w in SCORE_CURVE.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if p <= x1 {
            let s = y0 + (y1 - y0) * (p - x0) / (x1 - x0);
            return (s * 100.0).round() / 100.0;
        }
    }
    5.0
}

/// Classifies a message by its tokens, once the model has learnt [`MIN_TRAINED`] messages of
/// each class.
pub fn classify(model: &impl TokenCounts, tokens: &[Token]) -> Verdict {
    classify_with(model, tokens, MIN_TRAINED)
}

/// [`classify`] with another minimum of learnt messages per class (tests on small corpora).
pub fn classify_with(model: &impl TokenCounts, tokens: &[Token], min_trained: u32) -> Verdict {
    let m = model.messages();
    if m.spam < min_trained || m.ham < min_trained {
        return Verdict::Untrained { learnt: m, needed: min_trained };
    }
    let mut clues: Vec<f64> = tokens.iter().filter_map(|t| token_probability(m, model.token(*t))).collect();
    if clues.len() > MAX_CLUES {
        // The MAX_CLUES most extreme probabilities, in linear time.
        clues.select_nth_unstable_by(MAX_CLUES, |a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        clues.truncate(MAX_CLUES);
    }
    Verdict::Scored { probability: chi2_combine(&clues), clues: clues.len() }
}

/// Robinson's f(w): the token's spam probability, pulled toward [`PRIOR_PROB`] when it was
/// seen in few messages; `None` when it says too little.
fn token_probability(m: Counts, c: Counts) -> Option<f64> {
    let (spam, ham) = (c.spam.min(m.spam) as f64, c.ham.min(m.ham) as f64);
    let n = spam + ham;
    if n == 0.0 {
        return None;
    }
    let spam_ratio = spam / m.spam as f64;
    let ham_ratio = ham / m.ham as f64;
    let p = spam_ratio / (spam_ratio + ham_ratio);
    let f = (PRIOR_STRENGTH * PRIOR_PROB + n * p) / (PRIOR_STRENGTH + n);
    ((f - 0.5).abs() >= MIN_PROB_STRENGTH).then_some(f)
}

/// Fisher's method both ways (SpamBayes' chi2_spamprob): how unlikely the clues are under
/// "all ham" and under "all spam", folded into one probability.
fn chi2_combine(clues: &[f64]) -> f64 {
    if clues.is_empty() {
        return 0.5;
    }
    // Sums of logarithms do not underflow where the products would.
    let (ln_spam, ln_ham) = clues.iter().fold((0.0, 0.0), |(s, h), f| (s + (1.0 - f).ln(), h + f.ln()));
    let v = 2 * clues.len();
    let s = 1.0 - chi2_q(-2.0 * ln_spam, v);
    let h = 1.0 - chi2_q(-2.0 * ln_ham, v);
    (s - h + 1.0) / 2.0
}

/// The chi-square survival function for an even number of degrees of freedom `v`.
fn chi2_q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The message's tokens, each once (sorted): words of the subject and of the visible text of
/// every body part, URL hosts and domains, sender domains, mailer, MIME type, attachment
/// extensions, and a few facts about the structure.
pub fn tokenize(view: &MessageView, urls: &Urls) -> Vec<Token> {
    let mut t = Tokens { out: Vec::with_capacity(512), buf: String::new(), words: 0 };
    if let Some(s) = &view.subject {
        t.words(s, Kind::Subject);
    }
    for part in view.bodies() {
        match &part.html {
            Some(doc) => t.words(&doc.text, Kind::Body),
            None => t.words(&part.text, Kind::Body),
        }
    }
    for u in &urls.urls {
        if let Some(d) = &u.domain {
            t.push(Kind::UrlDomain, d.as_bytes());
        }
        // Words of the path and query ("login", "verify", "unsubscribe"), as SpamBayes does.
        let path = u.url.split_once("://").and_then(|(_, rest)| rest.split_once('/')).map_or("", |(_, p)| p);
        t.words(path, Kind::UrlPath);
        match &u.host {
            UrlHost::Domain(h) => t.push(Kind::UrlHost, h.as_bytes()),
            UrlHost::Ip(_) => t.push(Kind::Fact, b"url-ip"),
        }
    }
    t.headers(view);
    let mut out = t.out;
    out.sort_unstable();
    out.dedup();
    out
}

struct Tokens {
    out: Vec<Token>,
    buf: String,
    words: usize,
}

impl Tokens {
    fn push(&mut self, kind: Kind, bytes: &[u8]) {
        self.out.push(xxh3_64_with_seed(bytes, kind as u64));
    }

    /// Words: runs of letters, digits and currency signs, lowercased.
    fn words(&mut self, text: &str, kind: Kind) {
        for word in text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '$' | '€' | '£'))) {
            if self.words >= MAX_WORDS {
                return;
            }
            let chars = word.chars().count();
            if chars < MIN_WORD {
                continue;
            }
            self.words += 1;
            if chars > MAX_WORD {
                let first = word.chars().next().unwrap_or('?').to_lowercase().next().unwrap_or('?');
                let long = format!("{first}{}", chars / 10);
                self.push(Kind::LongWord, long.as_bytes());
                continue;
            }
            if word.is_ascii() {
                self.buf.clear();
                self.buf.extend(word.bytes().map(|b| b.to_ascii_lowercase() as char));
            } else {
                self.buf = word.to_lowercase();
            }
            let word = std::mem::take(&mut self.buf);
            self.push(kind, word.as_bytes());
            self.buf = word;
        }
    }

    fn headers(&mut self, view: &MessageView) {
        if let Some(d) = view.from.as_ref().and_then(|f| f.domain()) {
            self.push(Kind::FromDomain, d.as_bytes());
        }
        if let Some(name) = view.from.as_ref().and_then(|f| f.name.as_deref()) {
            self.words(name, Kind::FromName);
        }
        for d in view.reply_to.iter().filter_map(|m| m.domain()) {
            self.push(Kind::ReplyTo, d.as_bytes());
        }
        if let Some(m) = view.mailer.as_deref().and_then(|m| m.split_whitespace().next()) {
            self.push(Kind::Mailer, m.to_ascii_lowercase().as_bytes());
        }
        self.push(Kind::ContentType, view.content_type.as_bytes());
        for a in &view.attachments {
            let ext = a.name.as_deref().and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.trim().to_ascii_lowercase());
            self.push(Kind::Attachment, ext.as_deref().unwrap_or(&a.content_type).as_bytes());
        }
        let facts: [(&[u8], bool); 4] = [
            (b"no-message-id", view.message_id.is_none()),
            (b"no-date", !view.has_date),
            (b"list", view.list_id.is_some()),
            (b"html-only", view.bodies().all(|t| t.html.is_some()) && view.bodies().next().is_some()),
        ];
        for (fact, _) in facts.iter().filter(|(_, set)| *set) {
            self.push(Kind::Fact, fact);
        }
    }
}

#[cfg(test)]
mod tests;
