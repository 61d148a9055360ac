//! The durable job table (transactional outbox). Jobs are enqueued inside the
//! transaction of the change that causes them.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::jobs;
use super::{Conn, StoreError};
use crate::domain::outbox::JobKind;
use crate::domain::{JobId, RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub request_id: Option<String>,
    pub kind: String,
    pub payload: String,
    pub run_at: NaiveDateTime,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub dead: bool,
}

impl JobRow {
    pub fn new(
        kind: JobKind,
        tenant: Option<TenantId>,
        request: Option<RequestId>,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: JobId::new().to_string(),
            tenant_id: tenant.map(|t| t.to_string()),
            request_id: request.map(|r| r.to_string()),
            kind: kind.as_str().to_owned(),
            payload: payload.to_string(),
            run_at: now.naive_utc(),
            attempts: 0,
            max_attempts: kind.max_attempts(),
            lease_until: None,
            last_error: None,
            created_at: now.naive_utc(),
            finished_at: None,
            dead: false,
        }
    }
}

pub fn enqueue(conn: &mut Conn<'_>, rows: &[JobRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    with_conn!(conn, |c| diesel::insert_into(jobs::table)
        .values(rows)
        .execute(c))?;
    Ok(())
}

/// The jobs written for a request, oldest first.
pub fn for_request(conn: &mut Conn<'_>, request: RequestId) -> Result<Vec<JobRow>, StoreError> {
    Ok(with_conn!(conn, |c| jobs::table
        .filter(jobs::request_id.eq(request.to_string()))
        .order(jobs::id.asc())
        .select(JobRow::as_select())
        .load(c))?)
}
