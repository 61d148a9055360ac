//! Erasure targets and where each request's erasure stands at each of them.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::jobs::JobRow;
use super::schema::{erasure_targets as et, target_calls as tc};
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::outbox::JobKind;
use crate::domain::target::{CallStatus, TargetKind};
use crate::domain::{RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = et)]
pub struct TargetRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    pub secret_box: String,
    pub timeout_ms: i32,
    pub enabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub kind: String,
    /// Where a manual target's confirmation links go.
    pub owner_email: Option<String>,
}

impl TargetRow {
    pub fn kind(&self) -> TargetKind {
        TargetKind::parse(&self.kind).unwrap_or(TargetKind::Webhook)
    }
    /// The URL calls go to; `None` for a manual target.
    pub fn url(&self) -> Option<&str> {
        (self.kind() == TargetKind::Webhook).then_some(self.url.as_str())
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        utc(self.created_at)
    }
    pub fn updated_at(&self) -> DateTime<Utc> {
        utc(self.updated_at)
    }
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = tc)]
pub struct CallRow {
    pub id: String,
    pub tenant_id: String,
    pub request_id: String,
    pub target_id: String,
    pub target_name: String,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// For a manual target: the owner's address when they confirmed.
    pub confirmed_by: Option<String>,
}

impl CallRow {
    pub fn status(&self) -> CallStatus {
        CallStatus::parse(&self.status).unwrap_or(CallStatus::Pending)
    }
    pub fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.confirmed_at.map(utc)
    }
}

pub fn insert(conn: &mut Conn<'_>, row: &TargetRow) -> Result<(), StoreError> {
    let n = with_conn!(conn, |c| diesel::insert_into(et::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "a target with this name already exists for the tenant",
        ));
    }
    Ok(())
}

pub fn list(conn: &mut Conn<'_>, tenant: TenantId) -> Result<Vec<TargetRow>, StoreError> {
    Ok(with_conn!(conn, |c| et::table
        .filter(et::tenant_id.eq(tenant.to_string()))
        .order(et::id.asc())
        .limit(1000)
        .select(TargetRow::as_select())
        .load(c))?)
}

/// A tenant's target by id or by name.
pub fn find(conn: &mut Conn<'_>, tenant: TenantId, key: &str) -> Result<TargetRow, StoreError> {
    Ok(with_conn!(conn, |c| et::table
        .filter(et::tenant_id.eq(tenant.to_string()))
        .filter(et::id.eq(key).or(et::name.eq(key)))
        .select(TargetRow::as_select())
        .first(c))?)
}

pub fn update(conn: &mut Conn<'_>, row: &TargetRow) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(et::table.find(&row.id))
        .set((
            et::url.eq(&row.url),
            et::owner_email.eq(&row.owner_email),
            et::timeout_ms.eq(row.timeout_ms),
            et::enabled.eq(row.enabled),
            et::updated_at.eq(row.updated_at),
        ))
        .execute(c))?;
    Ok(())
}

/// On entering `erasing`: one call row and one `CallTarget` job per enabled
/// target still to confirm. Idempotent: a retry after a failure re-queues only
/// the targets that have not confirmed.
pub fn fan_out(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    request: RequestId,
    now: DateTime<Utc>,
) -> Result<Vec<JobRow>, StoreError> {
    let n = now.naive_utc();
    let open: Vec<String> = match conn {
        Conn::Pg(c) => {
            let mut open: Vec<String> = FanOut {
                tenant: tenant.to_string(),
                request: request.to_string(),
                now: n,
            }
            .load(&mut **c)?;
            open.sort();
            open
        }
        Conn::Sqlite(c) => fan_out_each(c, tenant, request, n)?,
    };
    Ok(open
        .into_iter()
        .map(|target| {
            JobRow::new(
                JobKind::CallTarget,
                Some(tenant),
                Some(request),
                serde_json::json!({ "target_id": target }),
                now,
            )
        })
        .collect())
}

/// SQLite: the enabled targets, then one upsert per target.
fn fan_out_each(
    c: &mut diesel::SqliteConnection,
    tenant: TenantId,
    request: RequestId,
    n: NaiveDateTime,
) -> Result<Vec<String>, StoreError> {
    let targets: Vec<TargetRow> = et::table
        .filter(et::tenant_id.eq(tenant.to_string()))
        .filter(et::enabled.eq(true))
        .order(et::id.asc())
        .select(TargetRow::as_select())
        .load(c)?;
    let mut open = Vec::with_capacity(targets.len());
    for t in &targets {
        let row = CallRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.to_string(),
            request_id: request.to_string(),
            target_id: t.id.clone(),
            target_name: t.name.clone(),
            status: CallStatus::Pending.as_str().to_owned(),
            attempts: 0,
            last_status_code: None,
            last_error: None,
            confirmed_at: None,
            created_at: n,
            updated_at: n,
            confirmed_by: None,
        };
        let upsert = diesel::insert_into(tc::table)
            .values(&row)
            .on_conflict((tc::request_id, tc::target_id))
            .do_update()
            .set((
                tc::status.eq(CallStatus::Pending.as_str()),
                tc::updated_at.eq(n),
            ));
        // `ON CONFLICT ... DO UPDATE ... WHERE`: a confirmed call stays.
        let again: Option<String> = diesel::query_dsl::methods::FilterDsl::filter(
            upsert,
            tc::status.ne(CallStatus::Confirmed.as_str()),
        )
        .returning(tc::target_id)
        .get_result(c)
        .optional()?;
        open.extend(again);
    }
    Ok(open)
}

/// The PostgreSQL fan-out's text, which the approval decision's statement
/// (`requests::chained`) shares: the call rows' insert up to the request id
/// (then the target's id and name, `'pending'`, 0 and the time twice), and
/// the conflict clause that puts an unconfirmed call back to pending (then
/// the time) and keeps a confirmed one as it is (then what to return).
pub(super) const FAN_OUT_INSERT: &str = "INSERT INTO target_calls (id, tenant_id, request_id, \
target_id, target_name, status, attempts, created_at, updated_at) \
SELECT gen_random_uuid()::text, t.tenant_id, ";
pub(super) const FAN_OUT_AGAIN: &str =
    " ON CONFLICT (request_id, target_id) DO UPDATE SET status = 'pending', updated_at = ";
pub(super) const FAN_OUT_RETURNING: &str = " WHERE target_calls.status <> 'confirmed' RETURNING ";

/// PostgreSQL: a call row for every enabled target of the tenant, or an
/// unconfirmed one back to pending, as one statement; the targets called
/// (again).
struct FanOut {
    tenant: String,
    request: String,
    now: NaiveDateTime,
}

impl diesel::query_builder::Query for FanOut {
    type SqlType = diesel::sql_types::Text;
}

impl diesel::query_builder::QueryId for FanOut {
    type QueryId = FanOut;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::pg::PgConnection> for FanOut {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for FanOut {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Text, Timestamp};
        out.push_sql(FAN_OUT_INSERT);
        out.push_bind_param::<Text, _>(&self.request)?;
        out.push_sql(", t.id, t.name, 'pending', 0, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" FROM erasure_targets t WHERE t.enabled AND t.tenant_id = ");
        out.push_bind_param::<Text, _>(&self.tenant)?;
        out.push_sql(FAN_OUT_AGAIN);
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(FAN_OUT_RETURNING);
        out.push_sql("target_id");
        Ok(())
    }
}

pub fn calls(conn: &mut Conn<'_>, request: RequestId) -> Result<Vec<CallRow>, StoreError> {
    Ok(with_conn!(conn, |c| tc::table
        .filter(tc::request_id.eq(request.to_string()))
        .order(tc::target_name.asc())
        .select(CallRow::as_select())
        .load(c))?)
}

pub fn call(conn: &mut Conn<'_>, request: RequestId, target: &str) -> Result<CallRow, StoreError> {
    Ok(with_conn!(conn, |c| tc::table
        .filter(tc::request_id.eq(request.to_string()))
        .filter(tc::target_id.eq(target))
        .select(CallRow::as_select())
        .first(c))?)
}

/// A call's last error or an owner's note as kept: at most 500 characters.
pub(super) fn kept_text(text: Option<&str>) -> Option<String> {
    text.map(|t| t.chars().take(500).collect())
}

/// Record the outcome of one call to a target.
pub fn record(
    conn: &mut Conn<'_>,
    request: RequestId,
    target: &str,
    status: CallStatus,
    code: Option<u16>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let n = now.naive_utc();
    let confirmed = (status == CallStatus::Confirmed).then_some(n);
    let error = kept_text(error);
    with_conn!(conn, |c| diesel::update(
        tc::table
            .filter(tc::request_id.eq(request.to_string()))
            .filter(tc::target_id.eq(target))
            // A confirmation is final.
            .filter(tc::status.ne(CallStatus::Confirmed.as_str()))
    )
    .set((
        tc::status.eq(status.as_str()),
        tc::attempts.eq(tc::attempts + 1),
        tc::last_status_code.eq(code.map(i32::from)),
        tc::last_error.eq(error),
        tc::confirmed_at.eq(confirmed),
        tc::updated_at.eq(n),
    ))
    .execute(c))?;
    Ok(())
}

/// [`record`], answering whether a confirmation completed the set: every
/// call of the request confirmed after it (as [`all_confirmed`] would; false
/// for any other status). On PostgreSQL the update and the count are one
/// statement. Hold the request (`requests::hold`) first: every
/// writer of a request's calls does, so the count cannot miss a confirmation
/// committing meanwhile.
pub fn record_confirming(
    conn: &mut Conn<'_>,
    request: RequestId,
    target: &str,
    status: CallStatus,
    code: Option<u16>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let confirming = status == CallStatus::Confirmed;
    let Conn::Pg(c) = conn else {
        record(conn, request, target, status, code, error, now)?;
        return Ok(confirming && all_confirmed(conn, request)?);
    };
    let n = now.naive_utc();
    let q = RecordCounting {
        request: request.to_string(),
        target,
        status: status.as_str(),
        code: code.map(i32::from),
        error: kept_text(error),
        confirmed_at: (status == CallStatus::Confirmed).then_some(n),
        now: n,
    };
    let (others_open, this_confirmed, total): (i64, i64, i64) = q.get_result(&mut **c)?;
    Ok(confirming && total > 0 && others_open == 0 && this_confirmed == 1)
}

/// PostgreSQL: [`record`]'s update and, from the statement's snapshot (the
/// calls as they were before it), how many other calls are not confirmed,
/// whether this one is confirmed after it, and how many calls there are.
struct RecordCounting<'a> {
    request: String,
    target: &'a str,
    status: &'a str,
    code: Option<i32>,
    error: Option<String>,
    confirmed_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
}

impl diesel::query_builder::Query for RecordCounting<'_> {
    type SqlType = (
        diesel::sql_types::BigInt,
        diesel::sql_types::BigInt,
        diesel::sql_types::BigInt,
    );
}

impl diesel::query_builder::QueryId for RecordCounting<'_> {
    type QueryId = RecordCounting<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::pg::PgConnection> for RecordCounting<'_> {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for RecordCounting<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
        out.push_sql("WITH rec AS (UPDATE target_calls SET status = ");
        out.push_bind_param::<Text, _>(self.status)?;
        out.push_sql(", attempts = attempts + 1, last_status_code = ");
        out.push_bind_param::<Nullable<Integer>, _>(&self.code)?;
        out.push_sql(", last_error = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.error)?;
        out.push_sql(", confirmed_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.confirmed_at)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE request_id = ");
        out.push_bind_param::<Text, _>(&self.request)?;
        out.push_sql(" AND target_id = ");
        out.push_bind_param::<Text, _>(self.target)?;
        // A confirmation is final.
        out.push_sql(
            " AND status <> 'confirmed' RETURNING 1) SELECT count(*) FILTER (WHERE target_id <> ",
        );
        out.push_bind_param::<Text, _>(self.target)?;
        out.push_sql(" AND status <> 'confirmed'), count(*) FILTER (WHERE target_id = ");
        out.push_bind_param::<Text, _>(self.target)?;
        out.push_sql(" AND (status = 'confirmed' OR ");
        out.push_bind_param::<Text, _>(self.status)?;
        out.push_sql(" = 'confirmed')), count(*) FROM target_calls WHERE request_id = ");
        out.push_bind_param::<Text, _>(&self.request)?;
        Ok(())
    }
}

/// Has every target of this request confirmed? (False when it has none.)
pub fn all_confirmed(conn: &mut Conn<'_>, request: RequestId) -> Result<bool, StoreError> {
    let calls = calls(conn, request)?;
    Ok(!calls.is_empty() && calls.iter().all(|c| c.status() == CallStatus::Confirmed))
}

/// Does the tenant have enabled targets (so completion is theirs to confirm)?
pub fn has_enabled(conn: &mut Conn<'_>, tenant: TenantId) -> Result<bool, StoreError> {
    let n: i64 = with_conn!(conn, |c| et::table
        .filter(et::tenant_id.eq(tenant.to_string()))
        .filter(et::enabled.eq(true))
        .count()
        .get_result(c))?;
    Ok(n > 0)
}

/// The owner of a manual target reported on one request: record it, unless
/// the call is already settled. Returns whether this report counted.
pub fn owner_report(
    conn: &mut Conn<'_>,
    request: RequestId,
    target: &str,
    status: CallStatus,
    owner: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = now.naive_utc();
    let confirmed = (status == CallStatus::Confirmed).then_some(n);
    let note = kept_text(note);
    let changed = with_conn!(conn, |c| diesel::update(
        tc::table
            .filter(tc::request_id.eq(request.to_string()))
            .filter(tc::target_id.eq(target))
            .filter(tc::status.eq(CallStatus::Accepted.as_str()))
    )
    .set((
        tc::status.eq(status.as_str()),
        tc::last_status_code.eq(None::<i32>),
        tc::last_error.eq(note),
        tc::confirmed_at.eq(confirmed),
        tc::confirmed_by.eq(owner),
        tc::updated_at.eq(n),
    ))
    .execute(c))?;
    Ok(changed == 1)
}
