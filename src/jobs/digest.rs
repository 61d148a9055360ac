//! The support team's daily digest. The next day's digest is queued before
//! this one is sent, so a failed send never ends the series.

use chrono::{DateTime, Utc};

use super::{JobContext, JobError};
use crate::email::SendError;
use crate::store::support::{digest, queue};

/// Requests listed per section; the counts cover all of them.
const LIST_LEN: i64 = 20;

pub(super) async fn send(ctx: &JobContext, now: DateTime<Utc>) -> Result<(), JobError> {
    let Some(policy) = ctx.support_digest.clone() else {
        return Ok(()); // turned off since it was queued: the series ends
    };
    let hour = policy.hour;
    ctx.store
        .write(move |conn| digest::schedule(conn, hour, now))
        .await?;
    let data = ctx
        .store
        .read(move |conn| queue::digest(conn, now, LIST_LEN))
        .await?;
    let email = crate::email::digest::digest(&policy.to, &data, &ctx.public_url, now)
        .map_err(|e| JobError::Permanent(format!("the digest could not be rendered: {e}")))?;
    ctx.mailer.send(email).await.map_err(|e| match e {
        SendError::Permanent(m) => JobError::Permanent(m),
        SendError::Temporary(m) => JobError::Retry(m),
    })
}
