//! Body rules: families of phrases that spam of one kind uses over and over (SpamAssassin's
//! ADVANCE_FEE, DRUGS and phishing rules work the same way), large sums of money, and Bitcoin
//! addresses. One family fires when enough *different* phrases of it appear, so a single
//! "within 24 hours" in a delivery notice says nothing.
//!
//! The subject and the visible text of every body part are read once by one Aho-Corasick
//! automaton (ASCII case-insensitive), at most [`MAX_SCAN`] bytes per part.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;

use super::{Hit, Input, Rule};
use crate::message::truncate;

/// Bytes of each part's text read by the body rules: what spam says, it says early.
const MAX_SCAN: usize = 64 * 1024;

/// A family: the rule, how many distinct phrases it needs, its phrases (lowercase).
struct Family {
    rule: Rule,
    needs: usize,
    phrases: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family {
        rule: super::PHISH_URGENCY,
        needs: 2,
        phrases: &[
            "verify your account", "verify your identity", "confirm your identity", "confirm your account", "validate your account",
            "update your payment", "update your billing", "update your account", "confirm your billing", "account has been limited",
            "account has been locked", "account has been suspended", "account will be suspended", "will be permanently", "permanently suspended",
            "will be deleted", "will be closed", "will be deactivated", "will be suspended", "within 24 hours", "within 48 hours",
            "within 12 hours", "unusual activity", "suspicious activity", "unusual sign-in", "unauthorized access", "restore full access",
            "unlock your account", "secure your wallet", "sign in to confirm", "avoid losing", "keep current password", "password expires",
            "recovery phrase", "secret recovery", "seed phrase",
        ],
    },
    Family {
        rule: super::DELIVERY_LURE,
        needs: 2,
        phrases: &[
            "customs fee", "import fee", "redelivery", "reschedule delivery", "schedule delivery", "delivery attempt", "could not be delivered",
            "returned to the sender", "returned to sender", "held at our depot", "unpaid fee", "shipping label could not", "pay the fee",
        ],
    },
    Family {
        rule: super::DOCUMENT_LURE,
        needs: 2,
        phrases: &[
            "shared a file with you", "has been shared with you", "was shared with you", "invited you to view", "view document",
            "sign in to view", "open the attachment and sign in", "secure cloud storage", "link expires", "this link will only work",
            "review and sign", "view the documents",
        ],
    },
    Family {
        rule: super::ADVANCE_FEE,
        needs: 2,
        phrases: &[
            "next of kin", "next-of-kin", "beneficiary", "million dollars", "united states dollars", "risk free", "strictly confidential",
            "dormant account", "late client", "late husband", "fixed deposit", "consignment", "compensation", "barrister", "diplomatic",
            "processing fee", "clearance fee", "transfer fee", "delivery fee", "delivery charge", "atm card", "winning notification",
            "lucky winner", "you have won", "claims agent", "over-invoiced", "foreign partner", "god fearing", "confidential business",
            "suspense account", "inheritance", "unclaimed", "your assistance", "forfeited",
        ],
    },
    Family {
        rule: super::DRUGS,
        needs: 2,
        phrases: &[
            "viagra", "vi@gra", "v1agra", "v i a g r a", "cialis", "c i a l i s", "levitra", "xanax", "valium", "tramadol",
            "no prescription", "without prescription", "prescription required", "ed pills", "erectile", "belly fat", "lose weight",
            "weight loss", "testosterone", "fat burn",
        ],
    },
    Family {
        rule: super::EXTORTION,
        needs: 3,
        phrases: &[
            "i have access to your", "recorded you", "recorded video", "your webcam", "adult website", "porn", "trojan", "malware",
            "send the video", "your contacts", "in bitcoin", "bitcoin", "btc", "i know your password", "is your password", "countdown",
            "i will delete", "48 hours", "24 hours",
        ],
    },
    Family {
        rule: super::GET_RICH,
        needs: 2,
        phrases: &[
            "passive income", "work from home", "no experience", "daily returns", "guaranteed returns", "double the amount", "100x",
            "financial freedom", "make money", "extra income", "winning trades", "per day from home", "earn $", "trading robot",
            "guaranteed profit",
        ],
    },
    Family {
        rule: super::PROMO_HYPE,
        needs: 3,
        phrases: &[
            "click here", "limited time", "act now", "order now", "buy now", "today only", "100% free", "no credit check",
            "pre-approved", "free trial", "special offer", "exclusive offer", "congratulations", "you have been selected",
            "you've been selected", "claim your", "last chance", "expires today", "no obligation", "only 3 left", "only a few left",
            "don't miss", "lowest price", "best price", "free shipping", "100% guaranteed",
        ],
    },
];

/// The phrases of every family in one automaton; a match's pattern index maps back to
/// (family, phrase) through [`PHRASE_FAMILY`].
static PHRASES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let all = FAMILIES.iter().flat_map(|f| f.phrases.iter());
    // The phrases are fixed and short: building cannot fail.
    AhoCorasick::builder().ascii_case_insensitive(true).build(all).expect("valid phrases")
});

static PHRASE_FAMILY: LazyLock<Vec<usize>> = LazyLock::new(|| FAMILIES.iter().enumerate().flat_map(|(i, f)| f.phrases.iter().map(move |_| i)).collect());

/// Sums of 100,000 or more in a currency: "$950,000.00", "USD 12.7 million", "1,500,000.00 EUR".
static LARGE_MONEY: LazyLock<Regex> = LazyLock::new(|| {
    let amount = r"(?:(?:\d{1,3}(?:,\d{3}){2,}|\d{1,3}(?:\.\d{3}){2,}|\d{3}(?:,\d{3})+)(?:[.,]\d{2})?|\d+(?:\.\d+)?\s?(?:million|billion))";
    let before = format!(r"(?i)(?:[$€£]|\b(?:usd|eur|gbp)\s?){amount}");
    let after = format!(r"(?i){amount}\s?(?:usd|eur|gbp|euros?|dollars?|pounds)\b");
    // Fixed patterns: building cannot fail.
    Regex::new(&format!("{before}|{after}")).expect("valid pattern")
});

/// A Bitcoin address: bech32 (`bc1…`) or base58 (`1…`, `3…`) of the lengths addresses have.
static BITCOIN_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:bc1[02-9ac-hj-np-z]{25,59}|[13][1-9A-HJ-NP-Za-km-z]{25,34})\b").expect("valid pattern")
});

/// The text the body rules read: the subject and each body part's visible text.
fn texts<'a>(input: &'a Input<'_>) -> impl Iterator<Item = &'a str> {
    let view = input.view;
    let bodies = view.bodies().map(|t| t.html.as_ref().map_or(t.text.as_str(), |d| d.text.as_str()));
    view.subject.as_deref().into_iter().chain(bodies).map(|t| truncate(t, MAX_SCAN))
}

/// Every body rule that fires.
pub(super) fn check(input: &Input<'_>) -> Vec<Hit> {
    let mut seen = vec![false; PHRASE_FAMILY.len()];
    let mut money = false;
    let mut bitcoin = false;
    for text in texts(input) {
        for m in PHRASES.find_overlapping_iter(text) {
            seen[m.pattern().as_usize()] = true;
        }
        money = money || LARGE_MONEY.is_match(text);
        bitcoin = bitcoin || BITCOIN_ADDRESS.find_iter(text).any(|m| looks_random(m.as_str()));
    }
    let mut hits = Vec::new();
    for (i, family) in FAMILIES.iter().enumerate() {
        let found = seen.iter().zip(PHRASE_FAMILY.iter()).filter(|(s, f)| **s && **f == i).count();
        if found >= family.needs {
            hits.push(Hit { rule: family.rule, domain: None });
        }
    }
    if money {
        hits.push(Hit { rule: super::LOTS_OF_MONEY, domain: None });
    }
    if bitcoin {
        hits.push(Hit { rule: super::BITCOIN_ADDRESS, domain: None });
    }
    hits
}

/// Addresses mix letters and digits; a long word of letters only is prose, not an address.
fn looks_random(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit()) && s.chars().filter(|c| c.is_ascii_alphabetic()).count() >= 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_bitcoin_patterns() {
        let money = ["$950,000.00", "USD 8,500,000.00", "USD 12.7 million", "1,500,000.00 EUR", "€2.500.000", "4.2 million dollars", "$2,500,000"];
        for m in money {
            assert!(LARGE_MONEY.is_match(m), "{m}");
        }
        let small = ["$399.99", "£84.12", "EUR 2,400", "3,480.00 EUR", "4 TB", "$1,200 per day", "2026-1187"];
        for m in small {
            assert!(!LARGE_MONEY.is_match(m), "{m}");
        }
        for a in ["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "1HQ3Go3ggs8pFnXuHVHRytPCq5fGG8Hbhx", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"] {
            assert!(BITCOIN_ADDRESS.find_iter(a).any(|m| looks_random(m.as_str())), "{a}");
        }
        for text in ["Supercalifragilisticexpialidocious", "PN 4471 9920 118", "order 114-7728819"] {
            assert!(!BITCOIN_ADDRESS.find_iter(text).any(|m| looks_random(m.as_str())), "{text}");
        }
    }

    #[test]
    fn every_phrase_is_lowercase_and_maps_to_its_family() {
        assert_eq!(PHRASE_FAMILY.len(), FAMILIES.iter().map(|f| f.phrases.len()).sum::<usize>());
        for f in FAMILIES {
            assert!(f.phrases.iter().all(|p| *p == p.to_lowercase()), "{}", f.rule.name);
            assert!(f.needs >= 2 && f.phrases.len() > f.needs, "{}", f.rule.name);
        }
    }
}
