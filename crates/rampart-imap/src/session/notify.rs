//! NOTIFY (RFC 5465): a client watching several mailboxes hears, without selecting them,
//! `* STATUS` when messages arrive or go (MessageNew/MessageExpunge) or flags change
//! (FlagChange), `* LIST` when a mailbox is created, deleted or renamed (MailboxName) or its
//! subscription changes (SubscriptionChange), `* METADATA` when an annotation of a watched
//! mailbox or of the server changes (MailboxMetadataChange, ServerMetadataChange), and the
//! FETCH attributes `selected` MessageNew names for each new message of the selected mailbox.
//!
//! After every sync point (each command's end and each wake-up in IDLE) the session compares
//! the user's mailboxes (one query) with what it last told the client and writes the
//! differences; while idling, the driver also wakes on the watched mailboxes' change
//! notifications ([`Session::notify_watches`]). The selected mailbox keeps its usual updates
//! whatever the `selected` group asks. A rename is told as one LIST with the OLDNAME extended
//! data item (the mailbox keeps its id), and a mailbox created and deleted between two checks
//! is not told at all.

use std::collections::{HashMap, HashSet};

use rampart_store::mail::DELIMITER;
use rampart_store::{MailboxId, MailboxState, StoreError};
use tokio::sync::watch;

use super::{Next, Session, State, metadata};
use crate::parser::{FetchAttr, NotifyEvent, NotifyFilter, NotifyGroup};
use crate::response::{line, mailbox as write_mailbox};

/// The events offered, as `NO [BADEVENT (...)]` lists them (RFC 5465 §5.4).
const SUPPORTED: &str = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange";

/// A value's fingerprint, to tell a changed annotation without keeping its value.
fn value_hash(value: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// At most this many watched mailboxes wake an idling session at once; the others are seen
/// at the driver's regular re-check.
const MAX_WATCHES: usize = 64;

/// What the client was last told of one watched mailbox.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Told {
    id: MailboxId,
    uidvalidity: u32,
    uidnext: u32,
    highestmodseq: u64,
    subscribed: bool,
    messages: u32,
    unseen: u32,
    /// UIDVALIDITY went out in an event's STATUS; later ones name it only when it changes
    /// (as Dovecot does; the STATUS at NOTIFY SET does not count).
    validity_told: bool,
}

/// A NOTIFY SET in force.
pub(crate) struct Notify {
    groups: Vec<NotifyGroup>,
    told: HashMap<String, Told>,
    /// What the client knows of the watched annotations: a hash of each value by entry name,
    /// by mailbox id (0 for the server's, as the store keeps them), and the
    /// [`metadata::generation`] they were read at.
    annotations: HashMap<MailboxId, HashMap<String, u64>>,
    annotations_seen: u64,
}

/// Which events a group asks for.
#[derive(Default, Clone, Copy)]
struct Wants {
    messages: bool,
    flags: bool,
    names: bool,
    subscriptions: bool,
    metadata: bool,
}

impl Notify {
    /// The events asked for the mailbox `name`: those of the first group whose filter
    /// matches it (RFC 5465 §6), None when no group does.
    fn wants(&self, name: &str, subscribed: bool) -> Option<Wants> {
        let group = self.groups.iter().find(|g| match &g.filter {
            NotifyFilter::Selected => false,
            NotifyFilter::Inboxes => name == "INBOX",
            NotifyFilter::Personal => true,
            NotifyFilter::Subscribed => subscribed,
            NotifyFilter::Mailboxes(names) => names.iter().any(|n| n == name),
            NotifyFilter::Subtree(names) => names.iter().any(|n| name == n || name.strip_prefix(n.as_str()).is_some_and(|r| r.starts_with(DELIMITER))),
        })?;
        let mut w = Wants::default();
        for e in &group.events {
            match e {
                NotifyEvent::MessageNew(_) | NotifyEvent::MessageExpunge => w.messages = true,
                NotifyEvent::FlagChange => w.flags = true,
                NotifyEvent::MailboxName => w.names = true,
                NotifyEvent::SubscriptionChange => w.subscriptions = true,
                NotifyEvent::MailboxMetadataChange => w.metadata = true,
                NotifyEvent::ServerMetadataChange | NotifyEvent::Unsupported(_) => {}
            }
        }
        Some(w)
    }

    /// Whose annotations the client watches: the server's (id 0) when any group asks
    /// ServerMetadataChange (it names no mailbox), and each known mailbox whose group asks
    /// MailboxMetadataChange, with its name.
    fn annotation_sources(&self) -> Vec<(MailboxId, String)> {
        let server = self.groups.iter().flat_map(|g| &g.events).any(|e| *e == NotifyEvent::ServerMetadataChange);
        let mailboxes = self.told.iter().filter(|(name, t)| self.wants(name, t.subscribed).is_some_and(|w| w.metadata));
        let mut out: Vec<(MailboxId, String)> = mailboxes.map(|(name, t)| (t.id, name.clone())).collect();
        if server {
            out.push((0, String::new()));
        }
        out
    }
}

impl Session {
    /// NOTIFY SET / NONE (RFC 5465 §3).
    pub(super) async fn notify(&mut self, out: &mut Vec<u8>, tag: &str, status: bool, groups: Option<Vec<NotifyGroup>>) -> Result<Next, StoreError> {
        let Some(groups) = groups else {
            self.notify = None;
            return self.done(out, tag, "NOTIFY completed").await;
        };
        if groups.iter().flat_map(|g| &g.events).any(|e| matches!(e, NotifyEvent::Unsupported(_))) {
            line(out, &format!("{tag} NO [BADEVENT ({SUPPORTED})] Unsupported NOTIFY events"));
            return Ok(Next::Continue);
        }
        let mut n = Notify { groups, told: HashMap::new(), annotations: HashMap::new(), annotations_seen: 0 };
        for m in self.notified_mailboxes().await? {
            let Some(w) = n.wants(&m.name, m.subscribed) else { continue };
            let told = self.told(&m).await?;
            if status && w.messages && !self.is_selected(m.id) {
                // RFC 5465 §3: STATUS asks for the watched mailboxes' state at once.
                self.write_notify_status(out, &m.name, &told, true);
            }
            n.told.insert(m.name, told);
        }
        // Read before the annotations, so a change made meanwhile is looked at again.
        n.annotations_seen = metadata::generation();
        for (id, _) in n.annotation_sources() {
            let known = self.annotations(id).await?;
            n.annotations.insert(id, known);
        }
        self.notify = Some(n);
        self.done(out, tag, "NOTIFY completed").await
    }

    /// The user's mailboxes.
    async fn notified_mailboxes(&self) -> Result<Vec<MailboxState>, StoreError> {
        let Some(user) = self.user() else { return Ok(Vec::new()) };
        self.services.store.mailbox_states(user.id).await
    }

    /// The selected mailbox has its usual updates instead of NOTIFY's.
    fn is_selected(&self, id: MailboxId) -> bool {
        matches!(&self.state, State::Selected(_, view) if view.id == id)
    }

    async fn told(&self, m: &MailboxState) -> Result<Told, StoreError> {
        let (messages, unseen, _, _) = self.services.store.mailbox_counts(m.id).await?;
        Ok(Told { id: m.id, uidvalidity: m.uidvalidity, uidnext: m.uidnext, highestmodseq: m.highestmodseq, subscribed: m.subscribed, messages, unseen, validity_told: false })
    }

    /// `* STATUS name (...)`: everything after a message event, UNSEEN (and HIGHESTMODSEQ)
    /// after a flag change, as Dovecot answers.
    fn write_notify_status(&self, out: &mut Vec<u8>, name: &str, t: &Told, full: bool) {
        let mut o = b"* STATUS ".to_vec();
        write_mailbox(&mut o, &self.wire_name(name));
        let mut items = if full {
            let validity = if t.validity_told { String::new() } else { format!(" UIDVALIDITY {}", t.uidvalidity) };
            format!("MESSAGES {} UIDNEXT {}{validity} UNSEEN {}", t.messages, t.uidnext, t.unseen)
        } else {
            format!("UNSEEN {}", t.unseen)
        };
        if self.condstore {
            items.push_str(&format!(" HIGHESTMODSEQ {}", t.highestmodseq));
        }
        o.extend_from_slice(format!(" ({items})\r\n").as_bytes());
        out.extend_from_slice(&o);
    }

    fn write_notify_list(&self, out: &mut Vec<u8>, name: &str, attr: &str) {
        let mut o = format!("* LIST ({attr}) \"{DELIMITER}\" ").into_bytes();
        write_mailbox(&mut o, &self.wire_name(name));
        o.extend_from_slice(b"\r\n");
        out.extend_from_slice(&o);
    }

    /// After a sync: what changed in the watched mailboxes since the client was last told.
    pub(super) async fn notify_check(&mut self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let Some(mut n) = self.notify.take() else { return Ok(()) };
        let result = self.notify_changes(out, &mut n).await;
        self.notify = Some(n);
        result
    }

    async fn notify_changes(&mut self, out: &mut Vec<u8>, n: &mut Notify) -> Result<(), StoreError> {
        let now = self.notified_mailboxes().await?;
        self.notify_renames(out, n, &now);
        for m in &now {
            let Some(w) = n.wants(&m.name, m.subscribed) else {
                n.told.remove(&m.name);
                continue;
            };
            let known = n.told.get(&m.name).copied();
            if self.is_selected(m.id) {
                // Told through its own updates: only keep what the client knows.
                if known.is_none_or(|old| (old.highestmodseq, old.uidnext, old.subscribed) != (m.highestmodseq, m.uidnext, m.subscribed)) {
                    n.told.insert(m.name.clone(), self.told(m).await?);
                }
                continue;
            }
            let Some(old) = known else {
                if w.names {
                    self.write_notify_list(out, &m.name, "");
                }
                n.told.insert(m.name.clone(), self.told(m).await?);
                continue;
            };
            if old.subscribed != m.subscribed && w.subscriptions {
                self.write_notify_list(out, &m.name, if m.subscribed { "\\Subscribed" } else { "" });
            }
            if (old.highestmodseq, old.uidnext, old.uidvalidity, old.id) == (m.highestmodseq, m.uidnext, m.uidvalidity, m.id) {
                n.told.insert(m.name.clone(), Told { subscribed: m.subscribed, ..old });
                continue;
            }
            let mut t = self.told(m).await?;
            t.validity_told = old.validity_told && (old.uidvalidity, old.id) == (t.uidvalidity, t.id);
            let messages_changed = (t.messages, t.uidnext, t.uidvalidity, t.id) != (old.messages, old.uidnext, old.uidvalidity, old.id);
            if messages_changed && w.messages {
                self.write_notify_status(out, &m.name, &t, true);
                t.validity_told = true;
            } else if w.flags && (t.unseen != old.unseen || self.condstore) {
                self.write_notify_status(out, &m.name, &t, false);
            }
            n.told.insert(m.name.clone(), t);
        }
        let gone: Vec<(String, Told)> = n.told.iter().filter(|(name, _)| !now.iter().any(|m| &m.name == *name)).map(|(k, v)| (k.clone(), *v)).collect();
        for (name, old) in gone {
            n.told.remove(&name);
            if n.wants(&name, old.subscribed).is_some_and(|w| w.names) {
                self.write_notify_list(out, &name, "\\NonExistent");
            }
        }
        self.notify_annotations(out, n).await
    }

    /// The annotations of the server (id 0) or of a mailbox, each value hashed.
    async fn annotations(&self, id: MailboxId) -> Result<HashMap<String, u64>, StoreError> {
        let Some(user) = self.user() else { return Ok(HashMap::new()) };
        let stored = self.services.store.metadata(user.id, (id != 0).then_some(id)).await?;
        Ok(stored.into_iter().map(|(name, value)| (name, value_hash(&value))).collect())
    }

    /// After a SETMETADATA anywhere: `* METADATA name entry ...` (RFC 5464 §4.4.2's
    /// unsolicited form) with the entries of each watched mailbox (or of the server, `""`)
    /// set, changed or removed since the client was last told.
    async fn notify_annotations(&self, out: &mut Vec<u8>, n: &mut Notify) -> Result<(), StoreError> {
        let generation = metadata::generation();
        if generation == n.annotations_seen {
            return Ok(());
        }
        n.annotations_seen = generation;
        let sources = n.annotation_sources();
        // Mailboxes no longer watched (or gone) keep no copy.
        n.annotations.retain(|id, _| sources.iter().any(|(s, _)| s == id));
        for (id, name) in sources {
            let now = self.annotations(id).await?;
            let before = n.annotations.remove(&id).unwrap_or_default();
            let mut changed: Vec<&String> = now.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k).collect();
            changed.extend(before.keys().filter(|k| !now.contains_key(*k)));
            changed.sort();
            if !changed.is_empty() {
                let mut o = b"* METADATA ".to_vec();
                crate::response::string(&mut o, self.wire_name(&name).as_bytes());
                for entry in changed {
                    o.push(b' ');
                    write_mailbox(&mut o, entry);
                }
                o.extend_from_slice(b"\r\n");
                out.extend_from_slice(&o);
            }
            n.annotations.insert(id, now);
        }
        Ok(())
    }

    /// RFC 5465 (MailboxName): a mailbox the client knows under a name that is gone, now under another
    /// (the same id), was renamed: `* LIST () "/" new ("OLDNAME" (old))` when either name's
    /// group asks MailboxName, and what was told of it moves to the new name.
    fn notify_renames(&self, out: &mut Vec<u8>, n: &mut Notify, now: &[MailboxState]) {
        let present: HashSet<&str> = now.iter().map(|m| m.name.as_str()).collect();
        let gone: HashMap<MailboxId, String> = n.told.iter().filter(|(name, _)| !present.contains(name.as_str())).map(|(name, t)| (t.id, name.clone())).collect();
        if gone.is_empty() {
            return;
        }
        for m in now {
            let Some(old_name) = gone.get(&m.id).filter(|_| !n.told.contains_key(&m.name)) else { continue };
            let Some(old) = n.told.remove(old_name) else { continue };
            let names = |name: &str, subscribed: bool| n.wants(name, subscribed).is_some_and(|w| w.names);
            if names(old_name, old.subscribed) || names(&m.name, m.subscribed) {
                self.write_notify_rename(out, &m.name, old_name);
            }
            if n.wants(&m.name, m.subscribed).is_some() {
                n.told.insert(m.name.clone(), old);
            }
        }
    }

    fn write_notify_rename(&self, out: &mut Vec<u8>, name: &str, old_name: &str) {
        let mut o = format!("* LIST () \"{DELIMITER}\" ").into_bytes();
        write_mailbox(&mut o, &self.wire_name(name));
        o.extend_from_slice(b" (\"OLDNAME\" (");
        write_mailbox(&mut o, &self.wire_name(old_name));
        o.extend_from_slice(b"))\r\n");
        out.extend_from_slice(&o);
    }

    /// The FETCH attributes the `selected` group's MessageNew asks for new messages of the
    /// selected mailbox (RFC 5465 §5.1), if it asks any.
    pub(super) fn notify_fetch_new(&self) -> Option<Vec<FetchAttr>> {
        let n = self.notify.as_ref()?;
        let group = n.groups.iter().find(|g| g.filter == NotifyFilter::Selected)?;
        group.events.iter().find_map(|e| match e {
            NotifyEvent::MessageNew(attrs) if !attrs.is_empty() => Some(attrs.clone()),
            _ => None,
        })
    }

    /// The change notifications of the watched mailboxes, for the driver to wake on in IDLE.
    pub fn notify_watches(&self) -> Vec<watch::Receiver<u64>> {
        let Some(n) = &self.notify else { return Vec::new() };
        n.told.values().take(MAX_WATCHES).map(|t| self.services.store.watch_mailbox(t.id)).collect()
    }
}
