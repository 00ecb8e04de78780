//! The certificate role: certificates with their private keys, where each is used, and the
//! ACME account of each directory.
//!
//! A certificate row without a chain is a pending CSR: its key waits for the CA's answer
//! (`rampart cert import --cert` completes it). Keys never leave this role except to the TLS
//! layer that serves them; [`StoredCert`]'s `Debug` leaves them out.

use async_trait::async_trait;

use crate::Result;

/// A certificate (or a pending request) and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCert {
    pub id: i64,
    /// The DNS names (and addresses) it is for: its SANs, or those asked for in a CSR.
    pub names: Vec<String>,
    /// The issuer's distinguished name; empty for a pending CSR.
    pub issuer: String,
    /// Validity, unix seconds; 0 for a pending CSR.
    pub not_before: i64,
    pub not_after: i64,
    /// `ecdsa-p256`, `rsa-2048`, ... as the key says.
    pub key_type: String,
    /// `imported`, `self-signed`, `csr`, `acme`.
    pub source: String,
    /// The chain as PEM, leaf first; None while a CSR waits for its certificate.
    pub chain_pem: Option<String>,
    /// The private key as PEM (PKCS#8).
    pub key_pem: String,
    /// The PKCS#10 request as PEM, for certificates that started as a CSR.
    pub csr_pem: Option<String>,
    pub created: i64,
    /// Expiry warnings already sent: the thresholds in days (21, 7).
    pub warned: Vec<i64>,
}

impl std::fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredCert({} {:?} {} until {})", self.id, self.names, self.key_type, self.not_after)
    }
}

/// Where a certificate is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Usage {
    /// The default certificate of a listener (`smtp`, `imaps`, `https`...).
    Listener,
    /// Served to clients whose SNI names this host.
    Host,
    /// The client certificate presented to a smart host (a `[[queue.route]]` `smart_host`).
    SmartHost,
}

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Listener => "listener",
            Usage::Host => "host",
            Usage::SmartHost => "smart-host",
        }
    }

    pub fn parse(s: &str) -> Option<Usage> {
        match s {
            "listener" => Some(Usage::Listener),
            "host" => Some(Usage::Host),
            "smart-host" => Some(Usage::SmartHost),
            _ => None,
        }
    }
}

/// One use of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub cert_id: i64,
    pub usage: Usage,
    /// The listener, host or smart host name (lowercase).
    pub target: String,
}

#[async_trait]
pub trait CertificateStore: Send + Sync + 'static {
    /// Stores a certificate (or a pending CSR, `chain_pem` None); returns its id.
    async fn add_certificate(&self, cert: StoredCert) -> Result<i64>;
    /// Gives a pending CSR (or any entry) its certificate: chain, issuer, validity.
    async fn complete_certificate(&self, id: i64, chain_pem: &str, issuer: &str, not_before: i64, not_after: i64) -> Result<()>;
    /// Every certificate, by id.
    async fn certificates(&self) -> Result<Vec<StoredCert>>;
    async fn certificate(&self, id: i64) -> Result<StoredCert>;
    /// Deletes a certificate and its assignments.
    async fn delete_certificate(&self, id: i64) -> Result<()>;
    /// Uses a certificate for a listener, host or smart host. A listener or smart host has one
    /// certificate; a host has one per key type (ECDSA and RSA side by side), so a new one
    /// replaces the previous one of the same key type.
    async fn assign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()>;
    async fn unassign_certificate(&self, id: i64, usage: Usage, target: &str) -> Result<()>;
    async fn assignments(&self) -> Result<Vec<Assignment>>;
    /// Moves every assignment of `old` to `new` (a renewal going live) in one transaction.
    async fn replace_certificate(&self, old: i64, new: i64) -> Result<()>;
    /// Records that the expiry warning for `days` was sent.
    async fn mark_cert_warned(&self, id: i64, days: i64) -> Result<()>;
    /// A number that changes with every change of certificates or assignments, so a running
    /// server notices what a CLI command did.
    async fn certificates_version(&self) -> Result<i64>;
    /// The ACME account credentials (JSON) kept for a directory URL.
    async fn acme_account(&self, directory: &str) -> Result<Option<String>>;
    async fn set_acme_account(&self, directory: &str, credentials: &str) -> Result<()>;
    /// Asks the running server to order a certificate for `names` now (`rampart cert acme`:
    /// only the server's listeners can answer the CA's challenges). Returns the request's id.
    async fn request_acme(&self, names: &[String]) -> Result<i64>;
    /// Requests not yet finished: (id, names). A backend shared by several nodes hands each
    /// request to one caller: what it returns is claimed for a lease (15 minutes on
    /// PostgreSQL), and another caller gets it again only once the lease has run out without
    /// [`CertificateStore::finish_acme_request`] (its node died mid-order).
    async fn acme_requests_pending(&self) -> Result<Vec<(i64, Vec<String>)>>;
    /// Records the outcome: the new certificate's id, or the error.
    async fn finish_acme_request(&self, id: i64, outcome: std::result::Result<i64, String>) -> Result<()>;
    /// A request's outcome: None while it waits.
    async fn acme_request(&self, id: i64) -> Result<Option<std::result::Result<i64, String>>>;
    /// Claims the ordering (or renewal) of the certificate for `name` for `holder` (a node's
    /// `[cluster] node_id`) until `now + lease`: true when the claim is `holder`'s (new, its
    /// own renewed, or another's that ran out), false while another node holds it. Nodes
    /// sharing a store call this before ordering, so one node orders and all serve. One
    /// embedded store has one server: the default says yes.
    async fn acme_claim(&self, name: &str, holder: &str, now: i64, lease: i64) -> Result<bool> {
        let _ = (name, holder, now, lease);
        Ok(true)
    }
}
