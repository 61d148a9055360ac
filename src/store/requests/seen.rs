//! A request as a job read it before acting, and the note it records on it
//! afterwards.

use diesel::prelude::*;

use super::{
    er, hold_any, load_row, note_held, note_if_unmoved, plan_note_on, Note, RequestRow, SeenWrite,
};
use crate::domain::request::ErasureRequest;
use crate::domain::tenant::Tenant;
use crate::domain::{RequestId, TenantId};
use crate::store::targets::CallRow;
use crate::store::tenants::TenantRow;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// A request as read earlier, outside any write: what a job read before it
/// sent an email, to note the email on without reading the request again.
#[derive(Clone)]
pub struct Seen {
    pub(super) row: RequestRow,
}

impl Seen {
    pub fn request(&self) -> Result<ErasureRequest, StoreError> {
        self.row.clone().into_domain()
    }

    /// The request's id.
    pub fn id(&self) -> Result<RequestId, StoreError> {
        Ok(self.row.ids()?.1)
    }

    /// The chain head as read: its sequence number and hash.
    pub fn head(&self) -> (i64, &str) {
        (self.row.audit_seq, &self.row.audit_head)
    }
}

/// A request by id alone, to note on later (see [`note_seen`]).
pub fn get_seen_any(conn: &mut Conn<'_>, id: RequestId) -> Result<Seen, StoreError> {
    let row: RequestRow = with_conn!(conn, |c| er::table
        .find(id.to_string())
        .select(RequestRow::as_select())
        .first(c))?;
    Ok(Seen { row })
}

/// [`get_seen_any`] with the request's tenant, in one read.
pub fn get_seen_any_with_tenant(
    conn: &mut Conn<'_>,
    id: RequestId,
) -> Result<(Seen, Tenant), StoreError> {
    use crate::store::schema::tenants as tn;
    let (row, tenant): (RequestRow, TenantRow) = with_conn!(conn, |c| er::table
        .inner_join(tn::table.on(tn::id.eq(er::tenant_id)))
        .filter(er::id.eq(id.to_string()))
        .select((RequestRow::as_select(), TenantRow::as_select()))
        .first(c))?;
    Ok((Seen { row }, tenant.into_domain()?))
}

/// [`get_seen_any_with_tenant`] with the request's target calls (by target
/// name), in one read: what a receipt states.
pub fn get_seen_any_with_tenant_and_calls(
    conn: &mut Conn<'_>,
    id: RequestId,
) -> Result<(Seen, Tenant, Vec<CallRow>), StoreError> {
    use crate::store::schema::{target_calls as tc, tenants as tn};
    let rows: Vec<(RequestRow, TenantRow, Option<CallRow>)> = with_conn!(conn, |c| er::table
        .inner_join(tn::table.on(tn::id.eq(er::tenant_id)))
        .left_join(tc::table.on(tc::request_id.eq(er::id)))
        .filter(er::id.eq(id.to_string()))
        .order(tc::target_name.asc())
        .select((
            RequestRow::as_select(),
            TenantRow::as_select(),
            Option::<CallRow>::as_select(),
        ))
        .load(c))?;
    let mut rows = rows.into_iter();
    let Some((row, tenant, first)) = rows.next() else {
        return Err(StoreError::NotFound);
    };
    let calls = first
        .into_iter()
        .chain(rows.filter_map(|(_, _, call)| call))
        .collect();
    Ok((Seen { row }, tenant.into_domain()?, calls))
}

/// [`get_seen_any`] within a tenant.
pub fn get_seen(conn: &mut Conn<'_>, tenant: TenantId, id: RequestId) -> Result<Seen, StoreError> {
    Ok(Seen {
        row: load_row(conn, tenant, id)?,
    })
}

/// Record an event on a request read earlier (see [`note`]); with
/// `note.finish`, mark that claimed job finished in the same write. If the
/// request is still as it was seen, that is one statement on PostgreSQL,
/// which needs no transaction around it (`Store::write_self_contained`); if
/// it moved, it is read again and the note tried once more on it as it is
/// now (two statements: a request moved by one write meanwhile, such as the
/// decision on the link an approval email carries, racing that email's
/// note); if it moved again, the request is held and the event chained onto
/// it, atomically.
pub fn note_seen(conn: &mut Conn<'_>, seen: &Seen, note: Note<'_>) -> Result<(), StoreError> {
    if note_if_unmoved(conn, &seen.row, note.clone())?.is_some() {
        return Ok(());
    }
    let (_, id) = seen.row.ids()?;
    note_moved(conn, id, note)
}

/// [`note_seen`]'s note, planned on the request as seen, to be written with
/// a group of others (`Store::write_seen`) or alone.
pub fn plan_note(seen: &Seen, note: Note<'_>) -> Result<SeenWrite, StoreError> {
    plan_note_on(&seen.row, note)
}

/// The rest of [`note_seen`] once its note found the request moved since it
/// was seen: read it again and try once more (PostgreSQL), then hold it.
pub fn note_moved(conn: &mut Conn<'_>, id: RequestId, note: Note<'_>) -> Result<(), StoreError> {
    // Inside a transaction (SQLite's writer) nothing moves it meanwhile:
    // the retry is for PostgreSQL's statements on their own.
    if conn.backend() == crate::store::Backend::Postgres {
        let again = get_seen_any(conn, id)?;
        if note_if_unmoved(conn, &again.row, note.clone())?.is_some() {
            return Ok(());
        }
    }
    conn.atomic(|c| {
        let mut held = hold_any(c, id)?;
        note_held(c, &mut held, note)
    })
}
