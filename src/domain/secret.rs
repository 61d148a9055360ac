//! Secrets lethe hands out (API keys, later approval tokens): random, shown
//! once, stored only as a SHA-256 digest.

use std::fmt;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly generated or presented secret. Never printed by Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `prefix` + 256 random bits in URL-safe base64.
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The string to show the caller exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Hex SHA-256 of a secret: what the database stores and looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDigest(String);

impl SecretDigest {
    pub fn of(s: &str) -> Self {
        Self(hex::encode(Sha256::digest(s.as_bytes())))
    }

    /// The digest to look a presented token up by; `None` for anything that
    /// cannot be one of ours (another prefix, too long).
    pub fn of_presented(token: &str, prefix: &str) -> Option<Self> {
        (token.len() <= 128 && token.starts_with(prefix)).then(|| Self::of(token))
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Prefix of API keys, so a leaked key is recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "lethe_sk_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_redacted() {
        let a = Secret::generate(API_KEY_PREFIX);
        let b = Secret::generate(API_KEY_PREFIX);
        assert_ne!(a, b);
        assert!(a.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(a.expose().len(), API_KEY_PREFIX.len() + 43);
        assert!(!format!("{a:?}").contains(&a.expose()[API_KEY_PREFIX.len()..]));
    }

    #[test]
    fn digest_is_stable_and_not_the_secret() {
        let a = Secret::generate(API_KEY_PREFIX);
        assert_eq!(a.digest(), Secret::from_presented(a.expose()).digest());
        assert_ne!(a.digest().as_str(), a.expose());
        assert_eq!(a.digest().as_str().len(), 64);
    }
}
