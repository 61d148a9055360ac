//! Secrets lethe must be able to use again (a target's HMAC key, a tenant's
//! callback secret) cannot be hashed; they are sealed with an AEAD key derived
//! from the server secret, so a copy of the database alone does not reveal them.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::subject_key::SubjectKey;

const PREFIX: &str = "v1:";

pub struct Sealer(XChaCha20Poly1305);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sealed secret could not be opened (wrong server secret or corrupted)")]
pub struct Unsealable;

impl Sealer {
    pub fn new(server_secret: &SubjectKey) -> Self {
        let key = server_secret.derive(b"lethe/sealed-secrets/v1");
        Self(XChaCha20Poly1305::new((&key).into()))
    }

    pub fn seal(&self, plain: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(XNonce::from_slice(&nonce), plain)
            .expect("encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, Unsealable> {
        let raw = sealed.strip_prefix(PREFIX).ok_or(Unsealable)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| Unsealable)?;
        if bytes.len() < 24 {
            return Err(Unsealable);
        }
        let (nonce, ct) = bytes.split_at(24);
        self.0
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let s = Sealer::new(&SubjectKey::new(vec![1; 32]).unwrap());
        let sealed = s.seal(b"whsec_123");
        assert!(!sealed.contains("whsec"));
        assert_eq!(s.open(&sealed).unwrap(), b"whsec_123");
        let other = Sealer::new(&SubjectKey::new(vec![2; 32]).unwrap());
        assert!(other.open(&sealed).is_err());
        assert!(s.open("v1:garbage").is_err());
    }
}
