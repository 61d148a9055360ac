//! A privacy contact's decision on a link for one request, written in one
//! statement on the link and the request as read: the link used up, the
//! request's change with its audit event and follow-up jobs, and when it
//! approves, the target calls and their jobs. On PostgreSQL that saves the
//! transaction that holds the request (`BEGIN`, the link, the row lock, the
//! link's use, the calls, the change, `COMMIT`); the caller falls back to it
//! when the link or the request moved since they were read.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::{er, plan_change, Change, Known, RequestRow, Seen};
use crate::domain::outbox::WorkflowPolicy;
use crate::domain::secret::SecretDigest;
use crate::domain::tenant::Tenant;
use crate::store::approvals::{Link, LinkRow};
use crate::store::schema::{approval_links as al, tenants as tn};
use crate::store::tenants::TenantRow;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// A link by its token's digest, its tenant, and for a link for one request,
/// that request (of the link's tenant) as read: one read, outside any write.
///
/// The request is joined by its id alone and its tenant compared here: with
/// the tenant in the join, a planner working from stale statistics (a fresh
/// database, `autovacuum` off) may walk one of the `(tenant_id, ...)` indexes
/// through all of the tenant's requests instead of taking the primary key
/// (seen on PostgreSQL in bench/pipeline: 140-260 µs a lookup at 5,000-10,000
/// requests, growing with the tenant; about 80 µs by the key).
pub fn find_link_to_decide(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
) -> Result<Option<(Link, Tenant, Option<Seen>)>, StoreError> {
    let found: Option<(LinkRow, TenantRow, Option<RequestRow>)> = with_conn!(conn, |c| al::table
        .inner_join(tn::table.on(tn::id.eq(al::tenant_id)))
        .left_join(er::table.on(al::request_id.eq(er::id.nullable())))
        .filter(al::token_hash.eq(digest.as_str()))
        .select((
            LinkRow::as_select(),
            TenantRow::as_select(),
            Option::<RequestRow>::as_select(),
        ))
        .first(c)
        .optional())?;
    found
        .map(|(l, t, r)| {
            // Another tenant's request is no request of this link's.
            let seen = r
                .filter(|row| row.tenant_id == l.tenant_id)
                .map(|row| Seen { row });
            Ok((l.into_domain()?, t.into_domain()?, seen))
        })
        .transpose()
}

/// Apply `change` (an approval or a rejection) to the request as `seen`,
/// using up `link` with it: one statement on PostgreSQL. `false`, and
/// nothing written, when the link was used or voided since, or the request
/// moved (its state, chain head or OpenDSR mark), or it is linked to an
/// OpenDSR request (whose mappings are read under the row lock): then
/// decide in a transaction that holds the request.
pub fn decide_if_unmoved(
    conn: &mut Conn<'_>,
    seen: &Seen,
    tenant: &Tenant,
    link: &str,
    change: Change<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = &seen.row;
    if row.opendsr_linked || row.tenant_id != tenant.id.to_string() {
        return Ok(false);
    }
    let known = Known {
        notify_subject: Some(tenant.settings.notify_subject),
        fan_out_in_write: true,
    };
    let planned = plan_change(Some(conn), row, change, workflow, now, known)?;
    planned.write(conn, row, Some(link))
}
