//! Support accounts: users (argon2id hashes, never passwords), browser
//! sessions and API tokens (SHA-256 digests of random secrets, never the
//! secrets), and the failed-login counter behind the lock-out.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{support_sessions as ss, support_tokens as st, support_users as su};
use crate::domain::secret::SecretDigest;
use crate::domain::support::{LockoutPolicy, SupportUserId};
use crate::store::tenants::utc;
use crate::store::{Conn, StoreError};
use crate::with_conn;

/// A support user as the rest of lethe sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportUser {
    pub id: SupportUserId,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = su)]
struct UserRow {
    id: String,
    email: String,
    name: String,
    password_hash: String,
    created_at: NaiveDateTime,
    disabled_at: Option<NaiveDateTime>,
    failed_logins: i32,
    locked_until: Option<NaiveDateTime>,
    last_login_at: Option<NaiveDateTime>,
}

impl UserRow {
    fn into_domain(self) -> Result<SupportUser, StoreError> {
        Ok(SupportUser {
            id: self
                .id
                .parse()
                .map_err(|_| StoreError::Internal(format!("support user {}: bad id", self.id)))?,
            email: self.email,
            name: self.name,
            created_at: utc(self.created_at),
            disabled_at: self.disabled_at.map(utc),
            locked_until: self.locked_until.map(utc),
            last_login_at: self.last_login_at.map(utc),
        })
    }
}

/// Login names are compared in lower case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn create_user(
    conn: &mut Conn<'_>,
    email: &str,
    name: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> Result<SupportUser, StoreError> {
    let row = UserRow {
        id: SupportUserId::new().to_string(),
        email: normalize_email(email),
        name: name.to_owned(),
        password_hash: password_hash.to_owned(),
        created_at: now.naive_utc(),
        disabled_at: None,
        failed_logins: 0,
        locked_until: None,
        last_login_at: None,
    };
    let n = with_conn!(conn, |c| diesel::insert_into(su::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "a support user with this email already exists",
        ));
    }
    row.into_domain()
}

/// What a login attempt needs to know about the account.
pub struct LoginRecord {
    pub user: SupportUser,
    pub password_hash: String,
}

pub fn for_login(conn: &mut Conn<'_>, email: &str) -> Result<Option<LoginRecord>, StoreError> {
    let email = normalize_email(email);
    let row: Option<UserRow> = with_conn!(conn, |c| su::table
        .filter(su::email.eq(&email))
        .select(UserRow::as_select())
        .first(c)
        .optional())?;
    row.map(|r| {
        let password_hash = r.password_hash.clone();
        Ok(LoginRecord {
            user: r.into_domain()?,
            password_hash,
        })
    })
    .transpose()
}

/// A user by id or by email.
pub fn find(conn: &mut Conn<'_>, id_or_email: &str) -> Result<SupportUser, StoreError> {
    let key = normalize_email(id_or_email);
    let row: UserRow = with_conn!(conn, |c| su::table
        .filter(su::id.eq(id_or_email).or(su::email.eq(&key)))
        .select(UserRow::as_select())
        .first(c))?;
    row.into_domain()
}

/// Users by id (to name the support users in a timeline).
pub fn names(
    conn: &mut Conn<'_>,
    ids: &[String],
) -> Result<Vec<(String, String, String)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_conn!(conn, |c| su::table
        .filter(su::id.eq_any(ids))
        .limit(ids.len() as i64)
        .select((su::id, su::name, su::email))
        .load(c))?)
}

pub fn list(conn: &mut Conn<'_>, limit: i64) -> Result<Vec<SupportUser>, StoreError> {
    let rows: Vec<UserRow> = with_conn!(conn, |c| su::table
        .order(su::email.asc())
        .limit(limit)
        .select(UserRow::as_select())
        .load(c))?;
    rows.into_iter().map(UserRow::into_domain).collect()
}

/// Disable a user: their sessions end and their tokens are revoked at once.
/// Returns false when the user was already disabled.
pub fn disable(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (id, now) = (user.to_string(), now.naive_utc());
    let n = with_conn!(conn, |c| diesel::update(
        su::table
            .filter(su::id.eq(&id))
            .filter(su::disabled_at.is_null())
    )
    .set(su::disabled_at.eq(now))
    .execute(c))?;
    with_conn!(conn, |c| diesel::update(
        ss::table
            .filter(ss::user_id.eq(&id))
            .filter(ss::ended_at.is_null())
    )
    .set(ss::ended_at.eq(now))
    .execute(c))?;
    with_conn!(conn, |c| diesel::update(
        st::table
            .filter(st::user_id.eq(&id))
            .filter(st::revoked_at.is_null())
    )
    .set(st::revoked_at.eq(now))
    .execute(c))?;
    Ok(n > 0)
}

/// Count a failed login (atomically, so parallel attempts all count) and lock
/// the account when the policy says so. Returns the lock's end, if it locked.
pub fn record_failure(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    policy: &LockoutPolicy,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let id = user.to_string();
    let failures: i32 = with_conn!(conn, |c| diesel::update(su::table.find(&id))
        .set(su::failed_logins.eq(su::failed_logins + 1))
        .returning(su::failed_logins)
        .get_result(c))?;
    let after = policy.after_failure(failures - 1, now);
    if let Some(until) = after.locked_until {
        with_conn!(conn, |c| diesel::update(su::table.find(&id))
            .set((
                su::failed_logins.eq(after.failures),
                su::locked_until.eq(Some(until.naive_utc())),
            ))
            .execute(c))?;
    }
    Ok(after.locked_until)
}

/// A successful login: the counter resets. Expired or ended sessions of the
/// user are deleted, so the table stays small.
pub fn record_success(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (id, now) = (user.to_string(), now.naive_utc());
    with_conn!(conn, |c| diesel::update(su::table.find(&id))
        .set((
            su::failed_logins.eq(0),
            su::locked_until.eq(None::<NaiveDateTime>),
            su::last_login_at.eq(Some(now)),
        ))
        .execute(c))?;
    with_conn!(conn, |c| diesel::delete(
        ss::table
            .filter(ss::user_id.eq(&id))
            .filter(ss::expires_at.lt(now).or(ss::ended_at.is_not_null()))
    )
    .execute(c))?;
    Ok(())
}

pub fn set_password(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    password_hash: &str,
) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(su::table.find(user.to_string()))
        .set((
            su::password_hash.eq(password_hash),
            su::failed_logins.eq(0),
            su::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(c))?;
    Ok(())
}

/// Start a session; the cookie carries the secret whose digest this stores.
pub fn create_session(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    digest: &SecretDigest,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    with_conn!(conn, |c| diesel::insert_into(ss::table)
        .values((
            ss::id.eq(&id),
            ss::user_id.eq(user.to_string()),
            ss::token_hash.eq(digest.as_str()),
            ss::created_at.eq(now.naive_utc()),
            ss::expires_at.eq(expires_at.naive_utc()),
        ))
        .execute(c))?;
    Ok(id)
}

/// The live session with this digest and its (enabled) user.
pub fn find_session(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
    now: DateTime<Utc>,
) -> Result<Option<(SupportUser, String)>, StoreError> {
    let now = now.naive_utc();
    let found: Option<(UserRow, String)> = with_conn!(conn, |c| ss::table
        .inner_join(su::table)
        .filter(ss::token_hash.eq(digest.as_str()))
        .filter(ss::ended_at.is_null())
        .filter(ss::expires_at.gt(now))
        .filter(su::disabled_at.is_null())
        .select((UserRow::as_select(), ss::id))
        .first(c)
        .optional())?;
    found.map(|(u, s)| Ok((u.into_domain()?, s))).transpose()
}

pub fn end_session(conn: &mut Conn<'_>, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    with_conn!(conn, |c| diesel::update(
        ss::table
            .filter(ss::id.eq(id))
            .filter(ss::ended_at.is_null())
    )
    .set(ss::ended_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(())
}

/// An API token's metadata (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportToken {
    pub id: String,
    pub user_id: SupportUserId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub fn create_token(
    conn: &mut Conn<'_>,
    user: SupportUserId,
    name: &str,
    prefix: &str,
    digest: &SecretDigest,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    with_conn!(conn, |c| diesel::insert_into(st::table)
        .values((
            st::id.eq(&id),
            st::user_id.eq(user.to_string()),
            st::name.eq(name),
            st::token_prefix.eq(prefix),
            st::token_hash.eq(digest.as_str()),
            st::created_at.eq(now.naive_utc()),
        ))
        .execute(c))?;
    Ok(id)
}

/// The live token with this digest and its (enabled) user.
pub fn find_token(
    conn: &mut Conn<'_>,
    digest: &SecretDigest,
) -> Result<Option<(SupportUser, String)>, StoreError> {
    let found: Option<(UserRow, String)> = with_conn!(conn, |c| st::table
        .inner_join(su::table)
        .filter(st::token_hash.eq(digest.as_str()))
        .filter(st::revoked_at.is_null())
        .filter(su::disabled_at.is_null())
        .select((UserRow::as_select(), st::id))
        .first(c)
        .optional())?;
    found.map(|(u, t)| Ok((u.into_domain()?, t))).transpose()
}

pub fn list_tokens(
    conn: &mut Conn<'_>,
    user: SupportUserId,
) -> Result<Vec<SupportToken>, StoreError> {
    let rows: Vec<(
        String,
        String,
        String,
        String,
        NaiveDateTime,
        Option<NaiveDateTime>,
    )> = with_conn!(conn, |c| st::table
        .filter(st::user_id.eq(user.to_string()))
        .order(st::id.asc())
        .limit(1000)
        .select((
            st::id,
            st::user_id,
            st::name,
            st::token_prefix,
            st::created_at,
            st::revoked_at
        ))
        .load(c))?;
    rows.into_iter()
        .map(|(id, user_id, name, prefix, created_at, revoked_at)| {
            Ok(SupportToken {
                user_id: user_id
                    .parse()
                    .map_err(|_| StoreError::Internal(format!("support token {id}: bad user")))?,
                id,
                name,
                prefix,
                created_at: utc(created_at),
                revoked_at: revoked_at.map(utc),
            })
        })
        .collect()
}

/// Revoke a token. Unknown is `NotFound`; revoking twice is harmless.
pub fn revoke_token(conn: &mut Conn<'_>, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let exists: i64 = with_conn!(conn, |c| st::table
        .filter(st::id.eq(id))
        .count()
        .get_result(c))?;
    if exists == 0 {
        return Err(StoreError::NotFound);
    }
    with_conn!(conn, |c| diesel::update(
        st::table
            .filter(st::id.eq(id))
            .filter(st::revoked_at.is_null())
    )
    .set(st::revoked_at.eq(now.naive_utc()))
    .execute(c))?;
    Ok(())
}
