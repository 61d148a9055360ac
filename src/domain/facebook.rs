//! Facebook's data-deletion callback: verifying a `signed_request` and
//! deriving the confirmation code. Pure.
//!
//! `signed_request` = `base64url(HMAC-SHA256(app secret, payload part))` `.`
//! `base64url(JSON payload)`; the payload names `algorithm`, `issued_at`
//! (Unix seconds) and `user_id`.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::TenantId;

/// A signed request older than this is refused.
pub const MAX_AGE: Duration = Duration::hours(1);
/// Clock skew tolerated for `issued_at` in the future.
pub const MAX_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request must be <signature>.<payload>, both base64url")]
    Malformed,
    #[error("the signature does not match the app secret")]
    BadSignature,
    #[error("algorithm must be HMAC-SHA256")]
    Algorithm,
    #[error("issued_at is too old or in the future")]
    Expired,
    #[error("the payload has no user_id")]
    NoUser,
}

impl SignedRequestError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed_signed_request",
            Self::BadSignature => "invalid_signature",
            Self::Algorithm => "unsupported_algorithm",
            Self::Expired => "expired_signed_request",
            Self::NoUser => "missing_user_id",
        }
    }
}

/// What a verified signed request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub user_id: String,
    pub issued_at: DateTime<Utc>,
}

fn b64url(s: &str) -> Result<Vec<u8>, SignedRequestError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| SignedRequestError::Malformed)
}

/// Verify `signed_request` with the app secret at `now`.
pub fn verify(
    signed_request: &str,
    app_secret: &[u8],
    now: DateTime<Utc>,
) -> Result<Deletion, SignedRequestError> {
    let (sig, payload) = signed_request
        .split_once('.')
        .ok_or(SignedRequestError::Malformed)?;
    let sig = b64url(sig)?;
    let json = b64url(payload)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac.verify_slice(&sig)
        .map_err(|_| SignedRequestError::BadSignature)?;
    let v: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| SignedRequestError::Malformed)?;
    if !v["algorithm"]
        .as_str()
        .is_some_and(|a| a.eq_ignore_ascii_case("HMAC-SHA256"))
    {
        return Err(SignedRequestError::Algorithm);
    }
    let issued = v["issued_at"]
        .as_i64()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or(SignedRequestError::Expired)?;
    if issued < now - MAX_AGE || issued > now + MAX_SKEW {
        return Err(SignedRequestError::Expired);
    }
    let user_id = match &v["user_id"] {
        serde_json::Value::String(s) if !s.is_empty() && s.len() <= 128 => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(SignedRequestError::NoUser),
    };
    if !user_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(SignedRequestError::NoUser);
    }
    Ok(Deletion {
        user_id,
        issued_at: issued,
    })
}

/// Sign a payload as Facebook does (for tests and tooling).
pub fn sign(payload: &serde_json::Value, app_secret: &[u8]) -> String {
    let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(p.as_bytes());
    let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{s}.{p}")
}

/// The confirmation code of a signed request: HMAC (key derived from the
/// server secret) over the tenant and the signed request, 160 bits in
/// lower-case base32. Reproducible, so a replay gets the same code without
/// lethe keeping the code itself.
pub fn confirmation_code(key: &[u8; 32], tenant: TenantId, signed_request: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(tenant.as_uuid().as_bytes());
    mac.update(signed_request.as_bytes());
    let bytes = mac.finalize().into_bytes();
    data_encoding::BASE32_NOPAD
        .encode(&bytes[..20])
        .to_ascii_lowercase()
}

/// What lethe stores of a code: its SHA-256, hex.
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// Is `s` shaped like a confirmation code (before looking it up)?
pub fn looks_like_code(s: &str) -> bool {
    s.len() == 32
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({ "algorithm": "HMAC-SHA256", "issued_at": now.timestamp(), "user_id": "218471" })
    }

    #[test]
    fn verifies_and_refuses() {
        let now = Utc::now();
        let sr = sign(&payload(now), b"secret");
        assert_eq!(verify(&sr, b"secret", now).unwrap().user_id, "218471");
        assert_eq!(
            verify(&sr, b"other", now),
            Err(SignedRequestError::BadSignature)
        );
        let (sig, _) = sr.split_once('.').unwrap();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::json!({ "algorithm": "HMAC-SHA256", "issued_at": now.timestamp(), "user_id": "1" })
                .to_string(),
        );
        assert_eq!(
            verify(&format!("{sig}.{forged}"), b"secret", now),
            Err(SignedRequestError::BadSignature)
        );
        let old = sign(&payload(now - Duration::hours(2)), b"secret");
        assert_eq!(
            verify(&old, b"secret", now),
            Err(SignedRequestError::Expired)
        );
        let mut p = payload(now);
        p["algorithm"] = "HMAC-SHA1".into();
        assert_eq!(
            verify(&sign(&p, b"secret"), b"secret", now),
            Err(SignedRequestError::Algorithm)
        );
        assert_eq!(
            verify("nodot", b"secret", now),
            Err(SignedRequestError::Malformed)
        );
    }

    #[test]
    fn codes_are_stable_and_160_bits() {
        let t = TenantId::new();
        let a = confirmation_code(&[1; 32], t, "x.y");
        assert_eq!(a, confirmation_code(&[1; 32], t, "x.y"));
        assert_ne!(a, confirmation_code(&[1; 32], t, "x.z"));
        assert_ne!(a, confirmation_code(&[2; 32], t, "x.y"));
        assert!(looks_like_code(&a));
        assert_eq!(code_hash(&a).len(), 64);
    }
}
