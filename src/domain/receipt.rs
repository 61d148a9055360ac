//! The certificate of erasure: what was erased where and when, on whose
//! approval, signed with the service's Ed25519 key. It holds no personal data.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::subject_key::SubjectKey;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TargetConfirmation {
    pub target: String,
    pub confirmed_at: String,
    /// `target_owner` when a person confirmed a manual target by hand;
    /// absent when the target itself answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
}

/// The signed content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReceiptBody {
    pub version: u32,
    pub request_id: String,
    pub tenant_id: String,
    pub received_at: String,
    pub approved_at: Option<String>,
    /// Who approved: `privacy_contact`, or `not_required` for tenants whose
    /// policy needs no approval.
    pub approver_role: String,
    pub erased_at: String,
    pub targets: Vec<TargetConfirmation>,
    /// The head of the request's audit chain when the receipt was made.
    pub audit_seq: i64,
    pub audit_head: String,
}

/// A receipt as served and stored: the body, its signature and the key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Receipt {
    pub receipt: ReceiptBody,
    pub algorithm: String,
    pub public_key: String,
    pub signature: String,
}

/// The bytes that are signed: the body as JSON with its keys sorted, so the
/// same receipt re-read from a file yields the same bytes.
pub fn canonical(body: &ReceiptBody) -> Vec<u8> {
    let value = serde_json::to_value(body).expect("plain struct");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

pub struct ReceiptSigner(SigningKey);

impl ReceiptSigner {
    /// The service key, derived from the server secret (same on every replica).
    pub fn new(server_secret: &SubjectKey) -> Self {
        Self(SigningKey::from_bytes(
            &server_secret.derive(b"lethe/receipt-signing/v1"),
        ))
    }

    pub fn public_key(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, body: ReceiptBody) -> Receipt {
        let sig = self.0.sign(&canonical(&body));
        Receipt {
            receipt: body,
            algorithm: "ed25519".into(),
            public_key: self.public_key(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a receipt: {0}")]
    Malformed(String),
    #[error("the receipt was signed by another key")]
    WrongKey,
    #[error("the signature does not match the receipt: it was altered")]
    BadSignature,
}

/// Verify a receipt's signature; with `expected_key`, also that lethe's key signed it.
pub fn verify(json: &[u8], expected_key: Option<&str>) -> Result<ReceiptBody, ReceiptError> {
    let r: Receipt =
        serde_json::from_slice(json).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    if r.algorithm != "ed25519" {
        return Err(ReceiptError::Malformed("unknown algorithm".into()));
    }
    if let Some(k) = expected_key {
        if k != r.public_key {
            return Err(ReceiptError::WrongKey);
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = b64
        .decode(&r.public_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| ReceiptError::Malformed("bad public key".into()))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| ReceiptError::Malformed("bad public key".into()))?;
    let sig: [u8; 64] = b64
        .decode(&r.signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(ReceiptError::BadSignature)?;
    key.verify(&canonical(&r.receipt), &Signature::from_bytes(&sig))
        .map_err(|_| ReceiptError::BadSignature)?;
    Ok(r.receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> ReceiptBody {
        ReceiptBody {
            version: 1,
            request_id: "r".into(),
            tenant_id: "t".into(),
            received_at: "2026-01-01T00:00:00Z".into(),
            approved_at: Some("2026-01-02T00:00:00Z".into()),
            approver_role: "privacy_contact".into(),
            erased_at: "2026-01-03T00:00:00Z".into(),
            targets: vec![TargetConfirmation {
                target: "warehouse".into(),
                confirmed_at: "2026-01-03T00:00:00Z".into(),
                confirmed_by: None,
            }],
            audit_seq: 7,
            audit_head: "ab".into(),
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let signer = ReceiptSigner::new(&SubjectKey::new(vec![3; 32]).unwrap());
        let r = signer.sign(body());
        let json = serde_json::to_vec_pretty(&r).unwrap();
        assert_eq!(verify(&json, Some(&signer.public_key())).unwrap(), body());
        let tampered = String::from_utf8(json.clone())
            .unwrap()
            .replace("warehouse", "warehousf");
        assert_eq!(
            verify(tampered.as_bytes(), None),
            Err(ReceiptError::BadSignature)
        );
        let other = ReceiptSigner::new(&SubjectKey::new(vec![4; 32]).unwrap());
        assert_eq!(
            verify(&json, Some(&other.public_key())),
            Err(ReceiptError::WrongKey)
        );
        assert!(verify(b"{}", None).is_err());
    }
}
