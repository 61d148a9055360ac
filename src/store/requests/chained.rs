//! A change to a request row with what it causes — its audit event(s) and
//! follow-up jobs, and optionally the end of the job that made it and a
//! target's answer on its call row — written together. On PostgreSQL that is one statement (data-modifying CTEs): a
//! compare-and-set `UPDATE` of the row on its state and chain head, and the
//! inserts and the job's end only if it matched. On SQLite it is the same
//! writes one by one, inside the writer's transaction.
//!
//! Events and jobs go in as arrays, so the statement's text depends only on
//! which parts it has (jobs to add, a job to finish, a call, a decision):
//! diesel prepares each of the few texts once per connection.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamp};
use diesel::QueryResult;

use super::unnest::{EventColumns, JobColumns};
use super::RequestRow;
use crate::domain::outbox::JobKind;
use crate::domain::target::CallStatus;
use crate::domain::RequestState;
use crate::store::audit::AuditRow;
use crate::store::jobs::{self, JobRow};
use crate::store::schema::erasure_requests as er;
use crate::store::tenants::utc;
use crate::store::{approvals, audit, targets, Conn, StoreError};

/// The row's new fields, the events and jobs to add, and the job to finish.
pub(super) struct ChainedWrite<'a> {
    /// The row as read in this transaction: the compare-and-set's expected
    /// state and chain head.
    pub before: &'a RequestRow,
    /// The row as the write leaves it.
    pub after: &'a RequestRow,
    pub events: &'a [AuditRow],
    pub jobs: &'a [JobRow],
    /// A claimed job to mark finished with it.
    pub finish: Option<(&'a str, NaiveDateTime)>,
    /// Remove the personal fields (`after` has them empty and says when).
    pub scrub: bool,
    /// A target's answer to record on its call (see [`CallUpdate`]).
    pub call: Option<CallUpdate<'a>>,
    /// An approval decision: the link it uses up, and the target calls it
    /// starts (see [`LinkDecision`]).
    pub decision: Option<LinkDecision<'a>>,
}

/// What an approval decision writes besides the request's change: the link
/// used up (the write matches only while the link is unused and not voided,
/// and holds the link's row until it commits), and, when the decision starts
/// the erasure, a call row and a `CallTarget` job for each enabled target of
/// the tenant as `targets::fan_out` makes them.
pub(in crate::store) struct LinkDecision<'a> {
    pub link: &'a str,
    pub fan_out: bool,
}

/// A target's answer, recorded on the request's call to it as
/// `targets::record` does (a confirmed call stays confirmed).
pub(in crate::store) struct CallUpdate<'a> {
    pub target: &'a str,
    pub status: CallStatus,
    pub code: Option<u16>,
    pub error: Option<&'a str>,
    pub at: DateTime<Utc>,
}

/// A chained write planned on a request as a job read it, owned, so it can
/// wait for a group of others (`crate::store::write_group`) or be written
/// alone ([`SeenWrite::run`]): no approval decision, which goes alone.
pub struct SeenWrite {
    pub(super) before: RequestRow,
    pub(super) after: RequestRow,
    pub(super) events: Vec<AuditRow>,
    pub(super) jobs: Vec<JobRow>,
    pub(super) finish: Option<(String, NaiveDateTime)>,
    pub(super) scrub: bool,
    pub(super) call: Option<OwnedCall>,
    /// The transition it makes, if any (for the metrics once written).
    pub(super) moves: Option<(RequestState, RequestState)>,
}

/// [`CallUpdate`], owned.
pub(super) struct OwnedCall {
    pub target: String,
    pub status: CallStatus,
    pub code: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl SeenWrite {
    pub(super) fn as_write(&self) -> ChainedWrite<'_> {
        ChainedWrite {
            before: &self.before,
            after: &self.after,
            events: &self.events,
            jobs: &self.jobs,
            finish: self.finish.as_ref().map(|(id, at)| (id.as_str(), *at)),
            scrub: self.scrub,
            call: self.call.as_ref().map(|c| CallUpdate {
                target: &c.target,
                status: c.status,
                code: c.code,
                error: c.error.as_deref(),
                at: c.at,
            }),
            decision: None,
        }
    }

    /// Write it alone: `false` (and nothing written) if the request moved
    /// since it was read.
    pub fn run(&self, conn: &mut Conn<'_>) -> Result<bool, StoreError> {
        let written = self.as_write().run(conn)?;
        if written {
            self.count();
        }
        Ok(written)
    }

    /// Count its transition, once written.
    pub fn count(&self) {
        if let Some((from, to)) = self.moves {
            crate::metrics::transition(from.as_str(), to.as_str());
        }
    }

    /// The request's id.
    pub fn request_id(&self) -> &str {
        &self.before.id
    }

    /// The request as the write leaves it.
    pub fn after(&self) -> super::Seen {
        super::Seen {
            row: self.after.clone(),
        }
    }
}

impl ChainedWrite<'_> {
    /// Write it: `false` (and nothing written) if the row's state or chain
    /// head was not as `before` says.
    pub(super) fn run(&self, conn: &mut Conn<'_>) -> Result<bool, StoreError> {
        match conn {
            Conn::Pg(c) => {
                // A few statement texts, each prepared once per connection.
                let matched: i64 = match (&self.call, &self.decision) {
                    (None, None) => Statement::<false, false>::new(self).get_result(&mut **c)?,
                    (Some(_), None) => Statement::<true, false>::new(self).get_result(&mut **c)?,
                    (None, Some(_)) => Statement::<false, true>::new(self).get_result(&mut **c)?,
                    (Some(_), Some(_)) => {
                        return Err(StoreError::Internal(
                            "a target's answer is no approval decision".into(),
                        ))
                    }
                };
                Ok(matched == 1)
            }
            Conn::Sqlite(c) => {
                let (b, a) = (self.before, self.after);
                // The one writer holds the whole database: a link unused now
                // is unused until this commits.
                if let Some(d) = &self.decision {
                    if !approvals::unused(&mut Conn::Sqlite(c), d.link)? {
                        return Ok(false);
                    }
                }
                let row = er::table
                    .filter(er::id.eq(&b.id))
                    .filter(er::state.eq(&b.state))
                    .filter(er::audit_seq.eq(b.audit_seq))
                    .filter(er::opendsr_linked.eq(b.opendsr_linked));
                // SQLite rewrites the entries of every index on a column an
                // UPDATE sets, changed or not (PostgreSQL compares the
                // values): a note sets the chain head alone.
                let updated = if self.moves_only_the_head() {
                    diesel::update(row)
                        .set((
                            er::audit_seq.eq(a.audit_seq),
                            er::audit_head.eq(&a.audit_head),
                        ))
                        .execute(&mut **c)?
                } else {
                    diesel::update(row)
                        .set((
                            er::state.eq(&a.state),
                            er::updated_at.eq(a.updated_at),
                            er::closed_at.eq(a.closed_at),
                            er::audit_seq.eq(a.audit_seq),
                            er::audit_head.eq(&a.audit_head),
                            er::decision_code.eq(&a.decision_code),
                            er::decision_explanation.eq(&a.decision_explanation),
                            er::approved_at.eq(a.approved_at),
                            er::erased_at.eq(a.erased_at),
                        ))
                        .execute(&mut **c)?
                };
                if updated == 0 {
                    return Ok(false);
                }
                if self.scrub {
                    diesel::update(er::table.filter(er::id.eq(&b.id)))
                        .set((
                            er::subject_id.eq(None::<String>),
                            er::subject_email.eq(None::<String>),
                            er::reason.eq(None::<String>),
                            er::extension_reason.eq(None::<String>),
                            er::cancel_reason.eq(None::<String>),
                            er::scrubbed_at.eq(a.scrubbed_at),
                        ))
                        .execute(&mut **c)?;
                }
                let mut conn = Conn::Sqlite(c);
                if let Some(call) = &self.call {
                    let id = b
                        .id
                        .parse()
                        .map_err(|_| StoreError::Internal(format!("request {}: bad id", b.id)))?;
                    targets::record(
                        &mut conn,
                        id,
                        call.target,
                        call.status,
                        call.code,
                        call.error,
                        call.at,
                    )?;
                }
                for ev in self.events {
                    audit::insert(&mut conn, std::array::from_ref(ev))?;
                }
                jobs::enqueue(&mut conn, self.jobs)?;
                if let Some(d) = &self.decision {
                    let at = utc(a.updated_at);
                    approvals::mark_used(&mut conn, d.link, at)?;
                    if d.fan_out {
                        let (tenant, id) = b.ids()?;
                        let calls = targets::fan_out(&mut conn, tenant, id, at)?;
                        jobs::enqueue(&mut conn, &calls)?;
                    }
                }
                if let Some((job, at)) = self.finish {
                    jobs::complete(
                        &mut conn,
                        job,
                        chrono::DateTime::from_naive_utc_and_offset(at, chrono::Utc),
                    )?;
                }
                Ok(true)
            }
        }
    }
}

impl ChainedWrite<'_> {
    /// Does the write leave every column but the chain head as it was (a
    /// note)?
    fn moves_only_the_head(&self) -> bool {
        let (b, a) = (self.before, self.after);
        !self.scrub
            && b.state == a.state
            && b.updated_at == a.updated_at
            && b.closed_at == a.closed_at
            && b.decision_code == a.decision_code
            && b.decision_explanation == a.decision_explanation
            && b.approved_at == a.approved_at
            && b.erased_at == a.erased_at
    }
}

/// The row's update; the rest only for the row it returned.
const SQL_UPDATE: &str = "WITH req AS (UPDATE erasure_requests SET state = ";
/// A decision's link, locked while unused and not voided; the row's update
/// only if it was.
const SQL_LINK: &str = "WITH link AS (SELECT id FROM approval_links WHERE id = ";
const SQL_LINK_END: &str = " AND used_at IS NULL AND voided_at IS NULL FOR UPDATE), \
req AS (UPDATE erasure_requests SET state = ";
const SQL_LINK_WHERE: &str = " AND EXISTS (SELECT 1 FROM link)";
/// The link used up, and the target calls with their jobs, as
/// `targets::fan_out` makes them (a job's payload as `JobRow::new` writes
/// it), for the row the update returned.
const SQL_USED: &str = ", used AS (UPDATE approval_links SET used_at = ";
const SQL_USED_WHERE: &str = " FROM req WHERE approval_links.id = ";
const SQL_FAN_OUT: &str = "), fanned AS (";
const SQL_FAN_OUT_REQUEST: &str = "req.id, t.id, t.name, 'pending', 0, ";
const SQL_FAN_OUT_FROM: &str = " FROM erasure_targets t JOIN req ON ";
const SQL_FAN_OUT_WHERE: &str = " WHERE t.enabled AND t.tenant_id = ";
const SQL_FAN_OUT_JOBS: &str = "tenant_id, request_id, target_id), \
call_jobs AS (INSERT INTO jobs (id, tenant_id, request_id, kind, payload, run_at, attempts, \
max_attempts, created_at, dead) SELECT gen_random_uuid()::text, tenant_id, request_id, ";
const SQL_FAN_OUT_PAYLOAD: &str = ", '{\"target_id\":' || to_json(target_id)::text || '}', ";
const SQL_FAN_OUT_END: &str = ", FALSE FROM fanned";
const SQL_WHERE: &str = " WHERE id = ";
const SQL_EVENTS: &str = " RETURNING id), ";
const SQL_FINISH: &str = ", finished AS (UPDATE jobs SET finished_at = ";
const SQL_FINISH_WHERE: &str = ", lease_until = NULL, locked_by = NULL \
FROM req WHERE jobs.id = ";
const SQL_END: &str = " SELECT count(*) FROM req";
/// The answer on the call row, as `targets::record` writes it.
const SQL_CALL: &str = ", called AS (UPDATE target_calls SET status = ";
const SQL_CALL_WHERE: &str = " FROM req WHERE target_calls.request_id = req.id \
AND target_calls.target_id = ";
const SQL_CALL_END: &str = " AND target_calls.status <> 'confirmed'";

/// The statement, with the events' and jobs' columns as arrays; with `CALL`,
/// the call row's update too; with `DECIDE`, the link and the target calls
/// ([`LinkDecision`]).
struct Statement<'a, const CALL: bool, const DECIDE: bool> {
    w: &'a ChainedWrite<'a>,
    /// When the write scrubs: now.
    scrubbed_at: Option<NaiveDateTime>,
    events: EventColumns<'a>,
    jobs: JobColumns<'a>,
    call_code: Option<i32>,
    call_error: Option<String>,
    call_confirmed_at: Option<NaiveDateTime>,
    call_at: Option<NaiveDateTime>,
    /// A `CallTarget` job's attempts.
    call_job_attempts: i32,
}

impl<'a, const CALL: bool, const DECIDE: bool> Statement<'a, CALL, DECIDE> {
    fn new(w: &'a ChainedWrite<'a>) -> Self {
        let call = w.call.as_ref();
        Self {
            call_code: call.and_then(|c| c.code).map(i32::from),
            call_error: call.and_then(|c| targets::kept_text(c.error)),
            call_confirmed_at: call
                .filter(|c| c.status == CallStatus::Confirmed)
                .map(|c| c.at.naive_utc()),
            call_at: call.map(|c| c.at.naive_utc()),
            w,
            scrubbed_at: w.after.scrubbed_at.filter(|_| w.scrub),
            events: EventColumns::new(w.events.iter()),
            jobs: JobColumns::new(w.jobs),
            call_job_attempts: JobKind::CallTarget.max_attempts(),
        }
    }
}

impl<const CALL: bool, const DECIDE: bool> Query for Statement<'_, CALL, DECIDE> {
    type SqlType = BigInt;
}

/// No id of its type: its text also varies with whether there are jobs to
/// add and one to finish, so diesel keys its prepared statements by the
/// text.
impl<const CALL: bool, const DECIDE: bool> QueryId for Statement<'_, CALL, DECIDE> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<const CALL: bool, const DECIDE: bool> RunQueryDsl<PgConnection>
    for Statement<'_, CALL, DECIDE>
{
}

impl<const CALL: bool, const DECIDE: bool> QueryFragment<Pg> for Statement<'_, CALL, DECIDE> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (b, a) = (self.w.before, self.w.after);
        let decision = self.w.decision.as_ref().filter(|_| DECIDE);
        match decision {
            Some(d) => {
                out.push_sql(SQL_LINK);
                out.push_bind_param::<Text, _>(d.link)?;
                out.push_sql(SQL_LINK_END);
            }
            None => out.push_sql(SQL_UPDATE),
        }
        out.push_bind_param::<Text, _>(&a.state)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
        out.push_sql(", closed_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&a.closed_at)?;
        out.push_sql(", audit_seq = ");
        out.push_bind_param::<BigInt, _>(&a.audit_seq)?;
        out.push_sql(", audit_head = ");
        out.push_bind_param::<Text, _>(&a.audit_head)?;
        out.push_sql(", decision_code = ");
        out.push_bind_param::<Nullable<Text>, _>(&a.decision_code)?;
        out.push_sql(", decision_explanation = ");
        out.push_bind_param::<Nullable<Text>, _>(&a.decision_explanation)?;
        out.push_sql(", approved_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&a.approved_at)?;
        out.push_sql(", erased_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&a.erased_at)?;
        // A scrub empties the personal fields; otherwise they stay as they
        // are (never written back from a row read earlier).
        for column in [
            "subject_id",
            "subject_email",
            "reason",
            "extension_reason",
            "cancel_reason",
        ] {
            out.push_sql(", ");
            out.push_sql(column);
            out.push_sql(" = CASE WHEN ");
            out.push_bind_param::<Bool, _>(&self.w.scrub)?;
            out.push_sql(" THEN NULL ELSE ");
            out.push_sql(column);
            out.push_sql(" END");
        }
        out.push_sql(", scrubbed_at = COALESCE(");
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.scrubbed_at)?;
        out.push_sql(", scrubbed_at)");
        out.push_sql(SQL_WHERE);
        out.push_bind_param::<Text, _>(&b.id)?;
        out.push_sql(" AND state = ");
        out.push_bind_param::<Text, _>(&b.state)?;
        out.push_sql(" AND audit_seq = ");
        out.push_bind_param::<BigInt, _>(&b.audit_seq)?;
        out.push_sql(" AND opendsr_linked = ");
        out.push_bind_param::<Bool, _>(&b.opendsr_linked)?;
        if decision.is_some() {
            out.push_sql(SQL_LINK_WHERE);
        }

        out.push_sql(SQL_EVENTS);
        self.events.walk(&mut out)?;
        // A part with nothing to write is left out: PostgreSQL opens the
        // table and every index a part writes, with its locks, even for no
        // rows.
        if !self.jobs.is_empty() {
            out.push_sql(", ");
            self.jobs.walk(&mut out)?;
        }
        if let Some((id, at)) = &self.w.finish {
            out.push_sql(SQL_FINISH);
            out.push_bind_param::<Timestamp, _>(at)?;
            out.push_sql(SQL_FINISH_WHERE);
            out.push_bind_param::<Text, _>(*id)?;
            out.push_sql(")");
        }
        if let (true, Some(call)) = (CALL, &self.w.call) {
            out.push_sql(SQL_CALL);
            out.push_bind_param::<Text, _>(call.status.as_str())?;
            out.push_sql(", attempts = attempts + 1, last_status_code = ");
            out.push_bind_param::<Nullable<Integer>, _>(&self.call_code)?;
            out.push_sql(", last_error = ");
            out.push_bind_param::<Nullable<Text>, _>(&self.call_error)?;
            out.push_sql(", confirmed_at = ");
            out.push_bind_param::<Nullable<Timestamp>, _>(&self.call_confirmed_at)?;
            out.push_sql(", updated_at = ");
            out.push_bind_param::<Nullable<Timestamp>, _>(&self.call_at)?;
            out.push_sql(SQL_CALL_WHERE);
            out.push_bind_param::<Text, _>(call.target)?;
            out.push_sql(SQL_CALL_END);
            out.push_sql(")");
        }
        if let Some(d) = decision {
            out.push_sql(SQL_USED);
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(SQL_USED_WHERE);
            out.push_bind_param::<Text, _>(d.link)?;
            out.push_sql(SQL_FAN_OUT);
            out.push_sql(targets::FAN_OUT_INSERT);
            out.push_sql(SQL_FAN_OUT_REQUEST);
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(SQL_FAN_OUT_FROM);
            out.push_bind_param::<Bool, _>(&d.fan_out)?;
            out.push_sql(SQL_FAN_OUT_WHERE);
            out.push_bind_param::<Text, _>(&b.tenant_id)?;
            out.push_sql(targets::FAN_OUT_AGAIN);
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(targets::FAN_OUT_RETURNING);
            out.push_sql(SQL_FAN_OUT_JOBS);
            out.push_bind_param::<Text, _>(JobKind::CallTarget.as_str())?;
            out.push_sql(SQL_FAN_OUT_PAYLOAD);
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(", 0, ");
            out.push_bind_param::<Integer, _>(&self.call_job_attempts)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&a.updated_at)?;
            out.push_sql(SQL_FAN_OUT_END);
            out.push_sql(")");
        }
        out.push_sql(SQL_END);
        Ok(())
    }
}
