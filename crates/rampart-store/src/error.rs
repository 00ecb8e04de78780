//! What can go wrong in the store, as types callers match on.
//!
//! Every backend returns the same [`StoreError`]. Its variants fall into three
//! [`ErrorKind`]s, which decide what a client or administrator is told:
//! - [`ErrorKind::Refused`]: the request cannot be done as asked (a bad name, an object that
//!   exists or does not). The message is ours, names only what the caller gave, and is safe to
//!   show (IMAP `[ALREADYEXISTS]`, `[NONEXISTENT]`, `[CANNOT]`; the CLI prints it).
//! - [`ErrorKind::Unavailable`]: the store could not do it now (the database was busy, a disk
//!   write or the commit failed, the writer stopped); the same request may succeed later
//!   (SMTP `451 4.3.0`, IMAP `[UNAVAILABLE]`).
//! - [`ErrorKind::Internal`]: a bug or a broken invariant (IMAP `[SERVERBUG]`).
//!
//! The last two carry internal detail (paths, SQL errors): log it with [`StoreError::chain`],
//! never send it to a client.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Why an address is not a valid mailbox address (see [`crate::address::canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressProblem {
    NoAt,
    LocalPart,
    Domain,
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressProblem::NoAt => "no @",
            AddressProblem::LocalPart => "the part before @ must be letters, digits and !#$&'*+-/=?^_`{|}~ between dots",
            AddressProblem::Domain => "the domain is not a host name",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    // The request was refused: ErrorKind::Refused.
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("`{address}` is not a valid address: {problem}")]
    InvalidAddress { address: String, problem: AddressProblem },
    #[error("`{0}` is not a domain name")]
    InvalidDomain(String),
    /// A mailbox name that is empty or has an empty level.
    #[error("`{0}` is not a valid mailbox name")]
    InvalidName(String),
    #[error("an app password name is 1 to 64 printable characters")]
    InvalidAppPasswordName,
    #[error("{0} is not a local domain; add it first")]
    NotLocalDomain(String),
    #[error("{0} cannot be an alias of itself")]
    SelfAlias(String),
    /// Removing the domain would orphan its accounts and aliases.
    #[error("domain {domain} still has {accounts} accounts and {aliases} aliases; remove them first")]
    InUse { domain: String, accounts: u64, aliases: u64 },
    #[error("mailbox {0} has children; delete them first")]
    HasChildren(String),
    #[error("INBOX cannot be deleted")]
    InboxUndeletable,
    /// A CSR's entry cannot be used before its certificate is imported.
    #[error("certificate {0} is a request still waiting for its certificate")]
    CertificatePending(i64),
    /// Renaming to INBOX or into the mailbox's own hierarchy (RFC 3501 §6.3.5).
    #[error("cannot rename {from} to {to}")]
    Conflict { from: String, to: String },
    #[error("{address} already has {count} app passwords; revoke one first")]
    TooManyAppPasswords { address: String, count: u64 },
    /// Demoting, suspending or removing the only administrator who can log in would leave
    /// nobody to manage the server from the web.
    #[error("{0} is the last administrator who can log in; make another account an admin first")]
    LastAdmin(String),
    /// A delivery with neither local targets nor remote recipients (a caller's bug).
    #[error("a delivery needs at least one target")]
    NoTargets,

    // Set-up problems an administrator fixes.
    #[error("another `rampart serve` is using the store in {}", .0.display())]
    LockHeld(PathBuf),
    #[error("the database schema is version {found}, newer than this binary knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// The master key is malformed, wrong, or lacks a key that wrapped something.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// A per-user mailbox read while no login of its user holds the key.
    #[error("the mail of account {0} is encrypted for its user and locked until the user logs in")]
    Locked(crate::AccountId),
    #[error("per-user encryption: {0}")]
    PerUser(String),
    #[error("the store in {} is encrypted: set [store.encryption] mode = \"server\" and give it its master key", .0.display())]
    Encrypted(PathBuf),
    #[error("the store in {} is not encrypted: convert it with `rampart store encrypt` (server stopped), or set [store.encryption] mode = \"off\"", .0.display())]
    NotEncrypted(PathBuf),
    #[error("the conversion of the store in {} to encryption did not finish: run `rampart store encrypt` again", .0.display())]
    Converting(PathBuf),

    // Internal failures: logged, never shown to a client.
    #[error("database error")]
    Db(#[source] DbError),
    #[error("{}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The batch this write belonged to could not be committed; nothing of it was stored.
    /// Shared by every write of the batch, hence the `Arc`.
    #[error("the commit failed")]
    CommitFailed(#[source] Arc<StoreError>),
    #[error("the store's writer has stopped")]
    Closed,
}

/// What an error means for whoever asked; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Refused,
    Unavailable,
    Internal,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }

    pub fn kind(&self) -> ErrorKind {
        use StoreError::*;
        match self {
            Exists(_) | NotFound(_) | InvalidAddress { .. } | InvalidDomain(_) | InvalidName(_)
            | InvalidAppPasswordName | NotLocalDomain(_) | SelfAlias(_) | InUse { .. } | HasChildren(_) | CertificatePending(_)
            | InboxUndeletable | Conflict { .. } | TooManyAppPasswords { .. } | LastAdmin(_) | Locked(_) | PerUser(_) => ErrorKind::Refused,
            Db(e) if e.transient => ErrorKind::Unavailable,
            // A commit that failed for a transient reason (disk full, I/O) may succeed later;
            // one refused by a constraint will not.
            CommitFailed(cause) => match cause.kind() {
                ErrorKind::Internal => ErrorKind::Internal,
                _ => ErrorKind::Unavailable,
            },
            Io { .. } | Closed | LockHeld(_) | Key(_) | Encrypted(_) | NotEncrypted(_) | Converting(_) => ErrorKind::Unavailable,
            NoTargets | SchemaTooNew { .. } | Db(_) => ErrorKind::Internal,
        }
    }

    /// The error and its causes as one line (`the commit failed: database error: disk I/O
    /// error`), for the server log.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// See [`StoreError::chain`].
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// A failure reported by the database itself, whichever backend it is.
#[derive(Debug)]
pub struct DbError {
    source: Box<dyn std::error::Error + Send + Sync>,
    /// Busy, out of space, an I/O error: the same statement may succeed later.
    transient: bool,
}

impl DbError {
    pub fn new(source: impl std::error::Error + Send + Sync + 'static, transient: bool) -> Self {
        DbError { source: Box::new(source), transient }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        let transient = matches!(
            e.sqlite_error_code(),
            Some(DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen | OutOfMemory)
        );
        StoreError::Db(DbError::new(e, transient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_chain() {
        assert_eq!(StoreError::Exists("mailbox Work".into()).kind(), ErrorKind::Refused);
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), Some("database is locked".into()));
        let busy = StoreError::from(busy);
        assert_eq!(busy.kind(), ErrorKind::Unavailable);
        let failed = StoreError::CommitFailed(Arc::new(busy));
        assert_eq!(failed.kind(), ErrorKind::Unavailable);
        let chain = failed.chain().to_string();
        assert!(chain.starts_with("the commit failed: database error: database is locked"), "{chain}");
        let constraint = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(19), Some("FOREIGN KEY constraint failed".into()));
        assert_eq!(StoreError::CommitFailed(Arc::new(constraint.into())).kind(), ErrorKind::Internal);
        let io = StoreError::io("/data/blobs/tmp/x", std::io::Error::other("disk full"));
        assert_eq!(io.chain().to_string(), "/data/blobs/tmp/x: disk full");
    }
}
