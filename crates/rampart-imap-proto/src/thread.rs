//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §2.2, the THREAD part), as pure
//! functions over small per-message keys, and the `* THREAD` answer (§4).
//!
//! The threads are kept in an arena of containers (a message, or a dummy standing for a
//! message that is referenced but not among the searched ones) linked by index. Every walk
//! over them is iterative, so a reply chain of any length cannot exhaust the stack.

use std::collections::HashMap;

use crate::facts::{Facts, TextKey};

/// Base subjects are compared on this many octets at most (as SORT's string keys).
pub const MAX_SUBJECT: usize = crate::sort::MAX_KEY;
/// The nearest ancestors a message's References may name; older ones are dropped.
pub const MAX_REFS: usize = 100;

/// A Message-ID as THREAD keeps it: 128 bits of hash, so a message's references cost 16
/// octets each whatever their length. Comparison stays case-sensitive (§2.2 step 1.A).
pub type Id = u128;

/// XXH3-128, whose output is specified: the hashes are stored with a message ([`Facts`]), so
/// they must not change with the compiler (as std's `DefaultHasher` may).
pub fn id_key(id: &str) -> Id {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// What THREAD keeps of one searched message.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub seq: u32,
    pub uid: u32,
    /// The sent date (RFC 5256 §2.2): the Date header in UTC, INTERNALDATE without a valid one.
    pub date: i64,
    /// The base subject, mapped by i;ascii-casemap (and capped, as SORT's keys).
    pub subject: Vec<u8>,
    /// Whether the base subject extraction removed a reply or forward marker (step 5).
    pub reply: bool,
    /// The first valid Message-ID; None gives the message a unique one.
    pub id: Option<Id>,
    /// References (or In-Reply-To), oldest first.
    pub refs: Vec<Id>,
}

impl Msg {
    /// What THREAD keeps of a searched message, from its facts (parsed or stored).
    /// `with_ids`: REFERENCES needs the Message-ID and references, ORDEREDSUBJECT does not.
    pub fn new(seq: u32, uid: u32, internal_date: i64, facts: &Facts<'_>, with_ids: bool) -> Msg {
        let (id, refs) = if with_ids { facts.thread_ids() } else { (None, Vec::new()) };
        Msg {
            seq,
            uid,
            // RFC 5256 §2.2: the Date header in UTC; INTERNALDATE without a valid one.
            date: facts.sent_time().unwrap_or(internal_date),
            // The base subject, mapped and capped as SORT's (MAX_SUBJECT).
            subject: facts.text(TextKey::Subject).into_owned(),
            reply: facts.reply(),
            id,
            refs,
        }
    }

    fn key(&self) -> (i64, u32) {
        (self.date, self.seq)
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Index into the messages; None for a dummy.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// Threads: the arena and the top-level containers, in answer order.
#[derive(Debug, Default)]
pub struct Threads {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

impl Threads {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node { msg, ..Node::default() });
        self.nodes.len() - 1
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    /// Whether making `parent` the parent of `child` would close a loop: `parent` is `child`
    /// or one of its descendants.
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        // Without children `child` has no descendants: the common case costs no walk.
        if parent == child || self.nodes[child].children.is_empty() {
            return parent == child;
        }
        let mut at = Some(parent);
        while let Some(n) = at {
            if n == child {
                return true;
            }
            at = self.nodes[n].parent;
        }
        false
    }

    fn is_dummy(&self, n: usize) -> bool {
        self.nodes[n].msg.is_none()
    }

    /// The sort key of a container: its message's (sent date, sequence number); a dummy's is
    /// that of its first child in date order (§2.2 steps 4 and 6).
    fn key(&self, msgs: &[Msg], n: usize) -> (i64, u32) {
        match self.nodes[n].msg {
            Some(m) => msgs[m].key(),
            None => self.nodes[n].children.iter().filter_map(|&c| self.nodes[c].msg).map(|m| msgs[m].key()).min().unwrap_or((i64::MAX, u32::MAX)),
        }
    }

    fn sort_children(&mut self, msgs: &[Msg], n: usize) {
        let mut children = std::mem::take(&mut self.nodes[n].children);
        children.sort_by_cached_key(|&c| self.key(msgs, c));
        self.nodes[n].children = children;
    }

    fn sort_roots(&mut self, msgs: &[Msg]) {
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_cached_key(|&c| self.key(msgs, c));
        self.roots = roots;
    }

    /// The message that gives a top-level container its subject: itself, or a dummy's first child.
    fn subject_msg(&self, n: usize) -> Option<usize> {
        match self.nodes[n].msg {
            Some(m) => Some(m),
            None => self.nodes[n].children.first().and_then(|&c| self.nodes[c].msg),
        }
    }

    /// The thread-list of §4 for every thread: `(` thread-members / thread-nested `)`, numbers
    /// being UIDs or sequence numbers.
    pub fn write(&self, msgs: &[Msg], uid: bool, out: &mut String) {
        enum Op {
            Text(&'static str),
            Node(usize),
        }
        let mut stack = Vec::new();
        for &r in self.roots.iter().rev() {
            stack.extend([Op::Text(")"), Op::Node(r), Op::Text("(")]);
        }
        while let Some(op) = stack.pop() {
            let n = match op {
                Op::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Op::Node(n) => n,
            };
            let node = &self.nodes[n];
            if let Some(m) = node.msg {
                let m = &msgs[m];
                out.push_str(&if uid { m.uid } else { m.seq }.to_string());
            }
            match node.children.as_slice() {
                [] => {}
                // One child continues the thread-members: "1 2 3".
                [only] => {
                    stack.push(Op::Node(*only));
                    if node.msg.is_some() {
                        stack.push(Op::Text(" "));
                    }
                }
                // Several: thread-nested, one thread-list each: "1 (2)(3 4)".
                children => {
                    for &c in children.iter().rev() {
                        stack.extend([Op::Text(")"), Op::Node(c), Op::Text("(")]);
                    }
                    if node.msg.is_some() {
                        stack.push(Op::Text(" "));
                    }
                }
            }
        }
    }
}

/// THREAD=ORDEREDSUBJECT (§2.2): the messages sorted by base subject, then sent date (then
/// sequence number); each run of one base subject is a thread whose first message is the
/// parent of all the others; threads in order of their first message's sent date.
pub fn ordered_subject(msgs: &[Msg]) -> Threads {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| msgs[a].subject.cmp(&msgs[b].subject).then(msgs[a].key().cmp(&msgs[b].key())));
    let mut t = Threads::default();
    let mut current: Option<usize> = None;
    for i in order {
        let n = t.add(Some(i));
        match current {
            Some(root) if msgs[t.nodes[root].msg.unwrap_or(0)].subject == msgs[i].subject => t.link(root, n),
            _ => {
                t.roots.push(n);
                current = Some(n);
            }
        }
    }
    t.sort_roots(msgs);
    t
}

/// THREAD=REFERENCES (§2.2 steps 1–6). `msgs` are the searched messages in sequence order.
pub fn references(msgs: &[Msg]) -> Threads {
    let mut t = Threads::default();
    t.link_references(msgs);
    // (2) The containers without a parent are the root set.
    t.roots = (0..t.nodes.len()).filter(|&n| t.nodes[n].parent.is_none()).collect();
    t.prune_dummies();
    // (4) Sort the root set by sent date (a dummy by its first child, its children sorted).
    for i in 0..t.roots.len() {
        let r = t.roots[i];
        if t.is_dummy(r) {
            t.sort_children(msgs, r);
        }
    }
    t.sort_roots(msgs);
    t.gather_subjects(msgs);
    // (6) Every set of siblings by sent date: below the root first, then the root set.
    for n in 0..t.nodes.len() {
        if t.nodes[n].children.len() > 1 {
            t.sort_children(msgs, n);
        }
    }
    t.sort_roots(msgs);
    t
}

/// The steps of THREAD=REFERENCES, in the order [`references`] runs them.
impl Threads {
    /// (1) Every message in its container, linked below the containers of its references.
    fn link_references(&mut self, msgs: &[Msg]) {
        let mut by_id: HashMap<Id, usize> = HashMap::new();
        let mut refs: Vec<usize> = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let me = self.own_container(&mut by_id, m.id, i);
            // Each reference's container, a dummy when no message has that id (yet).
            refs.clear();
            refs.extend(m.refs.iter().map(|&r| *by_id.entry(r).or_insert_with(|| self.add(None))));
            // Each reference the parent of the next, unless the next has a parent already or
            // the link would close a loop.
            for pair in refs.windows(2) {
                let (parent, child) = (pair[0], pair[1]);
                if self.nodes[child].parent.is_none() && !self.would_loop(parent, child) {
                    self.link(parent, child);
                }
            }
            // (1.B) The last reference is the parent of the message (an existing parent is
            // replaced); none when the message has no references, or when it would be a loop.
            self.unlink(me);
            if let Some(&last) = refs.last()
                && !self.would_loop(last, me)
            {
                self.link(last, me);
            }
        }
    }

    /// (1.A) The container of message `i`: a dummy its id already has is filled; an id a
    /// lower-numbered message already uses, or no valid id, gets a unique container.
    fn own_container(&mut self, by_id: &mut HashMap<Id, usize>, id: Option<Id>, i: usize) -> usize {
        let Some(id) = id else { return self.add(Some(i)) };
        match by_id.get(&id) {
            Some(&n) if self.nodes[n].msg.is_none() => {
                self.nodes[n].msg = Some(i);
                n
            }
            Some(_) => self.add(Some(i)),
            None => {
                let n = self.add(Some(i));
                by_id.insert(id, n);
                n
            }
        }
    }

    /// (3) Prunes dummies, children before their parents (post-order, iteratively): below
    /// the root a dummy is replaced by its children (none: removed); in the root set only a
    /// dummy with one child is.
    fn prune_dummies(&mut self) {
        for n in self.post_order() {
            let children = std::mem::take(&mut self.nodes[n].children);
            let mut kept = Vec::with_capacity(children.len());
            for c in children {
                if self.is_dummy(c) {
                    let grand = std::mem::take(&mut self.nodes[c].children);
                    for &g in &grand {
                        self.nodes[g].parent = Some(n);
                    }
                    kept.extend(grand);
                } else {
                    kept.push(c);
                }
            }
            self.nodes[n].children = kept;
        }
        let roots = std::mem::take(&mut self.roots);
        for r in roots {
            if !self.is_dummy(r) {
                self.roots.push(r);
                continue;
            }
            match self.nodes[r].children.len() {
                0 => {}
                1 => {
                    let c = self.nodes[r].children[0];
                    self.nodes[c].parent = None;
                    self.roots.push(c);
                }
                _ => self.roots.push(r),
            }
        }
    }

    /// Every container below the root set, children before their parents.
    fn post_order(&self) -> Vec<usize> {
        let mut post = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<(usize, bool)> = self.roots.iter().rev().map(|&r| (r, false)).collect();
        while let Some((n, done)) = stack.pop() {
            if done {
                post.push(n);
            } else {
                stack.push((n, true));
                stack.extend(self.nodes[n].children.iter().rev().map(|&c| (c, false)));
            }
        }
        post
    }

    /// (5) Gathers the threads whose subjects have the same base subject.
    fn gather_subjects(&mut self, msgs: &[Msg]) {
        let table = self.subject_table(msgs);
        self.merge_subjects(msgs, table);
    }

    /// The base subject of a top-level container; None when it is empty (never merged).
    fn base_subject<'m>(&self, msgs: &'m [Msg], n: usize) -> Option<&'m [u8]> {
        self.subject_msg(n).map(|m| msgs[m].subject.as_slice()).filter(|s| !s.is_empty())
    }

    fn is_reply(&self, msgs: &[Msg], n: usize) -> bool {
        self.nodes[n].msg.is_some_and(|m| msgs[m].reply)
    }

    /// (5.B) One container per base subject: a dummy if there is one, else a message that is
    /// not a reply or forward if there is one, else the first.
    fn subject_table<'m>(&self, msgs: &'m [Msg]) -> HashMap<&'m [u8], usize> {
        let mut table: HashMap<&[u8], usize> = HashMap::new();
        for &r in &self.roots {
            let Some(s) = self.base_subject(msgs, r) else { continue };
            match table.get(s) {
                None => {
                    table.insert(s, r);
                }
                Some(&held) => {
                    if !self.is_dummy(held) && (self.is_dummy(r) || (self.is_reply(msgs, held) && !self.is_reply(msgs, r))) {
                        table.insert(s, r);
                    }
                }
            }
        }
        table
    }

    /// (5.C) Merges every other thread of a base subject into the table's.
    fn merge_subjects<'m>(&mut self, msgs: &'m [Msg], mut table: HashMap<&'m [u8], usize>) {
        const GONE: usize = usize::MAX;
        let mut pos: HashMap<usize, usize> = self.roots.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        for i in 0..self.roots.len() {
            let r = self.roots[i];
            if r == GONE {
                continue;
            }
            let Some(s) = self.base_subject(msgs, r) else { continue };
            let Some(&held) = table.get(s) else { continue };
            if held == r {
                continue;
            }
            if self.is_dummy(held) && self.is_dummy(r) {
                let children = std::mem::take(&mut self.nodes[r].children);
                for c in children {
                    self.link(held, c);
                }
            } else if self.is_dummy(held) || (self.is_reply(msgs, r) && !self.is_reply(msgs, held)) {
                self.link(held, r);
            } else {
                let dummy = self.add(None);
                let at = pos[&held];
                self.roots[at] = dummy;
                pos.insert(dummy, at);
                self.link(dummy, held);
                self.link(dummy, r);
                table.insert(s, dummy);
            }
            self.roots[i] = GONE;
        }
        self.roots.retain(|&r| r != GONE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message: sequence number (UID = 10 × it), sent date, subject, Message-ID, references.
    fn m(seq: u32, date: i64, subject: &str, id: Option<&str>, refs: &[&str]) -> Msg {
        let (base, reply) = crate::subject::base_subject_reply(subject);
        Msg {
            seq,
            uid: seq * 10,
            date,
            subject: crate::subject::ascii_casemap(&base),
            reply,
            id: id.map(id_key),
            refs: refs.iter().map(|r| id_key(r)).collect(),
        }
    }

    fn refs(msgs: &[Msg]) -> String {
        let mut s = String::new();
        references(msgs).write(msgs, false, &mut s);
        s
    }

    #[test]
    fn a_reply_chain_with_a_branch() {
        let msgs = [
            m(1, 100, "topic", Some("a@x"), &[]),
            m(2, 200, "Re: topic", Some("b@x"), &["a@x"]),
            m(3, 300, "Re: topic", Some("c@x"), &["a@x", "b@x"]),
            m(4, 250, "Re: topic", Some("d@x"), &["a@x"]),
            m(5, 50, "other", Some("e@x"), &[]),
        ];
        // 1's children 2 (200) and 4 (250) by date; 3 continues 2.
        assert_eq!(refs(&msgs), "(5)(1 (2 3)(4))");
        let mut s = String::new();
        references(&msgs).write(&msgs, true, &mut s);
        assert_eq!(s, "(50)(10 (20 30)(40))");
    }

    #[test]
    fn missing_parents_become_dummies_and_are_pruned() {
        // 2 and 3 both answer the missing a@x: a dummy with two children stays at the top.
        let msgs = [
            m(1, 100, "x", Some("z@x"), &[]),
            m(2, 300, "Re: lost", Some("b@x"), &["a@x"]),
            m(3, 200, "Re: lost", Some("c@x"), &["a@x"]),
        ];
        assert_eq!(refs(&msgs), "(1)((3)(2))");
        // One child of a missing root: the dummy gives way to it. A missing middle message
        // is spliced out below the root.
        let msgs = [
            m(1, 100, "t", Some("a@x"), &[]),
            m(2, 200, "Re: t", Some("c@x"), &["a@x", "b@x"]),
            m(3, 300, "u", Some("e@x"), &["d@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 2)(3)");
    }

    #[test]
    fn loops_in_references_are_not_followed() {
        // 1 says it answers 2, 2 says it answers 1: the second link would close a loop.
        let msgs = [m(1, 100, "p", Some("a@x"), &["b@x"]), m(2, 200, "q", Some("b@x"), &["a@x"])];
        assert_eq!(refs(&msgs), "(2 1)");
        // A message referring to itself, and References naming the same id twice in a row.
        let msgs = [m(1, 100, "p", Some("a@x"), &["a@x"]), m(2, 200, "q", Some("b@x"), &["a@x", "a@x", "a@x"])];
        assert_eq!(refs(&msgs), "(1 2)");
        // A loop through three messages.
        let msgs = [
            m(1, 100, "p", Some("a@x"), &["c@x", "b@x"]),
            m(2, 200, "q", Some("b@x"), &["a@x", "c@x"]),
            m(3, 300, "r", Some("c@x"), &["b@x", "a@x"]),
        ];
        let s = refs(&msgs);
        assert_eq!(s.matches('(').count(), s.matches(')').count(), "{s}");
        for n in ["1", "2", "3"] {
            assert_eq!(s.matches(n).count(), 1, "{s}");
        }
    }

    #[test]
    fn duplicate_message_ids_count_for_the_first_message_only() {
        let msgs = [
            m(1, 100, "a", Some("d@x"), &[]),
            m(2, 200, "b", Some("d@x"), &[]),
            m(3, 300, "Re: a", Some("r@x"), &["d@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 3)(2)");
        // Without a Message-ID each message stands alone.
        let msgs = [m(1, 100, "a", None, &[]), m(2, 200, "b", None, &[])];
        assert_eq!(refs(&msgs), "(1)(2)");
    }

    #[test]
    fn the_last_reference_replaces_a_parent_from_truncated_references() {
        // 3 made b@x a child of a@x; 2 itself says its parent is z@x (a message here).
        let msgs = [
            m(1, 100, "z", Some("z@x"), &[]),
            m(2, 200, "y", Some("b@x"), &["z@x"]),
            m(3, 300, "w", Some("c@x"), &["a@x", "b@x"]),
        ];
        // 2 came first: its parent z stays, a@x (dummy) gets no child and is pruned.
        assert_eq!(refs(&msgs), "(1 2 3)");
        let msgs = [
            m(1, 100, "z", Some("z@x"), &[]),
            m(2, 300, "w", Some("c@x"), &["a@x", "b@x"]),
            m(3, 200, "y", Some("b@x"), &["z@x"]),
        ];
        // 3 comes last and moves itself from the dummy a@x to z.
        assert_eq!(refs(&msgs), "(1 3 2)");
        // A message without references loses the parent another message's References gave it.
        let msgs = [
            m(1, 100, "p", Some("a@x"), &[]),
            m(2, 300, "q", Some("c@x"), &["a@x", "b@x"]),
            m(3, 200, "r", Some("b@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "(1)(3 2)");
    }

    #[test]
    fn roots_with_the_same_base_subject_are_merged() {
        // Two unrelated "hello"s: neither a reply, so a dummy holds both.
        let msgs = [m(1, 100, "hello", Some("a@x"), &[]), m(2, 200, "[list] hello", Some("b@x"), &[])];
        assert_eq!(refs(&msgs), "((1)(2))");
        // A "Re:" without references joins the thread of the original as its child.
        let msgs = [
            m(1, 300, "Re: hello", Some("c@x"), &[]),
            m(2, 100, "hello", Some("a@x"), &[]),
            m(3, 200, "other", Some("b@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "(2 1)(3)");
        // Only replies: a dummy holds them.
        let msgs = [m(1, 100, "Re: hi", Some("a@x"), &[]), m(2, 200, "Fwd: hi", Some("b@x"), &[])];
        assert_eq!(refs(&msgs), "((1)(2))");
        // A dummy root (two answers to a missing message) takes the other thread in.
        let msgs = [
            m(1, 100, "Re: lost", Some("b@x"), &["a@x"]),
            m(2, 200, "Re: lost", Some("c@x"), &["a@x"]),
            m(3, 150, "lost", Some("d@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "((1)(3)(2))");
        // Two dummies of one subject become one.
        let msgs = [
            m(1, 100, "Re: s", Some("b@x"), &["a@x"]),
            m(2, 200, "Re: s", Some("c@x"), &["a@x"]),
            m(3, 150, "Re: s", Some("e@x"), &["d@x"]),
            m(4, 250, "Re: s", Some("f@x"), &["d@x"]),
        ];
        assert_eq!(refs(&msgs), "((1)(3)(2)(4))");
        // Empty base subjects are never merged.
        let msgs = [m(1, 100, "", Some("a@x"), &[]), m(2, 200, "Re:", Some("b@x"), &[])];
        assert_eq!(refs(&msgs), "(1)(2)");
    }

    #[test]
    fn siblings_by_sent_date_then_sequence_number() {
        let msgs = [
            m(1, 500, "r", Some("a@x"), &[]),
            m(2, 300, "c", Some("b@x"), &["a@x"]),
            m(3, 100, "c", Some("c@x"), &["a@x"]),
            m(4, 300, "c", Some("d@x"), &["a@x"]),
            m(5, 200, "s", Some("e@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "(5)(1 (3)(2)(4))");
    }

    #[test]
    fn ordered_subject_threads() {
        let msgs = [
            m(1, 300, "beta", None, &[]),
            m(2, 100, "Re: alpha", None, &[]),
            m(3, 200, "ALPHA", None, &[]),
            m(4, 50, "Re: beta", None, &[]),
            m(5, 400, "alpha", None, &[]),
            m(6, 60, "gamma", None, &[]),
        ];
        let mut s = String::new();
        ordered_subject(&msgs).write(&msgs, false, &mut s);
        // alpha: 2 (100), 3, 5; beta: 4 (50), 1; gamma: 6 (60). Threads by their first date.
        assert_eq!(s, "(4 1)(6)(2 (3)(5))");
        let mut s = String::new();
        ordered_subject(&[]).write(&[], false, &mut s);
        assert_eq!(s, "");
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i}@x")).collect();
        let msgs: Vec<Msg> = (0..20_000usize)
            .map(|i| {
                let refs: Vec<&str> = ids[i.saturating_sub(3)..i].iter().map(String::as_str).collect();
                m(i as u32 + 1, i as i64, "Re: chain", Some(&ids[i]), &refs)
            })
            .collect();
        let s = refs(&msgs);
        assert!(s.starts_with("(1 2 3 ") && s.ends_with(" 20000)"), "{}", &s[..40]);
    }
}
