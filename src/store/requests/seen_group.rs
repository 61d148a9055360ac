//! PostgreSQL: the writes of many jobs, each planned on the request as its
//! job read it ([`SeenWrite`]: a note with the job's end, a target's answer
//! with what follows from it), as one statement. Each request row is updated
//! only if it is still as read (the same compare-and-set as the write alone:
//! state, chain head, OpenDSR mark); the events, jobs, job ends and call
//! answers of the rows it updated follow, from arrays, and only those. It
//! answers which of them it wrote; one it did not moved meanwhile and wrote
//! nothing at all.
//!
//! New approval links for single requests go with them: each voids its
//! request's live links and is inserted, whatever the rows' compare-and-sets
//! come to (as `approvals::insert` alone).
//!
//! No two writes in a group may be on the same request (the writer that
//! gathers them sees to that): one `UPDATE` changes a row once, and two new
//! links for one request in one statement would both stay live.
//!
//! One statement is atomic, so there is no transaction around it, and the
//! group commits once. Every column is an array, so its text depends only on
//! which kinds of write the group holds: a part the group has nothing for
//! (new jobs, job ends, call answers, links; the request rows when it holds
//! only links) is left out, since PostgreSQL opens every table and index a
//! part writes, with its locks, even for no rows. Diesel prepares each of
//! the few texts once per connection.

use std::collections::HashSet;

use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::chained::SeenWrite;
use super::unnest::{EventColumns, JobColumns};
use crate::domain::target::CallStatus;
use crate::store::approvals::LinkRow;
use crate::store::jobs::JobRow;
use crate::store::targets;

const SQL_ROWS: &str = "WITH r AS (SELECT * FROM unnest(";
const SQL_REQUEST: &str = ") AS r(id, was_state, was_seq, was_linked, state, updated_at, \
closed_at, audit_seq, audit_head, decision_code, decision_explanation, approved_at, erased_at, \
scrub, scrubbed_at)), \
req AS (UPDATE erasure_requests AS q SET state = r.state, updated_at = r.updated_at, \
closed_at = r.closed_at, audit_seq = r.audit_seq, audit_head = r.audit_head, \
decision_code = r.decision_code, decision_explanation = r.decision_explanation, \
approved_at = r.approved_at, erased_at = r.erased_at, \
subject_id = CASE WHEN r.scrub THEN NULL ELSE q.subject_id END, \
subject_email = CASE WHEN r.scrub THEN NULL ELSE q.subject_email END, \
reason = CASE WHEN r.scrub THEN NULL ELSE q.reason END, \
extension_reason = CASE WHEN r.scrub THEN NULL ELSE q.extension_reason END, \
cancel_reason = CASE WHEN r.scrub THEN NULL ELSE q.cancel_reason END, \
scrubbed_at = COALESCE(r.scrubbed_at, q.scrubbed_at) \
FROM r WHERE q.id = r.id AND q.state = r.was_state AND q.audit_seq = r.was_seq \
AND q.opendsr_linked = r.was_linked AND q.id = ANY(";
/// The rows by their ids again: PostgreSQL plans a statement prepared once
/// for any number of rows, and joined only with `r` (an `unnest` it cannot
/// size) it read the whole table to hash it; by its ids it looks each up in
/// the primary key.
const SQL_REQUEST_END: &str = ") RETURNING q.id), ";
/// The jobs ended, as `jobs::complete` does, for the rows updated.
const SQL_FINISH: &str = ", finished AS (UPDATE jobs SET finished_at = f.at, \
lease_until = NULL, locked_by = NULL FROM unnest(";
const SQL_FINISH_END: &str = ") AS f(id, request_id, at) JOIN req ON req.id = f.request_id \
WHERE jobs.id = f.id AND jobs.id = ANY(";
const SQL_FINISH_ANY: &str = "))";
/// The answers on the call rows, as `targets::record` writes them (a
/// confirmed call stays confirmed), for the rows updated.
const SQL_CALLS: &str = ", called AS (UPDATE target_calls SET status = c.status, \
attempts = target_calls.attempts + 1, last_status_code = c.code, last_error = c.error, \
confirmed_at = c.confirmed_at, updated_at = c.at FROM unnest(";
const SQL_CALLS_END: &str = ") AS c(request_id, target_id, status, code, error, confirmed_at, at) \
JOIN req ON req.id = c.request_id WHERE target_calls.request_id = c.request_id \
AND target_calls.target_id = c.target_id AND target_calls.status <> 'confirmed' \
AND target_calls.request_id = ANY(";
const SQL_CALLS_ANY: &str = "))";
/// The new links' requests' live links voided, as `approvals::insert` does
/// (the inserted rows are not in the statement's snapshot, so they stay).
const SQL_VOID: &str = "voided AS (UPDATE approval_links SET voided_at = v.at FROM unnest(";
const SQL_VOID_END: &str = ") AS v(request_id, at) WHERE approval_links.request_id = v.request_id \
AND approval_links.used_at IS NULL AND approval_links.voided_at IS NULL \
AND approval_links.request_id = ANY(";
const SQL_LINKS: &str = ")), linked AS (INSERT INTO approval_links (id, tenant_id, token_hash, \
request_id, created_at, expires_at) SELECT * FROM unnest(";
const SQL_LINKS_END: &str = "))";
const SQL_END: &str = " SELECT id FROM req";
/// A group of links alone: every part is run to its end, read or not.
const SQL_LINKS_ONLY: &str = "WITH ";
const SQL_LINKS_ONLY_END: &str = " SELECT NULL::text WHERE FALSE";

/// Write `group` and store `links` (each for one request) as one statement:
/// which of `group` it wrote, in order. No two may be on the same request.
pub fn write(
    conn: &mut PgConnection,
    group: &[SeenWrite],
    links: &[LinkRow],
) -> QueryResult<Vec<bool>> {
    let jobs: Vec<JobRow> = group.iter().flat_map(|w| w.jobs.iter().cloned()).collect();
    let written: HashSet<String> = WriteGroup::new(group, &jobs, links)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(group
        .iter()
        .map(|w| written.contains(&w.before.id))
        .collect())
}

/// The statement's bind values, a column each.
struct WriteGroup<'a> {
    id: Vec<&'a str>,
    was_state: Vec<&'a str>,
    was_seq: Vec<i64>,
    was_linked: Vec<bool>,
    state: Vec<&'a str>,
    updated_at: Vec<chrono::NaiveDateTime>,
    closed_at: Vec<Option<chrono::NaiveDateTime>>,
    audit_seq: Vec<i64>,
    audit_head: Vec<&'a str>,
    decision_code: Vec<Option<&'a str>>,
    decision_explanation: Vec<Option<&'a str>>,
    approved_at: Vec<Option<chrono::NaiveDateTime>>,
    erased_at: Vec<Option<chrono::NaiveDateTime>>,
    scrub: Vec<bool>,
    scrubbed_at: Vec<Option<chrono::NaiveDateTime>>,
    events: EventColumns<'a>,
    jobs: JobColumns<'a>,
    finish_id: Vec<&'a str>,
    finish_request: Vec<&'a str>,
    finish_at: Vec<chrono::NaiveDateTime>,
    call_request: Vec<&'a str>,
    call_target: Vec<&'a str>,
    call_status: Vec<&'a str>,
    call_code: Vec<Option<i32>>,
    call_error: Vec<Option<String>>,
    call_confirmed_at: Vec<Option<chrono::NaiveDateTime>>,
    call_at: Vec<chrono::NaiveDateTime>,
    link_id: Vec<&'a str>,
    link_tenant: Vec<&'a str>,
    link_token_hash: Vec<&'a str>,
    link_request: Vec<Option<&'a str>>,
    link_created_at: Vec<chrono::NaiveDateTime>,
    link_expires_at: Vec<chrono::NaiveDateTime>,
}

impl<'a> WriteGroup<'a> {
    fn new(group: &'a [SeenWrite], jobs: &'a [JobRow], links: &'a [LinkRow]) -> Self {
        let before = || group.iter().map(|w| &w.before);
        let after = || group.iter().map(|w| &w.after);
        let finishes = || {
            group
                .iter()
                .filter_map(|w| w.finish.as_ref().map(|f| (w.before.id.as_str(), f)))
        };
        let calls = || {
            group
                .iter()
                .filter_map(|w| w.call.as_ref().map(|c| (w.before.id.as_str(), c)))
        };
        Self {
            id: before().map(|r| r.id.as_str()).collect(),
            was_state: before().map(|r| r.state.as_str()).collect(),
            was_seq: before().map(|r| r.audit_seq).collect(),
            was_linked: before().map(|r| r.opendsr_linked).collect(),
            state: after().map(|r| r.state.as_str()).collect(),
            updated_at: after().map(|r| r.updated_at).collect(),
            closed_at: after().map(|r| r.closed_at).collect(),
            audit_seq: after().map(|r| r.audit_seq).collect(),
            audit_head: after().map(|r| r.audit_head.as_str()).collect(),
            decision_code: after().map(|r| r.decision_code.as_deref()).collect(),
            decision_explanation: after().map(|r| r.decision_explanation.as_deref()).collect(),
            approved_at: after().map(|r| r.approved_at).collect(),
            erased_at: after().map(|r| r.erased_at).collect(),
            scrub: group.iter().map(|w| w.scrub).collect(),
            scrubbed_at: group
                .iter()
                .map(|w| w.after.scrubbed_at.filter(|_| w.scrub))
                .collect(),
            events: EventColumns::new(group.iter().flat_map(|w| w.events.iter())),
            jobs: JobColumns::new(jobs),
            finish_id: finishes().map(|(_, (job, _))| job.as_str()).collect(),
            finish_request: finishes().map(|(r, _)| r).collect(),
            finish_at: finishes().map(|(_, (_, at))| *at).collect(),
            call_request: calls().map(|(r, _)| r).collect(),
            call_target: calls().map(|(_, c)| c.target.as_str()).collect(),
            call_status: calls().map(|(_, c)| c.status.as_str()).collect(),
            call_code: calls().map(|(_, c)| c.code.map(i32::from)).collect(),
            call_error: calls()
                .map(|(_, c)| targets::kept_text(c.error.as_deref()))
                .collect(),
            call_confirmed_at: calls()
                .map(|(_, c)| (c.status == CallStatus::Confirmed).then(|| c.at.naive_utc()))
                .collect(),
            call_at: calls().map(|(_, c)| c.at.naive_utc()).collect(),
            link_id: links.iter().map(|l| l.id.as_str()).collect(),
            link_tenant: links.iter().map(|l| l.tenant_id.as_str()).collect(),
            link_token_hash: links.iter().map(|l| l.token_hash.as_str()).collect(),
            link_request: links.iter().map(|l| l.request_id.as_deref()).collect(),
            link_created_at: links.iter().map(|l| l.created_at).collect(),
            link_expires_at: links.iter().map(|l| l.expires_at).collect(),
        }
    }
}

impl Query for WriteGroup<'_> {
    type SqlType = Text;
}

/// No id of its type: its text varies with the group's kinds, so diesel
/// keys its prepared statements by the text.
impl QueryId for WriteGroup<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl RunQueryDsl<PgConnection> for WriteGroup<'_> {}

impl QueryFragment<Pg> for WriteGroup<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if self.id.is_empty() {
            out.push_sql(SQL_LINKS_ONLY);
            self.walk_links(&mut out)?;
            out.push_sql(SQL_LINKS_ONLY_END);
            return Ok(());
        }
        self.walk_requests(&mut out)?;
        self.events.walk(&mut out)?;
        if !self.jobs.is_empty() {
            out.push_sql(", ");
            self.jobs.walk(&mut out)?;
        }
        if !self.finish_id.is_empty() {
            self.walk_finish(&mut out)?;
        }
        if !self.call_request.is_empty() {
            self.walk_calls(&mut out)?;
        }
        if !self.link_id.is_empty() {
            out.push_sql(", ");
            self.walk_links(&mut out)?;
        }
        out.push_sql(SQL_END);
        Ok(())
    }
}

impl<'a> WriteGroup<'a> {
    /// `WITH r AS (...), req AS (UPDATE erasure_requests ...),`
    fn walk_requests<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(SQL_ROWS);
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.was_state)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.was_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.was_linked)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.updated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.closed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.audit_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.audit_head)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.decision_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.decision_explanation)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.approved_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.erased_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bool>, _>(&self.scrub)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.scrubbed_at)?;
        out.push_sql(SQL_REQUEST);
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(SQL_REQUEST_END);
        Ok(())
    }

    /// `, finished AS (UPDATE jobs ...)`
    fn walk_finish<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(SQL_FINISH);
        out.push_bind_param::<Array<Text>, _>(&self.finish_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.finish_request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.finish_at)?;
        out.push_sql(SQL_FINISH_END);
        out.push_bind_param::<Array<Text>, _>(&self.finish_id)?;
        out.push_sql(SQL_FINISH_ANY);
        Ok(())
    }

    /// `, called AS (UPDATE target_calls ...)`
    fn walk_calls<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(SQL_CALLS);
        out.push_bind_param::<Array<Text>, _>(&self.call_request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.call_target)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.call_status)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Integer>>, _>(&self.call_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.call_error)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.call_confirmed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.call_at)?;
        out.push_sql(SQL_CALLS_END);
        out.push_bind_param::<Array<Text>, _>(&self.call_request)?;
        out.push_sql(SQL_CALLS_ANY);
        Ok(())
    }

    /// `voided AS (UPDATE approval_links ...), linked AS (INSERT ...)`
    fn walk_links<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(SQL_VOID);
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.link_request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.link_created_at)?;
        out.push_sql(SQL_VOID_END);
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.link_request)?;
        out.push_sql(SQL_LINKS);
        out.push_bind_param::<Array<Text>, _>(&self.link_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.link_tenant)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.link_token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.link_request)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.link_created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.link_expires_at)?;
        out.push_sql(SQL_LINKS_END);
        Ok(())
    }
}
