//! PostgreSQL: the submissions that arrived together written as one
//! statement (group commit). Each comes with the caller's key as the
//! in-process cache believes it to be ([`KeyGuard`]); a request row is
//! inserted only if its key is still live, belongs to its tenant and the
//! tenant's settings are the cached ones, and only if it hits no unique
//! index (`ON CONFLICT DO NOTHING`: an idempotent replay, the subject's open
//! request, another of the group for the same subject). Then the audit
//! events and jobs of the rows inserted, from arrays. It answers the ids it
//! inserted; a submission not among them wrote nothing at all and goes the
//! single way ([`super::submit_prepared`]), which tells a replay from a
//! conflict from a changed key.
//!
//! The rows go in ordered by tenant and subject: two groups written at once
//! that both hold a subject's request wait for each other in the same order,
//! not crosswise (which would be a deadlock, one group aborted after a
//! second and its submissions written alone).
//!
//! One statement is atomic, so there is no transaction around it, and the
//! group commits once. Its text never changes (every column is an array),
//! so diesel prepares it once per connection.

use std::collections::HashSet;

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::unnest::{EventColumns, JobColumns};
use super::{KeyGuard, Prepared};
use crate::store::jobs::JobRow;

const SQL_ROWS: &str = "WITH r AS (SELECT * FROM unnest(";
const SQL_REQUEST: &str = ") AS r(id, tenant_id, subject_hash, subject_id, subject_email, \
initiator, reason, callback_url, state, batch_id, idempotency_key, fingerprint, received_at, \
due_at, updated_at, audit_seq, audit_head, key_hash, key_id, policy, notify_subject)), \
req AS (INSERT INTO erasure_requests (id, tenant_id, subject_hash, subject_id, subject_email, \
initiator, reason, callback_url, state, batch_id, idempotency_key, fingerprint, received_at, \
due_at, updated_at, audit_seq, audit_head) \
SELECT r.id, r.tenant_id, r.subject_hash, r.subject_id, r.subject_email, r.initiator, r.reason, \
r.callback_url, r.state, r.batch_id, r.idempotency_key, r.fingerprint, r.received_at, r.due_at, \
r.updated_at, r.audit_seq, r.audit_head FROM r \
JOIN api_keys k ON k.key_hash = r.key_hash AND k.id = r.key_id AND k.tenant_id = r.tenant_id \
AND k.revoked_at IS NULL \
JOIN tenants t ON t.id = k.tenant_id AND t.approval_policy = r.policy \
AND t.notify_subject = r.notify_subject \
ORDER BY r.tenant_id, r.subject_hash \
ON CONFLICT DO NOTHING RETURNING id), ";
const SQL_END: &str = " SELECT id FROM req";

/// A submission waiting to be written with others.
pub struct Guarded {
    pub prepared: Prepared,
    pub guard: KeyGuard,
}

/// Write `group` as one statement: which of them it wrote, in order. Every
/// submission must be one that is not written alone ([`Prepared::goes_alone`]).
pub fn insert(conn: &mut PgConnection, group: &[Guarded]) -> QueryResult<Vec<bool>> {
    let jobs: Vec<JobRow> = group.iter().flat_map(|g| g.prepared.job_rows()).collect();
    let ids: HashSet<String> = InsertGroup::new(group, &jobs)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(group
        .iter()
        .map(|g| ids.contains(&g.prepared.row.id))
        .collect())
}

/// The statement's bind values, a column each.
struct InsertGroup<'a> {
    id: Vec<&'a str>,
    tenant: Vec<&'a str>,
    subject_hash: Vec<&'a str>,
    subject_id: Vec<Option<&'a str>>,
    subject_email: Vec<Option<&'a str>>,
    initiator: Vec<&'a str>,
    reason: Vec<Option<&'a str>>,
    callback_url: Vec<Option<&'a str>>,
    state: Vec<&'a str>,
    batch: Vec<Option<&'a str>>,
    idempotency_key: Vec<Option<&'a str>>,
    fingerprint: Vec<&'a str>,
    received_at: Vec<chrono::NaiveDateTime>,
    due_at: Vec<chrono::NaiveDateTime>,
    updated_at: Vec<chrono::NaiveDateTime>,
    audit_seq: Vec<i64>,
    audit_head: Vec<&'a str>,
    key_hash: Vec<&'a str>,
    key_id: Vec<&'a str>,
    policy: Vec<&'a str>,
    notify_subject: Vec<bool>,
    events: EventColumns<'a>,
    jobs: JobColumns<'a>,
}

impl<'a> InsertGroup<'a> {
    fn new(group: &'a [Guarded], jobs: &'a [JobRow]) -> Self {
        let rows = || group.iter().map(|g| &g.prepared.row);
        let guards = || group.iter().map(|g| &g.guard);
        Self {
            id: rows().map(|r| r.id.as_str()).collect(),
            tenant: rows().map(|r| r.tenant_id.as_str()).collect(),
            subject_hash: rows().map(|r| r.subject_hash.as_str()).collect(),
            subject_id: rows().map(|r| r.subject_id.as_deref()).collect(),
            subject_email: rows().map(|r| r.subject_email.as_deref()).collect(),
            initiator: rows().map(|r| r.initiator.as_str()).collect(),
            reason: rows().map(|r| r.reason.as_deref()).collect(),
            callback_url: rows().map(|r| r.callback_url.as_deref()).collect(),
            state: rows().map(|r| r.state.as_str()).collect(),
            batch: rows().map(|r| r.batch_id.as_deref()).collect(),
            idempotency_key: rows().map(|r| r.idempotency_key.as_deref()).collect(),
            fingerprint: rows().map(|r| r.fingerprint.as_str()).collect(),
            received_at: rows().map(|r| r.received_at).collect(),
            due_at: rows().map(|r| r.due_at).collect(),
            updated_at: rows().map(|r| r.updated_at).collect(),
            audit_seq: rows().map(|r| r.audit_seq).collect(),
            audit_head: rows().map(|r| r.audit_head.as_str()).collect(),
            key_hash: guards().map(|g| g.digest.as_str()).collect(),
            key_id: guards().map(|g| g.key_id.as_str()).collect(),
            policy: guards().map(|g| g.policy.as_str()).collect(),
            notify_subject: guards().map(|g| g.notify_subject).collect(),
            events: EventColumns::new(group.iter().flat_map(|g| g.prepared.events.iter())),
            jobs: JobColumns::new(jobs),
        }
    }
}

impl Query for InsertGroup<'_> {
    type SqlType = Text;
}

impl QueryId for InsertGroup<'_> {
    type QueryId = InsertGroup<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for InsertGroup<'_> {}

impl QueryFragment<Pg> for InsertGroup<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(SQL_ROWS);
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.tenant)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.subject_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.subject_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.subject_email)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.initiator)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.reason)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.callback_url)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.batch)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.idempotency_key)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.fingerprint)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.received_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.due_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.updated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.audit_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.audit_head)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.key_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.key_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.policy)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.notify_subject)?;
        out.push_sql(SQL_REQUEST);
        self.events.walk(&mut out)?;
        out.push_sql(", ");
        self.jobs.walk(&mut out)?;
        out.push_sql(SQL_END);
        Ok(())
    }
}
