//! Links emailed to the owner of a manual erasure target. The database keeps
//! only the SHA-256 of each link's secret; every unexpired link of a call
//! works until the call is settled (a reminder adds a link, it does not void
//! the first one the owner may already have opened).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::target_links as tl;
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::secret::SecretDigest;
use crate::domain::{RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = tl)]
pub struct LinkRow {
    pub id: String,
    pub tenant_id: String,
    pub request_id: String,
    pub target_id: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// A link as the page needs it.
#[derive(Debug, Clone)]
pub struct OwnerLink {
    pub id: String,
    pub tenant: TenantId,
    pub request: RequestId,
    pub target_id: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl LinkRow {
    fn into_domain(self) -> Result<OwnerLink, StoreError> {
        let bad = || StoreError::Internal(format!("target link {}: bad ids", self.id));
        Ok(OwnerLink {
            tenant: self.tenant_id.parse().map_err(|_| bad())?,
            request: self.request_id.parse().map_err(|_| bad())?,
            id: self.id,
            target_id: self.target_id,
            expires_at: utc(self.expires_at),
            used_at: self.used_at.map(utc),
        })
    }
}

pub fn create(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    request: RequestId,
    target_id: &str,
    digest: &SecretDigest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String, StoreError> {
    let row = LinkRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        request_id: request.to_string(),
        target_id: target_id.to_owned(),
        token_hash: digest.as_str().to_owned(),
        created_at: now.naive_utc(),
        expires_at: expires_at.naive_utc(),
        used_at: None,
    };
    with_conn!(conn, |c| diesel::insert_into(tl::table)
        .values(&row)
        .execute(c))?;
    Ok(row.id)
}

pub fn find(conn: &mut Conn<'_>, digest: &SecretDigest) -> Result<Option<OwnerLink>, StoreError> {
    let row: Option<LinkRow> = with_conn!(conn, |c| tl::table
        .filter(tl::token_hash.eq(digest.as_str()))
        .select(LinkRow::as_select())
        .first(c)
        .optional())?;
    row.map(LinkRow::into_domain).transpose()
}

/// Mark a link used; false if it already was (a racing submission).
pub fn mark_used(conn: &mut Conn<'_>, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = with_conn!(conn, |c| diesel::update(
        tl::table.find(id).filter(tl::used_at.is_null())
    )
    .set(tl::used_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(n == 1)
}
