//! A real lethe on a random port, on a fresh database per test: a SQLite file
//! in a temporary folder, or a new PostgreSQL database (dropped afterwards).

use std::collections::BTreeMap;
use std::path::PathBuf;

use diesel::{Connection, PgConnection, RunQueryDsl};
use lethe::config::{Settings, Sources};
use lethe::startup::Application;
use lethe::store::Store;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
const SECRET_KEY: &str = "dGVzdC1zZWNyZXQta2V5LXRlc3Qtc2VjcmV0LWtleS0xMjM0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The server PostgreSQL tests use; CI and the README point it at the local
/// server. A missing server fails the tests: they are never skipped.
pub fn pg_admin_url() -> String {
    std::env::var("LETHE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn pg_url_for(db: &str) -> String {
    let mut u = url::Url::parse(&pg_admin_url()).expect("LETHE_TEST_PG_URL is a URL");
    u.set_path(db);
    u.to_string()
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub runner: lethe::jobs::Runner,
    pub db: Db,
    /// LETHE_DATABASE_URL of this test's database (for the CLI).
    pub database_url: String,
    pub dir: tempfile::TempDir,
    pg_db: Option<String>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(name) = self.pg_db.take() {
            // Best effort: the server's pool may still hold connections.
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = PgConnection::establish(&pg_admin_url()) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut c);
                }
            })
            .join();
        }
    }
}

pub fn sources(pairs: &[(&str, String)]) -> Sources {
    let env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Sources::from_parts(env, None).expect("sources")
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// Like `spawn_app`, with extra settings (e.g. `LETHE_SMTP_URL`).
pub async fn spawn_app_with(db: Db, extra: &[(&'static str, String)]) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let (database_url, pg_db) = match db {
        Db::Sqlite => (
            format!("sqlite://{}", dir.path().join("lethe.db").display()),
            None,
        ),
        Db::Postgres => {
            let name = format!("lethe_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::establish(&pg_admin_url()).unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required for these tests and is not reachable at {} ({e}). \
                     Start it, or point LETHE_TEST_PG_URL at one.",
                    pg_admin_url()
                )
            });
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .expect("create test database");
            (pg_url_for(&name), Some(name))
        }
    };
    let settings = Settings::from_sources(&sources(
        &vec![
            ("LETHE_BIND", "127.0.0.1:0".into()),
            ("LETHE_DATABASE_URL", database_url.clone()),
            ("LETHE_ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("LETHE_SECRET_KEY", SECRET_KEY.into()),
            (
                "LETHE_OUTBOX_DIR",
                dir.path().join("outbox").display().to_string(),
            ),
            ("LETHE_HTTP_WORKERS", "2".into()),
            // Tests drive background work step by step with `run_jobs`.
            ("LETHE_JOB_WORKERS", "0".into()),
            // The callback receivers tests start listen on loopback.
            ("LETHE_CALLBACKS_ALLOW_PRIVATE", "true".into()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
        .collect::<Vec<_>>(),
    ))
    .expect("settings");
    let app = Application::build(&settings)
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let runner = app.runner();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: reqwest::Client::new(),
        store,
        runner,
        db,
        database_url,
        dir,
        pg_db,
    }
}

/// A tenant with one API key.
pub struct Tenant {
    pub id: String,
    pub key: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn bin_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LETHE_DATABASE_URL", self.database_url.clone()),
            ("LETHE_SECRET_KEY", SECRET_KEY.into()),
        ]
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_patch(&self, path: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// The id of the tenant's first API key, from the admin API.
    pub async fn first_key_id(&self, t: &Tenant) -> String {
        let keys: Value = self
            .client
            .get(self.url(&format!("/v1/tenants/{}/api-keys", t.id)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        keys["data"][0]["id"].as_str().expect("a key").to_owned()
    }

    pub async fn create_tenant(&self, policy: &str) -> Tenant {
        if policy == "none" {
            self.create_tenant_from(json!({ "name": "Acme US", "approval_policy": "none" }))
                .await
        } else {
            self.create_eu_tenant("en", false).await
        }
    }

    /// A tenant whose privacy contact approves, in `locale`.
    pub async fn create_eu_tenant(&self, locale: &str, notify_subject: bool) -> Tenant {
        self.create_tenant_from(json!({
            "name": "Acme EU",
            "approval_policy": "privacy_contact",
            "privacy_contact": { "name": "Dana Protector", "email": "dpo@acme.example" },
            "locale": locale,
            "notify_subject": notify_subject
        }))
        .await
    }

    pub async fn create_tenant_from(&self, body: Value) -> Tenant {
        let r = self.admin_post("/v1/tenants", &body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = self
            .admin_post(
                &format!("/v1/tenants/{id}/api-keys"),
                &json!({ "name": "profile-service" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let key = r.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        Tenant { id, key }
    }

    pub async fn submit(&self, t: &Tenant, body: &Value) -> Response {
        self.client
            .post(self.url("/v1/erasure-requests"))
            .bearer_auth(&t.key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, t: &Tenant, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&t.key)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_empty(&self, t: &Tenant, path: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&t.key)
            .send()
            .await
            .expect("request")
    }

    pub async fn list(&self, t: &Tenant, query: &str) -> Value {
        let r = self.get(t, &format!("/v1/erasure-requests{query}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Run every background job due now (or at `now + ahead`).
    pub async fn run_jobs(&self) -> lethe::jobs::Pass {
        self.runner
            .run_due(lethe::domain::deadline::now())
            .await
            .expect("jobs run")
    }

    pub async fn run_jobs_at(&self, at: chrono::DateTime<chrono::Utc>) -> lethe::jobs::Pass {
        self.runner.run_due(at).await.expect("jobs run")
    }

    /// Run a SQL statement directly against this test's database.
    pub async fn sql(&self, statement: &str) {
        let s = statement.to_owned();
        self.store
            .write(move |conn| {
                lethe::with_conn!(conn, |c| diesel::sql_query(&s).execute(c))?;
                Ok(())
            })
            .await
            .expect("sql");
    }

    pub async fn count(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let q = format!("SELECT COUNT(*) AS n FROM {table}");
        self.store
            .read(move |conn| {
                Ok(lethe::with_conn!(conn, |c| diesel::sql_query(&q).get_result::<N>(c))?.n)
            })
            .await
            .expect("count")
    }

    pub fn lethe_bin(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
            .args(args)
            .envs(self.bin_env())
            .current_dir(self.dir.path())
            .output()
            .expect("run lethe")
    }
}

/// The `error.code` of an error response, after checking it is JSON.
pub async fn error_code(r: Response) -> String {
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        ct.starts_with("application/json"),
        "error is JSON, got {ct:?}"
    );
    let v: Value = r.json().await.expect("json error body");
    assert!(
        v["error"]["message"].is_string(),
        "error has a message: {v}"
    );
    v["error"]["code"]
        .as_str()
        .expect("error has a code")
        .to_owned()
}

pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}
