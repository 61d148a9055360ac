//! Operator actions shared by the admin API and the CLI.

use crate::domain::deadline;
use crate::domain::sealed::Sealer;
use crate::domain::secret::{Secret, API_KEY_PREFIX};
use crate::domain::target::Destination;
use crate::domain::tenant::{Tenant, TenantSettings};
use crate::domain::{ApiKeyId, TenantId};
use crate::store::api_keys::{self, ApiKey};
use crate::store::targets::{self, TargetRow};
use crate::store::{tenants, Store, StoreError};

/// Create a tenant with a fresh callback secret (returned once: platform
/// callbacks are signed with it).
pub async fn create_tenant(
    store: &Store,
    sealer: &Sealer,
    settings: TenantSettings,
) -> Result<(Tenant, Secret), StoreError> {
    let now = deadline::now();
    let tenant = Tenant {
        id: TenantId::new(),
        settings,
        created_at: now,
        updated_at: now,
    };
    let secret = Secret::generate(CALLBACK_SECRET_PREFIX);
    let sealed = sealer.seal(secret.expose().as_bytes());
    let t = tenant.clone();
    store
        .write(move |conn| {
            tenants::insert(conn, &t)?;
            tenants::set_callback_secret(conn, t.id, &sealed)
        })
        .await?;
    Ok((tenant, secret))
}

/// Register an erasure target; its signing secret is returned once.
pub async fn create_target(
    store: &Store,
    sealer: &Sealer,
    tenant: TenantId,
    name: String,
    destination: Destination,
    timeout_ms: i32,
) -> Result<(TargetRow, Secret), StoreError> {
    let kind = destination.kind().as_str().to_owned();
    let (url, owner_email) = match destination {
        Destination::Webhook(url) => (url.as_str().to_owned(), None),
        Destination::Manual(owner) => (String::new(), Some(owner.as_str().to_owned())),
    };
    let secret = Secret::generate(TARGET_SECRET_PREFIX);
    let now = deadline::now().naive_utc();
    let row = TargetRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        name,
        url,
        secret_box: sealer.seal(secret.expose().as_bytes()),
        timeout_ms,
        enabled: true,
        created_at: now,
        updated_at: now,
        kind,
        owner_email,
    };
    let r = row.clone();
    store
        .write(move |conn| {
            tenants::get(conn, tenant)?;
            targets::insert(conn, &r)
        })
        .await?;
    Ok((row, secret))
}

pub const CALLBACK_SECRET_PREFIX: &str = "lethe_cb_";
pub const TARGET_SECRET_PREFIX: &str = "lethe_ts_";

/// Issue a new API key for a tenant. The secret is returned once and only its
/// digest is stored.
pub async fn create_api_key(
    store: &Store,
    tenant: TenantId,
    name: String,
) -> Result<(ApiKey, Secret), StoreError> {
    let secret = Secret::generate(API_KEY_PREFIX);
    let key = ApiKey {
        id: ApiKeyId::new(),
        tenant_id: tenant,
        name,
        prefix: secret.expose()[..API_KEY_PREFIX.len() + 4].to_owned(),
        created_at: deadline::now(),
        revoked_at: None,
    };
    let (k, digest) = (key.clone(), secret.digest());
    store
        .write(move |conn| {
            tenants::get(conn, tenant)?;
            api_keys::insert(conn, &k, &digest)
        })
        .await?;
    Ok((key, secret))
}
