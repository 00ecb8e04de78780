//! Tokenizer, model bookkeeping, the combining maths and the verdict's trail entry.

use super::*;

fn toks(raw: &str) -> Vec<Token> {
    let view = MessageView::parse(raw.as_bytes());
    tokenize(&view, &Urls::extract(&view))
}

fn word(kind: Kind, w: &str) -> Token {
    xxh3_64_with_seed(w.as_bytes(), kind as u64)
}

#[test]
fn tokenizer() {
    let t = toks("From: Shop Team <a@Shop.Example.com>\r\nSubject: Free money\r\nX-Mailer: BulkSender 9\r\n\r\nFREE money, free!! Visit http://www.Offers.example.net/login/verify?x=1 now. ok \
                  Supercalifragilisticexpialidocious-words ŒUVRE $500\r\n");
    let want = [
        word(Kind::Subject, "free"),
        word(Kind::Subject, "money"),
        word(Kind::Body, "free"),
        word(Kind::Body, "money"),
        word(Kind::Body, "visit"),
        word(Kind::Body, "now"),
        word(Kind::Body, "œuvre"),
        word(Kind::Body, "$500"),
        word(Kind::LongWord, "s3"),
        word(Kind::UrlDomain, "example.net"),
        word(Kind::UrlHost, "www.offers.example.net"),
        word(Kind::UrlPath, "login"),
        word(Kind::UrlPath, "verify"),
        word(Kind::FromName, "shop"),
        word(Kind::FromName, "team"),
        word(Kind::FromDomain, "shop.example.com"),
        word(Kind::Mailer, "bulksender"),
        word(Kind::ContentType, "text/plain"),
        word(Kind::Fact, "no-message-id"),
        word(Kind::Fact, "no-date"),
    ];
    for (i, w) in want.iter().enumerate() {
        assert!(t.contains(w), "token {i} missing");
    }
    // "ok" is too short; every token once; sorted.
    assert!(!t.contains(&word(Kind::Body, "ok")));
    assert!(t.windows(2).all(|w| w[0] < w[1]));
    // Stored tokens must never change meaning: pin one value of the hash.
    assert_eq!(word(Kind::Body, "free"), 0x6765_5e8e_a543_37a5);
}

#[test]
fn html_text_and_attachments() {
    let raw = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
               <p>Cheap <b>pills</b></p><div style=\"display:none\">hiddenword</div>\r\n\
               --b\r\nContent-Type: application/octet-stream; name=\"a.PDF.exe\"\r\n\r\nAAAA\r\n--b--\r\n";
    let t = toks(raw);
    assert!(t.contains(&word(Kind::Body, "cheap")) && t.contains(&word(Kind::Body, "pills")));
    // Hidden text is not what the reader sees: it is not learnt (it is how classifiers get poisoned).
    assert!(!t.contains(&word(Kind::Body, "hiddenword")));
    assert!(t.contains(&word(Kind::Attachment, "exe")));
    assert!(t.contains(&word(Kind::Fact, "html-only")));
}

#[test]
fn learn_and_unlearn() {
    let mut m = Model::new();
    let a = [1, 2, 3];
    m.learn(&a, Class::Spam);
    m.learn(&[2, 3, 4], Class::Ham);
    assert_eq!(m.messages(), Counts { spam: 1, ham: 1 });
    assert_eq!(m.token(2), Counts { spam: 1, ham: 1 });
    assert_eq!(m.token(9), Counts::default());
    let before = m.clone();
    m.learn(&a, Class::Ham);
    m.unlearn(&a, Class::Ham);
    assert_eq!(m, before);
    m.unlearn(&a, Class::Spam);
    assert_eq!(m.token(1), Counts::default());
    assert_eq!(m.len(), 3);
    // Unlearning what was never learnt does not wrap around.
    m.unlearn(&[1, 7], Class::Spam);
    m.unlearn(&[1, 7], Class::Spam);
    assert_eq!(m.messages(), Counts { spam: 0, ham: 1 });
    let saved: Vec<_> = m.tokens().collect();
    assert_eq!(Model::from_parts(m.messages(), saved), m);
}

/// A model of `n` spam with tokens 1000..1100 and `n` ham with 2000..2100 (every token in
/// half of its class), plus tokens 1..50 in everything.
fn trained(n: u32) -> Model {
    let mut m = Model::new();
    for i in 0..n as u64 {
        let common: Vec<Token> = (1..50).collect();
        let spam: Vec<Token> = common.iter().copied().chain((1000..1100).filter(|t| (t + i) % 2 == 0)).collect();
        let ham: Vec<Token> = common.iter().copied().chain((2000..2100).filter(|t| (t + i) % 2 == 0)).collect();
        m.learn(&spam, Class::Spam);
        m.learn(&ham, Class::Ham);
    }
    m
}

#[test]
fn classify_needs_enough_of_both() {
    let m = trained(MIN_TRAINED - 1);
    let v = classify(&m, &[1000, 1002]);
    assert_eq!(v, Verdict::Untrained { learnt: Counts { spam: 199, ham: 199 }, needed: MIN_TRAINED });
    let e = v.entry();
    assert_eq!((e.stage, e.result, e.reason, e.score), (Stage::Bayes, Outcome::Skipped, Reason::BayesUntrained, None));
    assert_eq!(e.detail, "learnt 199 spam and 199 ham; scores from 200 of each");
    assert!(matches!(classify_with(&m, &[1000], 100), Verdict::Scored { .. }));
}

#[test]
fn classify_separates() {
    let m = trained(MIN_TRAINED);
    let spammy: Vec<Token> = (1000..1040).chain(1..20).collect();
    let hammy: Vec<Token> = (2000..2040).chain(1..20).collect();
    let mixed: Vec<Token> = (1000..1010).chain(2000..2010).collect();
    let cases: [(&[Token], Reason); 5] = [
        (&spammy, Reason::BayesSpam),
        (&hammy, Reason::BayesHam),
        (&mixed, Reason::BayesUncertain),
        // Only tokens seen everywhere, or never seen: no clues, undecided.
        (&[1, 2, 3], Reason::BayesUncertain),
        (&[5_000_000], Reason::BayesUncertain),
    ];
    for (tokens, reason) in cases {
        let e = classify(&m, tokens).entry();
        assert_eq!(e.reason, reason, "{e:?}");
    }
    let Verdict::Scored { probability, clues } = classify(&m, &spammy) else { panic!() };
    assert!(probability > 0.99 && clues == 40, "{probability} {clues}");
    assert_eq!(classify(&m, &spammy).entry().score, Some(5.0));
    assert!(classify(&m, &hammy).entry().score.unwrap() <= -1.9);
}

#[test]
fn clues_are_capped() {
    let m = trained(MIN_TRAINED);
    let all: Vec<Token> = (1000..1100).chain(2000..2100).collect();
    let Verdict::Scored { clues, .. } = classify(&m, &all) else { panic!() };
    assert_eq!(clues, MAX_CLUES);
}

#[test]
fn score_curve() {
    let cases = [(0.0, -2.0), (0.1, -1.5), (0.2, -1.0), (0.35, -0.5), (0.5, 0.0), (0.7, 1.5), (0.9, 3.0), (0.945, 4.0), (0.99, 5.0), (1.0, 5.0), (1.5, 5.0), (-1.0, -2.0)];
    for (p, s) in cases {
        assert!((score(p) - s).abs() < 1e-9, "{p} → {} not {s}", score(p));
    }
}

#[test]
fn combining_maths() {
    // v = 2: Q(x) = e^(-x/2).
    assert!((chi2_q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
    assert_eq!(chi2_q(0.0, 10), 1.0);
    assert_eq!(chi2_combine(&[]), 0.5);
    assert!((chi2_combine(&[0.5, 0.5]) - 0.5).abs() < 1e-9);
    assert!(chi2_combine(&[0.99; 20]) > 0.99);
    assert!(chi2_combine(&[0.01; 20]) < 0.01);
    // Strong evidence both ways: undecided, not extreme.
    let both: Vec<f64> = [0.99; 10].into_iter().chain([0.01; 10]).collect();
    assert!((chi2_combine(&both) - 0.5).abs() < 0.01);
    // Never seen, or seen equally: no clue.
    let m = Counts { spam: 200, ham: 400 };
    assert_eq!(token_probability(m, Counts::default()), None);
    assert_eq!(token_probability(m, Counts { spam: 10, ham: 20 }), None);
    assert!(token_probability(m, Counts { spam: 10, ham: 0 }).unwrap() > 0.9);
    // Counts past the message counts (a partial unlearn) stay probabilities.
    assert!(token_probability(m, Counts { spam: 900, ham: 0 }).unwrap() <= 1.0);
}
