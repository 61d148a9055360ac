//! What every handler can reach.

use std::sync::Arc;

use crate::domain::outbox::WorkflowPolicy;
use crate::domain::receipt::ReceiptSigner;
use crate::domain::sealed::Sealer;
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
    pub sealer: Arc<Sealer>,
    pub signer: Arc<ReceiptSigner>,
    /// OpenDSR processor key and certificate; `None`: OpenDSR is off.
    pub opendsr: Option<Arc<crate::domain::opendsr::ProcessorKey>>,
    /// Callback URLs may name private addresses.
    pub callbacks_allow_private: bool,
    /// Base URL of links lethe hands out.
    pub public_url: url::Url,
    /// Sessions, lock-out and cookies of the support dashboard.
    pub support: super::support::SupportConfig,
    /// API keys recently used to submit (checked again by each submission).
    pub submit_keys: Arc<crate::store::key_cache::SubmitKeyCache>,
    /// The database figures of `/metrics`, reused for a while.
    pub gauges: Arc<crate::metrics::Gauges>,
}
