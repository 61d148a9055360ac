//! What every handler can reach.

use crate::domain::outbox::WorkflowPolicy;
use crate::domain::secret::SecretDigest;
use crate::domain::subject_key::SubjectKey;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub subject_key: SubjectKey,
    /// SHA-256 of the admin token; `None` disables the admin API.
    pub admin_token: Option<SecretDigest>,
    pub workflow: WorkflowPolicy,
    /// Sessions, lock-out and cookies of the support dashboard.
    pub support: super::support::SupportConfig,
}
