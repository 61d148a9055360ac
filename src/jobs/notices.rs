//! Emails to the data subject about their own request.

use chrono::{DateTime, Utc};

use super::approval::note_seen;
use super::{payload, request_of, Done, Finish, JobContext, JobError};
use crate::domain::outbox::SubjectNotice;
use crate::email::{views, SendError};
use crate::store::{requests, support};

pub(super) async fn send(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    let notice: SubjectNotice = serde_json::from_value(payload(job)?["notice"].clone())
        .map_err(|e| JobError::Permanent(format!("bad notice: {e}")))?;
    let id = request_of(job)?;
    let (seen, tenant, extension_reason) = ctx
        .store
        .read(move |conn| {
            let (seen, t) = requests::get_seen_any_with_tenant(conn, id)?;
            let why = match notice {
                SubjectNotice::Extended => support::actions::extension_reason(conn, id)?,
                _ => None,
            };
            Ok((seen, t, why))
        })
        .await?;
    let request = seen.request()?;
    let Some(to) = request.subject_email.clone() else {
        return Ok(Done::ToRecord); // scrubbed meanwhile: nobody to tell
    };
    let email =
        views::notice_with_reason(&tenant, &to, &request, notice, extension_reason.as_deref())
            .map_err(|e| JobError::Permanent(format!("the email could not be rendered: {e}")))?;
    ctx.mailer.send(email).await.map_err(|e| match e {
        SendError::Permanent(m) => JobError::Permanent(m),
        SendError::Temporary(m) => JobError::Retry(m),
    })?;
    let detail = serde_json::json!({ "notice": notice });
    let finish = Finish::of(job, now);
    Ok(note_seen(ctx, seen, "subject_notified", detail, finish).await)
}
