//! The audit trail: one hash chain per request. The request row keeps the
//! chain's head (`audit_seq`, `audit_head`), so appending needs no extra read
//! and a truncated tail is detectable.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{audit_events, erasure_requests};
use super::tenants::utc;
use super::{Conn, StoreError};
use crate::domain::audit::{micros, Actor, ChainedFields, GENESIS};
use crate::domain::ids::AuditEventId;
use crate::domain::{RequestId, TenantId};
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = audit_events)]
#[diesel(treat_none_as_null = true)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: String,
    pub request_id: String,
    pub seq: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub event: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub detail: Option<String>,
    pub at: NaiveDateTime,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    fn chained(&self) -> ChainedFields<'_> {
        ChainedFields {
            request_id: &self.request_id,
            tenant_id: &self.tenant_id,
            seq: self.seq,
            from_state: self.from_state.as_deref(),
            to_state: &self.to_state,
            event: &self.event,
            actor_kind: &self.actor_kind,
            actor_id: &self.actor_id,
            detail: self.detail.as_deref(),
            at_micros: micros(utc(self.at)),
            prev_hash: &self.prev_hash,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        utc(self.at)
    }
}

/// The head of a request's chain: its last sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// What happened, for [`chain_event`].
pub struct EventSpec<'a> {
    pub from_state: Option<&'a str>,
    pub to_state: &'a str,
    pub event: &'a str,
    pub actor: &'a Actor,
    pub detail: Option<String>,
}

/// Build the next event of a chain (pure: computes the hash, writes nothing).
pub fn chain_event(
    tenant: TenantId,
    request: RequestId,
    head: &ChainHead,
    spec: EventSpec<'_>,
    at: DateTime<Utc>,
) -> AuditRow {
    let mut row = AuditRow {
        id: AuditEventId::new().to_string(),
        tenant_id: tenant.to_string(),
        request_id: request.to_string(),
        seq: head.seq + 1,
        from_state: spec.from_state.map(str::to_owned),
        to_state: spec.to_state.to_owned(),
        event: spec.event.to_owned(),
        actor_kind: spec.actor.kind.as_str().to_owned(),
        actor_id: spec.actor.id.clone(),
        detail: spec.detail,
        at: at.naive_utc(),
        prev_hash: head.hash.clone(),
        hash: String::new(),
    };
    row.hash = row.chained().hash();
    row
}

/// Insert events; a fixed-size array keeps the statement cacheable.
pub fn insert<const N: usize>(conn: &mut Conn<'_>, rows: &[AuditRow; N]) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::insert_into(audit_events::table)
        .values(rows)
        .execute(c))?;
    Ok(())
}

/// A request's events, oldest first, scoped to its tenant.
pub fn for_request(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    request: RequestId,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(with_conn!(conn, |c| audit_events::table
        .filter(audit_events::request_id.eq(request.to_string()))
        .filter(audit_events::tenant_id.eq(tenant.to_string()))
        .order(audit_events::seq.asc())
        .select(AuditRow::as_select())
        .load(c))?)
}

/// The first broken link found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub request_id: String,
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub requests: u64,
    pub events: u64,
    pub broken: Option<BrokenLink>,
}

/// Check every request's chain: each event's hash, its link to the previous
/// one, gapless sequence numbers, and the head recorded on the request row.
/// Stops at the first broken link.
pub fn verify(conn: &mut Conn<'_>, page: i64) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut after = String::new();
    loop {
        let heads: Vec<(String, i64, String)> = with_conn!(conn, |c| erasure_requests::table
            .filter(erasure_requests::id.gt(&after))
            .order(erasure_requests::id.asc())
            .limit(page)
            .select((
                erasure_requests::id,
                erasure_requests::audit_seq,
                erasure_requests::audit_head
            ))
            .load(c))?;
        let Some(last) = heads.last() else { break };
        after = last.0.clone();
        let ids: Vec<&String> = heads.iter().map(|h| &h.0).collect();
        let events: Vec<AuditRow> = with_conn!(conn, |c| audit_events::table
            .filter(audit_events::request_id.eq_any(&ids))
            .order((audit_events::request_id.asc(), audit_events::seq.asc()))
            .select(AuditRow::as_select())
            .load(c))?;
        let mut events = events.into_iter().peekable();
        for (request_id, head_seq, head_hash) in &heads {
            report.requests += 1;
            let mut prev = ChainHead::genesis();
            while let Some(ev) = events.next_if(|e| &e.request_id == request_id) {
                report.events += 1;
                let problem = if ev.seq != prev.seq + 1 {
                    Some(format!(
                        "expected event {} but found {}",
                        prev.seq + 1,
                        ev.seq
                    ))
                } else if ev.prev_hash != prev.hash {
                    Some("does not link to the previous event".to_owned())
                } else if ev.chained().hash() != ev.hash {
                    Some("its content does not match its hash".to_owned())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    report.broken = Some(BrokenLink {
                        request_id: request_id.clone(),
                        seq: ev.seq,
                        problem,
                    });
                    return Ok(report);
                }
                prev = ChainHead {
                    seq: ev.seq,
                    hash: ev.hash.clone(),
                };
            }
            if prev.seq != *head_seq || &prev.hash != head_hash {
                report.broken = Some(BrokenLink {
                    request_id: request_id.clone(),
                    seq: prev.seq + 1,
                    problem: format!(
                        "the request records {head_seq} events but the chain ends after {}",
                        prev.seq
                    ),
                });
                return Ok(report);
            }
        }
    }
    Ok(report)
}
