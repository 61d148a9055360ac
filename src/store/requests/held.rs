//! A request row held by the write transaction that reads it, and the notes
//! and transitions applied to it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::{apply_row, er, note_row, Change, Note, RequestRow};
use crate::domain::outbox::WorkflowPolicy;
use crate::domain::request::ErasureRequest;
use crate::domain::{RequestId, RequestState, TenantId};
use crate::store::{Conn, StoreError};

/// A request row this write transaction holds: no other writer can change it
/// until the transaction ends (PostgreSQL: `SELECT ... FOR UPDATE`; SQLite's
/// one writer holds the whole database). Notes and transitions on it need no
/// read of their own and cannot lose a race; each keeps it as it left it.
/// Only meaningful inside a write transaction.
pub struct Held {
    pub(super) row: RequestRow,
}

impl Held {
    pub fn request(&self) -> Result<ErasureRequest, StoreError> {
        self.row.clone().into_domain()
    }

    pub fn state(&self) -> Result<RequestState, StoreError> {
        self.row.state()
    }
}

/// Take a tenant's request for the rest of this write transaction.
pub fn hold(conn: &mut Conn<'_>, tenant: TenantId, id: RequestId) -> Result<Held, StoreError> {
    hold_where(conn, Some(tenant), id)
}

/// [`hold`] by id alone, for workers (which act across tenants).
pub fn hold_any(conn: &mut Conn<'_>, id: RequestId) -> Result<Held, StoreError> {
    hold_where(conn, None, id)
}

fn hold_where(
    conn: &mut Conn<'_>,
    tenant: Option<TenantId>,
    id: RequestId,
) -> Result<Held, StoreError> {
    let row: RequestRow = match conn {
        Conn::Pg(c) => er::table
            .find(id.to_string())
            .select(RequestRow::as_select())
            .for_update()
            .first(&mut **c)?,
        Conn::Sqlite(c) => er::table
            .find(id.to_string())
            .select(RequestRow::as_select())
            .first(&mut **c)?,
    };
    // Another tenant's request is not there for this one.
    if tenant.is_some_and(|t| t.to_string() != row.tenant_id) {
        return Err(StoreError::NotFound);
    }
    Ok(Held { row })
}

/// Apply a change to a held request (see [`apply`]).
pub fn apply_held(
    conn: &mut Conn<'_>,
    held: &mut Held,
    change: Change<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<ErasureRequest, StoreError> {
    let row = apply_row(conn, held.row.clone(), change, workflow, now)?.ok_or(
        StoreError::Conflict("the request changed meanwhile, try again"),
    )?;
    held.row = row;
    held.request()
}

/// Record an event on a held request (see [`note`]); with `note.finish`,
/// mark that claimed job finished in the same write.
pub fn note_held(conn: &mut Conn<'_>, held: &mut Held, note: Note<'_>) -> Result<(), StoreError> {
    held.row = note_row(conn, held.row.clone(), note)?;
    Ok(())
}
