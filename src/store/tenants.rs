//! Tenants: the controllers whose privacy contacts approve erasures.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::tenants;
use super::{Conn, StoreError};
use crate::domain::tenant::{ApprovalPolicy, Locale, PrivacyContact, Tenant, TenantSettings};
use crate::domain::values::{EmailAddress, Name};
use crate::domain::TenantId;
use crate::with_conn;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tenants)]
#[diesel(treat_none_as_null = true)]
pub(super) struct TenantRow {
    id: String,
    name: String,
    approval_policy: String,
    contact_name: Option<String>,
    contact_email: Option<String>,
    locale: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    notify_subject: bool,
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

impl TenantRow {
    fn from_domain(t: &Tenant) -> Self {
        let s = &t.settings;
        Self {
            id: t.id.to_string(),
            name: s.name.as_str().to_owned(),
            approval_policy: s.policy.as_str().to_owned(),
            contact_name: s
                .contact
                .as_ref()
                .and_then(|c| c.name.as_ref())
                .map(|n| n.as_str().to_owned()),
            contact_email: s.contact.as_ref().map(|c| c.email.as_str().to_owned()),
            locale: s.locale.as_str().to_owned(),
            created_at: t.created_at.naive_utc(),
            updated_at: t.updated_at.naive_utc(),
            notify_subject: s.notify_subject,
        }
    }

    pub(super) fn into_domain(self) -> Result<Tenant, StoreError> {
        let corrupt = |what: &str| StoreError::Internal(format!("tenant {}: bad {what}", self.id));
        let policy =
            ApprovalPolicy::parse(&self.approval_policy).ok_or_else(|| corrupt("policy"))?;
        let contact = match &self.contact_email {
            Some(email) => Some(PrivacyContact {
                name: match &self.contact_name {
                    Some(n) => {
                        Some(Name::parse("contact_name", n).map_err(|_| corrupt("contact name"))?)
                    }
                    None => None,
                },
                email: EmailAddress::parse("contact_email", email)
                    .map_err(|_| corrupt("contact email"))?,
            }),
            None => None,
        };
        let mut settings = TenantSettings::new(
            Name::parse("name", &self.name).map_err(|_| corrupt("name"))?,
            policy,
            contact,
            Locale::parse(&self.locale).ok_or_else(|| corrupt("locale"))?,
        )
        .map_err(|_| corrupt("settings"))?;
        settings.notify_subject = self.notify_subject;
        Ok(Tenant {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            settings,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

pub fn insert(conn: &mut Conn<'_>, tenant: &Tenant) -> Result<(), StoreError> {
    let row = TenantRow::from_domain(tenant);
    with_conn!(conn, |c| diesel::insert_into(tenants::table)
        .values(&row)
        .execute(c))?;
    Ok(())
}

pub fn update(conn: &mut Conn<'_>, tenant: &Tenant) -> Result<(), StoreError> {
    let row = TenantRow::from_domain(tenant);
    let n = with_conn!(conn, |c| diesel::update(tenants::table.find(&row.id))
        .set(&row)
        .execute(c))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Store the tenant's (sealed) callback secret.
pub fn set_callback_secret(
    conn: &mut Conn<'_>,
    id: TenantId,
    sealed: &str,
) -> Result<(), StoreError> {
    let n = with_conn!(conn, |c| diesel::update(
        tenants::table.find(id.to_string())
    )
    .set(tenants::callback_secret_box.eq(Some(sealed)))
    .execute(c))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub fn callback_secret(conn: &mut Conn<'_>, id: TenantId) -> Result<Option<String>, StoreError> {
    Ok(with_conn!(conn, |c| tenants::table
        .find(id.to_string())
        .select(tenants::callback_secret_box)
        .first::<Option<String>>(c))?)
}

pub fn get(conn: &mut Conn<'_>, id: TenantId) -> Result<Tenant, StoreError> {
    let row: TenantRow = with_conn!(conn, |c| tenants::table
        .find(id.to_string())
        .select(TenantRow::as_select())
        .first(c))?;
    row.into_domain()
}

/// Tenants in creation order, after `after` (a cursor), at most `limit`.
pub fn list(
    conn: &mut Conn<'_>,
    after: Option<TenantId>,
    limit: i64,
) -> Result<Vec<Tenant>, StoreError> {
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let rows: Vec<TenantRow> = with_conn!(conn, |c| tenants::table
        .filter(tenants::id.gt(&after))
        .order(tenants::id.asc())
        .limit(limit)
        .select(TenantRow::as_select())
        .load(c))?;
    rows.into_iter().map(TenantRow::into_domain).collect()
}
