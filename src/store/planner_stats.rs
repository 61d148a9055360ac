//! PostgreSQL's planner statistics for lethe's busiest tables, kept by lethe
//! when the server's autovacuum does not keep them (`autovacuum = off`).
//!
//! diesel prepares each statement once per connection, and PostgreSQL soon
//! settles on one generic plan for it, made with the statistics of the
//! moment. A table never analyzed looks nearly empty then, and a lookup by a
//! list of keys planned as a sequential scan stays one as the table grows:
//! the read-ahead of target calls, prepared at 10 rows, took 2.55 ms at
//! 20,000 rows and 0.075 ms once the table was analyzed (docs/BENCHMARKS.md,
//! round 16). Autovacuum analyzes a table after 50 rows and a tenth of it
//! have changed; without it nothing does, and every claim of call jobs would
//! read the whole table. So with autovacuum off, the job workers analyze
//! those tables at the same threshold ([`due`]). `ANALYZE` also has every
//! cached plan over the table made again. With autovacuum on, nothing here
//! runs.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};

use super::StoreError;

/// The tables the workflow writes most and reads by lists of keys.
pub const BUSY_TABLES: &[&str] = &[
    "erasure_requests",
    "jobs",
    "target_calls",
    "approval_links",
    "audit_events",
];

/// One table's counters from `pg_stat_user_tables`.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
pub struct TableActivity {
    #[diesel(sql_type = Text)]
    pub table: String,
    /// Live rows, as PostgreSQL estimates them.
    #[diesel(sql_type = BigInt)]
    pub live_rows: i64,
    /// Rows inserted, updated or deleted since the table was last analyzed.
    #[diesel(sql_type = BigInt)]
    pub changed: i64,
}

/// Would autovacuum, at PostgreSQL's default threshold (50 rows and a tenth
/// of the table), have analyzed the table by now?
pub fn due(t: &TableActivity) -> bool {
    t.changed > 50 + t.live_rows.max(0) / 10
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    yes: bool,
}

/// Any number for the advisory lock that lets one replica at a time do it.
const LOCK_KEY: i64 = 0x6c65_7468_6573_7461; // "lethesta"

/// Analyze the busy tables that are [`due`], unless the server's autovacuum
/// is on or another replica is at it: the tables analyzed.
pub fn analyze_due(conn: &mut PgConnection) -> Result<Vec<&'static str>, StoreError> {
    let on: Flag =
        diesel::sql_query("SELECT current_setting('autovacuum') = 'on' AS yes").get_result(conn)?;
    if on.yes {
        return Ok(Vec::new());
    }
    conn.transaction(|c| {
        let mine: Flag = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS yes")
            .bind::<BigInt, _>(LOCK_KEY)
            .get_result(c)?;
        if !mine.yes {
            return Ok(Vec::new());
        }
        let activity: Vec<TableActivity> = diesel::sql_query(
            "SELECT relname::text AS table, n_live_tup AS live_rows, \
             n_mod_since_analyze AS changed FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND relname = ANY($1)",
        )
        .bind::<Array<Text>, _>(BUSY_TABLES)
        .load(c)?;
        let mut analyzed = Vec::new();
        for table in BUSY_TABLES {
            if activity.iter().any(|t| t.table == *table && due(t)) {
                // A name from the list above, not input.
                diesel::sql_query(format!("ANALYZE {table}")).execute(c)?;
                analyzed.push(*table);
            }
        }
        Ok(analyzed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(live_rows: i64, changed: i64) -> TableActivity {
        TableActivity {
            table: "jobs".into(),
            live_rows,
            changed,
        }
    }

    #[test]
    fn due_at_autovacuums_default_threshold() {
        // A new table: after 50 changed rows.
        assert!(!due(&t(0, 50)));
        assert!(due(&t(0, 51)));
        // A table of 10,000 rows: after 50 + 1,000.
        assert!(!due(&t(10_000, 1_050)));
        assert!(due(&t(10_000, 1_051)));
        // PostgreSQL's estimate can be negative before the first count.
        assert!(due(&t(-1, 51)));
    }
}
