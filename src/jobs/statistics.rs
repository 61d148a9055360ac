//! The planner statistics the job workers keep on a PostgreSQL server whose
//! autovacuum is off (see `store::planner_stats`): every [`EVERY`], the busy
//! tables that changed enough since their last analysis are analyzed.

use std::time::Duration;

use crate::store::{planner_stats, Backend, Conn, Store};

/// How often the tables' counters are looked at (one small query).
pub const EVERY: Duration = Duration::from_secs(5);

/// Until `stop` turns true.
pub async fn keep(store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let mut told = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { break } else { continue },
        }
        let analyzed = store
            .write_self_contained_quietly(|conn| match conn {
                Conn::Pg(c) => planner_stats::analyze_due(c),
                Conn::Sqlite(_) => Ok(Vec::new()),
            })
            .await;
        match analyzed {
            Ok(tables) if tables.is_empty() => {}
            Ok(tables) => {
                if !told {
                    told = true;
                    tracing::warn!(
                        "PostgreSQL's autovacuum is off: lethe analyzes its busiest tables itself; \
                         vacuum them regularly (or turn autovacuum on)"
                    );
                }
                tracing::info!(tables = %tables.join(","), "tables analyzed");
            }
            Err(e) => tracing::warn!(error = %e, "could not analyze the busy tables"),
        }
    }
}
