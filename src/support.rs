//! Support accounts as the CLI and the dashboard manage them: argon2id
//! password hashes (computed on the blocking pool), login with lock-out,
//! sessions and API tokens (random secrets shown once, stored as SHA-256).

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::domain::deadline;
use crate::domain::secret::Secret;
use crate::domain::support::{Password, SupportPolicy, SESSION_PREFIX, TOKEN_PREFIX};
use crate::domain::values::{EmailAddress, Name};
use crate::store::support::accounts::{self, SupportUser};
use crate::store::{Store, StoreError};

/// argon2id (v19, the crate's defaults: 19 MiB, 2 passes, 1 lane), PHC string.
pub fn hash_password(p: &Password) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(p.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Internal(format!("password hash: {e}")))
}

pub fn verify_password(hash: &str, presented: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(presented.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when there is no account, so an unknown login
/// takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let p = Password::parse("lethe-no-such-account").expect("long enough");
        hash_password(&p).unwrap_or_default()
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("password task failed: {e}")))
}

pub async fn create_user(
    store: &Store,
    email: &EmailAddress,
    name: &Name,
    password: Password,
) -> Result<SupportUser, StoreError> {
    let hash = blocking(move || hash_password(&password)).await??;
    let (email, name) = (email.as_str().to_owned(), name.as_str().to_owned());
    store
        .write(move |conn| accounts::create_user(conn, &email, &name, &hash, deadline::now()))
        .await
}

pub async fn set_password(
    store: &Store,
    who: &str,
    password: Password,
) -> Result<SupportUser, StoreError> {
    let hash = blocking(move || hash_password(&password)).await??;
    let who = who.to_owned();
    store
        .write(move |conn| {
            let user = accounts::find(conn, &who)?;
            accounts::set_password(conn, user.id, &hash)?;
            Ok(user)
        })
        .await
}

/// Disable a user (by id or email): sessions end, tokens stop working.
pub async fn disable_user(store: &Store, who: &str) -> Result<(SupportUser, bool), StoreError> {
    let who = who.to_owned();
    store
        .write(move |conn| {
            let user = accounts::find(conn, &who)?;
            let changed = accounts::disable(conn, user.id, deadline::now())?;
            Ok((user, changed))
        })
        .await
}

/// Issue an API token for a user; the secret is returned once.
pub async fn create_token(
    store: &Store,
    who: &str,
    name: &str,
) -> Result<(SupportUser, String, Secret), StoreError> {
    let secret = Secret::generate(TOKEN_PREFIX);
    let digest = secret.digest();
    let prefix = secret.expose()[..TOKEN_PREFIX.len() + 4].to_owned();
    let (who, name) = (who.to_owned(), name.to_owned());
    let (user, id) = store
        .write(move |conn| {
            let user = accounts::find(conn, &who)?;
            if user.disabled_at.is_some() {
                return Err(StoreError::Conflict("the support user is disabled"));
            }
            let id =
                accounts::create_token(conn, user.id, &name, &prefix, &digest, deadline::now())?;
            Ok((user, id))
        })
        .await?;
    Ok((user, id, secret))
}

/// The result of a login attempt.
pub enum Login {
    /// Logged in: the cookie carries `secret`.
    Ok {
        user: SupportUser,
        secret: Secret,
        expires_at: DateTime<Utc>,
    },
    /// Wrong email or password, disabled, or locked. The caller is not told
    /// which, so logins cannot probe for accounts.
    Refused,
}

/// Check a password with the lock-out policy and start a session.
pub async fn login(
    store: &Store,
    policy: &SupportPolicy,
    email: &str,
    password: String,
    now: DateTime<Utc>,
) -> Result<Login, StoreError> {
    let lookup = email.to_owned();
    let record = store
        .read(move |conn| accounts::for_login(conn, &lookup))
        .await?;
    let Some(record) = record else {
        blocking(move || verify_password(dummy_hash(), &password)).await?;
        tracing::warn!("support login refused: unknown account");
        return Ok(Login::Refused);
    };
    let user = record.user;
    if user.disabled_at.is_some() {
        blocking(move || verify_password(dummy_hash(), &password)).await?;
        tracing::warn!(user = %user.id, "support login refused: account disabled");
        return Ok(Login::Refused);
    }
    if policy.lockout.is_locked(user.locked_until, now) {
        tracing::warn!(user = %user.id, "support login refused: account locked");
        return Ok(Login::Refused);
    }
    let hash = record.password_hash;
    let ok = blocking(move || verify_password(&hash, &password)).await?;
    let id = user.id;
    if !ok {
        let lockout = policy.lockout;
        let locked = store
            .write(move |conn| accounts::record_failure(conn, id, &lockout, now))
            .await?;
        match locked {
            Some(until) => {
                tracing::warn!(user = %id, until = %until, "support account locked after repeated failed logins")
            }
            None => tracing::warn!(user = %id, "support login refused: wrong password"),
        }
        return Ok(Login::Refused);
    }
    let secret = Secret::generate(SESSION_PREFIX);
    let digest = secret.digest();
    let expires_at = now + policy.session_ttl;
    store
        .write(move |conn| {
            accounts::record_success(conn, id, now)?;
            accounts::create_session(conn, id, &digest, now, expires_at)
        })
        .await?;
    tracing::info!(user = %id, "support user logged in");
    Ok(Login::Ok {
        user,
        secret,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let p = Password::parse("correct horse battery staple").unwrap();
        let a = hash_password(&p).unwrap();
        let b = hash_password(&p).unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse battery staple"));
        assert!(!verify_password(&a, "correct horse battery stapler"));
        assert!(!verify_password("garbage", "x"));
    }
}
