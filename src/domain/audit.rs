//! The audit trail's hash chain. Each event of a request commits to the
//! previous one's hash, so an edited or deleted event breaks the chain.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash a request's first event chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused a transition. Never a person's email or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A platform service, identified by its API key id.
    ApiKey,
    /// The tenant's privacy contact (role only).
    PrivacyContact,
    /// A support user, by id.
    Support,
    /// An operator using the admin token or CLI.
    Admin,
    /// lethe itself (workers, policies).
    System,
    /// The owner of a manual erasure target, by the link they used.
    TargetOwner,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::ApiKey => "api_key",
            ActorKind::PrivacyContact => "privacy_contact",
            ActorKind::Support => "support",
            ActorKind::Admin => "admin",
            ActorKind::System => "system",
            ActorKind::TargetOwner => "target_owner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    /// An opaque id: API key id, support user id, tenant id for the contact.
    pub id: String,
}

impl Actor {
    pub fn new(kind: ActorKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    pub fn system(component: &str) -> Self {
        Self::new(ActorKind::System, component)
    }
}

/// The fields of an audit event that its hash covers.
#[derive(Debug, Clone, Serialize)]
pub struct ChainedFields<'a> {
    pub request_id: &'a str,
    pub tenant_id: &'a str,
    pub seq: i64,
    pub from_state: Option<&'a str>,
    pub to_state: &'a str,
    pub event: &'a str,
    pub actor_kind: &'a str,
    pub actor_id: &'a str,
    pub detail: Option<&'a str>,
    /// Microseconds since the epoch.
    pub at_micros: i64,
    pub prev_hash: &'a str,
}

impl ChainedFields<'_> {
    /// Hex SHA-256 over a canonical JSON encoding of the fields, in the order
    /// declared above.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("plain struct serializes");
        hex::encode(Sha256::digest(&canonical))
    }
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(prev: &str) -> ChainedFields<'_> {
        ChainedFields {
            request_id: "r",
            tenant_id: "t",
            seq: 1,
            from_state: None,
            to_state: "pending",
            event: "submit",
            actor_kind: "api_key",
            actor_id: "k",
            detail: None,
            at_micros: 1,
            prev_hash: prev,
        }
    }

    #[test]
    fn the_hash_covers_every_field() {
        let base = fields(GENESIS).hash();
        assert_eq!(base, fields(GENESIS).hash());
        let mut other = fields(GENESIS);
        other.to_state = "erased";
        assert_ne!(base, other.hash());
        assert_ne!(base, fields(&base).hash());
        let mut other = fields(GENESIS);
        other.at_micros = 2;
        assert_ne!(base, other.hash());
    }
}
