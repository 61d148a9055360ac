//! Audit events and jobs as column arrays, for the PostgreSQL statements that
//! insert them with `unnest` after a request row (the submission, the chained
//! write): one bind per column however many rows, so the statement text never
//! changes and diesel prepares it once per connection. Each inserts the rows
//! of the requests the statement's `req` CTE returned (`RETURNING id`), and
//! only those: one request for the submission and the chained write, any of
//! many for a group of submissions (`grouped`).

use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
use diesel::QueryResult;

use crate::store::audit::AuditRow;
use crate::store::jobs::JobRow;

const EVENTS: &str = "events AS (INSERT INTO audit_events (id, tenant_id, request_id, seq, \
from_state, to_state, event, actor_kind, actor_id, detail, at, prev_hash, hash) \
SELECT e.id, e.tenant_id, e.request_id, e.seq, e.from_state, e.to_state, e.event, \
e.actor_kind, e.actor_id, e.detail, e.at, e.prev_hash, e.hash FROM unnest(";
const EVENTS_END: &str = ") AS e(id, tenant_id, request_id, seq, from_state, to_state, event, \
actor_kind, actor_id, detail, at, prev_hash, hash) JOIN req ON req.id = e.request_id)";
const JOBS: &str = "queued AS (INSERT INTO jobs (id, tenant_id, request_id, kind, payload, \
run_at, attempts, max_attempts, created_at, dead) \
SELECT j.id, j.tenant_id, j.request_id, j.kind, j.payload, j.run_at, 0, j.max_attempts, \
j.created_at, FALSE FROM unnest(";
const JOBS_END: &str = ") AS j(id, tenant_id, request_id, kind, payload, run_at, max_attempts, \
created_at) JOIN req ON req.id = j.request_id)";

/// The `events` CTE's columns.
pub(super) struct EventColumns<'a> {
    id: Vec<&'a str>,
    tenant: Vec<&'a str>,
    request: Vec<&'a str>,
    seq: Vec<i64>,
    from: Vec<Option<&'a str>>,
    to: Vec<&'a str>,
    event: Vec<&'a str>,
    actor_kind: Vec<&'a str>,
    actor_id: Vec<&'a str>,
    detail: Vec<Option<&'a str>>,
    at: Vec<chrono::NaiveDateTime>,
    prev: Vec<&'a str>,
    hash: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    /// Of `events`, which may come from several requests' lists.
    pub(super) fn new<I>(events: I) -> Self
    where
        I: Iterator<Item = &'a AuditRow> + Clone,
    {
        Self {
            id: events.clone().map(|e| e.id.as_str()).collect(),
            tenant: events.clone().map(|e| e.tenant_id.as_str()).collect(),
            request: events.clone().map(|e| e.request_id.as_str()).collect(),
            seq: events.clone().map(|e| e.seq).collect(),
            from: events.clone().map(|e| e.from_state.as_deref()).collect(),
            to: events.clone().map(|e| e.to_state.as_str()).collect(),
            event: events.clone().map(|e| e.event.as_str()).collect(),
            actor_kind: events.clone().map(|e| e.actor_kind.as_str()).collect(),
            actor_id: events.clone().map(|e| e.actor_id.as_str()).collect(),
            detail: events.clone().map(|e| e.detail.as_deref()).collect(),
            at: events.clone().map(|e| e.at).collect(),
            prev: events.clone().map(|e| e.prev_hash.as_str()).collect(),
            hash: events.clone().map(|e| e.hash.as_str()).collect(),
        }
    }

    /// `events AS (INSERT ... FROM unnest(...) JOIN req ...)`.
    pub(super) fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(EVENTS);
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.tenant)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.from)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.to)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.event)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.actor_kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.actor_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.detail)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.prev)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.hash)?;
        out.push_sql(EVENTS_END);
        Ok(())
    }
}

/// The `queued` CTE's columns.
pub(super) struct JobColumns<'a> {
    id: Vec<&'a str>,
    tenant: Vec<Option<&'a str>>,
    request: Vec<Option<&'a str>>,
    kind: Vec<&'a str>,
    payload: Vec<&'a str>,
    run_at: Vec<chrono::NaiveDateTime>,
    max_attempts: Vec<i32>,
    created_at: Vec<chrono::NaiveDateTime>,
}

impl<'a> JobColumns<'a> {
    pub(super) fn new(jobs: &'a [JobRow]) -> Self {
        Self {
            id: jobs.iter().map(|j| j.id.as_str()).collect(),
            tenant: jobs.iter().map(|j| j.tenant_id.as_deref()).collect(),
            request: jobs.iter().map(|j| j.request_id.as_deref()).collect(),
            kind: jobs.iter().map(|j| j.kind.as_str()).collect(),
            payload: jobs.iter().map(|j| j.payload.as_str()).collect(),
            run_at: jobs.iter().map(|j| j.run_at).collect(),
            max_attempts: jobs.iter().map(|j| j.max_attempts).collect(),
            created_at: jobs.iter().map(|j| j.created_at).collect(),
        }
    }

    /// No jobs at all.
    pub(super) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// `queued AS (INSERT ... FROM unnest(...) JOIN req ...)`.
    pub(super) fn walk<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(JOBS);
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.tenant)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.payload)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.run_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&self.max_attempts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.created_at)?;
        out.push_sql(JOBS_END);
        Ok(())
    }
}
