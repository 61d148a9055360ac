//! Wiring: build the application from settings, bind first (so port 0 works
//! and `port()` tells the real one), then run until stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};

use crate::config::{Settings, SHUTDOWN_GRACE};
use crate::domain::receipt::ReceiptSigner;
use crate::domain::sealed::Sealer;
use crate::domain::secret::SecretDigest;
use crate::email::Mailer;
use crate::http::{self, AppState};
use crate::jobs::{JobContext, Runner};
use crate::store::{Store, StoreError};
use crate::telemetry;

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    runner: Runner,
    workers: usize,
    poll: Duration,
}

impl Application {
    /// Open the database, apply migrations, bind the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let store = Store::open(&settings.database_url, &settings.store)?;
        let applied = store.migrate().await.map_err(migrate_error)?;
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "migrations applied");
        }
        let mailer = Mailer::new(
            settings.smtp_url.as_ref(),
            &settings.outbox_dir,
            settings.mail_from.clone(),
            settings.smtp_timeout,
            settings.smtp_connections,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        if let Some(digest) = &settings.support.digest {
            let hour = digest.hour;
            store
                .write(move |conn| {
                    crate::store::support::digest::schedule(
                        conn,
                        hour,
                        crate::domain::deadline::now(),
                    )
                })
                .await?;
        }
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("LETHE_BIND: cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        // A public URL derived from a bind on port 0 gets the real port.
        let mut public_url = settings.public_url.clone();
        if public_url.port() == Some(0) {
            let _ = public_url.set_port(Some(port));
        }
        let sealer = Arc::new(Sealer::new(&settings.subject_key));
        let signer = Arc::new(ReceiptSigner::new(&settings.subject_key));
        let runner = Runner::new(JobContext {
            store: store.clone(),
            mailer,
            public_url: public_url.clone(),
            subject_prefix: settings.mail_subject_prefix.clone(),
            workflow: settings.workflow.clone(),
            http: crate::egress::target_client()?,
            callback_http: crate::egress::callback_client(settings.callbacks_allow_private)?,
            callbacks_allow_private: settings.callbacks_allow_private,
            sealer: sealer.clone(),
            signer: signer.clone(),
            lease: chrono::Duration::from_std(settings.job_lease)?,
            opendsr: settings.opendsr.clone(),
            support_digest: settings.support.digest.clone(),
            answers: Default::default(),
        });
        if settings.opendsr.is_none() {
            tracing::info!("OpenDSR is off: set LETHE_OPENDSR_KEY_FILE and LETHE_OPENDSR_CERT_FILE to sign responses and callbacks");
        }
        let state = AppState {
            store: store.clone(),
            subject_key: settings.subject_key.clone(),
            admin_token: settings
                .admin_token
                .as_ref()
                .map(|t| SecretDigest::of(t.expose())),
            workflow: settings.workflow.clone(),
            sealer,
            signer,
            opendsr: settings.opendsr.clone(),
            callbacks_allow_private: settings.callbacks_allow_private,
            public_url,
            support: http::support::SupportConfig::new(
                settings.support.clone(),
                &settings.public_url,
            ),
            submit_keys: Default::default(),
            gauges: Arc::new(crate::metrics::Gauges::new(settings.metrics_max_age)),
        };
        let data = web::Data::new(state);
        let limits = web::Data::new(http::limit::RateLimits::new(&settings.http));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(
                    actix_web::middleware::ErrorHandlers::new()
                        .default_handler_client(http::error::json_for_bare_errors),
                )
                .wrap(Compress::default())
                .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
                .wrap(http::extract::json_payload_errors())
                .wrap(from_fn(http::limit::deadline))
                .wrap(from_fn(http::limit::rate_limit))
                .wrap(from_fn(telemetry::access_log))
                .app_data(data.clone())
                .app_data(limits.clone())
                .configure(http::routes)
        })
        // Database work runs on each worker's blocking threads; more of them
        // than the pool has connections would only wait (and cost memory).
        .worker_max_blocking_threads(settings.store.pg_pool_size.max(8) as usize)
        .client_request_timeout(settings.http.client_request_timeout)
        .keep_alive(settings.http.keep_alive)
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
        if let Some(n) = settings.http_workers {
            server = server.workers(n);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            server,
            store,
            runner,
            workers: settings.job_workers,
            poll: settings.job_poll,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The job runner, for driving background work step by step in tests.
    pub fn runner(&self) -> Runner {
        self.runner.clone()
    }

    /// Serve HTTP and run the job workers. On SIGTERM/SIGINT the server stops
    /// accepting, finishes in-flight requests, then the workers finish their
    /// current job and hand back their leases.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let workers = self.runner.spawn(self.workers, self.poll, stop_rx);
        let result = self.server.await;
        let _ = stop_tx.send(true);
        let drain = async {
            for w in workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("job workers did not stop within the grace period");
        }
        result
    }
}

fn migrate_error(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("LETHE_DATABASE_URL: cannot prepare the database: {e}")
}
