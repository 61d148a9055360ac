//! The pure core of lethe: identifiers, validated values, the request state
//! machine, deadlines and the audit hash chain. Nothing in here performs I/O.

pub mod approval;
pub mod audit;
pub mod deadline;
pub mod egress;
pub mod facebook;
pub mod ids;
pub mod opendsr;
pub mod outbox;
pub mod receipt;
pub mod request;
pub mod sealed;
pub mod secret;
pub mod signature;
pub mod state;
pub mod subject_key;
pub mod support;
pub mod target;
pub mod tenant;
pub mod values;

pub use ids::{ApiKeyId, BatchId, JobId, RequestId, TenantId};
pub use state::{Event, RequestState, TransitionError};
