//! The MTA-STS policy file (RFC 8461 §3.2): a pure parser with limits, and MX matching (§4.1).
//! mail-auth parses the `_mta-sts` TXT record but not the policy file, hence this one.

use std::fmt;

/// RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// More `mx` lines than any real policy has; a bigger file is refused rather than matched
/// line by line for every delivery.
const MAX_MX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// Lowercase patterns: `mx.example.org` or `*.example.org`.
    pub mx: Vec<String>,
    pub max_age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy does not start with version: STSv1")]
    Version,
    #[error("the policy has no valid mode")]
    Mode,
    #[error("the policy has no valid max_age")]
    MaxAge,
    #[error("the policy lists no mx")]
    NoMx,
    #[error("the policy lists more than {MAX_MX} mx")]
    TooManyMx,
    #[error("mx `{0}` is not a host name pattern")]
    BadMx(String),
}

impl Policy {
    /// Parses a policy file: `key: value` lines ended by LF or CRLF (§3.2). Unknown keys are
    /// ignored (extensions); `mx` may repeat; the other keys count once (the first).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut version = None;
        let (mut mode, mut max_age, mut mx) = (None, None, Vec::new());
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim_matches([' ', '\t']);
            match key {
                "version" if version.is_none() => version = Some(value == "STSv1"),
                "mode" if mode.is_none() => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(PolicyError::Mode),
                    })
                }
                "max_age" if max_age.is_none() => {
                    // 1*10DIGIT (§3.2), no sign, within the limit.
                    let ok = !value.is_empty() && value.len() <= 10 && value.bytes().all(|b| b.is_ascii_digit());
                    let n = value.parse::<u64>().ok().filter(|n| ok && *n <= MAX_AGE_LIMIT).ok_or(PolicyError::MaxAge)?;
                    max_age = Some(n);
                }
                "mx" => {
                    if !valid_pattern(value) {
                        return Err(PolicyError::BadMx(value.chars().take(80).collect()));
                    }
                    mx.push(value.to_ascii_lowercase());
                    if mx.len() > MAX_MX {
                        return Err(PolicyError::TooManyMx);
                    }
                }
                _ => {}
            }
        }
        if version != Some(true) {
            return Err(PolicyError::Version);
        }
        let mode = mode.ok_or(PolicyError::Mode)?;
        let max_age = max_age.ok_or(PolicyError::MaxAge)?;
        if mx.is_empty() && mode != Mode::None {
            return Err(PolicyError::NoMx);
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether an MX host name is allowed (§4.1): equal to a pattern (case-insensitive), or a
    /// `*.` pattern's suffix preceded by exactly one label.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }

    /// The lines of the policy as a TLS report's policy-string shows them (RFC 8460 §4.4).
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines = vec!["version: STSv1".to_string(), format!("mode: {}", self.mode)];
        lines.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        lines.push(format!("max_age: {}", self.max_age));
        lines
    }
}

/// A host name, optionally with a leading `*.` (§3.2: wildcards only as the leftmost label).
fn valid_pattern(p: &str) -> bool {
    let name = p.strip_prefix("*.").unwrap_or(p);
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_example() {
        // RFC 8461 §3.2's example, with CRLF line ends as servers often send.
        let p = Policy::parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert_eq!(p.mx, vec!["mail.example.com", "*.example.net", "backupmx.example.com"]);
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("example.net"), "a wildcard needs one label");
        assert!(!p.allows("a.b.example.net"), "a wildcard matches one label only");
        assert!(!p.allows("evil-mail.example.com"));
    }

    #[test]
    fn lf_lines_unknown_keys_and_spacing() {
        let p = Policy::parse("version: STSv1\nmode:testing\nx-ext: 1\nmx:   mx.a.test  \nmax_age: 86400").unwrap();
        assert_eq!((p.mode, p.max_age, p.mx.as_slice()), (Mode::Testing, 86400, &["mx.a.test".to_string()][..]));
        assert_eq!(p.report_lines(), vec!["version: STSv1", "mode: testing", "mx: mx.a.test", "max_age: 86400"]);
    }

    #[test]
    fn refuses_bad_policies() {
        let ok = "version: STSv1\nmode: enforce\nmx: mx.a.test\nmax_age: 60\n";
        assert!(Policy::parse(ok).is_ok());
        assert_eq!(Policy::parse(&ok.replace("STSv1", "STSv2")), Err(PolicyError::Version));
        assert_eq!(Policy::parse(&ok.replace("version: STSv1\n", "")), Err(PolicyError::Version));
        assert_eq!(Policy::parse(&ok.replace("enforce", "strict")), Err(PolicyError::Mode));
        assert_eq!(Policy::parse(&ok.replace("60", "31557601")), Err(PolicyError::MaxAge));
        assert_eq!(Policy::parse(&ok.replace("60", "-1")), Err(PolicyError::MaxAge));
        assert_eq!(Policy::parse(&ok.replace("mx: mx.a.test\n", "")), Err(PolicyError::NoMx));
        assert!(matches!(Policy::parse(&ok.replace("mx.a.test", "mx.*.test")), Err(PolicyError::BadMx(_))));
        let many: String = (0..65).map(|i| format!("mx: m{i}.a.test\n")).collect();
        assert_eq!(Policy::parse(&format!("version: STSv1\nmode: enforce\n{many}max_age: 1\n")), Err(PolicyError::TooManyMx));
        let none = Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n").unwrap();
        assert_eq!(none.mode, Mode::None);
    }
}
