//! A submission, validated: what a platform asks lethe to erase.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::values::{CallbackUrl, EmailAddress, Initiator, Reason, SubjectId};

#[derive(Debug, Clone)]
pub struct NewErasure {
    pub subject_id: SubjectId,
    pub subject_email: Option<EmailAddress>,
    pub initiator: Initiator,
    pub reason: Option<Reason>,
    pub callback_url: Option<CallbackUrl>,
}

#[derive(Serialize)]
struct Fingerprinted<'a> {
    subject_id: &'a str,
    subject_email: Option<&'a str>,
    initiator: &'a str,
    reason: Option<&'a str>,
    callback_url: Option<&'a str>,
}

impl NewErasure {
    /// A digest of what was asked, to tell an idempotent replay (same key,
    /// same request) from a reused key (same key, another request).
    pub fn fingerprint(&self) -> String {
        let f = Fingerprinted {
            subject_id: self.subject_id.as_str(),
            subject_email: self.subject_email.as_ref().map(|e| e.as_str()),
            initiator: self.initiator.as_str(),
            reason: self.reason.as_ref().map(|r| r.as_str()),
            callback_url: self.callback_url.as_ref().map(|u| u.as_str()),
        };
        hex::encode(Sha256::digest(serde_json::to_vec(&f).expect("serializes")))
    }
}

use chrono::{DateTime, Utc};

use super::{BatchId, RequestId, RequestState, TenantId};

/// An erasure request as lethe holds it. After scrubbing, `subject_id`,
/// `subject_email` and `reason` are gone; the keyed subject hash remains.
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub subject_id: Option<SubjectId>,
    pub subject_email: Option<EmailAddress>,
    pub initiator: Initiator,
    pub reason: Option<String>,
    pub callback_url: Option<String>,
    pub state: RequestState,
    pub batch_id: Option<BatchId>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The privacy contact's rejection code, if rejected.
    pub decision_code: Option<String>,
    /// Their explanation (scrubbed with the personal data).
    pub decision_explanation: Option<String>,
    /// Flagged for support: the deadline nears without a decision.
    pub escalated_at: Option<DateTime<Utc>>,
    /// The approval email could not be delivered.
    pub delivery_failed_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    /// When the personal fields were removed.
    pub scrubbed_at: Option<DateTime<Utc>>,
}

impl ErasureRequest {
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state.is_open() && self.due_at < now
    }
}
