//! Erasure targets: the systems told to erase, and how their answers count.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::values::{CallbackUrl, EmailAddress, InvalidValue, Reason};

/// How a target is told to erase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// lethe POSTs a signed call to the target's URL.
    Webhook,
    /// A system with no API: its owner is emailed a link and confirms by hand.
    Manual,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Webhook, Self::Manual]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a target is told: its URL, or its owner's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Webhook(CallbackUrl),
    Manual(EmailAddress),
}

impl Destination {
    pub fn kind(&self) -> TargetKind {
        match self {
            Destination::Webhook(_) => TargetKind::Webhook,
            Destination::Manual(_) => TargetKind::Manual,
        }
    }
}

/// Prefix of the secret in a manual target's confirmation link.
pub const LINK_PREFIX: &str = "lethe_tc_";

/// Who confirmed an erasure at a manual target, as receipts name them (a
/// role, never a person's address).
pub const CONFIRMED_BY_OWNER: &str = "target_owner";

/// What the owner of a manual target reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerReport {
    /// The data is erased there.
    Erased,
    /// It cannot be erased there; support must act on the reason.
    Impossible(Reason),
}

impl OwnerReport {
    /// From the page's form fields. "Impossible" needs a reason: support has
    /// to act on it.
    pub fn parse(outcome: &str, reason: Option<&str>) -> Result<Self, InvalidValue> {
        match outcome {
            "erased" => Ok(OwnerReport::Erased),
            "impossible" => Reason::parse("reason", reason.unwrap_or(""))
                .map(OwnerReport::Impossible)
                .map_err(|e| {
                    InvalidValue::new(
                        "reason",
                        format!("{} (say why it cannot be erased)", e.message),
                    )
                }),
            _ => Err(InvalidValue::new("outcome", "must be erased or impossible")),
        }
    }
}

/// Where the erasure stands at one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Not yet told, or being retried.
    Pending,
    /// The target took the job (202) and will confirm later.
    Accepted,
    /// The target erased the data.
    Confirmed,
    /// The target refused or could not be reached after every retry.
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Pending => "pending",
            CallStatus::Accepted => "accepted",
            CallStatus::Confirmed => "confirmed",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Confirmed, Self::Failed]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an HTTP answer from a target means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx (not 202): erased there.
    Erased,
    /// 202: accepted, a confirmation will follow.
    Accepted,
    /// 5xx, 408, 429: try again.
    Retry,
    /// Any other 4xx (and unexpected codes): the target refuses; support must act.
    Refused,
}

pub fn classify(status: u16) -> Answer {
    match status {
        202 => Answer::Accepted,
        200..=299 => Answer::Erased,
        408 | 429 | 500..=599 => Answer::Retry,
        _ => Answer::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_reports_need_a_reason_to_refuse() {
        assert_eq!(OwnerReport::parse("erased", None), Ok(OwnerReport::Erased));
        assert_eq!(
            OwnerReport::parse("impossible", None).unwrap_err().field,
            "reason"
        );
        assert_eq!(
            OwnerReport::parse("impossible", Some("  "))
                .unwrap_err()
                .field,
            "reason"
        );
        assert!(matches!(
            OwnerReport::parse(
                "impossible",
                Some("paper file destroyed offsite only yearly")
            ),
            Ok(OwnerReport::Impossible(_))
        ));
        assert_eq!(
            OwnerReport::parse("maybe", None).unwrap_err().field,
            "outcome"
        );
        for k in [TargetKind::Webhook, TargetKind::Manual] {
            assert_eq!(TargetKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TargetKind::parse("ftp"), None);
    }

    #[test]
    fn answers() {
        assert_eq!(classify(200), Answer::Erased);
        assert_eq!(classify(204), Answer::Erased);
        assert_eq!(classify(202), Answer::Accepted);
        for r in [408, 429, 500, 502, 503] {
            assert_eq!(classify(r), Answer::Retry, "{r}");
        }
        for r in [400, 401, 403, 404, 410, 422, 301, 100] {
            assert_eq!(classify(r), Answer::Refused, "{r}");
        }
        for c in [
            CallStatus::Pending,
            CallStatus::Accepted,
            CallStatus::Confirmed,
            CallStatus::Failed,
        ] {
            assert_eq!(CallStatus::parse(c.as_str()), Some(c));
        }
    }
}
