//! The content filters on arbitrary messages (whatever a sender delivers): the message view
//! (MIME, decoding, HTML analysis), URL and domain extraction, every rule, the Bayes
//! tokenizer and the X-Spam-Status header. Must never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_filter::bayes::{self, Class, Model};
use rampart_filter::rules::{self, Input};
use rampart_filter::{MessageView, Urls, header};
use rampart_pipeline::Trail;

fuzz_target!(|data: &[u8]| {
    let view = MessageView::parse(data);
    let urls = Urls::extract(&view);
    for u in &urls.urls {
        let _ = rampart_filter::urls::parse(&u.url);
    }
    let mut trail = Trail::default();
    trail.extend(rules::evaluate(&Input { view: &view, urls: &urls, trail: &Trail::default() }));
    let tokens = bayes::tokenize(&view, &urls);
    let mut model = Model::new();
    model.learn(&tokens, Class::Spam);
    trail.push(bayes::classify_with(&model, &tokens, 0).entry());
    let _ = header::field(&trail, 5.0);
    // Each text part's HTML analysis on its own, and a raw attribute value as a URL.
    let text = String::from_utf8_lossy(data);
    let _ = rampart_filter::html::analyse(&text, 4096);
    let _ = rampart_filter::urls::parse(&text);
});
