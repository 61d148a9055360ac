//! Signed OpenDSR status callbacks: the spec's callback body, signed with the
//! processor key (RSA PKCS#1 v1.5, SHA-256) over the raw body.

use super::{payload, request_of, JobContext, JobError};
use crate::domain::target::{classify, Answer};
use crate::store::requests;

const USER_AGENT: &str = concat!("lethe/", env!("CARGO_PKG_VERSION"));

/// The header names of a flavour of the protocol.
pub fn headers(opengdpr: bool) -> (&'static str, &'static str) {
    if opengdpr {
        ("X-OpenGDPR-Processor-Domain", "X-OpenGDPR-Signature")
    } else {
        ("X-OpenDSR-Processor-Domain", "X-OpenDSR-Signature")
    }
}

pub(super) async fn callback(
    ctx: &JobContext,
    job: &crate::store::jobs::JobRow,
) -> Result<(), JobError> {
    let id = request_of(job)?;
    let p = payload(job)?;
    let key = ctx.opendsr.clone().ok_or_else(|| {
        JobError::Retry(
            "OpenDSR callbacks need LETHE_OPENDSR_KEY_FILE and LETHE_OPENDSR_CERT_FILE".into(),
        )
    })?;
    let url = p["status_callback_url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JobError::Permanent("the job names no callback URL".into()))?;
    let request = ctx
        .store
        .read(move |conn| requests::get_any(conn, id))
        .await?;
    let body = serde_json::to_vec(&serde_json::json!({
        "controller_id": request.tenant_id,
        "expected_completion_time": request.due_at,
        "status_callback_url": url,
        "subject_request_id": p["subject_request_id"],
        "request_status": p["request_status"],
        "api_version": crate::domain::opendsr::API_VERSION,
    }))
    .map_err(|e| JobError::Permanent(e.to_string()))?;
    let (domain_header, signature_header) = headers(p["opengdpr"].as_bool().unwrap_or(false));
    super::erasure::refuse_inside(ctx, &url)?;
    let resp = ctx
        .callback_http
        .post(&url)
        .timeout(std::time::Duration::from_secs(10))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header(
            domain_header,
            ctx.public_url.host_str().unwrap_or("localhost"),
        )
        .header(signature_header, key.sign(&body))
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
    let code = resp.status().as_u16();
    match classify(code) {
        Answer::Erased | Answer::Accepted => Ok(()),
        Answer::Retry => Err(JobError::Retry(format!("callback answered {code}"))),
        Answer::Refused => Err(JobError::Permanent(format!("callback answered {code}"))),
    }
}
