//! The IMAP session state machine: parsed commands in, responses out. It does no socket I/O
//! itself; the driver ([`crate::conn`]) frames commands, performs STARTTLS and runs IDLE, and
//! gives the session an [`Output`] to write responses to (flushed during long FETCHes).
//!
//! RFC 3501 §3: NotAuthenticated → Authenticated → Selected → Logout. Which commands a state
//! allows is decided in one place, [`allowed`]; each handler can then rely on its state.

mod auth;
mod catenate;
mod context;
mod fetch;
mod flagsets;
mod index;
mod mailboxes;
mod metadata;
mod notify;
mod search;
mod select;
mod sort;
mod store;
mod stream;
mod thread;
pub mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_config::TlsMode;
use rampart_store::{AccountId, ErrorKind, MailStore, StoreError};
use tracing::{debug, warn};

use crate::parser::{self, Command, Kind, ParseError};
use crate::response::line;
use view::View;

pub use index::MessageSummarizer;

/// Where responses go. The driver implements it over the socket; `flush` lets a long FETCH
/// send what it has instead of holding the whole answer in memory.
pub trait Output: Send {
    fn buf(&mut self) -> &mut Vec<u8>;
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// A response buffer past this is flushed in the middle of a command.
pub const FLUSH_AT: usize = 256 * 1024;

/// Everything a session needs from the rest of the server.
pub struct Services {
    pub store: Arc<dyn MailStore>,
    pub auth: Arc<rampart_auth::Authenticator>,
    /// Counts failed logins, bans, protects attacked accounts; caps TLS handshakes.
    pub guard: Arc<rampart_guard::Guard>,
    pub hostname: String,
    /// Failed authentications in one session before it is closed (`auth.max_failures`).
    pub max_auth_failures: u32,
    /// Pause before answering a failed login, times the session's failures
    /// (`auth.failure_delay`).
    pub failure_delay: Duration,
    /// Teaches the spam classifier what users move into and out of Junk
    /// (`filter.spam.learn_from_imap`); None leaves it alone.
    pub learner: Option<Arc<dyn Learner>>,
    /// What SORT and header SEARCH read of large mailboxes, kept in memory
    /// (`store.imap_column_cache`, [`crate::columns`]).
    pub columns: Arc<crate::columns::ColumnCache>,
    /// Per-user encryption (`rampart user encryption`): a login unlocks the account's key
    /// for the life of the session. None: no account is in per-user mode.
    pub user_keys: Option<Arc<dyn rampart_store::UserKeyStore>>,
}

/// Learns from users' moves: messages put into the \Junk mailbox are spam, messages taken out
/// of it (anywhere but \Trash) are ham. Called after the command's change is stored; the
/// learning runs in the background so the client does not wait for it.
pub trait Learner: Send + Sync {
    /// `messages` are (mailbox, UID) of the copies as they now are.
    fn learn(&self, account: rampart_store::AccountId, messages: Vec<(rampart_store::MailboxId, u32)>, spam: bool);
}

/// What a move from a mailbox with special use `from` to one with `to` teaches, if anything:
/// `Some(true)` spam, `Some(false)` ham.
pub fn lesson(from: Option<&str>, to: Option<&str>) -> Option<bool> {
    let junk = |s: Option<&str>| s.is_some_and(|s| s.eq_ignore_ascii_case("\\Junk"));
    let trash = |s: Option<&str>| s.is_some_and(|s| s.eq_ignore_ascii_case("\\Trash"));
    match (junk(from), junk(to)) {
        (false, true) => Some(true),
        (true, false) if !trash(to) => Some(false),
        _ => None,
    }
}

/// One listener's settings, shared by its sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listener: &'static str,
    pub tls: TlsMode,
    pub max_command_line: usize,
    pub max_literal_preauth: u64,
    pub max_append_size: u64,
    pub max_command_size: u64,
    pub max_errors: u32,
    pub idle_timeout: Duration,
    pub quota_storage: u64,
    pub compress: bool,
}

impl Settings {
    pub fn from_config(listener: &'static str, c: &rampart_config::ImapListener) -> Settings {
        Settings {
            listener,
            tls: c.tls,
            max_command_line: c.max_command_line,
            max_literal_preauth: c.max_literal_before_login,
            max_append_size: c.max_append_size,
            max_command_size: c.max_command_size,
            max_errors: c.max_errors,
            idle_timeout: c.idle_timeout,
            quota_storage: c.quota_storage,
            compress: c.compress,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: AccountId,
    pub address: String,
}

/// RFC 3501 §3 states; each variant holds only what is valid in it.
pub enum State {
    NotAuthenticated,
    Authenticated(User),
    Selected(User, Box<View>),
    Logout,
}

/// What the driver does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Flush and close the connection.
    Close,
    /// Flush, discard buffered input, run the TLS handshake (RFC 3501 §6.2.1).
    StartTls,
    /// The `+ idling` continuation is queued; wait for DONE or changes (RFC 2177).
    Idle,
    /// A SASL challenge (`+ ...`) is queued; pass the client's next line to
    /// [`Session::auth_line`].
    AuthContinue,
    /// Flush, then compress both directions with DEFLATE from here on (RFC 4978).
    Compress,
}

/// The one place that decides which commands each state allows (RFC 3501 §6).
pub fn allowed(state: &State, kind: &Kind) -> bool {
    use Kind as K;
    let authenticated = matches!(state, State::Authenticated(_) | State::Selected(..));
    match kind {
        K::Capability | K::Noop | K::Logout | K::Id(_) => true,
        K::StartTls | K::Authenticate { .. } | K::Login { .. } => matches!(state, State::NotAuthenticated),
        K::Select { .. }
        | K::Create { .. }
        | K::Delete(_)
        | K::Rename { .. }
        | K::Subscribe(_)
        | K::Unsubscribe(_)
        | K::List(_)
        | K::Lsub { .. }
        | K::Status { .. }
        | K::Append { .. }
        | K::Idle
        | K::Namespace
        | K::Enable(_)
        | K::GetQuota(_)
        | K::GetQuotaRoot(_)
        | K::SetQuota(_)
        | K::Compress(_)
        | K::Unauthenticate
        | K::GetMetadata { .. }
        | K::SetMetadata { .. }
        | K::Notify { .. } => authenticated,
        K::Check | K::Close | K::Unselect | K::CancelUpdate(_) | K::Expunge { .. } | K::Search { .. } | K::Sort { .. } | K::Thread { .. } | K::Fetch { .. } | K::Store { .. } | K::Copy { .. } => {
            matches!(state, State::Selected(..))
        }
    }
}

/// Puts the saved search result where a command says `$` (RFC 5182 §2.1): its UIDs in a UID
/// set, their present message numbers in a message-number set.
fn substitute_saved(kind: &mut Kind, saved: &[u32], view: &view::View) {
    let mut fix = |set: &mut crate::parser::SequenceSet, uid: bool| {
        if !set.uses_saved() {
            return;
        }
        if uid {
            set.substitute_saved(saved);
        } else {
            let mut numbers: Vec<u32> = saved.iter().filter_map(|&u| view.index_of_uid(u).map(|i| i as u32 + 1)).collect();
            numbers.sort_unstable();
            set.substitute_saved(&numbers);
        }
    };
    match kind {
        Kind::Fetch { uid, set, .. } | Kind::Store { uid, set, .. } | Kind::Copy { uid, set, .. } => fix(set, *uid),
        Kind::Expunge { uids: Some(set) } => fix(set, true),
        Kind::Search { key, .. } | Kind::Sort { key, .. } | Kind::Thread { key, .. } => key.for_each_set(&mut fix),
        _ => {}
    }
}

/// A SASL exchange in progress.
pub(crate) struct PendingAuth {
    tag: String,
    exchange: rampart_auth::Exchange,
}

pub struct Session {
    pub(crate) services: Arc<Services>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) remote: SocketAddr,
    pub(crate) tls: bool,
    /// The `tls-exporter` value of the TLS connection (RFC 9266), for SCRAM-SHA-256-PLUS.
    pub(crate) channel_binding: Option<Vec<u8>>,
    /// COMPRESS=DEFLATE is on (RFC 4978: once per connection).
    compressing: bool,
    /// The UIDs the last SEARCH or SORT with RETURN (SAVE) kept, for `$` (RFC 5182); emptied
    /// when a mailbox is selected or closed.
    pub(crate) saved: Vec<u32>,
    pub(crate) state: State,
    /// RFC 7162 §3.1: CONDSTORE was enabled (ENABLE, SELECT (CONDSTORE) or a MODSEQ use).
    pub(crate) condstore: bool,
    /// RFC 7162 §3.2: QRESYNC was enabled; expunges are reported as VANISHED.
    pub(crate) qresync: bool,
    /// RFC 9051: `ENABLE IMAP4rev2` was given: no \Recent, SEARCH answers ESEARCH, mailbox
    /// names are UTF-8 on the wire (the store keeps modified UTF-7, as rev1 clients send).
    pub(crate) rev2: bool,
    /// RFC 6855: `ENABLE UTF8=ACCEPT` was given: mailbox names are UTF-8 on the wire (as for
    /// rev2) and APPEND may send `UTF8 (~{n}...)`.
    pub(crate) utf8: bool,
    /// SEARCH ... RETURN (UPDATE) results kept up to date (RFC 5267 §4), and the selected
    /// mailbox's (HIGHESTMODSEQ, EXISTS) when they were last evaluated.
    pub(crate) contexts: Vec<context::SearchContext>,
    pub(crate) contexts_seen: (u64, usize),
    /// NOTIFY SET in force (RFC 5465).
    pub(crate) notify: Option<notify::Notify>,
    pub(crate) auth_failures: u32,
    pub(crate) errors: u32,
    pub(crate) pending_auth: Option<PendingAuth>,
    /// Tag of the IDLE command in progress.
    idle_tag: Option<String>,
    /// The message of the APPEND being read, already streamed to a blob by the driver (or
    /// why that failed).
    /// The messages of the APPEND being read that the driver streamed to blobs (or why that
    /// failed), each by where its literal is in the command.
    pub(crate) staged_append: Vec<(usize, Result<rampart_store::BlobWriter, String>)>,
    /// The account's per-user key, held while this session lives (per-user mode only).
    pub(crate) unlocked: Option<rampart_store::Unlocked>,
}

impl Session {
    pub fn new(services: Arc<Services>, settings: Arc<Settings>, remote: SocketAddr, tls: bool) -> Session {
        Session {
            services,
            settings,
            remote,
            tls,
            channel_binding: None,
            compressing: false,
            saved: Vec::new(),
            state: State::NotAuthenticated,
            condstore: false,
            unlocked: None,
            qresync: false,
            rev2: false,
            utf8: false,
            contexts: Vec::new(),
            contexts_seen: (0, 0),
            notify: None,
            auth_failures: 0,
            errors: 0,
            pending_auth: None,
            idle_tag: None,
            staged_append: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The driver streamed the message whose literal starts at `literal_at` to a blob.
    pub fn stage_append(&mut self, literal_at: usize, staged: Result<rampart_store::BlobWriter, String>) {
        self.staged_append.push((literal_at, staged));
    }

    /// How many messages of the APPEND being read are staged, and their bytes.
    pub fn staged_append(&self) -> (usize, u64) {
        let bytes = self.staged_append.iter().map(|(_, s)| s.as_ref().map_or(0, |w| w.size())).sum();
        (self.staged_append.len(), bytes)
    }

    pub fn discard_staged_append(&mut self) {
        self.staged_append.clear();
    }

    pub fn remote_ip(&self) -> std::net::IpAddr {
        self.remote.ip()
    }

    pub fn is_logged_out(&self) -> bool {
        matches!(self.state, State::Logout)
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated(_) | State::Selected(..))
    }

    /// The mailbox whose changes wake IDLE.
    pub fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match &self.state {
            State::Selected(_, view) => Some(view.watch()),
            _ => None,
        }
    }

    /// RFC 3501 §7.1.1 greeting with the capabilities, so clients need not ask.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        line(out, &format!("* OK [CAPABILITY {}] {} IMAP4rev1 Rampart ready", self.capabilities(), self.services.hostname));
    }

    /// TLS is up (implicit or after STARTTLS); `channel_binding` is its `tls-exporter` value.
    pub fn tls_started(&mut self, channel_binding: Option<Vec<u8>>) {
        self.tls = true;
        self.channel_binding = channel_binding;
    }

    /// RFC 3501 §7.2.1, with what this session may use now.
    pub fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT"];
        if !self.is_authenticated() {
            if self.plaintext_refused() {
                // RFC 3501 §6.2.3, §11.1: no credentials before TLS.
                caps.extend(["STARTTLS", "LOGINDISABLED"]);
                return caps.join(" ");
            }
            let mut s = caps.join(" ");
            for m in self.mechanisms() {
                s.push_str(" AUTH=");
                s.push_str(m.name());
            }
            return s;
        }
        caps.extend([
            "UIDPLUS",
            "MOVE",
            "CHILDREN",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "STATUS=SIZE",
            "UNAUTHENTICATE",
            "MULTIAPPEND",
            "SEARCHRES",
            "BINARY",
            "CATENATE",
            "METADATA",
            "PARTIAL",
            "CONTEXT=SEARCH",
            "CONTEXT=SORT",
            "NOTIFY",
            "UTF8=ACCEPT",
        ]);
        if self.settings.compress {
            caps.push("COMPRESS=DEFLATE");
        }
        let mut s = caps.join(" ");
        s.push_str(&format!(" APPENDLIMIT={}", self.settings.max_append_size));
        s
    }

    pub fn bye_timeout(&self, out: &mut Vec<u8>) {
        line(out, "* BYE Idle timeout, closing connection");
    }

    /// A protocol error: counted, and past the limit the session ends.
    pub(crate) fn error(&mut self, out: &mut Vec<u8>, tag: &str, text: &str) -> Next {
        self.errors += 1;
        line(out, &format!("{tag} BAD {text}"));
        if self.errors >= self.settings.max_errors {
            warn!(event = "too_many_errors", ip = %self.remote.ip(), proto = "imap", listener = self.settings.listener);
            line(out, "* BYE Too many errors");
            return Next::Close;
        }
        Next::Continue
    }

    /// A command or literal over a limit; the driver has kept none of it.
    pub fn too_big(&mut self, out: &mut Vec<u8>, tag: Option<&str>, what: &str) -> Next {
        let tag = tag.unwrap_or("*");
        self.error(out, tag, &format!("[TOOBIG] {what}"))
    }

    /// A line the parser rejected.
    pub fn parse_error(&mut self, out: &mut Vec<u8>, input: &[u8], e: ParseError) -> Next {
        let tag = parser::tag_of(input).unwrap_or("*").to_string();
        let text = match e {
            ParseError::UnknownCommand => "Unknown command".to_string(),
            ParseError::TooBig => "[TOOBIG] Command too big".to_string(),
            other => format!("Syntax error: {other}"),
        };
        self.error(out, &tag, &text)
    }

    /// Runs one parsed command.
    pub async fn command<O: Output>(&mut self, cmd: Command, out: &mut O) -> Next {
        let Command { tag, mut kind } = cmd;
        if !allowed(&self.state, &kind) {
            let why = match self.state {
                State::NotAuthenticated => "Log in first",
                State::Selected(..) | State::Authenticated(_) if matches!(kind, Kind::Login { .. } | Kind::Authenticate { .. }) => {
                    "Already authenticated"
                }
                State::Selected(..) | State::Authenticated(_) if kind == Kind::StartTls => "Already authenticated",
                _ => "No mailbox selected",
            };
            return self.error(out.buf(), &tag, &format!("{} not allowed now: {why}", kind.name()));
        }
        if let State::Selected(_, view) = &self.state {
            substitute_saved(&mut kind, &self.saved, view);
        }
        if self.utf8_names() {
            // RFC 9051 §5.1, RFC 6855 §3: UTF-8 names on the wire, modified UTF-7 in the store.
            for name in kind.mailbox_names_mut() {
                *name = crate::mutf7::encode(name);
            }
        }
        let result = match kind {
            Kind::Capability => {
                line(out.buf(), &format!("* CAPABILITY {}", self.capabilities()));
                self.done(out.buf(), &tag, "CAPABILITY completed").await
            }
            Kind::Noop => self.done(out.buf(), &tag, "NOOP completed").await,
            // RFC 3501 §6.4.1: every write is already durable, so CHECK has nothing to do.
            Kind::Check => self.done(out.buf(), &tag, "CHECK completed").await,
            Kind::Logout => {
                line(out.buf(), "* BYE Logging out");
                line(out.buf(), &format!("{tag} OK LOGOUT completed"));
                self.state = State::Logout;
                Ok(Next::Close)
            }
            Kind::StartTls => Ok(self.starttls(out.buf(), &tag)),
            Kind::Compress(algorithm) => Ok(self.compress(out.buf(), &tag, &algorithm)),
            Kind::Unauthenticate => Ok(self.unauthenticate(out.buf(), &tag)),
            Kind::Login { user, password } => Ok(self.login(out.buf(), &tag, user, password).await),
            Kind::Authenticate { mechanism, initial } => Ok(self.authenticate(out.buf(), &tag, mechanism, initial).await),
            Kind::Id(_) => {
                // RFC 2971: name and version are enough for a client's logs.
                line(out.buf(), "* ID (\"name\" \"Rampart\" \"version\" \"0.1\")");
                self.done(out.buf(), &tag, "ID completed").await
            }
            Kind::Enable(caps) => self.enable(out.buf(), &tag, caps).await,
            Kind::Namespace => {
                // RFC 2342: one personal namespace, no other users' or shared ones.
                line(out.buf(), "* NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.done(out.buf(), &tag, "NAMESPACE completed").await
            }
            Kind::Select { mailbox, condstore, read_only, qresync } => {
                self.select(out.buf(), &tag, &mailbox, condstore, read_only, qresync).await
            }
            Kind::Create { mailbox, special_use } => self.create(out.buf(), &tag, &mailbox, special_use).await,
            Kind::Delete(m) => self.delete(out.buf(), &tag, &m).await,
            Kind::Rename { from, to } => self.rename(out.buf(), &tag, &from, &to).await,
            Kind::Subscribe(m) => self.subscribe(out.buf(), &tag, &m, true).await,
            Kind::Unsubscribe(m) => self.subscribe(out.buf(), &tag, &m, false).await,
            Kind::List(args) => self.list(out.buf(), &tag, args).await,
            Kind::Lsub { reference, pattern } => self.lsub(out.buf(), &tag, &reference, &pattern).await,
            Kind::Status { mailbox, items } => self.status(out.buf(), &tag, &mailbox, &items).await,
            Kind::Append { mailbox, messages } => self.append(out.buf(), &tag, &mailbox, messages).await,
            Kind::Close => self.close(out.buf(), &tag, true).await,
            Kind::Unselect => self.close(out.buf(), &tag, false).await,
            Kind::Expunge { uids } => self.expunge(out.buf(), &tag, uids).await,
            Kind::Search { uid, charset, key, ret } => self.search(out, &tag, uid, charset, key, ret).await,
            Kind::Sort { uid, criteria, charset, key, ret } => self.sort(out, &tag, uid, criteria, charset, key, ret).await,
            Kind::Thread { uid, algorithm, charset, key } => self.thread(out, &tag, uid, algorithm, charset, key).await,
            Kind::Fetch { uid, set, attrs, changed_since, vanished, partial } => {
                self.fetch(out, &tag, uid, set, attrs, (changed_since, partial), vanished).await
            }
            Kind::Store { uid, set, op, silent, flags, unchanged_since } => {
                self.store(out.buf(), &tag, uid, set, op, silent, flags, unchanged_since).await
            }
            Kind::Copy { uid, set, mailbox, moving } => self.copy(out.buf(), &tag, uid, set, &mailbox, moving).await,
            Kind::Idle => {
                self.idle_tag = Some(tag.clone());
                line(out.buf(), "+ idling");
                Ok(Next::Idle)
            }
            Kind::GetQuotaRoot(m) => self.quota_root(out.buf(), &tag, &m).await,
            Kind::GetQuota(root) => self.quota(out.buf(), &tag, &root).await,
            Kind::Notify { status, groups } => self.notify(out.buf(), &tag, status, groups).await,
            Kind::CancelUpdate(tags) => self.cancel_update(out.buf(), &tag, tags).await,
            Kind::GetMetadata { mailbox, entries, depth, max_size } => self.get_metadata(out.buf(), &tag, &mailbox, entries, depth, max_size).await,
            Kind::SetMetadata { mailbox, entries } => self.set_metadata(out.buf(), &tag, &mailbox, entries).await,
            Kind::SetQuota(_) => {
                line(out.buf(), &format!("{tag} NO [NOPERM] Quotas are set by the administrator"));
                Ok(Next::Continue)
            }
        };
        match result {
            Ok(next) => next,
            Err(StoreError::NotFound(_)) if self.selected_mailbox_is_gone().await => {
                // Another session deleted (or renamed away) the selected mailbox; its view
                // cannot go on, as Dovecot also decides.
                line(out.buf(), "* BYE Selected mailbox was deleted, have to disconnect");
                Next::Close
            }
            Err(e) => {
                self.store_failed(out.buf(), &tag, &e);
                Next::Continue
            }
        }
    }

    /// Ends a command: pending changes of the selected mailbox (expunges allowed), then OK.
    pub(crate) async fn done(&mut self, out: &mut Vec<u8>, tag: &str, text: &str) -> Result<Next, StoreError> {
        self.sync(out, true).await?;
        line(out, &format!("{tag} OK {text}"));
        Ok(Next::Continue)
    }

    /// A CONDSTORE-enabling command (RFC 7162 §3.1). The first one issued while a mailbox is
    /// selected also reports the mailbox's HIGHESTMODSEQ, which the client has not seen yet
    /// (SELECT without CONDSTORE does not send it).
    pub(super) fn enable_condstore(&mut self, out: &mut Vec<u8>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let State::Selected(_, view) = &self.state {
            line(out, &format!("* OK [HIGHESTMODSEQ {}] Highest", view.highestmodseq));
        }
    }

    /// Reports the selected mailbox's changes since the last look (RFC 3501 §7.3, §7.4.1).
    pub(crate) async fn sync(&mut self, out: &mut Vec<u8>, expunge_ok: bool) -> Result<(), StoreError> {
        let condstore = self.condstore;
        let fetch_new = self.notify_fetch_new();
        let mut last_uid = 0;
        if let State::Selected(_, view) = &mut self.state {
            last_uid = view.uids().last().copied().unwrap_or(0);
            view.sync(self.services.store.as_ref(), out, expunge_ok, condstore).await?;
        }
        // RFC 5465 §5.1: NOTIFY's `selected` MessageNew with FETCH attributes.
        if let Some(attrs) = fetch_new {
            self.fetch_new(out, last_uid, &attrs).await?;
        }
        // RFC 5267 §4.3: what joined or left the kept searches' results.
        self.update_contexts(out).await?;
        // RFC 5465: what changed in the other mailboxes the client watches.
        self.notify_check(out).await
    }

    /// Changes arrived while idling: report them. False when the session must end.
    pub async fn idle_changed(&mut self, out: &mut Vec<u8>) -> bool {
        match self.sync(out, true).await {
            Ok(()) => true,
            Err(StoreError::NotFound(_)) if self.selected_mailbox_is_gone().await => {
                line(out, "* BYE Selected mailbox was deleted, have to disconnect");
                false
            }
            Err(e) => {
                warn!(event = "store_error", proto = "imap", ip = %self.remote.ip(), error = %e.chain());
                true
            }
        }
    }

    /// Whether the selected mailbox no longer exists in the store.
    async fn selected_mailbox_is_gone(&self) -> bool {
        let State::Selected(user, view) = &self.state else { return false };
        match self.services.store.mailbox_states(user.id).await {
            Ok(all) => !all.iter().any(|m| m.id == view.id),
            Err(_) => false,
        }
    }

    /// The client ended IDLE; `line` is what it sent (RFC 2177: must be DONE).
    pub async fn idle_done(&mut self, out: &mut Vec<u8>, input: &[u8]) -> Next {
        let tag = self.idle_tag.take().unwrap_or_else(|| "*".into());
        if !input.eq_ignore_ascii_case(b"DONE") {
            return self.error(out, &tag, "Expected DONE");
        }
        match self.done(out, &tag, "IDLE terminated").await {
            Ok(n) => n,
            Err(e) => {
                self.store_failed(out, &tag, &e);
                Next::Continue
            }
        }
    }

    /// A store error the client did not cause: its cause goes to the log, the client hears
    /// only whether trying again may help.
    fn store_failed(&self, out: &mut Vec<u8>, tag: &str, e: &StoreError) {
        warn!(event = "store_error", proto = "imap", ip = %self.remote.ip(), error = %e.chain());
        line(out, &store_failure(tag, e));
    }

    fn starttls(&mut self, out: &mut Vec<u8>, tag: &str) -> Next {
        if self.tls || self.settings.tls != TlsMode::Starttls {
            return self.error(out, tag, "TLS is already active");
        }
        line(out, &format!("{tag} OK Begin TLS negotiation now"));
        Next::StartTls
    }

    /// RFC 8437: the session forgets its user, its mailbox and what ENABLE turned on; TLS and
    /// COMPRESS stay, as they belong to the connection.
    fn unauthenticate(&mut self, out: &mut Vec<u8>, tag: &str) -> Next {
        if let Some(user) = self.user() {
            tracing::info!(event = "unauthenticate", proto = "imap", ip = %self.remote.ip(), listener = self.settings.listener, user = %user.address);
        }
        self.state = State::NotAuthenticated;
        self.condstore = false;
        self.qresync = false;
        // What ENABLE, SEARCH RETURN (UPDATE) and NOTIFY set belonged to that login.
        self.rev2 = false;
        self.utf8 = false;
        self.contexts.clear();
        self.notify = None;
        line(out, &format!("{tag} OK Not authenticated any more"));
        Next::Continue
    }

    /// RFC 4978 §3: DEFLATE once per connection; the tagged OK is the last uncompressed line.
    fn compress(&mut self, out: &mut Vec<u8>, tag: &str, algorithm: &str) -> Next {
        if self.compressing {
            line(out, &format!("{tag} NO [COMPRESSIONACTIVE] DEFLATE is already active"));
            return Next::Continue;
        }
        if !self.settings.compress {
            return self.error(out, tag, "COMPRESS is off on this server");
        }
        if algorithm != "DEFLATE" {
            return self.error(out, tag, "Unknown compression algorithm");
        }
        self.compressing = true;
        line(out, &format!("{tag} OK DEFLATE active"));
        Next::Compress
    }

    async fn enable(&mut self, out: &mut Vec<u8>, tag: &str, caps: Vec<String>) -> Result<Next, StoreError> {
        // RFC 5161: only extensions that change server behaviour are enabled; others ignored.
        let mut enabled = Vec::new();
        for c in caps {
            match c.as_str() {
                "CONDSTORE" if !self.condstore => {
                    self.condstore = true;
                    enabled.push(c);
                }
                // RFC 9051 §6.3.1: the rev2 differences, from here on.
                "IMAP4REV2" if !self.rev2 => {
                    self.rev2 = true;
                    if let State::Selected(_, view) = &mut self.state {
                        view.rev2 = true;
                    }
                    enabled.push("IMAP4rev2".into());
                }
                // RFC 6855 §3: UTF-8 mailbox names and UTF8 APPEND from here on.
                "UTF8=ACCEPT" if !self.utf8 => {
                    self.utf8 = true;
                    enabled.push(c);
                }
                // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
                "QRESYNC" if !self.qresync => {
                    self.qresync = true;
                    self.condstore = true;
                    if let State::Selected(_, view) = &mut self.state {
                        view.vanished = true;
                    }
                    enabled.push(c);
                }
                _ => {}
            }
        }
        line(out, &format!("* ENABLED{}", enabled.iter().map(|c| format!(" {c}")).collect::<String>()));
        self.done(out, tag, "ENABLE completed").await
    }

    /// Whether mailbox names are UTF-8 on the wire: IMAP4rev2 (RFC 9051 §5.1) or UTF8=ACCEPT
    /// (RFC 6855 §3) was enabled.
    pub(crate) fn utf8_names(&self) -> bool {
        self.rev2 || self.utf8
    }

    /// A stored mailbox name as this client reads it: UTF-8 when [`Self::utf8_names`], the
    /// stored modified UTF-7 otherwise (and for a stored name that is not valid modified UTF-7).
    pub(crate) fn wire_name<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        match self.utf8_names().then(|| crate::mutf7::decode(name)).flatten() {
            Some(utf8) => std::borrow::Cow::Owned(utf8),
            None => std::borrow::Cow::Borrowed(name),
        }
    }

    pub(crate) fn user(&self) -> Option<&User> {
        match &self.state {
            State::Authenticated(u) | State::Selected(u, _) => Some(u),
            _ => None,
        }
    }

    pub(crate) fn log_command(&self, name: &str) {
        debug!(event = "imap_command", ip = %self.remote.ip(), command = name);
    }
}

/// The response for a store error that the client caused or can act on (RFC 5530 codes), with
/// the store's own text: it names only what the client gave.
pub(crate) fn store_no(tag: &str, e: &StoreError) -> Option<String> {
    if e.kind() != ErrorKind::Refused {
        return None;
    }
    Some(match e {
        StoreError::NotFound(_) => format!("{tag} NO [NONEXISTENT] {e}"),
        StoreError::Exists(_) => format!("{tag} NO [ALREADYEXISTS] {e}"),
        _ => format!("{tag} NO [CANNOT] {e}"),
    })
}

/// The response for any other store error, without its internal detail (RFC 5530): a
/// transient failure (busy, disk, a failed commit) is UNAVAILABLE, anything else SERVERBUG.
pub(crate) fn store_failure(tag: &str, e: &StoreError) -> String {
    match e.kind() {
        ErrorKind::Unavailable => format!("{tag} NO [UNAVAILABLE] Temporary storage failure, try again later"),
        ErrorKind::Refused | ErrorKind::Internal => format!("{tag} NO [SERVERBUG] Internal error, try again later"),
    }
}

#[cfg(test)]
mod lesson_tests {
    use super::lesson;

    #[test]
    fn moves_into_and_out_of_junk_teach() {
        assert_eq!(lesson(None, Some("\\Junk")), Some(true));
        assert_eq!(lesson(Some("\\Sent"), Some("\\junk")), Some(true));
        assert_eq!(lesson(Some("\\Junk"), None), Some(false));
        assert_eq!(lesson(Some("\\Junk"), Some("\\Archive")), Some(false));
        // Deleting spam is not calling it ham; moving within Junk or elsewhere says nothing.
        assert_eq!(lesson(Some("\\Junk"), Some("\\Trash")), None);
        assert_eq!(lesson(Some("\\Junk"), Some("\\Junk")), None);
        assert_eq!(lesson(None, Some("\\Archive")), None);
    }
}
