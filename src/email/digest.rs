//! The support team's daily digest: new, overdue and failed requests. It
//! names requests and tenants, never a subject.

use askama::Template;
use chrono::{DateTime, Utc};

use super::views::date;
use super::OutgoingEmail;
use crate::domain::support::DaysLeft;
use crate::domain::values::EmailAddress;
use crate::store::support::queue::{DigestData, QueueItem};

/// One request as the digest lists it.
pub struct DigestItem {
    pub id: String,
    pub tenant: String,
    pub state: &'static str,
    pub due: String,
    pub days: String,
    pub link: String,
}

impl DigestItem {
    fn new(r: &QueueItem, base: &url::Url, now: DateTime<Utc>) -> Self {
        Self {
            id: r.id.to_string(),
            tenant: r.tenant_name.clone(),
            state: r.state.as_str(),
            due: date(r.due_at),
            days: DaysLeft::of(r.state, r.due_at, now).label(),
            link: link(base, &format!("support/requests/{}", r.id)),
        }
    }
}

fn link(base: &url::Url, path: &str) -> String {
    base.join(path)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("/{path}"))
}

#[derive(Template)]
#[template(path = "support/digest.txt")]
struct DigestText<'a> {
    day: &'a str,
    d: &'a DigestData,
    overdue: &'a [DigestItem],
    failed: &'a [DigestItem],
    dashboard: &'a str,
    overdue_link: &'a str,
    failed_link: &'a str,
}

#[derive(Template)]
#[template(path = "support/digest.html")]
struct DigestHtml<'a> {
    day: &'a str,
    d: &'a DigestData,
    overdue: &'a [DigestItem],
    failed: &'a [DigestItem],
    dashboard: &'a str,
    overdue_link: &'a str,
    failed_link: &'a str,
}

pub fn digest(
    to: &EmailAddress,
    d: &DigestData,
    base: &url::Url,
    now: DateTime<Utc>,
) -> Result<OutgoingEmail, askama::Error> {
    let day = date(now);
    let overdue: Vec<DigestItem> = d
        .overdue_items
        .iter()
        .map(|r| DigestItem::new(r, base, now))
        .collect();
    let failed: Vec<DigestItem> = d
        .failed_items
        .iter()
        .map(|r| DigestItem::new(r, base, now))
        .collect();
    let dashboard = link(base, "support");
    let overdue_link = link(base, "support/requests?overdue=true");
    let failed_link = link(base, "support/requests?state=failed");
    let text = DigestText {
        day: &day,
        d,
        overdue: &overdue,
        failed: &failed,
        dashboard: &dashboard,
        overdue_link: &overdue_link,
        failed_link: &failed_link,
    }
    .render()?;
    let html = DigestHtml {
        day: &day,
        d,
        overdue: &overdue,
        failed: &failed,
        dashboard: &dashboard,
        overdue_link: &overdue_link,
        failed_link: &failed_link,
    }
    .render()?;
    Ok(OutgoingEmail {
        to: to.clone(),
        subject: format!(
            "[lethe support] {day}: {} new, {} overdue, {} failed",
            d.new_last_day, d.overdue, d.failed
        ),
        text,
        html,
    })
}
