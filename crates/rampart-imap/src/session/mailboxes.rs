//! Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (RFC 3501 §6.3.8,
//! RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE, RFC 3348 CHILDREN),
//! LSUB, STATUS, and the QUOTA reads (RFC 9208).

use rampart_store::mail::DELIMITER;
use rampart_store::{MailboxState, StoreError};

use super::{Next, Session, State, store_no};
use crate::parser::{ListArgs, StatusItem};
use crate::response::{line, mailbox as write_mailbox};

/// The special-use attributes a client may give a mailbox (RFC 6154 §2).
const SPECIAL_USES: [&str; 5] = ["\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"];

/// Whether `name` matches a LIST pattern: `*` matches anything, `%` anything but the
/// hierarchy delimiter (RFC 3501 §6.3.8). Dynamic programming, so a pattern of many
/// wildcards costs O(pattern × name), never exponential time.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // row[j]: pattern prefix matches n[..j]
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                let mut reach = false;
                for j in 0..=n.len() {
                    reach = reach || row[j];
                    next[j] = reach;
                    // % cannot cross a delimiter: a delimiter at n[j] stops the run.
                    if pc == '%' && j < n.len() && n[j] == DELIMITER {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 0..n.len() {
                    next[j + 1] = row[j] && n[j] == c;
                }
            }
        }
        row = next;
    }
    row[n.len()]
}

/// INBOX in any case names INBOX, also as the first level of a pattern.
fn canonical_pattern(reference: &str, pattern: &str) -> String {
    let full = format!("{reference}{pattern}");
    if full.len() >= 5 && full[..5].eq_ignore_ascii_case("INBOX") && (full.len() == 5 || full[5..].starts_with(DELIMITER)) {
        return format!("INBOX{}", &full[5..]);
    }
    full
}

fn has_children(all: &[MailboxState], name: &str) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    all.iter().any(|m| m.name.starts_with(&prefix))
}

impl Session {
    fn account(&self) -> rampart_store::AccountId {
        self.user().map_or(0, |u| u.id)
    }

    pub(super) async fn create(&mut self, out: &mut Vec<u8>, tag: &str, name: &str, uses: Vec<String>) -> Result<Next, StoreError> {
        if name.eq_ignore_ascii_case("INBOX") {
            line(out, &format!("{tag} NO [ALREADYEXISTS] INBOX always exists"));
            return Ok(Next::Continue);
        }
        if name.contains(['%', '*']) || name.chars().any(char::is_control) {
            // The LIST wildcards could never be listed by name.
            line(out, &format!("{tag} NO [CANNOT] Mailbox names may not contain % or *"));
            return Ok(Next::Continue);
        }
        let mut special = Vec::new();
        for u in &uses {
            match SPECIAL_USES.iter().find(|s| s.eq_ignore_ascii_case(u)) {
                Some(s) => special.push(*s),
                None => {
                    line(out, &format!("{tag} NO [USEATTR] {u} is not a special use this server knows"));
                    return Ok(Next::Continue);
                }
            }
        }
        let special = (!special.is_empty()).then(|| special.join(" "));
        match self.services.store.create_mailbox(self.account(), name, special.as_deref()).await {
            Ok(_) => self.done(out, tag, "CREATE completed").await,
            Err(e) => self.refuse(out, tag, e).await,
        }
    }

    /// A store error as a tagged NO when the client can act on it.
    pub(super) async fn refuse(&mut self, out: &mut Vec<u8>, tag: &str, e: StoreError) -> Result<Next, StoreError> {
        match store_no(tag, &e) {
            Some(text) => {
                self.sync(out, true).await?;
                line(out, &text);
                Ok(Next::Continue)
            }
            None => Err(e),
        }
    }

    pub(super) async fn delete(&mut self, out: &mut Vec<u8>, tag: &str, name: &str) -> Result<Next, StoreError> {
        if let State::Selected(_, view) = &self.state
            && view.name == name {
                // The selected mailbox goes away; RFC 3501 leaves the session's view
                // undefined, so go back to the authenticated state first.
                self.deselect();
            }
        match self.services.store.delete_mailbox(self.account(), name).await {
            Ok(()) => self.done(out, tag, "DELETE completed").await,
            Err(e) => self.refuse(out, tag, e).await,
        }
    }

    pub(super) fn deselect(&mut self) {
        // RFC 5267 §4.2: search contexts end with their mailbox.
        self.contexts.clear();
        if let State::Selected(user, _) = std::mem::replace(&mut self.state, State::Logout) {
            self.state = State::Authenticated(user);
        }
    }

    pub(super) async fn rename(&mut self, out: &mut Vec<u8>, tag: &str, from: &str, to: &str) -> Result<Next, StoreError> {
        match self.services.store.rename_mailbox(self.account(), from, to).await {
            Ok(()) => {
                if let State::Selected(_, view) = &mut self.state
                    && view.name == from && from != "INBOX" {
                        view.name = to.to_string();
                    }
                self.done(out, tag, "RENAME completed").await
            }
            Err(e) => self.refuse(out, tag, e).await,
        }
    }

    pub(super) async fn subscribe(&mut self, out: &mut Vec<u8>, tag: &str, name: &str, on: bool) -> Result<Next, StoreError> {
        match self.services.store.set_subscribed(self.account(), name, on).await {
            Ok(()) => self.done(out, tag, if on { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }).await,
            // Unsubscribing from a name that is gone succeeds: the client wanted it gone.
            Err(StoreError::NotFound(_)) if !on => self.done(out, tag, "UNSUBSCRIBE completed").await,
            Err(e) => self.refuse(out, tag, e).await,
        }
    }

    pub(super) async fn list(&mut self, out: &mut Vec<u8>, tag: &str, args: ListArgs) -> Result<Next, StoreError> {
        if args.patterns.len() == 1 && args.patterns[0].is_empty() && !args.extended {
            // RFC 3501 §6.3.8: an empty pattern asks for the delimiter and root.
            line(out, &format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\""));
            return self.done(out, tag, "LIST completed").await;
        }
        let all = self.services.store.mailbox_states(self.account()).await?;
        let subscriptions = if args.select_subscribed { self.services.store.subscriptions(self.account()).await? } else { Vec::new() };
        let patterns: Vec<String> = args.patterns.iter().map(|p| canonical_pattern(&args.reference, p)).collect();
        let matched = |name: &str| patterns.iter().any(|p| matches(p, name));
        // (name, existing mailbox, CHILDINFO)
        let mut listed: Vec<(&str, Option<&MailboxState>, Option<&str>)> = Vec::new();
        for m in &all {
            let selected_ok = (!args.select_subscribed || m.subscribed) && (!args.select_special_use || m.special_use.is_some());
            if matched(&m.name) && selected_ok {
                listed.push((&m.name, Some(m), None));
            } else if args.recursive_match && matched(&m.name) && args.select_subscribed {
                // RFC 5258 §3.5: a parent gets CHILDINFO when it has subscribed descendants
                // that are not returned themselves (they do not match the patterns).
                let prefix = format!("{}{DELIMITER}", m.name);
                if subscriptions.iter().any(|c| c.starts_with(&prefix) && !matched(c)) {
                    listed.push((&m.name, Some(m), Some("SUBSCRIBED")));
                }
            }
        }
        if args.select_subscribed && !args.select_special_use {
            // RFC 5258 §3.1, §5: subscribed names whose mailbox is gone are still listed.
            for name in subscriptions.iter().filter(|n| matched(n) && !all.iter().any(|m| &m.name == *n)) {
                listed.push((name, None, None));
            }
            listed.sort_by(|a, b| a.0.cmp(b.0));
        }
        for (name, m, childinfo) in listed {
            let mut attrs: Vec<&str> = Vec::new();
            if m.is_none() {
                attrs.push("\\NonExistent");
            }
            attrs.push(if has_children(&all, name) { "\\HasChildren" } else { "\\HasNoChildren" });
            if (args.return_subscribed || args.select_subscribed) && (m.is_none() || m.is_some_and(|m| m.subscribed)) {
                attrs.push("\\Subscribed");
            }
            if let Some(u) = m.and_then(|m| m.special_use.as_deref()) {
                attrs.extend(u.split(' '));
            }
            let mut o = format!("* LIST ({}) \"{DELIMITER}\" ", attrs.join(" ")).into_bytes();
            write_mailbox(&mut o, &self.wire_name(name));
            if let Some(info) = childinfo {
                o.extend_from_slice(format!(" (\"CHILDINFO\" (\"{info}\"))").as_bytes());
            }
            o.extend_from_slice(b"\r\n");
            out.extend_from_slice(&o);
            if let (Some(items), Some(m)) = (&args.return_status, m) {
                self.write_status(out, m, items).await?;
            }
        }
        self.done(out, tag, "LIST completed").await
    }

    pub(super) async fn lsub(&mut self, out: &mut Vec<u8>, tag: &str, reference: &str, pattern: &str) -> Result<Next, StoreError> {
        if pattern.is_empty() {
            line(out, &format!("* LSUB (\\Noselect) \"{DELIMITER}\" \"\""));
            return self.done(out, tag, "LSUB completed").await;
        }
        let pattern = canonical_pattern(reference, pattern);
        let subscribed = self.services.store.subscriptions(self.account()).await?;
        let mut names: Vec<(String, bool)> = Vec::new();
        for name in &subscribed {
            if matches(&pattern, name) {
                names.push((name.clone(), false));
                continue;
            }
            // RFC 3501 §6.3.9: when `%` stops short of a subscribed name, the level it does
            // match is returned, as \Noselect unless it is subscribed itself.
            let mut end = 0;
            while let Some(i) = name[end..].find(DELIMITER) {
                let parent = &name[..end + i];
                if matches(&pattern, parent) && !subscribed.iter().any(|s| s == parent) {
                    names.push((parent.to_string(), true));
                }
                end += i + DELIMITER.len_utf8();
            }
        }
        names.sort();
        names.dedup();
        for (name, noselect) in names {
            let mut o = format!("* LSUB ({}) \"{DELIMITER}\" ", if noselect { "\\Noselect" } else { "" }).into_bytes();
            write_mailbox(&mut o, &self.wire_name(&name));
            o.extend_from_slice(b"\r\n");
            out.extend_from_slice(&o);
        }
        self.done(out, tag, "LSUB completed").await
    }

    pub(super) async fn status(&mut self, out: &mut Vec<u8>, tag: &str, name: &str, items: &[StatusItem]) -> Result<Next, StoreError> {
        let Some(m) = self.services.store.mailbox_state(self.account(), name).await? else {
            line(out, &format!("{tag} NO [NONEXISTENT] No such mailbox"));
            return Ok(Next::Continue);
        };
        self.write_status(out, &m, items).await?;
        self.done(out, tag, "STATUS completed").await
    }

    async fn write_status(&mut self, out: &mut Vec<u8>, m: &MailboxState, items: &[StatusItem]) -> Result<(), StoreError> {
        if items.contains(&StatusItem::HighestModSeq) {
            // RFC 7162 §3.1: STATUS HIGHESTMODSEQ enables CONDSTORE.
            self.condstore = true;
        }
        let (messages, unseen, recent, size) = self.services.store.mailbox_counts(m.id).await?;
        let deleted = if items.contains(&StatusItem::Deleted) {
            let (_, records) = self.services.store.snapshot(m.id).await?;
            records.iter().filter(|r| r.flags.split(' ').any(|f| f.eq_ignore_ascii_case("\\Deleted"))).count()
        } else {
            0
        };
        let mut o = b"* STATUS ".to_vec();
        write_mailbox(&mut o, &self.wire_name(&m.name));
        let values: Vec<String> = items
            .iter()
            .map(|i| match i {
                StatusItem::Messages => format!("MESSAGES {messages}"),
                StatusItem::Recent => format!("RECENT {recent}"),
                StatusItem::UidNext => format!("UIDNEXT {}", m.uidnext),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", m.uidvalidity),
                StatusItem::Unseen => format!("UNSEEN {unseen}"),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", m.highestmodseq),
                StatusItem::Size => format!("SIZE {size}"),
                StatusItem::AppendLimit => format!("APPENDLIMIT {}", self.settings.max_append_size),
                StatusItem::Deleted => format!("DELETED {deleted}"),
            })
            .collect();
        o.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        out.extend_from_slice(&o);
        Ok(())
    }

    /// `* QUOTA "" (STORAGE used limit)` in KiB (RFC 9208 §5.1). Without a configured limit
    /// the largest number64 stands for "unlimited", so usage is still reported.
    async fn write_quota(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let (bytes, _) = self.services.store.usage(self.account()).await?;
        let limit = match self.settings.quota_storage {
            0 => i64::MAX as u64,
            n => n / 1024,
        };
        line(out, &format!("* QUOTA \"\" (STORAGE {} {limit})", bytes.div_ceil(1024)));
        Ok(())
    }

    pub(super) async fn quota_root(&mut self, out: &mut Vec<u8>, tag: &str, name: &str) -> Result<Next, StoreError> {
        if self.services.store.mailbox_state(self.account(), name).await?.is_none() {
            line(out, &format!("{tag} NO [NONEXISTENT] No such mailbox"));
            return Ok(Next::Continue);
        }
        let mut o = b"* QUOTAROOT ".to_vec();
        write_mailbox(&mut o, &self.wire_name(name));
        o.extend_from_slice(b" \"\"\r\n");
        out.extend_from_slice(&o);
        self.write_quota(out).await?;
        self.done(out, tag, "GETQUOTAROOT completed").await
    }

    pub(super) async fn quota(&mut self, out: &mut Vec<u8>, tag: &str, root: &str) -> Result<Next, StoreError> {
        if !root.is_empty() {
            line(out, &format!("{tag} NO [NONEXISTENT] No such quota root"));
            return Ok(Next::Continue);
        }
        self.write_quota(out).await?;
        self.done(out, tag, "GETQUOTA completed").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "INBOX"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a*c", "a/b/c"));
        assert!(matches("%/%", "a/b"));
        assert!(!matches("b", "a"));
        let long = "%".repeat(200) + "x";
        assert!(!matches(&long, &"a".repeat(200)));
        assert_eq!(canonical_pattern("", "inbox/%"), "INBOX/%");
        assert_eq!(canonical_pattern("Work/", "%"), "Work/%");
    }
}
