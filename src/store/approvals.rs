//! Approval links. The database keeps only the SHA-256 of each link's secret;
//! a new link for the same request or batch voids the older ones.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::approval_links as al;
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::approval::LinkStatus;
use crate::domain::secret::SecretDigest;
use crate::domain::tenant::Tenant;
use crate::domain::{BatchId, RequestId, TenantId};
use crate::with_conn;

/// What a link decides: one request, or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTarget {
    Request(RequestId),
    Batch(BatchId),
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = al)]
pub struct LinkRow {
    pub id: String,
    pub tenant_id: String,
    pub token_hash: String,
    pub request_id: Option<String>,
    pub batch_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub voided_at: Option<NaiveDateTime>,
}

/// A link as the pages need it.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: String,
    pub tenant: TenantId,
    pub target: LinkTarget,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
}

impl Link {
    pub fn status(&self, now: DateTime<Utc>) -> LinkStatus {
        LinkStatus::of(self.used_at, self.voided_at, self.expires_at, now)
    }
}

impl LinkRow {
    pub(super) fn into_domain(self) -> Result<Link, StoreError> {
        let bad = || StoreError::Internal(format!("approval link {}: bad target", self.id));
        let target = match (&self.request_id, &self.batch_id) {
            (Some(r), None) => LinkTarget::Request(r.parse().map_err(|_| bad())?),
            (None, Some(b)) => LinkTarget::Batch(b.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        Ok(Link {
            tenant: self.tenant_id.parse().map_err(|_| bad())?,
            id: self.id,
            target,
            expires_at: utc(self.expires_at),
            used_at: self.used_at.map(utc),
            voided_at: self.voided_at.map(utc),
        })
    }
}

/// A new link's row (its digest only), to store with [`insert`] or with a
/// group of jobs' writes (`Store::write_link`).
pub fn plan(
    tenant: TenantId,
    target: LinkTarget,
    digest: &SecretDigest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> LinkRow {
    let (request_id, batch_id) = match target {
        LinkTarget::Request(r) => (Some(r.to_string()), None),
        LinkTarget::Batch(b) => (None, Some(b.to_string())),
    };
    LinkRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        token_hash: digest.as_str().to_owned(),
        request_id,
        batch_id,
        created_at: now.naive_utc(),
        expires_at: expires_at.naive_utc(),
        used_at: None,
        voided_at: None,
    }
}

/// Store the link [`plan`] made (its digest only), voiding its target's
/// live links: one statement on PostgreSQL (so it needs no transaction
/// around it, see `Store::write_self_contained`), two in SQLite's writer
/// transaction.
pub fn insert(conn: &mut Conn<'_>, row: &LinkRow) -> Result<(), StoreError> {
    match conn {
        Conn::Pg(c) => {
            match (&row.request_id, &row.batch_id) {
                (Some(_), _) => VoidAndInsert::<false> { row }.execute(&mut **c)?,
                _ => VoidAndInsert::<true> { row }.execute(&mut **c)?,
            };
        }
        Conn::Sqlite(c) => {
            let q = diesel::update(al::table)
                .filter(al::used_at.is_null())
                .filter(al::voided_at.is_null())
                .set(al::voided_at.eq(row.created_at));
            match (&row.request_id, &row.batch_id) {
                (Some(r), _) => q.filter(al::request_id.eq(r)).execute(&mut **c)?,
                (_, Some(b)) => q.filter(al::batch_id.eq(b)).execute(&mut **c)?,
                _ => 0,
            };
            diesel::insert_into(al::table)
                .values(row)
                .execute(&mut **c)?;
        }
    }
    Ok(())
}

/// PostgreSQL: void the live links of the new link's request (or, with
/// `BATCH`, its batch) and insert it, as one statement of constant text
/// (prepared once per connection).
struct VoidAndInsert<'a, const BATCH: bool> {
    row: &'a LinkRow,
}

impl<const BATCH: bool> diesel::query_builder::QueryId for VoidAndInsert<'_, BATCH> {
    type QueryId = VoidAndInsert<'static, BATCH>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const BATCH: bool> diesel::RunQueryDsl<diesel::pg::PgConnection> for VoidAndInsert<'_, BATCH> {}

impl<const BATCH: bool> diesel::query_builder::QueryFragment<diesel::pg::Pg>
    for VoidAndInsert<'_, BATCH>
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Nullable, Text, Timestamp};
        let r = self.row;
        out.push_sql("WITH voided AS (UPDATE approval_links SET voided_at = ");
        out.push_bind_param::<Timestamp, _>(&r.created_at)?;
        out.push_sql(if BATCH {
            " WHERE batch_id = "
        } else {
            " WHERE request_id = "
        });
        out.push_bind_param::<Nullable<Text>, _>(if BATCH { &r.batch_id } else { &r.request_id })?;
        out.push_sql(
            " AND used_at IS NULL AND voided_at IS NULL) INSERT INTO approval_links \
             (id, tenant_id, token_hash, request_id, batch_id, created_at, expires_at) VALUES (",
        );
        out.push_bind_param::<Text, _>(&r.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.request_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.batch_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.expires_at)?;
        out.push_sql(")");
        Ok(())
    }
}

/// The link a token's digest names, with its tenant, in one read.
pub fn find_with_tenant(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
) -> Result<Option<(Link, Tenant)>, StoreError> {
    use super::schema::tenants as tn;
    use super::tenants::TenantRow;
    let row: Option<(LinkRow, TenantRow)> = with_conn!(conn, |c| al::table
        .inner_join(tn::table.on(tn::id.eq(al::tenant_id)))
        .filter(al::token_hash.eq(digest.as_str()))
        .select((LinkRow::as_select(), TenantRow::as_select()))
        .first(c)
        .optional())?;
    row.map(|(l, t)| Ok((l.into_domain()?, t.into_domain()?)))
        .transpose()
}

/// Hold the link's row for the rest of this write transaction (PostgreSQL;
/// SQLite's one writer holds the whole database). A decision takes its link
/// before its request, in either way it is written
/// (`requests::decide_if_unmoved` too), so two decisions never wait for
/// each other crosswise.
pub fn hold(conn: &mut Conn<'_>, id: &str) -> Result<(), StoreError> {
    if let Conn::Pg(c) = conn {
        al::table
            .find(id)
            .select(al::id)
            .for_update()
            .first::<String>(&mut **c)
            .optional()?;
    }
    Ok(())
}

/// Is the link neither used nor voided?
pub fn unused(conn: &mut Conn<'_>, id: &str) -> Result<bool, StoreError> {
    use diesel::dsl::{exists, select};
    Ok(with_conn!(conn, |c| select(exists(
        al::table
            .filter(al::id.eq(id))
            .filter(al::used_at.is_null())
            .filter(al::voided_at.is_null())
    ))
    .get_result(c))?)
}

/// Use the link: true for the one caller that gets it, false for the rest.
pub fn mark_used(conn: &mut Conn<'_>, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = with_conn!(conn, |c| diesel::update(
        al::table
            .filter(al::id.eq(id))
            .filter(al::used_at.is_null())
            .filter(al::voided_at.is_null())
    )
    .set(al::used_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(n == 1)
}
