//! PostgreSQL: a submission's writes — the request row, its audit events and
//! its jobs — as one statement (data-modifying CTEs). A statement is atomic
//! on its own, so the submission needs no transaction around it: one round
//! trip instead of `BEGIN`, three `INSERT`s and `COMMIT`. The foreign keys
//! between the rows are checked at the end of the statement, when all three
//! inserts have happened.
//!
//! The statement text never changes (the events and jobs go in as arrays), so
//! diesel prepares it once per connection and caches it.
//!
//! With a [`KeyGuard`] it also checks the caller's API key in the same
//! snapshot, so a submission whose key came from the in-process cache is
//! one round trip in all, and a key revoked meanwhile still writes nothing.

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::unnest::{EventColumns, JobColumns};
use super::{KeyGuard, RequestRow};
use crate::store::audit::AuditRow;
use crate::store::jobs::JobRow;

/// First the caller's key, when the caller brings one it has not looked up
/// in this statement's snapshot (`ok`: still live, same tenant settings);
/// then the request row (`ON CONFLICT DO NOTHING`: a hit on the idempotency
/// or one-open-request index inserts nothing at all), then the events and
/// jobs for the row it returned, if any. Answers how many requests it
/// inserted (0 or 1) and whether the key held.
const SQL_GUARD: &str = "WITH ok AS (SELECT NOT ";
const SQL_GUARD_KEY: &str =
    " OR EXISTS (SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
WHERE k.key_hash = ";
const SQL_GUARD_ID: &str = " AND k.id = ";
const SQL_GUARD_POLICY: &str = " AND k.revoked_at IS NULL AND t.approval_policy = ";
const SQL_GUARD_NOTIFY: &str = " AND t.notify_subject = ";
const SQL_REQUEST: &str = ") AS yes), req AS (INSERT INTO erasure_requests (id, tenant_id, \
subject_hash, subject_id, subject_email, initiator, reason, callback_url, state, batch_id, \
idempotency_key, fingerprint, received_at, due_at, updated_at, audit_seq, audit_head) SELECT ";
const SQL_EVENTS: &str = " FROM ok WHERE ok.yes ON CONFLICT DO NOTHING RETURNING id, tenant_id), ";
const SQL_END: &str = " SELECT (SELECT count(*) FROM req), (SELECT yes FROM ok)";

/// What the statement did.
pub(super) enum Outcome {
    Inserted,
    /// A unique index was hit: nothing was written.
    Conflict,
    /// The guard's key is no longer live as it was: nothing was written.
    KeyChanged,
}

/// The statement, with the events' and jobs' columns as arrays.
pub(super) struct InsertSubmission<'a> {
    check_key: bool,
    key_hash: &'a str,
    key_id: &'a str,
    policy: &'a str,
    notify_subject: bool,
    request: &'a RequestRow,
    events: EventColumns<'a>,
    jobs: JobColumns<'a>,
}

impl<'a> InsertSubmission<'a> {
    /// The events and jobs must belong to `request` (they are written with
    /// the request and tenant ids they carry).
    pub(super) fn new(
        guard: Option<&'a KeyGuard>,
        request: &'a RequestRow,
        events: &'a [AuditRow],
        jobs: &'a [JobRow],
    ) -> Self {
        Self {
            check_key: guard.is_some(),
            key_hash: guard.map_or("", |g| g.digest.as_str()),
            key_id: guard.map_or("", |g| g.key_id.as_str()),
            policy: guard.map_or("", |g| g.policy.as_str()),
            notify_subject: guard.is_some_and(|g| g.notify_subject),
            request,
            events: EventColumns::new(events.iter()),
            jobs: JobColumns::new(jobs),
        }
    }

    /// Run it.
    pub(super) fn run(self, conn: &mut PgConnection) -> QueryResult<Outcome> {
        let (inserted, key_held): (i64, bool) = self.get_result(conn)?;
        Ok(match (inserted, key_held) {
            (_, false) => Outcome::KeyChanged,
            (0, true) => Outcome::Conflict,
            _ => Outcome::Inserted,
        })
    }
}

impl Query for InsertSubmission<'_> {
    type SqlType = (BigInt, Bool);
}

impl QueryId for InsertSubmission<'_> {
    type QueryId = InsertSubmission<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for InsertSubmission<'_> {}

impl QueryFragment<Pg> for InsertSubmission<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let r = self.request;
        out.push_sql(SQL_GUARD);
        out.push_bind_param::<Bool, _>(&self.check_key)?;
        out.push_sql(SQL_GUARD_KEY);
        out.push_bind_param::<Text, _>(self.key_hash)?;
        out.push_sql(SQL_GUARD_ID);
        out.push_bind_param::<Text, _>(self.key_id)?;
        out.push_sql(SQL_GUARD_POLICY);
        out.push_bind_param::<Text, _>(self.policy)?;
        out.push_sql(SQL_GUARD_NOTIFY);
        out.push_bind_param::<Bool, _>(&self.notify_subject)?;
        out.push_sql(SQL_REQUEST);
        out.push_bind_param::<Text, _>(&r.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.subject_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.subject_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.subject_email)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.initiator)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.reason)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.callback_url)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.batch_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.idempotency_key)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.received_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.due_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&r.updated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.audit_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&r.audit_head)?;

        out.push_sql(SQL_EVENTS);
        self.events.walk(&mut out)?;
        out.push_sql(", ");
        self.jobs.walk(&mut out)?;
        out.push_sql(SQL_END);
        Ok(())
    }
}
