//! Embedded migrations, one directory per backend, applied at start-up.

use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6c65_7468_655f_6d67; // "lethe_mg"

fn names(done: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    done.into_iter().map(|v| v.to_string()).collect()
}

pub fn run_sqlite(conn: &mut SqliteConnection) -> Result<Vec<String>, StoreError> {
    conn.run_pending_migrations(SQLITE)
        .map(names)
        .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
}

pub fn run_postgres(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(conn)?;
    let result = conn
        .run_pending_migrations(POSTGRES)
        .map(names)
        .map_err(|e| StoreError::Internal(format!("migration failed: {e}")));
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(conn)?;
    result
}
