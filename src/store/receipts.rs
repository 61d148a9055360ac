//! The facts a certificate of erasure states, read from the store.

use super::{requests, targets, Conn, StoreError};
use crate::domain::receipt::{ReceiptBody, TargetConfirmation};
use crate::domain::{RequestId, RequestState, TenantId};

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The receipt of an erased request; `None` while it is not erased.
pub fn body(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
) -> Result<Option<ReceiptBody>, StoreError> {
    let seen = requests::get_seen(conn, tenant, id)?;
    if seen.request()?.state != RequestState::Erased {
        return Ok(None);
    }
    let calls = targets::calls(conn, id)?;
    body_with_calls(&seen, &calls)
}

/// [`body`] for a request read already with its calls
/// (`requests::get_seen_any_with_tenant_and_calls`).
pub fn body_with_calls(
    seen: &requests::Seen,
    calls: &[targets::CallRow],
) -> Result<Option<ReceiptBody>, StoreError> {
    let r = seen.request()?;
    if r.state != RequestState::Erased {
        return Ok(None);
    }
    let (audit_seq, audit_head) = seen.head();
    let audit_head = audit_head.to_owned();
    let targets = calls
        .iter()
        .filter_map(|c| {
            c.confirmed_at().map(|at| TargetConfirmation {
                target: c.target_name.clone(),
                confirmed_at: ts(at),
                confirmed_by: c
                    .confirmed_by
                    .is_some()
                    .then(|| crate::domain::target::CONFIRMED_BY_OWNER.to_owned()),
            })
        })
        .collect();
    Ok(Some(ReceiptBody {
        version: 1,
        request_id: r.id.to_string(),
        tenant_id: r.tenant_id.to_string(),
        received_at: ts(r.received_at),
        approved_at: r.approved_at.map(ts),
        approver_role: if r.approved_at.is_some() {
            "privacy_contact"
        } else {
            "not_required"
        }
        .to_owned(),
        erased_at: ts(r.erased_at.or(r.closed_at).unwrap_or(r.updated_at)),
        targets,
        audit_seq,
        audit_head,
    }))
}
