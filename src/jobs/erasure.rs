//! Telling erasure targets and platforms, scrubbing, and the receipt email.

use chrono::{DateTime, Duration, Utc};

use super::answers::Moved;
use super::approval::note_seen;
use super::{payload, request_of, tenant_of, Done, Finish, JobContext, JobError};
use crate::domain::audit::Actor;
use crate::domain::outbox::JobKind;
use crate::domain::signature;
use crate::domain::state::transition;
use crate::domain::target::{classify, Answer, CallStatus, TargetKind};
use crate::domain::{Event, RequestId, RequestState};
use crate::email::views;
use crate::email::SendError;
use crate::store::job_writes::JobWrite;
use crate::store::jobs::{self, JobRow};
use crate::store::requests::{self, Change, Held, Note};
use crate::store::{receipts, targets, tenants, Backend, StoreError};

const USER_AGENT: &str = concat!("lethe/", env!("CARGO_PKG_VERSION"));

/// Move the held request to `erased` once every target has confirmed. Call
/// it in the transaction that recorded a confirmation, after recording it,
/// holding the request from before that record: confirmations of two targets
/// committing at once must not both miss each other. Under READ COMMITTED,
/// two transactions that each record their own call and then read all calls
/// see neither the other's confirmation, and the request would stay
/// `erasing` for good; holding the row makes the second wait for the first
/// to commit, and its next statement sees both.
pub fn complete_if_done(
    conn: &mut crate::store::Conn<'_>,
    held: &mut Held,
    id: RequestId,
    workflow: &crate::domain::outbox::WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    // Neither erasing nor failed (erased already, or cancelled): nothing to
    // ask the calls.
    let all =
        transition(held.state()?, Event::Complete).is_ok() && targets::all_confirmed(conn, id)?;
    complete_if(conn, held, all, workflow, now)
}

/// Move the held request to `erased` if `all_confirmed` (and its state
/// allows).
fn complete_if(
    conn: &mut crate::store::Conn<'_>,
    held: &mut Held,
    all_confirmed: bool,
    workflow: &crate::domain::outbox::WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !all_confirmed || transition(held.state()?, Event::Complete).is_err() {
        return Ok(false);
    }
    requests::apply_held(
        conn,
        held,
        Change {
            event: Event::Complete,
            actor: &Actor::system("targets"),
            detail: None,
            decision: None,
        },
        workflow,
        now,
    )?;
    Ok(true)
}

/// Give up on a held request's erasure: support must act.
pub fn fail(
    conn: &mut crate::store::Conn<'_>,
    held: &mut Held,
    target: &str,
    workflow: &crate::domain::outbox::WorkflowPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if held.state()? != RequestState::Erasing {
        return Ok(());
    }
    requests::apply_held(
        conn,
        held,
        Change {
            event: Event::Fail,
            actor: &Actor::system("targets"),
            detail: Some(serde_json::json!({ "target_id": target }).to_string()),
            decision: None,
        },
        workflow,
        now,
    )?;
    Ok(())
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let secs: i64 = v.trim().parse().ok()?;
    Some(Duration::seconds(secs.clamp(1, 86_400)))
}

pub(super) async fn call_target(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
    now: DateTime<Utc>,
    ahead: Option<requests::Ahead>,
) -> Result<Done, JobError> {
    let id = request_of(job)?;
    let target_id = payload(job)?["target_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JobError::Permanent("the job names no target".into()))?;
    let t_id = target_id.clone();
    let read = match ahead.and_then(|a| a.call_to(&target_id)) {
        Some(read) => read,
        None => {
            ctx.store
                .read(move |conn| requests::get_seen_with_call(conn, id, &t_id))
                .await?
        }
    };
    let requests::SeenCall {
        seen,
        call,
        target,
        others_unconfirmed,
        notify_subject,
    } = read;
    let request = seen.request()?;
    if request.state != RequestState::Erasing
        || matches!(call.status(), CallStatus::Confirmed | CallStatus::Accepted)
    {
        return Ok(Done::ToRecord); // nothing (more) to ask of this target
    }
    if target.kind() == TargetKind::Manual {
        return super::owners::ask(ctx, &request, &target, now, false)
            .await
            .map(|()| Done::ToRecord);
    }
    let secret = ctx
        .sealer
        .open(&target.secret_box)
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "erasure.requested",
        "request_id": request.id,
        "tenant_id": request.tenant_id,
        "subject_id": request.subject_id.as_ref().map(|s| s.as_str()),
        "target": target.name,
        "initiator": request.initiator,
        "approved_at": request.approved_at,
        "scope": {
            "tenant_id": request.tenant_id,
            "per_tenant": true,
            "description": "Erase this subject's personal data held for this tenant only. Content the subject shared with others stays with its recipients; decide per record."
        },
        "confirm_url": ctx.public_url.join(&format!("v1/erasure-requests/{}/targets/{}/confirm", request.id, target.id)).map(|u| u.to_string()).ok(),
    }))
    .map_err(|e| JobError::Permanent(e.to_string()))?;
    let sig = signature::sign(&secret, Utc::now().timestamp(), &body);
    let started = std::time::Instant::now();
    let sent = ctx
        .http
        .post(&target.url)
        .timeout(std::time::Duration::from_millis(
            target.timeout_ms.max(100) as u64
        ))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header(signature::HEADER, sig)
        .header("Idempotency-Key", format!("{}:{}", request.id, target.id))
        .body(body)
        .send()
        .await;
    let tenant = request.tenant_id;
    let workflow = ctx.workflow.clone();
    let outcome = match &sent {
        Err(e) if e.is_timeout() => "timeout",
        Err(_) => "connection_error",
        Ok(r) => match classify(r.status().as_u16()) {
            Answer::Erased => "erased",
            Answer::Accepted => "accepted",
            Answer::Retry => "retry",
            Answer::Refused => "refused",
        },
    };
    crate::metrics::target_call(outcome, started.elapsed().as_secs_f64());
    let (status, code, error, answer) = match sent {
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "could not connect"
            };
            (
                CallStatus::Pending,
                None,
                Some(kind.to_owned()),
                Answer::Retry,
            )
        }
        Ok(resp) => {
            let code = resp.status().as_u16();
            let answer = classify(code);
            let wait = retry_after(&resp);
            let status = match answer {
                Answer::Erased => CallStatus::Confirmed,
                Answer::Accepted => CallStatus::Accepted,
                Answer::Retry => CallStatus::Pending,
                Answer::Refused => CallStatus::Failed,
            };
            if let (Answer::Retry, Some(wait)) = (answer, wait) {
                let tid = target_id.clone();
                ctx.store
                    .write(move |conn| {
                        targets::record(
                            conn,
                            id,
                            &tid,
                            status,
                            Some(code),
                            Some("retry later"),
                            now,
                        )
                    })
                    .await?;
                return Err(JobError::RetryAt(
                    now.max(Utc::now()) + wait,
                    format!("target answered {code}"),
                ));
            }
            (status, Some(code), Some(format!("HTTP {code}")), answer)
        }
    };
    let what = match answer {
        Answer::Erased => Some("target_confirmed"),
        Answer::Accepted => Some("target_accepted"),
        Answer::Refused => Some("target_refused"),
        Answer::Retry => None,
    };
    let tid = target_id.clone();
    let err_text = error.clone();
    // An answer that settles the call finishes the job in the same write.
    let finish = what.is_some().then(|| Finish::of(job, now));
    let detail = serde_json::json!({ "target_id": tid, "status_code": code }).to_string();
    let on_pg = ctx.store.backend() == Backend::Postgres;
    // On PostgreSQL, an answer that settles the call waits for the other
    // answers to this request being written here, and writes on the request
    // as the last of them left it (see `answers`).
    let mut turn = match (on_pg, what) {
        (true, Some(_)) => Some(ctx.answers.turn(id).await),
        _ => None,
    };
    let (mut seen, mut others_unconfirmed) = (seen, others_unconfirmed);
    if let Some(last) = turn
        .as_mut()
        .and_then(|t| t.take_after(seen.head().0, &target_id))
    {
        if last.confirmed {
            others_unconfirmed = (others_unconfirmed - 1).max(0);
        }
        seen = last.after;
    }
    let confirmed = status == CallStatus::Confirmed;
    // On PostgreSQL, first with other jobs' writes as one statement (see
    // `store::job_writes`), on the request as read; then alone.
    let mut tries: &[bool] = &[false, true];
    if let (true, Some(what), Some(finish)) = (on_pg, what, &finish) {
        let answer = requests::Answer {
            target: &target_id,
            status,
            code,
            error: error.as_deref(),
            what,
            detail: Some(detail.clone()),
        };
        let from_seq = seen.head().0;
        let planned = requests::plan_answer(
            None,
            &seen,
            others_unconfirmed,
            Some(notify_subject),
            answer,
            &workflow,
            now,
            finish.end(),
        )?;
        if let Some(write) = planned {
            match ctx.store.write_seen(write).await? {
                JobWrite::Written(w) => {
                    if let Some(mut turn) = turn {
                        turn.leave(Some(Moved {
                            from_seq,
                            after: w.after(),
                            target: target_id.clone(),
                            confirmed,
                        }));
                    }
                    return Ok(Done::Recorded);
                }
                // Moved: read it again (below) before the next try.
                JobWrite::Moved(_) => tries = &[true],
                JobWrite::Alone(_) => {}
            }
        }
    }
    let moved = ctx
        .store
        .write_self_contained(move |conn| {
            // On PostgreSQL, the request as read before the call (or as the
            // answer before this one left it), unmoved: one statement. An
            // answer written by another process meanwhile moves it first:
            // then read it again (one statement) and try once more before
            // holding it. SQLite's one writer holds everything anyway: a
            // hold is a read there, and a missed compare-and-set would only
            // add work to the writer.
            if let (true, Some(what), Some(finish)) = (on_pg, what, &finish) {
                for &again in tries {
                    if again {
                        let read = requests::get_seen_with_call(conn, id, &tid)?;
                        if read.call.status() != CallStatus::Pending {
                            break; // settled meanwhile: the held write sorts it out
                        }
                        (seen, others_unconfirmed) = (read.seen, read.others_unconfirmed);
                    }
                    let answer = requests::Answer {
                        target: &tid,
                        status,
                        code,
                        error: err_text.as_deref(),
                        what,
                        detail: Some(detail.clone()),
                    };
                    let from_seq = seen.head().0;
                    if let Some(after) = requests::answer_if_unmoved(
                        conn,
                        &seen,
                        others_unconfirmed,
                        answer,
                        &workflow,
                        now,
                        finish.end(),
                    )? {
                        return Ok(Some(Moved {
                            from_seq,
                            after,
                            target: tid,
                            confirmed,
                        }));
                    }
                }
            }
            // The answer, its audit event and what follows from it (erased,
            // failed) in one transaction, as a late confirmation does.
            conn.atomic(|conn| {
                // First, so that the other targets' answers to this request
                // wait for this one (and the audit chain never sees two
                // writers).
                let mut held = requests::hold(conn, tenant, id)?;
                let all_confirmed = targets::record_confirming(
                    conn,
                    id,
                    &tid,
                    status,
                    code,
                    err_text.as_deref(),
                    now,
                )?;
                if let Some(what) = what {
                    // The job ends with the note (`finish` is there exactly
                    // when `what` is).
                    let note = Note {
                        what,
                        actor: &Actor::system("worker"),
                        detail: Some(detail),
                        now,
                        finish: finish.as_ref().map(Finish::end),
                    };
                    requests::note_held(conn, &mut held, note)?;
                }
                match answer {
                    Answer::Erased => {
                        complete_if(conn, &mut held, all_confirmed, &workflow, now)?;
                    }
                    Answer::Refused => fail(conn, &mut held, &tid, &workflow, now)?,
                    _ => {}
                }
                Ok(None)
            })
        })
        .await?;
    // The next answer waiting takes the request as this one left it (or,
    // after a held write, reads it again).
    if let Some(mut turn) = turn {
        turn.leave(moved);
    }
    if what.is_none() {
        return Err(JobError::Retry(format!(
            "target {}: {}",
            target.name,
            error.unwrap_or_default()
        )));
    }
    Ok(Done::Recorded)
}

/// Retries ran out for a target: mark it failed and the request with it.
pub(super) async fn on_call_dead(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (Ok(id), Ok(p)) = (request_of(job), payload(job)) else {
        return Ok(());
    };
    let Some(target) = p["target_id"].as_str().map(str::to_owned) else {
        return Ok(());
    };
    let workflow = ctx.workflow.clone();
    ctx.store
        .write(move |conn| {
            let mut held = requests::hold_any(conn, id)?;
            targets::record(
                conn,
                id,
                &target,
                CallStatus::Failed,
                None,
                Some("retries exhausted"),
                now,
            )?;
            fail(conn, &mut held, &target, &workflow, now)
        })
        .await
}

/// A callback URL that names an inside address (an IP literal, which no
/// resolver sees) is never called unless the operator allows it.
pub(super) fn refuse_inside(ctx: &JobContext, url: &str) -> Result<(), JobError> {
    let parsed = url::Url::parse(url).map_err(|e| JobError::Permanent(e.to_string()))?;
    if !ctx.callbacks_allow_private && crate::domain::egress::names_inside(&parsed) {
        return Err(JobError::Permanent(
            "the callback URL names a private address (LETHE_CALLBACKS_ALLOW_PRIVATE is off)"
                .into(),
        ));
    }
    Ok(())
}

pub(super) async fn callback(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
) -> Result<(), JobError> {
    let id = request_of(job)?;
    let p = payload(job)?;
    let (request, sealed) = ctx
        .store
        .read(move |conn| {
            let r = requests::get_any(conn, id)?;
            let s = tenants::callback_secret(conn, r.tenant_id)?;
            Ok((r, s))
        })
        .await?;
    let Some(url) = request.callback_url.clone() else {
        return Ok(());
    };
    let secret = match sealed {
        Some(s) => ctx
            .sealer
            .open(&s)
            .map_err(|e| JobError::Permanent(e.to_string()))?,
        None => {
            return Err(JobError::Permanent(
                "the tenant has no callback secret".into(),
            ))
        }
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "type": "erasure_request.state_changed",
        "request_id": request.id,
        "tenant_id": request.tenant_id,
        "previous_state": p["from"],
        "state": p["to"],
        "at": p["at"],
        "keep_account_active": p["to"].as_str().and_then(|s| s.parse::<RequestState>().ok()).map(|s| s.keeps_account_active()),
    }))
    .map_err(|e| JobError::Permanent(e.to_string()))?;
    let sig = signature::sign(&secret, Utc::now().timestamp(), &body);
    refuse_inside(ctx, url.as_str())?;
    let resp = ctx
        .callback_http
        .post(url.as_str())
        .timeout(std::time::Duration::from_secs(10))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header(signature::HEADER, sig)
        .header("Idempotency-Key", job.id.clone())
        .body(body)
        .send()
        .await
        .map_err(|e| {
            JobError::Retry(if e.is_timeout() {
                "timed out".into()
            } else {
                "could not connect".into()
            })
        })?;
    match classify(resp.status().as_u16()) {
        Answer::Erased | Answer::Accepted => Ok(()),
        Answer::Retry => Err(JobError::Retry(format!(
            "callback answered {}",
            resp.status().as_u16()
        ))),
        Answer::Refused => Err(JobError::Permanent(format!(
            "callback answered {}",
            resp.status().as_u16()
        ))),
    }
}

/// How long a scrub waits for the subject's email (see [`scrub`]).
const SCRUB_WAITS_FOR_NOTICE: Duration = Duration::hours(1);

pub(super) async fn scrub(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
    now: DateTime<Utc>,
) -> Result<Done, JobError> {
    let id = request_of(job)?;
    let tenant = tenant_of(job).ok();
    let finish = Finish::of(job, now);
    // The scrub, its audit event and the job's end in one transaction.
    ctx.store
        .write(move |conn| {
            // An email to the subject still to go out (the erasure's notice,
            // due with this scrub) needs their address: a new scrub an hour
            // on, as long as that email is queued or being retried. (A retry
            // of this job would use up its attempts waiting.)
            if jobs::has_unfinished(conn, id, JobKind::NotifySubject)? {
                let mut later =
                    JobRow::new(JobKind::Scrub, tenant, Some(id), serde_json::json!({}), now);
                later.run_at = (now + SCRUB_WAITS_FOR_NOTICE).naive_utc();
                jobs::enqueue(conn, &[later])?;
                return finish.record(conn);
            }
            match requests::scrub(conn, id, now)? {
                Some(mut held) => {
                    let note = Note {
                        what: requests::SCRUBBED,
                        actor: &Actor::system("worker"),
                        detail: Some("{}".to_owned()),
                        now,
                        finish: Some(finish.end()),
                    };
                    requests::note_held(conn, &mut held, note)
                }
                None => finish.record(conn),
            }
        })
        .await?;
    Ok(Done::Recorded)
}

pub(super) async fn send_receipt(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
    now: DateTime<Utc>,
    ahead: Option<requests::Ahead>,
) -> Result<Done, JobError> {
    let (id, tenant_id) = (request_of(job)?, tenant_of(job)?);
    let (seen, tenant, calls) = match ahead {
        Some(a) => {
            let calls = a.call_rows();
            (a.seen, a.tenant, calls)
        }
        None => {
            ctx.store
                .read(move |conn| requests::get_seen_any_with_tenant_and_calls(conn, id))
                .await?
        }
    };
    if tenant.id != tenant_id {
        return Err(StoreError::NotFound.into());
    }
    let body = receipts::body_with_calls(&seen, &calls)?;
    let (Some(body), Some(contact)) = (body, tenant.settings.contact.clone()) else {
        return Ok(Done::ToRecord); // no approval contact (policy none): nobody to send it to
    };
    // The signed receipt lives only as long as its rendering: a job that
    // waits for its note's group afterwards holds neither.
    let email = views::receipt(
        &tenant,
        &contact.email,
        &ctx.signer.sign(body),
        &ctx.subject_prefix,
    )
    .map_err(|e| JobError::Permanent(format!("the email could not be rendered: {e}")))?;
    ctx.mailer.send(email).await.map_err(|e| match e {
        SendError::Permanent(m) => JobError::Permanent(m),
        SendError::Temporary(m) => JobError::Retry(m),
    })?;
    let finish = Finish::of(job, now);
    Ok(note_seen(ctx, seen, "receipt_sent", serde_json::json!({}), finish).await)
}
