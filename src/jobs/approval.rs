//! Approval emails, reminders and deadline escalation.

use chrono::{DateTime, Duration, Utc};

use super::{payload, request_of, tenant_of, Done, Finish, JobContext, JobError};
use crate::domain::approval::TOKEN_PREFIX;
use crate::domain::audit::Actor;
use crate::domain::outbox::{FollowUpProgress, FollowUpStep, JobKind, Undecided};
use crate::domain::request::ErasureRequest;
use crate::domain::secret::Secret;
use crate::domain::tenant::Tenant;
use crate::domain::{BatchId, RequestId, RequestState, TenantId};
use crate::email::views::{self, ApprovalMail};
use crate::email::SendError;
use crate::store::approvals::{self, LinkTarget};
use crate::store::job_writes::{JobWrite, LinkWrite};
use crate::store::jobs::JobRow;
use crate::store::requests::{Note, Seen};
use crate::store::{requests, tenants, Backend, StoreError};

fn mail_error(e: SendError) -> JobError {
    match e {
        SendError::Permanent(m) => JobError::Permanent(m),
        SendError::Temporary(m) => JobError::Retry(m),
    }
}

/// Record an event on a request, retrying if a concurrent write moved its
/// chain head. Failure is logged, not returned: the email it records was sent.
pub(super) async fn note(
    ctx: &JobContext,
    tenant: TenantId,
    id: RequestId,
    what: &'static str,
    detail: serde_json::Value,
) {
    note_all(ctx, tenant, vec![id], what, detail, None).await;
}

/// Record an event on each of `ids` in one transaction and, with `finish`,
/// mark the job finished in it too. Failure is
/// logged, not returned: what it records (an email) has happened.
/// `Done::Recorded` when the job was marked finished.
pub(super) async fn note_all(
    ctx: &JobContext,
    tenant: TenantId,
    ids: Vec<RequestId>,
    what: &'static str,
    detail: serde_json::Value,
    finish: Option<Finish>,
) -> Done {
    let n = ids.len();
    let recorded = finish.is_some();
    let ids = std::sync::Arc::new(ids);
    let detail = detail.to_string();
    let written = ctx
        .store
        .write(move |conn| {
            let now = crate::domain::deadline::now();
            for (i, id) in ids.iter().enumerate() {
                let mut held = requests::hold(conn, tenant, *id)?;
                // The job ends with the last note.
                let end = finish.as_ref().filter(|_| i + 1 == ids.len());
                let note = Note {
                    what,
                    actor: &Actor::system("worker"),
                    detail: Some(detail.clone()),
                    now,
                    finish: end.map(Finish::end),
                };
                requests::note_held(conn, &mut held, note)?;
            }
            match &finish {
                Some(f) if ids.is_empty() => f.record(conn),
                _ => Ok(()),
            }
        })
        .await;
    match written {
        Ok(()) if recorded => Done::Recorded,
        Ok(()) => Done::ToRecord,
        Err(e) => {
            tracing::error!(requests = n, event = what, error = %e, "could not record an audit event");
            Done::ToRecord
        }
    }
}

async fn load(ctx: &JobContext, id: RequestId) -> Result<(Seen, Tenant), JobError> {
    Ok(ctx
        .store
        .read(move |conn| requests::get_seen_any_with_tenant(conn, id))
        .await?)
}

/// Record an event on a request the job read before it sent an email, and
/// end the job in the same write: on PostgreSQL with other jobs' writes as
/// one statement when the request has not moved since (see
/// `store::job_writes`), else read again and tried once more alone (see
/// `requests::note_seen`). Failure is logged, not returned: what it records
/// (an email) has happened.
pub(super) async fn note_seen(
    ctx: &JobContext,
    seen: Seen,
    what: &'static str,
    detail: serde_json::Value,
    finish: Finish,
) -> Done {
    let detail = detail.to_string();
    let mut moved = false;
    if ctx.store.backend() == Backend::Postgres {
        let note = Note {
            what,
            actor: &Actor::system("worker"),
            detail: Some(detail.clone()),
            now: crate::domain::deadline::now(),
            finish: Some(finish.end()),
        };
        let planned = requests::plan_note(&seen, note);
        match planned.map(|w| ctx.store.write_seen(w)) {
            Ok(write) => match write.await {
                Ok(JobWrite::Written(_)) => return Done::Recorded,
                Ok(JobWrite::Moved(_)) => moved = true,
                Ok(JobWrite::Alone(_)) | Err(_) => {}
            },
            Err(e) => {
                tracing::error!(event = what, error = %e, "could not record an audit event");
                return Done::ToRecord;
            }
        }
    }
    let written = ctx
        .store
        .write_self_contained(move |conn| {
            let note = Note {
                what,
                actor: &Actor::system("worker"),
                detail: Some(detail),
                now: crate::domain::deadline::now(),
                finish: Some(finish.end()),
            };
            if moved {
                requests::note_moved(conn, seen.id()?, note)
            } else {
                requests::note_seen(conn, &seen, note)
            }
        })
        .await;
    match written {
        Ok(()) => Done::Recorded,
        Err(e) => {
            tracing::error!(event = what, error = %e, "could not record an audit event");
            Done::ToRecord
        }
    }
}

/// How a job that sent an email records it.
enum Record {
    /// On the one request it read (see [`note_seen`]), ending the job in
    /// the same write.
    Seen(Box<Seen>, Finish),
    /// On every request it emailed about, in one transaction, ending the job
    /// in it.
    All(Finish),
    /// On one request; the job goes on (a follow-up).
    Note(TenantId, RequestId),
}

/// Issue a link for `target`, email it with `requests`, and record it.
async fn mail_link(
    ctx: &JobContext,
    tenant: &Tenant,
    target: LinkTarget,
    requests: &[ErasureRequest],
    now: DateTime<Utc>,
    reminder: bool,
    record: Record,
) -> Result<Done, JobError> {
    let contact = tenant
        .settings
        .contact
        .clone()
        .ok_or_else(|| JobError::Permanent("the tenant has no privacy contact".into()))?;
    let token = Secret::generate(TOKEN_PREFIX);
    let expires_at = now + Duration::days(i64::from(ctx.workflow.link_ttl_days));
    let digest = token.digest();
    let tenant_id = tenant.id;
    let row = approvals::plan(tenant_id, target, &digest, now, expires_at);
    let link_id = row.id.clone();
    if let LinkWrite::Alone(row) = ctx.store.write_link(row).await? {
        ctx.store
            // One statement on PostgreSQL: no transaction around it.
            .write_self_contained(move |conn| approvals::insert(conn, &row))
            .await?;
    }
    let link = ctx
        .public_url
        .join(&format!("approvals/{}", token.expose()))
        .map_err(|e| JobError::Permanent(format!("LETHE_PUBLIC_URL cannot form a link: {e}")))?;
    let email = views::approval(&ApprovalMail {
        tenant,
        to: &contact.email,
        requests,
        link: link.as_str(),
        expires_at,
        reminder,
        subject_prefix: &ctx.subject_prefix,
    })
    .map_err(|e| JobError::Permanent(format!("the email could not be rendered: {e}")))?;
    ctx.mailer.send(email).await.map_err(mail_error)?;
    let what = if reminder {
        "approval_reminder_sent"
    } else {
        "approval_email_sent"
    };
    let detail = serde_json::json!({ "link_id": link_id });
    Ok(match record {
        Record::Seen(seen, finish) => note_seen(ctx, *seen, what, detail, finish).await,
        Record::Note(tenant, id) => {
            note(ctx, tenant, id, what, detail).await;
            Done::ToRecord
        }
        Record::All(finish) => {
            let ids = requests.iter().map(|r| r.id).collect();
            note_all(ctx, tenant.id, ids, what, detail, Some(finish)).await
        }
    })
}

pub(super) async fn send_for_request(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
    reminder: bool,
    ahead: Option<requests::Ahead>,
) -> Result<Done, JobError> {
    let (seen, tenant) = match ahead {
        Some(a) => (a.seen, a.tenant),
        None => load(ctx, request_of(job)?).await?,
    };
    let request = seen.request()?;
    if request.state != RequestState::AwaitingApproval {
        return Ok(Done::ToRecord); // decided or withdrawn meanwhile: nothing to ask
    }
    let target = LinkTarget::Request(request.id);
    mail_link(
        ctx,
        &tenant,
        target,
        std::slice::from_ref(&request),
        now,
        reminder,
        Record::Seen(Box::new(seen), Finish::of(job, now)),
    )
    .await
}

fn batch_of(job: &JobRow) -> Result<(TenantId, BatchId), JobError> {
    let p = payload(job)?;
    let batch = p["batch_id"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| JobError::Permanent("the job names no batch".into()))?;
    Ok((tenant_of(job)?, batch))
}

pub(super) async fn send_for_batch(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
    reminder: bool,
) -> Result<Done, JobError> {
    let (tenant_id, batch) = batch_of(job)?;
    let (items, tenant) = ctx
        .store
        .read(move |conn| {
            Ok((
                requests::batch_awaiting(conn, tenant_id, batch)?,
                tenants::get(conn, tenant_id)?,
            ))
        })
        .await?;
    if items.is_empty() {
        return Ok(Done::ToRecord);
    }
    mail_link(
        ctx,
        &tenant,
        LinkTarget::Batch(batch),
        &items,
        now,
        reminder,
        Record::All(Finish::of(job, now)),
    )
    .await
}

pub(super) async fn remind(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    if job.request_id.is_some() {
        send_for_request(ctx, job, now, true, None).await
    } else {
        send_for_batch(ctx, job, now, true).await
    }
}

pub(super) async fn escalate(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let request = load(ctx, request_of(job)?).await?.0.request()?;
    if !request.state.keeps_account_active() {
        return Ok(()); // decided meanwhile
    }
    escalate_request(ctx, &request, now).await
}

/// Flag an undecided request for support, once, and record it.
async fn escalate_request(
    ctx: &JobContext,
    request: &ErasureRequest,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let id = request.id;
    let first = ctx
        .store
        .write(move |conn| requests::mark_escalated(conn, id, now))
        .await?;
    if first {
        tracing::warn!(request = %id, "undecided request near its deadline: escalated to support");
        note(
            ctx,
            request.tenant_id,
            id,
            "escalated_to_support",
            serde_json::json!({ "due_at": request.due_at }),
        )
        .await;
    }
    Ok(())
}

fn progress_of(job: &JobRow) -> Result<FollowUpProgress, JobError> {
    serde_json::from_value(payload(job)?)
        .map_err(|e| JobError::Permanent(format!("bad follow-up payload: {e}")))
}

fn undecided(request: &ErasureRequest) -> Undecided {
    Undecided {
        due_at: request.due_at,
        escalated: request.escalated_at.is_some(),
    }
}

/// A request's follow-up: send the reminder or escalate, whichever is due,
/// then move the job on to its next step in the same row (or end it when
/// none is left or the request was decided). A step that fails is retried
/// as the job; one that fails for good is skipped ([`on_dead`]).
pub(super) async fn follow_up(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    let progress = progress_of(job)?;
    let (seen, tenant) = load(ctx, request_of(job)?).await?;
    let request = seen.request()?;
    if !request.state.keeps_account_active() {
        return Ok(Done::ToRecord); // decided or withdrawn: nothing to follow up
    }
    let schedule = ctx.workflow.schedule();
    let mut open = undecided(&request);
    let step = progress.due(&open, &schedule, now);
    match step {
        Some(FollowUpStep::Remind(_)) if request.state == RequestState::AwaitingApproval => {
            mail_link(
                ctx,
                &tenant,
                LinkTarget::Request(request.id),
                std::slice::from_ref(&request),
                now,
                true,
                Record::Note(request.tenant_id, request.id),
            )
            .await?;
        }
        Some(FollowUpStep::Remind(_)) | None => {}
        Some(FollowUpStep::Escalate) => {
            escalate_request(ctx, &request, now).await?;
            open.escalated = true;
        }
    }
    let progress = step.map_or(progress, |s| progress.after(s));
    let Some(next) = progress.next(&open, &schedule) else {
        return Ok(Done::ToRecord);
    };
    let id = job.id.clone();
    ctx.store
        .write(move |conn| crate::store::jobs::move_on(conn, &id, &next))
        .await?;
    Ok(Done::Recorded)
}

/// A follow-up's step failed for good: the steps after it still come (an
/// undeliverable reminder must not keep support from hearing of the
/// deadline), in a job of their own beside the buried one. The step that
/// failed, if the request is still undecided.
async fn follow_up_after_dead(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
) -> Result<Option<FollowUpStep>, StoreError> {
    let (Ok(progress), Ok(id)) = (progress_of(job), request_of(job)) else {
        return Ok(None);
    };
    let Ok(request) = ctx
        .store
        .read(move |conn| requests::get_any(conn, id))
        .await
    else {
        return Ok(None);
    };
    if !request.state.keeps_account_active() {
        return Ok(None);
    }
    let schedule = ctx.workflow.schedule();
    let mut open = undecided(&request);
    let failed = progress.due(&open, &schedule, now);
    let progress = match failed {
        Some(step) => {
            open.escalated |= step == FollowUpStep::Escalate;
            progress.after(step)
        }
        None => progress,
    };
    if let Some(next) = progress.next(&open, &schedule) {
        let row = JobRow::planned(&next, Some(request.tenant_id), Some(request.id), now);
        ctx.store
            .write(move |conn| crate::store::jobs::enqueue(conn, std::slice::from_ref(&row)))
            .await?;
    }
    Ok(failed)
}

/// A job is buried: make an undeliverable approval email visible.
pub(super) async fn on_dead(
    ctx: &JobContext,
    kind: JobKind,
    job: &JobRow,
    permanent: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if kind == JobKind::ApprovalFollowUp {
        // Only a reminder's failure says the contact cannot be reached.
        let failed = follow_up_after_dead(ctx, job, now).await?;
        if !matches!(failed, Some(FollowUpStep::Remind(_))) {
            return Ok(());
        }
    } else if !matches!(
        kind,
        JobKind::SendApprovalEmail | JobKind::SendBatchApprovalEmail | JobKind::ApprovalReminder
    ) {
        return Ok(());
    }
    let ids: Vec<(TenantId, RequestId)> = match (request_of(job), batch_of(job)) {
        (Ok(id), _) => match ctx
            .store
            .read(move |conn| requests::get_any(conn, id))
            .await
        {
            Ok(r) => vec![(r.tenant_id, r.id)],
            Err(_) => vec![],
        },
        (_, Ok((tenant, batch))) => ctx
            .store
            .read(move |conn| requests::batch_awaiting(conn, tenant, batch))
            .await?
            .into_iter()
            .map(|r| (r.tenant_id, r.id))
            .collect(),
        _ => vec![],
    };
    for (tenant, id) in ids {
        ctx.store
            .write(move |conn| requests::mark_delivery_failed(conn, id, now))
            .await?;
        let class = if permanent {
            "rejected_by_mail_server"
        } else {
            "retries_exhausted"
        };
        note(
            ctx,
            tenant,
            id,
            "approval_email_failed",
            serde_json::json!({ "failure": class, "job": kind.as_str() }),
        )
        .await;
    }
    Ok(())
}
