//! OpenDSR 2.0 (formerly OpenGDPR): the processor side. Pure: validating a
//! controller's request, mapping lethe's states to OpenDSR statuses, and the
//! processor's RSA signing key (PKCS#1 v1.5 with SHA-256) with the X.509
//! certificate that `processor_certificate` serves.

use base64::Engine;
use chrono::{DateTime, Utc};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::values::{CallbackUrl, EmailAddress, SubjectId};
use super::RequestState;

pub const API_VERSION: &str = "2.0";

/// The identity types lethe accepts, in order of preference for the subject
/// id (the platform's own id beats an email address).
pub const IDENTITY_TYPES: [&str; 3] = ["controller_customer_id", "controller_user_id", "email"];

/// Request types a processor may be asked for; lethe only erases.
pub const KNOWN_REQUEST_TYPES: [&str; 4] = ["erasure", "access", "portability", "rectification"];

/// At most this many status callback URLs per request.
pub const MAX_CALLBACKS: usize = 5;

/// The OpenDSR status of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InProgress,
    Completed,
    Cancelled,
}

impl Status {
    pub fn of(state: RequestState) -> Self {
        match state {
            RequestState::Pending | RequestState::AwaitingApproval => Status::Pending,
            RequestState::Erasing | RequestState::Failed => Status::InProgress,
            RequestState::Erased => Status::Completed,
            RequestState::Rejected | RequestState::Cancelled => Status::Cancelled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// A spec-shaped error: HTTP status, `reason` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl SpecError {
    pub fn bad(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            reason,
            message: message.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawIdentity {
    identity_type: Option<String>,
    identity_value: Option<String>,
    identity_format: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawRequest {
    regulation: Option<String>,
    subject_request_id: Option<String>,
    subject_request_type: Option<String>,
    subject_identities: Option<Vec<RawIdentity>>,
    submitted_time: Option<String>,
    api_version: Option<String>,
    status_callback_urls: Option<Vec<String>>,
    #[allow(dead_code)]
    extensions: Option<serde_json::Value>,
}

/// A valid OpenDSR erasure request.
#[derive(Debug, Clone)]
pub struct DsrRequest {
    pub regulation: String,
    pub subject_request_id: uuid::Uuid,
    pub subject_id: SubjectId,
    pub subject_email: Option<EmailAddress>,
    pub submitted_time: DateTime<Utc>,
    pub api_version: String,
    pub status_callback_urls: Vec<CallbackUrl>,
}

fn missing(field: &str) -> SpecError {
    SpecError::bad("missing_field", format!("{field} is required"))
}

/// Validate a request body as the controller sent it.
pub fn parse_request(body: &[u8]) -> Result<DsrRequest, SpecError> {
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|e| SpecError::bad("invalid_json", format!("the body is not valid: {e}")))?;
    let regulation = raw
        .regulation
        .ok_or_else(|| missing("regulation"))?
        .to_ascii_lowercase();
    if regulation != "gdpr" {
        return Err(SpecError::bad(
            "unsupported_regulation",
            "this processor handles regulation \"gdpr\" only",
        ));
    }
    let id = raw
        .subject_request_id
        .ok_or_else(|| missing("subject_request_id"))?;
    let subject_request_id = uuid::Uuid::parse_str(&id)
        .ok()
        .filter(|u| u.get_version_num() == 4)
        .ok_or_else(|| {
            SpecError::bad(
                "invalid_subject_request_id",
                "subject_request_id must be a UUID v4",
            )
        })?;
    let kind = raw
        .subject_request_type
        .ok_or_else(|| missing("subject_request_type"))?;
    if kind != "erasure" {
        let known = KNOWN_REQUEST_TYPES.contains(&kind.as_str());
        return Err(SpecError::bad(
            "unsupported_request_type",
            if known {
                format!("this processor does not support subject_request_type \"{kind}\"; supported: erasure")
            } else {
                "unknown subject_request_type; supported: erasure".to_owned()
            },
        ));
    }
    let submitted = raw
        .submitted_time
        .ok_or_else(|| missing("submitted_time"))?;
    let submitted_time = DateTime::parse_from_rfc3339(&submitted)
        .map_err(|_| {
            SpecError::bad(
                "invalid_submitted_time",
                "submitted_time must be an RFC 3339 time",
            )
        })?
        .with_timezone(&Utc);
    let api_version = raw.api_version.unwrap_or_else(|| API_VERSION.to_owned());
    if !matches!(api_version.as_str(), "1.0" | "2.0") {
        return Err(SpecError::bad(
            "unsupported_api_version",
            "api_version must be 1.0 or 2.0",
        ));
    }
    let identities = raw
        .subject_identities
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing("subject_identities"))?;
    if identities.len() > 20 {
        return Err(SpecError::bad(
            "invalid_identity",
            "at most 20 subject_identities",
        ));
    }
    let mut by_type: Vec<(&'static str, String)> = Vec::new();
    for (i, ident) in identities.into_iter().enumerate() {
        let (Some(t), Some(v)) = (ident.identity_type, ident.identity_value) else {
            return Err(SpecError::bad(
                "invalid_identity",
                format!("subject_identities[{i}] needs identity_type and identity_value"),
            ));
        };
        let Some(t) = IDENTITY_TYPES.iter().find(|k| **k == t) else {
            return Err(SpecError::bad(
                "unsupported_identity_type",
                format!(
                    "subject_identities[{i}]: identity_type must be one of {}",
                    IDENTITY_TYPES.join(", ")
                ),
            ));
        };
        match ident.identity_format.as_deref().unwrap_or("raw") {
            "raw" => {}
            "sha256" | "md5" | "sha1" => {
                return Err(SpecError::bad(
                    "unsupported_identity_format",
                    format!("subject_identities[{i}]: this processor accepts raw identities only"),
                ))
            }
            _ => {
                return Err(SpecError::bad(
                    "invalid_identity",
                    format!("subject_identities[{i}]: identity_format must be raw or sha256"),
                ))
            }
        }
        let valid = match *t {
            "email" => EmailAddress::parse("identity_value", &v).is_ok(),
            _ => SubjectId::parse(&v).is_ok(),
        };
        if !valid {
            return Err(SpecError::bad(
                "invalid_identity",
                format!("subject_identities[{i}]: identity_value is not a valid {t}"),
            ));
        }
        by_type.push((t, v));
    }
    let pick = |t: &str| {
        by_type
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.clone())
    };
    let email = pick("email")
        .map(|e| EmailAddress::parse("identity_value", &e))
        .transpose()
        .map_err(|e| SpecError::bad("invalid_identity", e.to_string()))?;
    let id_value = pick("controller_customer_id")
        .or_else(|| pick("controller_user_id"))
        .or_else(|| email.as_ref().map(|e| e.as_str().to_owned()))
        .ok_or_else(|| missing("subject_identities"))?;
    let subject_id = SubjectId::parse(&id_value)
        .map_err(|e| SpecError::bad("invalid_identity", e.to_string()))?;
    let urls = raw.status_callback_urls.unwrap_or_default();
    if urls.len() > MAX_CALLBACKS {
        return Err(SpecError::bad(
            "invalid_status_callback_url",
            format!("at most {MAX_CALLBACKS} status_callback_urls"),
        ));
    }
    let status_callback_urls = urls
        .iter()
        .map(|u| CallbackUrl::parse("status_callback_urls", u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SpecError::bad("invalid_status_callback_url", e.to_string()))?;
    Ok(DsrRequest {
        regulation,
        subject_request_id,
        subject_id,
        subject_email: email,
        submitted_time,
        api_version,
        status_callback_urls,
    })
}

/// The processor's signing key and the certificate that publishes its public
/// half.
pub struct ProcessorKey {
    key: SigningKey<Sha256>,
    cert_pem: String,
}

impl std::fmt::Debug for ProcessorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProcessorKey(<redacted>)")
    }
}

impl ProcessorKey {
    /// From a PEM private key (PKCS#8 or PKCS#1) and a PEM certificate whose
    /// public key must be the key's.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, String> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|_| "is not a PEM RSA private key (PKCS#8 or PKCS#1)".to_owned())?;
        let cert_public = certificate_public_key(cert_pem)?;
        if cert_public != key.to_public_key() {
            return Err("the certificate does not hold the public key of the key file".into());
        }
        Ok(Self {
            key: SigningKey::<Sha256>::new(key),
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// Base64 (standard) RSA PKCS#1 v1.5 SHA-256 signature of `data`.
    pub fn sign(&self, data: &[u8]) -> String {
        let sig = self.key.sign(data);
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    }

    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }
}

/// The RSA public key of a PEM certificate.
pub fn certificate_public_key(cert_pem: &str) -> Result<RsaPublicKey, String> {
    use x509_cert::der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(cert_pem.as_bytes())
        .map_err(|_| "is not a PEM X.509 certificate".to_owned())?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|_| "the certificate's public key cannot be read".to_owned())?;
    RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| "the certificate does not hold an RSA public key".to_owned())
}

/// Verify a base64 signature made by [`ProcessorKey::sign`].
pub fn verify(public: &RsaPublicKey, data: &[u8], signature_b64: &str) -> bool {
    use rsa::signature::Verifier;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone())
        .verify(data, &sig)
        .is_ok()
}

/// DER of a public key (to compare keys in tests).
pub fn public_key_der(public: &RsaPublicKey) -> Vec<u8> {
    public
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, identities: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "regulation": "gdpr",
            "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
            "subject_request_type": kind,
            "submitted_time": "2026-11-20T15:00:00Z",
            "subject_identities": identities,
            "api_version": "2.0",
            "status_callback_urls": ["https://controller.example/opendsr/callbacks"],
            "extensions": {}
        }))
        .unwrap()
    }

    #[test]
    fn customer_id_beats_email() {
        let r = parse_request(&body(
            "erasure",
            serde_json::json!([
                {"identity_type": "email", "identity_value": "jane@example.org", "identity_format": "raw"},
                {"identity_type": "controller_customer_id", "identity_value": "cus-1", "identity_format": "raw"}
            ]),
        ))
        .unwrap();
        assert_eq!(r.subject_id.as_str(), "cus-1");
        assert_eq!(r.subject_email.unwrap().as_str(), "jane@example.org");
        let r = parse_request(&body(
            "erasure",
            serde_json::json!([{"identity_type": "email", "identity_value": "jane@example.org"}]),
        ))
        .unwrap();
        assert_eq!(r.subject_id.as_str(), "jane@example.org");
    }

    #[test]
    fn errors_carry_spec_reasons() {
        let email =
            serde_json::json!([{"identity_type": "email", "identity_value": "jane@example.org"}]);
        assert_eq!(
            parse_request(&body("access", email.clone()))
                .unwrap_err()
                .reason,
            "unsupported_request_type"
        );
        assert_eq!(
            parse_request(&body(
                "erasure",
                serde_json::json!([{"identity_type": "email", "identity_value": "not-an-email"}])
            ))
            .unwrap_err()
            .reason,
            "invalid_identity"
        );
        assert_eq!(
            parse_request(&body(
                "erasure",
                serde_json::json!([{"identity_type": "email", "identity_value": "a@b.co", "identity_format": "sha256"}])
            ))
            .unwrap_err()
            .reason,
            "unsupported_identity_format"
        );
        assert_eq!(parse_request(b"{").unwrap_err().reason, "invalid_json");
    }

    #[test]
    fn statuses_map_every_state() {
        for s in RequestState::ALL {
            let _ = Status::of(s);
        }
        assert_eq!(Status::of(RequestState::AwaitingApproval), Status::Pending);
        assert_eq!(Status::of(RequestState::Failed), Status::InProgress);
        assert_eq!(Status::of(RequestState::Rejected), Status::Cancelled);
    }
}
