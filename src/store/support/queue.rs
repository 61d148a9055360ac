//! The support queue across every tenant: filtered, sorted by due date (or
//! newest first), paged with a cursor; the overview's counts; one request in
//! full with its timeline.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::dsl::{count_star, sql};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text, Timestamp};

use crate::domain::deadline;
use crate::domain::support::ExtensionFacts;
use crate::domain::values::Initiator;
use crate::domain::{BatchId, RequestId, RequestState, TenantId};
use crate::store::audit::AuditRow;
use crate::store::jobs::JobRow;
use crate::store::schema::{audit_events, erasure_requests as er, jobs, tenants};
use crate::store::tenants::utc;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// Most rows one page may hold.
pub const MAX_PAGE: i64 = 500;
/// Most timeline events and jobs shown for one request.
const MAX_TIMELINE: i64 = 1000;
/// Most tenants the overview and the tenant filter list.
pub const MAX_TENANTS: i64 = 500;

/// How the queue is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Earliest deadline first (the default: what needs action first).
    #[default]
    Due,
    /// Most recently received first.
    Newest,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Due => "due",
            Sort::Newest => "newest",
        }
    }
}

/// Where the next page starts: just after the last row of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Due {
        due_at: DateTime<Utc>,
        id: RequestId,
    },
    Newest {
        id: RequestId,
    },
}

/// Find requests by request id or by subject id. Subject ids are matched
/// through the keyed hash each request keeps, so scrubbed requests are found
/// too; the hash is keyed per tenant, hence one per tenant searched.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub request_id: Option<RequestId>,
    pub subject_hashes: Vec<(TenantId, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub states: Vec<RequestState>,
    pub tenant: Option<TenantId>,
    /// Open and past its deadline (true), or not (false).
    pub overdue: Option<bool>,
    /// Open, not overdue, and due within this many days.
    pub due_within_days: Option<u32>,
    pub initiator: Option<Initiator>,
    /// Received at or after.
    pub received_from: Option<DateTime<Utc>>,
    /// Received before.
    pub received_before: Option<DateTime<Utc>>,
    pub search: Option<Search>,
    pub sort: Sort,
    pub after: Option<Cursor>,
    pub limit: i64,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = er)]
struct QueueRow {
    id: String,
    tenant_id: String,
    subject_id: Option<String>,
    initiator: String,
    state: String,
    batch_id: Option<String>,
    received_at: NaiveDateTime,
    due_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    closed_at: Option<NaiveDateTime>,
    escalated_at: Option<NaiveDateTime>,
    delivery_failed_at: Option<NaiveDateTime>,
    extended_at: Option<NaiveDateTime>,
}

/// One row of the queue. No email address, no reasons: only what a list
/// needs. `subject_id` is `None` once the request is scrubbed.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub subject_id: Option<String>,
    pub initiator: Initiator,
    pub state: RequestState,
    pub batch_id: Option<BatchId>,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub delivery_failed_at: Option<DateTime<Utc>>,
    pub extended_at: Option<DateTime<Utc>>,
}

impl QueueItem {
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state.is_open() && self.due_at < now
    }

    pub fn extension_facts(&self) -> ExtensionFacts {
        ExtensionFacts {
            state: self.state,
            received_at: self.received_at,
            due_at: self.due_at,
            extended_at: self.extended_at,
        }
    }
}

impl QueueRow {
    fn into_item(self) -> Result<QueueItem, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("request {}: bad {what}", self.id));
        Ok(QueueItem {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: self.tenant_id.parse().map_err(|_| corrupt("tenant id"))?,
            tenant_name: String::new(),
            initiator: Initiator::parse(&self.initiator).ok_or_else(|| corrupt("initiator"))?,
            state: self.state.parse().map_err(|_| corrupt("state"))?,
            batch_id: match &self.batch_id {
                Some(b) => Some(b.parse().map_err(|_| corrupt("batch id"))?),
                None => None,
            },
            subject_id: self.subject_id,
            received_at: utc(self.received_at),
            due_at: utc(self.due_at),
            updated_at: utc(self.updated_at),
            closed_at: self.closed_at.map(utc),
            escalated_at: self.escalated_at.map(utc),
            delivery_failed_at: self.delivery_failed_at.map(utc),
            extended_at: self.extended_at.map(utc),
        })
    }
}

/// "The request is open", written out exactly as the partial indexes over
/// open requests declare it (`WHERE state IN (...)`, see the migrations).
/// A planner uses a partial index only when it can tell that the query's
/// condition implies the index's; with the states bound as parameters
/// (`eq_any`) SQLite never can, nor can PostgreSQL in a generic plan, and
/// the query falls back to reading every open (or every) request.
pub const OPEN_SQL: &str = "state IN ('pending', 'awaiting_approval', 'erasing', 'failed')";

fn open_states() -> Vec<&'static str> {
    RequestState::OPEN.iter().map(|s| s.as_str()).collect()
}

fn is_open() -> SqlLiteral<Bool> {
    sql::<Bool>(OPEN_SQL)
}

/// Whether `states` names exactly the open states (in any order).
fn are_open_states(states: &[RequestState]) -> bool {
    let given: BTreeSet<&str> = states.iter().map(|s| s.as_str()).collect();
    let open: BTreeSet<&str> = RequestState::OPEN.iter().map(|s| s.as_str()).collect();
    given == open
}

/// Tenants' names by id, for the rows shown.
pub fn tenant_names(
    conn: &mut Conn<'_>,
    ids: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<&String> = ids.iter().collect();
    let rows: Vec<(String, String)> = with_conn!(conn, |c| tenants::table
        .filter(tenants::id.eq_any(&ids))
        .limit(ids.len() as i64)
        .select((tenants::id, tenants::name))
        .load(c))?;
    Ok(rows.into_iter().collect())
}

/// Tenants for the filter: id and name, by name, at most `MAX_TENANTS`.
pub fn tenant_choices(conn: &mut Conn<'_>) -> Result<Vec<(String, String)>, StoreError> {
    Ok(with_conn!(conn, |c| tenants::table
        .order((tenants::name.asc(), tenants::id.asc()))
        .limit(MAX_TENANTS)
        .select((tenants::id, tenants::name))
        .load(c))?)
}

/// Every tenant id, at most `limit` (to key a subject search per tenant).
pub fn tenant_ids(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<String> = with_conn!(conn, |c| tenants::table
        .order(tenants::id.asc())
        .limit(limit)
        .select(tenants::id)
        .load(c))?;
    ids.into_iter()
        .map(|i| {
            i.parse()
                .map_err(|_| StoreError::Internal(format!("tenant {i}: bad id")))
        })
        .collect()
}

fn with_names(conn: &mut Conn<'_>, rows: Vec<QueueRow>) -> Result<Vec<QueueItem>, StoreError> {
    let ids: BTreeSet<String> = rows.iter().map(|r| r.tenant_id.clone()).collect();
    let names = tenant_names(conn, &ids)?;
    rows.into_iter()
        .map(|r| {
            let name = names.get(&r.tenant_id).cloned().unwrap_or_default();
            let mut item = r.into_item()?;
            item.tenant_name = name;
            Ok(item)
        })
        .collect()
}

/// One page of the queue. Ask for `limit + 1` rows to learn whether another
/// page follows.
pub fn list(
    conn: &mut Conn<'_>,
    f: &QueueFilter,
    now: DateTime<Utc>,
) -> Result<Vec<QueueItem>, StoreError> {
    let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
    let all_open = are_open_states(&f.states);
    let open = open_states();
    let tenant = f.tenant.map(|t| t.to_string());
    let initiator = f.initiator.map(|i| i.as_str());
    let (from, before) = (
        f.received_from.map(|t| t.naive_utc()),
        f.received_before.map(|t| t.naive_utc()),
    );
    let search_id = f
        .search
        .as_ref()
        .and_then(|s| s.request_id)
        .map(|i| i.to_string());
    let search_pairs: Vec<(String, String)> = f
        .search
        .as_ref()
        .map(|s| {
            s.subject_hashes
                .iter()
                .map(|(t, h)| (t.to_string(), h.clone()))
                .collect()
        })
        .unwrap_or_default();
    if f.search.is_some() && search_id.is_none() && search_pairs.is_empty() {
        return Ok(Vec::new());
    }
    // A request's deadline lies between one and three months after receipt
    // (`deadline::due_at` on submission, at most `max_extended_due_at` after
    // the one extension). Saying so lets a date-range filter walk only that
    // stretch of the due-date index instead of all of it.
    let due_low = f.received_from.map(|t| deadline::due_at(t).naive_utc());
    let due_high = f
        .received_before
        .map(|t| deadline::max_extended_due_at(t - Duration::microseconds(1)).naive_utc());
    let soon = f
        .due_within_days
        .map(|d| (now + Duration::days(i64::from(d))).naive_utc());
    let after = f.after;
    let now = now.naive_utc();
    let limit = f.limit.clamp(1, MAX_PAGE + 1);
    let rows: Vec<QueueRow> = with_conn!(conn, |c| {
        let mut q = er::table.select(QueueRow::as_select()).into_boxed();
        // One state is an equality, so the (state, due_at, id) index hands
        // out rows already in order; the open states match the partial
        // indexes; any other list stays a bound list.
        match states.as_slice() {
            [] => {}
            [one] => q = q.filter(er::state.eq(*one)),
            _ if all_open => q = q.filter(is_open()),
            _ => q = q.filter(er::state.eq_any(&states)),
        }
        if let Some(t) = &tenant {
            q = q.filter(er::tenant_id.eq(t));
        }
        match f.overdue {
            Some(true) => q = q.filter(is_open()).filter(er::due_at.lt(now)),
            Some(false) => q = q.filter(er::state.ne_all(&open).or(er::due_at.ge(now))),
            None => {}
        }
        if let Some(soon) = soon {
            q = q
                .filter(is_open())
                .filter(er::due_at.ge(now))
                .filter(er::due_at.lt(soon));
        }
        if let Some(i) = initiator {
            q = q.filter(er::initiator.eq(i));
        }
        if let Some(from) = from {
            q = q.filter(er::received_at.ge(from));
        }
        if let Some(before) = before {
            q = q.filter(er::received_at.lt(before));
        }
        if let Some(low) = due_low {
            q = q.filter(er::due_at.ge(low));
        }
        if let Some(high) = due_high {
            q = q.filter(er::due_at.le(high));
        }
        if f.search.is_some() {
            let mut found: Option<Box<dyn BoxableExpression<er::table, _, SqlType = Bool>>> =
                search_id
                    .as_ref()
                    .map(|id| Box::new(er::id.eq(id.clone())) as Box<_>);
            for (t, h) in &search_pairs {
                let pair = er::tenant_id
                    .eq(t.clone())
                    .and(er::subject_hash.eq(h.clone()));
                found = Some(match found {
                    None => Box::new(pair),
                    Some(prev) => Box::new(prev.or(pair)),
                });
            }
            if let Some(found) = found {
                q = q.filter(found);
            }
        }
        match (f.sort, after) {
            (Sort::Due, Some(Cursor::Due { due_at, id })) => {
                let (d, id) = (due_at.naive_utc(), id.to_string());
                // A row-value comparison, which both planners take as
                // the range of the (..., due_at, id) index. Written as
                // `due_at > d OR id > x` it was a filter on every row due
                // at the cursor's moment, and deadlines fall at the end
                // of a day: at a million requests a middle page read and
                // dropped over a thousand rows (10 ms instead of 0.1).
                q = q.filter(er::due_at.ge(d)).filter(
                    sql::<Bool>("(due_at, id) > (")
                        .bind::<Timestamp, _>(d)
                        .sql(", ")
                        .bind::<Text, _>(id)
                        .sql(")"),
                );
            }
            (Sort::Newest, Some(Cursor::Newest { id })) => {
                q = q.filter(er::id.lt(id.to_string()));
            }
            _ => {}
        }
        q = match f.sort {
            Sort::Due => q.order((er::due_at.asc(), er::id.asc())),
            Sort::Newest => q.order(er::id.desc()),
        };
        q.limit(limit).load(c)
    })?;
    with_names(conn, rows)
}

/// The cursor that continues after `item` in `sort` order.
pub fn cursor_after(item: &QueueItem, sort: Sort) -> Cursor {
    match sort {
        Sort::Due => Cursor::Due {
            due_at: item.due_at,
            id: item.id,
        },
        Sort::Newest => Cursor::Newest { id: item.id },
    }
}

/// Open requests of one tenant, by state.
#[derive(Debug, Clone, Default)]
pub struct TenantCounts {
    pub tenant_id: String,
    pub tenant_name: String,
    /// Indexed like `RequestState::OPEN`.
    pub open_by_state: [i64; 4],
    pub open: i64,
    pub overdue: i64,
}

/// Closed requests are counted over this many days: the history grows
/// without bound, the morning's view must not.
pub const CLOSED_WINDOW_DAYS: i64 = 30;

/// What the support team sees first each morning.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Each open state with its count, in `RequestState::OPEN` order.
    pub open_by_state: Vec<(RequestState, i64)>,
    /// Each closed state with the requests that reached it in the last
    /// `CLOSED_WINDOW_DAYS` days.
    pub closed_recently: Vec<(RequestState, i64)>,
    pub open: i64,
    pub overdue: i64,
    pub due_within_7_days: i64,
    /// Tenants with open requests, most open first (at most `MAX_TENANTS`).
    pub by_tenant: Vec<TenantCounts>,
    /// Waiting for the privacy contact longest, oldest first.
    pub awaiting_longest: Vec<QueueItem>,
    /// Most recently failed.
    pub failed: Vec<QueueItem>,
}

/// The overview: counts are `GROUP BY` queries over indexed columns; the two
/// lists are bounded.
pub fn overview(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    list_len: i64,
) -> Result<Overview, StoreError> {
    let soon = (now + Duration::days(7)).naive_utc();
    let closed_since = (now - Duration::days(CLOSED_WINDOW_DAYS)).naive_utc();
    let now = now.naive_utc();
    let open_counts: Vec<(String, i64)> = with_conn!(conn, |c| er::table
        .filter(is_open())
        .group_by(er::state)
        .select((er::state, count_star()))
        .load(c))?;
    // Naming the closed states makes this a range of the (state,
    // closed_at) index per state; without them both planners read that
    // index whole (a million entries) or worse.
    let closed: Vec<&str> = RequestState::ALL
        .iter()
        .filter(|s| !s.is_open())
        .map(|s| s.as_str())
        .collect();
    let closed_counts: Vec<(String, i64)> = with_conn!(conn, |c| er::table
        .filter(er::state.eq_any(&closed))
        .filter(er::closed_at.ge(closed_since))
        .group_by(er::state)
        .select((er::state, count_star()))
        .load(c))?;
    let counted = |rows: Vec<(String, i64)>, states: &mut dyn Iterator<Item = RequestState>| {
        let rows: BTreeMap<String, i64> = rows.into_iter().collect();
        states
            .map(|s| (s, rows.get(s.as_str()).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
    };
    let open_by_state = counted(open_counts, &mut RequestState::OPEN.into_iter());
    let closed_recently = counted(
        closed_counts,
        &mut RequestState::ALL.into_iter().filter(|s| !s.is_open()),
    );
    let open_count = open_by_state.iter().map(|(_, n)| n).sum();
    let overdue: i64 = with_conn!(conn, |c| er::table
        .filter(is_open())
        .filter(er::due_at.lt(now))
        .count()
        .get_result(c))?;
    let due_soon: i64 = with_conn!(conn, |c| er::table
        .filter(is_open())
        .filter(er::due_at.ge(now))
        .filter(er::due_at.lt(soon))
        .count()
        .get_result(c))?;
    // Grouped by state first, the order of the partial index over open
    // requests (state, tenant_id, due_at), so no sort is needed to group.
    let per_tenant: Vec<(String, String, i64)> = with_conn!(conn, |c| er::table
        .filter(is_open())
        .group_by((er::state, er::tenant_id))
        .select((er::tenant_id, er::state, count_star()))
        .order((er::tenant_id.asc(), er::state.asc()))
        .limit(MAX_TENANTS * 4 * 4)
        .load(c))?;
    let overdue_per_tenant: Vec<(String, String, i64)> = with_conn!(conn, |c| er::table
        .filter(is_open())
        .filter(er::due_at.lt(now))
        .group_by((er::state, er::tenant_id))
        .select((er::tenant_id, er::state, count_star()))
        .order((er::tenant_id.asc(), er::state.asc()))
        .limit(MAX_TENANTS * 4 * 4)
        .load(c))?;
    let mut tenants: BTreeMap<String, TenantCounts> = BTreeMap::new();
    for (tenant, state, n) in per_tenant {
        let t = tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantCounts {
                tenant_id: tenant,
                ..TenantCounts::default()
            });
        if let Some(i) = RequestState::OPEN.iter().position(|s| s.as_str() == state) {
            t.open_by_state[i] += n;
            t.open += n;
        }
    }
    for (tenant, _, n) in overdue_per_tenant {
        if let Some(t) = tenants.get_mut(&tenant) {
            t.overdue += n;
        }
    }
    let mut by_tenant: Vec<TenantCounts> = tenants.into_values().collect();
    by_tenant.sort_by(|a, b| {
        (b.overdue, b.open)
            .cmp(&(a.overdue, a.open))
            .then_with(|| a.tenant_id.cmp(&b.tenant_id))
    });
    by_tenant.truncate(MAX_TENANTS as usize);
    let ids: BTreeSet<String> = by_tenant.iter().map(|t| t.tenant_id.clone()).collect();
    let names = tenant_names(conn, &ids)?;
    for t in &mut by_tenant {
        t.tenant_name = names.get(&t.tenant_id).cloned().unwrap_or_default();
    }
    // Both lists are ranges of an index (state, sort key, id): a plain
    // equality, which both planners match to it in any plan.
    let awaiting: Vec<QueueRow> = with_conn!(conn, |c| er::table
        .filter(er::state.eq(RequestState::AwaitingApproval.as_str()))
        .order((er::received_at.asc(), er::id.asc()))
        .limit(list_len)
        .select(QueueRow::as_select())
        .load(c))?;
    let failed: Vec<QueueRow> = with_conn!(conn, |c| er::table
        .filter(er::state.eq(RequestState::Failed.as_str()))
        .order((er::updated_at.desc(), er::id.desc()))
        .limit(list_len)
        .select(QueueRow::as_select())
        .load(c))?;
    Ok(Overview {
        open_by_state,
        closed_recently,
        open: open_count,
        overdue,
        due_within_7_days: due_soon,
        by_tenant,
        awaiting_longest: with_names(conn, awaiting)?,
        failed: with_names(conn, failed)?,
    })
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = er)]
struct DetailRow {
    #[diesel(embed)]
    row: QueueRow,
    subject_email: Option<String>,
    reason: Option<String>,
    decision_code: Option<String>,
    extension_reason: Option<String>,
    extended_by: Option<String>,
    cancel_reason: Option<String>,
}

/// One request in full, for the detail page.
#[derive(Debug, Clone)]
pub struct Detail {
    pub item: QueueItem,
    /// Whether the subject gave an email address (the address is not shown).
    pub subject_email_given: bool,
    /// The reason given with the submission.
    pub reason: Option<String>,
    /// The privacy contact's rejection code, if rejected.
    pub decision_code: Option<String>,
    pub extension_reason: Option<String>,
    /// The support user who extended the deadline.
    pub extended_by: Option<String>,
    pub cancel_reason: Option<String>,
    /// Audit events, oldest first.
    pub timeline: Vec<AuditRow>,
    /// Background work written for the request (emails, erasure), oldest first.
    pub jobs: Vec<JobRow>,
    /// Where the erasure stands at each target.
    pub targets: Vec<crate::store::targets::CallRow>,
}

/// A request of any tenant, with its timeline and jobs.
pub fn detail(conn: &mut Conn<'_>, id: RequestId) -> Result<Detail, StoreError> {
    let id = id.to_string();
    let d: DetailRow = with_conn!(conn, |c| er::table
        .find(&id)
        .select(DetailRow::as_select())
        .first(c))?;
    let tenant = d.row.tenant_id.clone();
    let timeline: Vec<AuditRow> = with_conn!(conn, |c| audit_events::table
        .filter(audit_events::request_id.eq(&id))
        .filter(audit_events::tenant_id.eq(&tenant))
        .order(audit_events::seq.asc())
        .limit(MAX_TIMELINE)
        .select(AuditRow::as_select())
        .load(c))?;
    let job_rows: Vec<JobRow> = with_conn!(conn, |c| jobs::table
        .filter(jobs::request_id.eq(&id))
        .order(jobs::id.asc())
        .limit(MAX_TIMELINE)
        .select(JobRow::as_select())
        .load(c))?;
    let targets =
        crate::store::targets::calls(conn, id.parse().map_err(|_| StoreError::NotFound)?)?;
    let mut items = with_names(conn, vec![d.row])?;
    let item = items
        .pop()
        .ok_or_else(|| StoreError::Internal("request vanished".into()))?;
    Ok(Detail {
        item,
        subject_email_given: d.subject_email.is_some(),
        reason: d.reason,
        decision_code: d.decision_code,
        extension_reason: d.extension_reason,
        extended_by: d.extended_by,
        cancel_reason: d.cancel_reason,
        timeline,
        jobs: job_rows,
        targets,
    })
}

/// Requests by id (a bulk selection), in the order given; unknown ids are
/// left out.
pub fn by_ids(conn: &mut Conn<'_>, ids: &[RequestId]) -> Result<Vec<QueueItem>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let rows: Vec<QueueRow> = with_conn!(conn, |c| er::table
        .filter(er::id.eq_any(&keys))
        .limit(keys.len() as i64)
        .select(QueueRow::as_select())
        .load(c))?;
    let mut items = with_names(conn, rows)?;
    items.sort_by_key(|i| ids.iter().position(|x| *x == i.id));
    Ok(items)
}

/// Counts and lists for the daily digest.
#[derive(Debug, Clone, Default)]
pub struct DigestData {
    pub new_last_day: i64,
    pub overdue: i64,
    pub failed: i64,
    pub overdue_items: Vec<QueueItem>,
    pub failed_items: Vec<QueueItem>,
}

pub fn digest(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    list_len: i64,
) -> Result<DigestData, StoreError> {
    let day_ago = (now - Duration::days(1)).naive_utc();
    let now = now.naive_utc();
    let failed_state = RequestState::Failed.as_str();
    let new_last_day: i64 = with_conn!(conn, |c| er::table
        .filter(er::received_at.ge(day_ago))
        .count()
        .get_result(c))?;
    let overdue: i64 = with_conn!(conn, |c| er::table
        .filter(is_open())
        .filter(er::due_at.lt(now))
        .count()
        .get_result(c))?;
    let failed: i64 = with_conn!(conn, |c| er::table
        .filter(er::state.eq(failed_state))
        .count()
        .get_result(c))?;
    let overdue_rows: Vec<QueueRow> = with_conn!(conn, |c| er::table
        .filter(is_open())
        .filter(er::due_at.lt(now))
        .order((er::due_at.asc(), er::id.asc()))
        .limit(list_len)
        .select(QueueRow::as_select())
        .load(c))?;
    let failed_rows: Vec<QueueRow> = with_conn!(conn, |c| er::table
        .filter(er::state.eq(failed_state))
        .order((er::due_at.asc(), er::id.asc()))
        .limit(list_len)
        .select(QueueRow::as_select())
        .load(c))?;
    Ok(DigestData {
        new_last_day,
        overdue,
        failed,
        overdue_items: with_names(conn, overdue_rows)?,
        failed_items: with_names(conn, failed_rows)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sql_names_exactly_the_open_states() {
        let listed: Vec<String> = RequestState::OPEN
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(OPEN_SQL, format!("state IN ({})", listed.join(", ")));
        assert!(are_open_states(&RequestState::OPEN));
        assert!(!are_open_states(&RequestState::OPEN[..3]));
        assert!(!are_open_states(&RequestState::ALL));
    }

    /// SQLite uses a partial index only when the query repeats its
    /// condition: the migrations must declare the same text.
    #[test]
    fn partial_indexes_declare_open_sql() {
        for up in [
            include_str!("../../../migrations/sqlite/2026-11-25-000012_queue_indexes/up.sql"),
            include_str!("../../../migrations/postgres/2026-11-25-000012_queue_indexes/up.sql"),
        ] {
            let partial = up.matches("WHERE state IN").count();
            assert!(partial >= 2);
            assert_eq!(up.matches(&format!("WHERE {OPEN_SQL};")).count(), partial);
        }
    }
}
