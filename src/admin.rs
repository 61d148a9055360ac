//! Operator actions shared by the admin API and the CLI.

use crate::domain::deadline;
use crate::domain::secret::{Secret, API_KEY_PREFIX};
use crate::domain::tenant::{Tenant, TenantSettings};
use crate::domain::{ApiKeyId, TenantId};
use crate::store::api_keys::{self, ApiKey};
use crate::store::{tenants, Store, StoreError};

pub async fn create_tenant(store: &Store, settings: TenantSettings) -> Result<Tenant, StoreError> {
    let now = deadline::now();
    let tenant = Tenant {
        id: TenantId::new(),
        settings,
        created_at: now,
        updated_at: now,
    };
    let t = tenant.clone();
    store.write(move |conn| tenants::insert(conn, &t)).await?;
    Ok(tenant)
}

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
