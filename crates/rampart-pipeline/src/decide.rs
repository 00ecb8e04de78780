//! The one place that turns evidence into a verdict. [`decide`] is pure: the trail and the
//! policy in, accept / Junk / defer / reject with the SMTP reply out. Every check has already
//! run and recorded what it found (including DMARC `pct` sampling, which needs randomness and
//! is done by the DMARC stage), so the same trail always gives the same decision.
//!
//! The session asks at every point where it may refuse: at connect (the guard's finding), at
//! MAIL and RCPT (rates, recipients, sender ownership, sending quotas, a suspended account's
//! sending) with the connection's trail plus the new entry, and at the end of data with the
//! message's whole trail. Entries that refuse on their own ([`refusal`]) speak first, in trail
//! order; then the sender-authentication policy.

use crate::trail::{Disposition, Entry, Outcome, Reason, Stage, Trail};

/// What to do with mail whose SPF fails when no DMARC policy speaks for the From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfFailAction {
    /// Record it only.
    Accept,
    /// Deliver to Junk (the default: SPF alone breaks on forwarding, RFC 7208 Appendix D).
    Tag,
    /// Refuse with 550 5.7.23 (RFC 7372).
    Reject,
}

/// Local policy, from `[auth_checks]` and `[filter.spam]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// A DMARC failure under p=reject is refused at end of data (RFC 7489 §6.6.3).
    pub dmarc_reject: bool,
    /// A DMARC failure under p=quarantine goes to Junk.
    pub dmarc_quarantine: bool,
    pub spf_fail: SpfFailAction,
    /// A DNS failure while evaluating DMARC defers the message (4xx) instead of accepting it.
    pub defer_on_temperror: bool,
    /// Spam scores at or above these deliver to Junk, hold in the quarantine, refuse.
    pub junk_score: f64,
    pub quarantine_score: f64,
    pub reject_score: f64,
    /// Mail our users submit: it cannot go to anyone's Junk or our quarantine, so the spam
    /// score only refuses (at `reject_score`, with 554 5.7.1: the client must not retry).
    pub outbound: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            dmarc_reject: true,
            dmarc_quarantine: true,
            spf_fail: SpfFailAction::Tag,
            defer_on_temperror: false,
            junk_score: 5.0,
            quarantine_score: 10.0,
            reject_score: 15.0,
            outbound: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    /// Deliver to the recipients' Junk folder.
    Junk,
    /// Hold in the quarantine, stored as durably as a delivery, until released or expired.
    Quarantine,
    /// Accept and drop (a milter asked for it); logged with its trail, never silent.
    Discard,
    /// Temporary refusal: the client tries again later.
    Defer,
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Junk => "junk",
            Action::Quarantine => "quarantine",
            Action::Discard => "discard",
            Action::Defer => "defer",
            Action::Reject => "reject",
        }
    }

    /// How far from plain delivery: of two findings, the more severe one decides.
    fn severity(self) -> u8 {
        match self {
            Action::Accept => 0,
            Action::Junk => 1,
            Action::Quarantine => 2,
            Action::Discard => 3,
            Action::Defer => 4,
            Action::Reject => 5,
        }
    }
}

/// The SMTP reply for a refusal: code, RFC 3463 status, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    /// Set for Defer and Reject.
    pub refusal: Option<Refusal>,
}

impl Decision {
    fn accept(reason: Reason) -> Decision {
        Decision { action: Action::Accept, reason, refusal: None }
    }

    fn junk(reason: Reason) -> Decision {
        Decision { action: Action::Junk, reason, refusal: None }
    }

    /// The decision as the trail's last entry.
    pub fn entry(&self) -> Entry {
        let result = match self.action {
            Action::Accept => Outcome::Pass,
            Action::Junk | Action::Quarantine | Action::Discard => Outcome::Neutral,
            Action::Defer => Outcome::TempError,
            Action::Reject => Outcome::Fail,
        };
        Entry::new(Stage::Decision, result, self.reason).detail(self.action.as_str())
    }
}

fn is_trusted_arc(trail: &Trail) -> bool {
    trail.find(Stage::Arc).is_some_and(|e| e.result == Outcome::Pass && e.reason == Reason::ArcValidTrustedSealer)
}

/// The reply for an entry that refuses by itself, whatever else the trail holds: the guard's
/// connect refusals, rates, recipients, sender ownership and content limits. None for
/// passing entries and for findings that only weigh in (SPF, DKIM, DMARC...).
pub fn refusal(e: &Entry) -> Option<Refusal> {
    use Reason as R;
    if !matches!(e.result, Outcome::Fail | Outcome::TempError) {
        return None;
    }
    let limit = e.limit.unwrap_or_default();
    let (code, status, text): (u16, &'static str, String) = match e.reason {
        R::Firewall | R::Banned => (554, "5.7.1", "Access denied".into()),
        R::ConnectionsPerIp | R::ConnectionsPerNet | R::ConnectionRate | R::ListenerConnections => (421, "4.7.0", "Too many connections, try again later".into()),
        R::Pregreet => (554, "5.5.1", "Protocol error: you talked before the greeting".into()),
        R::MessagesPerHour | R::RecipientsPerHour => (451, "4.7.0", "Too much mail from your address; try again later".into()),
        R::QuotaExceeded => (451, "4.7.1", format!("Sending quota {} ({limit}) reached; try again later", e.detail)),
        R::SendingSuspended => (554, "5.7.1", format!("Sending from this account is suspended ({}); contact your administrator", e.detail)),
        R::RelayDenied => (554, "5.7.1", "Relay access denied".into()),
        R::UnknownUser => (550, "5.1.1", "Recipient address rejected: user unknown".into()),
        R::AddressLiteral => (553, "5.1.3", "Address literals are not accepted".into()),
        R::StoreUnavailable => (451, "4.3.0", "Temporary lookup failure, try again later".into()),
        R::TooManyRecipients => (452, "4.5.3", "Too many recipients".into()),
        // RFC 3463 §3.5: X.4.3 "directory server failure", the callout's downstream.
        R::RecipientVerificationFailed => (451, "4.4.3", "Recipient verification is unavailable, try again later".into()),
        R::SenderNotOwned => (553, "5.7.1", format!("Sender address <{}> is not yours", e.detail)),
        R::NoFromAddress => (550, "5.6.0", "The message has no From address (RFC 5322 §3.6)".into()),
        R::TooBig => (552, "5.3.4", format!("Message size exceeds the limit of {limit} bytes")),
        R::LineTooLong => (554, "5.6.0", format!("Message has a line longer than {limit} bytes")),
        R::HeaderSectionTooLarge => (552, "5.3.4", format!("Header section exceeds the limit of {limit} bytes (max_header_size)")),
        R::TooManyHeaderFields => (552, "5.3.4", format!("More than {limit} header fields (max_header_fields)")),
        R::MailLoop => (554, "5.4.6", format!("Too many Received headers (more than {limit}): mail loop (max_received)")),
        R::MimeTooDeep => (554, "5.6.0", format!("MIME structure nested deeper than {limit} levels (max_mime_depth)")),
        R::TooManyMimeParts => (554, "5.6.0", format!("More than {limit} MIME parts (max_mime_parts)")),
        R::PartTooBig => (552, "5.3.4", format!("A MIME part exceeds the limit of {limit} bytes (max_part_size)")),
        R::AttachmentTooBig => (552, "5.3.4", format!("An attachment exceeds the limit of {limit} bytes (max_attachment_size)")),
        // Only lists configured with `reject = true` record a listing as a failure.
        R::DnsblListed => {
            let zone = e.domain.as_deref().unwrap_or("a DNS blocklist");
            (554, "5.7.1", format!("Service unavailable; client [{}] blocked using {zone}", e.detail))
        }
        R::Greylisted => (451, "4.7.1", "Greylisted, try again later".into()),
        R::VirusFound => (554, "5.7.1", format!("Message rejected: it contains malware ({})", e.detail)),
        R::AntivirusUnavailable => (451, "4.7.1", "The message could not be scanned for malware, try again later".into()),
        R::MilterRejected => (550, "5.7.1", "Message rejected by a content filter".into()),
        R::MilterTempfailed => (451, "4.7.1", "A content filter asks to try again later".into()),
        R::MilterUnavailable if e.result == Outcome::Fail => (554, "5.7.1", "Message refused: a content filter is unavailable".into()),
        R::MilterUnavailable => (451, "4.7.1", "A content filter is unavailable, try again later".into()),
        _ => return None,
    };
    Some(Refusal { code, status, text })
}

pub fn decide(trail: &Trail, policy: &Policy) -> Decision {
    if let Some((e, r)) = trail.entries().iter().find_map(|e| refusal(e).map(|r| (e, r))) {
        let action = if r.code >= 500 { Action::Reject } else { Action::Defer };
        return Decision { action, reason: e.reason, refusal: Some(r) };
    }
    let auth = sender_authentication(trail, policy);
    let held = trail.entries().iter().find_map(|e| holds(e).map(|action| Decision { action, reason: e.reason, refusal: None }));
    [held, spam_score(trail, policy)].into_iter().flatten().fold(auth, |best, d| if d.action.severity() > best.action.severity() { d } else { best })
}

/// Entries that hold or drop the message by themselves: malware found where the antivirus
/// action is "quarantine" (a neutral result; a failing one refuses instead), a milter's
/// quarantine or discard.
fn holds(e: &Entry) -> Option<Action> {
    match (e.result, e.reason) {
        (Outcome::Neutral, Reason::VirusFound | Reason::MilterQuarantined) => Some(Action::Quarantine),
        (Outcome::Neutral, Reason::MilterDiscarded) => Some(Action::Discard),
        _ => None,
    }
}

/// What the content filters' summed score calls for, if anything.
fn spam_score(trail: &Trail, policy: &Policy) -> Option<Decision> {
    let score = trail.score();
    if policy.outbound {
        return (score >= policy.reject_score).then(|| Decision {
            action: Action::Reject,
            reason: Reason::SpamScoreReject,
            refusal: Some(Refusal { code: 554, status: "5.7.1", text: format!("Message refused: it looks like spam (score {score:.1})") }),
        });
    }
    if score >= policy.reject_score {
        return Some(Decision {
            action: Action::Reject,
            reason: Reason::SpamScoreReject,
            refusal: Some(Refusal { code: 550, status: "5.7.1", text: format!("Message rejected as spam (score {score:.1})") }),
        });
    }
    if score >= policy.quarantine_score {
        return Some(Decision { action: Action::Quarantine, reason: Reason::SpamScoreQuarantine, refusal: None });
    }
    (score >= policy.junk_score).then(|| Decision::junk(Reason::SpamScoreJunk))
}

/// SPF, DKIM, ARC and DMARC weighed under the domain's and our own policy.
fn sender_authentication(trail: &Trail, policy: &Policy) -> Decision {
    let dmarc = trail.find(Stage::Dmarc);
    if let Some(d) = dmarc {
        match d.result {
            Outcome::Fail => {
                let domain = d.domain.clone().unwrap_or_default();
                match d.policy.unwrap_or(Disposition::None) {
                    // RFC 7489 §6.7: local policy may override the domain's policy; a valid
                    // ARC chain from a sealer we trust vouches for mail a forwarder broke.
                    Disposition::Reject if is_trusted_arc(trail) => return Decision::accept(Reason::DmarcRejectOverriddenByArc),
                    Disposition::Reject if policy.dmarc_reject => {
                        return Decision {
                            action: Action::Reject,
                            reason: Reason::DmarcPolicyReject,
                            refusal: Some(Refusal {
                                code: 550,
                                status: "5.7.1",
                                text: format!("Message rejected: DMARC policy of {domain} says reject and the message failed it"),
                            }),
                        };
                    }
                    Disposition::Reject | Disposition::Quarantine if is_trusted_arc(trail) => {
                        return Decision::accept(Reason::DmarcQuarantineOverriddenByArc);
                    }
                    Disposition::Reject | Disposition::Quarantine if policy.dmarc_quarantine => {
                        return Decision::junk(if d.policy == Some(Disposition::Reject) {
                            Reason::DmarcPolicyReject
                        } else {
                            Reason::DmarcPolicyQuarantine
                        });
                    }
                    _ => {}
                }
            }
            Outcome::TempError if policy.defer_on_temperror => {
                return Decision {
                    action: Action::Defer,
                    reason: Reason::DmarcTempError,
                    refusal: Some(Refusal { code: 451, status: "4.7.5", text: "DMARC could not be evaluated (DNS error), try again later".into() }),
                };
            }
            _ => {}
        }
    }
    // SPF on its own decides only where no DMARC policy applies to the From domain: DMARC,
    // when published, already weighed SPF together with DKIM.
    let dmarc_applies = dmarc.is_some_and(|d| d.result != Outcome::None && d.result != Outcome::Skipped);
    let spf_failed = trail.find(Stage::Spf).is_some_and(|e| e.result == Outcome::Fail)
        || trail.find(Stage::SpfHelo).is_some_and(|e| e.result == Outcome::Fail);
    if spf_failed && !dmarc_applies {
        match policy.spf_fail {
            SpfFailAction::Accept => {}
            SpfFailAction::Tag => return Decision::junk(Reason::SpfFailTagged),
            SpfFailAction::Reject => {
                return Decision {
                    action: Action::Reject,
                    reason: Reason::SpfFailRejected,
                    // RFC 7372 §3.2: 5.7.23 for an SPF validation failure.
                    refusal: Some(Refusal { code: 550, status: "5.7.23", text: "Message rejected: SPF does not authorize this sender".into() }),
                };
            }
        }
    }
    Decision::accept(Reason::Accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stage: Stage, result: Outcome, reason: Reason, policy: Option<Disposition>) -> Entry {
        let mut e = Entry::new(stage, result, reason).domain("example.test");
        e.policy = policy;
        e
    }

    #[test]
    fn table() {
        use Disposition as D;
        use Outcome as O;
        use Reason as R;
        use Stage as S;
        let on = Policy::default();
        let off = Policy { dmarc_reject: false, dmarc_quarantine: false, ..Policy::default() };
        let reject_off = Policy { dmarc_reject: false, ..Policy::default() };
        let spf_reject = Policy { spf_fail: SpfFailAction::Reject, ..Policy::default() };
        let spf_accept = Policy { spf_fail: SpfFailAction::Accept, ..Policy::default() };
        let defer = Policy { defer_on_temperror: true, ..Policy::default() };
        let arc_trusted = entry(S::Arc, O::Pass, R::ArcValidTrustedSealer, None);
        let arc_untrusted = entry(S::Arc, O::Pass, R::ArcValid, None);
        let spf_fail = entry(S::Spf, O::Fail, R::SpfNotAuthorized, None);
        let spf_soft = entry(S::Spf, O::SoftFail, R::SpfWeaklyNotAuthorized, None);
        let dmarc = |o, p| entry(S::Dmarc, o, R::DmarcNotAligned, p);
        let cases: Vec<(&str, Vec<Entry>, &Policy, Action, Reason)> = vec![
            ("nothing known", vec![], &on, Action::Accept, R::Accepted),
            ("dmarc pass", vec![spf_fail.clone(), dmarc(O::Pass, Some(D::Reject))], &on, Action::Accept, R::Accepted),
            ("dmarc reject", vec![dmarc(O::Fail, Some(D::Reject))], &on, Action::Reject, R::DmarcPolicyReject),
            ("dmarc reject, rejecting off", vec![dmarc(O::Fail, Some(D::Reject))], &reject_off, Action::Junk, R::DmarcPolicyReject),
            ("dmarc reject, all off", vec![dmarc(O::Fail, Some(D::Reject))], &off, Action::Accept, R::Accepted),
            ("dmarc quarantine", vec![dmarc(O::Fail, Some(D::Quarantine))], &on, Action::Junk, R::DmarcPolicyQuarantine),
            ("dmarc quarantine off", vec![dmarc(O::Fail, Some(D::Quarantine))], &off, Action::Accept, R::Accepted),
            ("dmarc none", vec![dmarc(O::Fail, Some(D::None))], &on, Action::Accept, R::Accepted),
            ("pct sampled down to none", vec![dmarc(O::Fail, Some(D::None))], &on, Action::Accept, R::Accepted),
            ("trusted arc", vec![arc_trusted.clone(), dmarc(O::Fail, Some(D::Reject))], &on, Action::Accept, R::DmarcRejectOverriddenByArc),
            ("trusted arc quarantine", vec![arc_trusted, dmarc(O::Fail, Some(D::Quarantine))], &on, Action::Accept, R::DmarcQuarantineOverriddenByArc),
            ("untrusted arc", vec![arc_untrusted, dmarc(O::Fail, Some(D::Reject))], &on, Action::Reject, R::DmarcPolicyReject),
            ("spf fail, no dmarc", vec![spf_fail.clone()], &on, Action::Junk, R::SpfFailTagged),
            ("spf fail, dmarc record-less", vec![spf_fail.clone(), dmarc(O::None, None)], &on, Action::Junk, R::SpfFailTagged),
            ("spf fail rejected", vec![spf_fail.clone()], &spf_reject, Action::Reject, R::SpfFailRejected),
            ("spf fail accepted", vec![spf_fail.clone()], &spf_accept, Action::Accept, R::Accepted),
            ("spf fail under dmarc none", vec![spf_fail, dmarc(O::Fail, Some(D::None))], &on, Action::Accept, R::Accepted),
            ("helo fail", vec![entry(S::SpfHelo, O::Fail, R::SpfNotAuthorized, None)], &on, Action::Junk, R::SpfFailTagged),
            ("softfail is not fail", vec![spf_soft], &on, Action::Accept, R::Accepted),
            ("dns error accepted", vec![dmarc(O::TempError, None)], &on, Action::Accept, R::Accepted),
            ("dns error deferred", vec![dmarc(O::TempError, None)], &defer, Action::Defer, R::DmarcTempError),
        ];
        for (name, entries, policy, action, reason) in cases {
            let d = decide(&Trail(entries), policy);
            assert_eq!((d.action, d.reason), (action, reason), "{name}");
            assert_eq!(d.refusal.is_some(), matches!(action, Action::Reject | Action::Defer), "{name}");
        }
    }

    #[test]
    fn stages_before_the_message() {
        use Outcome as O;
        use Reason as R;
        use Stage as S;
        let admitted = Entry::new(S::Connect, O::Pass, R::Admitted);
        let cases: Vec<(Vec<Entry>, Action, u16, &str)> = vec![
            (vec![Entry::new(S::Connect, O::Fail, R::Banned)], Action::Reject, 554, "5.7.1"),
            (vec![Entry::new(S::Connect, O::TempError, R::ConnectionsPerIp)], Action::Defer, 421, "4.7.0"),
            (vec![Entry::new(S::Connect, O::Fail, R::Pregreet)], Action::Reject, 554, "5.5.1"),
            (vec![admitted.clone(), Entry::new(S::Rate, O::TempError, R::MessagesPerHour)], Action::Defer, 451, "4.7.0"),
            (vec![admitted.clone(), Entry::new(S::Recipients, O::Fail, R::RelayDenied)], Action::Reject, 554, "5.7.1"),
            (vec![admitted.clone(), Entry::new(S::Quota, O::TempError, R::QuotaExceeded).detail("messages_per_hour").limit(200)], Action::Defer, 451, "4.7.1"),
            (vec![admitted.clone(), Entry::new(S::Containment, O::Fail, R::SendingSuspended).detail("by the administrator")], Action::Reject, 554, "5.7.1"),
            (vec![admitted.clone(), Entry::new(S::Recipients, O::Fail, R::UnknownUser)], Action::Reject, 550, "5.1.1"),
            (vec![admitted.clone(), Entry::new(S::Recipients, O::TempError, R::StoreUnavailable)], Action::Defer, 451, "4.3.0"),
            (vec![admitted.clone(), Entry::new(S::Recipients, O::TempError, R::TooManyRecipients)], Action::Defer, 452, "4.5.3"),
            (vec![admitted.clone(), Entry::new(S::Recipients, O::TempError, R::RecipientVerificationFailed)], Action::Defer, 451, "4.4.3"),
            (vec![admitted.clone(), Entry::new(S::Content, O::Fail, R::TooBig).limit(10)], Action::Reject, 552, "5.3.4"),
            // A refusing entry wins over a DMARC pass later in the trail.
            (
                vec![admitted.clone(), Entry::new(S::Sender, O::Fail, R::SenderNotOwned).detail("x@y.test"), entry(S::Dmarc, O::Pass, R::DmarcAligned, None)],
                Action::Reject,
                553,
                "5.7.1",
            ),
        ];
        for (entries, action, code, status) in cases {
            let d = decide(&Trail(entries.clone()), &Policy::default());
            let r = d.refusal.expect("refused");
            assert_eq!((d.action, r.code, r.status), (action, code, status), "{entries:?}");
            assert_eq!(d.reason, entries.iter().find(|e| e.result != O::Pass).unwrap().reason);
        }
        let too_big = decide(&Trail(vec![Entry::new(S::Content, O::Fail, R::TooBig).limit(100)]), &Policy::default());
        assert_eq!(too_big.refusal.unwrap().text, "Message size exceeds the limit of 100 bytes");
        let quota = decide(&Trail(vec![Entry::new(S::Quota, O::TempError, R::QuotaExceeded).detail("messages_per_hour").limit(200)]), &Policy::default());
        assert_eq!(quota.refusal.unwrap().text, "Sending quota messages_per_hour (200) reached; try again later");
        let suspended = decide(&Trail(vec![Entry::new(S::Containment, O::Fail, R::SendingSuspended).detail("suspected compromise")]), &Policy::default());
        assert_eq!(suspended.refusal.unwrap().text, "Sending from this account is suspended (suspected compromise); contact your administrator");
        let sender = decide(&Trail(vec![Entry::new(S::Sender, O::Fail, R::SenderNotOwned).detail("ceo@example.test")]), &Policy::default());
        assert_eq!(sender.refusal.unwrap().text, "Sender address <ceo@example.test> is not yours");
        // Passing entries of the same stages never refuse.
        let fine = vec![admitted, Entry::new(S::Recipients, O::Pass, R::LocalMailbox), Entry::new(S::Content, O::Pass, R::WithinLimits)];
        assert_eq!(decide(&Trail(fine), &Policy::default()).action, Action::Accept);
    }

    #[test]
    fn spam_scores_against_thresholds() {
        use Outcome as O;
        use Reason as R;
        use Stage as S;
        let rule = |score: f64| Entry::new(S::Rules, O::Neutral, R::RuleMatched).score(score);
        let p = Policy::default();
        let cases: Vec<(Vec<Entry>, Action, Reason)> = vec![
            (vec![rule(4.9)], Action::Accept, R::Accepted),
            (vec![rule(3.0), rule(2.0)], Action::Junk, R::SpamScoreJunk),
            (vec![rule(6.0), Entry::new(S::Bayes, O::Neutral, R::BayesSpam).score(4.0)], Action::Quarantine, R::SpamScoreQuarantine),
            (vec![rule(1000.0)], Action::Reject, R::SpamScoreReject),
            // Negative scores count too.
            (vec![rule(7.0), Entry::new(S::Bayes, O::Neutral, R::BayesHam).score(-3.0)], Action::Accept, R::Accepted),
            // The stronger of sender authentication and spam score decides.
            (vec![entry(S::Dmarc, O::Fail, R::DmarcNotAligned, Some(Disposition::Reject)), rule(12.0)], Action::Reject, R::DmarcPolicyReject),
            (vec![entry(S::Dmarc, O::Fail, R::DmarcNotAligned, Some(Disposition::Quarantine)), rule(12.0)], Action::Quarantine, R::SpamScoreQuarantine),
            (vec![entry(S::Dmarc, O::Fail, R::DmarcNotAligned, Some(Disposition::Quarantine)), rule(6.0)], Action::Junk, R::DmarcPolicyQuarantine),
        ];
        for (entries, action, reason) in cases {
            let d = decide(&Trail(entries.clone()), &p);
            assert_eq!((d.action, d.reason), (action, reason), "{entries:?}");
        }
        let r = decide(&Trail(vec![rule(15.5)]), &p).refusal.unwrap();
        assert_eq!((r.code, r.status, r.text.as_str()), (550, "5.7.1", "Message rejected as spam (score 15.5)"));
        // Outbound: no Junk or quarantine for submitted mail, only a refusal at its threshold.
        let out = Policy { outbound: true, reject_score: 10.0, ..Policy::default() };
        assert_eq!(decide(&Trail(vec![rule(9.0)]), &out).action, Action::Accept);
        let r = decide(&Trail(vec![rule(11.0)]), &out).refusal.unwrap();
        assert_eq!((r.code, r.status), (554, "5.7.1"));
        // A listing on a list with `reject = true` refuses at once, naming the list.
        let listed = Entry::new(S::Dnsbl, O::Fail, R::DnsblListed).domain("zen.example").detail("192.0.2.7");
        let r = decide(&Trail(vec![listed]), &p).refusal.unwrap();
        assert_eq!((r.code, r.text.as_str()), (554, "Service unavailable; client [192.0.2.7] blocked using zen.example"));
        // On a scoring list it only adds its score.
        let scored = Entry::new(S::Dnsbl, O::Neutral, R::DnsblListed).domain("zen.example").score(3.0);
        assert_eq!(decide(&Trail(vec![scored]), &p).action, Action::Accept);
    }

    #[test]
    fn malware_refuses_or_holds() {
        let found = |result| Entry::new(Stage::Antivirus, result, Reason::VirusFound).detail("Test.EICAR");
        let d = decide(&Trail(vec![found(Outcome::Fail)]), &Policy::default());
        let r = d.refusal.unwrap();
        assert_eq!((d.action, r.code, r.status), (Action::Reject, 554, "5.7.1"));
        assert!(r.text.contains("Test.EICAR"));
        let d = decide(&Trail(vec![found(Outcome::Neutral)]), &Policy::default());
        assert_eq!((d.action, d.reason), (Action::Quarantine, Reason::VirusFound));
        let down = Entry::new(Stage::Antivirus, Outcome::TempError, Reason::AntivirusUnavailable);
        assert_eq!(decide(&Trail(vec![down]), &Policy::default()).refusal.map(|r| (r.code, r.status)), Some((451, "4.7.1")));
        let accepted = Entry::new(Stage::Antivirus, Outcome::Skipped, Reason::AntivirusUnavailable);
        assert_eq!(decide(&Trail(vec![accepted]), &Policy::default()).action, Action::Accept);
    }

    #[test]
    fn reject_reply_is_550_571() {
        let t = Trail(vec![entry(Stage::Dmarc, Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::Reject))]);
        let r = decide(&t, &Policy::default()).refusal.unwrap();
        assert_eq!((r.code, r.status), (550, "5.7.1"));
        assert!(r.text.contains("example.test"));
    }
}
