//! Manual erasure targets: email the owner a link to confirm by hand, and
//! remind them until they do.

use chrono::{DateTime, Duration, Utc};

use super::approval::note;
use super::{payload, request_of, JobContext, JobError};
use crate::domain::outbox::JobKind;
use crate::domain::request::ErasureRequest;
use crate::domain::secret::Secret;
use crate::domain::target::{CallStatus, LINK_PREFIX};
use crate::domain::values::EmailAddress;
use crate::domain::RequestState;
use crate::email::views::{self, OwnerMail};
use crate::email::SendError;
use crate::store::jobs::{self, JobRow};
use crate::store::targets::{self, TargetRow};
use crate::store::{requests, target_links, tenants};

/// Ask the owner of `target` to erase `request`'s data: a fresh link by
/// email, the call marked as waiting for them, the next reminder queued.
pub(super) async fn ask(
    ctx: &JobContext,
    request: &ErasureRequest,
    target: &TargetRow,
    now: DateTime<Utc>,
    reminder: bool,
) -> Result<(), JobError> {
    let owner = target
        .owner_email
        .as_deref()
        .and_then(|o| EmailAddress::parse("owner_email", o).ok())
        .ok_or_else(|| JobError::Permanent("the manual target has no owner address".into()))?;
    let (tenant_id, id, target_id) = (request.tenant_id, request.id, target.id.clone());
    let tenant = ctx
        .store
        .read(move |conn| tenants::get(conn, tenant_id))
        .await?;
    let token = Secret::generate(LINK_PREFIX);
    let digest = token.digest();
    let expires_at = now + Duration::days(i64::from(ctx.workflow.link_ttl_days));
    let tid = target_id.clone();
    let link_id = ctx
        .store
        .write(move |conn| {
            target_links::create(conn, tenant_id, id, &tid, &digest, now, expires_at)
        })
        .await?;
    let link = ctx
        .public_url
        .join(&format!("erasure-confirmations/{}", token.expose()))
        .map_err(|e| JobError::Permanent(format!("LETHE_PUBLIC_URL cannot form a link: {e}")))?;
    let email = views::owner_task(&OwnerMail {
        tenant: &tenant,
        to: &owner,
        system: &target.name,
        request,
        link: link.as_str(),
        expires_at,
        reminder,
        subject_prefix: &ctx.subject_prefix,
    })
    .map_err(|e| JobError::Permanent(format!("the email could not be rendered: {e}")))?;
    ctx.mailer.send(email).await.map_err(|e| match e {
        SendError::Permanent(m) => JobError::Permanent(m),
        SendError::Temporary(m) => JobError::Retry(m),
    })?;
    let every = ctx.workflow.owner_reminder_days;
    let tid = target_id.clone();
    ctx.store
        .write(move |conn| {
            if !reminder {
                targets::record(
                    conn,
                    id,
                    &tid,
                    CallStatus::Accepted,
                    None,
                    Some("waiting for the owner to confirm"),
                    now,
                )?;
            }
            if every > 0 {
                let next = JobRow::new(
                    JobKind::TargetOwnerReminder,
                    Some(tenant_id),
                    Some(id),
                    serde_json::json!({ "target_id": tid }),
                    now + Duration::days(i64::from(every)),
                );
                jobs::enqueue(conn, std::slice::from_ref(&next))?;
            }
            Ok(())
        })
        .await?;
    let what = if reminder {
        "owner_reminder_sent"
    } else {
        "owner_asked"
    };
    note(
        ctx,
        tenant_id,
        id,
        what,
        serde_json::json!({ "target_id": target_id, "link_id": link_id }),
    )
    .await;
    Ok(())
}

/// A reminder is due: send one (and queue the next) while the owner has not
/// answered and the request is still being erased.
pub(super) async fn remind(
    ctx: &JobContext,
    job: &JobRow,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let id = request_of(job)?;
    let target_id = payload(job)?["target_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JobError::Permanent("the job names no target".into()))?;
    let (request, target, call) = ctx
        .store
        .read(move |conn| {
            let r = requests::get_any(conn, id)?;
            let t = targets::find(conn, r.tenant_id, &target_id)?;
            let c = targets::call(conn, id, &target_id)?;
            Ok((r, t, c))
        })
        .await?;
    if request.state != RequestState::Erasing
        || call.status() != CallStatus::Accepted
        || !target.enabled
    {
        return Ok(()); // answered, or no longer asked: the reminders stop
    }
    ask(ctx, &request, &target, now, true).await
}
