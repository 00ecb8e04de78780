//! Versioned schema. `PRAGMA user_version` holds the number of migrations applied; each
//! migration runs in its own transaction. Never edit a shipped migration: append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: domains, accounts, aliases, mailboxes, the message index and blob reference counts.
    r#"
    CREATE TABLE domains (
        id      INTEGER PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        created INTEGER NOT NULL
    );
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        address       TEXT NOT NULL UNIQUE,
        domain_id     INTEGER NOT NULL REFERENCES domains(id),
        password_hash TEXT NOT NULL,
        created       INTEGER NOT NULL
    );
    CREATE TABLE aliases (
        id        INTEGER PRIMARY KEY,
        address   TEXT NOT NULL,
        target    TEXT NOT NULL,
        domain_id INTEGER NOT NULL REFERENCES domains(id),
        UNIQUE (address, target)
    );
    CREATE TABLE mailboxes (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        uidvalidity   INTEGER NOT NULL,
        uidnext       INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use   TEXT,
        subscribed    INTEGER NOT NULL DEFAULT 1,
        UNIQUE (account_id, name)
    );
    CREATE TABLE blobs (
        id       TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        refcount INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid           INTEGER NOT NULL,
        blob_id       TEXT NOT NULL REFERENCES blobs(id),
        prefix        BLOB NOT NULL,
        size          INTEGER NOT NULL,
        internal_date INTEGER NOT NULL,
        flags         TEXT NOT NULL DEFAULT '',
        modseq        INTEGER NOT NULL,
        reference     TEXT NOT NULL,
        trail         TEXT NOT NULL,
        UNIQUE (mailbox_id, uid)
    );
    CREATE INDEX messages_reference ON messages(reference);
    CREATE INDEX messages_blob ON messages(blob_id);
    "#,
    // 2: secrets for SASL mechanisms, app passwords, and the outbound queue.
    r#"
    ALTER TABLE accounts ADD COLUMN scram_sha256 TEXT;
    ALTER TABLE accounts ADD COLUMN cram_secret TEXT;
    CREATE TABLE app_passwords (
        id         INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        created    INTEGER NOT NULL,
        last_used  INTEGER,
        UNIQUE (account_id, name)
    );
    CREATE TABLE queue (
        id       TEXT PRIMARY KEY,
        blob_id  TEXT NOT NULL REFERENCES blobs(id),
        prefix   BLOB NOT NULL,
        sender   TEXT NOT NULL,
        size     INTEGER NOT NULL,
        smtputf8 INTEGER NOT NULL,
        is_dsn   INTEGER NOT NULL,
        created  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE queue_rcpts (
        id           INTEGER PRIMARY KEY,
        queue_id     TEXT NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
        rcpt         TEXT NOT NULL,
        domain       TEXT NOT NULL,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL,
        last_error   TEXT NOT NULL DEFAULT '',
        updated      INTEGER NOT NULL
    );
    CREATE INDEX queue_rcpts_due ON queue_rcpts(state, next_attempt);
    CREATE INDEX queue_rcpts_queue ON queue_rcpts(queue_id);
    "#,
    // 3: the guard's bans (kept after they expire, to count repeat offences) and the
    // addresses each account has logged in from.
    r#"
    CREATE TABLE bans (
        net      TEXT PRIMARY KEY,
        until    INTEGER NOT NULL,
        reason   TEXT NOT NULL,
        offenses INTEGER NOT NULL,
        updated  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE known_logins (
        account   TEXT NOT NULL,
        net       TEXT NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (account, net)
    ) WITHOUT ROWID;
    "#,
    // 4: sender authentication: the DKIM signing table, DMARC evaluations waiting for the
    // next aggregate report, reports other domains sent us, and small server state.
    r#"
    CREATE TABLE dkim_keys (
        id          INTEGER PRIMARY KEY,
        domain      TEXT NOT NULL,
        selector    TEXT NOT NULL,
        algorithm   TEXT NOT NULL,
        private_key BLOB NOT NULL,
        public_key  BLOB NOT NULL,
        active      INTEGER NOT NULL,
        created     INTEGER NOT NULL,
        UNIQUE (domain, selector)
    );
    CREATE TABLE dmarc_evaluations (
        id         INTEGER PRIMARY KEY,
        domain     TEXT NOT NULL,
        evaluation TEXT NOT NULL,
        created    INTEGER NOT NULL
    );
    CREATE INDEX dmarc_evaluations_created ON dmarc_evaluations(created);
    CREATE TABLE dmarc_reports (
        id         INTEGER PRIMARY KEY,
        org_name   TEXT NOT NULL,
        report_id  TEXT NOT NULL,
        domain     TEXT NOT NULL,
        date_begin INTEGER NOT NULL,
        date_end   INTEGER NOT NULL,
        messages   INTEGER NOT NULL,
        passed     INTEGER NOT NULL,
        records    TEXT NOT NULL,
        received   INTEGER NOT NULL,
        UNIQUE (org_name, report_id)
    );
    CREATE TABLE state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 5: small message bodies inline in the database: one WAL fsync covers them, instead of a
    // file creation, an fsync, a rename and a directory fsync each.
    r#"
    ALTER TABLE blobs ADD COLUMN data BLOB;
    "#,
    // 6: IMAP. Expunged UIDs with the MODSEQ of their removal, so a session (or a CONDSTORE/
    // QRESYNC client) learns what vanished since the MODSEQ it knows; the MODSEQ index makes
    // "what changed since N" cheap; recent_uid is the first UID no session has seen as
    // \Recent yet (RFC 3501 §2.3.2); uidvalidity_seq is the last UIDVALIDITY handed out per
    // account, so a name deleted and created again never reuses one (RFC 3501 §2.3.1.1).
    r#"
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE uidvalidity_seq (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        last       INTEGER NOT NULL
    );
    "#,
    // 7: IMAP subscriptions are names, not mailbox rows: RFC 3501 §6.3.6 forbids dropping a
    // subscription when its mailbox is deleted, and a mailbox created by CREATE is not
    // subscribed. The mailboxes.subscribed column is no longer read.
    r#"
    CREATE TABLE subscriptions (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    ) WITHOUT ROWID;
    INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed = 1;
    "#,
    // 8: the content layer. The classifier's token counts per account (scope = account id)
    // and globally (scope 0), with the messages it learnt (so a message moved twice is not
    // counted twice); greylisting's triplets, clients and sender domains with a good history;
    // the quarantine of held messages (one blob reference each) and their recipients.
    r#"
    CREATE TABLE bayes_tokens (
        scope INTEGER NOT NULL,
        token INTEGER NOT NULL,
        spam  INTEGER NOT NULL DEFAULT 0,
        ham   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, token)
    ) WITHOUT ROWID;
    CREATE TABLE bayes_totals (
        scope INTEGER PRIMARY KEY,
        spam  INTEGER NOT NULL DEFAULT 0,
        ham   INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE bayes_seen (
        scope   INTEGER NOT NULL,
        message TEXT NOT NULL,
        spam    INTEGER NOT NULL,
        PRIMARY KEY (scope, message)
    ) WITHOUT ROWID;
    CREATE TRIGGER accounts_forget_bayes AFTER DELETE ON accounts BEGIN
        DELETE FROM bayes_tokens WHERE scope = OLD.id;
        DELETE FROM bayes_totals WHERE scope = OLD.id;
        DELETE FROM bayes_seen WHERE scope = OLD.id;
    END;
    CREATE TABLE greylist (
        triplet    TEXT PRIMARY KEY,
        first_seen INTEGER NOT NULL,
        passed     INTEGER NOT NULL DEFAULT 0,
        last_seen  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE greylist_clients (
        net       TEXT PRIMARY KEY,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE greylist_domains (
        domain    TEXT PRIMARY KEY,
        good      INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE quarantine (
        id            TEXT PRIMARY KEY,
        blob_id       TEXT NOT NULL REFERENCES blobs(id),
        prefix        BLOB NOT NULL,
        size          INTEGER NOT NULL,
        created       INTEGER NOT NULL,
        internal_date INTEGER NOT NULL,
        sender        TEXT NOT NULL,
        subject       TEXT NOT NULL,
        reason        TEXT NOT NULL,
        score         REAL,
        trail         TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX quarantine_created ON quarantine(created);
    CREATE TABLE quarantine_rcpts (
        quarantine_id TEXT NOT NULL REFERENCES quarantine(id) ON DELETE CASCADE,
        account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        PRIMARY KEY (quarantine_id, account_id)
    ) WITHOUT ROWID;
    CREATE INDEX quarantine_rcpts_account ON quarantine_rcpts(account_id);
    "#,
    // 9: message bodies compressed at rest (codec 1: zstd frames, crate::codec; 0: as received,
    // what every older blob is). Small compressed bodies move to a rowid table: in `blobs`
    // (WITHOUT ROWID) anything over ~1 KB spills onto overflow pages of its own, where a rowid
    // table keeps rows up to ~4 KB on shared leaf pages.
    r#"
    ALTER TABLE blobs ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE blobs ADD COLUMN body INTEGER;
    CREATE TABLE blob_bodies (
        id   INTEGER PRIMARY KEY,
        data BLOB NOT NULL
    );
    "#,
    // 10: summaries of messages (crate::summary), one per blob: sort and thread keys, searched
    // header fields, ENVELOPE/BODYSTRUCTURE, each in its own table so that a SORT reads only the
    // small keys. `messages.summary` points to it (NULL: not made yet). The words of each
    // account's messages in a contentless FTS5 index (rowid: account << 40 | summary id), whose
    // rows commit with the message rows; `indexed` says whether a summary's words were indexed.
    // The covering index lets SEARCH and SORT read a mailbox without the message rows.
    r#"
    CREATE TABLE summaries (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        blob_id TEXT NOT NULL UNIQUE,
        indexed INTEGER NOT NULL,
        keys    BLOB NOT NULL
    );
    CREATE TABLE summary_headers (
        id   INTEGER PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE summary_fetch (
        id   INTEGER PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE VIRTUAL TABLE words USING fts5(terms, content='', contentless_delete=1, detail=none, tokenize='ascii');
    CREATE VIRTUAL TABLE words_vocab USING fts5vocab(words, 'row');
    ALTER TABLE messages ADD COLUMN summary INTEGER;
    CREATE INDEX messages_scan ON messages(mailbox_id, uid, summary, modseq, size, internal_date);
    "#,
    // 11: outbound protection. Sending quotas: messages, recipients and external recipients per
    // scope (an address or a domain) in 5-minute buckets, the distinct external recipients of
    // the last day, overrides and exceptions. Containment: signals per account, its sending
    // state (suspended, and when it was last resumed so older evidence stops counting), queue
    // entries that name the submitting user and are held while it is suspended, and when each
    // known login network was first seen (rows from before count as long known).
    r#"
    CREATE TABLE quota_counts (
        scope      TEXT NOT NULL,
        bucket     INTEGER NOT NULL,
        messages   INTEGER NOT NULL DEFAULT 0,
        recipients INTEGER NOT NULL DEFAULT 0,
        external   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE quota_rcpts (
        scope     TEXT NOT NULL,
        rcpt      TEXT NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (scope, rcpt)
    ) WITHOUT ROWID;
    CREATE INDEX quota_rcpts_seen ON quota_rcpts(scope, last_seen);
    CREATE TABLE quota_overrides (
        target TEXT NOT NULL,
        key    TEXT NOT NULL,
        value  INTEGER NOT NULL,
        PRIMARY KEY (target, key)
    ) WITHOUT ROWID;
    CREATE TABLE quota_exempt (
        target  TEXT PRIMARY KEY,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE account_signals (
        id      INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        kind    TEXT NOT NULL,
        count   INTEGER NOT NULL,
        detail  TEXT NOT NULL,
        at      INTEGER NOT NULL
    );
    CREATE INDEX account_signals_account ON account_signals(account, at);
    CREATE TABLE sending_state (
        account   TEXT PRIMARY KEY,
        scope     TEXT,
        reason    TEXT NOT NULL DEFAULT '',
        automatic INTEGER NOT NULL DEFAULT 0,
        since     INTEGER NOT NULL DEFAULT 0,
        resumed   INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TRIGGER accounts_forget_sending AFTER DELETE ON accounts BEGIN
        DELETE FROM sending_state WHERE account = OLD.address;
        DELETE FROM account_signals WHERE account = OLD.address;
        DELETE FROM quota_overrides WHERE target = OLD.address;
        DELETE FROM quota_exempt WHERE target = OLD.address;
    END;
    ALTER TABLE queue ADD COLUMN account TEXT NOT NULL DEFAULT '';
    ALTER TABLE queue ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX queue_account ON queue(account) WHERE account != '';
    ALTER TABLE known_logins ADD COLUMN first_seen INTEGER NOT NULL DEFAULT 0;
    "#,
    // 12: the web layer: roles, suspension, TOTP, recovery codes, sessions, API tokens, and each account's
    // logins by network and protocol (shown to the user), and the dashboard's hourly counts.
    r#"
    ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
    ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE totp (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        secret     TEXT NOT NULL,
        confirmed  INTEGER NOT NULL,
        last_step  INTEGER NOT NULL,
        created    INTEGER NOT NULL
    );
    CREATE TABLE recovery_codes (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        hash       TEXT NOT NULL,
        PRIMARY KEY (account_id, hash)
    ) WITHOUT ROWID;
    CREATE TABLE web_sessions (
        id_hash    TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        csrf       TEXT NOT NULL,
        created    INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX web_sessions_account ON web_sessions(account_id);
    CREATE TABLE login_history (
        account    TEXT NOT NULL,
        net        TEXT NOT NULL,
        proto      TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        logins     INTEGER NOT NULL,
        PRIMARY KEY (account, net, proto)
    ) WITHOUT ROWID;
    CREATE TABLE stats_hourly (
        hour  INTEGER NOT NULL,
        name  TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (hour, name)
    ) WITHOUT ROWID;
    CREATE TABLE api_tokens (
        id        INTEGER PRIMARY KEY,
        name      TEXT NOT NULL UNIQUE,
        hash      TEXT NOT NULL UNIQUE,
        scopes    TEXT NOT NULL,
        created   INTEGER NOT NULL,
        last_used INTEGER
    );
    "#,
    // IMAP: expunged UIDs are kept for a while, not forever. `at` says when a UID was
    // expunged (rows from before this migration count as old); `expunged_floor` is the highest
    // MODSEQ whose expunges were pruned, so a client that knows an older MODSEQ is answered
    // with every missing UID (a superset, RFC 7162 §3.2.10) instead of an incomplete list.
    r#"
    ALTER TABLE expunged ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN expunged_floor INTEGER NOT NULL DEFAULT 0;
    "#,
    // IMAP: INTERNALDATE keeps the zone APPEND gave it (minutes east of UTC; RFC 3501 §6.3.11
    // returns the date as the client set it). Delivered and older messages are +0000.
    r#"
    ALTER TABLE messages ADD COLUMN internal_zone INTEGER NOT NULL DEFAULT 0;
    "#,
    // When each account's password was last set (unix seconds), for the audit's maximum
    // password age. Accounts from before this migration get NULL: unknown.
    r#"
    ALTER TABLE accounts ADD COLUMN password_changed INTEGER;
    "#,
    // Login history and known networks are keyed by address (an account id may be given
    // again); they go with the account, so a new account given the same address does not see
    // where the old one logged in, nor inherit its networks as known.
    r#"
    CREATE TRIGGER accounts_forget_logins AFTER DELETE ON accounts BEGIN
        DELETE FROM login_history WHERE account = OLD.address;
        DELETE FROM known_logins WHERE account = OLD.address;
    END;
    "#,
    // Certificates and their keys (a chain of NULL is a CSR waiting for its certificate),
    // where each is used, and ACME accounts. `cert_version` counts changes so a running server
    // picks up what a CLI command did.
    r#"
    CREATE TABLE certificates (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        names      TEXT NOT NULL,
        issuer     TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after  INTEGER NOT NULL,
        key_type   TEXT NOT NULL,
        source     TEXT NOT NULL,
        chain_pem  TEXT,
        key_pem    TEXT NOT NULL,
        csr_pem    TEXT,
        created    INTEGER NOT NULL,
        warned     TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE cert_assignments (
        cert_id  INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
        usage    TEXT NOT NULL,
        target   TEXT NOT NULL,
        key_type TEXT NOT NULL,
        PRIMARY KEY (usage, target, key_type)
    ) WITHOUT ROWID;
    CREATE TABLE cert_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
    INSERT INTO cert_version VALUES (1, 0);
    CREATE TABLE acme_accounts (
        directory   TEXT PRIMARY KEY,
        credentials TEXT NOT NULL,
        created     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE acme_requests (
        id        INTEGER PRIMARY KEY,
        names     TEXT NOT NULL,
        requested INTEGER NOT NULL,
        finished  INTEGER,
        cert_id   INTEGER,
        error     TEXT
    );
    "#,
    // Containment: external recipients of submitted mail by Message-ID, kept for the
    // containment window, so a bounce that comes back after the session counts only when it is
    // about a message this server sent for the account it is addressed to (a forged one matches
    // nothing).
    r#"
    CREATE TABLE sent_rcpts (
        message_id TEXT NOT NULL,
        rcpt       TEXT NOT NULL,
        account    TEXT NOT NULL,
        at         INTEGER NOT NULL,
        PRIMARY KEY (message_id, rcpt)
    ) WITHOUT ROWID;
    CREATE INDEX sent_rcpts_at ON sent_rcpts(at);
    "#,
    // MTA-STS policy cache, outbound TLS outcomes for TLS reports, received TLS reports.
    r#"
    CREATE TABLE mta_sts_policies (
        domain  TEXT PRIMARY KEY,
        id      TEXT NOT NULL,
        policy  TEXT NOT NULL,
        fetched INTEGER NOT NULL,
        expires INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tls_outcomes (
        id            INTEGER PRIMARY KEY,
        policy_domain TEXT NOT NULL,
        policy_type   TEXT NOT NULL,
        policy_string TEXT NOT NULL,
        mx_host       TEXT NOT NULL,
        receiving_ip  TEXT NOT NULL,
        result        TEXT NOT NULL,
        detail        TEXT NOT NULL,
        created       INTEGER NOT NULL
    );
    CREATE INDEX tls_outcomes_created ON tls_outcomes(created);
    CREATE TABLE tls_reports (
        id         INTEGER PRIMARY KEY,
        org_name   TEXT NOT NULL,
        report_id  TEXT NOT NULL,
        domains    TEXT NOT NULL,
        date_begin INTEGER NOT NULL,
        date_end   INTEGER NOT NULL,
        successes  INTEGER NOT NULL,
        failures   INTEGER NOT NULL,
        json       TEXT NOT NULL,
        received   INTEGER NOT NULL,
        UNIQUE (org_name, report_id)
    );
    "#,
    // Encryption at rest (issue 16): the data key of a sealed message file (codec 2), wrapped by
    // the master key; NULL for every other blob.
    r#"
    ALTER TABLE blobs ADD COLUMN dkey BLOB;
    "#,
    // METADATA (RFC 5464): per-user annotations of the server (mailbox 0) and of mailboxes.
    r#"
    CREATE TABLE metadata (
        account_id INTEGER NOT NULL,
        mailbox_id INTEGER NOT NULL,
        name       TEXT NOT NULL,
        value      BLOB NOT NULL,
        PRIMARY KEY (account_id, mailbox_id, name)
    ) WITHOUT ROWID;
    CREATE INDEX metadata_mailbox ON metadata(mailbox_id);
    CREATE TRIGGER metadata_mailbox_gone AFTER DELETE ON mailboxes BEGIN
        DELETE FROM metadata WHERE mailbox_id = OLD.id;
    END;
    CREATE TRIGGER metadata_account_gone AFTER DELETE ON accounts BEGIN
        DELETE FROM metadata WHERE account_id = OLD.id;
    END;
    "#,
    // Each summary records the version of the summarizer that made it (those kept before are
    // version 1), so that the background backfill (sqlite/backfill.rs) makes older ones again;
    // the partial index finds the messages without a summary without reading the others.
    r#"
    ALTER TABLE summaries ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX messages_unsummarized ON messages(id) WHERE summary IS NULL;
    "#,
    // How many of a scope's distinct external recipients were last sent to in each quota
    // bucket, kept beside quota_rcpts by every submission: "distinct recipients in the last
    // day" is then a sum over at most 288 rows instead of a count over every recipient of
    // the day, which grew with the day's mail (a busy domain's submissions each counted tens
    // of thousands of index entries). 300 is quota::BUCKET. The (scope, last_seen) index served
    // only that count; every submission kept it up to date for each recipient.
    r#"
    DROP INDEX quota_rcpts_seen;
    CREATE TABLE quota_seen (
        scope  TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        rcpts  INTEGER NOT NULL,
        PRIMARY KEY (scope, bucket)
    ) WITHOUT ROWID;
    INSERT INTO quota_seen (scope, bucket, rcpts)
        SELECT scope, last_seen / 300, count(*) FROM quota_rcpts GROUP BY 1, 2;
    "#,
    // Users' OpenPGP public keys (issue 16, rampart_store::pgp): mail delivered to the account
    // is stored encrypted to `key` (binary, checked when set); `publish` puts it in the Web Key
    // Directory. Gone with the account.
    r#"
    CREATE TABLE pgp_keys (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        key BLOB NOT NULL,
        fingerprint TEXT NOT NULL,
        protect_subject INTEGER NOT NULL DEFAULT 0,
        publish INTEGER NOT NULL DEFAULT 1,
        updated INTEGER NOT NULL
    );
    "#,
    // Per-user encryption (issue 16, crate::peruser): a user's public key, the wraps of its
    // secret key, and which account's key a blob's data key is sealed to.
    r#"
    CREATE TABLE user_keys (
        account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
        public BLOB NOT NULL,
        enabled INTEGER NOT NULL
    );
    CREATE TABLE user_key_wraps (
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        wrapped BLOB NOT NULL,
        PRIMARY KEY (account_id, name)
    ) WITHOUT ROWID;
    ALTER TABLE blobs ADD COLUMN owner INTEGER;
    "#,
    // Sealed summaries of per-user copies (issue 16, crate::sealsummary): the summary and
    // words of a message sealed with its own data key; `id` is what IMAP knows it by (as the
    // negative of a summary number).
    r#"
    CREATE TABLE sealed_summaries (
        id INTEGER PRIMARY KEY,
        blob_id TEXT NOT NULL UNIQUE,
        data BLOB NOT NULL
    );
    "#,
    // Failed logins per claimed account (crate::guard), counted in FAILURE_BUCKET-second rows
    // so that every node (and a restarted server) sees an attack on the account.
    r#"
    CREATE TABLE login_failures (
        account TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        PRIMARY KEY (account, bucket)
    ) WITHOUT ROWID;
    "#,
    // A user's opt-in to server-side search of mail encrypted to their OpenPGP key on a clear
    // store (crate::pgp::PlainSearch): the plaintext's words are then kept in clear. And which
    // summaries are such plaintext search summaries, which the backfill must not remake from
    // the stored ciphertext (sqlite::pgp_delivery::Sealed::plain).
    r#"
    ALTER TABLE pgp_keys ADD COLUMN search INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE summaries ADD COLUMN plain INTEGER NOT NULL DEFAULT 0;
    "#,
    // An index on every foreign key's column that had none. With foreign keys on,
    // deleting a parent row looks up its children; without an index that is a scan of the
    // child table — every delivered queue entry releasing its body scanned the whole queue
    // and quarantine (8% of the server's CPU under a 2,000-message outbound backlog).
    r#"
    CREATE INDEX queue_blob ON queue(blob_id);
    CREATE INDEX quarantine_blob ON quarantine(blob_id);
    CREATE INDEX accounts_domain ON accounts(domain_id);
    CREATE INDEX aliases_domain ON aliases(domain_id);
    CREATE INDEX cert_assignments_cert ON cert_assignments(cert_id);
    "#,
    // The queue's prefixes (trace and DKIM-Signature fields, ~1 KiB) in a rowid table of their
    // own. In `queue` (WITHOUT ROWID, whose rows keep ~1,000 bytes on the leaf) a signed
    // message's row spilled onto an overflow page of its own: every queued message wrote a
    // whole page and every delivered one freed it again (the free list and the database
    // header in each commit). Here a row stays on a shared leaf, appended in id order.
    // `queue.prefix` is empty when `prefix_id` is set; older rows keep theirs in place. No
    // foreign key: deleting a prefix would look for queue rows by `prefix_id`, which needs an
    // index; the trigger is the only way one goes.
    r#"
    CREATE TABLE queue_prefixes (
        id     INTEGER PRIMARY KEY,
        prefix BLOB NOT NULL
    );
    ALTER TABLE queue ADD COLUMN prefix_id INTEGER;
    CREATE TRIGGER queue_forget_prefix AFTER DELETE ON queue WHEN OLD.prefix_id IS NOT NULL BEGIN
        DELETE FROM queue_prefixes WHERE id = OLD.prefix_id;
    END;
    "#,
];

/// The schema version this binary writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        // IMMEDIATE takes the write lock before reading the version, so a CLI command and the
        // server opening the store at the same moment cannot both apply one migration.
        let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = txn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > VERSION {
            return Err(StoreError::SchemaTooNew { found: current, known: VERSION });
        }
        if current == VERSION {
            return Ok(());
        }
        txn.execute_batch(MIGRATIONS[current as usize])?;
        txn.pragma_update(None, "user_version", current + 1)?;
        txn.commit()?;
        tracing::info!(event = "store_migrated", version = current + 1);
    }
}
