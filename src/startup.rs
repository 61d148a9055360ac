//! Wiring: build the application from settings, bind first (so port 0 works
//! and `port()` tells the real one), then run until stopped.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};

use crate::config::{Settings, SHUTDOWN_GRACE};
use crate::domain::secret::SecretDigest;
use crate::http::{self, AppState};
use crate::store::{Store, StoreError};
use crate::telemetry;

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
}

impl Application {
    /// Open the database, apply migrations, bind the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let store = Store::open(&settings.database_url, &settings.store)?;
        let applied = store.migrate().await.map_err(migrate_error)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "migrations applied");
        }
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("LETHE_BIND: cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let state = AppState {
            store: store.clone(),
            subject_key: settings.subject_key.clone(),
            admin_token: settings
                .admin_token
                .as_ref()
                .map(|t| SecretDigest::of(t.expose())),
        };
        let data = web::Data::new(state);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Compress::default())
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Cache-Control", "no-store")),
                )
                .wrap(from_fn(telemetry::access_log))
                .app_data(data.clone())
                .configure(http::routes)
        })
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener)?;
        if let Some(n) = settings.http_workers {
            server = server.workers(n);
        }
        Ok(Self {
            port,
            server: server.run(),
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn migrate_error(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("LETHE_DATABASE_URL: cannot prepare the database: {e}")
}
