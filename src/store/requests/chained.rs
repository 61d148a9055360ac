//! A change to a request row with what it causes — its audit event(s) and
//! follow-up jobs, and optionally the end of the job that made it — written
//! together. On PostgreSQL that is one statement (data-modifying CTEs): a
//! compare-and-set `UPDATE` of the row on its state and chain head, and the
//! inserts and the job's end only if it matched. On SQLite it is the same
//! writes one by one, inside the writer's transaction.
//!
//! The statement text never changes (events and jobs go in as arrays), so
//! diesel prepares it once per connection and caches it.

use chrono::NaiveDateTime;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
use diesel::QueryResult;

use super::unnest::{EventColumns, JobColumns};
use super::RequestRow;
use crate::store::audit::AuditRow;
use crate::store::jobs::{self, JobRow};
use crate::store::schema::erasure_requests as er;
use crate::store::{audit, Conn, StoreError};

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
}

impl ChainedWrite<'_> {
    /// Write it: `false` (and nothing written) if the row's state or chain
    /// head was not as `before` says.
    pub(super) fn run(&self, conn: &mut Conn<'_>) -> Result<bool, StoreError> {
        match conn {
            Conn::Pg(c) => {
                let matched: i64 = Statement::new(self).get_result(&mut **c)?;
                Ok(matched == 1)
            }
            Conn::Sqlite(c) => {
                let (b, a) = (self.before, self.after);
                let row = er::table
                    .filter(er::id.eq(&b.id))
                    .filter(er::state.eq(&b.state))
                    .filter(er::audit_seq.eq(b.audit_seq));
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
                for ev in self.events {
                    audit::insert(&mut conn, std::array::from_ref(ev))?;
                }
                jobs::enqueue(&mut conn, self.jobs)?;
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
const SQL_WHERE: &str = " WHERE id = ";
const SQL_EVENTS: &str = " RETURNING id), ";
const SQL_FINISH: &str = ", finished AS (UPDATE jobs SET finished_at = ";
const SQL_FINISH_WHERE: &str = ", lease_until = NULL, locked_by = NULL \
FROM req WHERE jobs.id = ";
const SQL_END: &str = ") SELECT count(*) FROM req";

/// The statement, with the events' and jobs' columns as arrays.
struct Statement<'a> {
    w: &'a ChainedWrite<'a>,
    finish_id: Option<&'a str>,
    finish_at: Option<NaiveDateTime>,
    /// When the write scrubs: now.
    scrubbed_at: Option<NaiveDateTime>,
    events: EventColumns<'a>,
    jobs: JobColumns<'a>,
}

impl<'a> Statement<'a> {
    fn new(w: &'a ChainedWrite<'a>) -> Self {
        Self {
            w,
            finish_id: w.finish.map(|(id, _)| id),
            finish_at: w.finish.map(|(_, at)| at),
            scrubbed_at: w.after.scrubbed_at.filter(|_| w.scrub),
            events: EventColumns::new(w.events.iter()),
            jobs: JobColumns::new(w.jobs),
        }
    }
}

impl Query for Statement<'_> {
    type SqlType = BigInt;
}

impl QueryId for Statement<'_> {
    type QueryId = Statement<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for Statement<'_> {}

impl QueryFragment<Pg> for Statement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (b, a) = (self.w.before, self.w.after);
        out.push_sql(SQL_UPDATE);
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

        out.push_sql(SQL_EVENTS);
        self.events.walk(&mut out)?;
        out.push_sql(", ");
        self.jobs.walk(&mut out)?;

        // No job to finish: `jobs.id = NULL` matches none.
        out.push_sql(SQL_FINISH);
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.finish_at)?;
        out.push_sql(SQL_FINISH_WHERE);
        out.push_bind_param::<Nullable<Text>, _>(&self.finish_id)?;
        out.push_sql(SQL_END);
        Ok(())
    }
}
