//! On a PostgreSQL server whose autovacuum is off (as on the machine the tests
//! run on), `lethe serve`'s job workers analyze the tables the workflow writes
//! most once enough of their rows have changed, so that the plans of its
//! prepared statements follow the tables' size; with autovacuum on, they
//! leave it to the server.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Timestamptz};
use serde_json::json;

use crate::helpers::{spawn_app_with, Db};

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    yes: bool,
}

#[derive(QueryableByName)]
struct Analyzed {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

fn last_analyze(c: &mut PgConnection, table: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    diesel::sql_query("SELECT last_analyze AS at FROM pg_stat_user_tables WHERE relname = $1")
        .bind::<diesel::sql_types::Text, _>(table)
        .get_result::<Analyzed>(c)
        .expect("table counters")
        .at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_workers_analyze_busy_tables_when_autovacuum_is_off() {
    let app = spawn_app_with(Db::Postgres, &[("LETHE_JOB_WORKERS", "4".into())]).await;
    let mut c = PgConnection::establish(&app.database_url).expect("PostgreSQL");
    let autovacuum = diesel::sql_query("SELECT current_setting('autovacuum') = 'on' AS yes")
        .get_result::<Flag>(&mut c)
        .expect("setting")
        .yes;
    assert_eq!(last_analyze(&mut c, "erasure_requests"), None);

    // More changed rows than autovacuum's threshold for a new table (50).
    let tenant = app.create_tenant("privacy_contact").await;
    for i in 0..80 {
        let r = app
            .submit(&tenant, &json!({ "subject_id": format!("stats-{i}") }))
            .await;
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }

    let started = Instant::now();
    if autovacuum {
        // The server analyzes (last_autoanalyze); lethe does not (last_analyze).
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(
            last_analyze(&mut c, "erasure_requests"),
            None,
            "lethe analyzed a table although the server's autovacuum is on"
        );
    } else {
        // The workers look every 5 s; the counters reach them within a second or two.
        loop {
            if last_analyze(&mut c, "erasure_requests").is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "autovacuum is off and lethe did not analyze erasure_requests after 80 submissions"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The submissions' audit events (two each) went past the threshold too.
        assert!(last_analyze(&mut c, "audit_events").is_some());
        // A table that barely changed is left alone.
        assert_eq!(last_analyze(&mut c, "target_calls"), None);
    }
}
