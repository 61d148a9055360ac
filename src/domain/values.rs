//! Validated values. Each type has one constructor, `parse`, so a value that
//! exists has been checked.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), InvalidValue> {
    if s.trim().is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(InvalidValue::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The platform's identifier of a data subject (a user account id).
/// Personal data: never logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubjectId(String);

impl SubjectId {
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_text("subject_id", s, Self::MAX_LEN)?;
        if s.trim() != s {
            return Err(InvalidValue::new(
                "subject_id",
                "must not start or end with whitespace",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectId(<redacted>)")
    }
}

/// An email address. Personal data: its Debug form is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue::new(field, "must be an email address like name@example.org");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.is_empty()
            || local.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
            || s.contains(['<', '>', '"', ',', ';', '(', ')', '[', ']', '\\'])
        {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

/// Free text given with a request or decision (bounded, no control
/// characters except newlines and tabs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub const MAX_LEN: usize = 2000;

    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        if s.trim().is_empty() {
            return Err(InvalidValue::new(field, "must not be empty"));
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(InvalidValue::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if s.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(InvalidValue::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name (tenant, privacy contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        check_text(field, s, 200)?;
        Ok(Self(s.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL lethe will call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl(url::Url);

impl CallbackUrl {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        if s.len() > 2048 {
            return Err(InvalidValue::new(field, "must be at most 2048 characters"));
        }
        let url = url::Url::parse(s)
            .map_err(|e| InvalidValue::new(field, format!("must be an absolute URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(InvalidValue::new(
                field,
                "must be an http or https URL with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue::new(field, "must not carry credentials"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Does it name an inside address by itself (see `egress`)?
    pub fn names_inside(&self) -> bool {
        super::egress::names_inside(&self.0)
    }
}

/// Who asked for the erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The data subject themselves (Art. 17 request).
    Subject,
    /// The platform's support team on the subject's behalf.
    Support,
    /// A retention policy expired.
    RetentionPolicy,
}

impl Initiator {
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::Subject => "subject",
            Initiator::Support => "support",
            Initiator::RetentionPolicy => "retention_policy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Subject, Self::Support, Self::RetentionPolicy]
            .into_iter()
            .find(|i| i.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids() {
        assert!(SubjectId::parse("user-42").is_ok());
        assert!(SubjectId::parse("").is_err());
        assert!(SubjectId::parse("   ").is_err());
        assert!(SubjectId::parse(" padded").is_err());
        assert!(SubjectId::parse("a\u{0}b").is_err());
        assert!(SubjectId::parse(&"x".repeat(257)).is_err());
        assert!(SubjectId::parse(&"é".repeat(256)).is_ok());
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.org", "x@sub.domain.eu"] {
            assert!(EmailAddress::parse("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@x.org",
            "a@",
            "a@nodot",
            "a b@x.org",
            "a@x..org",
            "a@.x.org",
            "<a@x.org>",
            "a@x.org\r\nBcc: e@vil.org",
        ] {
            assert!(EmailAddress::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn personal_data_is_masked_in_debug_output() {
        let e = EmailAddress::parse("email", "jane@example.org").unwrap();
        assert!(!format!("{e:?}").contains("jane"));
        let s = SubjectId::parse("jane-doe").unwrap();
        assert!(!format!("{s:?}").contains("jane"));
    }

    #[test]
    fn callback_urls() {
        assert!(CallbackUrl::parse("callback_url", "https://x.org/hook").is_ok());
        assert!(CallbackUrl::parse("callback_url", "ftp://x.org").is_err());
        assert!(CallbackUrl::parse("callback_url", "/relative").is_err());
        assert!(CallbackUrl::parse("callback_url", "https://u:p@x.org").is_err());
    }

    #[test]
    fn initiators() {
        assert_eq!(
            Initiator::parse("retention_policy"),
            Some(Initiator::RetentionPolicy)
        );
        assert_eq!(Initiator::parse("robot"), None);
    }
}
