//! CONTEXT=SORT (RFC 5267 §4.3): what ADDTO and REMOVEFROM a kept SORT result needs to become
//! the new one, with the positions in the sorted list that SORT contexts carry (SEARCH ones
//! send position 0). Pure code over identifiers (UIDs); the session maps them to message
//! numbers when the context is not a UID one.

use std::collections::HashSet;

/// The changes that turn a sorted list into another, each a (position, identifier) pair with
/// positions counted from 1 as RFC 5267 §4.3.2 has the client apply them, in order:
/// `removed` first, highest position first (so no removal moves the ones after it), then
/// `added`, lowest position first (each lands at its final place, as everything before it is
/// already there).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SortUpdate {
    pub removed: Vec<(u32, u32)>,
    pub added: Vec<(u32, u32)>,
}

impl SortUpdate {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// The update from `old` to `new`, both in sort order. Sort keys do not change while a message
/// exists, so the messages in both keep their relative order; should they not, every message
/// of `old` is removed and every one of `new` added, which is still a correct update.
pub fn sort_update(old: &[u32], new: &[u32]) -> SortUpdate {
    let in_old: HashSet<u32> = old.iter().copied().collect();
    let in_new: HashSet<u32> = new.iter().copied().collect();
    let kept_old = old.iter().filter(|u| in_new.contains(u));
    let kept_new = new.iter().filter(|u| in_old.contains(u));
    let replace_all = !kept_old.eq(kept_new);
    let mut removed: Vec<(u32, u32)> = positions(old).filter(|(_, u)| replace_all || !in_new.contains(u)).collect();
    removed.reverse();
    let added = positions(new).filter(|(_, u)| replace_all || !in_old.contains(u)).collect();
    SortUpdate { removed, added }
}

fn positions(list: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    list.iter().enumerate().map(|(i, &u)| (i as u32 + 1, u))
}

/// ADDTO's data: `position set` pairs, a run of consecutive positions holding consecutive
/// identifiers written as one range (`1 2731:2732` puts 2731 at 1 and 2732 at 2, RFC 5267
/// §4.3.3's example).
pub fn added_pairs(added: &[(u32, u32)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < added.len() {
        let (pos, first) = added[i];
        let mut last = first;
        while i + 1 < added.len() && added[i + 1] == (pos + (last - first) + 1, last.wrapping_add(1)) {
            i += 1;
            last = added[i].1;
        }
        out.push(if first == last { format!("{pos} {first}") } else { format!("{pos} {first}:{last}") });
        i += 1;
    }
    out.join(" ")
}

/// REMOVEFROM's data: one `position identifier` pair a message, in the order given.
pub fn removed_pairs(removed: &[(u32, u32)]) -> String {
    removed.iter().map(|(p, u)| format!("{p} {u}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies an update as RFC 5267 §4.3.2 has a client do it.
    fn apply(list: &[u32], u: &SortUpdate) -> Vec<u32> {
        let mut list = list.to_vec();
        for &(p, id) in &u.removed {
            assert_eq!(list[p as usize - 1], id, "REMOVEFROM names the message at its position");
            list.remove(p as usize - 1);
        }
        for &(p, id) in &u.added {
            list.insert(p as usize - 1, id);
        }
        list
    }

    #[test]
    fn updates_rebuild_the_new_order() {
        let cases: [(&[u32], &[u32]); 6] = [
            (&[], &[3, 1, 2]),
            (&[3, 1, 2], &[]),
            (&[5, 3, 9], &[7, 5, 9, 4]),
            (&[1, 2, 3, 4, 5], &[6, 2, 8, 4, 7]),
            (&[4, 5], &[1, 2, 3, 4, 5, 6]),
            // Order of kept messages changed: a full replacement, still correct.
            (&[1, 2, 3], &[3, 2, 1, 4]),
        ];
        for (old, new) in cases {
            let u = sort_update(old, new);
            assert_eq!(apply(old, &u), new, "{old:?} -> {new:?}: {u:?}");
        }
        assert!(sort_update(&[1, 2], &[1, 2]).is_empty());
    }

    #[test]
    fn pairs_are_written_as_the_rfc_shows() {
        // RFC 5267 §4.3.3: 2734:2735 then ADDTO (1 2733) ADDTO (1 2731:2732) is 2731:2735;
        // the server here sends the same list as final positions.
        let u = sort_update(&[2734, 2735], &[2731, 2732, 2733, 2734, 2735]);
        assert_eq!(added_pairs(&u.added), "1 2731:2733");
        let u = sort_update(&[1, 2, 3, 4], &[2, 4]);
        assert_eq!(removed_pairs(&u.removed), "3 3 1 1");
        assert_eq!(added_pairs(&[(1, 9), (2, 5), (3, 6), (7, 7)]), "1 9 2 5:6 7 7");
    }
}
