//! OpenDSR requests: the controller's `subject_request_id` mapped to lethe's
//! request, and the signed status callbacks planned on every status change.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::jobs::JobRow;
use super::schema::opendsr_requests as od;
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::opendsr::Status;
use crate::domain::outbox::JobKind;
use crate::domain::{RequestId, RequestState, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = od)]
struct Row {
    tenant_id: String,
    subject_request_id: String,
    request_id: String,
    regulation: String,
    api_version: String,
    status_callback_urls: String,
    submitted_at: NaiveDateTime,
    received_at: NaiveDateTime,
    opengdpr: bool,
}

/// One OpenDSR request as lethe keeps it.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub tenant_id: TenantId,
    pub subject_request_id: String,
    pub request_id: RequestId,
    pub regulation: String,
    pub api_version: String,
    pub status_callback_urls: Vec<String>,
    pub received_at: DateTime<Utc>,
    /// Came in on the old OpenGDPR routes: callbacks carry X-OpenGDPR-* headers.
    pub opengdpr: bool,
}

impl Row {
    fn into_domain(self) -> Result<Mapping, StoreError> {
        let corrupt = |w: &str| StoreError::Internal(format!("opendsr request: bad {w}"));
        Ok(Mapping {
            tenant_id: self.tenant_id.parse().map_err(|_| corrupt("tenant id"))?,
            request_id: self.request_id.parse().map_err(|_| corrupt("request id"))?,
            status_callback_urls: serde_json::from_str(&self.status_callback_urls)
                .map_err(|_| corrupt("callback urls"))?,
            subject_request_id: self.subject_request_id,
            regulation: self.regulation,
            api_version: self.api_version,
            received_at: utc(self.received_at),
            opengdpr: self.opengdpr,
        })
    }
}

/// What a new mapping holds.
pub struct NewMapping<'a> {
    pub tenant: TenantId,
    pub subject_request_id: &'a str,
    pub request: RequestId,
    pub regulation: &'a str,
    pub api_version: &'a str,
    pub status_callback_urls: &'a [String],
    pub submitted_at: DateTime<Utc>,
    pub opengdpr: bool,
}

/// Record the mapping (a replay keeps the first one) and return it. The
/// request is marked linked first, in the same transaction: that takes its
/// row lock, so a transition holding the request either commits before
/// (and this mapping's status starts from where it left the request) or
/// waits and then sees the mapping; a compare-and-set write planned on the
/// row as it was misses.
pub fn insert(
    conn: &mut Conn<'_>,
    m: NewMapping<'_>,
    now: DateTime<Utc>,
) -> Result<Mapping, StoreError> {
    let row = Row {
        tenant_id: m.tenant.to_string(),
        subject_request_id: m.subject_request_id.to_owned(),
        request_id: m.request.to_string(),
        regulation: m.regulation.to_owned(),
        api_version: m.api_version.to_owned(),
        status_callback_urls: serde_json::to_string(m.status_callback_urls)
            .map_err(|e| StoreError::Internal(e.to_string()))?,
        submitted_at: m.submitted_at.naive_utc(),
        received_at: now.naive_utc(),
        opengdpr: m.opengdpr,
    };
    {
        use super::schema::erasure_requests as er;
        with_conn!(conn, |c| diesel::update(
            er::table.filter(er::id.eq(m.request.to_string()))
        )
        .set(er::opendsr_linked.eq(true))
        .execute(c))?;
    }
    with_conn!(conn, |c| diesel::insert_into(od::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    find(conn, m.tenant, m.subject_request_id)?.ok_or(StoreError::NotFound)
}

pub fn find(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    subject_request_id: &str,
) -> Result<Option<Mapping>, StoreError> {
    let row: Option<Row> = with_conn!(conn, |c| od::table
        .filter(od::tenant_id.eq(tenant.to_string()))
        .filter(od::subject_request_id.eq(subject_request_id))
        .select(Row::as_select())
        .first(c)
        .optional())?;
    row.map(Row::into_domain).transpose()
}

/// After a transition of `id` from `from` to `to`: one signed callback job
/// per status callback URL of every OpenDSR request mapped to it, when the
/// OpenDSR status changed, for the transition's write to enqueue. `linked`:
/// the request row's mark (see [`insert`]); without it there is nothing to
/// look up.
pub fn on_transition(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    id: RequestId,
    linked: bool,
    (from, to): (RequestState, RequestState),
    now: DateTime<Utc>,
) -> Result<Vec<JobRow>, StoreError> {
    let status = Status::of(to);
    if !linked || Status::of(from) == status {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = with_conn!(conn, |c| od::table
        .filter(od::request_id.eq(id.to_string()))
        .select(Row::as_select())
        .load(c))?;
    let mut jobs_to_write = Vec::new();
    for m in rows.into_iter().map(Row::into_domain) {
        let m = m?;
        for url in &m.status_callback_urls {
            jobs_to_write.push(JobRow::new(
                JobKind::OpenDsrCallback,
                Some(tenant),
                Some(id),
                serde_json::json!({
                    "subject_request_id": m.subject_request_id,
                    "status_callback_url": url,
                    "request_status": status,
                    "opengdpr": m.opengdpr,
                }),
                now,
            ));
        }
    }
    Ok(jobs_to_write)
}
