//! Facebook data-deletion callbacks: a tenant's app (secret sealed), and the
//! confirmation codes (as SHA-256) of the deletions it asked for.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{facebook_apps as fa, facebook_deletions as fd};
use super::{Conn, StoreError};
use crate::domain::{RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = fa)]
struct AppRow {
    tenant_id: String,
    app_id: String,
    secret_box: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Set (or replace) a tenant's Facebook app.
pub fn set_app(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    app_id: &str,
    secret_box: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = AppRow {
        tenant_id: tenant.to_string(),
        app_id: app_id.to_owned(),
        secret_box: secret_box.to_owned(),
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
    };
    with_conn!(conn, |c| diesel::insert_into(fa::table)
        .values(&row)
        .on_conflict(fa::tenant_id)
        .do_update()
        .set((
            fa::app_id.eq(&row.app_id),
            fa::secret_box.eq(&row.secret_box),
            fa::updated_at.eq(row.updated_at),
        ))
        .execute(c))?;
    Ok(())
}

/// A tenant's app id and sealed secret, if configured.
pub fn app(conn: &mut Conn<'_>, tenant: TenantId) -> Result<Option<(String, String)>, StoreError> {
    Ok(with_conn!(conn, |c| fa::table
        .find(tenant.to_string())
        .select((fa::app_id, fa::secret_box))
        .first::<(String, String)>(c)
        .optional())?)
}

/// Record a code for a request; a replay (same code) keeps the first row.
/// Returns the request the code names.
pub fn record(
    conn: &mut Conn<'_>,
    code_hash: &str,
    tenant: TenantId,
    request: RequestId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::insert_into(fd::table)
        .values((
            fd::code_hash.eq(code_hash),
            fd::tenant_id.eq(tenant.to_string()),
            fd::request_id.eq(request.to_string()),
            fd::created_at.eq(now.naive_utc()),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}

/// The tenant and request a code names.
pub fn find(
    conn: &mut Conn<'_>,
    code_hash: &str,
) -> Result<Option<(TenantId, RequestId)>, StoreError> {
    let row: Option<(String, String)> = with_conn!(conn, |c| fd::table
        .find(code_hash)
        .select((fd::tenant_id, fd::request_id))
        .first::<(String, String)>(c)
        .optional())?;
    row.map(|(t, r)| {
        Ok((
            t.parse()
                .map_err(|_| StoreError::Internal("facebook deletion: bad tenant".into()))?,
            r.parse()
                .map_err(|_| StoreError::Internal("facebook deletion: bad request".into()))?,
        ))
    })
    .transpose()
}
