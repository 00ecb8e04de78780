//! Where a session is in RFC 5321's command sequence, as a type. Each [`Phase`] carries only
//! the data that is valid in it — no transaction before MAIL, no content before DATA or BDAT —
//! and [`Session::allowed`] is the one place that says which commands each phase accepts.

use rampart_auth::Exchange;
use rampart_store::AccountId;

use super::content::Content;
use super::{Role, Session};
use crate::command::{Command, MailParams, ReversePath};
use crate::data::Fatal;
use crate::reply::Reply;

/// What the client said in EHLO or HELO.
#[derive(Debug)]
pub(super) struct Helo {
    pub name: String,
    /// EHLO rather than HELO: extensions (SIZE, BDAT, AUTH...) may be used.
    pub extended: bool,
}

/// A mail transaction, from MAIL to the end of its content.
#[derive(Debug)]
pub(super) struct Transaction {
    pub id: String,
    pub from: ReversePath,
    pub params: MailParams,
    /// Accepted recipients as given (for the Received header and logs).
    pub rcpts: Vec<String>,
    /// Local accounts they resolve to, deduplicated.
    pub accounts: Vec<AccountId>,
    /// Addresses elsewhere, for the outbound queue.
    pub remote: Vec<String>,
    /// The SPF stage's findings at MAIL FROM (MX role with checks on).
    pub spf: Option<rampart_pipeline::SpfCheck>,
    /// Entries of milters that failed during the transaction with `on_error = "accept"`.
    pub milter_entries: Vec<rampart_pipeline::Entry>,
    /// The limits in force for this sender.
    pub limits: super::Limits,
    /// A gateway's downstream relaying its own domains' mail out: the outbound treatment
    /// (no inbound checks; DKIM signing, outbound scanning) and any recipient domain.
    pub relay: bool,
    /// What the submitting user's quotas allow (submission, unless exempt or quotas are off).
    pub quota: Option<crate::sending::QuotaState>,
}

impl Transaction {
    /// Adds an accepted recipient and what it resolved to, without duplicates.
    pub fn add_recipient(&mut self, shown: String, accounts: Vec<AccountId>, remote: Vec<String>) {
        for a in accounts {
            if !self.accounts.contains(&a) {
                self.accounts.push(a);
            }
        }
        for r in remote {
            if !self.remote.contains(&r) {
                self.remote.push(r);
            }
        }
        self.rcpts.push(shown);
    }

    /// The envelope sender as the queue and DSNs store it: empty for `<>`.
    pub fn sender(&self) -> String {
        match &self.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        }
    }
}

/// BDAT content so far. One per session at most, so the size difference between the
/// variants costs nothing worth an allocation per transaction.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Chunks {
    Receiving(Content),
    /// A chunk broke a line rule; the rest of it is read and thrown away, and the refusal
    /// comes when it ends (the length keeps the stream in sync).
    Broken(Fatal),
}

pub(super) enum Phase {
    /// Before EHLO/HELO, and again after STARTTLS (RFC 3207 §4.2).
    Connected,
    /// Greeted; no transaction.
    Greeted(Helo),
    /// An AUTH exchange is running: each line is a SASL response, not a command (RFC 4954 §4).
    Auth(Helo, Exchange),
    /// MAIL accepted; RCPT adds recipients.
    Mail(Helo, Transaction),
    /// After DATA's 354: content streams in until CRLF.CRLF.
    Data(Helo, Transaction, Content),
    /// BDAT chunks (RFC 3030 §2); no RCPT or DATA any more.
    Chunking { helo: Helo, tx: Transaction, chunks: Chunks, last: bool },
}

impl Phase {
    pub fn helo(&self) -> Option<&Helo> {
        match self {
            Phase::Connected => None,
            Phase::Greeted(h) | Phase::Auth(h, _) | Phase::Mail(h, _) | Phase::Data(h, ..) | Phase::Chunking { helo: h, .. } => Some(h),
        }
    }

    fn extended(&self) -> bool {
        self.helo().is_some_and(|h| h.extended)
    }

    /// RSET (RFC 5321 §4.1.1.5): the transaction is gone, the greeting stays.
    pub fn reset(self) -> Phase {
        match self {
            Phase::Connected => Phase::Connected,
            Phase::Greeted(h) | Phase::Auth(h, _) | Phase::Mail(h, _) | Phase::Data(h, ..) | Phase::Chunking { helo: h, .. } => Phase::Greeted(h),
        }
    }

    fn in_transaction(&self) -> bool {
        matches!(self, Phase::Mail(..) | Phase::Data(..) | Phase::Chunking { .. })
    }
}

fn out_of_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text.to_string())
}

impl Session {
    /// The one place that decides whether a command may come now (RFC 5321 §4.1.4, RFC 3030
    /// §3, RFC 4954 §4, RFC 3207 §4); the reply says why not. Arguments and policy are checked
    /// by each command's handler once this allows it.
    pub(super) fn allowed(&self, cmd: &Command) -> Result<(), Reply> {
        use Command as C;
        let phase = &self.phase;
        match cmd {
            C::Ehlo(_) | C::Helo(_) | C::Noop | C::Rset | C::Quit | C::Help | C::Vrfy(_) | C::Expn(_) | C::StartTls => Ok(()),
            C::Auth { .. } => {
                if self.conn.settings.role != Role::Submission {
                    Err(out_of_sequence("AUTH is not available on this port"))
                } else if self.conn.tls.is_none() {
                    Err(Reply::new(538, "5.7.11", "Encryption required for requested authentication mechanism"))
                } else if !phase.extended() {
                    Err(out_of_sequence("Send EHLO first"))
                } else if self.conn.user.is_some() {
                    Err(out_of_sequence("Already authenticated"))
                } else if phase.in_transaction() {
                    Err(out_of_sequence("AUTH is not allowed during a mail transaction"))
                } else {
                    Ok(())
                }
            }
            C::Mail { .. } => match phase {
                Phase::Connected => Err(out_of_sequence("Send EHLO or HELO first")),
                // RFC 4954 §6: 530 when the server requires authentication.
                Phase::Greeted(_) if self.conn.settings.role == Role::Submission && self.conn.user.is_none() => {
                    Err(Reply::new(530, "5.7.0", "Authentication required"))
                }
                Phase::Greeted(_) => Ok(()),
                _ => Err(out_of_sequence("Nested MAIL command")),
            },
            C::Rcpt { .. } => match phase {
                Phase::Mail(..) => Ok(()),
                Phase::Chunking { .. } => Err(out_of_sequence("RCPT after BDAT")),
                _ => Err(out_of_sequence("Need MAIL before RCPT")),
            },
            C::Data => match phase {
                Phase::Mail(_, tx) if tx.rcpts.is_empty() => Err(Reply::new(554, "5.5.1", "No valid recipients")),
                Phase::Mail(..) => Ok(()),
                Phase::Chunking { .. } => Err(out_of_sequence("DATA after BDAT")),
                _ => Err(out_of_sequence("Need MAIL and RCPT first")),
            },
            C::Bdat { .. } => match phase {
                _ if !phase.extended() => Err(out_of_sequence("BDAT needs EHLO")),
                Phase::Mail(_, tx) if tx.rcpts.is_empty() => Err(Reply::new(554, "5.5.1", "No valid recipients")),
                Phase::Mail(..) | Phase::Chunking { .. } => Ok(()),
                _ => Err(out_of_sequence("Need MAIL and RCPT first")),
            },
        }
    }
}
