//! The requests a batch of claimed jobs is about, read in one go: the job
//! dispatcher reads them right after its claim, so each job starts with the
//! request as it is now instead of reading it on its own (one statement per
//! batch, or two with target calls, instead of one per job). What a job reads
//! ahead is what it would have read first thing: it acts on it as on its own
//! read, and its writes are compare-and-sets on it all the same.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{er, RequestRow, Seen};
use crate::domain::target::CallStatus;
use crate::domain::tenant::Tenant;
use crate::domain::RequestId;
use crate::store::targets::{CallRow, TargetRow};
use crate::store::tenants::TenantRow;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// One request as read ahead: the row, its tenant, and (when asked for)
/// its target calls by target name, each with its target if it still
/// exists.
#[derive(Clone)]
pub struct Ahead {
    pub seen: Seen,
    pub tenant: Tenant,
    pub calls: Vec<(CallRow, Option<TargetRow>)>,
}

impl Ahead {
    /// The call to `target` with its target, how many of the other calls
    /// were not confirmed, as `get_seen_with_call` reads them.
    pub fn call_to(&self, target: &str) -> Option<super::SeenCall> {
        let (call, t) = self.calls.iter().find(|(c, _)| c.target_id == target)?;
        let others_unconfirmed = self
            .calls
            .iter()
            .filter(|(c, _)| c.target_id != target && c.status() != CallStatus::Confirmed)
            .count();
        Some(super::SeenCall {
            seen: self.seen.clone(),
            call: call.clone(),
            target: t.clone()?,
            others_unconfirmed: i64::try_from(others_unconfirmed).unwrap_or(i64::MAX),
            notify_subject: self.tenant.settings.notify_subject,
        })
    }

    /// The calls alone, by target name (what a receipt states).
    pub fn call_rows(&self) -> Vec<CallRow> {
        self.calls.iter().map(|(c, _)| c.clone()).collect()
    }
}

/// The requests `ids` with their tenants and, with `calls`, their target
/// calls: those not found are left out.
pub fn read_ahead(
    conn: &mut Conn<'_>,
    ids: &[RequestId],
    calls: bool,
) -> Result<HashMap<RequestId, Ahead>, StoreError> {
    use crate::store::schema::{erasure_targets as et, target_calls as tc, tenants as tn};
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(RequestRow, TenantRow)> = with_conn!(conn, |c| er::table
        .inner_join(tn::table.on(tn::id.eq(er::tenant_id)))
        .filter(er::id.eq_any(&keys))
        .select((RequestRow::as_select(), TenantRow::as_select()))
        .load(c))?;
    let mut found = HashMap::with_capacity(rows.len());
    for (row, tenant) in rows {
        let (_, id) = row.ids()?;
        let ahead = Ahead {
            seen: Seen { row },
            tenant: tenant.into_domain()?,
            calls: Vec::new(),
        };
        found.insert(id, ahead);
    }
    if calls && !found.is_empty() {
        let rows: Vec<(CallRow, Option<TargetRow>)> = with_conn!(conn, |c| tc::table
            .left_join(
                et::table.on(et::id
                    .eq(tc::target_id)
                    .and(et::tenant_id.eq(tc::tenant_id))),
            )
            .filter(tc::request_id.eq_any(&keys))
            .order((tc::request_id.asc(), tc::target_name.asc()))
            .select((CallRow::as_select(), Option::<TargetRow>::as_select()))
            .load(c))?;
        for (call, target) in rows {
            let id: Option<RequestId> = call.request_id.parse().ok();
            if let Some(ahead) = id.and_then(|id| found.get_mut(&id)) {
                ahead.calls.push((call, target));
            }
        }
    }
    Ok(found)
}
