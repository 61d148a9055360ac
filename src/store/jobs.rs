//! The durable job table (transactional outbox). Jobs are enqueued inside the
//! transaction of the change that causes them.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::QueryResult;

use super::schema::jobs;
use super::{Conn, StoreError};
use crate::domain::outbox::{JobKind, PlannedJob};
use crate::domain::{JobId, RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, QueryableByName, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = jobs)]
#[diesel(treat_none_as_null = true)]
pub struct JobRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
    pub kind: String,
    pub payload: String,
    pub run_at: NaiveDateTime,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub dead: bool,
    pub locked_by: Option<String>,
}

impl JobRow {
    pub fn new(
        kind: JobKind,
        tenant: Option<TenantId>,
        request: Option<RequestId>,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: JobId::new().to_string(),
            tenant_id: tenant.map(|t| t.to_string()),
            request_id: request.map(|r| r.to_string()),
            kind: kind.as_str().to_owned(),
            payload: payload.to_string(),
            run_at: now.naive_utc(),
            attempts: 0,
            max_attempts: kind.max_attempts(),
            lease_until: None,
            last_error: None,
            created_at: now.naive_utc(),
            finished_at: None,
            dead: false,
            locked_by: None,
        }
    }

    pub fn planned(
        p: &PlannedJob,
        tenant: Option<TenantId>,
        request: Option<RequestId>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut row = Self::new(p.kind, tenant, request, p.payload.clone(), now);
        row.run_at = p.run_at.naive_utc();
        row
    }
}

/// The job that sends a fresh approval link for `r`: one email for its whole
/// batch when it came in a batch, else one for the request.
pub fn approval_resend(r: &crate::domain::request::ErasureRequest, now: DateTime<Utc>) -> JobRow {
    match r.batch_id {
        Some(b) => JobRow::new(
            JobKind::SendBatchApprovalEmail,
            Some(r.tenant_id),
            None,
            serde_json::json!({ "batch_id": b }),
            now,
        ),
        None => JobRow::new(
            JobKind::SendApprovalEmail,
            Some(r.tenant_id),
            Some(r.id),
            serde_json::json!({}),
            now,
        ),
    }
}

pub fn enqueue(conn: &mut Conn<'_>, rows: &[JobRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // A fixed-size batch is a statement diesel can prepare once and cache;
    // a slice is built and prepared anew each time. Submissions and
    // transitions write one to a few jobs.
    match rows.len() {
        1 => enqueue_fixed::<1>(conn, rows),
        2 => enqueue_fixed::<2>(conn, rows),
        3 => enqueue_fixed::<3>(conn, rows),
        4 => enqueue_fixed::<4>(conn, rows),
        5 => enqueue_fixed::<5>(conn, rows),
        6 => enqueue_fixed::<6>(conn, rows),
        _ => {
            with_conn!(conn, |c| diesel::insert_into(jobs::table)
                .values(rows)
                .execute(c))?;
            Ok(())
        }
    }
}

fn enqueue_fixed<const N: usize>(conn: &mut Conn<'_>, rows: &[JobRow]) -> Result<(), StoreError> {
    let rows: &[JobRow; N] = rows
        .try_into()
        .map_err(|_| StoreError::Internal("job batch size".into()))?;
    with_conn!(conn, |c| diesel::insert_into(jobs::table)
        .values(rows)
        .execute(c))?;
    Ok(())
}

/// The jobs written for a request, oldest first.
pub fn for_request(conn: &mut Conn<'_>, request: RequestId) -> Result<Vec<JobRow>, StoreError> {
    Ok(with_conn!(conn, |c| jobs::table
        .filter(jobs::request_id.eq(request.to_string()))
        .order(jobs::id.asc())
        .select(JobRow::as_select())
        .load(c))?)
}

/// Has the request a job of `kind` not yet finished (due, running, or
/// waiting to be retried)?
pub fn has_unfinished(
    conn: &mut Conn<'_>,
    request: RequestId,
    kind: JobKind,
) -> Result<bool, StoreError> {
    Ok(with_conn!(conn, |c| diesel::select(diesel::dsl::exists(
        jobs::table
            .filter(jobs::request_id.eq(request.to_string()))
            .filter(jobs::kind.eq(kind.as_str()))
            .filter(jobs::finished_at.is_null())
    ))
    .get_result(c))?)
}

/// Claim the next due job of one of `kinds` for `worker`, leasing it until
/// `lease_until`. See [`claim_many`].
pub fn claim(
    conn: &mut Conn<'_>,
    worker: &str,
    kinds: &[JobKind],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<JobRow>, StoreError> {
    Ok(claim_many(conn, worker, kinds, now, lease_until, 1)?
        .into_iter()
        .next())
}

/// Claim up to `limit` due jobs of `kinds` for `worker`, the longest due
/// first, leasing them until `lease_until`: one statement however many. On
/// PostgreSQL concurrent claimers skip each other's rows (`FOR UPDATE SKIP
/// LOCKED`, in the `lethe_claim_jobs` function); SQLite has one writer, so
/// the claiming UPDATE is atomic by itself. A job whose lease ran out (its
/// worker died) is due again.
pub fn claim_many(
    conn: &mut Conn<'_>,
    worker: &str,
    kinds: &[JobKind],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<JobRow>, StoreError> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    if kinds.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let (now, lease_until) = (now.naive_utc(), lease_until.naive_utc());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows: Vec<JobRow> = match conn {
        Conn::Pg(c) => ClaimDue {
            worker,
            kinds: kinds.iter().map(|k| k.as_str()).collect(),
            now,
            lease_until,
            limit,
        }
        .load(&mut **c)?,
        Conn::Sqlite(c) => {
            // Kind names are our own constants, not input.
            let kinds = kinds
                .iter()
                .map(|k| format!("'{}'", k.as_str()))
                .collect::<Vec<_>>()
                .join(",");
            diesel::sql_query(format!(
                "UPDATE jobs SET lease_until = ?, attempts = attempts + 1, locked_by = ? \
                 WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NULL AND run_at <= ? \
                 AND (lease_until IS NULL OR lease_until < ?) AND kind IN ({kinds}) \
                 ORDER BY run_at LIMIT ?) RETURNING *"
            ))
            .bind::<Timestamp, _>(lease_until)
            .bind::<Text, _>(worker)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load(&mut **c)?
        }
    };
    // RETURNING gives no order: the longest due first.
    rows.sort_by(|a, b| a.run_at.cmp(&b.run_at).then_with(|| a.id.cmp(&b.id)));
    Ok(rows)
}

/// PostgreSQL's claim: the `lethe_claim_jobs` function (its migration says
/// why it is a function), called with a statement of constant text, so
/// diesel prepares it once per connection.
struct ClaimDue<'a> {
    worker: &'a str,
    kinds: Vec<&'a str>,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
}

impl diesel::query_builder::Query for ClaimDue<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::query_builder::QueryId for ClaimDue<'_> {
    type QueryId = ClaimDue<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<diesel::pg::PgConnection> for ClaimDue<'_> {}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for ClaimDue<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Text, Timestamp};
        out.push_sql("SELECT * FROM lethe_claim_jobs(");
        out.push_bind_param::<Text, _>(self.worker)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.kinds)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.lease_until)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        out.push_sql(")");
        Ok(())
    }
}

/// The job is done.
pub fn complete(conn: &mut Conn<'_>, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::finished_at.eq(Some(now.naive_utc())),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::locked_by.eq(None::<String>),
        ))
        .execute(c))?;
    Ok(())
}

/// A job that goes on in steps (a request's follow-up) moves to its next
/// step: new payload and due time, its lease handed back, its tries counted
/// afresh for the new step.
pub fn move_on(conn: &mut Conn<'_>, id: &str, next: &PlannedJob) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::kind.eq(next.kind.as_str()),
            jobs::payload.eq(next.payload.to_string()),
            jobs::run_at.eq(next.run_at.naive_utc()),
            jobs::attempts.eq(0),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::locked_by.eq(None::<String>),
            jobs::last_error.eq(None::<String>),
        ))
        .execute(c))?;
    Ok(())
}

/// Try again at `run_at`, keeping the error for support.
pub fn retry_at(
    conn: &mut Conn<'_>,
    id: &str,
    run_at: DateTime<Utc>,
    error: &str,
) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::run_at.eq(run_at.naive_utc()),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::locked_by.eq(None::<String>),
            jobs::last_error.eq(Some(truncate(error))),
        ))
        .execute(c))?;
    Ok(())
}

/// Give up on the job: it stays in the table, dead, for support to see.
pub fn bury(
    conn: &mut Conn<'_>,
    id: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(jobs::table.find(id))
        .set((
            jobs::dead.eq(true),
            jobs::finished_at.eq(Some(now.naive_utc())),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::locked_by.eq(None::<String>),
            jobs::last_error.eq(Some(truncate(error))),
        ))
        .execute(c))?;
    Ok(())
}

/// Hand back the leases a stopping worker still holds, so another worker can
/// take them at once (their attempt is not counted).
pub fn release(conn: &mut Conn<'_>, worker: &str) -> Result<usize, StoreError> {
    Ok(with_conn!(conn, |c| diesel::update(
        jobs::table
            .filter(jobs::locked_by.eq(worker))
            .filter(jobs::finished_at.is_null())
    )
    .set((
        jobs::lease_until.eq(None::<NaiveDateTime>),
        jobs::locked_by.eq(None::<String>),
        jobs::attempts.eq(jobs::attempts - 1),
    ))
    .execute(c))?)
}

fn truncate(s: &str) -> String {
    s.chars().take(1000).collect()
}
