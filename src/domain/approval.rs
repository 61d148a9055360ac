//! The privacy contact's decision and the life of an approval link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{InvalidValue, Reason};

/// Why a privacy contact refuses an erasure: the GDPR Art. 17(3) exemptions,
/// or a reason about the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// Art. 17(3)(a): freedom of expression and information.
    Art17_3A,
    /// Art. 17(3)(b): a legal obligation or a task in the public interest.
    Art17_3B,
    /// Art. 17(3)(c): public health.
    Art17_3C,
    /// Art. 17(3)(d): archiving, research or statistics.
    Art17_3D,
    /// Art. 17(3)(e): legal claims.
    Art17_3E,
    NotASubjectOfTenant,
    IdentityNotVerified,
    Other,
}

impl RejectionCode {
    pub const ALL: [RejectionCode; 8] = [
        Self::Art17_3A,
        Self::Art17_3B,
        Self::Art17_3C,
        Self::Art17_3D,
        Self::Art17_3E,
        Self::NotASubjectOfTenant,
        Self::IdentityNotVerified,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Art17_3A => "art17_3_a",
            Self::Art17_3B => "art17_3_b",
            Self::Art17_3C => "art17_3_c",
            Self::Art17_3D => "art17_3_d",
            Self::Art17_3E => "art17_3_e",
            Self::NotASubjectOfTenant => "not_a_subject_of_tenant",
            Self::IdentityNotVerified => "identity_not_verified",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What the privacy contact decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject {
        code: RejectionCode,
        explanation: Reason,
    },
}

impl Decision {
    /// Build a decision from form fields. A rejection needs both a code and an
    /// explanation: the subject must be told why (GDPR Art. 12(4)).
    pub fn parse(
        decision: &str,
        code: Option<&str>,
        explanation: Option<&str>,
    ) -> Result<Self, InvalidValue> {
        match decision {
            "approve" => Ok(Decision::Approve),
            "reject" => {
                let code = code.filter(|c| !c.is_empty()).ok_or_else(|| {
                    InvalidValue::new("reason_code", "choose why the erasure is refused")
                })?;
                let code = RejectionCode::parse(code).ok_or_else(|| {
                    InvalidValue::new("reason_code", "is not one of the listed reasons")
                })?;
                let explanation =
                    Reason::parse("explanation", explanation.unwrap_or("")).map_err(|e| {
                        InvalidValue::new(
                            "explanation",
                            format!("{} (the subject must be told why)", e.message),
                        )
                    })?;
                Ok(Decision::Reject { code, explanation })
            }
            _ => Err(InvalidValue::new("decision", "must be approve or reject")),
        }
    }

    pub fn event(&self) -> super::Event {
        match self {
            Decision::Approve => super::Event::Approve,
            Decision::Reject { .. } => super::Event::Reject,
        }
    }
}

/// Whether an approval link can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    Usable,
    /// A decision was already made with it.
    Used,
    /// A newer link was sent (reminder or resend).
    Voided,
    Expired,
}

impl LinkStatus {
    pub fn of(
        used_at: Option<DateTime<Utc>>,
        voided_at: Option<DateTime<Utc>>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        if used_at.is_some() {
            LinkStatus::Used
        } else if voided_at.is_some() {
            LinkStatus::Voided
        } else if expires_at <= now {
            LinkStatus::Expired
        } else {
            LinkStatus::Usable
        }
    }
}

/// Prefix of approval tokens.
pub const TOKEN_PREFIX: &str = "ap_";

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn rejection_needs_code_and_explanation() {
        assert_eq!(
            Decision::parse("approve", None, None),
            Ok(Decision::Approve)
        );
        assert!(Decision::parse("reject", None, Some("why")).is_err());
        assert!(Decision::parse("reject", Some("art17_3_b"), None).is_err());
        assert!(Decision::parse("reject", Some("art17_3_b"), Some("   ")).is_err());
        assert!(Decision::parse("reject", Some("bogus"), Some("x")).is_err());
        assert!(Decision::parse("maybe", None, None).is_err());
        let d = Decision::parse("reject", Some("art17_3_e"), Some("pending litigation")).unwrap();
        assert_eq!(d.event(), crate::domain::Event::Reject);
        for c in RejectionCode::ALL {
            assert_eq!(RejectionCode::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn link_status() {
        let now = Utc::now();
        let later = now + Duration::days(1);
        assert_eq!(LinkStatus::of(None, None, later, now), LinkStatus::Usable);
        assert_eq!(
            LinkStatus::of(Some(now), None, later, now),
            LinkStatus::Used
        );
        assert_eq!(
            LinkStatus::of(None, Some(now), later, now),
            LinkStatus::Voided
        );
        assert_eq!(LinkStatus::of(None, None, now, now), LinkStatus::Expired);
    }
}
