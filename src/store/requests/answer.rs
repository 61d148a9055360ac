//! A target's answer to the job that called it, written in one statement on
//! the request as the job read it before the call: the call row, the audit
//! note, the end of the job and what follows (the erasure complete when this
//! was the last confirmation, failed when the target refused), if the
//! request has not moved since. On PostgreSQL that saves the transaction
//! that holds the request (`BEGIN`, the row lock, four statements,
//! `COMMIT`); the caller falls back to it when the request moved.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::chained::{OwnedCall, SeenWrite};
use super::{er, noted, plan_change, plans_offline, Change, Known, Note, RequestRow, Seen};
use crate::domain::audit::Actor;
use crate::domain::outbox::WorkflowPolicy;
use crate::domain::state::transition;
use crate::domain::target::CallStatus;
use crate::domain::{Event, RequestId, RequestState};
use crate::store::targets::{CallRow, TargetRow};
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// A request as read, with its call to a target, the target, how many of
/// the request's other calls were not confirmed when read, and whether its
/// tenant emails subjects (by id alone, as workers act across tenants).
pub struct SeenCall {
    pub seen: Seen,
    pub call: CallRow,
    pub target: TargetRow,
    pub others_unconfirmed: i64,
    pub notify_subject: bool,
}

/// The request `id` and its call to `target`, in one read (see [`SeenCall`]).
pub fn get_seen_with_call(
    conn: &mut Conn<'_>,
    id: RequestId,
    target: &str,
) -> Result<SeenCall, StoreError> {
    use crate::store::schema::{erasure_targets as et, target_calls as tc, tenants as tn};
    use diesel::dsl::count_star;
    let id = id.to_string();
    // The other calls by bound values, not by correlation: the statement
    // stays one diesel prepares once per connection (a literal SQL fragment
    // would make it parsed and planned on every call).
    let other = diesel::alias!(crate::store::schema::target_calls as other_calls);
    let others_unconfirmed = other
        .filter(other.field(tc::request_id).eq(id.clone()))
        .filter(other.field(tc::target_id).ne(target.to_owned()))
        .filter(other.field(tc::status).ne(CallStatus::Confirmed.as_str()))
        .select(count_star())
        .single_value();
    let (row, call, t, others, notify_subject): (
        RequestRow,
        CallRow,
        TargetRow,
        Option<i64>,
        bool,
    ) = with_conn!(conn, |c| er::table
        .inner_join(tc::table.on(tc::request_id.eq(er::id)))
        .inner_join(
            et::table.on(et::id
                .eq(tc::target_id)
                .and(et::tenant_id.eq(tc::tenant_id)))
        )
        .inner_join(tn::table.on(tn::id.eq(er::tenant_id)))
        .filter(er::id.eq(&id))
        .filter(tc::target_id.eq(target))
        .select((
            RequestRow::as_select(),
            CallRow::as_select(),
            TargetRow::as_select(),
            others_unconfirmed,
            tn::notify_subject,
        ))
        .first(c))?;
    Ok(SeenCall {
        seen: Seen { row },
        call,
        target: t,
        others_unconfirmed: others.unwrap_or(0),
        notify_subject,
    })
}

/// A target's answer that settles its call for now: confirmed, accepted
/// (it will confirm later) or failed (it refused).
pub struct Answer<'a> {
    pub target: &'a str,
    pub status: CallStatus,
    pub code: Option<u16>,
    /// Kept on the call row (`targets::record`).
    pub error: Option<&'a str>,
    /// The audit note of the answer, and its detail.
    pub what: &'a str,
    pub detail: Option<String>,
}

/// Write `answer` on the request as `seen` (read with
/// [`get_seen_with_call`], `others_unconfirmed` as read there), and end the
/// job `finish` with it: the call row, the note, and when it follows, the
/// erasure's completion (this confirmation was the last) or failure (the
/// target refused), with their events and jobs — one statement on
/// PostgreSQL. The request as the write left it, or `None`, and nothing
/// written, when the request moved since it was read (its state, chain head
/// or OpenDSR mark): then hold it and write the answer as it is now.
///
/// Why the read is enough: a call becomes confirmed only in a write that
/// also chains an event onto its request (this one, the late confirmation,
/// the owner's report), so if the chain head is as read, no call was
/// confirmed since; and a confirmed call never goes back.
pub fn answer_if_unmoved(
    conn: &mut Conn<'_>,
    seen: &Seen,
    others_unconfirmed: i64,
    answer: Answer<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
    finish: (&str, DateTime<Utc>),
) -> Result<Option<Seen>, StoreError> {
    let Some(write) = plan_answer(
        Some(conn),
        seen,
        others_unconfirmed,
        None,
        answer,
        workflow,
        now,
        finish,
    )?
    else {
        return Err(StoreError::Internal(
            "an answer planned with a connection".into(),
        ));
    };
    Ok(write.run(conn)?.then(|| write.after()))
}

/// [`answer_if_unmoved`]'s write, planned, to be written with a group of
/// others (`Store::write_seen`) or alone. Without a connection it plans only
/// what needs no read (`notify_subject`: the tenant's, as read with the
/// request), else `None`: then plan it with one.
#[allow(clippy::too_many_arguments)]
pub fn plan_answer(
    conn: Option<&mut Conn<'_>>,
    seen: &Seen,
    others_unconfirmed: i64,
    notify_subject: Option<bool>,
    answer: Answer<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
    finish: (&str, DateTime<Utc>),
) -> Result<Option<SeenWrite>, StoreError> {
    let row = &seen.row;
    let state = row.state()?;
    let (note, noted) = noted(
        row,
        Note {
            what: answer.what,
            actor: &Actor::system("worker"),
            detail: answer.detail,
            now,
            finish: None,
        },
    )?;
    let targets = Actor::system("targets");
    let follows = match answer.status {
        CallStatus::Confirmed
            if others_unconfirmed == 0 && transition(state, Event::Complete).is_ok() =>
        {
            Some(Change {
                event: Event::Complete,
                actor: &targets,
                detail: None,
                decision: None,
            })
        }
        CallStatus::Failed if state == RequestState::Erasing => Some(Change {
            event: Event::Fail,
            actor: &targets,
            detail: Some(serde_json::json!({ "target_id": answer.target }).to_string()),
            decision: None,
        }),
        _ => None,
    };
    let known = Known {
        notify_subject,
        ..Known::default()
    };
    if let (None, Some(change)) = (&conn, &follows) {
        if !plans_offline(&noted, change.event, known) {
            return Ok(None);
        }
    }
    // Neither completing nor failing plans a fan-out (which would write
    // before the compare-and-set): only entering `erasing` does.
    let planned = follows
        .map(|change| plan_change(conn, &noted, change, workflow, now, known))
        .transpose()?;
    let mut events = vec![note];
    let (after, jobs, scrub, moves) = match planned {
        Some(p) => {
            events.extend(p.events);
            (p.after, p.jobs, p.scrub, Some((p.from, p.to)))
        }
        None => (noted, Vec::new(), false, None),
    };
    Ok(Some(SeenWrite {
        before: row.clone(),
        after,
        events,
        jobs,
        finish: Some((finish.0.to_owned(), finish.1.naive_utc())),
        scrub,
        call: Some(OwnedCall {
            target: answer.target.to_owned(),
            status: answer.status,
            code: answer.code,
            error: answer.error.map(str::to_owned),
            at: now,
        }),
        moves,
    }))
}
