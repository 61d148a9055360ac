//! The keyed hash of a subject id. lethe keeps it after scrubbing so "was this
//! subject erased, when, on whose approval?" can still be answered, without
//! keeping the id itself. The key is a server secret; the tenant id is mixed
//! in so the same person's hashes cannot be linked across tenants.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{values::SubjectId, TenantId};

#[derive(Clone)]
pub struct SubjectKey(Vec<u8>);

impl SubjectKey {
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= Self::MIN_LEN).then_some(Self(bytes))
    }

    /// A 32-byte key for another purpose, derived from this server secret.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    pub fn hash(&self, tenant: TenantId, subject: &SubjectId) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(tenant.as_uuid().as_bytes());
        mac.update(subject.as_str().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_per_tenant() {
        let key = SubjectKey::new(vec![7; 32]).unwrap();
        let s = SubjectId::parse("user-1").unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        assert_eq!(key.hash(a, &s), key.hash(a, &s));
        assert_ne!(key.hash(a, &s), key.hash(b, &s));
        let other = SubjectKey::new(vec![8; 32]).unwrap();
        assert_ne!(key.hash(a, &s), other.hash(a, &s));
        assert!(SubjectKey::new(vec![1; 16]).is_none());
    }
}
