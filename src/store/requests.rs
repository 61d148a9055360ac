//! Erasure requests: submission (with idempotency and one open request per
//! subject), compare-and-set transitions with their audit events and jobs,
//! and tenant-scoped reads.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::api_keys;
use super::audit::{self, AuditRow, ChainHead, EventSpec};
use super::jobs::{self, JobRow};
use super::schema::erasure_requests as er;
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::audit::Actor;
use crate::domain::deadline;
use crate::domain::outbox::{
    jobs_on_entering, scrubbed_on_entering, JobKind, PlannedJob, WorkflowPolicy,
};
use crate::domain::request::{ErasureRequest, NewErasure};
use crate::domain::secret::SecretDigest;
use crate::domain::state::transition;
use crate::domain::tenant::ApprovalPolicy;
use crate::domain::values::{EmailAddress, Initiator, SubjectId};
use crate::domain::{BatchId, Event, RequestId, RequestState, TenantId};
use crate::with_conn;

mod ahead;
mod answer;
mod chained;
mod decision;
mod grouped;
mod held;
mod one_statement;
mod seen;
mod seen_group;
mod unnest;

pub use ahead::{read_ahead, Ahead};
pub use answer::{answer_if_unmoved, get_seen_with_call, plan_answer, Answer, SeenCall};
use chained::ChainedWrite;
pub use chained::SeenWrite;
pub use decision::{decide_if_unmoved, find_link_to_decide};
pub use grouped::{insert as insert_grouped, Guarded};
pub use held::{apply_held, hold, hold_any, note_held, Held};
pub use seen::{
    get_seen, get_seen_any, get_seen_any_with_tenant, get_seen_any_with_tenant_and_calls,
    note_moved, note_seen, plan_note, Seen,
};

pub use seen_group::write as write_seen_group;

use one_statement::Outcome;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = er)]
#[diesel(treat_none_as_null = true)]
struct RequestRow {
    id: String,
    tenant_id: String,
    subject_hash: String,
    subject_id: Option<String>,
    subject_email: Option<String>,
    initiator: String,
    reason: Option<String>,
    callback_url: Option<String>,
    state: String,
    batch_id: Option<String>,
    idempotency_key: Option<String>,
    fingerprint: String,
    received_at: NaiveDateTime,
    due_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    closed_at: Option<NaiveDateTime>,
    audit_seq: i64,
    audit_head: String,
    decision_code: Option<String>,
    decision_explanation: Option<String>,
    escalated_at: Option<NaiveDateTime>,
    delivery_failed_at: Option<NaiveDateTime>,
    approved_at: Option<NaiveDateTime>,
    erased_at: Option<NaiveDateTime>,
    scrubbed_at: Option<NaiveDateTime>,
    /// An OpenDSR request is mapped to it (its transitions send status
    /// callbacks).
    opendsr_linked: bool,
}

impl RequestRow {
    /// The row's tenant and request ids.
    fn ids(&self) -> Result<(TenantId, RequestId), StoreError> {
        let corrupt = || StoreError::Internal(format!("request {}: bad id", self.id));
        Ok((
            self.tenant_id.parse().map_err(|_| corrupt())?,
            self.id.parse().map_err(|_| corrupt())?,
        ))
    }

    fn state(&self) -> Result<RequestState, StoreError> {
        self.state
            .parse()
            .map_err(|_| StoreError::Internal(format!("request {}: bad state", self.id)))
    }

    fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.audit_seq,
            hash: self.audit_head.clone(),
        }
    }

    fn into_domain(self) -> Result<ErasureRequest, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("request {}: bad {what}", self.id));
        Ok(ErasureRequest {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: self.tenant_id.parse().map_err(|_| corrupt("tenant id"))?,
            subject_id: match &self.subject_id {
                Some(s) => Some(SubjectId::parse(s).map_err(|_| corrupt("subject id"))?),
                None => None,
            },
            subject_email: match &self.subject_email {
                Some(s) => {
                    Some(EmailAddress::parse("subject_email", s).map_err(|_| corrupt("email"))?)
                }
                None => None,
            },
            initiator: Initiator::parse(&self.initiator).ok_or_else(|| corrupt("initiator"))?,
            state: self.state()?,
            batch_id: match &self.batch_id {
                Some(b) => Some(b.parse().map_err(|_| corrupt("batch id"))?),
                None => None,
            },
            reason: self.reason,
            callback_url: self.callback_url,
            received_at: utc(self.received_at),
            due_at: utc(self.due_at),
            updated_at: utc(self.updated_at),
            closed_at: self.closed_at.map(utc),
            decision_code: self.decision_code,
            decision_explanation: self.decision_explanation,
            escalated_at: self.escalated_at.map(utc),
            delivery_failed_at: self.delivery_failed_at.map(utc),
            approved_at: self.approved_at.map(utc),
            erased_at: self.erased_at.map(utc),
            scrubbed_at: self.scrubbed_at.map(utc),
        })
    }
}

/// One submission, as the API layer hands it over.
pub struct Submission<'a> {
    pub tenant: TenantId,
    pub policy: ApprovalPolicy,
    /// The tenant emails subjects about their requests.
    pub notify_subject: bool,
    pub workflow: &'a WorkflowPolicy,
    pub actor: Actor,
    pub erasure: NewErasure,
    /// Keyed hash of the subject id (see `domain::subject_key`).
    pub subject_hash: String,
    pub idempotency_key: Option<String>,
    pub batch_id: Option<BatchId>,
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// A new request was created.
    Created(ErasureRequest),
    /// The subject already has an open request in this tenant: that one.
    ExistingOpen(ErasureRequest),
    /// The same Idempotency-Key and the same body were seen before.
    Replayed(ErasureRequest),
}

impl Submitted {
    pub fn request(&self) -> &ErasureRequest {
        match self {
            Submitted::Created(r) | Submitted::ExistingOpen(r) | Submitted::Replayed(r) => r,
        }
    }
}

fn by_idempotency_key(
    conn: &mut Conn<'_>,
    tenant: &str,
    key: &str,
) -> Result<Option<RequestRow>, StoreError> {
    Ok(with_conn!(conn, |c| er::table
        .filter(er::tenant_id.eq(tenant))
        .filter(er::idempotency_key.eq(key))
        .select(RequestRow::as_select())
        .first(c)
        .optional())?)
}

fn open_for_subject(
    conn: &mut Conn<'_>,
    tenant: &str,
    subject_hash: &str,
) -> Result<Option<RequestRow>, StoreError> {
    let open: Vec<&str> = RequestState::OPEN.iter().map(|s| s.as_str()).collect();
    Ok(with_conn!(conn, |c| er::table
        .filter(er::tenant_id.eq(tenant))
        .filter(er::subject_hash.eq(subject_hash))
        .filter(er::state.eq_any(&open))
        .select(RequestRow::as_select())
        .first(c)
        .optional())?)
}

/// Submit one request.
///
/// The insert is tried first (`ON CONFLICT DO NOTHING`); only when it hits the
/// idempotency index or the one-open-request-per-subject index are the
/// existing rows read. The request row, its two audit events and its jobs are
/// written atomically: on PostgreSQL as one statement (see
/// [`one_statement`]), so the caller may run this outside a transaction
/// ([`crate::store::Store::write_self_contained`]); otherwise in a
/// transaction of their own (a savepoint inside the caller's).
pub fn submit(
    conn: &mut Conn<'_>,
    s: Submission<'_>,
    now: DateTime<Utc>,
) -> Result<Submitted, StoreError> {
    submit_prepared(conn, prepare(s, now)?, None)?
        .ok_or_else(|| StoreError::Internal("unguarded submission refused".into()))
}

/// The caller's API key as the submission believes it to be (from
/// [`crate::store::key_cache::SubmitKeyCache`], not looked up in this
/// transaction): the submission only writes if the key is still live and its
/// tenant's settings are these.
pub struct KeyGuard {
    pub digest: SecretDigest,
    pub key_id: String,
    pub policy: ApprovalPolicy,
    pub notify_subject: bool,
}

/// A submission with everything worked out that needs no database: the
/// request row, its two audit events (hashed into its chain), the jobs it
/// queues. Made before the write, so that SQLite's one writer spends its
/// time writing (see [`submit_prepared`]).
pub struct Prepared {
    tenant: TenantId,
    id: RequestId,
    to: RequestState,
    row: RequestRow,
    events: [AuditRow; 2],
    planned: Vec<PlannedJob>,
    /// Target calls (a tenant that needs no approval) are rows of their
    /// own, read from the tenant's targets when written.
    fans_out: bool,
    idempotency_key: Option<String>,
    now: DateTime<Utc>,
}

/// Work out a submission at `now` (see [`Prepared`]).
pub fn prepare(s: Submission<'_>, now: DateTime<Utc>) -> Result<Prepared, StoreError> {
    let id = RequestId::new();
    let first = s.policy.first_event();
    let to = transition(RequestState::Pending, first)?;
    let head = ChainHead::genesis();
    let received = audit::chain_event(
        s.tenant,
        id,
        &head,
        EventSpec {
            from_state: None,
            to_state: RequestState::Pending.as_str(),
            event: "submit",
            actor: &s.actor,
            detail: s
                .batch_id
                .map(|b| serde_json::json!({ "batch_id": b }).to_string()),
        },
        now,
    );
    let routed = audit::chain_event(
        s.tenant,
        id,
        &ChainHead {
            seq: received.seq,
            hash: received.hash.clone(),
        },
        EventSpec {
            from_state: Some(RequestState::Pending.as_str()),
            to_state: to.as_str(),
            event: first.as_str(),
            actor: &Actor::system("policy"),
            detail: Some(serde_json::json!({ "approval_policy": s.policy.as_str() }).to_string()),
        },
        now,
    );
    let e = &s.erasure;
    let row = RequestRow {
        id: id.to_string(),
        tenant_id: s.tenant.to_string(),
        subject_hash: s.subject_hash.clone(),
        subject_id: Some(e.subject_id.as_str().to_owned()),
        subject_email: e.subject_email.as_ref().map(|m| m.as_str().to_owned()),
        initiator: e.initiator.as_str().to_owned(),
        reason: e.reason.as_ref().map(|r| r.as_str().to_owned()),
        callback_url: e.callback_url.as_ref().map(|u| u.as_str().to_owned()),
        state: to.as_str().to_owned(),
        batch_id: s.batch_id.map(|b| b.to_string()),
        idempotency_key: s.idempotency_key.clone(),
        fingerprint: e.fingerprint(),
        received_at: now.naive_utc(),
        due_at: deadline::due_at(now).naive_utc(),
        updated_at: now.naive_utc(),
        closed_at: None,
        audit_seq: routed.seq,
        audit_head: routed.hash.clone(),
        decision_code: None,
        decision_explanation: None,
        escalated_at: None,
        delivery_failed_at: None,
        approved_at: None,
        erased_at: None,
        scrubbed_at: None,
        opendsr_linked: false,
    };
    let mut f = s.workflow.follow_up(now, deadline::due_at(now));
    f.in_batch = s.batch_id.is_some();
    f.notify_subject = s.notify_subject && e.subject_email.is_some();
    f.on_submit = true;
    f.has_callback = e.callback_url.is_some();
    let planned = jobs_on_entering(to, &f);
    let fans_out = planned.iter().any(|p| p.kind == JobKind::StartErasure);
    Ok(Prepared {
        tenant: s.tenant,
        id,
        to,
        row,
        events: [received, routed],
        planned,
        fans_out,
        idempotency_key: s.idempotency_key,
        now,
    })
}

/// Write a prepared submission: `None` (and nothing written) when `guard`
/// no longer holds. On PostgreSQL, unless it fans out to targets, it is one
/// statement (key check included).
pub fn submit_prepared(
    conn: &mut Conn<'_>,
    p: Prepared,
    guard: Option<&KeyGuard>,
) -> Result<Option<Submitted>, StoreError> {
    let outcome = match conn {
        Conn::Pg(c) if !p.fans_out => {
            let jobs = p.job_rows();
            one_statement::InsertSubmission::new(guard, &p.row, &p.events, &jobs).run(c)?
        }
        _ => conn.atomic(|conn| {
            if let Some(g) = guard {
                let held = api_keys::find_active_for_submit(conn, &g.digest)?.is_some_and(|k| {
                    k.key.id.to_string() == g.key_id
                        && k.policy == g.policy
                        && k.notify_subject == g.notify_subject
                });
                if !held {
                    return Ok(Outcome::KeyChanged);
                }
            }
            let inserted = with_conn!(conn, |c| diesel::insert_into(er::table)
                .values(&p.row)
                .on_conflict_do_nothing()
                .execute(c))?;
            if inserted == 0 {
                return Ok(Outcome::Conflict);
            }
            audit::insert(conn, &p.events)?;
            let follow_up = plan_rows(conn, &p.planned, p.tenant, p.id, p.now)?;
            jobs::enqueue(conn, &follow_up)?;
            Ok(Outcome::Inserted)
        })?,
    };
    match outcome {
        Outcome::KeyChanged => Ok(None),
        Outcome::Conflict => on_conflict(conn, p.idempotency_key.as_deref(), &p.row).map(Some),
        Outcome::Inserted => p.into_created().map(Some),
    }
}

impl Prepared {
    /// Is it written on its own, not with others ([`insert_grouped`])? A
    /// submission that fans out to the tenant's targets reads them first.
    pub fn goes_alone(&self) -> bool {
        self.fans_out
    }

    /// Its jobs as rows (a submission that does not fan out).
    fn job_rows(&self) -> Vec<JobRow> {
        self.planned
            .iter()
            .map(|p| JobRow::planned(p, Some(self.tenant), Some(self.id), self.now))
            .collect()
    }

    /// The answer once its rows are written.
    pub fn into_created(self) -> Result<Submitted, StoreError> {
        crate::metrics::transition("new", RequestState::Pending.as_str());
        crate::metrics::transition(RequestState::Pending.as_str(), self.to.as_str());
        Ok(Submitted::Created(self.row.into_domain()?))
    }
}

/// The insert hit a unique index: the replay of an idempotent request, or the
/// subject's open request.
fn on_conflict(
    conn: &mut Conn<'_>,
    idempotency_key: Option<&str>,
    row: &RequestRow,
) -> Result<Submitted, StoreError> {
    if let Some(key) = idempotency_key {
        if let Some(existing) = by_idempotency_key(conn, &row.tenant_id, key)? {
            if existing.fingerprint != row.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            return Ok(Submitted::Replayed(existing.into_domain()?));
        }
    }
    if let Some(open) = open_for_subject(conn, &row.tenant_id, &row.subject_hash)? {
        return Ok(Submitted::ExistingOpen(open.into_domain()?));
    }
    Err(StoreError::Conflict(
        "the request conflicted with another, try again",
    ))
}

fn load_row(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
) -> Result<RequestRow, StoreError> {
    Ok(with_conn!(conn, |c| er::table
        .find(id.to_string())
        .filter(er::tenant_id.eq(tenant.to_string()))
        .select(RequestRow::as_select())
        .first(c))?)
}

pub fn get(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
) -> Result<ErasureRequest, StoreError> {
    load_row(conn, tenant, id)?.into_domain()
}

/// A state change to apply.
pub struct Change<'a> {
    pub event: Event,
    pub actor: &'a Actor,
    /// Non-personal detail for the audit trail (JSON).
    pub detail: Option<String>,
    /// A rejection's code and explanation.
    pub decision: Option<(&'a str, &'a str)>,
}

fn tenant_notifies(conn: &mut Conn<'_>, tenant: &str) -> Result<bool, StoreError> {
    use super::schema::tenants;
    Ok(with_conn!(conn, |c| tenants::table
        .find(tenant)
        .select(tenants::notify_subject)
        .first::<bool>(c))?)
}

/// Apply a change to a request: its state moves by the state machine, with
/// its audit event and follow-up jobs in the same transaction. The request
/// is held (see [`hold`]) first, so of two racing callers the second waits
/// for the first and gets a `TransitionError` for the state it left.
pub fn apply(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
    change: Change<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<ErasureRequest, StoreError> {
    let mut held = hold(conn, tenant, id)?;
    apply_held(conn, &mut held, change, workflow, now)
}

/// Apply `change` to `row` as read in this transaction, with a
/// compare-and-set on its state and chain head: the row as the update left
/// it, or `None` if the compare missed (the row changed since it was read).
/// An event its state does not allow is a `TransitionError`, and writes
/// nothing.
fn apply_row(
    conn: &mut Conn<'_>,
    row: RequestRow,
    change: Change<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<Option<RequestRow>, StoreError> {
    let planned = plan_change(Some(conn), &row, change, workflow, now, Known::default())?;
    if !planned.write(conn, &row, None)? {
        // Nothing was written; the rows `plan_rows` may have written go
        // with the caller's transaction (a held row cannot miss).
        return Ok(None);
    }
    Ok(Some(planned.after))
}

/// A change planned on a request row as read: the row after it, its audit
/// event(s) and follow-up jobs, all to be written by one `ChainedWrite`
/// whose compare-and-set is on the row as read.
struct PlannedChange {
    from: RequestState,
    to: RequestState,
    after: RequestRow,
    events: Vec<AuditRow>,
    jobs: Vec<JobRow>,
    scrub: bool,
    /// The calls to the targets are left to the write (see
    /// [`Known::fan_out_in_write`]): it is entering `erasing`.
    fan_out: bool,
}

impl PlannedChange {
    /// Write the plan on the row `before` it was made on (a compare-and-set:
    /// `false` and nothing written if the row moved); with `link`, as an
    /// approval decision using that link up (see [`chained::LinkDecision`]).
    fn write(
        &self,
        conn: &mut Conn<'_>,
        before: &RequestRow,
        link: Option<&str>,
    ) -> Result<bool, StoreError> {
        let written = ChainedWrite {
            before,
            after: &self.after,
            events: &self.events,
            jobs: &self.jobs,
            finish: None,
            scrub: self.scrub,
            call: None,
            decision: link.map(|link| chained::LinkDecision {
                link,
                fan_out: self.fan_out,
            }),
        }
        .run(conn)?;
        if written {
            crate::metrics::transition(self.from.as_str(), self.to.as_str());
        }
        Ok(written)
    }
}

/// What a plan may take as read or leave to the write, instead of reading
/// or writing it itself.
#[derive(Debug, Default, Clone, Copy)]
struct Known {
    /// The tenant's `notify_subject`, when the caller has the tenant.
    notify_subject: Option<bool>,
    /// Plan no target calls on entering `erasing` (`targets::fan_out` writes
    /// them at once); the write makes them (`ChainedWrite::decision`).
    fan_out_in_write: bool,
}

/// Plan `change` on `row`: the state machine's verdict (a
/// `TransitionError` for an event its state does not allow), the events
/// chained onto the row's head, the follow-up jobs. It reads what the jobs
/// depend on (the tenant's subject notices, OpenDSR mappings when the row is
/// linked) and, for a transition into `erasing`, writes the target call rows
/// (`targets::fan_out`), so the caller must write the plan in the same
/// transaction or not at all; unless `known` says it has them or leaves the
/// calls to the write. Without a connection (`None`) it plans only what needs
/// no read: a plan that would read fails with an internal error, so a caller
/// passes `None` only for a change whose reads `known` and the row rule out
/// (see [`plans_offline`]).
fn plan_change(
    mut conn: Option<&mut Conn<'_>>,
    row: &RequestRow,
    change: Change<'_>,
    workflow: &WorkflowPolicy,
    now: DateTime<Utc>,
    known: Known,
) -> Result<PlannedChange, StoreError> {
    let (tenant, id) = row.ids()?;
    let from = row.state()?;
    let event = change.event;
    let to = transition(from, event)?;
    let ev = audit::chain_event(
        tenant,
        id,
        &row.head(),
        EventSpec {
            from_state: Some(from.as_str()),
            to_state: to.as_str(),
            event: event.as_str(),
            actor: change.actor,
            detail: change.detail,
        },
        now,
    );
    let closed_at = (!to.is_open()).then(|| now.naive_utc());
    let (code, explanation) = match change.decision {
        Some((c, e)) => (Some(c.to_owned()), Some(e.to_owned())),
        None => (row.decision_code.clone(), row.decision_explanation.clone()),
    };
    let approved_at = if event == Event::Approve {
        Some(now.naive_utc())
    } else {
        row.approved_at
    };
    let erased_at = if to == RequestState::Erased {
        Some(now.naive_utc())
    } else {
        row.erased_at
    };
    let mut f = workflow.follow_up(now, utc(row.due_at));
    f.in_batch = row.batch_id.is_some();
    f.notify_subject = row.subject_email.is_some()
        && match known.notify_subject {
            Some(notifies) => notifies,
            None => tenant_notifies(connected(&mut conn)?, &row.tenant_id)?,
        };
    f.from = Some(from);
    f.has_callback = row.callback_url.is_some();
    let mut planned = jobs_on_entering(to, &f);
    let fan_out = known.fan_out_in_write && planned.iter().any(|p| p.kind == JobKind::StartErasure);
    if fan_out {
        planned.retain(|p| p.kind != JobKind::StartErasure);
    }
    let mut jobs = if planned.iter().any(|p| p.kind == JobKind::StartErasure) {
        plan_rows(connected(&mut conn)?, &planned, tenant, id, now)?
    } else {
        planned
            .iter()
            .map(|p| JobRow::planned(p, Some(tenant), Some(id), now))
            .collect()
    };
    if row.opendsr_linked {
        jobs.extend(super::opendsr::on_transition(
            connected(&mut conn)?,
            tenant,
            id,
            row.opendsr_linked,
            (from, to),
            now,
        )?);
    }
    let mut after = RequestRow {
        state: to.as_str().to_owned(),
        updated_at: now.naive_utc(),
        closed_at,
        audit_seq: ev.seq,
        audit_head: ev.hash.clone(),
        decision_code: code,
        decision_explanation: explanation,
        approved_at,
        erased_at,
        ..row.clone()
    };
    let mut events = vec![ev];
    // Nothing to keep the personal fields for: scrubbed in this write, with
    // its own audit event (as the `Scrub` job would).
    let scrub = scrubbed_on_entering(to, &f);
    if scrub {
        let scrubbed = audit::chain_event(
            tenant,
            id,
            &after.head(),
            EventSpec {
                from_state: Some(to.as_str()),
                to_state: to.as_str(),
                event: SCRUBBED,
                actor: &Actor::system("worker"),
                detail: Some("{}".to_owned()),
            },
            now,
        );
        after = RequestRow {
            subject_id: None,
            subject_email: None,
            reason: None,
            decision_explanation: None,
            scrubbed_at: Some(now.naive_utc()),
            audit_seq: scrubbed.seq,
            audit_head: scrubbed.hash.clone(),
            ..after
        };
        events.push(scrubbed);
    }
    Ok(PlannedChange {
        from,
        to,
        after,
        events,
        jobs,
        scrub,
        fan_out,
    })
}

/// The connection a plan's read needs (see [`plan_change`]).
fn connected<'c, 'a>(conn: &'c mut Option<&mut Conn<'a>>) -> Result<&'c mut Conn<'a>, StoreError> {
    conn.as_deref_mut().ok_or_else(|| {
        StoreError::Internal("a change planned without a connection needs a read".into())
    })
}

/// Can `change` be planned on `row` without reading (see [`plan_change`]),
/// given what `known` holds? Not for a request linked to OpenDSR (its
/// mappings are read) or a transition into `erasing` (its calls are written
/// first), nor when the tenant's subject notices matter and are unknown.
fn plans_offline(row: &RequestRow, event: Event, known: Known) -> bool {
    let into_erasing = row
        .state()
        .ok()
        .and_then(|from| transition(from, event).ok())
        == Some(RequestState::Erasing);
    !row.opendsr_linked
        && (row.subject_email.is_none() || known.notify_subject.is_some())
        && !into_erasing
}

/// Turn planned jobs into rows; `StartErasure` becomes one call per target.
fn plan_rows(
    conn: &mut Conn<'_>,
    planned: &[PlannedJob],
    tenant: TenantId,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<Vec<JobRow>, StoreError> {
    let mut rows = Vec::with_capacity(planned.len());
    for p in planned {
        if p.kind == JobKind::StartErasure {
            rows.extend(super::targets::fan_out(conn, tenant, id, now)?);
        } else {
            rows.push(JobRow::planned(p, Some(tenant), Some(id), now));
        }
    }
    Ok(rows)
}

/// The audit event of a scrub.
pub const SCRUBBED: &str = "personal_data_scrubbed";

/// Remove a closed request's personal fields; the keyed subject hash stays.
/// The request, held, if this scrubbed it (`None`: open, or scrubbed before).
pub fn scrub(
    conn: &mut Conn<'_>,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<Option<Held>, StoreError> {
    let closed: Vec<&str> = [
        RequestState::Erased,
        RequestState::Rejected,
        RequestState::Cancelled,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    // The updated row stays locked until the transaction ends: held.
    let row: Option<RequestRow> = with_conn!(conn, |c| diesel::update(
        er::table
            .filter(er::id.eq(id.to_string()))
            .filter(er::state.eq_any(&closed))
            .filter(er::scrubbed_at.is_null())
    )
    .set((
        er::subject_id.eq(None::<String>),
        er::subject_email.eq(None::<String>),
        er::reason.eq(None::<String>),
        er::decision_explanation.eq(None::<String>),
        er::extension_reason.eq(None::<String>),
        er::cancel_reason.eq(None::<String>),
        er::scrubbed_at.eq(Some(now.naive_utc())),
    ))
    .returning(RequestRow::as_returning())
    .get_result(c)
    .optional())?;
    Ok(row.map(|row| Held { row }))
}

/// An event to record on a request without changing its state (an email
/// sent, a reminder, an escalation, a target's answer), by whom, when, and
/// the claimed job (id, when) the same write marks finished, if any.
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub what: &'a str,
    pub actor: &'a Actor,
    /// The event's detail, as JSON text.
    pub detail: Option<String>,
    pub now: DateTime<Utc>,
    pub finish: Option<(&'a str, DateTime<Utc>)>,
}

/// Record something that happened to a request without changing its state,
/// chained like any event.
pub fn note(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
    what: &str,
    actor: &Actor,
    detail: Option<String>,
    now: DateTime<Utc>,
) -> Result<ErasureRequest, StoreError> {
    let mut held = hold(conn, tenant, id)?;
    let note = Note {
        what,
        actor,
        detail,
        now,
        finish: None,
    };
    note_held(conn, &mut held, note)?;
    held.request()
}

/// Chain an event onto `row` as read in this transaction; the row as the
/// write left it. A `Conflict` (nothing written) if its head moved since.
fn note_row(
    conn: &mut Conn<'_>,
    row: RequestRow,
    note: Note<'_>,
) -> Result<RequestRow, StoreError> {
    note_if_unmoved(conn, &row, note)?.ok_or(StoreError::Conflict(
        "the request changed meanwhile, try again",
    ))
}

/// A note on `row`: its audit event, chained onto the row's head in its
/// state, and the row with that event as its head.
fn noted(row: &RequestRow, note: Note<'_>) -> Result<(AuditRow, RequestRow), StoreError> {
    let (tenant, id) = row.ids()?;
    let state = row.state()?;
    let ev = audit::chain_event(
        tenant,
        id,
        &row.head(),
        EventSpec {
            from_state: Some(state.as_str()),
            to_state: state.as_str(),
            event: note.what,
            actor: note.actor,
            detail: note.detail,
        },
        note.now,
    );
    let after = RequestRow {
        audit_seq: ev.seq,
        audit_head: ev.hash.clone(),
        ..row.clone()
    };
    Ok((ev, after))
}

/// Chain an event onto `row` if the request is still as `row` shows it (its
/// state and chain head): the row as the write left it, or `None` and
/// nothing written.
fn note_if_unmoved(
    conn: &mut Conn<'_>,
    row: &RequestRow,
    note: Note<'_>,
) -> Result<Option<RequestRow>, StoreError> {
    let write = plan_note_on(row, note)?;
    Ok(write.run(conn)?.then_some(write.after))
}

/// The note of [`note_if_unmoved`], planned, to be written alone or with a
/// group of others.
fn plan_note_on(row: &RequestRow, note: Note<'_>) -> Result<SeenWrite, StoreError> {
    let finish = note
        .finish
        .map(|(job, at)| (job.to_owned(), at.naive_utc()));
    let (ev, after) = noted(row, note)?;
    Ok(SeenWrite {
        before: row.clone(),
        after,
        events: vec![ev],
        jobs: Vec::new(),
        finish,
        scrub: false,
        call: None,
        moves: None,
    })
}

/// Mark an undecided request as escalated to support (once).
pub fn mark_escalated(
    conn: &mut Conn<'_>,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = with_conn!(conn, |c| diesel::update(
        er::table
            .filter(er::id.eq(id.to_string()))
            .filter(er::escalated_at.is_null())
    )
    .set(er::escalated_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(n > 0)
}

/// Mark that the approval email could not be delivered.
pub fn mark_delivery_failed(
    conn: &mut Conn<'_>,
    id: RequestId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(
        er::table.filter(er::id.eq(id.to_string()))
    )
    .set(er::delivery_failed_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(())
}

/// A request by id alone, for workers (which act across tenants).
pub fn get_any(conn: &mut Conn<'_>, id: RequestId) -> Result<ErasureRequest, StoreError> {
    let row: RequestRow = with_conn!(conn, |c| er::table
        .find(id.to_string())
        .select(RequestRow::as_select())
        .first(c))?;
    row.into_domain()
}

/// The requests of a batch still waiting for a decision, oldest first.
pub fn batch_awaiting(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    batch: BatchId,
) -> Result<Vec<ErasureRequest>, StoreError> {
    let rows: Vec<RequestRow> = with_conn!(conn, |c| er::table
        .filter(er::tenant_id.eq(tenant.to_string()))
        .filter(er::batch_id.eq(batch.to_string()))
        .filter(er::state.eq(RequestState::AwaitingApproval.as_str()))
        .order(er::id.asc())
        .select(RequestRow::as_select())
        .load(c))?;
    rows.into_iter().map(RequestRow::into_domain).collect()
}

/// Filters of the request list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: Vec<RequestState>,
    pub overdue: Option<bool>,
    /// Newest first: return requests with an id below this one.
    pub before: Option<RequestId>,
    pub limit: i64,
}

/// A tenant's requests, newest first.
pub fn list(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    filter: &ListFilter,
    now: DateTime<Utc>,
) -> Result<Vec<ErasureRequest>, StoreError> {
    let tenant = tenant.to_string();
    let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    let open: Vec<&str> = RequestState::OPEN.iter().map(|s| s.as_str()).collect();
    let before = filter.before.map(|b| b.to_string());
    let now = now.naive_utc();
    let rows: Vec<RequestRow> = with_conn!(conn, |c| {
        let mut q = er::table
            .filter(er::tenant_id.eq(&tenant))
            .select(RequestRow::as_select())
            .order(er::id.desc())
            .limit(filter.limit)
            .into_boxed();
        if !states.is_empty() {
            q = q.filter(er::state.eq_any(&states));
        }
        if let Some(b) = &before {
            q = q.filter(er::id.lt(b));
        }
        match filter.overdue {
            Some(true) => q = q.filter(er::state.eq_any(&open)).filter(er::due_at.lt(now)),
            Some(false) => q = q.filter(er::state.ne_all(&open).or(er::due_at.ge(now))),
            None => {}
        }
        q.load(c)
    })?;
    rows.into_iter().map(RequestRow::into_domain).collect()
}

/// The request that decides a subject's account status: the open one if any,
/// else the most recent.
pub fn for_subject(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    subject_hash: &str,
) -> Result<Option<ErasureRequest>, StoreError> {
    let tenant = tenant.to_string();
    if let Some(open) = open_for_subject(conn, &tenant, subject_hash)? {
        return Ok(Some(open.into_domain()?));
    }
    let latest: Option<RequestRow> = with_conn!(conn, |c| er::table
        .filter(er::tenant_id.eq(&tenant))
        .filter(er::subject_hash.eq(subject_hash))
        .order(er::id.desc())
        .select(RequestRow::as_select())
        .first(c)
        .optional())?;
    latest.map(RequestRow::into_domain).transpose()
}
