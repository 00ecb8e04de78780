//! The sender-authentication role: the DKIM signing table, DMARC evaluations waiting for the
//! next aggregate report, and reports other domains sent us.

use async_trait::async_trait;

use crate::Result;

/// A DKIM key in the signing table.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    /// "rsa" or "ed25519".
    pub algorithm: String,
    /// PKCS#1 DER (RSA) or PKCS#8 DER (Ed25519).
    pub private_key: Vec<u8>,
    /// What the DNS record's `p=` carries.
    pub public_key: Vec<u8>,
    /// Mail is signed with the active key of each algorithm; inactive keys stay published.
    pub active: bool,
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKey({}._domainkey.{} {} active={})", self.selector, self.domain, self.algorithm, self.active)
    }
}

/// A DMARC aggregate report another domain sent us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcReport {
    pub org_name: String,
    pub report_id: String,
    pub domain: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub messages: i64,
    pub passed: i64,
    pub records: String,
    pub received: i64,
}

#[async_trait]
pub trait SenderAuthStore: Send + Sync + 'static {
    /// Adds a key to the signing table. It becomes active when its domain has no active key of
    /// the same algorithm; otherwise it waits for [`SenderAuthStore::activate_dkim_key`]
    /// (rotation: publish the new record first). Returns whether it is active.
    async fn add_dkim_key(&self, key: DkimKey) -> Result<bool>;
    /// Keys of one domain, or of all domains, by domain and creation.
    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>>;
    /// Signs with this key from now on; the domain's other key of its algorithm stops signing
    /// but stays in the table (and in `dns records`) so mail already signed still verifies.
    async fn activate_dkim_key(&self, domain: &str, selector: &str) -> Result<()>;
    async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<()>;

    /// Remembers a DMARC evaluation (JSON) for the next aggregate report about `domain`.
    async fn add_dmarc_evaluation(&self, domain: &str, evaluation: &str) -> Result<()>;
    /// Evaluations stored before `until` (unix seconds): (domain, JSON, time).
    async fn dmarc_evaluations(&self, until: i64) -> Result<Vec<(String, String, i64)>>;
    async fn delete_dmarc_evaluations(&self, until: i64) -> Result<()>;
    /// Forgets the evaluations of one domain stored before `until`: those a report run sent
    /// (or had nobody to send to); other domains' wait for the next run.
    async fn delete_dmarc_evaluations_of(&self, domain: &str, until: i64) -> Result<()>;
    /// Stores a received report; one already stored (same organization and id) is ignored.
    async fn add_dmarc_report(&self, report: DmarcReport) -> Result<bool>;
    async fn dmarc_reports(&self) -> Result<Vec<DmarcReport>>;
}
