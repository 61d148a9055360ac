//! The queue's query string (shared by the page, the JSON API and the CSV
//! export), its cursors, and how a row is shown.

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::subject_key::SubjectKey;
use crate::domain::support::{DaysLeft, Urgency};
use crate::domain::values::{Initiator, InvalidValue, SubjectId};
use crate::domain::{BatchId, RequestId, RequestState, TenantId};
use crate::email::views::date;
use crate::store::support::queue::{self, Cursor, QueueFilter, QueueItem, Search, Sort};
use crate::store::{Conn, StoreError};

/// Most tenants a subject-id search spans without a tenant filter (the keyed
/// hash differs per tenant, so each tenant is one more hash to look up).
pub const MAX_SEARCH_TENANTS: i64 = 1000;

/// The queue's query string. Every field is text so an empty form field
/// means "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// One or more states, comma-separated, or `open`.
    #[serde(default, skip_serializing_if = "blank")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    pub tenant: Option<String>,
    /// `true` (open and past the deadline) or `false`.
    #[serde(default, skip_serializing_if = "blank")]
    pub overdue: Option<String>,
    /// Open, not overdue, due within this many days.
    #[serde(default, skip_serializing_if = "blank")]
    pub due_within: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    pub initiator: Option<String>,
    /// Received on or after this day (YYYY-MM-DD, UTC).
    #[serde(default, skip_serializing_if = "blank")]
    pub from: Option<String>,
    /// Received on or before this day (YYYY-MM-DD, UTC).
    #[serde(default, skip_serializing_if = "blank")]
    pub to: Option<String>,
    /// A request id or a subject id.
    #[serde(default, skip_serializing_if = "blank")]
    pub q: Option<String>,
    /// `due` (earliest deadline first, the default) or `newest`.
    #[serde(default, skip_serializing_if = "blank")]
    pub sort: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    pub limit: Option<String>,
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl QueueParams {
    pub fn parse(query: &str) -> Result<Self, InvalidValue> {
        serde_urlencoded::from_str(query).map_err(|e| InvalidValue::new("query", e.to_string()))
    }

    /// The query string of this filter without its cursor (for the next
    /// page, the export, and the sort links).
    pub fn without_cursor(&self) -> String {
        let mut p = self.clone();
        p.cursor = None;
        serde_urlencoded::to_string(&p).unwrap_or_default()
    }

    /// The same filter, continuing at `cursor`.
    pub fn with_cursor(&self, cursor: &str) -> String {
        let mut p = self.clone();
        p.cursor = Some(cursor.to_owned());
        serde_urlencoded::to_string(&p).unwrap_or_default()
    }

    pub fn value(v: &Option<String>) -> &str {
        given(v).unwrap_or("")
    }

    pub fn is_filtered(&self) -> bool {
        [
            &self.state,
            &self.tenant,
            &self.overdue,
            &self.due_within,
            &self.initiator,
            &self.from,
            &self.to,
            &self.q,
        ]
        .iter()
        .any(|v| !blank(v))
    }

    /// Check every field. The search text is returned apart: resolving it
    /// needs the database (one keyed hash per tenant).
    pub fn filter(
        &self,
        default_limit: i64,
    ) -> Result<(QueueFilter, Option<String>), InvalidValue> {
        let mut f = QueueFilter {
            limit: default_limit,
            ..QueueFilter::default()
        };
        if let Some(s) = given(&self.state) {
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if part == "open" {
                    f.states.extend(RequestState::OPEN);
                } else {
                    f.states.push(part.parse().map_err(|_| {
                        InvalidValue::new(
                            "state",
                            format!(
                                "must be open or one or more of {}, separated by commas",
                                RequestState::ALL.map(|s| s.as_str()).join(", ")
                            ),
                        )
                    })?);
                }
            }
        }
        if let Some(t) = given(&self.tenant) {
            f.tenant = Some(
                t.parse::<TenantId>()
                    .map_err(|_| InvalidValue::new("tenant", "must be a tenant id"))?,
            );
        }
        f.overdue = match given(&self.overdue) {
            None => None,
            Some("true" | "1" | "on") => Some(true),
            Some("false" | "0") => Some(false),
            Some(_) => return Err(InvalidValue::new("overdue", "must be true or false")),
        };
        if let Some(d) = given(&self.due_within) {
            f.due_within_days = Some(
                d.parse::<u32>()
                    .ok()
                    .filter(|d| (1..=366).contains(d))
                    .ok_or_else(|| {
                        InvalidValue::new("due_within", "must be a number of days from 1 to 366")
                    })?,
            );
        }
        if let Some(i) = given(&self.initiator) {
            f.initiator = Some(Initiator::parse(i).ok_or_else(|| {
                InvalidValue::new("initiator", "must be subject, support or retention_policy")
            })?);
        }
        let day = |field: &'static str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| InvalidValue::new(field, "must be a date like 2026-03-31"))
        };
        if let Some(v) = given(&self.from) {
            f.received_from = Some(day("from", v)?.and_time(chrono::NaiveTime::MIN).and_utc());
        }
        if let Some(v) = given(&self.to) {
            let next = day("to", v)?
                .succ_opt()
                .ok_or_else(|| InvalidValue::new("to", "is out of range"))?;
            f.received_before = Some(next.and_time(chrono::NaiveTime::MIN).and_utc());
        }
        if let (Some(from), Some(before)) = (f.received_from, f.received_before) {
            if before <= from {
                return Err(InvalidValue::new("to", "must not be before from"));
            }
        }
        f.sort = match given(&self.sort) {
            None | Some("due") => Sort::Due,
            Some("newest") => Sort::Newest,
            Some(_) => return Err(InvalidValue::new("sort", "must be due or newest")),
        };
        if let Some(c) = given(&self.cursor) {
            let cursor = decode_cursor(c)?;
            let matches = matches!(
                (f.sort, cursor),
                (Sort::Due, Cursor::Due { .. }) | (Sort::Newest, Cursor::Newest { .. })
            );
            if !matches {
                return Err(InvalidValue::new(
                    "cursor",
                    "belongs to another sort order; start from the first page",
                ));
            }
            f.after = Some(cursor);
        }
        if let Some(l) = given(&self.limit) {
            f.limit = l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=queue::MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    InvalidValue::new("limit", format!("must be from 1 to {}", queue::MAX_PAGE))
                })?;
        }
        let search = given(&self.q).map(|q| q.chars().take(SubjectId::MAX_LEN).collect());
        Ok((f, search))
    }
}

/// Turn search text into what the store matches: the request id it names,
/// and the subject id's keyed hash in each tenant searched.
pub fn resolve_search(
    conn: &mut Conn<'_>,
    key: &SubjectKey,
    text: &str,
    tenant: Option<TenantId>,
) -> Result<Search, StoreError> {
    let request_id = text.parse::<RequestId>().ok();
    let mut subject_hashes = Vec::new();
    if let Ok(subject) = SubjectId::parse(text) {
        let tenants = match tenant {
            Some(t) => vec![t],
            None => queue::tenant_ids(conn, MAX_SEARCH_TENANTS + 1)?,
        };
        if tenants.len() as i64 > MAX_SEARCH_TENANTS {
            return Err(StoreError::Conflict(
                "there are too many tenants to search them all by subject id: choose a tenant",
            ));
        }
        subject_hashes = tenants
            .into_iter()
            .map(|t| (t, key.hash(t, &subject)))
            .collect();
    }
    Ok(Search {
        request_id,
        subject_hashes,
    })
}

/// One page of the queue for `params`, with the cursor of the next page.
pub fn load_page(
    conn: &mut Conn<'_>,
    key: &SubjectKey,
    mut f: QueueFilter,
    search: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Vec<QueueItem>, Option<String>), StoreError> {
    if let Some(text) = &search {
        f.search = Some(resolve_search(conn, key, text, f.tenant)?);
    }
    let limit = f.limit;
    f.limit = limit + 1;
    let mut rows = queue::list(conn, &f, now)?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| encode_cursor(queue::cursor_after(r, f.sort)))
    } else {
        None
    };
    Ok((rows, next))
}

const CURSOR_VERSION: &str = "s1";

pub fn encode_cursor(c: Cursor) -> String {
    let raw = match c {
        Cursor::Due { due_at, id } => {
            format!("{CURSOR_VERSION}:due:{}:{id}", due_at.timestamp_micros())
        }
        Cursor::Newest { id } => format!("{CURSOR_VERSION}:new:{id}"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(s: &str) -> Result<Cursor, InvalidValue> {
    let bad = || InvalidValue::new("cursor", "is not one this queue issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [CURSOR_VERSION, "due", micros, id] => Ok(Cursor::Due {
            due_at: micros
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .ok_or_else(bad)?,
            id: id.parse().map_err(|_| bad())?,
        }),
        [CURSOR_VERSION, "new", id] => Ok(Cursor::Newest {
            id: id.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// A queue row as the JSON API shows it. No email address, no reasons.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RowJson {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub tenant_name: String,
    /// `null` once the request is scrubbed.
    pub subject_id: Option<String>,
    pub scrubbed: bool,
    pub initiator: Initiator,
    pub state: RequestState,
    pub batch_id: Option<BatchId>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// Calendar days to the due date (negative once overdue).
    pub days_left: i64,
    pub urgency: Urgency,
    pub overdue: bool,
    pub extended_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub approval_delivery_failed_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl RowJson {
    pub fn new(r: &QueueItem, now: DateTime<Utc>) -> Self {
        let d = DaysLeft::of(r.state, r.due_at, now);
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name.clone(),
            subject_id: r.subject_id.clone(),
            scrubbed: r.subject_id.is_none(),
            initiator: r.initiator,
            state: r.state,
            batch_id: r.batch_id,
            received_at: r.received_at,
            due_at: r.due_at,
            days_left: d.days,
            urgency: d.urgency,
            overdue: r.is_overdue(now),
            extended_at: r.extended_at,
            escalated_at: r.escalated_at,
            approval_delivery_failed_at: r.delivery_failed_at,
            closed_at: r.closed_at,
        }
    }
}

/// A queue row as the pages show it.
pub struct RowView {
    pub id: String,
    pub short_id: String,
    pub tenant_id: String,
    pub tenant: String,
    /// The subject id, or empty once scrubbed.
    pub subject: String,
    pub initiator: &'static str,
    pub state: &'static str,
    pub state_label: &'static str,
    pub received: String,
    pub due: String,
    pub days: String,
    pub urgency: &'static str,
    pub extended: bool,
    pub escalated: bool,
    pub undeliverable: bool,
}

pub fn state_label(s: RequestState) -> &'static str {
    match s {
        RequestState::Pending => "pending",
        RequestState::AwaitingApproval => "awaiting approval",
        RequestState::Erasing => "erasing",
        RequestState::Erased => "erased",
        RequestState::Rejected => "rejected",
        RequestState::Cancelled => "cancelled",
        RequestState::Failed => "failed",
    }
}

pub fn initiator_label(i: Initiator) -> &'static str {
    match i {
        Initiator::Subject => "subject",
        Initiator::Support => "support",
        Initiator::RetentionPolicy => "retention policy",
    }
}

impl RowView {
    pub fn new(r: &QueueItem, now: DateTime<Utc>) -> Self {
        let d = DaysLeft::of(r.state, r.due_at, now);
        let id = r.id.to_string();
        Self {
            short_id: id.chars().skip(id.len().saturating_sub(12)).collect(),
            id,
            tenant_id: r.tenant_id.to_string(),
            tenant: r.tenant_name.clone(),
            subject: r.subject_id.clone().unwrap_or_default(),
            initiator: initiator_label(r.initiator),
            state: r.state.as_str(),
            state_label: state_label(r.state),
            received: date(r.received_at),
            due: date(r.due_at),
            days: d.label(),
            urgency: d.urgency.as_str(),
            extended: r.extended_at.is_some(),
            escalated: r.escalated_at.is_some() && r.state.is_open(),
            undeliverable: r.delivery_failed_at.is_some() && r.state.is_open(),
        }
    }
}

/// The CSV export's header.
pub const CSV_HEADER: &str = "request_id,tenant_id,tenant_name,state,initiator,subject_id,received_at,due_at,days_left,urgency,extended_at,closed_at\r\n";

/// One CSV line. The subject id is the only personal field, and it is empty
/// for a scrubbed request (lethe no longer has it).
pub fn csv_line(r: &QueueItem, now: DateTime<Utc>) -> String {
    let d = DaysLeft::of(r.state, r.due_at, now);
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let fields = [
        r.id.to_string(),
        r.tenant_id.to_string(),
        csv_field(&r.tenant_name),
        r.state.as_str().to_owned(),
        r.initiator.as_str().to_owned(),
        r.subject_id.as_deref().map(csv_field).unwrap_or_default(),
        ts(r.received_at),
        ts(r.due_at),
        d.days.to_string(),
        d.urgency.as_str().to_owned(),
        r.extended_at.map(ts).unwrap_or_default(),
        r.closed_at.map(ts).unwrap_or_default(),
    ];
    let mut line = fields.join(",");
    line.push_str("\r\n");
    line
}

/// Quote a free-text field (RFC 4180), and defuse spreadsheet formulas.
fn csv_field(s: &str) -> String {
    let mut v = s.to_owned();
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        v.insert(0, '\'');
    }
    if v.contains([',', '"', '\n', '\r']) || v != s {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = RequestId::new();
        let due = crate::domain::deadline::now();
        for c in [Cursor::Due { due_at: due, id }, Cursor::Newest { id }] {
            assert_eq!(decode_cursor(&encode_cursor(c)).unwrap(), c);
        }
        for bad in ["", "!!", "czE6bmV3Onh4eA"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_check_every_field() {
        let p = QueueParams::parse(
            "state=open&overdue=true&from=2026-01-01&to=2026-01-31&sort=newest&q=user-1&tenant=",
        )
        .unwrap();
        let (f, search) = p.filter(50).unwrap();
        assert_eq!(f.states.len(), 4);
        assert_eq!(f.overdue, Some(true));
        assert_eq!(f.sort, Sort::Newest);
        assert!(f.tenant.is_none());
        assert_eq!(search.as_deref(), Some("user-1"));
        assert_eq!(
            f.received_before.unwrap().date_naive(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
        for bad in [
            "state=gone",
            "tenant=x",
            "overdue=maybe",
            "initiator=robot",
            "from=31.01.2026",
            "from=2026-02-01&to=2026-01-01",
            "sort=up",
            "limit=0",
            "limit=501",
            "cursor=abc",
            "due_within=0",
        ] {
            assert!(
                QueueParams::parse(bad).unwrap().filter(50).is_err(),
                "{bad}"
            );
        }
        // A cursor of one order does not continue another.
        let c = encode_cursor(Cursor::Newest {
            id: RequestId::new(),
        });
        let p = QueueParams::parse(&format!("cursor={c}")).unwrap();
        assert!(p.filter(50).is_err());
        assert_eq!(p.without_cursor(), "");
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("Acme"), "Acme");
        assert_eq!(csv_field("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }
}
