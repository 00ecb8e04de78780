//! The verdict trail: what every stage of the pipeline found, as typed entries with a named
//! reason. It is stored with the message as JSON (`messages.trail`), logged for refused mail,
//! and printed by `rampart message why ID`.

use serde::{Deserialize, Serialize};

/// A named stage of the pipeline, in the order the design runs them (cheapest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The guard at accept: firewall, bans, connection caps and rates, early talkers.
    Connect,
    /// DNS blocklists of client addresses (RFC 5782), once per connection.
    Dnsbl,
    /// Messages and recipients per hour from one client.
    Rate,
    Auth,
    Sender,
    /// SPF of the HELO identity (RFC 7208 §2.3).
    SpfHelo,
    /// SPF of the MAIL FROM identity (RFC 7208 §2.4).
    Spf,
    /// Forward-confirmed reverse DNS of the client (RFC 8601 §3: "iprev").
    Iprev,
    Dkim,
    Arc,
    Dmarc,
    Recipients,
    /// Triplet greylisting (client network, sender, recipient).
    Greylist,
    Content,
    /// Domain blocklists for the domains a message names: URLs, From, Reply-To, sender.
    Domainbl,
    /// The built-in rules: header, body, URL and structure checks with named scores.
    Rules,
    /// The statistical classifier, trained per user and globally.
    Bayes,
    /// clamd (INSTREAM): viruses and other malware.
    Antivirus,
    /// Third-party filters over the milter protocol (`detail` names the milter).
    Milter,
    /// Sending quotas of an authenticated user and its domain.
    Quota,
    /// Compromised-account containment: a suspended account's sending.
    Containment,
    /// The decision itself, appended last.
    Decision,
    Queue,
}

/// The result a stage reports. For authentication checks these are the RFC 8601 result
/// names; other stages use `pass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    #[serde(rename = "softfail")]
    SoftFail,
    Neutral,
    None,
    #[serde(rename = "temperror")]
    TempError,
    #[serde(rename = "permerror")]
    PermError,
    /// The check did not run (disabled, or not applicable to this role).
    Skipped,
}

impl Outcome {
    /// The RFC 8601 result keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Why a stage reported what it did. Stable names: logs and scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // connect: the guard's decision on the client
    /// Within every connection cap and rate.
    Admitted,
    /// On `guard.allowlist`: no caps, rates or bans.
    Allowlisted,
    /// On `guard.limit_exceptions` (the host's own addresses): no caps or rates, bans apply.
    LimitException,
    /// A `deny` rule matched, or an `allow` list did not.
    Firewall,
    Banned,
    ConnectionsPerIp,
    ConnectionsPerNet,
    ConnectionRate,
    /// The listener's or the server's connection cap is full.
    ListenerConnections,
    /// The client talked before the greeting (RFC 5321 §4.3.1).
    Pregreet,
    /// Stored before the guard's decision was recorded; kept so old trails still parse.
    NoFilterConfigured,
    // rates
    MessagesPerHour,
    RecipientsPerHour,
    /// A sending quota is used up (`detail` names it, `limit` is its value).
    QuotaExceeded,
    /// The account's sending is suspended (`detail` says by whom: the administrator, or the
    /// containment score).
    SendingSuspended,
    /// The mail that tells a user and the administrator about a suspension.
    SuspensionNotice,
    // recipients
    RelayDenied,
    UnknownUser,
    AddressLiteral,
    /// The recipient could not be looked up (the store failed).
    StoreUnavailable,
    TooManyRecipients,
    /// A gateway recipient could not be verified: the downstream did not answer the callout
    /// (or answered 4xx), or the recipients file cannot be read.
    RecipientVerificationFailed,
    // sender and content
    /// An authenticated user used an address they do not own (`detail` holds it).
    SenderNotOwned,
    NoFromAddress,
    /// The message is larger than the listener's `max_message_size` (`limit`).
    TooBig,
    /// A line is longer than the listener's `max_data_line` (`limit`).
    LineTooLong,
    /// The header section is larger than `max_header_size` (`limit`).
    HeaderSectionTooLarge,
    /// More header fields than `max_header_fields` (`limit`).
    TooManyHeaderFields,
    /// More Received fields than `max_received` (`limit`): a mail loop.
    MailLoop,
    /// MIME nesting deeper than `max_mime_depth` (`limit`).
    MimeTooDeep,
    /// More MIME parts than `max_mime_parts` (`limit`).
    TooManyMimeParts,
    /// A decoded MIME part larger than `max_part_size` (`limit`).
    PartTooBig,
    /// A decoded attachment larger than `max_attachment_size` (`limit`).
    AttachmentTooBig,
    // content filters (entries carry a `score` when they add to the spam score)
    /// The address or domain is on the list (`domain` is the list's zone).
    DnsblListed,
    DnsblNotListed,
    /// The list answered 127.255.255.x: it refuses our queries (Spamhaus), so it says nothing.
    DnsblUnused,
    DnsblDnsError,
    DomainblListed,
    DomainblNotListed,
    /// More domains than the per-message cap: the rest were not looked up.
    DomainblLookupCap,
    /// A rule of the built-in scorer fired (`detail` names it).
    RuleMatched,
    /// The GTUBE test string: always above the reject score, to test the path.
    Gtube,
    BayesSpam,
    BayesHam,
    BayesUncertain,
    /// Fewer trained messages of either class than the classifier needs to score.
    BayesUntrained,
    /// clamd found malware (`detail` is the signature). A failure refuses; with
    /// `filter.antivirus.action = "quarantine"` the result is neutral and the message is held.
    VirusFound,
    AntivirusClean,
    /// Larger than `filter.antivirus.max_size`, or past clamd's StreamMaxLength: not scanned.
    AntivirusSkipped,
    /// clamd could not be asked; a temporary error defers, a skipped entry means
    /// `on_error = "accept"` let it through unscanned.
    AntivirusUnavailable,
    /// A milter let the message through (`detail` names it).
    MilterAccepted,
    /// A milter refused (`detail`: its name, the stage and its reply).
    MilterRejected,
    MilterTempfailed,
    /// A milter asked to accept the message and drop it (recorded, never silent).
    MilterDiscarded,
    /// A milter asked to hold the message in the quarantine.
    MilterQuarantined,
    /// A milter changed the message or its envelope (`detail` says how).
    MilterModified,
    /// A milter could not be asked; its `on_error` decides (temperror, fail, or skipped).
    MilterUnavailable,
    /// A new triplet: try again after the delay.
    Greylisted,
    GreylistPassed,
    /// The client or sender is exempt: allowlisted, or a domain with a good history.
    GreylistExempt,
    // SMTP stages
    Authenticated,
    OwnedByUser,
    LocalMailbox,
    LocalAndQueued,
    /// Some recipients are in a gateway domain: the message is queued to its downstream.
    QueuedToDownstream,
    /// The client is a gateway route's downstream (`relay_from`) relaying its own domains'
    /// mail out (`detail` names the route's first domain).
    DownstreamRelay,
    WithinLimits,
    /// Authentication-Results headers claiming our authserv-id were removed (RFC 8601 §5).
    ForgedAuthResultsRemoved,
    DmarcReportReceived,
    DmarcReportSent,
    /// A TLS report (RFC 8460) generated for a domain's rua.
    TlsReportSent,
    DeliveryStatusNotification,
    /// The daily list of a user's held messages (`filter.quarantine.digest`).
    QuarantineDigest,
    /// The warning to postmaster that a certificate expires in 21 or 7 days.
    CertificateExpiry,
    // SPF
    SpfAuthorized,
    SpfNotAuthorized,
    SpfWeaklyNotAuthorized,
    SpfNeutral,
    SpfNoRecord,
    SpfDnsError,
    SpfBadRecord,
    // iprev
    IprevConfirmed,
    IprevMismatch,
    IprevNoPtr,
    IprevDnsError,
    // DKIM
    DkimValid,
    DkimUnsigned,
    DkimBodyHashMismatch,
    DkimBadSignature,
    DkimNoKey,
    DkimDnsError,
    DkimExpired,
    DkimMalformed,
    /// `l=` signed only part of the body: treated as not covering the message.
    DkimPartialBody,
    // ARC
    ArcValid,
    ArcValidTrustedSealer,
    ArcInvalid,
    ArcNoChain,
    ArcDnsError,
    // DMARC
    DmarcAligned,
    DmarcNotAligned,
    DmarcNoPolicy,
    DmarcDnsError,
    DmarcBadRecord,
    // decisions
    Accepted,
    DmarcPolicyReject,
    DmarcPolicyQuarantine,
    DmarcRejectOverriddenByArc,
    DmarcQuarantineOverriddenByArc,
    DmarcTempError,
    SpfFailTagged,
    SpfFailRejected,
    ChecksDisabled,
    /// The summed score of the content filters reached `junk_score`.
    SpamScoreJunk,
    /// ... `quarantine_score`: held in the quarantine.
    SpamScoreQuarantine,
    /// ... `reject_score`: refused at the end of data.
    SpamScoreReject,
}

impl Reason {
    /// The snake_case name used in JSON and logs.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// A DMARC disposition (RFC 7489 §6.3 `p`/`sp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

/// One stage's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub stage: Stage,
    pub result: Outcome,
    pub reason: Reason,
    /// The domain the check was about (SPF identity, DKIM d=, DMARC From domain, ARC sealer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// DMARC only: the policy to apply after `sp`, `t=` and `pct` sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Disposition>,
    /// Free text for people: a selector, the error the library gave, the sampling, the
    /// address refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The configured limit a refusal names (bytes, recipients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What this finding adds to the message's spam score (negative for good signs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

impl Entry {
    pub fn new(stage: Stage, result: Outcome, reason: Reason) -> Entry {
        Entry { stage, result, reason, domain: None, policy: None, detail: String::new(), limit: None, score: None }
    }

    pub fn domain(mut self, domain: impl Into<String>) -> Entry {
        let d = domain.into();
        if !d.is_empty() {
            self.domain = Some(d);
        }
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Entry {
        self.detail = detail.into();
        self
    }

    pub fn policy(mut self, policy: Disposition) -> Entry {
        self.policy = Some(policy);
        self
    }

    pub fn limit(mut self, limit: u64) -> Entry {
        self.limit = Some(limit);
        self
    }

    pub fn score(mut self, score: f64) -> Entry {
        self.score = Some(score);
        self
    }
}

/// The ordered findings for one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Trail(pub Vec<Entry>);

impl Trail {
    pub fn push(&mut self, entry: Entry) {
        self.0.push(entry);
    }

    pub fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.0.extend(entries);
    }

    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// The first entry of a stage.
    pub fn find(&self, stage: Stage) -> Option<&Entry> {
        self.0.iter().find(|e| e.stage == stage)
    }

    /// The spam score: the sum of every entry's `score`.
    pub fn score(&self) -> f64 {
        self.0.iter().filter_map(|e| e.score).sum()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "[]".into())
    }

    /// Parses a stored trail. Older messages stored free-form JSON objects: those that do
    /// not fit the typed form come back as `None` and are shown raw.
    pub fn from_json(text: &str) -> Option<Trail> {
        serde_json::from_str(text).ok()
    }

    /// One line per entry for `rampart message why` and log lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.0 {
            let stage = serde_json::to_value(e.stage).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            out.push_str(&format!("  {stage:<11} {:<9} {}", e.result.as_str(), e.reason.name()));
            if let Some(d) = &e.domain {
                out.push_str(&format!("  domain={d}"));
            }
            if let Some(p) = e.policy {
                out.push_str(&format!("  policy={}", p.as_str()));
            }
            if let Some(l) = e.limit {
                out.push_str(&format!("  limit={l}"));
            }
            if let Some(score) = e.score {
                out.push_str(&format!("  score={score:+.1}"));
            }
            if !e.detail.is_empty() {
                out.push_str(&format!("  ({})", e.detail));
            }
            out.push('\n');
        }
        out
    }

    /// The trail in one log field: `stage:result:reason,...`.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|e| {
                let stage = serde_json::to_value(e.stage).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                format!("{stage}:{}:{}", e.result.as_str(), e.reason.name())
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_uses_stable_names() {
        let mut t = Trail::default();
        t.push(Entry::new(Stage::Dmarc, Outcome::Fail, Reason::DmarcNotAligned).domain("example.test").policy(Disposition::Reject));
        let json = t.to_json();
        assert_eq!(
            json,
            r#"[{"stage":"dmarc","result":"fail","reason":"dmarc_not_aligned","domain":"example.test","policy":"reject"}]"#
        );
        assert_eq!(Trail::from_json(&json), Some(t.clone()));
        assert!(t.render().contains("dmarc       fail      dmarc_not_aligned  domain=example.test  policy=reject"));
        assert_eq!(t.summary(), "dmarc:fail:dmarc_not_aligned");
        assert_eq!(Outcome::SoftFail.as_str(), "softfail");
        assert_eq!(serde_json::to_string(&Outcome::TempError).unwrap(), "\"temperror\"");
    }
}
