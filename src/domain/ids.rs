//! Typed identifiers. Every id is a UUIDv7 (time-ordered, kind to indexes),
//! wrapped in its own type so a tenant id can never be passed as a request id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: one controller (customer of the platform).
    TenantId
);
uuid_id!(
    /// An erasure request.
    RequestId
);
uuid_id!(
    /// An API key (its id, never the secret).
    ApiKeyId
);
uuid_id!(
    /// A batch of requests submitted together.
    BatchId
);
uuid_id!(
    /// A background job in the outbox.
    JobId
);
uuid_id!(
    /// An audit event.
    AuditEventId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings() {
        let id = RequestId::new();
        let parsed: RequestId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-a-uuid".parse::<TenantId>().is_err());
    }
}
