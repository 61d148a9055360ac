//! What lethe knows of a tenant's policy.

use serde::{Deserialize, Serialize};

/// Does an erasure need the privacy contact's approval?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// EU tenant: the platform is a processor, the privacy contact decides.
    PrivacyContact,
    /// No approval needed: erasure starts on submission.
    None,
}

impl ApprovalPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalPolicy::PrivacyContact => "privacy_contact",
            ApprovalPolicy::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "privacy_contact" => Some(Self::PrivacyContact),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The first event of a freshly received request.
    pub fn first_event(self) -> crate::domain::Event {
        match self {
            ApprovalPolicy::PrivacyContact => crate::domain::Event::RequestApproval,
            ApprovalPolicy::None => crate::domain::Event::SkipApproval,
        }
    }
}

/// Languages lethe writes its emails and pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
}

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Self::En),
            "de" => Some(Self::De),
            "fr" => Some(Self::Fr),
            _ => None,
        }
    }
}

use chrono::{DateTime, Utc};

use super::values::{EmailAddress, InvalidValue, Name};
use super::TenantId;

/// The controller's nominated privacy contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyContact {
    pub name: Option<Name>,
    pub email: EmailAddress,
}

/// A tenant's settings, checked as a whole: a tenant whose erasures need
/// approval always has a privacy contact to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub name: Name,
    pub policy: ApprovalPolicy,
    pub contact: Option<PrivacyContact>,
    pub locale: Locale,
    /// Email the data subject (receipt, rejection, completion) when the
    /// request carries their address.
    pub notify_subject: bool,
}

impl TenantSettings {
    pub fn new(
        name: Name,
        policy: ApprovalPolicy,
        contact: Option<PrivacyContact>,
        locale: Locale,
    ) -> Result<Self, InvalidValue> {
        if policy == ApprovalPolicy::PrivacyContact && contact.is_none() {
            return Err(InvalidValue::new(
                "privacy_contact",
                "is required when approval_policy is privacy_contact",
            ));
        }
        Ok(Self {
            name,
            policy,
            contact,
            locale,
            notify_subject: false,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub settings: TenantSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_needs_a_contact() {
        let name = Name::parse("name", "Acme").unwrap();
        assert!(TenantSettings::new(
            name.clone(),
            ApprovalPolicy::PrivacyContact,
            None,
            Locale::En
        )
        .is_err());
        assert!(TenantSettings::new(name, ApprovalPolicy::None, None, Locale::En).is_ok());
    }

    #[test]
    fn policy_decides_the_first_event() {
        use crate::domain::{state::transition, Event, RequestState};
        assert_eq!(
            ApprovalPolicy::PrivacyContact.first_event(),
            Event::RequestApproval
        );
        assert_eq!(
            transition(RequestState::Pending, ApprovalPolicy::None.first_event()),
            Ok(RequestState::Erasing)
        );
    }
}
