//! Micro-benchmark: classifying a typical 4 KiB message against a model of 100,000 tokens
//! must take well under 100 µs. Run with `cargo bench -p rampart-filter --bench classify`
//! (release mode); prints the median and fails when the median is 100 µs or more.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rampart_filter::bayes::{self, Class, Counts, Model, Token, TokenCounts};
use rampart_filter::rules::{self, Input};
use rampart_filter::{MessageView, Urls};
use rampart_pipeline::Trail;

/// Model size the target is stated for.
const MODEL_TOKENS: usize = 100_000;
const RUNS: usize = 2000;

/// Syllables of made-up words: a 4 KiB message gets a few hundred distinct words, as prose does.
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "ber", "dan", "fel", "gor", "hin", "jus", "kel", "mar", "nor", "pet", "quin", "ros",
    "sul", "tam", "ul", "ven", "wes", "yor", "zel", "ab", "ed", "ig",
];

/// A deterministic pseudo-random sequence (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A 4 KiB multipart message: a text part and its HTML twin, two links.
fn message(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    while text.len() < 1700 {
        for _ in 0..2 + rng.next() % 2 {
            text.push_str(SYLLABLES[(rng.next() % SYLLABLES.len() as u64) as usize]);
        }
        text.push_str(if rng.next().is_multiple_of(12) { ".\r\n" } else { " " });
    }
    let html: String = text.split("\r\n").map(|l| format!("<p>{l}</p>\r\n")).collect();
    format!(
        "From: Shop <news@shop.example.com>\r\nTo: a@example.org\r\nSubject: Your order update and offers\r\n\
Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b1@shop.example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
http://www.shop.example.com/order/1\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\
<a href=\"https://track.example.net/c/1\">Track</a>\r\n--b--\r\n"
    )
    .into_bytes()
}

/// 200+ messages of each class whose tokens fill a model to `MODEL_TOKENS` distinct tokens,
/// with the benchmark message's own tokens among them.
fn model(rng: &mut Rng, known: &[Token]) -> Model {
    let mut m = Model::new();
    for i in 0..420 {
        let class = if i % 2 == 0 { Class::Spam } else { Class::Ham };
        let mut tokens: Vec<Token> = (0..MODEL_TOKENS / 400).map(|_| rng.next()).collect();
        // Most of a message's words are known to a trained model; a third of them per message.
        tokens.extend(known.iter().filter(|_| !rng.next().is_multiple_of(5) && rng.next().is_multiple_of(3)));
        tokens.sort_unstable();
        tokens.dedup();
        m.learn(&tokens, class);
    }
    let missing = MODEL_TOKENS.saturating_sub(m.len());
    let extra = (0..missing).map(|_| (rng.next(), Counts { spam: 1, ham: 0 }));
    Model::from_parts(m.messages(), m.tokens().collect::<Vec<_>>().into_iter().chain(extra))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn time(mut f: impl FnMut()) -> Duration {
    let times = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(times)
}

fn main() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let raw = message(&mut rng);
    let view = MessageView::parse(&raw);
    let urls = Urls::extract(&view);
    let tokens = bayes::tokenize(&view, &urls);
    let m = model(&mut rng, &tokens);
    println!("message {} bytes, {} tokens; model {} tokens", raw.len(), tokens.len(), m.len());

    let parse = time(|| {
        black_box(MessageView::parse(black_box(&raw)));
    });
    let extract = time(|| {
        black_box(Urls::extract(black_box(&view)));
    });
    let trail = Trail::default();
    let rules = time(|| {
        black_box(rules::evaluate(&Input { view: black_box(&view), urls: &urls, trail: &trail }));
    });
    let tokenize = time(|| {
        black_box(bayes::tokenize(black_box(&view), &urls));
    });
    let classify = time(|| {
        black_box(bayes::classify(black_box(&m), black_box(&tokens)));
    });
    println!("median per message: parse {parse:?}, urls {extract:?}, rules {rules:?}, tokenize {tokenize:?}, classify {classify:?}");
    println!("tokenize + classify: {:?}", tokenize + classify);
    assert!(classify < Duration::from_micros(100), "classify took {classify:?}");
}
