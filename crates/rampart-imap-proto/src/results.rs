//! The untagged answers to SEARCH and SORT: `* SEARCH` / `* SORT` with the numbers of the
//! matches, or one `* ESEARCH` when the client asked for RETURN options (RFC 4731; RFC 5267
//! §3 for SORT), with RFC 7162 §3.1.5 MODSEQ when the search used a MODSEQ key.

use crate::parser::PartialRange;
use crate::parser::sequence::compact;
use crate::response::line;

/// A message that matched: its sequence number, UID and MODSEQ.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub seq: u32,
    pub uid: u32,
    pub modseq: u64,
}

/// The untagged answer to SEARCH or SORT (`name`): `* SEARCH`/`* SORT` with the numbers in
/// the order of `hits`, or with RETURN options one ESEARCH (RFC 4731; RFC 5267 §3 for SORT,
/// where MIN and MAX are the first and last in sort order and ALL keeps that order).
pub fn results(buf: &mut Vec<u8>, tag: &str, name: &str, uid: bool, hits: &[Hit], ret: Option<Vec<String>>, modseq_key: bool) {
    let numbers: Vec<u32> = hits.iter().map(|h| if uid { h.uid } else { h.seq }).collect();
    let max_modseq = hits.iter().map(|h| h.modseq).max();
    match ret {
        // RFC 5182 §2.4: SAVE alone asks for no ESEARCH response, only the saving.
        Some(opts) if opts.iter().all(|o| o == "SAVE") && !opts.is_empty() => {}
        Some(opts) => {
            // RFC 4731 §3.1: RETURN () means ALL.
            let opts: Vec<String> = if opts.is_empty() { vec!["ALL".into()] } else { opts };
            let mut s = format!("* ESEARCH (TAG \"{tag}\")");
            if uid {
                s.push_str(" UID");
            }
            for o in &opts {
                match o.as_str() {
                    "MIN" if !numbers.is_empty() => s.push_str(&format!(" MIN {}", numbers[0])),
                    "MAX" if !numbers.is_empty() => s.push_str(&format!(" MAX {}", numbers[numbers.len() - 1])),
                    "ALL" if !numbers.is_empty() => s.push_str(&format!(" ALL {}", compact(&numbers))),
                    "COUNT" => s.push_str(&format!(" COUNT {}", numbers.len())),
                    _ => {}
                }
            }
            // RFC 9394 §3.1: the range asked, and its results or NIL; after the others, as
            // Dovecot orders it.
            if let Some(range) = opts.iter().find_map(|o| PartialRange::from_option(o)) {
                let part = &numbers[range.slice(numbers.len())];
                let set = if part.is_empty() { "NIL".to_string() } else { compact(part) };
                s.push_str(&format!(" PARTIAL ({range} {set})"));
            }
            // RFC 7162 §3.1.5: with MIN or MAX alone, the MODSEQ of that message; with
            // both (and neither ALL nor COUNT), the higher of those two; otherwise the
            // highest of all the results.
            let has = |o: &str| opts.iter().any(|x| x == o);
            let partial = opts.iter().find_map(|o| PartialRange::from_option(o));
            let modseq = if has("ALL") || has("COUNT") {
                max_modseq
            } else if let Some(range) = partial.filter(|_| !has("MIN") && !has("MAX")) {
                hits[range.slice(hits.len())].iter().map(|h| h.modseq).max()
            } else if partial.is_some() {
                max_modseq
            } else {
                let min = hits.first().map(|h| h.modseq).filter(|_| has("MIN"));
                let max = hits.last().map(|h| h.modseq).filter(|_| has("MAX"));
                min.max(max)
            };
            if modseq_key && let Some(m) = modseq {
                s.push_str(&format!(" MODSEQ {m}"));
            }
            line(buf, &s);
        }
        None => {
            use std::io::Write;
            // Written in place: 100,000 matches are 100,000 numbers.
            buf.reserve(name.len() + 4 + numbers.len() * 7);
            let _ = write!(buf, "* {name}");
            for n in &numbers {
                let _ = write!(buf, " {n}");
            }
            // RFC 7162 §3.1.5 (search-sort-mod-seq): the highest MODSEQ of the results.
            if modseq_key && let Some(m) = max_modseq {
                let _ = write!(buf, " (MODSEQ {m})");
            }
            buf.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_results_name_their_range() {
        let hits: Vec<Hit> = (1..=10).map(|n| Hit { seq: n, uid: n * 10, modseq: u64::from(n) }).collect();
        let mut out = Vec::new();
        results(&mut out, "t", "SEARCH", true, &hits, Some(vec!["PARTIAL -1:-3".into(), "COUNT".into()]), false);
        assert_eq!(out, b"* ESEARCH (TAG \"t\") UID COUNT 10 PARTIAL (-1:-3 80,90,100)\r\n");
        out.clear();
        results(&mut out, "t", "SEARCH", false, &hits, Some(vec!["PARTIAL 20:30".into()]), true);
        assert_eq!(out, b"* ESEARCH (TAG \"t\") PARTIAL (20:30 NIL)\r\n");
        out.clear();
        results(&mut out, "t", "SEARCH", false, &hits, Some(vec!["PARTIAL 2:4".into()]), true);
        assert_eq!(out, b"* ESEARCH (TAG \"t\") PARTIAL (2:4 2:4) MODSEQ 4\r\n");
    }
}
