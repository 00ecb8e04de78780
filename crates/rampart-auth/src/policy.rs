//! Password policy for `user add` and `user passwd`.

/// The 10,000 most common passwords, from the frequency list zxcvbn ships (itself from public
/// password leaks; MIT licence, Copyright (c) 2016 Joshua Holmer).
const COMMON: &str = include_str!("../data/common-passwords.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// zxcvbn score 0-4.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_length: 12, min_score: 3 }
    }
}

impl PasswordPolicy {
    /// Ok, or a sentence saying what is wrong with the password for `address`.
    pub fn check(&self, password: &str, address: &str) -> Result<(), String> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(format!("the password has {length} characters; at least {} are needed", self.min_length));
        }
        let lower = password.to_lowercase();
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let local = local.to_lowercase();
        if local.len() >= 3 && lower.contains(&local) {
            return Err(format!("the password contains the user name `{local}`"));
        }
        for label in domain.to_lowercase().split('.') {
            if label.len() >= 4 && lower.contains(label) {
                return Err(format!("the password contains the domain name `{label}`"));
            }
        }
        if COMMON.lines().any(|c| c == lower) {
            return Err("the password is one of the 10,000 most common passwords".into());
        }
        let inputs: Vec<&str> = std::iter::once(local.as_str()).chain(domain.split('.')).collect();
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        let score = u8::from(estimate.score());
        if score < self.min_score {
            let hint = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            return Err(format!(
                "the password is too easy to guess (strength {score} of 4, at least {} needed){hint}; a few unrelated words make a strong one",
                self.min_score
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let p = PasswordPolicy::default();
        assert!(p.check("short", "bob@example.test").unwrap_err().contains("at least 12"));
        assert!(p.check("xbobbyxq7!long", "bobby@example.test").unwrap_err().contains("user name"));
        assert!(p.check("myexamplepw99Z", "bob@example.test").unwrap_err().contains("domain"));
        assert!(p.check("qwertyuiopasdfgh", "bob@example.test").is_err());
        assert!(p.check("aaaaaaaaaaaaaaaa", "bob@example.test").unwrap_err().contains("easy to guess"));
        assert!(p.check("correct horse battery staple", "bob@example.test").is_ok());
    }

    #[test]
    fn common_list_is_bundled() {
        assert_eq!(COMMON.lines().count(), 10_000);
        let p = PasswordPolicy { min_length: 8, min_score: 0 };
        assert!(p.check("password1", "x@y.test").unwrap_err().contains("common"));
    }
}
