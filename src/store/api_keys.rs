//! API keys: stored as SHA-256 digests, each scoped to one tenant.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::api_keys;
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::secret::SecretDigest;
use crate::domain::tenant::ApprovalPolicy;
use crate::domain::{ApiKeyId, TenantId};
use crate::with_conn;

/// An API key's metadata. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    /// The first characters of the key, to recognise it in a list.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
struct ApiKeyRow {
    id: String,
    tenant_id: String,
    name: String,
    key_prefix: String,
    key_hash: String,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

impl ApiKeyRow {
    fn into_domain(self) -> Result<ApiKey, StoreError> {
        let bad = || StoreError::Internal(format!("api key {}: bad id", self.id));
        Ok(ApiKey {
            id: self.id.parse().map_err(|_| bad())?,
            tenant_id: self.tenant_id.parse().map_err(|_| bad())?,
            name: self.name,
            prefix: self.key_prefix,
            created_at: utc(self.created_at),
            revoked_at: self.revoked_at.map(utc),
        })
    }
}

pub fn insert(conn: &mut Conn<'_>, key: &ApiKey, digest: &SecretDigest) -> Result<(), StoreError> {
    let row = ApiKeyRow {
        id: key.id.to_string(),
        tenant_id: key.tenant_id.to_string(),
        name: key.name.clone(),
        key_prefix: key.prefix.clone(),
        key_hash: digest.as_str().to_owned(),
        created_at: key.created_at.naive_utc(),
        revoked_at: None,
    };
    with_conn!(conn, |c| diesel::insert_into(api_keys::table)
        .values(&row)
        .execute(c))?;
    Ok(())
}

/// What a submission needs to know about its caller: the live key with this
/// digest, and its tenant's approval policy and whether it notifies subjects.
#[derive(Debug, Clone)]
pub struct SubmitKey {
    pub key: ApiKey,
    pub policy: ApprovalPolicy,
    pub notify_subject: bool,
}

/// [`find_active`] and the tenant's submission settings in one query, so a
/// submission checks its key inside its own write transaction (one
/// connection checkout, one round trip before the inserts).
pub fn find_active_for_submit(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
) -> Result<Option<SubmitKey>, StoreError> {
    use super::schema::tenants;
    let row: Option<(ApiKeyRow, String, bool)> = with_conn!(conn, |c| api_keys::table
        .inner_join(tenants::table.on(tenants::id.eq(api_keys::tenant_id)))
        .filter(api_keys::key_hash.eq(digest.as_str()))
        .filter(api_keys::revoked_at.is_null())
        .select((
            ApiKeyRow::as_select(),
            tenants::approval_policy,
            tenants::notify_subject,
        ))
        .first(c)
        .optional())?;
    row.map(|(key, policy, notify_subject)| {
        let policy = ApprovalPolicy::parse(&policy)
            .ok_or_else(|| StoreError::Internal(format!("tenant {}: bad policy", key.tenant_id)))?;
        Ok(SubmitKey {
            key: key.into_domain()?,
            policy,
            notify_subject,
        })
    })
    .transpose()
}

/// The live key with this digest, if any.
pub fn find_active(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
) -> Result<Option<ApiKey>, StoreError> {
    let row: Option<ApiKeyRow> = with_conn!(conn, |c| api_keys::table
        .filter(api_keys::key_hash.eq(digest.as_str()))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional())?;
    row.map(ApiKeyRow::into_domain).transpose()
}

pub fn list(conn: &mut Conn<'_>, tenant: TenantId) -> Result<Vec<ApiKey>, StoreError> {
    let rows: Vec<ApiKeyRow> = with_conn!(conn, |c| api_keys::table
        .filter(api_keys::tenant_id.eq(tenant.to_string()))
        .order(api_keys::id.asc())
        .select(ApiKeyRow::as_select())
        .load(c))?;
    rows.into_iter().map(ApiKeyRow::into_domain).collect()
}

/// Revoke a key of this tenant. Revoking twice is harmless; an unknown key
/// (or another tenant's) is `NotFound`.
pub fn revoke(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: ApiKeyId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (tenant, id) = (tenant.to_string(), id.to_string());
    let exists: i64 = with_conn!(conn, |c| api_keys::table
        .filter(api_keys::id.eq(&id))
        .filter(api_keys::tenant_id.eq(&tenant))
        .count()
        .get_result(c))?;
    if exists == 0 {
        return Err(StoreError::NotFound);
    }
    with_conn!(conn, |c| diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(&id))
            .filter(api_keys::revoked_at.is_null())
    )
    .set(api_keys::revoked_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(())
}
