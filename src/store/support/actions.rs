//! What support does to a request, each inside the caller's transaction and
//! recorded in the request's audit chain with the support user as actor:
//! resend the approval email, retry a failed erasure, cancel with a reason,
//! extend the deadline once (GDPR Art. 12(3)).

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::domain::audit::Actor;
use crate::domain::outbox::{FollowUpProgress, JobKind, SubjectNotice, Undecided, WorkflowPolicy};
use crate::domain::support::{ExtendBy, ExtensionError, ExtensionFacts, SupportUserId};
use crate::domain::values::Reason;
use crate::domain::{BatchId, Event, RequestId, RequestState, TransitionError};
use crate::store::jobs::{self, JobRow};
use crate::store::requests::{self, Change};
use crate::store::schema::{erasure_requests as er, jobs as jobs_table};
use crate::store::tenants::utc;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// Support's actions, as the API and the bulk form name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ResendApproval,
    Retry,
    Cancel,
    Extend,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::ResendApproval,
        Action::Retry,
        Action::Cancel,
        Action::Extend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ResendApproval => "resend_approval",
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Extend => "extend",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Does this action need a written reason?
    pub fn needs_reason(self) -> bool {
        matches!(self, Action::Cancel | Action::Extend)
    }

    /// Could the action apply to a request in `state` at all? (The store
    /// decides for good, with a compare-and-set.)
    pub fn applies_to(self, state: RequestState) -> bool {
        match self {
            Action::ResendApproval => state == RequestState::AwaitingApproval,
            Action::Retry => state == RequestState::Failed,
            Action::Cancel => matches!(
                state,
                RequestState::Pending | RequestState::AwaitingApproval
            ),
            Action::Extend => state.is_open(),
        }
    }
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Extension(#[from] ExtensionError),
}

/// The outcome of an action on one request: done, or refused by the rules
/// (nothing written). Storage failures are the outer `StoreError`.
pub type Outcome<T> = Result<T, Refused>;

fn refused<T>(e: StoreError) -> Result<Outcome<T>, StoreError> {
    match e {
        StoreError::Transition(t) => Ok(Err(Refused::Transition(t))),
        other => Err(other),
    }
}

/// Send the privacy contact a fresh approval link (the old one is voided when
/// the new one is issued). A request of a batch gets the batch's email; with
/// `batches_queued`, a bulk resend queues each batch's email once.
pub fn resend(
    conn: &mut Conn<'_>,
    id: RequestId,
    actor: &Actor,
    batches_queued: &mut HashSet<BatchId>,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, StoreError> {
    let r = requests::get_any(conn, id)?;
    if r.state != RequestState::AwaitingApproval {
        return Ok(Err(Refused::Transition(TransitionError::NotAllowed {
            from: r.state,
            event: Event::RequestApproval,
        })));
    }
    requests::note(
        conn,
        r.tenant_id,
        id,
        "approval_resend_requested",
        actor,
        None,
        now,
    )?;
    // One email per batch, however many of its requests are selected.
    if let Some(b) = r.batch_id {
        if !batches_queued.insert(b) {
            return Ok(Ok(()));
        }
    }
    jobs::enqueue(conn, &[jobs::approval_resend(&r, now)])?;
    Ok(Ok(()))
}

/// Retry a failed erasure: `failed → erasing`, which queues the erasure again.
pub fn retry(
    conn: &mut Conn<'_>,
    id: RequestId,
    actor: &Actor,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, StoreError> {
    let r = requests::get_any(conn, id)?;
    let change = Change {
        event: Event::Retry,
        actor,
        detail: None,
        decision: None,
    };
    match requests::apply(conn, r.tenant_id, id, change, workflow, now) {
        Ok(_) => Ok(Ok(())),
        Err(e) => refused(e),
    }
}

/// Cancel a request that has not started erasing, keeping support's reason
/// (on the request, scrubbed with it; the audit event records that one was
/// given).
pub fn cancel(
    conn: &mut Conn<'_>,
    id: RequestId,
    actor: &Actor,
    reason: &Reason,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, StoreError> {
    let r = requests::get_any(conn, id)?;
    let change = Change {
        event: Event::Cancel,
        actor,
        detail: Some(serde_json::json!({ "reason_given": true }).to_string()),
        decision: None,
    };
    if let Err(e) = requests::apply(conn, r.tenant_id, id, change, workflow, now) {
        return refused(e);
    }
    with_conn!(conn, |c| diesel::update(er::table.find(id.to_string()))
        .set(er::cancel_reason.eq(reason.as_str()))
        .execute(c))?;
    Ok(Ok(()))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = er)]
struct DeadlineRow {
    tenant_id: String,
    state: String,
    subject_email: Option<String>,
    received_at: NaiveDateTime,
    due_at: NaiveDateTime,
    extended_at: Option<NaiveDateTime>,
    audit_seq: i64,
}

/// What an extension did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The subject gave an email address, so a notice is queued to tell them.
    pub subject_told: bool,
}

/// Extend a request's deadline, once, by at most two months, only within the
/// first month (GDPR Art. 12(3)). The subject is told when they gave an email
/// address: the extension and its reason must reach them within the first
/// month. The escalation scheduled for the old deadline is replaced by one
/// for the new deadline.
pub fn extend(
    conn: &mut Conn<'_>,
    id: RequestId,
    user: SupportUserId,
    by: ExtendBy,
    reason: &Reason,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<Outcome<Extended>, StoreError> {
    let key = id.to_string();
    let row: DeadlineRow = with_conn!(conn, |c| er::table
        .find(&key)
        .select(DeadlineRow::as_select())
        .first(c))?;
    let tenant = row
        .tenant_id
        .parse()
        .map_err(|_| StoreError::Internal(format!("request {key}: bad tenant id")))?;
    let state: RequestState = row
        .state
        .parse()
        .map_err(|_| StoreError::Internal(format!("request {key}: bad state")))?;
    let facts = ExtensionFacts {
        state,
        received_at: utc(row.received_at),
        due_at: utc(row.due_at),
        extended_at: row.extended_at.map(utc),
    };
    let new_due = match facts.check(by.new_due(facts.received_at), now) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e.into())),
    };
    // Compare-and-set: of two racing extensions, one wins.
    let updated = with_conn!(conn, |c| diesel::update(
        er::table
            .filter(er::id.eq(&key))
            .filter(er::extended_at.is_null())
            .filter(er::state.eq(&row.state))
            .filter(er::audit_seq.eq(row.audit_seq))
    )
    .set((
        er::due_at.eq(new_due.naive_utc()),
        er::extended_at.eq(Some(now.naive_utc())),
        er::extension_reason.eq(Some(reason.as_str())),
        er::extended_by.eq(Some(user.to_string())),
        er::escalated_at.eq(None::<NaiveDateTime>),
        er::updated_at.eq(now.naive_utc()),
    ))
    .execute(c))?;
    if updated == 0 {
        return Err(StoreError::Conflict(
            "the request changed meanwhile, try again",
        ));
    }
    let subject_told = row.subject_email.is_some();
    let months = match by {
        ExtendBy::Months(n) => Some(n),
        ExtendBy::Until(_) => None,
    };
    requests::note(
        conn,
        tenant,
        id,
        "deadline_extended",
        &crate::domain::support::actor(user),
        Some(
            serde_json::json!({
                "from": facts.due_at,
                "to": new_due,
                "months": months,
                "reason_given": true,
                "subject_told": subject_told,
            })
            .to_string(),
        ),
        now,
    )?;
    // The escalation planned for the old deadline would fire two months early.
    with_conn!(conn, |c| diesel::update(
        jobs_table::table
            .filter(jobs_table::request_id.eq(&key))
            .filter(jobs_table::kind.eq(JobKind::EscalateDeadline.as_str()))
            .filter(jobs_table::finished_at.is_null())
            .filter(jobs_table::lease_until.is_null())
    )
    .set((
        jobs_table::finished_at.eq(Some(now.naive_utc())),
        jobs_table::last_error.eq(Some("superseded: the deadline was extended")),
    ))
    .execute(c))?;
    // A request's follow-up reads the deadline each time it wakes; its next
    // wake moves to the new one.
    let follow_ups: Vec<JobRow> = with_conn!(conn, |c| jobs_table::table
        .filter(jobs_table::request_id.eq(&key))
        .filter(jobs_table::kind.eq(JobKind::ApprovalFollowUp.as_str()))
        .filter(jobs_table::finished_at.is_null())
        .filter(jobs_table::lease_until.is_null())
        .select(JobRow::as_select())
        .load(c))?;
    let open = Undecided {
        due_at: new_due,
        escalated: false,
    };
    let mut followed = false;
    for job in &follow_ups {
        let Ok(progress) = serde_json::from_str::<FollowUpProgress>(&job.payload) else {
            continue;
        };
        if let Some(next) = progress.next(&open, &workflow.schedule()) {
            jobs::move_on(conn, &job.id, &next)?;
            followed = true;
        }
    }
    let mut follow_up = Vec::new();
    if state.keeps_account_active() && !followed {
        // Its follow-up is over (or running): the escalation is a job of
        // its own.
        let before = Duration::days(i64::from(workflow.escalate_before_days));
        let mut job = JobRow::new(
            JobKind::EscalateDeadline,
            Some(tenant),
            Some(id),
            serde_json::json!({}),
            now,
        );
        job.run_at = (new_due - before).max(now).naive_utc();
        follow_up.push(job);
    }
    if subject_told {
        follow_up.push(JobRow::new(
            JobKind::NotifySubject,
            Some(tenant),
            Some(id),
            serde_json::json!({ "notice": SubjectNotice::Extended }),
            now,
        ));
    }
    jobs::enqueue(conn, &follow_up)?;
    Ok(Ok(Extended {
        from: facts.due_at,
        to: new_due,
        subject_told,
    }))
}

/// The extension's reason, for the notice to the subject (`None` when the
/// deadline was not extended or the request is scrubbed).
pub fn extension_reason(conn: &mut Conn<'_>, id: RequestId) -> Result<Option<String>, StoreError> {
    Ok(with_conn!(conn, |c| er::table
        .find(id.to_string())
        .select(er::extension_reason)
        .first::<Option<String>>(c))?)
}
