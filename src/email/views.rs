//! Email bodies, rendered from askama templates (compiled in: a broken
//! template fails the build, not a send).

use askama::Template;
use chrono::{DateTime, Utc};

use super::owner_texts::{owner_texts, OwnerTexts};
use super::texts::{initiator_label, rejection_label, texts, Texts};
use super::OutgoingEmail;
use crate::domain::approval::RejectionCode;
use crate::domain::outbox::SubjectNotice;
use crate::domain::request::ErasureRequest;
use crate::domain::tenant::{Locale, Tenant};
use crate::domain::values::EmailAddress;

pub fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub fn date_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// One request as emails and pages show it.
pub struct ItemView {
    pub id: String,
    pub subject_id: String,
    pub initiator: &'static str,
    pub reason: Option<String>,
    pub received: String,
    pub due: String,
}

impl ItemView {
    pub fn new(r: &ErasureRequest, locale: Locale) -> Self {
        Self {
            id: r.id.to_string(),
            subject_id: r
                .subject_id
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|| "—".to_owned()),
            initiator: initiator_label(locale, r.initiator),
            reason: r.reason.clone(),
            received: date_time(r.received_at),
            due: date(r.due_at),
        }
    }
}

#[derive(Template)]
#[template(path = "email/approval.html")]
struct ApprovalHtml<'a> {
    t: &'a Texts,
    tenant: &'a str,
    contact: Option<&'a str>,
    items: &'a [ItemView],
    link: &'a str,
    expires: &'a str,
    reminder: bool,
}

#[derive(Template)]
#[template(path = "email/approval.txt")]
struct ApprovalText<'a> {
    t: &'a Texts,
    tenant: &'a str,
    contact: Option<&'a str>,
    items: &'a [ItemView],
    link: &'a str,
    expires: &'a str,
    reminder: bool,
}

/// What an approval email needs.
pub struct ApprovalMail<'a> {
    pub tenant: &'a Tenant,
    pub to: &'a EmailAddress,
    pub requests: &'a [ErasureRequest],
    pub link: &'a str,
    pub expires_at: DateTime<Utc>,
    pub reminder: bool,
    pub subject_prefix: &'a str,
}

pub fn approval(m: &ApprovalMail<'_>) -> Result<OutgoingEmail, askama::Error> {
    let locale = m.tenant.settings.locale;
    let t = texts(locale);
    let items: Vec<ItemView> = m
        .requests
        .iter()
        .map(|r| ItemView::new(r, locale))
        .collect();
    let contact = m
        .tenant
        .settings
        .contact
        .as_ref()
        .and_then(|c| c.name.as_ref())
        .map(|n| n.as_str());
    let expires = date_time(m.expires_at);
    let tenant = m.tenant.settings.name.as_str();
    let html = ApprovalHtml {
        t,
        tenant,
        contact,
        items: &items,
        link: m.link,
        expires: &expires,
        reminder: m.reminder,
    }
    .render()?;
    let text = ApprovalText {
        t,
        tenant,
        contact,
        items: &items,
        link: m.link,
        expires: &expires,
        reminder: m.reminder,
    }
    .render()?;
    let what = if items.len() == 1 {
        t.subject_one.to_owned()
    } else {
        format!("{} {}", items.len(), t.subject_many)
    };
    let reminder = if m.reminder {
        format!("{} ", t.subject_reminder)
    } else {
        String::new()
    };
    Ok(OutgoingEmail {
        to: m.to.clone(),
        subject: one_line(&format!("{} {reminder}{tenant}: {what}", m.subject_prefix)),
        text,
        html,
    })
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct NoticeHtml<'a> {
    t: &'a Texts,
    tenant: &'a str,
    body: &'a str,
    reason: Option<&'a str>,
    explanation: Option<&'a str>,
    request_id: &'a str,
    due: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeText<'a> {
    t: &'a Texts,
    tenant: &'a str,
    body: &'a str,
    reason: Option<&'a str>,
    explanation: Option<&'a str>,
    request_id: &'a str,
    due: Option<&'a str>,
}

/// A notice to the data subject about their own request.
pub fn notice(
    tenant: &Tenant,
    to: &EmailAddress,
    r: &ErasureRequest,
    kind: SubjectNotice,
) -> Result<OutgoingEmail, askama::Error> {
    notice_with_reason(tenant, to, r, kind, None)
}

/// A notice that carries a reason given by support (a deadline extension
/// must tell the subject why, GDPR Art. 12(3)).
pub fn notice_with_reason(
    tenant: &Tenant,
    to: &EmailAddress,
    r: &ErasureRequest,
    kind: SubjectNotice,
    given: Option<&str>,
) -> Result<OutgoingEmail, askama::Error> {
    let locale = tenant.settings.locale;
    let t = texts(locale);
    let (subject, body) = match kind {
        SubjectNotice::Received => (t.notice_received_subject, t.notice_received),
        SubjectNotice::Rejected => (t.notice_rejected_subject, t.notice_rejected),
        SubjectNotice::Erased => (t.notice_erased_subject, t.notice_erased),
        SubjectNotice::Extended => (t.notice_extended_subject, t.notice_extended),
    };
    let reason = match kind {
        SubjectNotice::Rejected => r
            .decision_code
            .as_deref()
            .and_then(RejectionCode::parse)
            .map(|c| rejection_label(locale, c)),
        _ => None,
    };
    let explanation = match kind {
        SubjectNotice::Rejected => r.decision_explanation.as_deref(),
        SubjectNotice::Extended => given,
        _ => None,
    };
    let due = date(r.due_at);
    let due =
        matches!(kind, SubjectNotice::Received | SubjectNotice::Extended).then_some(due.as_str());
    let tenant_name = tenant.settings.name.as_str();
    let id = r.id.to_string();
    let html = NoticeHtml {
        t,
        tenant: tenant_name,
        body,
        reason,
        explanation,
        request_id: &id,
        due,
    }
    .render()?;
    let text = NoticeText {
        t,
        tenant: tenant_name,
        body,
        reason,
        explanation,
        request_id: &id,
        due,
    }
    .render()?;
    Ok(OutgoingEmail {
        to: to.clone(),
        subject: one_line(&format!("{tenant_name}: {subject}")),
        text,
        html,
    })
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[derive(Template)]
#[template(path = "email/receipt.txt")]
struct ReceiptText<'a> {
    tenant: &'a str,
    r: &'a crate::domain::receipt::ReceiptBody,
    json: &'a str,
}

#[derive(Template)]
#[template(path = "email/receipt.html")]
struct ReceiptHtml<'a> {
    tenant: &'a str,
    r: &'a crate::domain::receipt::ReceiptBody,
    json: &'a str,
}

/// The certificate of erasure for the privacy contact (no personal data).
pub fn receipt(
    tenant: &Tenant,
    to: &EmailAddress,
    receipt: &crate::domain::receipt::Receipt,
    subject_prefix: &str,
) -> Result<OutgoingEmail, askama::Error> {
    let json = serde_json::to_string_pretty(receipt).expect("a receipt serializes");
    let name = tenant.settings.name.as_str();
    let text = ReceiptText {
        tenant: name,
        r: &receipt.receipt,
        json: &json,
    }
    .render()?;
    let html = ReceiptHtml {
        tenant: name,
        r: &receipt.receipt,
        json: &json,
    }
    .render()?;
    Ok(OutgoingEmail {
        to: to.clone(),
        subject: one_line(&format!(
            "{subject_prefix} {name}: certificate of erasure {}",
            receipt.receipt.request_id
        )),
        text,
        html,
    })
}

#[derive(Template)]
#[template(path = "email/owner.html")]
struct OwnerHtml<'a> {
    t: &'a OwnerTexts,
    tenant: &'a str,
    system: &'a str,
    request_id: &'a str,
    due: &'a str,
    link: &'a str,
    expires: &'a str,
    reminder: bool,
}

#[derive(Template)]
#[template(path = "email/owner.txt")]
struct OwnerText<'a> {
    t: &'a OwnerTexts,
    tenant: &'a str,
    system: &'a str,
    request_id: &'a str,
    due: &'a str,
    link: &'a str,
    expires: &'a str,
    reminder: bool,
}

/// What the email to a manual target's owner needs. It names the system and
/// the request, not the person: whose data it is shows behind the link.
pub struct OwnerMail<'a> {
    pub tenant: &'a Tenant,
    pub to: &'a EmailAddress,
    pub system: &'a str,
    pub request: &'a ErasureRequest,
    pub link: &'a str,
    pub expires_at: DateTime<Utc>,
    pub reminder: bool,
    pub subject_prefix: &'a str,
}

pub fn owner_task(m: &OwnerMail<'_>) -> Result<OutgoingEmail, askama::Error> {
    let t = owner_texts(m.tenant.settings.locale);
    let tenant = m.tenant.settings.name.as_str();
    let request_id = m.request.id.to_string();
    let due = date(m.request.due_at);
    let expires = date_time(m.expires_at);
    let html = OwnerHtml {
        t,
        tenant,
        system: m.system,
        request_id: &request_id,
        due: &due,
        link: m.link,
        expires: &expires,
        reminder: m.reminder,
    }
    .render()?;
    let text = OwnerText {
        t,
        tenant,
        system: m.system,
        request_id: &request_id,
        due: &due,
        link: m.link,
        expires: &expires,
        reminder: m.reminder,
    }
    .render()?;
    let reminder = if m.reminder {
        format!("{} ", t.subject_reminder)
    } else {
        String::new()
    };
    Ok(OutgoingEmail {
        to: m.to.clone(),
        subject: one_line(&format!(
            "{} {reminder}{tenant} ({}): {}",
            m.subject_prefix, m.system, t.subject
        )),
        text,
        html,
    })
}
